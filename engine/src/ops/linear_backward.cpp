// Host side of linear_backward_data.comp, linear_backward_weight.comp and their gemm.comp
// variants.
#include <algorithm>

#include <string>

#include "ops/gemm.hpp"

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
  check_trip_count(dev, op, uint64_t(push.M) + push.M / 32 + 1, "the sum over output features");
  const uint64_t row_bytes = uint64_t(push.K) * sizeof(float);
  bool first = true;
  // Weights beyond one binding (fc6) are taken in blocks of rows, each adding to dx.
  const char* shader = kernel_shader(dev, op, dx.shape(), w.shape());
  const bool gemm = is_gemm(shader);
  for (auto [m0, m1] : item_ranges(dev, op, push.M, {row_bytes})) {
    if (gemm) {
      // dx[n, k] += sum over m in the block of dy[n, m] * w[m, k].
      Gemm g;
      g.shader = shader;
      g.a = &dy;
      g.b = &w;
      g.c = &dx;
      g.b_bytes = m0 * row_bytes;
      g.b_size = (m1 - m0) * row_bytes;
      g.M = push.N, g.N = push.K, g.K = m1 - m0;
      g.a_off = m0;
      g.a_ms = push.M, g.a_ks = 1, g.b_ks = push.K, g.b_ns = 1, g.c_ms = push.K, g.c_ns = 1;
      g.accumulate = !first;
      record_gemm(rec, op, g);
      first = false;
      continue;
    }
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
    uint32_t N, K, M, m0, rows, accumulate;
  } push{0, x.shape()[1], ys[1], 0, 0, 0};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  const uint64_t row_bytes = uint64_t(push.K) * sizeof(float);
  // Every invocation loops over the images of its dispatch: at most the loop budget's worth
  // per dispatch; later dispatches add to the sums.
  const uint32_t max_images = std::max<uint32_t>(1, (loop_budget(dev) - 2) / 33 * 32);
  const auto image_ranges = item_ranges(dev, op, ys[0], {ys[1] * sizeof(float), row_bytes}, max_images);
  const char* shader = kernel_shader(dev, op, x.shape(), dw.shape());
  const bool gemm = is_gemm(shader);
  for (auto [m0, m1] : item_ranges(dev, op, push.M, {row_bytes})) {
    push.m0 = m0;
    push.rows = m1 - m0;
    bool first = true;
    for (auto [n0, n1] : image_ranges) {
      if (gemm) {
        // dw[m, k] (+)= sum over images n of dy[n, m] * x[n, k], rows m0.. of dw.
        Gemm g;
        g.shader = shader;
      g.shader = shader;
        g.a = &dy;
        g.b = &x;
        g.c = &dw;
        g.a_bytes = n0 * ys[1] * sizeof(float);
        g.a_size = uint64_t(n1 - n0) * ys[1] * sizeof(float);
        g.b_bytes = n0 * row_bytes;
        g.b_size = (n1 - n0) * row_bytes;
        g.c_bytes = m0 * row_bytes;
        g.c_size = (m1 - m0) * row_bytes;
        g.M = m1 - m0, g.N = push.K, g.K = n1 - n0;
        g.a_off = m0;
        g.a_ms = 1, g.a_ks = ys[1], g.b_ks = push.K, g.b_ns = 1, g.c_ms = push.K, g.c_ns = 1;
        g.accumulate = !first;
        record_gemm(rec, op, g);
        first = false;
        continue;
      }
      push.N = n1 - n0;
      push.accumulate = first ? 0u : 1u;
      Dispatch d;
      d.shader = "linear_backward_weight";
      d.label = op;
      d.specialization = {wg};
      d.bindings = {{&dy, Use::Read, n0 * ys[1] * sizeof(float), uint64_t(push.N) * ys[1] * sizeof(float)},
                    {&x, Use::Read, n0 * row_bytes, push.N * row_bytes},
                    {&dw, first ? Use::Write : Use::ReadWrite, m0 * row_bytes, push.rows * row_bytes}};
      d.push = &push;
      d.push_bytes = sizeof push;
      d.groups = grid_for_threads(dev, uint64_t(push.rows) * push.K, wg);
      record_dispatch(rec, d);
      first = false;
    }
  }
}

}  // namespace vkalex::ops
