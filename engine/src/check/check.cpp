// GPU-versus-CPU-reference checks of every op.
#include "vkalex/check.hpp"

#include <cmath>
#include <cstring>
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

namespace {

float nan_value() { return std::numeric_limits<float>::quiet_NaN(); }

// Random values; for f16 storage rounded to half, so that the reference sees exactly the
// values the kernel reads and the check measures the kernel, not the rounding of its inputs.
HostTensor random_host(const Shape& s, uint64_t seed, float scale = 1.0f, DType storage = DType::F32) {
  HostTensor h(s, random_uniform(s.numel(), seed, scale));
  if (storage == DType::F16)
    for (float& v : h.data) v = half_to_float(float_to_half(v));
  return h;
}

Tensor to_device(Context& ctx, const HostTensor& h, DType storage = DType::F32) {
  Tensor t = ctx.tensor(h.shape, storage);
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
  for (const Tensor* t : outputs) {
    if (t->dtype() == DType::F16) {
      ctx.fill(*t, nan_value());  // any element count, unlike the recorder's fill
    } else {
      rec.fill(*t, nan_value());
    }
  }
  op(rec);
  rec.end();
  rec.run();
}

std::string storage_note(DType storage) { return storage == DType::F16 ? " f16" : ""; }

// The result of a forward check with `storage`: f16 outputs are rounded to half.
CheckResult for_storage(CheckResult r, DType storage) {
  if (storage == DType::F16) r.tolerance = 1e-3;
  return r;
}

std::string conv_name(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return "x" + x.str() + " w" + w.str() + " stride " + std::to_string(p.stride_h) + "x" +
         std::to_string(p.stride_w) + " pad " + std::to_string(p.pad_h) + "x" +
         std::to_string(p.pad_w) + " groups " + std::to_string(p.groups) + (p.relu ? " relu" : "");
}

}  // namespace

CheckResult check_conv2d(Context& ctx, const Shape& xs, const Shape& ws, bool with_bias,
                         const Conv2dParams& params, uint64_t seed, DType storage) {
  const HostTensor x = random_host(xs, seed, 1.0f, storage);
  // Weights scaled like a real layer's so that sums neither vanish nor explode.
  const float wscale = 1.0f / std::sqrt(float(std::max<uint64_t>(1, ws.numel() / ws[0])));
  const HostTensor w = random_host(ws, seed + 1, wscale, storage);
  const HostTensor b = random_host(Shape{ws[0]}, seed + 2, 1.0f, storage);
  const HostTensor want = cpu::conv2d(x, w, with_bias ? &b : nullptr, params);

  Tensor dx = to_device(ctx, x, storage), dw = to_device(ctx, w, storage), db = to_device(ctx, b, storage);
  Tensor dy = ctx.tensor(want.shape, storage);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::conv2d(rec, dx, dw, with_bias ? &db : nullptr, dy, params);
  });
  return for_storage(compare("conv2d", conv_name(xs, ws, params) + (with_bias ? " bias" : "") + storage_note(storage),
                             seed, ctx.download(dy), want),
                     storage);
}

CheckResult check_relu(Context& ctx, const Shape& xs, uint64_t seed, DType storage) {
  const HostTensor x = random_host(xs, seed, 1.0f, storage);
  const HostTensor want = cpu::relu(x);
  Tensor dx = to_device(ctx, x, storage), dy = ctx.tensor(xs, storage);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::relu(rec, dx, dy);
    ops::relu(rec, dx, dx);  // in place, after the out-of-place read
  });
  CheckResult r = compare("relu", "x" + xs.str() + storage_note(storage), seed, ctx.download(dy), want);
  const CheckResult in_place = compare("relu", "", seed, ctx.download(dx), want);
  r.rel_l2 = std::max(r.rel_l2, in_place.rel_l2);
  r.max_abs = std::max(r.max_abs, in_place.max_abs);
  return r;
}

