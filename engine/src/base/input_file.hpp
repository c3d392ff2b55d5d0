// Internal: reading a file from outside. Only regular files are read (a FIFO, a device such as
// /dev/zero, a directory or a socket is refused before a byte is read, and opening one never
// blocks), and the size is checked against a limit before anything is allocated for it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace vkalex::detail {

// An open regular file. `what` names the input in messages ("model description"); a file
// larger than `max_bytes` is refused. Throws Error naming the path and the problem.
class InputFile {
 public:
  InputFile(const std::string& path, const char* what, uint64_t max_bytes);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  // The whole file (a file that shrank or grew while being read is an error).
  std::string read_all();
  // The file as a stdio stream, which the caller then owns and closes (this object no longer
  // does).
  FILE* release_to_stdio();
  // The descriptor, which the caller then owns and closes.
  int release();

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole regular file at `path`, at most `max_bytes`.
std::string read_input_file(const std::string& path, const char* what, uint64_t max_bytes);

}  // namespace vkalex::detail
