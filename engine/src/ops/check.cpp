// GPU-versus-CPU-reference checks of every op.
#include "vkalex/check.hpp"

#include <cmath>
#include <limits>

#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"
#include "vkalex/recorder.hpp"

namespace vkalex {

double relative_l2(std::span<const float> got, std::span<const float> want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    const double d = double(got[i]) - want[i];
    diff += d * d;
    ref += double(want[i]) * want[i];
  }
  if (ref == 0) return diff == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / ref);
}

std::vector<float> random_uniform(size_t count, uint64_t seed, float scale) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    // splitmix64 of (seed, i): independent of the standard library's distributions.
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + (i + 1) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double u = double(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
    out[i] = static_cast<float>((2.0 * u - 1.0) * scale);
  }
  return out;
}

namespace {

float nan_value() { return std::numeric_limits<float>::quiet_NaN(); }

HostTensor random_host(const Shape& s, uint64_t seed, float scale = 1.0f) {
  return HostTensor(s, random_uniform(s.numel(), seed, scale));
}

Tensor to_device(Context& ctx, const HostTensor& h) {
  Tensor t = ctx.tensor(h.shape);
  ctx.upload(t, h.data);
  return t;
}

CheckResult compare(const char* op, std::string case_name, uint64_t seed, const std::vector<float>& got,
                    const HostTensor& want) {
  CheckResult r;
  r.op = op;
  r.case_name = std::move(case_name);
  r.seed = seed;
  r.rel_l2 = relative_l2(got, want.data);
  for (size_t i = 0; i < got.size() && i < want.data.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want.data[i]);
    r.max_abs = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(r.max_abs, d);
  }
  return r;
}

// Records `op` after filling every output with NaN, runs it once, and waits.
template <typename Op>
void run_on_nan(Context& ctx, std::initializer_list<const Tensor*> outputs, Op&& op) {
  Recorder rec(ctx);
  rec.begin();
  for (const Tensor* t : outputs) rec.fill(*t, nan_value());
  op(rec);
  rec.end();
  rec.run();
}

std::string conv_name(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return "x" + x.str() + " w" + w.str() + " stride " + std::to_string(p.stride_h) + "x" +
         std::to_string(p.stride_w) + " pad " + std::to_string(p.pad_h) + "x" +
         std::to_string(p.pad_w) + " groups " + std::to_string(p.groups) + (p.relu ? " relu" : "");
}

}  // namespace

CheckResult check_conv2d(Context& ctx, const Shape& xs, const Shape& ws, bool with_bias,
                         const Conv2dParams& params, uint64_t seed) {
  const HostTensor x = random_host(xs, seed);
  // Weights scaled like a real layer's so that sums neither vanish nor explode.
  const float wscale = 1.0f / std::sqrt(float(std::max<uint64_t>(1, ws.numel() / ws[0])));
  const HostTensor w = random_host(ws, seed + 1, wscale);
  const HostTensor b = random_host(Shape{ws[0]}, seed + 2);
  const HostTensor want = cpu::conv2d(x, w, with_bias ? &b : nullptr, params);

  Tensor dx = to_device(ctx, x), dw = to_device(ctx, w), db = to_device(ctx, b);
  Tensor dy = ctx.tensor(want.shape);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::conv2d(rec, dx, dw, with_bias ? &db : nullptr, dy, params);
  });
  return compare("conv2d", conv_name(xs, ws, params) + (with_bias ? " bias" : ""), seed,
                 ctx.download(dy), want);
}

CheckResult check_relu(Context& ctx, const Shape& xs, uint64_t seed) {
  const HostTensor x = random_host(xs, seed);
  const HostTensor want = cpu::relu(x);
  Tensor dx = to_device(ctx, x), dy = ctx.tensor(xs);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::relu(rec, dx, dy);
    ops::relu(rec, dx, dx);  // in place, after the out-of-place read
  });
  CheckResult r = compare("relu", "x" + xs.str(), seed, ctx.download(dy), want);
  const CheckResult in_place = compare("relu", "", seed, ctx.download(dx), want);
  r.rel_l2 = std::max(r.rel_l2, in_place.rel_l2);
  r.max_abs = std::max(r.max_abs, in_place.max_abs);
  return r;
}

CheckResult check_lrn(Context& ctx, const Shape& xs, const LrnParams& params, uint64_t seed,
                      float input_scale) {
  const HostTensor x = random_host(xs, seed, input_scale);
  const HostTensor want = cpu::lrn(x, params);
  Tensor dx = to_device(ctx, x), dy = ctx.tensor(xs);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::lrn(rec, dx, dy, params);
  });
  return compare("lrn", "x" + xs.str() + " size " + std::to_string(params.size), seed,
                 ctx.download(dy), want);
}

