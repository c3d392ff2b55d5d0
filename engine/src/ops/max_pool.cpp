// Host side of maxpool_forward.comp: max pooling and average pooling.
#include "ops/op_common.hpp"

namespace vkalex::ops {

namespace {

// flags: 2 average, 4 average counting padding (see maxpool_forward.glsl).
void pool(const char* op, Recorder& rec, const Tensor& x, const Tensor& y, const Tensor* argmax,
          const MaxPoolParams& params, uint32_t flags) {
  using namespace detail;
  const DType ft = float_type(op, x);
  check_tensor(op, "input", x, x.shape(), ft);
  const Shape out = max_pool_output_shape(x.shape(), params);
  check_tensor(op, "output", y, out, ft);
  check_no_alias(op, x, y);
  if (argmax) {
    check_tensor(op, "argmax", *argmax, out, DType::U32);
    check_no_alias(op, x, *argmax);
    check_no_alias(op, y, *argmax);
  }
  const Shape& s = x.shape();
  struct {
    uint32_t N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, flags, index_base, PHE, PWE, DH, DW;
  } push{0, s[1], s[2], s[3], out[2], out[3], params.kernel_h, params.kernel_w, params.stride_h,
         params.stride_w, params.pad_h, params.pad_w, flags | (argmax ? 1u : 0u), 0, params.pad_end_h(), params.pad_end_w(),
         params.dilation_h, params.dilation_w};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  // Windows of up to 64 values are unrolled (their size is a specialization constant).
  const bool unrolled = uint64_t(params.kernel_h) * params.kernel_w <= 64;
  check_trip_count(dev, op, uint64_t(params.kernel_h) * (1 + uint64_t(params.kernel_w)), "the pooling window");
  // Bytes per image of each tensor (the argmax's u32 are wider than f16 values).
  const uint64_t x_item = x.bytes() / s[0], y_item = y.bytes() / s[0], a_item = out.numel() / s[0] * 4;
  for (auto [n0, n1] : item_ranges(dev, op, s[0], {x_item, y_item, argmax ? a_item : 0})) {
    push.N = n1 - n0;
    push.index_base = static_cast<uint32_t>(uint64_t(n0) * s[1] * s[2] * s[3]);
    Dispatch d;
    d.shader = kernel_shader(dev, op, x.shape(), Shape{});
    d.label = op;
    d.specialization = {wg, unrolled ? params.kernel_h : 0, unrolled ? params.kernel_w : 0};
    d.bindings = {{&x, Use::Read, n0 * x_item, push.N * x_item, texel_loads(d.shader)},
                  {&y, Use::Write, n0 * y_item, push.N * y_item},
                  argmax ? Binding{argmax, Use::Write, n0 * a_item, push.N * a_item}
                         : Binding{&y, Use::Unused, n0 * y_item, push.N * y_item}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * push.C * push.OH * push.OW, wg);
    record_dispatch(rec, d);
  }
}

}  // namespace

void max_pool(Recorder& rec, const Tensor& x, const Tensor& y, const Tensor* argmax, const MaxPoolParams& params) {
  pool("max_pool", rec, x, y, argmax, params, 0);
}

void avg_pool(Recorder& rec, const Tensor& x, const Tensor& y, const MaxPoolParams& params, bool count_include_pad) {
  pool("avg_pool", rec, x, y, nullptr, params, count_include_pad ? 6u : 2u);
}

}  // namespace vkalex::ops
