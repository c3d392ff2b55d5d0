// The registry of kernel variants: every variant forced in turn and checked against the CPU
// reference on the shapes it applies to, including binding splits; the choice the plan
// records; forced names checked; fused ReLU keeps NaN.
#include <cmath>
#include <limits>

#include "common.hpp"

using namespace vkalex;

namespace {
constexpr double kTol = 1e-5;

Context forced(const std::string& op, const std::string& variant, uint64_t max_binding = 0, bool shuffle = true) {
  ContextOptions o = test::options();
  o.kernels[op] = variant;
  o.limits.max_storage_buffer_range = max_binding;
  o.limits.no_subgroup_shuffle = !shuffle;
  return Context(o);
}
// The texel-buffer GEMM needs texel buffers as large as the device's storage-buffer bindings:
// on SwiftShader (65,536 texels) only where the bindings are limited to 1 MiB or less.
bool texel_unavailable(Context& ctx, const std::string& variant) {
  const DeviceInfo& d = ctx.device();
  if (variant.find("_texel") == std::string::npos) return false;
  // The GEMM reads vec4 texels, the wide convolutions scalar ones.
  const uint64_t texel_bytes = variant.find("gemm_texel") != std::string::npos ? 16 : 4;
  return uint64_t(d.max_texel_buffer_elements) * texel_bytes < d.max_storage_buffer_range;
}
// The wide convolution kernels (storage-buffer and texel variants) need stride 1.
bool wide(const std::string& variant) { return variant.find(".wide") != std::string::npos; }
struct Case {
  Shape x, w;
  Conv2dParams p;
};
const Case kConvCases[] = {
    {Shape{2, 1, 28, 28}, Shape{24, 1, 5, 5}, Conv2dParams{1, 1, 2, 2, 1, true}},     // alexnet-fashion conv1
    {Shape{2, 24, 13, 13}, Shape{48, 12, 3, 3}, Conv2dParams{1, 1, 1, 1, 2, true}},   // its conv2
    {Shape{1, 96, 27, 27}, Shape{256, 48, 5, 5}, Conv2dParams{1, 1, 2, 2, 2, true}},  // alexnet2012 conv2
    {Shape{1, 256, 13, 13}, Shape{384, 256, 3, 3}, Conv2dParams{1, 1, 1, 1, 1, true}},
    {Shape{1, 3, 227, 227}, Shape{96, 3, 11, 11}, Conv2dParams{4, 4, 0, 0, 1, true}},  // stride 4
    {Shape{3, 5, 17, 13}, Shape{7, 5, 3, 3}, Conv2dParams{1, 1, 1, 1, 1, false}},
    {Shape{2, 6, 15, 15}, Shape{6, 1, 7, 7}, Conv2dParams{1, 1, 3, 3, 6, true}},      // depthwise, wide padding
    {Shape{1, 3, 11, 9}, Shape{4, 3, 3, 5}, Conv2dParams{2, 1, 1, 2, 1, false}},       // unequal strides
    {Shape{3, 2, 2, 3}, Shape{5, 2, 3, 3}, Conv2dParams{1, 1, 2, 2, 1, true}},        // padding wider than the input
    {Shape{2, 10, 9, 14}, Shape{18, 5, 3, 3}, Conv2dParams{1, 1, 1, 1, 2, false}},    // partial channel tiles
    {Shape{1, 6, 5, 5}, Shape{3, 2, 1, 1}, Conv2dParams{1, 1, 0, 0, 3, false}},       // 1x1, groups 3
    {Shape{1, 2, 7, 1}, Shape{3, 2, 3, 1}, Conv2dParams{1, 1, 1, 0, 1, false}},       // rows of one pixel
    // Padding that differs at the end (ONNX's pads per side): none above and 3 below (a last
    // row of windows in the padding alone), 2 left and none right; and at stride 1.
    {Shape{2, 3, 10, 9}, Shape{4, 3, 3, 3}, Conv2dParams{2, 1, 0, 2, 1, true, 3, 0}},
    {Shape{1, 4, 8, 8}, Shape{6, 2, 3, 3}, Conv2dParams{1, 1, 0, 1, 2, false, 2, 0}},
};

}  // namespace