CheckResult check_lrn(Context& ctx, const Shape& xs, const LrnParams& params, uint64_t seed,
                      float input_scale, DType storage) {
  const HostTensor x = random_host(xs, seed, input_scale, storage);
  const HostTensor want = cpu::lrn(x, params);
  Tensor dx = to_device(ctx, x, storage), dy = ctx.tensor(xs, storage);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::lrn(rec, dx, dy, params);
  });
  return for_storage(compare("lrn", "x" + xs.str() + " size " + std::to_string(params.size) + storage_note(storage),
                             seed, ctx.download(dy), want),
                     storage);
}

// " kernel 3x3 stride 2x2 pad 1x1" (and the end padding, ceil_mode where set).
std::string window_note(const MaxPoolParams& p) {
  std::string s = " kernel " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " stride " +
                  std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) + " pad " + std::to_string(p.pad_h) + "x" +
                  std::to_string(p.pad_w);
  if (p.pad_end_h() != p.pad_h || p.pad_end_w() != p.pad_w) {
    s += " end pad " + std::to_string(p.pad_end_h()) + "x" + std::to_string(p.pad_end_w());
  }
  return s + (p.ceil_mode ? " ceil" : "");
}

CheckResult check_max_pool(Context& ctx, const Shape& xs, const MaxPoolParams& params, uint64_t seed,
                           DType storage) {
  const HostTensor x = random_host(xs, seed, 1.0f, storage);
  const cpu::MaxPoolResult<float> want = cpu::max_pool(x, params);
  Tensor dx = to_device(ctx, x, storage), dy = ctx.tensor(want.y.shape, storage);
  Tensor da = ctx.tensor(want.y.shape, DType::U32);
  run_on_nan(ctx, {&dy, &da}, [&](Recorder& rec) {
    ops::max_pool(rec, dx, dy, &da, params);
  });
  CheckResult r = compare("max_pool", "x" + xs.str() + window_note(params) + storage_note(storage), seed, ctx.download(dy), want.y);
  r.exact_match = ctx.download_u32(da) == want.argmax;
  return r;
}

CheckResult check_avg_pool(Context& ctx, const Shape& xs, const MaxPoolParams& params, bool count_include_pad,
                           uint64_t seed, DType storage) {
  const HostTensor x = random_host(xs, seed, 1.0f, storage);
  const HostTensor want = cpu::avg_pool(x, params, count_include_pad);
  Tensor dx = to_device(ctx, x, storage), dy = ctx.tensor(want.shape, storage);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) { ops::avg_pool(rec, dx, dy, params, count_include_pad); });
  return compare("avg_pool",
                 "x" + xs.str() + window_note(params) + (count_include_pad ? " counting padding" : "") + storage_note(storage),
                 seed, ctx.download(dy), want);
}

CheckResult check_linear(Context& ctx, uint32_t batch, uint32_t in, uint32_t out, bool with_bias,
                         bool relu, uint64_t seed, DType storage) {
  const HostTensor x = random_host(Shape{batch, in}, seed, 1.0f, storage);
  const HostTensor w = random_host(Shape{out, in}, seed + 1, 1.0f / std::sqrt(float(in)), storage);
  const HostTensor b = random_host(Shape{out}, seed + 2, 1.0f, storage);
  const HostTensor want = cpu::linear(x, w, with_bias ? &b : nullptr, relu);
  Tensor dx = to_device(ctx, x, storage), dw = to_device(ctx, w, storage), db = to_device(ctx, b, storage);
  Tensor dy = ctx.tensor(want.shape, storage);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::linear(rec, dx, dw, with_bias ? &db : nullptr, dy, relu);
  });
  return for_storage(compare("linear",
                             std::to_string(batch) + "x" + std::to_string(in) + " -> " + std::to_string(out) +
                                 (with_bias ? " bias" : "") + (relu ? " relu" : "") + storage_note(storage),
                             seed, ctx.download(dy), want),
                     storage);
}

