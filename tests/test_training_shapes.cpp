// Backward ops at the batch sizes people train with, on the models' real layer shapes, and
// every split path forced on small shapes by lowering the device's limits: the loops that grow
// with the batch (weight and bias gradients) are where a driver's limits bite silently.
#include "common.hpp"

using namespace vkalex;

namespace {
constexpr double kTol = 1e-5;
using test::require_all;
}  // namespace

TEST_CASE("alexnet-fashion backward ops at batch 128", "[ops][backward][training-shapes]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  require_all(check_fashion_backward(ctx, 128, s));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("alexnet2012 conv1 and fc8 backward at batch 32", "[ops][backward][training-shapes]") {
  // conv1 has the largest output plane (55 x 55), so the longest sums per weight; the other
  // layers run at batch 32 in `info --full`, whose CPU reference takes minutes.
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  require_all(check_conv2d_backward(ctx, Shape{32, 3, 227, 227}, Shape{96, 3, 11, 11}, Conv2dParams{4, 4, 0, 0, 1}, s));
  require_all(check_linear_backward(ctx, 32, 4096, 1000, s + 1));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("split reductions and bindings under lowered device limits", "[ops][backward][limits]") {
  // A device whose loops stop after 400 iterations and whose bindings hold 64 KiB: the weight
  // and bias gradients must split over images and rows, and every tensor over bindings.
  ContextOptions o = test::options();
  o.limits.max_loop_iterations = 400;
  o.limits.max_storage_buffer_range = 64 * 1024;
  Context ctx(o);
  REQUIRE(ctx.device().max_loop_iterations == 400);
  REQUIRE(ctx.device().max_storage_buffer_range == 64 * 1024);
  const uint64_t s = test::seed();
  // 23 images of 4 x 16 x 16 floats (4 KiB; dy 8 KiB): a few per binding, on every
  // alignment a device may ask for (up to 256 bytes).
  require_all(check_conv2d_backward(ctx, Shape{23, 4, 16, 16}, Shape{8, 4, 3, 3}, Conv2dParams{1, 1, 1, 1, 1}, s));
  // Stride 2, groups 2, odd batch.
  require_all(check_conv2d_backward(ctx, Shape{9, 4, 15, 15}, Shape{6, 2, 3, 3}, Conv2dParams{2, 2, 1, 1, 2}, s + 1));
  // One image's plane is longer than the budget allows a slice: slices of a few rows.
  require_all(check_conv2d_backward(ctx, Shape{2, 1, 60, 60}, Shape{2, 1, 3, 3}, Conv2dParams{1, 1, 1, 1, 1}, s + 2));
  // 700 images: the linear weight gradient and the bias gradient add up several dispatches.
  require_all(check_linear_backward(ctx, 700, 3, 5, s + 3));
  // The forward ops split the same way: linear weights by rows, convolutions by images.
  REQUIRE_CHECK(check_linear(ctx, 3, 100, 300, true, true, s + 4), kTol);
  REQUIRE_CHECK(check_conv2d(ctx, Shape{23, 4, 16, 16}, Shape{8, 4, 3, 3}, true, Conv2dParams{1, 1, 1, 1, 1}, s + 5), kTol);
  // One image's patch matrix (3600 pixels x 12 floats) exceeds a binding: built in pixel ranges.
  REQUIRE_CHECK(check_conv2d(ctx, Shape{2, 1, 60, 60}, Shape{2, 1, 3, 3}, true, Conv2dParams{1, 1, 1, 1, 1}, s + 6), kTol);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("a loop the model's shapes make too long is refused, not run short", "[ops][limits]") {
  ContextOptions o = test::options();
  o.limits.max_loop_iterations = 400;
  Context ctx(o);
  // 300 input features: the linear layer's sum over them is one invocation's loop.
  Tensor x = ctx.tensor(Shape{2, 300}), w = ctx.tensor(Shape{4, 300}), y = ctx.tensor(Shape{2, 4});
  Recorder rec(ctx);
  rec.begin();
  REQUIRE_THROWS_WITH(ops::linear(rec, x, w, nullptr, y, false),
                      Catch::Contains("linear") && Catch::Contains("loop iterations"));
  // Below the budget it records.
  Tensor x2 = ctx.tensor(Shape{2, 100}), w2 = ctx.tensor(Shape{4, 100});
  REQUIRE_NOTHROW(ops::linear(rec, x2, w2, nullptr, y, false));
  rec.end();
}
