// Host side of linear_forward.comp, linear_forward_vec4.comp and gemm.comp (the registry
// chooses).
#include <algorithm>
#include <string>

#include "ops/gemm.hpp"

namespace vkalex::ops {

void linear(Recorder& rec, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y,
            bool relu) {
  using namespace detail;
  const char* op = "linear";
  const DType ft = float_type(op, x);
  check_tensor(op, "input", x, x.shape(), ft);
  check_tensor(op, "weight", w, w.shape(), ft);
  if (bias) check_tensor(op, "bias", *bias, bias->shape(), ft);
  const Shape out = linear_output_shape(x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
  check_tensor(op, "output", y, out, ft);
  check_no_alias(op, x, y);
  check_no_alias(op, w, y);

  struct {
    uint32_t N, K, M, m0, rows, flags;
  } push{out[0], x.shape()[1], out[1], 0, 0, (bias ? 1u : 0u) | (relu ? 2u : 0u)};
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  check_trip_count(dev, op, uint64_t(push.K) + push.K / 32 + 1, "the sum over input features");
  const char* shader = kernel_shader(dev, op, x.shape(), w.shape());
  // linear_forward_vec4: 4 output features x up to 4 images per invocation.
  const bool vec4 = std::string(shader) == "linear_forward_vec4";
  const uint32_t rn = std::min<uint32_t>(4, push.N);
  const uint64_t row_bytes = uint64_t(push.K) * dtype_size(ft);
  // fc6's 9216 x 4096 weights (151 MB) exceed lavapipe's 128 MiB binding limit: bind and
  // dispatch them in blocks of output rows.
  for (auto [m0, m1] : item_ranges(dev, op, push.M, {row_bytes})) {
    if (is_gemm(shader)) {
      // y[n, m] = sum over k of x[n, k] * w[m, k]: rows of x, columns m0.. of y.
      Gemm g;
      g.shader = shader;
      g.a = &x;
      g.b = &w;
      g.c = &y;
      g.bias = bias;
      g.b_bytes = m0 * row_bytes;
      g.b_size = (m1 - m0) * row_bytes;
      g.M = push.N, g.N = m1 - m0, g.K = push.K;
      g.c_off = m0, g.bias_off = m0;
      g.a_ms = push.K, g.a_ks = 1, g.b_ks = 1, g.b_ns = push.K, g.c_ms = push.M, g.c_ns = 1;
      g.bias_per_n = bias != nullptr;
      g.relu = relu;
      record_gemm(rec, op, g);
      continue;
    }
    push.m0 = m0;
    push.rows = m1 - m0;
    Dispatch d;
    d.shader = shader;
    d.label = op;
    d.specialization = vec4 ? std::vector<uint32_t>{wg, rn} : std::vector<uint32_t>{wg};
    d.bindings = {{&x, Use::Read},
                  {&w, Use::Read, m0 * row_bytes, push.rows * row_bytes},
                  {bias ? bias : &x, bias ? Use::Read : Use::Unused},
                  {&y, Use::Write}};
    d.push = &push;
    d.push_bytes = sizeof push;
    const uint64_t threads = vec4 ? uint64_t((push.N + rn - 1) / rn) * ((push.rows + 3) / 4) : uint64_t(push.N) * push.rows;
    d.groups = grid_for_threads(dev, threads, wg);
    record_dispatch(rec, d);
  }
}

}  // namespace vkalex::ops
