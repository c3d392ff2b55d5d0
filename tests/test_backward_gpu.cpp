// Every backward kernel, the loss and the optimizer on the GPU against the CPU reference.
#include "common.hpp"

using namespace vkalex;

namespace {
constexpr double kTol = 1e-5;
using test::require_all;
}  // namespace

TEST_CASE("conv2d backward on AlexNet's layers", "[ops][backward][conv2d][alexnet]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("conv1 11x11 stride 4 on 227x227") {
    require_all(check_conv2d_backward(ctx, Shape{1, 3, 227, 227}, Shape{96, 3, 11, 11}, Conv2dParams{4, 4, 0, 0, 1}, s));
  }
  SECTION("conv2 5x5 pad 2 groups 2, batch 2") {
    require_all(check_conv2d_backward(ctx, Shape{2, 96, 27, 27}, Shape{256, 48, 5, 5}, Conv2dParams{1, 1, 2, 2, 2}, s));
  }
  SECTION("conv3, conv4, conv5 on 13x13") {
    require_all(check_conv2d_backward(ctx, Shape{1, 256, 13, 13}, Shape{384, 256, 3, 3}, Conv2dParams{1, 1, 1, 1, 1}, s));
    require_all(check_conv2d_backward(ctx, Shape{1, 384, 13, 13}, Shape{384, 192, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, s + 1));
    require_all(check_conv2d_backward(ctx, Shape{1, 384, 13, 13}, Shape{256, 192, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, s + 2));
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("conv2d backward on awkward shapes", "[ops][backward][conv2d]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  require_all(check_conv2d_backward(ctx, Shape{3, 5, 17, 13}, Shape{7, 5, 3, 3}, Conv2dParams{1, 1, 0, 0, 1}, s));
  require_all(check_conv2d_backward(ctx, Shape{2, 6, 15, 15}, Shape{6, 1, 7, 7}, Conv2dParams{2, 2, 3, 3, 6}, s + 1));
  require_all(check_conv2d_backward(ctx, Shape{1, 3, 11, 9}, Shape{4, 3, 3, 5}, Conv2dParams{2, 1, 1, 2, 1}, s + 2));
  require_all(check_conv2d_backward(ctx, Shape{3, 2, 2, 3}, Shape{5, 2, 3, 3}, Conv2dParams{1, 1, 2, 2, 1}, s + 3));
  require_all(check_conv2d_backward(ctx, Shape{1, 1, 28, 28}, Shape{8, 1, 5, 5}, Conv2dParams{3, 3, 2, 2, 1}, s + 4));
  // Padding wider than the input: some taps never touch it; 9 and 10 channels leave tile tails.
  require_all(check_conv2d_backward(ctx, Shape{2, 3, 1, 2}, Shape{9, 3, 5, 5}, Conv2dParams{2, 2, 3, 3, 1}, s + 5));
  require_all(check_conv2d_backward(ctx, Shape{2, 10, 9, 14}, Shape{18, 5, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, s + 6));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("linear backward on AlexNet's layers and awkward ones", "[ops][backward][linear]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("fc6 9216->4096 (weights split across bindings)") { require_all(check_linear_backward(ctx, 2, 9216, 4096, s)); }
  SECTION("fc7 and fc8") {
    require_all(check_linear_backward(ctx, 2, 4096, 4096, s));
    require_all(check_linear_backward(ctx, 3, 4096, 1000, s + 1));
  }
  SECTION("awkward") {
    require_all(check_linear_backward(ctx, 3, 7, 5, s));
    require_all(check_linear_backward(ctx, 1, 1, 1, s + 1));
    require_all(check_linear_backward(ctx, 5, 33, 65, s + 2));
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("relu, lrn and max pool backward", "[ops][backward]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  REQUIRE_CHECK(check_relu_backward(ctx, Shape{1, 96, 55, 55}, s), 0.0);
  REQUIRE_CHECK(check_relu_backward(ctx, Shape{3, 7}, s + 1), 0.0);
  REQUIRE_CHECK(check_lrn_backward(ctx, Shape{1, 96, 55, 55}, LrnParams{}, s, 10.0f), kTol);
  REQUIRE_CHECK(check_lrn_backward(ctx, Shape{2, 256, 27, 27}, LrnParams{}, s + 1, 10.0f), kTol);
  REQUIRE_CHECK(check_lrn_backward(ctx, Shape{3, 7, 5, 3}, LrnParams{4, 0.5f, 0.75f, 1.0f}, s + 2, 3.0f), kTol);
  REQUIRE_CHECK(check_lrn_backward(ctx, Shape{1, 3, 2, 2}, LrnParams{7, 2.0f, 1.5f, 0.5f}, s + 3, 2.0f), kTol);
  REQUIRE_CHECK(check_lrn_backward(ctx, Shape{3, 7, 5, 3}, LrnParams{4, 0.5f, 0.75f, 1.0f, true}, s + 4, 3.0f), kTol);
  REQUIRE_CHECK(check_max_pool_backward(ctx, Shape{1, 96, 55, 55}, MaxPoolParams{}, s), kTol);
  REQUIRE_CHECK(check_max_pool_backward(ctx, Shape{2, 256, 27, 27}, MaxPoolParams{}, s + 1), kTol);
  REQUIRE_CHECK(check_max_pool_backward(ctx, Shape{1, 256, 13, 13}, MaxPoolParams{}, s + 2), kTol);
  REQUIRE_CHECK(check_max_pool_backward(ctx, Shape{3, 5, 7, 9}, MaxPoolParams{3, 3, 1, 1, 1, 1}, s + 3), kTol);
  REQUIRE_CHECK(check_max_pool_backward(ctx, Shape{1, 3, 8, 5}, MaxPoolParams{2, 3, 2, 1, 1, 1}, s + 4), kTol);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("training dropout draws the CPU's mask and applies it backward", "[ops][backward][dropout]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  require_all(check_dropout(ctx, Shape{2, 4096}, 0.5f, 1, s), 0.0);
  require_all(check_dropout(ctx, Shape{3, 17}, 0.1f, 12345, s + 1), 1e-7);
  require_all(check_dropout(ctx, Shape{5}, 0.0f, 7, s + 2), 0.0);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("fused softmax cross-entropy", "[ops][backward][loss]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  require_all(check_softmax_cross_entropy(ctx, 2, 1000, s), 1e-5);
  require_all(check_softmax_cross_entropy(ctx, 128, 10, s + 1), 1e-5);
  require_all(check_softmax_cross_entropy(ctx, 3, 1, s + 2), 1e-5);
  require_all(check_softmax_cross_entropy(ctx, 5, 1025, s + 3), 1e-5);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("sgd update", "[ops][sgd]") {
  Context& ctx = test::gpu();
  require_all(check_sgd(ctx, 1000003, SgdParams{0.01f, 0.9f, 5e-4f}, test::seed()), 1e-6);
  require_all(check_sgd(ctx, 7, SgdParams{0.5f, 0.0f, 0.0f}, test::seed() + 1), 1e-6);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("fused softmax cross-entropy: a label out of range reads nothing outside its row and shows as a NaN loss",
          "[ops][backward][loss][errors]") {
  Context& ctx = test::gpu();
  const uint32_t n = 3, classes = 10;
  const std::vector<float> x = random_uniform(n * classes, test::seed(), 3.0f);
  const std::vector<uint32_t> labels = {2, classes, 4000000000u};  // the last two unchecked and wrong
  Tensor logits = ctx.tensor(Shape{n, classes}), lab = ctx.tensor(Shape{n}, DType::U32);
  Tensor dlogits = ctx.tensor(Shape{n, classes}), stats = ctx.tensor(Shape{n, 2});
  ctx.upload(logits, x);
  ctx.upload(lab, labels);
  Recorder rec(ctx);
  rec.begin();
  ops::softmax_cross_entropy(rec, logits, lab, dlogits, stats);
  rec.end();
  rec.run();
  const std::vector<float> s = ctx.download(stats), d = ctx.download(dlogits);
  // Row 0 is as the CPU reference says; rows 1 and 2 have a NaN loss, are not correct, and
  // their gradient is the softmax alone (no class takes the one-hot's -1).
  const auto want = cpu::softmax_cross_entropy(HostTensor(Shape{1, classes}, {x.begin(), x.begin() + classes}), {2});
  CHECK(std::fabs(s[0] - want.loss) < 1e-5 * std::max(1.0, std::fabs(want.loss)));
  for (uint32_t row = 1; row < n; ++row) {
    INFO("row " << row);
    CHECK(std::isnan(s[2 * row]));
    CHECK(s[2 * row + 1] == 0.0f);
    double sum = 0;
    for (uint32_t j = 0; j < classes; ++j) {
      CHECK(d[row * classes + j] >= 0.0f);
      sum += d[row * classes + j];
    }
    CHECK(std::fabs(sum * n - 1.0) < 1e-5);  // softmax / N sums to 1 / N
  }
  test::require_no_validation_messages(ctx);
}
