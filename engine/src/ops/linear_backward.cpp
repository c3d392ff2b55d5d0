// Host side of linear_backward_data.comp and linear_backward_weight.comp.
#include "ops/op_common.hpp"

namespace vkalex::ops {

void linear_backward_data(Recorder& rec, const Tensor& dy, const Tensor& w, const Tensor& dx) {
  using namespace detail;
  const char* op = "linear_backward_data";
  check_tensor(op, "weight", w, w.shape());
  check_tensor(op, "dx", dx, dx.shape());
  const Shape ys = linear_output_shape(dx.shape(), w.shape(), nullptr);
  check_tensor(op, "dy", dy, ys);
  check_no_alias(op, dy, dx);
  struct {
    uint32_t N, K, M, m0, rows, flags;
  } push{ys[0], w.shape()[1], w.shape()[0], 0, 0, 0};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  const uint64_t row_bytes = uint64_t(push.K) * sizeof(float);
  bool first = true;
  // Weights beyond one binding (fc6) are taken in blocks of rows, each adding to dx.
  for (auto [m0, m1] : item_ranges(dev, op, push.M, {row_bytes})) {
    push.m0 = m0;
    push.rows = m1 - m0;
    push.flags = first ? 0u : 1u;
    Dispatch d;
    d.shader = "linear_backward_data";
    d.label = op;
    d.specialization = {wg};
    d.bindings = {{&dy, Use::Read},
                  {&w, Use::Read, m0 * row_bytes, push.rows * row_bytes},
                  {&dx, first ? Use::Write : Use::ReadWrite}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * push.K, wg);
    record_dispatch(rec, d);
    first = false;
  }
}

void linear_backward_weight(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dw) {
  using namespace detail;
  const char* op = "linear_backward_weight";
  check_tensor(op, "x", x, x.shape());
  check_tensor(op, "dweight", dw, dw.shape());
  const Shape ys = linear_output_shape(x.shape(), dw.shape(), nullptr);
  check_tensor(op, "dy", dy, ys);
  check_no_alias(op, dy, dw);
  check_no_alias(op, x, dw);
  struct {
    uint32_t N, K, M, m0, rows;
  } push{ys[0], x.shape()[1], ys[1], 0, 0};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  const uint64_t row_bytes = uint64_t(push.K) * sizeof(float);
  for (auto [m0, m1] : item_ranges(dev, op, push.M, {row_bytes})) {
    push.m0 = m0;
    push.rows = m1 - m0;
    Dispatch d;
    d.shader = "linear_backward_weight";
    d.label = op;
    d.specialization = {wg};
    d.bindings = {{&dy, Use::Read}, {&x, Use::Read}, {&dw, Use::Write, m0 * row_bytes, push.rows * row_bytes}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.rows) * push.K, wg);
    record_dispatch(rec, d);
  }
}

}  // namespace vkalex::ops
