// Reading and writing weights in the safetensors format (a little-endian u64 header length,
// a JSON header naming each tensor's dtype, shape and byte range, then the raw data).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vkalex/cpu.hpp"
#include "vkalex/shape.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// The largest safetensors file opened (weights or a checkpoint; only regular files are read).
constexpr uint64_t kMaxSafetensorsBytes = 64ull << 30;

// A safetensors file, memory-mapped and checked entirely when opened: header length within
// the file, every entry with a known dtype, a shape whose size matches its byte range,
// ranges within the data and not overlapping. Any fault throws Error naming the file and
// the tensor. F32, F16 and BF16 tensors can be read (as float); a NaN or an infinity in one is
// refused when it is read (naming the tensor and the element), since vkalex's tensors are
// weights and training state.
class SafeTensors {
 public:
  struct Entry {
    std::string name;
    std::string dtype;  // as in the file: "F32", "F16", "BF16", "I64", ...
    Shape shape;
    uint64_t begin = 0, end = 0;  // byte range within the data section
  };

  explicit SafeTensors(const std::string& path);
  ~SafeTensors();
  SafeTensors(SafeTensors&&) noexcept;
  SafeTensors& operator=(SafeTensors&&) noexcept;

  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  // Throws Error naming the tensor and the file when absent.
  const Entry& entry(const std::string& name) const;
  // The tensor as float (F16 and BF16 converted); throws for other dtypes.
  HostTensor read(const std::string& name) const;

 private:
  std::string path_;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  const uint8_t* data_ = nullptr;  // start of the data section within the mapping
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

// Writes `tensors` (name -> F32 data) as a safetensors file. The file appears whole or not at
// all: it is written to a temporary file beside `path`, flushed to disk, then renamed. A
// tensor holding a NaN or an infinity is refused before anything is written (any old file at
// `path` stays as it was).
void save_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Throws Error "`where`: tensor "`name`" holds NaN at element [i, j, ...]" for the first value
// of `tensor` that is not finite.
void require_finite(const HostTensor& tensor, const std::string& name, const std::string& where);

// bfloat16 to float (IEEE half: half_to_float in shape.hpp).
float bfloat16_to_float(uint16_t b);

}  // namespace vkalex
VKALEX_PUBLIC_END
