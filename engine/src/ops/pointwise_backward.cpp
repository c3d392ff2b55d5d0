// Host side of relu_backward.comp, lrn_backward.comp and maxpool_backward.comp.
#include <algorithm>

#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

void relu_backward(Recorder& rec, const Tensor& dy, const Tensor& y, const Tensor& dx) {
  using namespace detail;
  const char* op = "relu_backward";
  check_tensor(op, "dy", dy, dy.shape());
  check_tensor(op, "y", y, dy.shape());
  check_tensor(op, "dx", dx, dy.shape());
  if (dx.aliases(dy) && dx.offset() != dy.offset()) throw Error("relu_backward: dx overlaps dy without being dy");
  check_no_alias(op, y, dx);
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  for (auto [i0, i1] : item_ranges(dev, op, static_cast<uint32_t>(dy.numel()), {sizeof(float)})) {
    struct {
      uint32_t count;
    } push{i1 - i0};
    const uint64_t off = i0 * 4ull, len = push.count * 4ull;
    Dispatch d;
    d.shader = kernel_shader(dev, op, dy.shape(), Shape{});
    const Texel t = texel_loads(d.shader);
    d.label = op;
    d.specialization = {wg};
    d.bindings = {{&dy, Use::Read, off, len, t}, {&y, Use::Read, off, len, t}, {&dx, Use::Write, off, len}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, push.count, wg);
    record_dispatch(rec, d);
  }
}

void lrn_backward(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dx, const LrnParams& params,
                  bool relu_input) {
  using namespace detail;
  const char* op = "lrn_backward";
  check_tensor(op, "x", x, x.shape());
  const Shape s = lrn_output_shape(x.shape(), params);
  check_tensor(op, "dy", dy, s);
  check_tensor(op, "dx", dx, s);
  check_no_alias(op, dy, dx);
  check_no_alias(op, x, dx);
  struct {
    uint32_t N, C, HW, size;
    float alpha, beta, k;
    uint32_t relu;
  } push{0, s[1], s[2] * s[3], params.size, params.alpha, params.beta, params.k, relu_input ? 1u : 0u};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  check_trip_count(dev, op, uint64_t(s[1]) + params.size, "the channels of one pixel");
  const uint64_t item = x.bytes() / s[0];
  for (auto [n0, n1] : item_ranges(dev, op, s[0], {item})) {
    push.N = n1 - n0;
    const uint64_t off = n0 * item, len = push.N * item;
    Dispatch d;
    d.shader = kernel_shader(dev, op, x.shape(), Shape{});
    const Texel t = texel_loads(d.shader);
    d.label = op;
    d.specialization = {wg, params.size, params.below()};
    d.bindings = {{&dy, Use::Read, off, len, t}, {&x, Use::Read, off, len, t}, {&dx, Use::Write, off, len}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * push.HW, wg);  // one invocation per pixel
    record_dispatch(rec, d);
  }
}

void max_pool_backward(Recorder& rec, const Tensor& dy, const Tensor& argmax, const Tensor& dx,
                       const MaxPoolParams& params) {
  using namespace detail;
  const char* op = "max_pool_backward";
  check_tensor(op, "dx", dx, dx.shape());
  const Shape ys = max_pool_output_shape(dx.shape(), params);
  check_tensor(op, "dy", dy, ys);
  check_tensor(op, "argmax", argmax, ys, DType::U32);
  check_no_alias(op, dy, dx);
  const Shape& s = dx.shape();
  // Classes of outputs whose windows never overlap (see maxpool_backward.glsl).
  const uint32_t py = (params.kernel_h + params.stride_h - 1) / params.stride_h;
  const uint32_t px = (params.kernel_w + params.stride_w - 1) / params.stride_w;
  struct {
    uint32_t N, C, H, W, OH, OW, PY, PX, RY, RX, index_base;
  } push{0, s[1], s[2], s[3], ys[2], ys[3], py, px, 0, 0, 0};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  rec.fill(dx, 0.0f);
  const uint64_t x_item = dx.bytes() / s[0], y_item = dy.bytes() / s[0];
  for (auto [n0, n1] : item_ranges(dev, op, s[0], {x_item, y_item})) {
    push.N = n1 - n0;
    push.index_base = static_cast<uint32_t>(uint64_t(n0) * s[1] * s[2] * s[3]);
    for (uint32_t ry = 0; ry < std::min(py, ys[2]); ++ry) {
      for (uint32_t rx = 0; rx < std::min(px, ys[3]); ++rx) {
        push.RY = ry, push.RX = rx;
        Dispatch d;
        d.shader = kernel_shader(dev, op, dx.shape(), Shape{});
        const Texel t = texel_loads(d.shader);
        d.label = op;
        d.specialization = {wg};
        d.bindings = {{&dy, Use::Read, n0 * y_item, push.N * y_item, t},
                      {&argmax, Use::Read, n0 * y_item, push.N * y_item, t == Texel::None ? Texel::None : Texel::R32UI},
                      {&dx, Use::ReadWrite, n0 * x_item, push.N * x_item}};
        d.push = &push;
        d.push_bytes = sizeof push;
        const uint64_t outputs = uint64_t((ys[2] - ry + py - 1) / py) * ((ys[3] - rx + px - 1) / px);
        d.groups = grid_for_threads(dev, uint64_t(push.N) * push.C * outputs, wg);
        record_dispatch(rec, d);
      }
    }
  }
}

}  // namespace vkalex::ops
