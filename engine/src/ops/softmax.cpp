// Host side of softmax_forward.comp.
#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

void softmax(Recorder& rec, const Tensor& x, const Tensor& y, uint32_t length, uint32_t inner) {
  using namespace detail;
  const char* op = "softmax";
  const DType ft = float_type(op, x);
  check_tensor(op, "input", x, x.shape(), ft);
  check_tensor(op, "output", y, softmax_output_shape(x.shape()), ft);
  check_no_alias(op, x, y);
  const uint32_t L = length ? length : x.shape().dims().back();
  if (inner == 0 || L == 0 || x.numel() % (uint64_t(L) * inner) != 0) {
    throw Error(std::string(op) + ": groups of " + std::to_string(L) + " elements " + std::to_string(inner) +
                " apart do not tile x " + x.shape().str());
  }
  const uint64_t blocks64 = x.numel() / (uint64_t(L) * inner);
  const DeviceInfo& dev = recorder_device(rec);
  // A power of two for the shared-memory tree reduction.
  uint32_t wg = 1;
  while (wg * 2 <= std::min<uint32_t>(256, dev.max_workgroup_invocations) && wg < L) wg *= 2;
  check_trip_count(dev, op, 3 * ((uint64_t(L) + wg - 1) / wg + 1) + 16, "one row");
  // Bound in blocks of L x inner values (a row's elements lie within one).
  const uint64_t row_bytes = uint64_t(L) * inner * dtype_size(ft);
  for (auto [r0, r1] : item_ranges(dev, op, static_cast<uint32_t>(blocks64), {row_bytes})) {
    struct {
      uint32_t rows, L, inner;
    } push{(r1 - r0) * inner, L, inner};
    Dispatch d;
    d.shader = "softmax_forward";
    d.label = op;
    d.specialization = {wg};
    d.bindings = {{&x, Use::Read, r0 * row_bytes, (r1 - r0) * row_bytes},
                  {&y, Use::Write, r0 * row_bytes, (r1 - r0) * row_bytes}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for(dev, push.rows);
    record_dispatch(rec, d);
  }
}

}  // namespace vkalex::ops
