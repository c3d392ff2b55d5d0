// Internal: a file that appears whole or not at all (public form: vkalex/files.hpp).
#pragma once

#include <cstdio>
#include <string>

namespace vkalex::detail {

// Writes to "<path>.tmp.<pid>" beside the target; commit() flushes it to disk and renames it
// over `path`. Destroyed without commit(), it removes the temporary file and leaves any old
// file at `path` untouched. Throws Error naming the path on any failure.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_, tmp_;
  FILE* file_ = nullptr;
};

}  // namespace vkalex::detail
