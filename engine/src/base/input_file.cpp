#include "base/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vkalex/error.hpp"

namespace vkalex::detail {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

InputFile::InputFile(const std::string& path, const char* what, uint64_t max_bytes) : path_(path) {
  if (path.empty()) throw Error(std::string("the ") + what + " path is empty");
  // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) throw Error(path + ": cannot open the " + what + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int e = errno;
    ::close(fd_);
    throw Error(path + ": cannot read the " + what + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error(path + ": is " + kind_of(st.st_mode) + ", not a regular file (the " + what + " must be one)");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > max_bytes) {
    ::close(fd_);
    throw Error(path + ": " + std::to_string(size_) + " bytes is over the " + what + " limit of " +
                std::to_string(max_bytes) + " bytes");
  }
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string InputFile::read_all() {
  std::string out(size_, '\0');
  uint64_t done = 0;
  while (done < size_) {
    const ssize_t n = ::read(fd_, out.data() + done, size_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(path_ + ": read failed: " + std::strerror(errno));
    if (n == 0) throw Error(path_ + ": shrank while being read");
    done += static_cast<uint64_t>(n);
  }
  char extra;
  if (::read(fd_, &extra, 1) > 0) throw Error(path_ + ": grew while being read");
  return out;
}

FILE* InputFile::release_to_stdio() {
  FILE* f = ::fdopen(fd_, "rb");
  if (!f) throw Error(path_ + ": cannot read: " + std::strerror(errno));
  fd_ = -1;
  return f;
}

int InputFile::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

std::string read_input_file(const std::string& path, const char* what, uint64_t max_bytes) {
  return InputFile(path, what, max_bytes).read_all();
}

}  // namespace vkalex::detail