CheckResult check_max_pool(Context& ctx, const Shape& xs, const MaxPoolParams& params, uint64_t seed) {
  const HostTensor x = random_host(xs, seed);
  const cpu::MaxPoolResult<float> want = cpu::max_pool(x, params);
  Tensor dx = to_device(ctx, x), dy = ctx.tensor(want.y.shape);
  Tensor da = ctx.tensor(want.y.shape, DType::U32);
  run_on_nan(ctx, {&dy, &da}, [&](Recorder& rec) {
    ops::max_pool(rec, dx, dy, &da, params);
  });
  CheckResult r = compare("max_pool",
                          "x" + xs.str() + " kernel " + std::to_string(params.kernel_h) + "x" +
                              std::to_string(params.kernel_w) + " stride " +
                              std::to_string(params.stride_h) + "x" + std::to_string(params.stride_w) +
                              " pad " + std::to_string(params.pad_h) + "x" + std::to_string(params.pad_w),
                          seed, ctx.download(dy), want.y);
  r.exact_match = ctx.download_u32(da) == want.argmax;
  return r;
}

CheckResult check_linear(Context& ctx, uint32_t batch, uint32_t in, uint32_t out, bool with_bias,
                         bool relu, uint64_t seed) {
  const HostTensor x = random_host(Shape{batch, in}, seed);
  const HostTensor w = random_host(Shape{out, in}, seed + 1, 1.0f / std::sqrt(float(in)));
  const HostTensor b = random_host(Shape{out}, seed + 2);
  const HostTensor want = cpu::linear(x, w, with_bias ? &b : nullptr, relu);
  Tensor dx = to_device(ctx, x), dw = to_device(ctx, w), db = to_device(ctx, b);
  Tensor dy = ctx.tensor(want.shape);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::linear(rec, dx, dw, with_bias ? &db : nullptr, dy, relu);
  });
  return compare("linear",
                 std::to_string(batch) + "x" + std::to_string(in) + " -> " + std::to_string(out) +
                     (with_bias ? " bias" : "") + (relu ? " relu" : ""),
                 seed, ctx.download(dy), want);
}

CheckResult check_softmax(Context& ctx, const Shape& xs, uint64_t seed, float input_scale) {
  const HostTensor x = random_host(xs, seed, input_scale);
  const HostTensor want = cpu::softmax(x);
  Tensor dx = to_device(ctx, x), dy = ctx.tensor(xs);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::softmax(rec, dx, dy);
  });
  return compare("softmax", "x" + xs.str(), seed, ctx.download(dy), want);
}

CheckResult check_dropout_inference(Context& ctx, const Shape& xs, uint64_t seed) {
  const HostTensor x = random_host(xs, seed);
  const HostTensor want = cpu::dropout_inference(x);
  Tensor dx = to_device(ctx, x), dy = ctx.tensor(xs);
  Tensor same, copied;
  size_t dispatches = 0;
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    same = ops::dropout_inference(rec, dx);
    copied = ops::dropout_inference(rec, dx, &dy);
    dispatches = rec.dispatch_count();
  });
  CheckResult r = compare("dropout", "x" + xs.str() + " (inference)", seed, ctx.download(dy), want);
  // Without an output, the input itself must come back: no copy, no dispatch.
  r.exact_match = same.aliases(dx) && same.offset() == dx.offset() && copied.aliases(dy) &&
                  dispatches == 0;
  const CheckResult direct = compare("dropout", "", seed, ctx.download(same), want);
  r.rel_l2 = std::max(r.rel_l2, direct.rel_l2);
  return r;
}

std::vector<CheckResult> self_check(Context& ctx, uint64_t seed) {
  std::vector<CheckResult> out;
  Conv2dParams conv1{4, 4, 0, 0, 1, true};
  out.push_back(check_conv2d(ctx, Shape{1, 3, 227, 227}, Shape{96, 3, 11, 11}, true, conv1, seed));
  Conv2dParams conv2{1, 1, 2, 2, 2, true};
  out.push_back(check_conv2d(ctx, Shape{1, 96, 27, 27}, Shape{256, 48, 5, 5}, true, conv2, seed + 10));
  Conv2dParams conv4{1, 1, 1, 1, 2, true};
  out.push_back(check_conv2d(ctx, Shape{1, 384, 13, 13}, Shape{384, 192, 3, 3}, true, conv4, seed + 20));
  out.push_back(check_relu(ctx, Shape{1, 96, 55, 55}, seed + 30));
  out.push_back(check_lrn(ctx, Shape{1, 96, 55, 55}, LrnParams{}, seed + 40, 10.0f));
  out.push_back(check_max_pool(ctx, Shape{1, 96, 55, 55}, MaxPoolParams{}, seed + 50));
  out.push_back(check_linear(ctx, 1, 9216, 4096, true, true, seed + 60));
  out.push_back(check_linear(ctx, 1, 4096, 1000, true, false, seed + 70));
  out.push_back(check_softmax(ctx, Shape{1, 1000}, seed + 80));
  out.push_back(check_dropout_inference(ctx, Shape{1, 4096}, seed + 90));
  return out;
}

}  // namespace vkalex
