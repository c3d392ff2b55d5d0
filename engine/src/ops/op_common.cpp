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

DType float_type(const char* op, const Tensor& x) {
  if (x.dtype() != DType::F32 && x.dtype() != DType::F16) {
    throw Error(std::string(op) + ": input must be f32 or f16, is " + dtype_name(x.dtype()));
  }
  return x.dtype();
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

ConvTile wide_conv_tile(const DeviceInfo& device, uint32_t channels_per_group, uint32_t row_width) {
  const uint32_t channels = device.type == DeviceType::Cpu ? 8 : 4;
  ConvTile t{std::min<uint32_t>(channels, std::max<uint32_t>(1, channels_per_group)), 1};
  for (uint32_t pt = std::min<uint32_t>(8, row_width); pt > 1; --pt) {
    const uint32_t padded = (row_width + pt - 1) / pt * pt;
    if (6 * (padded - row_width) <= padded) {
      t.pixels = pt;
      break;
    }
  }
  return t;
}

std::vector<std::pair<uint32_t, uint32_t>> item_ranges(const DeviceInfo& device, const char* op,
                                                       uint32_t n,
                                                       std::initializer_list<uint64_t> bytes_per_item,
                                                       uint32_t max_items) {
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
  if (largest * n <= range && n <= max_items) return {{0, n}};
  uint64_t per = std::min<uint64_t>(range / std::max<uint64_t>(largest, 1), max_items) / step * step;
  if (per == 0 && largest * step <= range) {
    throw Error(std::string(op) + ": cannot split " + std::to_string(n) + " items into aligned groups of " +
                std::to_string(step) + " with at most " + std::to_string(max_items) + " each");
  }
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

void check_trip_count(const DeviceInfo& device, const char* op, uint64_t iterations, const char* what) {
  const uint32_t budget = loop_budget(device);
  if (iterations > budget) {
    std::string why = device.max_loop_iterations
                          ? "; its driver stops loops early past " + std::to_string(device.max_loop_iterations)
                          : "; more keeps one dispatch too long";
    throw Error(std::string(op) + ": " + what + " would run " + std::to_string(iterations) +
                " loop iterations in one shader invocation, more than the engine allows on this device (" +
                std::to_string(budget) + why + ")");
  }
}

Texel texel_loads(const char* shader) {
  const std::string s(shader);
  return s.size() > 6 && s.compare(s.size() - 6, 6, "_texel") == 0 ? Texel::R32F : Texel::None;
}

void record_sum_slices(Recorder& rec, const char* label, const Tensor& part, uint32_t slices, const Tensor& y) {
  const DeviceInfo& dev = recorder_device(rec);
  check_trip_count(dev, label, slices, "adding the partial sums");
  struct {
    uint32_t S, L;
  } push{slices, static_cast<uint32_t>(y.numel())};
  const uint32_t wg = elementwise_workgroup(dev);
  Dispatch d;
  d.shader = "sum_slices";
  d.label = label;
  d.specialization = {wg};
  d.bindings = {{&part, Use::Read, 0, uint64_t(slices) * y.bytes()}, {&y, Use::Write}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for_threads(dev, push.L, wg);
  record_dispatch(rec, d);
}

}  // namespace vkalex::detail
