// Host side of conv2d_backward_data.comp, conv2d_backward_weight.comp and bias_backward.comp.
#include <algorithm>

#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

namespace {
struct ConvPush {
  uint32_t N, C, H, W, K, OH, OW, KH, KW, SH, SW, PH, PW, G;
};
ConvPush conv_push(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  return {x[0], x[1], x[2], x[3], y[1], y[2], y[3], w[2], w[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.groups};
}
}  // namespace

void conv2d_backward_data(Recorder& rec, const Tensor& dy, const Tensor& w, const Tensor& dx,
                          const Conv2dParams& params) {
  using namespace detail;
  const char* op = "conv2d_backward_data";
  check_tensor(op, "dx", dx, dx.shape());
  check_tensor(op, "weight", w, w.shape());
  const Shape ys = conv2d_output_shape(dx.shape(), w.shape(), nullptr, params);
  check_tensor(op, "dy", dy, ys);
  check_no_alias(op, dy, dx);
  ConvPush push = conv_push(dx.shape(), w.shape(), ys, params);
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  const uint32_t cpg = push.C / params.groups;
  const ConvTile tile = conv_tile(cpg, push.W);
  const uint64_t tiles =
      uint64_t(params.groups) * ((cpg + tile.channels - 1) / tile.channels) * ((push.W + tile.pixels - 1) / tile.pixels);
  const uint64_t x_item = dx.bytes() / push.N, y_item = dy.bytes() / push.N;
  for (auto [n0, n1] : item_ranges(dev, op, ys[0], {x_item, y_item})) {
    push.N = n1 - n0;
    Dispatch d;
    d.shader = "conv2d_backward_data";
    d.label = op;
    d.specialization = {wg, tile.channels, tile.pixels, params.stride_h == 1 && params.stride_w == 1 ? 1u : 0u};
    d.bindings = {{&dy, Use::Read, n0 * y_item, push.N * y_item},
                  {&w, Use::Read},
                  {&dx, Use::Write, n0 * x_item, push.N * x_item}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * tiles * push.H, wg);
    record_dispatch(rec, d);
  }
}

void conv2d_backward_weight(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dw,
                            const Conv2dParams& params) {
  using namespace detail;
  const char* op = "conv2d_backward_weight";
  check_tensor(op, "x", x, x.shape());
  check_tensor(op, "dweight", dw, dw.shape());
  const Shape ys = conv2d_output_shape(x.shape(), dw.shape(), nullptr, params);
  check_tensor(op, "dy", dy, ys);
  check_no_alias(op, dy, dw);
  check_no_alias(op, x, dw);
  const ConvPush push = conv_push(x.shape(), dw.shape(), ys, params);
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t kpg = push.K / params.groups, cpg = push.C / params.groups;
  const uint32_t kt = std::min<uint32_t>(8, kpg), ct = std::min<uint32_t>(4, cpg);
  const uint64_t threads = uint64_t(params.groups) * ((kpg + kt - 1) / kt) * ((cpg + ct - 1) / ct) * push.KH * push.KW;
  // Few invocations, each summing over the whole batch: smaller workgroups spread them over
  // more of the device's cores.
  uint32_t wg = elementwise_workgroup(dev);
  while (wg > 8 && threads < 16ull * wg) wg /= 2;
  Dispatch d;
  d.shader = "conv2d_backward_weight";
  d.label = op;
  d.specialization = {wg, kt, ct};
  d.bindings = {{&dy, Use::Read}, {&x, Use::Read}, {&dw, Use::Write}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for_threads(dev, threads, wg);
  record_dispatch(rec, d);
}

void bias_backward(Recorder& rec, const Tensor& dy, const Tensor& db) {
  using namespace detail;
  const char* op = "bias_backward";
  check_tensor(op, "dy", dy, dy.shape());
  if (dy.shape().rank() < 2) throw Error("bias_backward: dy must have rank 2 or more, got " + dy.shape().str());
  check_tensor(op, "dbias", db, Shape{dy.shape()[1]});
  check_no_alias(op, dy, db);
  struct {
    uint32_t N, C, S;
  } push{dy.shape()[0], dy.shape()[1], 0};
  push.S = static_cast<uint32_t>(dy.numel() / std::max<uint64_t>(1, uint64_t(push.N) * push.C));
  const DeviceInfo& dev = recorder_device(rec);
  uint32_t wg = 1;
  while (wg * 2 <= std::min<uint32_t>(256, dev.max_workgroup_invocations) && wg < push.S) wg *= 2;
  Dispatch d;
  d.shader = "bias_backward";
  d.label = op;
  d.specialization = {wg};
  d.bindings = {{&dy, Use::Read}, {&db, Use::Write}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for(dev, push.C);
  record_dispatch(rec, d);
}

}  // namespace vkalex::ops
