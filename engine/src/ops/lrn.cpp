// Host side of lrn_forward.comp.
#include "ops/op_common.hpp"

namespace vkalex::ops {

void lrn(Recorder& rec, const Tensor& x, const Tensor& y, const LrnParams& params) {
  using namespace detail;
  const char* op = "lrn";
  const DType ft = float_type(op, x);
  check_tensor(op, "input", x, x.shape(), ft);
  check_tensor(op, "output", y, lrn_output_shape(x.shape(), params), ft);
  check_no_alias(op, x, y);
  const Shape& s = x.shape();
  struct {
    uint32_t N, C, HW, size;
    float alpha, beta, k;
  } push{0, s[1], s[2] * s[3], params.size, params.alpha, params.beta, params.k};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  check_trip_count(dev, op, uint64_t(s[1]) + params.size, "the channels of one pixel");
  const uint64_t item = x.bytes() / s[0];
  for (auto [n0, n1] : item_ranges(dev, op, s[0], {item})) {
    push.N = n1 - n0;
    Dispatch d;
    d.shader = kernel_shader(dev, op, x.shape(), Shape{});
    d.label = op;
    d.specialization = {wg, params.size, params.below()};
    d.bindings = {{&x, Use::Read, n0 * item, push.N * item, texel_loads(d.shader)},
                  {&y, Use::Write, n0 * item, push.N * item}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * push.HW, wg);  // one invocation per pixel
    record_dispatch(rec, d);
  }
}

}  // namespace vkalex::ops