TEST_CASE("every linear kernel variant matches the CPU reference", "[ops][linear][kernels]") {
  const auto variants = ops::kernel_variants("linear");
  REQUIRE(variants.size() >= 2);
  const uint64_t s = test::seed();
  for (const std::string& v : variants) {
    INFO("variant " << v);
    Context ctx = forced("linear", v);
    if (texel_unavailable(ctx, v)) {
      CHECK_THROWS_WITH(check_linear(ctx, 2, 8, 4, true, true, s), Catch::Contains("texel buffers"));
    } else {
      REQUIRE_CHECK(check_linear(ctx, 1, 9216, 4096, true, true, s), kTol);  // fc6, split on lavapipe
      REQUIRE_CHECK(check_linear(ctx, 2, 4096, 4096, true, true, s + 1), kTol);
      REQUIRE_CHECK(check_linear(ctx, 3, 4096, 1000, true, false, s + 2), kTol);
      REQUIRE_CHECK(check_linear(ctx, 128, 192, 256, true, true, s + 3), kTol);  // alexnet-fashion fc6 in training
      // Partial tiles: 7 images (4 + 3), 13 outputs (3 x 4 + 1), 36 features.
      REQUIRE_CHECK(check_linear(ctx, 7, 36, 13, true, true, s + 4), kTol);
      REQUIRE_CHECK(check_linear(ctx, 1, 4, 1, false, false, s + 5), kTol);
    }
    // Weights bound in blocks of rows: 64 KiB bindings hold 40 rows of 400 floats.
    Context small = forced("linear", v, 64 * 1024);
    REQUIRE_CHECK(check_linear(small, 5, 400, 300, true, false, s + 6), kTol);
    test::require_no_validation_messages(ctx);
    test::require_no_validation_messages(small);
  }
}

TEST_CASE("every conv2d kernel variant matches the CPU reference", "[ops][conv2d][kernels]") {
  const auto variants = ops::kernel_variants("conv2d");
  REQUIRE(variants.size() >= 2);
  const uint64_t s = test::seed();
  for (const std::string& v : variants) {
    Context ctx = forced("conv2d", v);
    for (size_t i = 0; i < std::size(kConvCases); ++i) {
      if (texel_unavailable(ctx, v)) {
        CHECK_THROWS_WITH(check_conv2d(ctx, kConvCases[0].x, kConvCases[0].w, true, kConvCases[0].p, s), Catch::Contains("texel buffers"));
        break;
      }
      const Case& c = kConvCases[i];
      INFO("variant " << v << ", case " << i);
      if (wide(v) && c.p.stride_w != 1) {
        // Forced where it cannot run: refused, not run wrong.
        CHECK_THROWS_WITH(check_conv2d(ctx, c.x, c.w, true, c.p, s + i), Catch::Contains("stride 1"));
        continue;
      }
      REQUIRE_CHECK(check_conv2d(ctx, c.x, c.w, true, c.p, s + i), kTol);
    }
    // Images bound in pieces: 64 KiB bindings, 4 KiB per image.
    Context small = forced("conv2d", v, 64 * 1024);
    REQUIRE_CHECK(check_conv2d(small, Shape{23, 4, 16, 16}, Shape{8, 4, 3, 3}, true, Conv2dParams{1, 1, 1, 1, 1, true}, s + 99),
                  kTol);
    // One image's patch matrix larger than a binding (400 pixels x 72 taps): ranges of pixels,
    // each its own patch matrix (in panels for the vec4 GEMMs, the last one partial).
    REQUIRE_CHECK(check_conv2d(small, Shape{2, 8, 20, 20}, Shape{16, 8, 3, 3}, true, Conv2dParams{1, 1, 1, 1, 1, true}, s + 98),
                  kTol);
    test::require_no_validation_messages(ctx);
    test::require_no_validation_messages(small);
  }
}

