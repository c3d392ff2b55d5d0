// What bench's files share.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "vkalex/vkalex.hpp"

namespace bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// bench --tune: times every kernel variant that applies to each op of `model`'s plan at each
// batch size (the forward ops; with `train` also the backward ops), each op recorded alone on
// its real shapes with random data, the variants in turn (in Contexts that force them), and
// returns per (op, shapes) the fastest variant, or the built-in choice where it is within 3%
// of the fastest. `device` is the device `options` opens. Ops with one applicable variant, and
// ops the user forces (VKALEX_KERNELS), are not timed. Prints a table to stdout.
std::vector<vkalex::TuningEntry> tune_kernels(const vkalex::ContextOptions& options, const vkalex::DeviceInfo& device,
                                              const vkalex::ModelDesc& model, const std::vector<uint32_t>& batches,
                                              bool train, uint64_t seed);

}  // namespace bench
