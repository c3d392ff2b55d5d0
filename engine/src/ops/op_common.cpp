#include "ops/op_common.hpp"

#include <algorithm>
#include <numeric>

#include "vkalex/error.hpp"

namespace vkalex::detail {

void check_tensor(const char* op, const char* name, const Tensor& t, const Shape& expected, DType dtype) {
  if (t.empty()) throw Error(std::string(op) + ": " + name + " is an empty tensor");
  if (t.dtype() != dtype) {
    throw Error(std::string(op) + ": " + name + " must be " + dtype_name(dtype) + ", is " +
                dtype_name(t.dtype()));
  }
  if (t.shape() != expected) {
    throw Error(std::string(op) + ": " + name + " has shape " + t.shape().str() + ", expected " +
                expected.str());
  }
}

void check_no_alias(const char* op, const Tensor& in, const Tensor& out) {
  if (in.aliases(out)) throw Error(std::string(op) + ": output overlaps an input; this op is not in place");
}

uint32_t elementwise_workgroup(const DeviceInfo& device) {
  return std::min<uint32_t>(64, device.max_workgroup_invocations);
}

std::array<uint32_t, 3> grid_for_threads(const DeviceInfo& device, uint64_t threads, uint32_t workgroup) {
  return grid_for(device, (threads + workgroup - 1) / workgroup);
}

ConvTile conv_tile(uint32_t channels_per_group, uint32_t row_width) {
  ConvTile t{std::min<uint32_t>(8, std::max<uint32_t>(1, channels_per_group)), 1};
  // The widest of 4, 3, 2 pixels that wastes at most a sixth of the row (1 always fits).
  for (uint32_t pt : {4u, 3u, 2u}) {
    const uint32_t padded = (row_width + pt - 1) / pt * pt;
    if (pt <= row_width && 6 * (padded - row_width) <= padded) {
      t.pixels = pt;
      break;
    }
  }
  return t;
}

std::vector<std::pair<uint32_t, uint32_t>> item_ranges(const DeviceInfo& device, const char* op,
                                                       uint32_t n,
                                                       std::initializer_list<uint64_t> bytes_per_item) {
  const uint64_t align = std::max<uint64_t>(1, device.min_storage_buffer_offset_alignment);
  const uint64_t range = device.max_storage_buffer_range;
  uint64_t step = 1, largest = 0;
  for (uint64_t b : bytes_per_item) {
    if (b == 0) continue;
    step = std::lcm(step, align / std::gcd(b, align));
    largest = std::max(largest, b);
  }
  std::vector<std::pair<uint32_t, uint32_t>> out;
  if (n == 0) return out;
  if (largest * n <= range) return {{0, n}};
  uint64_t per = range / std::max<uint64_t>(largest, 1) / step * step;
  if (per == 0) {
    throw Error(std::string(op) + ": one item of " + std::to_string(largest) +
                " bytes (in aligned groups of " + std::to_string(step) +
                ") exceeds the device's maxStorageBufferRange of " + std::to_string(range));
  }
  for (uint64_t i = 0; i < n; i += per) {
    out.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(std::min<uint64_t>(n, i + per)));
  }
  return out;
}

}  // namespace vkalex::detail