TEST_CASE("every conv2d backward kernel variant matches the CPU reference", "[ops][conv2d][backward][kernels]") {
  const uint64_t s = test::seed();
  for (const std::string op : {"conv2d_backward_data", "conv2d_backward_weight"}) {
    const auto variants = ops::kernel_variants(op);
    REQUIRE(variants.size() >= 2);
    for (const std::string& v : variants) {
      Context ctx = forced(op, v);
      const bool skip = texel_unavailable(ctx, v);
      if (skip) CHECK_THROWS_WITH(check_conv2d_backward(ctx, kConvCases[0].x, kConvCases[0].w, kConvCases[0].p, s), Catch::Contains("texel buffers"));
      for (size_t i = 0; i < std::size(kConvCases) && !skip; ++i) {
        const Case& c = kConvCases[i];
        INFO("variant " << v << ", case " << i);
        if (wide(v) && (c.p.stride_w != 1 || c.p.stride_h != 1)) {
          CHECK_THROWS_WITH(check_conv2d_backward(ctx, c.x, c.w, c.p, s + i), Catch::Contains("stride 1"));
          continue;
        }
        for (const auto& r : check_conv2d_backward(ctx, c.x, c.w, c.p, s + i)) REQUIRE_CHECK(r, kTol);
      }
      INFO("variant " << v);
      // alexnet-fashion's conv2 at its training batch.
      if (!skip) {
        for (const auto& r :
             check_conv2d_backward(ctx, Shape{128, 24, 13, 13}, Shape{48, 12, 3, 3}, Conv2dParams{1, 1, 1, 1, 2}, s + 50))
          REQUIRE_CHECK(r, kTol);
      }
      // Images bound in pieces and patch matrices in chunks: 64 KiB bindings, 4 KiB per image.
      Context small = forced(op, v, 64 * 1024);
      for (const auto& r :
           check_conv2d_backward(small, Shape{23, 4, 16, 16}, Shape{8, 4, 3, 3}, Conv2dParams{1, 1, 1, 1, 1}, s + 51))
        REQUIRE_CHECK(r, kTol);
      test::require_no_validation_messages(ctx);
      test::require_no_validation_messages(small);
    }
  }
}

TEST_CASE("every linear backward kernel variant matches the CPU reference", "[ops][linear][backward][kernels]") {
  const uint64_t s = test::seed();
  for (const std::string op : {"linear_backward_data", "linear_backward_weight"}) {
    const auto variants = ops::kernel_variants(op);
    REQUIRE(variants.size() >= 2);
    for (const std::string& v : variants) {
      INFO("variant " << v);
      Context ctx = forced(op, v);
      if (texel_unavailable(ctx, v)) {
        CHECK_THROWS_WITH(check_linear_backward(ctx, 2, 8, 4, s), Catch::Contains("texel buffers"));
      } else {
        for (const auto& r : check_linear_backward(ctx, 128, 192, 256, s)) REQUIRE_CHECK(r, kTol);  // fashion fc6
        for (const auto& r : check_linear_backward(ctx, 7, 37, 13, s + 1)) REQUIRE_CHECK(r, kTol);  // odd sizes
        for (const auto& r : check_linear_backward(ctx, 3, 4096, 1000, s + 2)) REQUIRE_CHECK(r, kTol);
      }
      // Weights and gradients in blocks of rows: 64 KiB bindings hold 40 rows of 400 floats.
      Context small = forced(op, v, 64 * 1024);
      for (const auto& r : check_linear_backward(small, 5, 400, 300, s + 3)) REQUIRE_CHECK(r, kTol);
      test::require_no_validation_messages(ctx);
      test::require_no_validation_messages(small);
    }
  }
}