CheckResult check_softmax(Context& ctx, const Shape& xs, uint64_t seed, float input_scale, DType storage, uint32_t length,
                          uint32_t inner) {
  const HostTensor x = random_host(xs, seed, input_scale, storage);
  const HostTensor want = cpu::softmax(x, length, inner);
  Tensor dx = to_device(ctx, x, storage), dy = ctx.tensor(xs, storage);
  run_on_nan(ctx, {&dy}, [&](Recorder& rec) {
    ops::softmax(rec, dx, dy, length, inner);
  });
  const std::string groups = length || inner != 1 ? " groups of " + std::to_string(length) + " every " + std::to_string(inner) : "";
  return for_storage(compare("softmax", "x" + xs.str() + groups + storage_note(storage), seed, ctx.download(dy), want), storage);
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

namespace {

std::vector<uint32_t> as_words(const StepParams& p) {
  std::vector<uint32_t> w(8);
  std::memcpy(w.data(), &p, sizeof p);
  return w;
}

}  // namespace

std::vector<CheckResult> check_conv2d_backward(Context& ctx, const Shape& xs, const Shape& ws,
                                               const Conv2dParams& params, uint64_t seed) {
  Conv2dParams p = params;
  p.relu = false;
  const Shape ys = conv2d_output_shape(xs, ws, nullptr, p);
  const HostTensor x = random_host(xs, seed);
  const HostTensor w = random_host(ws, seed + 1, 1.0f / std::sqrt(float(std::max<uint64_t>(1, ws.numel() / ws[0]))));
  const HostTensor dy = random_host(ys, seed + 2);
  Tensor gx = to_device(ctx, x), gw = to_device(ctx, w), gdy = to_device(ctx, dy);
  Tensor gdx = ctx.tensor(xs), gdw = ctx.tensor(ws), gdb = ctx.tensor(Shape{ws[0]});
  run_on_nan(ctx, {&gdx, &gdw, &gdb}, [&](Recorder& rec) {
    ops::conv2d_backward_data(rec, gdy, gw, gdx, p);
    ops::conv2d_backward_weight(rec, gdy, gx, gdw, p);
    ops::bias_backward(rec, gdy, gdb);
  });
  const std::string name = conv_name(xs, ws, p);
  return {compare("conv2d dx", name, seed, ctx.download(gdx), cpu::conv2d_backward_data(dy, w, xs, p)),
          compare("conv2d dw", name, seed, ctx.download(gdw), cpu::conv2d_backward_weight(dy, x, ws, p)),
          compare("conv2d db", name, seed, ctx.download(gdb), cpu::bias_backward(dy))};
}

std::vector<CheckResult> check_linear_backward(Context& ctx, uint32_t batch, uint32_t in, uint32_t out, uint64_t seed) {
  const HostTensor x = random_host(Shape{batch, in}, seed);
  const HostTensor w = random_host(Shape{out, in}, seed + 1, 1.0f / std::sqrt(float(in)));
  const HostTensor dy = random_host(Shape{batch, out}, seed + 2);
  Tensor gx = to_device(ctx, x), gw = to_device(ctx, w), gdy = to_device(ctx, dy);
  Tensor gdx = ctx.tensor(x.shape), gdw = ctx.tensor(w.shape), gdb = ctx.tensor(Shape{out});
  run_on_nan(ctx, {&gdx, &gdw, &gdb}, [&](Recorder& rec) {
    ops::linear_backward_data(rec, gdy, gw, gdx);
    ops::linear_backward_weight(rec, gdy, gx, gdw);
    ops::bias_backward(rec, gdy, gdb);
  });
  const std::string name = std::to_string(batch) + "x" + std::to_string(in) + " -> " + std::to_string(out);
  return {compare("linear dx", name, seed, ctx.download(gdx), cpu::linear_backward_data(dy, w)),
          compare("linear dw", name, seed, ctx.download(gdw), cpu::linear_backward_weight(dy, x)),
          compare("linear db", name, seed, ctx.download(gdb), cpu::bias_backward(dy))};
}

CheckResult check_relu_backward(Context& ctx, const Shape& xs, uint64_t seed) {
  const HostTensor y = cpu::relu(random_host(xs, seed));
  const HostTensor dy = random_host(xs, seed + 1);
  Tensor gy = to_device(ctx, y), gdy = to_device(ctx, dy), gdx = ctx.tensor(xs);
  run_on_nan(ctx, {&gdx}, [&](Recorder& rec) {
    ops::relu_backward(rec, gdy, gy, gdx);
    ops::relu_backward(rec, gdy, gy, gdy);  // in place, after the out-of-place read
  });
  const HostTensor want = cpu::relu_backward(dy, y);
  CheckResult r = compare("relu dx", "x" + xs.str(), seed, ctx.download(gdx), want);
  r.rel_l2 = std::max(r.rel_l2, relative_l2(ctx.download(gdy), want.data));
  return r;
}

CheckResult check_lrn_backward(Context& ctx, const Shape& xs, const LrnParams& params, uint64_t seed,
                               float input_scale, bool relu_input) {
  const HostTensor x = random_host(xs, seed, input_scale);
  const HostTensor dy = random_host(xs, seed + 1);
  Tensor gx = to_device(ctx, x), gdy = to_device(ctx, dy), gdx = ctx.tensor(xs);
  run_on_nan(ctx, {&gdx}, [&](Recorder& rec) { ops::lrn_backward(rec, gdy, gx, gdx, params, relu_input); });
  const HostTensor want = cpu::lrn_backward(dy, x, params);
  return compare("lrn dx", "x" + xs.str() + " size " + std::to_string(params.size) + (relu_input ? " relu" : ""), seed,
                 ctx.download(gdx), relu_input ? cpu::relu_backward(want, x) : want);
}

CheckResult check_max_pool_backward(Context& ctx, const Shape& xs, const MaxPoolParams& params, uint64_t seed) {
  const HostTensor x = random_host(xs, seed);
  const auto fwd = cpu::max_pool(x, params);
  const HostTensor dy = random_host(fwd.y.shape, seed + 1);
  Tensor gdy = to_device(ctx, dy), ga = ctx.tensor(fwd.y.shape, DType::U32), gdx = ctx.tensor(xs);
  ctx.upload(ga, fwd.argmax);
  run_on_nan(ctx, {&gdx}, [&](Recorder& rec) { ops::max_pool_backward(rec, gdy, ga, gdx, params); });
  return compare("max_pool dx", "x" + xs.str() + " kernel " + std::to_string(params.kernel_h) + " stride " +
                                    std::to_string(params.stride_h) + " pad " + std::to_string(params.pad_h),
                 seed, ctx.download(gdx), cpu::max_pool_backward(dy, fwd.argmax, xs));
}

std::vector<CheckResult> check_dropout(Context& ctx, const Shape& xs, float p, uint32_t step, uint64_t seed) {
  const HostTensor x = random_host(xs, seed), dy = random_host(xs, seed + 1);
  StepParams sp;
  sp.step = step;
  sp.seed = static_cast<uint32_t>(seed * 2654435761u);
  Tensor params = ctx.tensor(Shape{8}, DType::U32);
  ctx.upload(params, as_words(sp));
  Tensor gx = to_device(ctx, x), gdy = to_device(ctx, dy), gy = ctx.tensor(xs), gdx = ctx.tensor(xs);
  run_on_nan(ctx, {&gy, &gdx}, [&](Recorder& rec) {
    ops::dropout(rec, gx, gy, p, params);
    ops::dropout_backward(rec, gdy, gdx, p, params);
  });
  const HostTensor want_y = cpu::dropout(x, p, sp.seed, sp.step);
  const std::vector<float> y = ctx.download(gy);
  const std::string name = "x" + xs.str() + " p " + std::to_string(p);
  CheckResult f = compare("dropout", name, seed, y, want_y);
  for (size_t i = 0; i < y.size(); ++i) f.exact_match = f.exact_match && ((y[i] == 0) == (want_y.data[i] == 0));
  return {f, compare("dropout dx", name, seed, ctx.download(gdx), cpu::dropout_backward(dy, p, sp.seed, sp.step))};
}

std::vector<CheckResult> check_softmax_cross_entropy(Context& ctx, uint32_t batch, uint32_t classes, uint64_t seed) {
  const HostTensor logits = random_host(Shape{batch, classes}, seed, 5.0f);
  std::vector<uint32_t> labels(batch);
  const auto r = random_uniform(batch, seed + 1);
  for (uint32_t i = 0; i < batch; ++i) labels[i] = std::min(classes - 1, uint32_t((r[i] + 1) / 2 * classes));
  // Make some rows correct: their label is the largest logit.
  HostTensor l2 = logits;
  for (uint32_t i = 0; i < batch; i += 2) l2.data[i * classes + labels[i]] = 20.0f;
  Tensor gl = to_device(ctx, l2), glab = ctx.tensor(Shape{batch}, DType::U32);
  ctx.upload(glab, labels);
  Tensor gdl = ctx.tensor(l2.shape), gstats = ctx.tensor(Shape{batch, 2});
  run_on_nan(ctx, {&gdl, &gstats}, [&](Recorder& rec) { ops::softmax_cross_entropy(rec, gl, glab, gdl, gstats); });
  const auto want = cpu::softmax_cross_entropy(l2, labels);
  const std::string name = std::to_string(batch) + "x" + std::to_string(classes);
  CheckResult d = compare("softmax_xent dlogits", name, seed, ctx.download(gdl), want.dlogits);
  const std::vector<float> stats = ctx.download(gstats);
  double loss = 0;
  uint32_t correct = 0;
  for (uint32_t i = 0; i < batch; ++i) {
    loss += stats[2 * i] / double(batch);
    correct += stats[2 * i + 1] == 1.0f;
  }
  CheckResult l;
  l.op = "softmax_xent loss";
  l.case_name = name;
  l.seed = seed;
  l.max_abs = std::fabs(loss - want.loss);
  l.rel_l2 = std::isfinite(loss) ? l.max_abs / std::max(1e-30, std::fabs(want.loss)) : INFINITY;
  l.exact_match = correct == want.correct;
  return {d, l};
}

std::vector<CheckResult> check_sgd(Context& ctx, uint32_t count, const SgdParams& params, uint64_t seed) {
  HostTensor w = random_host(Shape{count}, seed), v = random_host(Shape{count}, seed + 1, 0.1f);
  const HostTensor g = random_host(Shape{count}, seed + 2);
  StepParams sp;
  sp.lr = params.lr;
  sp.momentum = params.momentum;
  sp.weight_decay = params.weight_decay;
  Tensor sparams = ctx.tensor(Shape{8}, DType::U32);
  ctx.upload(sparams, as_words(sp));
  Tensor gw = to_device(ctx, w), gv = to_device(ctx, v), gg = to_device(ctx, g);
  run_on_nan(ctx, {}, [&](Recorder& rec) { ops::sgd_update(rec, gw, gv, gg, sparams); });
  cpu::sgd_update(w, v, g, params);
  const std::string name = std::to_string(count) + " weights";
  return {compare("sgd w", name, seed, ctx.download(gw), w), compare("sgd v", name, seed, ctx.download(gv), v)};
}

namespace {
// Collects results and shows each to `progress` as it comes.
struct Results {
  explicit Results(const Progress& p) : progress(p) {}
  void one(CheckResult r) {
    if (progress) progress(r);
    out.push_back(std::move(r));
  }
  void add(const std::vector<CheckResult>& v) {
    for (const auto& r : v) one(r);
  }
  const Progress& progress;
  std::vector<CheckResult> out;
};
}  // namespace

std::vector<CheckResult> check_fashion_backward(Context& ctx, uint32_t n, uint64_t seed, const Progress& progress) {
  Results r(progress);
  auto add = [&](const std::vector<CheckResult>& v) { r.add(v); };
  add(check_conv2d_backward(ctx, Shape{n, 1, 28, 28}, Shape{24, 1, 5, 5}, Conv2dParams{1, 1, 2, 2, 1}, seed));
  add(check_conv2d_backward(ctx, Shape{n, 24, 13, 13}, Shape{48, 12, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, seed + 1));
  add(check_conv2d_backward(ctx, Shape{n, 48, 6, 6}, Shape{64, 48, 3, 3}, Conv2dParams{1, 1, 1, 1, 1}, seed + 2));
  add(check_conv2d_backward(ctx, Shape{n, 64, 6, 6}, Shape{64, 32, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, seed + 3));
  add(check_conv2d_backward(ctx, Shape{n, 64, 6, 6}, Shape{48, 32, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, seed + 4));
  add(check_linear_backward(ctx, n, 192, 256, seed + 5));
  add(check_linear_backward(ctx, n, 256, 256, seed + 6));
  add(check_linear_backward(ctx, n, 256, 10, seed + 7));
  r.one(check_relu_backward(ctx, Shape{n, 24, 28, 28}, seed + 8));
  r.one(check_lrn_backward(ctx, Shape{n, 24, 28, 28}, LrnParams{}, seed + 9, 10.0f));
  r.one(check_max_pool_backward(ctx, Shape{n, 24, 28, 28}, MaxPoolParams{}, seed + 10));
  add(check_dropout(ctx, Shape{n, 256}, 0.5f, 1, seed + 11));
  add(check_softmax_cross_entropy(ctx, n, 10, seed + 12));
  return std::move(r.out);
}

std::vector<CheckResult> check_alexnet2012_backward(Context& ctx, uint32_t n, uint64_t seed, const Progress& progress) {
  Results r(progress);
  auto add = [&](const std::vector<CheckResult>& v) { r.add(v); };
  add(check_conv2d_backward(ctx, Shape{n, 3, 227, 227}, Shape{96, 3, 11, 11}, Conv2dParams{4, 4, 0, 0, 1}, seed));
  add(check_conv2d_backward(ctx, Shape{n, 96, 27, 27}, Shape{256, 48, 5, 5}, Conv2dParams{1, 1, 2, 2, 2}, seed + 1));
  add(check_conv2d_backward(ctx, Shape{n, 256, 13, 13}, Shape{384, 256, 3, 3}, Conv2dParams{1, 1, 1, 1, 1}, seed + 2));
  add(check_conv2d_backward(ctx, Shape{n, 384, 13, 13}, Shape{384, 192, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, seed + 3));
  add(check_conv2d_backward(ctx, Shape{n, 384, 13, 13}, Shape{256, 192, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, seed + 4));
  add(check_linear_backward(ctx, n, 9216, 4096, seed + 5));
  add(check_linear_backward(ctx, n, 4096, 4096, seed + 6));
  add(check_linear_backward(ctx, n, 4096, 1000, seed + 7));
  r.one(check_relu_backward(ctx, Shape{n, 96, 55, 55}, seed + 8));
  r.one(check_lrn_backward(ctx, Shape{n, 96, 55, 55}, LrnParams{}, seed + 9, 10.0f));
  r.one(check_max_pool_backward(ctx, Shape{n, 96, 55, 55}, MaxPoolParams{}, seed + 10));
  r.one(check_lrn_backward(ctx, Shape{n, 256, 27, 27}, LrnParams{}, seed + 11, 10.0f));
  r.one(check_max_pool_backward(ctx, Shape{n, 256, 27, 27}, MaxPoolParams{}, seed + 12));
  r.one(check_max_pool_backward(ctx, Shape{n, 256, 13, 13}, MaxPoolParams{}, seed + 13));
  add(check_dropout(ctx, Shape{n, 4096}, 0.5f, 1, seed + 14));
  add(check_softmax_cross_entropy(ctx, n, 1000, seed + 15));
  return std::move(r.out);
}

std::vector<CheckResult> self_check(Context& ctx, uint64_t seed, bool full, const Progress& progress) {
  Results results(progress);
  auto one = [&](CheckResult r) { results.one(std::move(r)); };
  auto add = [&](const std::vector<CheckResult>& v) { results.add(v); };
  Conv2dParams conv1{4, 4, 0, 0, 1, true};
  one(check_conv2d(ctx, Shape{1, 3, 227, 227}, Shape{96, 3, 11, 11}, true, conv1, seed));
  Conv2dParams conv2{1, 1, 2, 2, 2, true};
  one(check_conv2d(ctx, Shape{1, 96, 27, 27}, Shape{256, 48, 5, 5}, true, conv2, seed + 10));
  Conv2dParams conv4{1, 1, 1, 1, 2, true};
  one(check_conv2d(ctx, Shape{1, 384, 13, 13}, Shape{384, 192, 3, 3}, true, conv4, seed + 20));
  one(check_relu(ctx, Shape{1, 96, 55, 55}, seed + 30));
  one(check_lrn(ctx, Shape{1, 96, 55, 55}, LrnParams{}, seed + 40, 10.0f));
  one(check_max_pool(ctx, Shape{1, 96, 55, 55}, MaxPoolParams{}, seed + 50));
  one(check_avg_pool(ctx, Shape{1, 256, 13, 13}, MaxPoolParams{3, 3, 2, 2, 1, 1, 0, -1, true}, true, seed + 51));
  one(check_linear(ctx, 1, 9216, 4096, true, true, seed + 60));
  one(check_linear(ctx, 1, 4096, 1000, true, false, seed + 70));
  one(check_softmax(ctx, Shape{1, 1000}, seed + 80));
  one(check_dropout_inference(ctx, Shape{1, 4096}, seed + 90));
  if (ctx.device().storage_buffer_16bit) {  // fp16 storage: the same ops on f16 tensors
    const DType f16 = DType::F16;
    one(check_conv2d(ctx, Shape{1, 3, 227, 227}, Shape{96, 3, 11, 11}, true, conv1, seed + 91, f16));
    one(check_conv2d(ctx, Shape{1, 96, 27, 27}, Shape{256, 48, 5, 5}, true, conv2, seed + 92, f16));
    one(check_lrn(ctx, Shape{1, 96, 55, 55}, LrnParams{}, seed + 93, 10.0f, f16));
    one(check_max_pool(ctx, Shape{1, 96, 55, 55}, MaxPoolParams{}, seed + 94, f16));
    one(check_linear(ctx, 1, 9216, 4096, true, true, seed + 95, f16));
    one(check_softmax(ctx, Shape{1, 1000}, seed + 96, 10.0f, f16));
  }
  // Training ops, on the shapes of AlexNet's second block and classifier.
  conv2.relu = false;
  add(check_conv2d_backward(ctx, Shape{1, 96, 27, 27}, Shape{256, 48, 5, 5}, conv2, seed + 100));
  one(check_relu_backward(ctx, Shape{1, 256, 27, 27}, seed + 110));
  one(check_lrn_backward(ctx, Shape{1, 256, 27, 27}, LrnParams{}, seed + 120, 10.0f));
  one(check_max_pool_backward(ctx, Shape{1, 256, 27, 27}, MaxPoolParams{}, seed + 130));
  add(check_linear_backward(ctx, 2, 4096, 1000, seed + 140));
  add(check_dropout(ctx, Shape{2, 4096}, 0.5f, 1, seed + 150));
  add(check_softmax_cross_entropy(ctx, 2, 1000, seed + 160));
  add(check_sgd(ctx, 4096, SgdParams{}, seed + 170));
  // The sums over a whole training batch: alexnet-fashion's conv1 at batch 128 (its weight
  // gradient sums 100,352 products per weight).
  add(check_conv2d_backward(ctx, Shape{128, 1, 28, 28}, Shape{24, 1, 5, 5}, Conv2dParams{1, 1, 2, 2, 1}, seed + 180));
  if (!full) return std::move(results.out);

  // These show `progress` each result themselves: here they are only kept.
  auto keep = [&](const std::vector<CheckResult>& v) { results.out.insert(results.out.end(), v.begin(), v.end()); };
  keep(check_fashion_backward(ctx, 128, seed + 200, progress));
  keep(check_alexnet2012_backward(ctx, 32, seed + 400, progress));
  return std::move(results.out);
}

}  // namespace vkalex
