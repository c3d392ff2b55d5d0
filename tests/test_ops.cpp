// Every forward op on the GPU against the CPU reference, on AlexNet's layer shapes and on
// awkward ones. Outputs start as NaN, so an unwritten element fails.
#include <cmath>
#include <limits>

#include "common.hpp"

using namespace vkalex;

namespace {
constexpr double kTol = 1e-5;
Conv2dParams conv(uint32_t stride, uint32_t pad, uint32_t groups, bool relu) {
  return Conv2dParams{stride, stride, pad, pad, groups, relu};
}
}  // namespace

TEST_CASE("relative_l2 and the NaN fill catch what they must", "[check]") {
  const std::vector<float> want{1, 2, 3};
  CHECK(relative_l2(want, want) == 0);
  CHECK(relative_l2(std::vector<float>{1, 2, 3.5f}, want) == Approx(0.5 / std::sqrt(14.0)));
  CHECK(std::isinf(relative_l2(std::vector<float>{1, NAN, 3}, want)));
  CHECK(std::isinf(relative_l2(std::vector<float>{1, INFINITY, 3}, want)));
  CHECK(std::isinf(relative_l2(std::vector<float>{1, 2}, want)));

  // An output that no kernel writes keeps the NaN fill and fails.
  Context& ctx = test::gpu();
  Tensor y = ctx.tensor(Shape{3});
  Recorder rec(ctx);
  rec.begin();
  rec.fill(y, std::numeric_limits<float>::quiet_NaN());
  rec.end();
  rec.run();
  CHECK(std::isinf(relative_l2(ctx.download(y), want)));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("random_uniform is reproducible and spans its range", "[check]") {
  const auto a = random_uniform(10000, 42, 2.0f), b = random_uniform(10000, 42, 2.0f);
  CHECK(a == b);
  CHECK(random_uniform(10000, 43, 2.0f) != a);
  float lo = 0, hi = 0;
  for (float v : a) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo < -1.9f);
  CHECK(hi > 1.9f);
  CHECK(hi < 2.0f);
}