TEST_CASE("the texel GEMM matches the CPU reference with and without lanes sharing A through subgroup shuffles",
          "[ops][kernels]") {
  // Every A layout (vec4 along k, vec4 along m, scalars) and tall tiles cut short by M (37 rows:
  // 24 + 13; 40 output channels: 24 + 16), in bindings of 1 MiB, which SwiftShader's texel
  // buffers cover too.
  const uint64_t s = test::seed();
  const uint64_t mib = 1 << 20;
  const Conv2dParams p{1, 1, 1, 1, 1, true};
  for (const bool shuffle : {true, false}) {
    INFO((shuffle ? "lanes share A" : "each lane loads A"));
    Context lin = forced("linear", "linear.gemm_texel", mib, shuffle);
    // Turned off, the device reports none; on (lavapipe and SwiftShader both have them) the
    // kernel takes the shared loads wherever the device offers shuffles.
    if (!shuffle) CHECK_FALSE(lin.device().subgroup_shuffle);
    REQUIRE_CHECK(check_linear(lin, 37, 36, 13, true, true, s), kTol);   // vec4 A along k
    REQUIRE_CHECK(check_linear(lin, 5, 7, 9, true, false, s + 1), kTol);  // scalar A
    REQUIRE_CHECK(check_linear(lin, 1, 64, 40, true, false, s + 2), kTol);
    Context conv = forced("conv2d", "conv2d.gemm_texel", mib, shuffle);
    REQUIRE_CHECK(check_conv2d(conv, Shape{2, 8, 9, 9}, Shape{40, 8, 3, 3}, true, p, s + 3), kTol);
    REQUIRE_CHECK(check_conv2d(conv, kConvCases[1].x, kConvCases[1].w, true, kConvCases[1].p, s + 4), kTol);
    for (const std::string op : {"conv2d_backward_data", "conv2d_backward_weight"}) {
      INFO(op);
      Context ctx = forced(op, op + ".gemm_texel", mib, shuffle);
      for (const auto& r : check_conv2d_backward(ctx, Shape{3, 8, 9, 9}, Shape{40, 8, 3, 3}, p, s + 5)) REQUIRE_CHECK(r, kTol);
      test::require_no_validation_messages(ctx);
    }
    for (const std::string op : {"linear_backward_data", "linear_backward_weight"}) {
      INFO(op);
      Context ctx = forced(op, op + ".gemm_texel", mib, shuffle);
      for (const auto& r : check_linear_backward(ctx, 37, 36, 13, s + 6)) REQUIRE_CHECK(r, kTol);  // vec4 A along m
      test::require_no_validation_messages(ctx);
    }
    test::require_no_validation_messages(lin);
    test::require_no_validation_messages(conv);
  }
}

