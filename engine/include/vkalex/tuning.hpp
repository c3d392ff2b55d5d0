// The tuning file: the kernel variant measured fastest per op and shapes on one device and
// driver (written by `bench --tune`), kept beside the pipeline cache. A Context loads it into
// DeviceInfo::tuned_kernels; the registry takes a tuned variant only where it applies, so the
// file is a cache: a stale, damaged or foreign one costs speed, never correctness.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// One measured choice.
struct TuningEntry {
  std::string op;       // the registry's op name, e.g. "conv2d_backward_data"
  std::string key;      // the shapes, as ops::kernel_shape_key() writes them
  std::string variant;  // the variant to take, e.g. "conv2d_backward_data.wide"
  // For the record (not used to choose): GPU ms of each variant timed, and where it was
  // measured (e.g. "alexnet-fashion conv2 backward, batch 128").
  std::map<std::string, double> ms;
  std::string measured_on;
};

struct TuningFile {
  std::vector<TuningEntry> entries;  // empty unless status is "loaded"
  // "loaded", "no tuning file yet", or "ignored: <why>" (not JSON, another schema, another
  // device's UUID or driver version, a damaged entry).
  std::string status;
};

// A device UUID as 32 lowercase hex digits, as the tuning file (and bench's JSON) write it.
std::string uuid_hex(const std::array<uint8_t, 16>& uuid);

// Reads the tuning file at `path` made for `device` (its UUID and raw driver version must
// match). Never throws: a missing, unreadable, damaged or foreign file gives no entries and
// says why in `status`.
TuningFile read_tuning_file(const std::string& path, const DeviceInfo& device);

// Writes `entries` for `device` to `path`, keeping the entries of the file already there (if
// it is this device's) for other (op, key) pairs; entries for the same pair are replaced.
// Creates the folder; the file is written to a temporary file and renamed. Throws Error
// naming the path when it cannot be written. Returns the number of entries in the file.
size_t save_tuning_file(const std::string& path, const DeviceInfo& device, const std::vector<TuningEntry>& entries);

}  // namespace vkalex
VKALEX_PUBLIC_END
