// Host side of peak_fma_scalar.comp, peak_fma_vec4.comp and peak_copy.comp.
#include "vkalex/peak.hpp"

#include <algorithm>
#include <string>

#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

namespace {

constexpr double kMinDispatchMs = 20;
constexpr uint32_t kChains = 12;

// Best GPU time in ms of `repeats` replays of one dispatch recorded by `record`.
template <typename Record>
double best_ms(Context& ctx, uint32_t repeats, Record&& record) {
  RecorderOptions o;
  o.timestamps = true;
  Recorder rec(ctx, o);
  rec.begin();
  record(rec);
  rec.end();
  double best = 0;
  for (uint32_t r = 0; r < repeats; ++r) {
    rec.run();
    double ms = 0;
    for (const auto& t : rec.timings()) ms += t.ms;
    if (r == 0 || ms < best) best = ms;
  }
  return best;
}

double fma_gflops(Context& ctx, uint32_t repeats, const char* shader, uint32_t lanes) {
  using namespace detail;
  const DeviceInfo& dev = ctx.device();
  const uint32_t wg = elementwise_workgroup(dev);
  struct {
    uint32_t iterations;
    float a, b;
  } push{std::min<uint32_t>(1024, loop_budget(dev) - 1), 0.999f, 0.001f};
  uint64_t invocations = uint64_t(wg) * 256;
  const uint64_t most = std::min<uint64_t>(uint64_t(1) << 24, dev.max_storage_buffer_range / sizeof(float));
  for (;;) {
    Tensor out = ctx.tensor(Shape{static_cast<uint32_t>(invocations)});
    const double ms = best_ms(ctx, repeats, [&](Recorder& rec) {
      Dispatch d;
      d.shader = shader;
      d.label = shader;
      d.specialization = {wg};
      d.bindings = {{&out, Use::Write}};
      d.push = &push;
      d.push_bytes = sizeof push;
      d.groups = grid_for_threads(dev, invocations, wg);
      record_dispatch(rec, d);
    });
    if ((ms >= kMinDispatchMs || invocations * 2 > most) && ms > 0) {
      const double flop = double(invocations) * push.iterations * kChains * lanes * 2;
      return flop / (ms * 1e6);
    }
    const double grow = ms > 0 ? std::min(16.0, kMinDispatchMs / ms * 1.2) : 16.0;
    invocations = std::min<uint64_t>(most, uint64_t(double(invocations) * std::max(2.0, grow)) / wg * wg);
  }
}

double copy_gbps(Context& ctx, uint32_t repeats, const char* shader) {
  using namespace detail;
  const DeviceInfo& dev = ctx.device();
  const uint32_t wg = elementwise_workgroup(dev);
  const uint64_t bytes = std::min<uint64_t>(uint64_t(64) << 20, dev.max_storage_buffer_range) / 16 * 16;
  Tensor x = ctx.tensor(Shape{static_cast<uint32_t>(bytes / sizeof(float))});
  Tensor y = ctx.tensor(x.shape());
  ctx.fill(x, 1.0f);
  struct {
    uint32_t n;
  } push{static_cast<uint32_t>(bytes / 16)};
  // Several copies in one recording, so that one is not too short to time.
  for (uint32_t copies = 1;; copies *= 4) {
    const double ms = best_ms(ctx, repeats, [&](Recorder& rec) {
      for (uint32_t c = 0; c < copies; ++c) {
        Dispatch d;
        d.shader = shader;
        d.label = "peak_copy";
        d.specialization = {wg};
        const Texel t = std::string(shader) == "peak_copy_texel" ? Texel::RGBA32F : Texel::None;
        d.bindings = {{c % 2 ? &y : &x, Use::Read, 0, 0, t}, {c % 2 ? &x : &y, Use::Write}};
        d.push = &push;
        d.push_bytes = sizeof push;
        d.groups = grid_for_threads(dev, push.n, wg);
        record_dispatch(rec, d);
      }
    });
    if ((ms >= kMinDispatchMs || copies >= 1024) && ms > 0) return 2.0 * double(bytes) * copies / (ms * 1e6);
  }
}

}  // namespace

PeakFigures measure_peak(Context& ctx, uint32_t repeats) {
  if (!ctx.device().timestamps) throw Error("measuring the peak needs GPU timestamps, which this device lacks");
  repeats = std::max<uint32_t>(1, repeats);
  PeakFigures p;
  p.fma_scalar_gflops = fma_gflops(ctx, repeats, "peak_fma_scalar", 1);
  p.fma_vec4_gflops = fma_gflops(ctx, repeats, "peak_fma_vec4", 4);
  // The faster of the two load paths, where the device's texel buffers hold the copied range.
  p.copy_gbps = copy_gbps(ctx, repeats, "peak_copy");
  const DeviceInfo& d = ctx.device();
  if (uint64_t(d.max_texel_buffer_elements) * 16 >= std::min<uint64_t>(uint64_t(64) << 20, d.max_storage_buffer_range)) {
    p.copy_gbps = std::max(p.copy_gbps, copy_gbps(ctx, repeats, "peak_copy_texel"));
  }
  return p;
}

}  // namespace vkalex