TEST_CASE("the registry chooses per shape, and forced names are checked", "[ops][kernels][errors]") {
  Context& ctx = test::gpu();
  const DeviceInfo& dev = ctx.device();
  // CPU drivers take the GEMM for every shape, through texel buffers where they are large
  // enough (lavapipe), else storage buffers (SwiftShader). On GPUs: the vec4 kernel where 4
  // divides the features, else rows.
  const bool cpu = dev.type == DeviceType::Cpu;
  const std::string gemm = texel_unavailable(ctx, ".gemm_texel") ? "gemm" : "gemm_texel";
  CHECK(ops::choose_kernel(dev, "linear", Shape{1, 9216}, Shape{4096, 9216}) == (cpu ? "linear." + gemm : "linear.vec4"));
  CHECK(ops::choose_kernel(dev, "linear", Shape{3, 7}, Shape{5, 7}) == (cpu ? "linear." + gemm : "linear.rows"));
  // Convolutions: the GEMM where output groups have 64 channels or more (forward) or 96 (input
  // gradient), else the direct kernels (alexnet-fashion's conv2: 24 channels per group;
  // stride 1, so the wide one).
  // CPU drivers read their inputs through scalar texel buffers where these are large enough.
  const std::string wide = cpu && !texel_unavailable(ctx, ".wide_texel") ? "wide_texel" : "wide";
  CHECK(ops::choose_kernel(dev, "conv2d", Shape{2, 24, 13, 13}, Shape{48, 12, 3, 3}, 1) == "conv2d." + wide);
  CHECK(ops::choose_kernel(dev, "conv2d_backward_data", Shape{2, 24, 13, 13}, Shape{48, 12, 3, 3}, 1) ==
        "conv2d_backward_data." + wide);
  CHECK(ops::choose_kernel(dev, "conv2d", Shape{2, 64, 13, 13}, Shape{128, 64, 3, 3}, 1) ==
        (cpu ? "conv2d." + gemm : "conv2d.wide"));
  // The thresholds: alexnet-fashion's conv3 (64 per group) takes the GEMM forward and the
  // wide kernel for its input gradient; its conv4 (32 per group) the wide kernel; 96 the GEMM.
  CHECK(ops::choose_kernel(dev, "conv2d", Shape{2, 48, 6, 6}, Shape{64, 48, 3, 3}, 1) ==
        (cpu ? "conv2d." + gemm : "conv2d.wide"));
  CHECK(ops::choose_kernel(dev, "conv2d", Shape{2, 64, 6, 6}, Shape{64, 32, 3, 3}, 1) == "conv2d." + wide);
  CHECK(ops::choose_kernel(dev, "conv2d_backward_data", Shape{2, 48, 6, 6}, Shape{64, 48, 3, 3}, 1) ==
        "conv2d_backward_data." + wide);
  CHECK(ops::choose_kernel(dev, "conv2d", Shape{2, 48, 6, 6}, Shape{96, 48, 3, 3}, 1) ==
        (cpu ? "conv2d." + gemm : "conv2d.wide"));
  // A plan records the choice per layer.
  const ModelDesc m = load_model(std::string(VKALEX_MODEL_DIR) + "/alexnet2012.json");
  const Plan plan = lower(m, 2, dev);
  for (const auto& op : plan.ops) {
    if (op.kind == OpKind::Linear) CHECK(op.kernel == ops::choose_kernel(dev, "linear", op.in, Shape{op.out[1], op.in[1]}));
    if (op.kind == OpKind::Conv2d) {
      Shape w{op.out[1], op.in[1] / op.conv.groups, op.name == "conv1" ? 11u : op.name == "conv2" ? 5u : 3u,
              op.name == "conv1" ? 11u : op.name == "conv2" ? 5u : 3u};
      CHECK(op.kernel == ops::choose_kernel(dev, "conv2d", op.in, w, op.conv.stride_w));
      // conv1 has stride 4, where the wide kernel does not apply.
      if (op.name == "conv1") CHECK(op.kernel == (cpu ? "conv2d." + gemm : "conv2d.direct"));
    }
  }
  // A forced variant that cannot run these shapes, or does not exist, is refused clearly.
  Context vec4 = forced("linear", "linear.vec4");
  Tensor x = vec4.tensor(Shape{3, 7}), w = vec4.tensor(Shape{5, 7}), y = vec4.tensor(Shape{3, 5});
  Recorder rec(vec4);
  rec.begin();
  CHECK_THROWS_WITH(ops::linear(rec, x, w, nullptr, y, false),
                    Catch::Contains("linear.vec4") && Catch::Contains("multiple of 4"));
  rec.end();
  Context bad = forced("linear", "linear.fastest");
  CHECK_THROWS_WITH(lower(m, 1, bad.device()), Catch::Contains("linear.fastest") && Catch::Contains("linear.rows"));
  Context bad_op = forced("fft", "fft.radix2");
  CHECK_THROWS_WITH(lower(m, 1, bad_op.device()), Catch::Contains("fft"));
}

