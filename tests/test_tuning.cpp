// The tuning file: an entry decides the kernel for its op and shapes where its variant
// applies; forced kernels win; a damaged or foreign file is ignored; the switch turns it off.
#include <fstream>
#include <nlohmann/json.hpp>

#include "common.hpp"

using namespace vkalex;

namespace {

// alexnet-fashion's conv2 at batch 2: the built-in order takes a wide kernel everywhere (its
// texel variant where scalar texel buffers are large enough on a CPU driver).
const Shape kX{2, 24, 13, 13}, kW{48, 12, 3, 3};
std::string builtin_conv2() { return ops::choose_kernel(test::gpu().device(), "conv2d", kX, kW, 1); }
// alexnet2012's conv1: stride 4, where the wide kernel does not apply.
const Shape kX1{1, 3, 227, 227}, kW1{96, 3, 11, 11};

// Options with the tuning file on, in `dir`; the environment must not say VKALEX_TUNING=0.
ContextOptions tuned_options(const test::TempDir& dir) {
  ContextOptions o = test::options();
  o.pipeline_cache_dir = dir.path.string();
  o.tuning_file = true;
  return o;
}

TuningEntry entry(const std::string& op, const Shape& x, const Shape& w, uint32_t stride, const std::string& variant) {
  return TuningEntry{op, ops::kernel_shape_key(x, w, stride), variant, {{variant, 1.0}}, "test"};
}

// Where `o`'s Context keeps its tuning file; checks that none is there yet.
std::string tuning_path(const ContextOptions& o) {
  Context ctx(o);
  CHECK(ctx.tuning_file_status() == "no tuning file yet");
  CHECK(ctx.device().tuned_kernels.empty());
  return ctx.tuning_file_path();
}

}  // namespace

