// The recorder: replay without re-recording, barriers only where needed, timestamps.
#include <cmath>

#include "common.hpp"

using namespace vkalex;

TEST_CASE("a recording is replayed with new inputs, not re-recorded", "[recorder]") {
  Context& ctx = test::gpu();
  const Shape xs{2, 3, 12, 12}, ws{8, 3, 3, 3};
  const Conv2dParams p{1, 1, 1, 1, 1, true};
  const HostTensor w(ws, random_uniform(ws.numel(), test::seed(), 0.2f));
  Tensor x = ctx.tensor(xs), dw = ctx.tensor(ws);
  ctx.upload(dw, w.data);
  Tensor y = ctx.tensor(conv2d_output_shape(xs, ws, nullptr, p));
  Tensor z = ctx.tensor(y.shape());

  Recorder rec(ctx);
  rec.begin();
  ops::conv2d(rec, x, dw, nullptr, y, p);
  ops::relu(rec, y, z);
  rec.end();
  const size_t dispatches = rec.dispatch_count();
  CHECK(dispatches >= 2);  // the convolution's kernel may take more than one (im2col + GEMM)

  for (int i = 0; i < 3; ++i) {
    const HostTensor hx(xs, random_uniform(xs.numel(), test::seed() + 100 + i));
    ctx.upload(x, hx.data);
    rec.run();
    const HostTensor want = cpu::relu(cpu::conv2d(hx, w, nullptr, p));
    INFO("replay " << i << ", seed " << test::seed());
    CHECK(relative_l2(ctx.download(z), want.data) <= 1e-5);
  }
  CHECK(rec.submit_count() == 3);
  CHECK(rec.dispatch_count() == dispatches);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("barriers go only where a command depends on an earlier one", "[recorder][barriers]") {
  Context& ctx = test::gpu();
  Tensor a = ctx.tensor(Shape{64}), b = ctx.tensor(Shape{64}), c = ctx.tensor(Shape{64});
  Tensor d = ctx.tensor(Shape{64}), e = ctx.tensor(Shape{64});
  const auto va = random_uniform(64, test::seed()), vc = random_uniform(64, test::seed() + 1);
  ctx.upload(a, va);
  ctx.upload(c, vc);
  Recorder rec(ctx);
  rec.begin();
  ops::relu(rec, a, b);  // independent of the next
  ops::relu(rec, c, d);
  CHECK(rec.barrier_count() == 0);
  ops::relu(rec, c, a);  // overwrites a, which the first relu read: write after read
  CHECK(rec.barrier_count() == 1);
  ops::relu(rec, b, e);  // reads b: read after write (the last barrier ordered, but did not make visible)
  CHECK(rec.barrier_count() == 2);
  ops::relu(rec, d, d);  // reads d: no barrier so far made d's write visible
  CHECK(rec.barrier_count() == 3);
  ops::relu(rec, b, c);  // b is visible now, and c's last read is ordered before this write
  CHECK(rec.barrier_count() == 3);
  rec.end();
  rec.run();
  const auto want_a = cpu::relu(HostTensor(Shape{64}, va)).data;
  const auto want_c = cpu::relu(HostTensor(Shape{64}, vc)).data;
  CHECK(ctx.download(b) == want_a);
  CHECK(ctx.download(e) == want_a);
  CHECK(ctx.download(a) == want_c);
  CHECK(ctx.download(d) == want_c);
  CHECK(ctx.download(c) == want_a);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("timestamps give a GPU time per dispatch", "[recorder][timestamps]") {
  Context& ctx = test::gpu();
  if (!ctx.device().timestamps) {
    WARN("device has no timestamps on its compute queue");
    return;
  }
  Tensor x = ctx.tensor(Shape{1, 3, 64, 64}), w = ctx.tensor(Shape{16, 3, 5, 5}), y = ctx.tensor(Shape{1, 16, 60, 60});
  Tensor p = ctx.tensor(Shape{1, 16, 29, 29});
  ctx.fill(x, 1.0f);
  ctx.fill(w, 0.5f);
  Recorder rec(ctx, RecorderOptions{true});
  rec.begin();
  ops::conv2d(rec, x, w, nullptr, y, Conv2dParams{});
  ops::max_pool(rec, y, p, nullptr, MaxPoolParams{});
  rec.end();
  rec.run();
  const auto t = rec.timings();
  // One timing per dispatch: the convolution's (its kernel may build a patch matrix first,
  // timed as im2col), then the pool's.
  REQUIRE(t.size() == rec.dispatch_count());
  REQUIRE(t.size() >= 2);
  CHECK(t.back().label == "max_pool");
  double conv_ms = 0;
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    CHECK((t[i].label == "conv2d" || t[i].label == "im2col"));
    conv_ms += t[i].ms;
  }
  for (const auto& d : t) {
    CHECK(std::isfinite(d.ms));
    CHECK(d.ms >= 0);
    CHECK(d.ms < 10000);
  }
  CHECK(conv_ms > 0);  // 1.4 MFLOP cannot take zero time
  // Every value is 3 * 25 * 0.5 = 37.5: the pool and the conv really ran.
  for (float v : ctx.download(p)) REQUIRE(v == 37.5f);
  rec.run();  // a replay measures again
  CHECK(rec.timings().size() == t.size());
  test::require_no_validation_messages(ctx);
}

TEST_CASE("the recorder refuses misuse with clear errors", "[recorder][errors]") {
  Context& ctx = test::gpu();
  Tensor a = ctx.tensor(Shape{4}), b = ctx.tensor(Shape{5});
  Recorder rec(ctx);
  CHECK_THROWS_WITH(rec.submit(), Catch::Contains("finished recording"));
  CHECK_THROWS_WITH(ops::relu(rec, a, a), Catch::Contains("outside begin()/end()"));
  rec.begin();
  CHECK_THROWS_WITH(rec.copy(a, b), Catch::Contains("differ in size"));
  CHECK_THROWS_WITH(ops::relu(rec, a, b), Catch::Contains("relu: output has shape [5], expected [4]"));
  CHECK_THROWS_WITH(rec.submit(), Catch::Contains("finished recording"));
  rec.end();
  rec.run();
  test::require_no_validation_messages(ctx);
}