TEST_CASE("a fused ReLU keeps NaN: linear and conv2d", "[ops][kernels][nan]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const std::string& v : ops::kernel_variants("linear")) {
    INFO("variant " << v);
    Context ctx = forced("linear", v, 64 * 1024);  // small bindings: every variant applies
    // Row 0 of x holds a NaN: every output of row 0 is NaN, after the ReLU too; row 1 is finite.
    std::vector<float> xs(2 * 8, -1.0f), ws(3 * 8, 0.5f);
    xs[5] = nan;
    Tensor x = ctx.tensor(Shape{2, 8}), w = ctx.tensor(Shape{3, 8}), y = ctx.tensor(Shape{2, 3});
    ctx.upload(x, xs);
    ctx.upload(w, ws);
    Recorder rec(ctx);
    rec.begin();
    ops::linear(rec, x, w, nullptr, y, true);
    rec.end();
    rec.run();
    const auto out = ctx.download(y);
    for (int m = 0; m < 3; ++m) {
      CHECK(std::isnan(out[m]));
      CHECK(out[3 + m] == 0.0f);  // -4 after the ReLU
    }
  }
  Context& ctx = test::gpu();
  std::vector<float> xs(1 * 1 * 5 * 5, -1.0f), ws(1 * 1 * 3 * 3, 1.0f);
  xs[12] = nan;  // the centre pixel: every 3x3 output window (no padding) covers it
  Tensor x = ctx.tensor(Shape{1, 1, 5, 5}), w = ctx.tensor(Shape{1, 1, 3, 3}), y = ctx.tensor(Shape{1, 1, 3, 3});
  ctx.upload(x, xs);
  ctx.upload(w, ws);
  Recorder rec(ctx);
  rec.begin();
  ops::conv2d(rec, x, w, nullptr, y, Conv2dParams{1, 1, 0, 0, 1, true});
  rec.end();
  rec.run();
  for (float v : ctx.download(y)) CHECK(std::isnan(v));
}

TEST_CASE("every variant of LRN, max-pool, ReLU backward and bias backward matches the CPU reference", "[ops][kernels]") {
  // The texel variants read their inputs through scalar texel buffers, the buffer variants
  // through storage buffers; the arithmetic is the same, so the results must be too.
  const uint64_t s = test::seed();
  const Shape big{2, 96, 27, 27}, odd{3, 7, 5, 3};
  auto run = [&](const std::string& op, Context& ctx, bool large) {
    if (op == "lrn") {
      if (large) REQUIRE_CHECK(check_lrn(ctx, big, LrnParams{}, s, 10.0f), kTol);
      REQUIRE_CHECK(check_lrn(ctx, odd, LrnParams{4, 0.5f, 0.75f, 1.0f}, s + 1, 3.0f), kTol);
    } else if (op == "lrn_backward") {
      if (large) REQUIRE_CHECK(check_lrn_backward(ctx, big, LrnParams{}, s, 10.0f), kTol);
      REQUIRE_CHECK(check_lrn_backward(ctx, odd, LrnParams{4, 0.5f, 0.75f, 1.0f}, s + 1, 3.0f), kTol);
      REQUIRE_CHECK(check_lrn_backward(ctx, odd, LrnParams{3, 0.5f, 0.75f, 1.0f}, s + 2, 3.0f, true), kTol);  // ReLU fused
    } else if (op == "max_pool") {
      if (large) REQUIRE_CHECK(check_max_pool(ctx, big, MaxPoolParams{}, s), 0.0);
      REQUIRE_CHECK(check_max_pool(ctx, odd, MaxPoolParams{2, 2, 1, 1, 0, 0}, s + 1), 0.0);
      // 72 values: past the unrolled windows' 64, the window loops over the push constants.
      REQUIRE_CHECK(check_max_pool(ctx, Shape{2, 3, 13, 12}, MaxPoolParams{9, 8, 4, 3, 2, 1}, s + 2), 0.0);
    } else if (op == "max_pool_backward") {
      if (large) REQUIRE_CHECK(check_max_pool_backward(ctx, big, MaxPoolParams{}, s), kTol);
      REQUIRE_CHECK(check_max_pool_backward(ctx, odd, MaxPoolParams{2, 2, 1, 1, 0, 0}, s + 1), kTol);
    } else if (op == "bias_backward") {  // checked with the convolution's and linear layer's gradients
      if (large) test::require_all(check_conv2d_backward(ctx, Shape{4, 24, 28, 28}, Shape{48, 12, 3, 3}, Conv2dParams{1, 1, 1, 1, 2, false}, s));
      test::require_all(check_conv2d_backward(ctx, Shape{3, 5, 7, 9}, Shape{6, 5, 3, 3}, Conv2dParams{1, 1, 1, 1, 1, false}, s + 1));
      test::require_all(check_linear_backward(ctx, 7, 36, 13, s + 2));
    } else {
      if (large) REQUIRE_CHECK(check_relu_backward(ctx, big, s), 0.0);
      REQUIRE_CHECK(check_relu_backward(ctx, Shape{3, 7}, s + 1), 0.0);
    }
  };
  for (const std::string op : {"lrn", "lrn_backward", "max_pool", "max_pool_backward", "relu_backward", "bias_backward"}) {
    const auto variants = ops::kernel_variants(op);
    REQUIRE(variants.size() == 2);
    for (const std::string& v : variants) {
      INFO("variant " << v);
      Context ctx = forced(op, v);
      const DeviceInfo& d = ctx.device();
      if (v.find(".texel") != std::string::npos && uint64_t(d.max_texel_buffer_elements) * 4 < d.max_storage_buffer_range) {
        // SwiftShader: 65,536 texels, less than a binding; refused unless bindings are smaller.
        CHECK_THROWS_WITH(run(op, ctx, true), Catch::Contains("scalar texel buffers"));
      } else {
        run(op, ctx, true);
      }
      // Bindings of 64 KiB: every variant applies (small shapes: these ops split by images).
      Context small = forced(op, v, 64 * 1024);
      run(op, small, false);
      test::require_no_validation_messages(ctx);
      test::require_no_validation_messages(small);
    }
  }
}