TEST_CASE("a tuning file entry decides the kernel where its variant applies", "[context][kernels][tuning]") {
  test::TempDir dir;
  test::ScopedEnv env("VKALEX_TUNING", "1");
  const ContextOptions o = tuned_options(dir);
  const std::string path = tuning_path(o);
  // Named like the pipeline cache: device UUID and driver version, in the same folder.
  CHECK_THAT(path, Catch::StartsWith(dir.path.string() + "/tuning-") && Catch::EndsWith(".json"));
  const DeviceInfo builtin = test::gpu().device();
  REQUIRE_THAT(builtin_conv2(), Catch::StartsWith("conv2d.wide"));
  const std::string builtin_conv1 = ops::choose_kernel(builtin, "conv2d", kX1, kW1, 4);
  REQUIRE(builtin_conv1 != "conv2d.wide");

  const std::vector<TuningEntry> entries = {
      entry("conv2d", kX, kW, 1, "conv2d.direct"),                              // applies: taken
      entry("conv2d", kX1, kW1, 4, "conv2d.wide"),                              // stride 4: passed over
      entry("linear", Shape{3, 7}, Shape{5, 7}, 1, "linear.vec4"),              // 7 features: passed over
      entry("conv2d_backward_data", kX, kW, 1, "conv2d.direct"),                // another op's variant
      entry("lrn", Shape{2, 24, 13, 13}, Shape{}, 1, "lrn.no_such_variant"),   // unknown
  };
  REQUIRE(save_tuning_file(path, builtin, entries) == entries.size());

  {
    Context ctx(o);
    CHECK(ctx.tuning_file_status() == "loaded");
    const DeviceInfo& dev = ctx.device();
    CHECK(dev.tuned_kernels.size() == entries.size());
    CHECK(ops::choose_kernel(dev, "conv2d", kX, kW, 1) == "conv2d.direct");
    CHECK(ops::choose_kernel(dev, "conv2d", Shape{3, 24, 13, 13}, kW, 1) == builtin_conv2());  // another batch
    CHECK(ops::choose_kernel(dev, "conv2d", kX1, kW1, 4) == builtin_conv1);
    CHECK(ops::choose_kernel(dev, "linear", Shape{3, 7}, Shape{5, 7}) == ops::choose_kernel(builtin, "linear", Shape{3, 7}, Shape{5, 7}));
    CHECK(ops::choose_kernel(dev, "conv2d_backward_data", kX, kW, 1) == ops::choose_kernel(builtin, "conv2d_backward_data", kX, kW, 1));
    CHECK(ops::choose_kernel(dev, "lrn", Shape{2, 24, 13, 13}, Shape{}) == ops::choose_kernel(builtin, "lrn", Shape{2, 24, 13, 13}, Shape{}));
    // The plan records the tuned choice (alexnet-fashion's conv2 at batch 2), and the op runs it correctly.
    const Plan plan = lower(load_model(std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json"), 2, dev);
    bool seen = false;
    for (const PlanOp& op : plan.ops) {
      if (op.name != "conv2") continue;
      REQUIRE(op.in == kX);
      CHECK(op.kernel == "conv2d.direct");
      seen = true;
    }
    CHECK(seen);
    REQUIRE_CHECK(check_conv2d(ctx, kX, kW, true, Conv2dParams{1, 1, 1, 1, 2, true}, test::seed()), 1e-5);
    test::require_no_validation_messages(ctx);
  }
  SECTION("a forced kernel wins over the tuning file") {
    ContextOptions f = o;
    f.kernels["conv2d"] = "conv2d.gemm";
    Context ctx(f);
    CHECK(ctx.tuning_file_status() == "loaded");
    CHECK(ops::choose_kernel(ctx.device(), "conv2d", kX, kW, 1) == "conv2d.gemm");
  }
  SECTION("ContextOptions::tuning_file = false ignores it") {
    ContextOptions off = o;
    off.tuning_file = false;
    Context ctx(off);
    CHECK(ctx.tuning_file_status() == "off");
    CHECK(ctx.tuning_file_path().empty());
    CHECK(ctx.device().tuned_kernels.empty());
    CHECK(ops::choose_kernel(ctx.device(), "conv2d", kX, kW, 1) == builtin_conv2());
  }
  SECTION("VKALEX_TUNING=0 ignores it") {
    test::ScopedEnv zero("VKALEX_TUNING", "0");
    Context ctx(o);
    CHECK(ctx.tuning_file_status() == "off");
    CHECK(ops::choose_kernel(ctx.device(), "conv2d", kX, kW, 1) == builtin_conv2());
  }
  SECTION("saving merges: other shapes are kept, the same shapes replaced") {
    CHECK(save_tuning_file(path, builtin, {entry("conv2d", kX, kW, 1, "conv2d.gemm"),
                                           entry("max_pool", kX, Shape{}, 1, "max_pool.buffer")}) == entries.size() + 1);
    const TuningFile file = read_tuning_file(path, builtin);
    CHECK(file.status == "loaded");
    CHECK(file.entries.size() == entries.size() + 1);
    Context ctx(o);
    CHECK(ops::choose_kernel(ctx.device(), "conv2d", kX, kW, 1) == "conv2d.gemm");
    CHECK(ctx.device().tuned_kernels.count({"linear", ops::kernel_shape_key(Shape{3, 7}, Shape{5, 7})}) == 1);
  }
}

TEST_CASE("a damaged or foreign tuning file is ignored, never an error", "[context][kernels][tuning][errors]") {
  test::TempDir dir;
  test::ScopedEnv env("VKALEX_TUNING", "1");
  const ContextOptions o = tuned_options(dir);
  const std::string path = tuning_path(o);
  const DeviceInfo& real = test::gpu().device();
  save_tuning_file(path, real, {entry("conv2d", kX, kW, 1, "conv2d.direct")});
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  nlohmann::json doc = nlohmann::json::parse(text);
  auto write = [&](const std::string& contents) { std::ofstream(path, std::ios::binary | std::ios::trunc) << contents; };
  std::string why;
  SECTION("truncated") {
    write(text.substr(0, text.size() / 2));
    why = "ignored: not JSON";
  }
  SECTION("not JSON at all") {
    write(std::string("\0\xff garbage", 10));
    why = "ignored: not JSON";
  }
  SECTION("another schema") {
    doc["schema"] = "vkalex-tuning/999";
    write(doc.dump());
    why = "ignored: not a vkalex tuning file";
  }
  SECTION("a JSON array") {
    write("[1, 2, 3]");
    why = "ignored: not a vkalex tuning file";
  }
  SECTION("another device's UUID") {
    DeviceInfo other = real;
    other.uuid[0] ^= 0xff;
    std::filesystem::remove(path);
    save_tuning_file(path, other, {entry("conv2d", kX, kW, 1, "conv2d.direct")});
    why = "ignored: made for another device";
  }
  SECTION("another driver version") {
    doc["driver_version"] = uint64_t(real.driver_version) + 1;
    write(doc.dump());
    why = "ignored: made for another driver version";
  }
  SECTION("a damaged entry") {
    doc["entries"].push_back({{"op", "conv2d"}, {"key", 7}});
    write(doc.dump());
    why = "ignored: entry 1 is damaged";
  }
  SECTION("entries not a list") {
    doc["entries"] = "conv2d";
    write(doc.dump());
    why = "ignored: no list of entries";
  }
  CHECK_THAT(read_tuning_file(path, real).status, Catch::StartsWith(why));
  Context ctx(o);
  CHECK_THAT(ctx.tuning_file_status(), Catch::StartsWith(why));
  CHECK(ctx.device().tuned_kernels.empty());
  CHECK(ops::choose_kernel(ctx.device(), "conv2d", kX, kW, 1) == builtin_conv2());
  // Saving over a file that is not this device's starts afresh.
  CHECK(save_tuning_file(path, real, {entry("linear", Shape{3, 8}, Shape{5, 8}, 1, "linear.rows")}) == 1);
  CHECK(read_tuning_file(path, real).status == "loaded");
}

TEST_CASE("the tuning file follows XDG_CACHE_HOME, and no cache folder turns it off", "[context][tuning]") {
  test::TempDir dir;
  test::ScopedEnv env("VKALEX_TUNING", "1");
  ContextOptions o = test::options();
  o.tuning_file = true;
  {
    test::ScopedEnv xdg("XDG_CACHE_HOME", dir.path.c_str());
    Context ctx(o);
    CHECK_THAT(ctx.tuning_file_path(), Catch::StartsWith(dir.path.string() + "/vkalex/tuning-"));
    CHECK(ctx.tuning_file_status() == "no tuning file yet");
  }
  test::ScopedEnv xdg("XDG_CACHE_HOME", "");
  test::ScopedEnv home("HOME", "");
  Context ctx(o);
  CHECK(ctx.tuning_file_path().empty());
  CHECK_THAT(ctx.tuning_file_status(), Catch::StartsWith("off"));
}
