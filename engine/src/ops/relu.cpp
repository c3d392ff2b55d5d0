// Host side of relu_forward.comp.
#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

void relu(Recorder& rec, const Tensor& x, const Tensor& y) {
  using namespace detail;
  const char* op = "relu";
  const DType ft = float_type(op, x);
  check_tensor(op, "input", x, x.shape(), ft);
  check_tensor(op, "output", y, x.shape(), ft);
  const bool in_place = x.aliases(y);
  if (in_place && (x.offset() != y.offset() || &x.allocation() != &y.allocation())) {
    throw Error("relu: output overlaps the input without being the same memory");
  }
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  const uint64_t n = x.numel();
  if (n > UINT32_MAX) throw Error("relu: more than 2^32 elements");
  for (auto [i0, i1] : item_ranges(dev, op, static_cast<uint32_t>(n), {uint64_t(dtype_size(ft))})) {
    struct {
      uint32_t count;
    } push{i1 - i0};
    Dispatch d;
    d.shader = "relu_forward";
    d.label = op;
    d.specialization = {wg};
    const uint64_t e = dtype_size(ft);
    d.bindings = {{&x, Use::Read, i0 * e, push.count * e}, {&y, Use::Write, i0 * e, push.count * e}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, push.count, wg);
    record_dispatch(rec, d);
  }
}

}  // namespace vkalex::ops