TEST_CASE("VKALEX_GEMM_TILE sets the GEMM's tile, and a bad value is refused", "[ops][kernels][errors]") {
  struct Env {  // restores the environment however the test ends
    ~Env() { ::unsetenv("VKALEX_GEMM_TILE"); }
  } restore;
  Context ctx = forced("linear", "linear.gemm");
  const uint64_t s = test::seed();
  for (const char* tile : {"4x4", "1x16", "16x1", "3x5"}) {
    INFO("tile " << tile);
    ::setenv("VKALEX_GEMM_TILE", tile, 1);
    REQUIRE_CHECK(check_linear(ctx, 7, 36, 13, true, true, s), kTol);
  }
  // The texel GEMM (its lanes sharing A where the device has subgroup shuffles) at tiles
  // whose rows are not a multiple of the subgroup, on 37 rows.
  Context texel = forced("linear", "linear.gemm_texel", 1 << 20);
  for (const char* tile : {"32x8", "24x3", "5x2", "1x16"}) {
    INFO("texel GEMM, tile " << tile);
    ::setenv("VKALEX_GEMM_TILE", tile, 1);
    REQUIRE_CHECK(check_linear(texel, 37, 36, 13, true, true, s), kTol);
  }
  for (const char* bad : {"9", "0x8", "8x17", "33x8", "8x8x", "-1x4", "eight"}) {
    INFO("tile " << bad);
    ::setenv("VKALEX_GEMM_TILE", bad, 1);
    CHECK_THROWS_WITH(check_linear(ctx, 7, 36, 13, true, true, s), Catch::Contains("VKALEX_GEMM_TILE"));
  }
}

