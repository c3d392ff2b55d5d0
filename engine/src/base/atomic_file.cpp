#include "base/atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "vkalex/error.hpp"
#include "vkalex/files.hpp"

namespace vkalex::detail {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t size) {
  if (size && std::fwrite(data, 1, size, file_) != size) {
    throw Error("cannot write " + path_ + ": " + std::strerror(errno));
  }
}

void AtomicFile::commit() {
  bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  const int err = errno;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = ok ? errno : err;
    std::remove(tmp_.c_str());
    throw Error("cannot write " + path_ + ": " + std::strerror(e));
  }
  // The rename itself is durable once the directory is synced.
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  if (FILE* d = std::fopen(dir.empty() ? "." : dir.c_str(), "r")) {
    ::fsync(fileno(d));
    std::fclose(d);
  }
}

}  // namespace vkalex::detail

namespace vkalex {

void write_file_atomically(const std::string& path, std::string_view contents) {
  detail::AtomicFile f(path);
  f.write(contents.data(), contents.size());
  f.commit();
}

}  // namespace vkalex