TEST_CASE("conv2d on AlexNet's layers", "[ops][conv2d][alexnet]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("conv1 3->96 11x11 stride 4 on 227x227") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 3, 227, 227}, Shape{96, 3, 11, 11}, true, conv(4, 0, 1, true), s), kTol);
  }
  SECTION("conv2 96->256 5x5 pad 2 groups 2 on 27x27") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 96, 27, 27}, Shape{256, 48, 5, 5}, true, conv(1, 2, 2, true), s), kTol);
  }
  SECTION("conv3 256->384 3x3 pad 1 on 13x13") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 256, 13, 13}, Shape{384, 256, 3, 3}, true, conv(1, 1, 1, true), s), kTol);
  }
  SECTION("conv4 384->384 3x3 pad 1 groups 2 on 13x13") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{2, 384, 13, 13}, Shape{384, 192, 3, 3}, true, conv(1, 1, 2, true), s), kTol);
  }
  SECTION("conv5 384->256 3x3 pad 1 groups 2 on 13x13") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 384, 13, 13}, Shape{256, 192, 3, 3}, true, conv(1, 1, 2, false), s), kTol);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("conv2d on awkward shapes", "[ops][conv2d]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("batch 3, odd sizes, no bias, channels not a multiple of the workgroup") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{3, 5, 17, 13}, Shape{7, 5, 3, 3}, false, conv(1, 0, 1, false), s), kTol);
  }
  SECTION("groups = C (depthwise), stride 2, padding 3") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{2, 6, 15, 15}, Shape{6, 1, 7, 7}, true, conv(2, 3, 6, true), s), kTol);
  }
  SECTION("non-square kernel, unequal strides and paddings") {
    Conv2dParams p{2, 1, 1, 2, 1, false};
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 3, 11, 9}, Shape{4, 3, 3, 5}, true, p, s), kTol);
  }
  SECTION("1x1 kernel, groups 3, batch 1") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 9, 4, 4}, Shape{12, 3, 1, 1}, true, conv(1, 0, 3, false), s), kTol);
  }
  SECTION("padding larger than the kernel's half on a tiny image") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{3, 2, 2, 3}, Shape{5, 2, 3, 3}, true, conv(1, 2, 1, true), s), kTol);
  }
  SECTION("channel counts and row widths that leave partial register tiles") {
    REQUIRE_CHECK(check_conv2d(ctx, Shape{2, 10, 9, 14}, Shape{18, 5, 3, 3}, true, conv(1, 1, 2, true), s), kTol);
    REQUIRE_CHECK(check_conv2d(ctx, Shape{1, 3, 7, 11}, Shape{13, 3, 5, 5}, true, conv(2, 3, 1, false), s + 1), kTol);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("conv2d rejects shapes that do not fit", "[ops][conv2d][errors]") {
  Context& ctx = test::gpu();
  Tensor x = ctx.tensor(Shape{1, 4, 8, 8}), w = ctx.tensor(Shape{6, 3, 3, 3}), y = ctx.tensor(Shape{1, 6, 6, 6});
  Recorder rec(ctx);
  rec.begin();
  CHECK_THROWS_WITH(ops::conv2d(rec, x, w, nullptr, y, Conv2dParams{}), Catch::Contains("conv2d") && Catch::Contains("weight"));
  Tensor w2 = ctx.tensor(Shape{6, 4, 3, 3}), wrong = ctx.tensor(Shape{1, 6, 5, 5});
  CHECK_THROWS_WITH(ops::conv2d(rec, x, w2, nullptr, wrong, Conv2dParams{}), Catch::Contains("output has shape [1, 6, 5, 5]"));
  CHECK_THROWS_WITH(ops::conv2d(rec, x, w2, nullptr, y, conv(1, 0, 3, false)), Catch::Contains("groups 3"));
  Tensor big = ctx.tensor(Shape{6, 4, 9, 9}), y0 = ctx.tensor(Shape{1, 6, 1, 1});
  CHECK_THROWS_WITH(ops::conv2d(rec, x, big, nullptr, y0, Conv2dParams{}), Catch::Contains("does not fit"));
  rec.end();
  test::require_no_validation_messages(ctx);
}

TEST_CASE("relu", "[ops][relu]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  REQUIRE_CHECK(check_relu(ctx, Shape{1, 96, 55, 55}, s), 0.0);
  REQUIRE_CHECK(check_relu(ctx, Shape{3, 7}, s + 1), 0.0);
  REQUIRE_CHECK(check_relu(ctx, Shape{1}, s + 2), 0.0);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("relu larger than one binding is split", "[ops][relu][limits]") {
  // A device whose bindings hold 1 MiB: one element more than that is two dispatches.
  ContextOptions o = test::options();
  o.limits.max_storage_buffer_range = 1 << 20;
  Context ctx(o);
  REQUIRE_CHECK(check_relu(ctx, Shape{(1u << 18) + 1}, test::seed()), 0.0);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("lrn across channels", "[ops][lrn]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("AlexNet 96x55x55 and 256x27x27") {
    REQUIRE_CHECK(check_lrn(ctx, Shape{1, 96, 55, 55}, LrnParams{}, s, 10.0f), kTol);
    REQUIRE_CHECK(check_lrn(ctx, Shape{2, 256, 27, 27}, LrnParams{}, s + 1, 10.0f), kTol);
  }
  SECTION("awkward: few channels, even size, strong alpha, batch 3") {
    REQUIRE_CHECK(check_lrn(ctx, Shape{3, 7, 5, 3}, LrnParams{4, 0.5f, 0.75f, 1.0f}, s, 3.0f), kTol);
    REQUIRE_CHECK(check_lrn(ctx, Shape{1, 3, 2, 2}, LrnParams{7, 2.0f, 1.5f, 0.5f}, s + 1, 2.0f), kTol);
    REQUIRE_CHECK(check_lrn(ctx, Shape{2, 65, 1, 1}, LrnParams{1, 1.0f, 0.5f, 1.0f}, s + 2, 1.0f), kTol);
  }
  SECTION("ONNX's window for even sizes") {
    REQUIRE_CHECK(check_lrn(ctx, Shape{3, 7, 5, 3}, LrnParams{4, 0.5f, 0.75f, 1.0f, true}, s, 3.0f), kTol);
    REQUIRE_CHECK(check_lrn(ctx, Shape{2, 9, 4, 4}, LrnParams{2, 1.0f, 0.75f, 1.0f, true}, s + 1, 3.0f), kTol);
    REQUIRE_CHECK(check_lrn(ctx, Shape{1, 96, 27, 27}, LrnParams{6, 1e-4f, 0.75f, 1.0f, true}, s + 2, 10.0f), kTol);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("lrn matches torch.nn.LocalResponseNorm's definition", "[ops][lrn][cpu]") {
  // Worked by hand: C = 3, size 3, alpha 3, beta 1, k 1, x = (1, 2, 3) at one pixel.
  // channel 0: window {0, 1}: 1 / (1 + 3/3 * (1 + 4)) = 1/6
  // channel 1: window {0, 1, 2}: 2 / (1 + 14) = 2/15
  // channel 2: window {1, 2}: 3 / (1 + 13) = 3/14
  HostTensor x(Shape{1, 3, 1, 1}, {1, 2, 3});
  const HostTensor y = cpu::lrn(x, LrnParams{3, 3.0f, 1.0f, 1.0f});
  CHECK(y.data[0] == Approx(1.0 / 6));
  CHECK(y.data[1] == Approx(2.0 / 15));
  CHECK(y.data[2] == Approx(3.0 / 14));
}

TEST_CASE("lrn with an even size follows torch's window, or ONNX's", "[ops][lrn][cpu]") {
  // C = 3, size 2, alpha 2, beta 1, k 1, x = (1, 2, 3): alpha / size = 1.
  // torch: window of c is {c - 1, c}: 1 / (1 + 1), 2 / (1 + 5), 3 / (1 + 13).
  // ONNX: window of c is {c, c + 1}: 1 / (1 + 5), 2 / (1 + 13), 3 / (1 + 9).
  HostTensor x(Shape{1, 3, 1, 1}, {1, 2, 3});
  const HostTensor t = cpu::lrn(x, LrnParams{2, 2.0f, 1.0f, 1.0f});
  CHECK(t.data[0] == Approx(1.0 / 2));
  CHECK(t.data[1] == Approx(2.0 / 6));
  CHECK(t.data[2] == Approx(3.0 / 14));
  const HostTensor o = cpu::lrn(x, LrnParams{2, 2.0f, 1.0f, 1.0f, true});
  CHECK(o.data[0] == Approx(1.0 / 6));
  CHECK(o.data[1] == Approx(2.0 / 14));
  CHECK(o.data[2] == Approx(3.0 / 10));
}

TEST_CASE("max pool with argmax", "[ops][max_pool]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("AlexNet pools 3/2") {
    REQUIRE_CHECK(check_max_pool(ctx, Shape{1, 96, 55, 55}, MaxPoolParams{}, s), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{2, 256, 27, 27}, MaxPoolParams{}, s + 1), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{1, 256, 13, 13}, MaxPoolParams{}, s + 2), 0.0);
  }
  SECTION("awkward: padding, non-square, stride 1, batch 3") {
    REQUIRE_CHECK(check_max_pool(ctx, Shape{3, 5, 7, 9}, MaxPoolParams{3, 3, 1, 1, 1, 1}, s), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{1, 3, 8, 5}, MaxPoolParams{2, 3, 2, 1, 1, 1}, s + 1), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{2, 1, 4, 4}, MaxPoolParams{2, 2, 2, 2, 1, 0}, s + 2), 0.0);
  }
  SECTION("ONNX's windows: other padding at the end, ceil_mode, padding up to the kernel - 1") {
    REQUIRE_CHECK(check_max_pool(ctx, Shape{2, 3, 7, 9}, MaxPoolParams{3, 3, 2, 2, 0, 1, 2, 0, true}, s), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{1, 4, 32, 32}, MaxPoolParams{3, 3, 1, 1, 1, 1, 0, 0}, s + 1), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{3, 2, 28, 28}, MaxPoolParams{5, 5, 1, 1, 4, 2, 4, 3}, s + 2), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{1, 96, 55, 55}, MaxPoolParams{3, 3, 2, 2, 0, 0, -1, -1, true}, s + 3), 0.0);
  }
  SECTION("ONNX's dilations") {
    REQUIRE_CHECK(check_max_pool(ctx, Shape{2, 3, 9, 11}, MaxPoolParams{2, 3, 1, 2, 1, 2, -1, -1, false, 2, 3}, s), 0.0);
    REQUIRE_CHECK(check_max_pool(ctx, Shape{1, 5, 32, 32}, MaxPoolParams{3, 3, 2, 2, 2, 2, -1, -1, true, 2, 2}, s + 1), 0.0);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("average pooling", "[ops][avg_pool]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  for (const bool with_pad : {false, true}) {
    INFO((with_pad ? "counting padding" : "not counting padding"));
    REQUIRE_CHECK(check_avg_pool(ctx, Shape{1, 256, 13, 13}, MaxPoolParams{}, with_pad, s), kTol);
    REQUIRE_CHECK(check_avg_pool(ctx, Shape{3, 5, 7, 9}, MaxPoolParams{3, 3, 1, 1, 1, 1}, with_pad, s + 1), kTol);
    REQUIRE_CHECK(check_avg_pool(ctx, Shape{2, 3, 7, 9}, MaxPoolParams{3, 3, 2, 2, 0, 1, 2, 0, true}, with_pad, s + 2), kTol);
    REQUIRE_CHECK(check_avg_pool(ctx, Shape{2, 4, 12, 12}, MaxPoolParams{2, 2, 2, 2, 0, 0}, with_pad, s + 3), kTol);
    REQUIRE_CHECK(check_avg_pool(ctx, Shape{1, 8, 6, 6}, MaxPoolParams{6, 6, 1, 1, 0, 0}, with_pad, s + 4), kTol);
    REQUIRE_CHECK(check_avg_pool(ctx, Shape{2, 3, 9, 11}, MaxPoolParams{2, 3, 1, 2, 1, 2, 0, 1, true, 2, 3}, with_pad, s + 5), kTol);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("average pooling divides by the window's elements, or its padded positions", "[ops][avg_pool][cpu]") {
  // x = 1..9 in 3x3, kernel 2, stride 2, pad 1 all round: windows at rows -1..0 and 1..2.
  HostTensor x(Shape{1, 1, 3, 3});
  for (size_t i = 0; i < 9; ++i) x.data[i] = float(i + 1);
  const MaxPoolParams p{2, 2, 2, 2, 1, 1};
  const HostTensor a = cpu::avg_pool(x, p, false), b = cpu::avg_pool(x, p, true);
  REQUIRE(a.shape == Shape{1, 1, 2, 2});
  // Top-left window holds only x[0][0] = 1; top-right x[0][1..2] = 2, 3; bottom-left 4, 7;
  // bottom-right 5, 6, 8, 9.
  CHECK(a.data == std::vector<float>{1, 2.5f, 5.5f, 7});
  CHECK(b.data == std::vector<float>{0.25f, 1.25f, 2.75f, 7});
}

TEST_CASE("pooling windows follow ONNX's sizes: end padding and ceil_mode", "[ops][max_pool][cpu]") {
  HostTensor x(Shape{1, 1, 4, 4});
  for (size_t i = 0; i < 16; ++i) x.data[i] = float(i);
  // Kernel 3, stride 2, rounding up: rows 0-2 and 2-3, the same across.
  const auto ceil = cpu::max_pool(x, MaxPoolParams{3, 3, 2, 2, 0, 0, -1, -1, true});
  CHECK(ceil.y.shape == Shape{1, 1, 2, 2});
  CHECK(ceil.y.data == std::vector<float>{10, 11, 14, 15});
  // Rounding down, one window.
  CHECK(cpu::max_pool(x, MaxPoolParams{3, 3, 2, 2, 0, 0}).y.data == std::vector<float>{10});
  // One row of padding on top only (SAME_LOWER for kernel 2, stride 1): 4 rows out.
  const auto lower = cpu::max_pool(x, MaxPoolParams{2, 2, 1, 1, 1, 1, 0, 0});
  CHECK(lower.y.shape == Shape{1, 1, 4, 4});
  CHECK(lower.y.data[0] == 0);   // the window of rows -1..0, columns -1..0
  CHECK(lower.y.data[15] == 15);
  // A ceil_mode window that would start past the input and its padding is dropped: 5 rows,
  // kernel 2, stride 2, pad 1: (5 + 2 - 2) / 2 rounded up + 1 = 4, but window 3 starts at row
  // 5, so 3.
  HostTensor y(Shape{1, 1, 5, 5});
  CHECK(cpu::max_pool(y, MaxPoolParams{2, 2, 2, 2, 1, 1, -1, -1, true}).y.shape == Shape{1, 1, 3, 3});
  CHECK_THROWS_WITH(cpu::max_pool(x, MaxPoolParams{2, 2, 1, 1, 2, 0}), Catch::Contains("less than the kernel"));
  // Dilation 2, kernel 2 on 4x4 (ONNX's test_maxpool_2d_dilations' shape): taps rows r and
  // r + 2, so 2x2 windows out: max of x[0, 2][0, 2] = 10, x[0, 2][1, 3] = 11, ...
  const auto dilated = cpu::max_pool(x, MaxPoolParams{2, 2, 1, 1, 0, 0, -1, -1, false, 2, 2});
  CHECK(dilated.y.shape == Shape{1, 1, 2, 2});
  CHECK(dilated.y.data == std::vector<float>{10, 11, 14, 15});
  CHECK(dilated.argmax == std::vector<uint32_t>{10, 11, 14, 15});
  // A dilated window whose taps all fall in the padding is refused: pad 1, dilation 3, kernel
  // 2 on 2 rows: the one window's taps are rows -1 and 2.
  CHECK_THROWS_WITH(cpu::max_pool(HostTensor(Shape{1, 1, 2, 4}), MaxPoolParams{2, 1, 1, 1, 1, 0, -1, -1, false, 3, 1}),
                    Catch::Contains("padding only"));
}

TEST_CASE("max pool ties and NaN follow the reference", "[ops][max_pool][cpu]") {
  Context& ctx = test::gpu();
  // A window of equal values picks the first; a NaN wins over numbers.
  HostTensor x(Shape{1, 1, 2, 4}, {5, 5, 1, NAN, 5, 5, 2, 0});
  const auto want = cpu::max_pool(x, MaxPoolParams{2, 2, 2, 2, 0, 0});
  CHECK(want.argmax[0] == 0);
  CHECK(std::isnan(want.y.data[1]));
  CHECK(want.argmax[1] == 3);

  Tensor dx = ctx.tensor(x.shape), dy = ctx.tensor(want.y.shape), da = ctx.tensor(want.y.shape, DType::U32);
  ctx.upload(dx, x.data);
  Recorder rec(ctx);
  rec.begin();
  ops::max_pool(rec, dx, dy, &da, MaxPoolParams{2, 2, 2, 2, 0, 0});
  rec.end();
  rec.run();
  const auto y = ctx.download(dy);
  CHECK(y[0] == 5);
  CHECK(std::isnan(y[1]));
  CHECK(ctx.download_u32(da) == want.argmax);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("linear on AlexNet's layers", "[ops][linear][alexnet]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  SECTION("fc6 9216->4096 (weights larger than lavapipe's 128 MiB binding)") {
    REQUIRE_CHECK(check_linear(ctx, 1, 9216, 4096, true, true, s), kTol);
  }
  SECTION("fc7 4096->4096, batch 2") {
    REQUIRE_CHECK(check_linear(ctx, 2, 4096, 4096, true, true, s), kTol);
  }
  SECTION("fc8 4096->1000, batch 3") {
    REQUIRE_CHECK(check_linear(ctx, 3, 4096, 1000, true, false, s), kTol);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("linear on awkward shapes", "[ops][linear]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  REQUIRE_CHECK(check_linear(ctx, 3, 7, 5, false, false, s), kTol);
  REQUIRE_CHECK(check_linear(ctx, 1, 1, 1, true, false, s + 1), kTol);
  REQUIRE_CHECK(check_linear(ctx, 5, 33, 65, true, true, s + 2), kTol);
  REQUIRE_CHECK(check_linear(ctx, 2, 100, 3, true, false, s + 3), kTol);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("softmax", "[ops][softmax]") {
  Context& ctx = test::gpu();
  const uint64_t s = test::seed();
  REQUIRE_CHECK(check_softmax(ctx, Shape{1, 1000}, s), kTol);
  REQUIRE_CHECK(check_softmax(ctx, Shape{3, 1000}, s + 1), kTol);
  REQUIRE_CHECK(check_softmax(ctx, Shape{5, 1025}, s + 2), kTol);
  REQUIRE_CHECK(check_softmax(ctx, Shape{2, 3}, s + 3), kTol);
  REQUIRE_CHECK(check_softmax(ctx, Shape{4, 1}, s + 4), kTol);
  // Logits of +-500: exp overflows in fp32 unless the row maximum is subtracted.
  REQUIRE_CHECK(check_softmax(ctx, Shape{2, 10}, s + 5, 500.0f), kTol);
  // Along an axis with others after it: [3, 4, 5] over the 4 (ONNX's axis 1 at opset 13), over
  // the last 5 (rows of 5 within each image), and [2, 1000, 9] over the 1000.
  REQUIRE_CHECK(check_softmax(ctx, Shape{3, 20}, s + 6, 10.0f, DType::F32, 4, 5), kTol);
  REQUIRE_CHECK(check_softmax(ctx, Shape{3, 20}, s + 7, 10.0f, DType::F32, 5, 1), kTol);
  REQUIRE_CHECK(check_softmax(ctx, Shape{2, 1000, 9}, s + 8, 10.0f, DType::F32, 1000, 9), kTol);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("dropout at inference is the identity without a copy", "[ops][dropout]") {
  Context& ctx = test::gpu();
  REQUIRE_CHECK(check_dropout_inference(ctx, Shape{2, 4096}, test::seed()), 0.0);
  test::require_no_validation_messages(ctx);
}