TEST_CASE("every forward kernel variant with fp16 storage matches the CPU reference", "[ops][kernels][f16]") {
  // Inputs are rounded to half before the reference sees them (check.hpp), so what is left is
  // the kernel's fp32 arithmetic and the rounding of each output to half: at most 2^-11 of an
  // element, so 1e-3 in relative L2 (DESIGN.md allows 1e-2 for fp16 storage).
  constexpr double kTol16 = 1e-3;
  const DType f16 = DType::F16;
  const uint64_t s = test::seed();
  if (!test::gpu().device().storage_buffer_16bit) {  // SwiftShader: refused, clearly
    CHECK_THROWS_WITH(check_relu(test::gpu(), Shape{3, 7}, s, f16), Catch::Contains("16-bit storage"));
    return;
  }
  for (const std::string& v : ops::kernel_variants("conv2d")) {
    Context ctx = forced("conv2d", v);
    for (size_t i = 0; i < std::size(kConvCases); ++i) {
      const Case& c = kConvCases[i];
      INFO("variant " << v << ", case " << i);
      if (texel_unavailable(ctx, v) || (wide(v) && c.p.stride_w != 1)) continue;
      REQUIRE_CHECK(check_conv2d(ctx, c.x, c.w, true, c.p, s + i, f16), kTol16);
    }
    Context small = forced("conv2d", v, 64 * 1024);  // images bound in pieces
    REQUIRE_CHECK(check_conv2d(small, Shape{23, 4, 16, 16}, Shape{8, 4, 3, 3}, true, Conv2dParams{1, 1, 1, 1, 1, true}, s + 99, f16),
                  kTol16);
    test::require_no_validation_messages(ctx);
    test::require_no_validation_messages(small);
  }
  for (const std::string& v : ops::kernel_variants("linear")) {
    INFO("variant " << v);
    Context ctx = forced("linear", v);
    if (!texel_unavailable(ctx, v)) {
      REQUIRE_CHECK(check_linear(ctx, 1, 9216, 4096, true, true, s, f16), kTol16);  // fc6
      REQUIRE_CHECK(check_linear(ctx, 3, 4096, 1000, true, false, s + 2, f16), kTol16);
      REQUIRE_CHECK(check_linear(ctx, 7, 36, 13, true, true, s + 4, f16), kTol16);  // partial tiles
      REQUIRE_CHECK(check_linear(ctx, 1, 4, 1, false, false, s + 5, f16), kTol16);
    }
    Context small = forced("linear", v, 64 * 1024);  // weights bound in blocks of rows
    REQUIRE_CHECK(check_linear(small, 5, 400, 300, true, false, s + 6, f16), kTol16);
    test::require_no_validation_messages(ctx);
    test::require_no_validation_messages(small);
  }
  for (const std::string op : {"lrn", "max_pool"}) {
    for (const std::string& v : ops::kernel_variants(op)) {
      INFO("variant " << v);
      Context ctx = forced(op, v);
      if (op == "lrn") {
        REQUIRE_CHECK(check_lrn(ctx, Shape{2, 96, 27, 27}, LrnParams{}, s, 10.0f, f16), kTol16);
        REQUIRE_CHECK(check_lrn(ctx, Shape{3, 7, 5, 3}, LrnParams{4, 0.5f, 0.75f, 1.0f}, s + 1, 3.0f, f16), kTol16);
      } else {  // exact: the maximum of halves is a half
        REQUIRE_CHECK(check_max_pool(ctx, Shape{2, 96, 27, 27}, MaxPoolParams{}, s, f16), 0.0);
        REQUIRE_CHECK(check_max_pool(ctx, Shape{3, 7, 5, 3}, MaxPoolParams{2, 2, 1, 1, 0, 0}, s + 1, f16), 0.0);
      }
      test::require_no_validation_messages(ctx);
    }
  }
  Context& ctx = test::gpu();
  REQUIRE_CHECK(check_relu(ctx, Shape{3, 7}, s, f16), 0.0);
  REQUIRE_CHECK(check_relu(ctx, Shape{2, 96, 55, 55}, s + 1, f16), 0.0);
  REQUIRE_CHECK(check_softmax(ctx, Shape{3, 1000}, s, 10.0f, f16), kTol16);
  REQUIRE_CHECK(check_softmax(ctx, Shape{5, 7}, s + 1, 10.0f, f16), kTol16);
  // Backward kernels have no f16 twin: refused by name, not run on the wrong element size.
  Tensor x16 = ctx.tensor(Shape{2, 3}, f16), y16 = ctx.tensor(Shape{2, 3}, f16);
  Recorder rec(ctx);
  rec.begin();
  CHECK_THROWS_WITH(ops::relu_backward(rec, x16, x16, y16), Catch::Contains("f32"));
  rec.end();
  test::require_no_validation_messages(ctx);
}
