// Device listing and choice, memory, transfers and the pipeline cache.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common.hpp"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

DeviceInfo fake(uint32_t index, const char* name, DeviceType type) {
  DeviceInfo d;
  d.index = index;
  d.name = name;
  d.type = type;
  return d;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Sets an environment variable for one scope.

}  // namespace

TEST_CASE("list_devices describes each device", "[context]") {
  const auto devices = list_devices();
  REQUIRE(!devices.empty());
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& d = devices[i];
    INFO(d.name);
    CHECK(d.index == i);
    CHECK(!d.name.empty());
    CHECK(!d.vendor.empty());
    CHECK(d.api_version >= (1u << 22 | 1u << 12));  // Vulkan 1.1
    CHECK(!d.heaps.empty());
    CHECK(d.subgroup_size >= 1);
    CHECK(d.max_storage_buffer_range >= 16384);
    CHECK(d.min_storage_buffer_offset_alignment >= 1);
    if (d.timestamps) CHECK(d.timestamp_period_ns > 0);
  }
}

TEST_CASE("select_device prefers discrete > integrated > virtual > CPU", "[context]") {
  std::vector<DeviceInfo> devices{fake(0, "llvmpipe", DeviceType::Cpu),
                                  fake(1, "Intel(R) UHD Graphics", DeviceType::IntegratedGpu),
                                  fake(2, "NVIDIA GeForce RTX 4090", DeviceType::DiscreteGpu),
                                  fake(3, "Virtio GPU", DeviceType::VirtualGpu)};
  CHECK(select_device(devices, "") == 2);
  devices.erase(devices.begin() + 2);
  CHECK(select_device(devices, "") == 1);
  devices.erase(devices.begin() + 1);
  CHECK(select_device(devices, "") == 1);  // virtual before CPU
  CHECK(select_device(devices, "LLVM") == 0);
  CHECK(select_device(devices, "1") == 1);
  CHECK_THROWS_WITH(select_device(devices, "2"), Catch::Contains("out of range") && Catch::Contains("llvmpipe"));
  CHECK_THROWS_WITH(select_device(devices, "radeon"),
                    Catch::Contains("radeon") && Catch::Contains("found 2 device(s)") && Catch::Contains("Virtio GPU"));
  CHECK_THROWS_WITH(select_device({}, ""), Catch::Contains("mesa-vulkan-drivers"));
}

TEST_CASE("a Context picks its device by index, by name and by VKALEX_DEVICE", "[context]") {
  const auto devices = list_devices();
  REQUIRE(!devices.empty());
  const std::string name = devices.back().name;
  const std::string last = std::to_string(devices.size() - 1);
  ::unsetenv("VKALEX_DEVICE");

  SECTION("by index") {
    auto o = test::options();
    o.device = last;
    Context ctx(o);
    CHECK(ctx.device().name == name);
    test::require_no_validation_messages(ctx);
  }
  SECTION("by a case-changed part of the name") {
    auto o = test::options();
    o.device = upper(name.substr(0, std::min<size_t>(name.size(), 6)));
    Context ctx(o);
    CHECK(ctx.device().index == select_device(devices, *o.device));
  }
  SECTION("by VKALEX_DEVICE") {
    test::ScopedEnv env("VKALEX_DEVICE", last.c_str());
    Context ctx(test::options());
    CHECK(ctx.device().name == name);
  }
  SECTION("the API's choice wins over VKALEX_DEVICE") {
    test::ScopedEnv env("VKALEX_DEVICE", "no such device anywhere");
    auto o = test::options();
    o.device = last;
    Context ctx(o);
    CHECK(ctx.device().name == name);
  }
  SECTION("a name that matches nothing is a clear error") {
    auto o = test::options();
    o.device = "no such device anywhere";
    CHECK_THROWS_WITH(Context(o), Catch::Contains("no device name contains \"no such device anywhere\"") &&
                                      Catch::Contains(name));
    test::ScopedEnv env("VKALEX_DEVICE", "nonexistent gpu");
    CHECK_THROWS_WITH(Context(test::options()), Catch::Contains("nonexistent gpu"));
  }
}

TEST_CASE("samples/info explains a machine without a Vulkan driver", "[context][info]") {
  // Point the loader at a driver manifest that does not exist: no device at all.
  const auto [status, out] =
      test::run_command("env VK_ICD_FILENAMES=/nonexistent/icd.json VK_DRIVER_FILES=/nonexistent/icd.json " VKALEX_INFO_EXE);
  INFO(out);
  CHECK(status == 2);
  CHECK_THAT(out, Catch::Contains("lavapipe") && Catch::Contains("mesa-vulkan-drivers"));
}

TEST_CASE("samples/info lists the device and passes its self-check", "[context][info]") {
  // VK_INSTANCE_LAYERS too: the loader's notice that it added the layer is no validation message.
  const auto [status, out] = test::run_command(
      std::string("env VKALEX_VALIDATION=1 VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation " VKALEX_INFO_EXE " --seed ") +
      std::to_string(test::seed()));
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("subgroup size") && Catch::Contains("all ops PASS"));
  CHECK_THAT(out, !Catch::Contains("FAIL") && !Catch::Contains("validation:"));
  const auto [bad, usage] = test::run_command(VKALEX_INFO_EXE " --frobnicate");
  CHECK(bad == 2);
  CHECK_THAT(usage, Catch::Contains("unknown argument"));
}

TEST_CASE("upload and download round-trip, directly and through staging", "[context][memory]") {
  auto o = test::options();
  const bool staging = GENERATE(false, true);
  o.force_staging = staging;
  Context ctx(o);
  if (staging) CHECK_FALSE(ctx.direct_host_access());
  const auto data = random_uniform(1000003, test::seed());
  Tensor t = ctx.tensor(Shape{1000003});
  ctx.upload(t, data);
  CHECK(ctx.download(t) == data);
  std::vector<uint32_t> idx(17);
  for (uint32_t i = 0; i < idx.size(); ++i) idx[i] = i * 2654435761u;
  Tensor u = ctx.tensor(Shape{17}, DType::U32);
  ctx.upload(u, idx);
  CHECK(ctx.download_u32(u) == idx);
  ctx.fill(t, 2.5f);
  for (float v : ctx.download(t)) REQUIRE(v == 2.5f);
  // The ops work the same on either path.
  REQUIRE_CHECK(check_conv2d(ctx, Shape{2, 3, 9, 9}, Shape{4, 3, 3, 3}, true, Conv2dParams{}, test::seed()), 1e-5);

  CHECK_THROWS_WITH(ctx.upload(t, std::vector<float>(5)), Catch::Contains("4000012 bytes but 20"));
  CHECK_THROWS_WITH(ctx.upload(t, std::vector<uint32_t>(1000003)), Catch::Contains("f32 tensor"));
  CHECK_THROWS_WITH(ctx.download(Tensor{}), Catch::Contains("empty"));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("many tensors share a few memory blocks and free correctly", "[context][memory]") {
  Context& ctx = test::gpu();
  std::vector<Tensor> tensors;
  for (uint32_t i = 0; i < 5000; ++i) tensors.push_back(ctx.tensor(Shape{i % 97 + 1}));
  // Every tensor keeps its own data: no two overlap.
  for (uint32_t i = 0; i < tensors.size(); i += 499) {
    ctx.fill(tensors[i], float(i));
  }
  for (uint32_t i = 0; i < tensors.size(); i += 499) {
    for (float v : ctx.download(tensors[i])) REQUIRE(v == float(i));
    if (i + 1 < tensors.size()) CHECK_FALSE(tensors[i].aliases(tensors[i + 1]));
  }
  tensors.clear();
  Tensor again = ctx.tensor(Shape{10});
  CHECK(again.bytes() == 40);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("asking for more memory than the device has names the size", "[context][memory][errors]") {
  Context& ctx = test::gpu();
  uint64_t total = 0;
  for (const auto& h : ctx.device().heaps) total += h.size;
  // Twice all the memory the device reports, in one tensor.
  const uint32_t rows = static_cast<uint32_t>(std::min<uint64_t>(total * 2 / (1u << 20) / 4 + 1, UINT32_MAX));
  try {
    Tensor t = ctx.tensor(Shape{rows, 1u << 20});
    FAIL("allocation of " << t.bytes() << " bytes succeeded");
  } catch (const Error& e) {
    const std::string bytes = std::to_string(uint64_t(rows) << 22);
    CHECK_THAT(e.what(), Catch::Contains(bytes));
    CHECK(e.vk_result() == "VK_ERROR_OUT_OF_DEVICE_MEMORY");
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("the pipeline cache is saved per device and a corrupt one is ignored", "[context][pipelines]") {
  test::TempDir dir;
  auto o = test::options();
  o.pipeline_cache = true;
  o.pipeline_cache_dir = dir.path.string();
  std::string path;
  {
    Context ctx(o);
    path = ctx.pipeline_cache_path();
    CHECK(ctx.pipeline_cache_status() == "no cache file yet");
    REQUIRE_CHECK(check_relu(ctx, Shape{10}, 1), 0.0);
  }
  REQUIRE(std::filesystem::exists(path));
  CHECK(std::filesystem::path(path).parent_path() == dir.path);
  {
    Context ctx(o);
    CHECK(ctx.pipeline_cache_status() == "loaded");
  }
  const auto size = std::filesystem::file_size(path);
  SECTION("truncated") {
    std::filesystem::resize_file(path, size / 2);
    Context ctx(o);
    CHECK_THAT(ctx.pipeline_cache_status(), Catch::StartsWith("ignored"));
    REQUIRE_CHECK(check_relu(ctx, Shape{10}, 2), 0.0);
  }
  SECTION("bytes flipped") {
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size - 5));
      f.put('\x5a');
    }
    Context ctx(o);
    CHECK_THAT(ctx.pipeline_cache_status(), Catch::StartsWith("ignored"));
    REQUIRE_CHECK(check_relu(ctx, Shape{10}, 3), 0.0);
  }
  SECTION("garbage") {
    std::ofstream(path, std::ios::binary) << "not a cache at all";
    Context ctx(o);
    CHECK_THAT(ctx.pipeline_cache_status(), Catch::StartsWith("ignored"));
    REQUIRE_CHECK(check_relu(ctx, Shape{10}, 4), 0.0);
  }
  {
    Context ctx(o);  // the one saved after the damaged one was ignored
    CHECK(ctx.pipeline_cache_status() == "loaded");
  }
}

TEST_CASE("XDG_CACHE_HOME decides where the pipeline cache goes", "[context][pipelines]") {
  test::TempDir dir;
  test::ScopedEnv env("XDG_CACHE_HOME", dir.path.c_str());
  auto o = test::options();
  o.pipeline_cache = true;
  Context ctx(o);
  CHECK_THAT(ctx.pipeline_cache_path(), Catch::StartsWith(dir.path.string() + "/vkalex/pipelines-"));
}

TEST_CASE("half conversions round to nearest even, saturate to infinity and keep NaN", "[context][memory][f16]") {
  // Every half converts to float and back to itself (NaN to a NaN).
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(uint16_t(h));
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    INFO("half 0x" << std::hex << h);
    REQUIRE(std::isnan(f) == nan);
    if (nan) {
      REQUIRE(std::isnan(half_to_float(float_to_half(f))));
    } else {
      REQUIRE(float_to_half(f) == h);
    }
  }
  // Hand-worked cases: ties go to the even neighbour, past 65504 + half a step is infinity,
  // 2^-25 (half the smallest subnormal) is a tie that rounds to zero.
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65519.99f) == 0x7bff);
  CHECK(float_to_half(65520.0f) == 0x7c00);
  CHECK(float_to_half(-1e9f) == 0xfc00);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: tie, to even 2
  CHECK(float_to_half(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)) == 0x0400);  // carries into the smallest normal
  CHECK(float_to_half(-0.0f) == 0x8000);
  // Random floats: the result is a nearest half (checked against its neighbours in double).
  const auto values = random_uniform(200000, test::seed(), 1.0f);
  for (size_t i = 0; i < values.size(); ++i) {
    const float f = std::ldexp(values[i], int(i % 40) - 26);  // 2^-26 .. 2^13, both signs
    const uint16_t h = float_to_half(f);
    const double got = std::fabs(double(half_to_float(h)) - f);
    const uint16_t mag = h & 0x7fff;
    INFO("value " << f << " -> 0x" << std::hex << h);
    for (int step : {-1, 1}) {
      if ((mag == 0 && step < 0) || mag + step >= 0x7c00) continue;
      const uint16_t other = uint16_t((h & 0x8000) | (mag + step));
      const double d = std::fabs(double(half_to_float(other)) - f);
      REQUIRE((got < d || (got == d && (h & 1) == 0)));
    }
  }
}

TEST_CASE("f16 tensors: half the bytes, uploads round, downloads widen, directly and through staging",
          "[context][memory][f16]") {
  auto o = test::options();
  const bool staging = GENERATE(false, true);
  o.force_staging = staging;
  Context ctx(o);
  const auto data = random_uniform(100003, test::seed(), 1000.0f);  // odd: a last half of a word
  Tensor t = ctx.tensor(Shape{100003}, DType::F16);
  CHECK(t.bytes() == 2 * 100003);
  ctx.upload(t, data);
  const auto back = ctx.download(t);
  REQUIRE(back.size() == data.size());
  for (size_t i = 0; i < data.size(); ++i) REQUIRE(back[i] == half_to_float(float_to_half(data[i])));
  ctx.fill(t, std::numeric_limits<float>::quiet_NaN());
  for (float v : ctx.download(t)) REQUIRE(std::isnan(v));
  ctx.fill(t, -2.5f);
  for (float v : ctx.download(t)) REQUIRE(v == -2.5f);
  // The recorder fills whole 32-bit words: an even count only.
  Tensor even = ctx.tensor(Shape{6}, DType::F16);
  Recorder rec(ctx);
  rec.begin();
  rec.fill(even, 0.5f);
  CHECK_THROWS_WITH(rec.fill(t, 0.5f), Catch::Contains("even element count"));
  CHECK_THROWS_WITH(rec.copy(ctx.tensor(Shape{3}), ctx.tensor(Shape{6}, DType::F16)), Catch::Contains("source is f32"));
  rec.end();
  rec.run();
  CHECK(ctx.download(even) == std::vector<float>(6, 0.5f));
  CHECK_THROWS_WITH(ctx.upload(t, std::vector<float>(5)), Catch::Contains("100003 elements but 5"));
  CHECK_THROWS_WITH(ctx.download_u32(t), Catch::Contains("is f16"));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("running out of memory: the engine's limit refuses allocations beyond it, a batch that cannot fit names the one "
          "that does, and the samples and the C API say so",
          "[context][memory][errors][hardening]") {
  const ModelDesc m = load_model(std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json");
  const auto params = random_parameters(m, test::seed());
  ContextOptions o = test::options();
  o.limits.device_memory = 24ull << 20;
  Context ctx(o);
  CHECK(ctx.memory_budget() == (24ull << 20));
  try {
    Tensor t = ctx.tensor(Shape{25u << 18});  // 25 MiB
    FAIL("a tensor beyond the limit was allocated");
  } catch (const Error& e) {
    CHECK(e.vk_result() == "VK_ERROR_OUT_OF_DEVICE_MEMORY");
    CHECK_THAT(e.what(), Catch::Contains("beyond the engine's limit of 24.0 MiB"));
  }
  Net net(ctx, m);
  net.set_parameters(params);
  uint32_t fits = 0;
  try {
    net.prepare(100000);
    FAIL("batch 100000 was prepared within 24 MiB");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.vk_result() == "VK_ERROR_OUT_OF_DEVICE_MEMORY");
    const std::string text = e.what();
    const size_t at = text.find("at most batch ");
    REQUIRE(at != std::string::npos);
    fits = uint32_t(std::stoul(text.substr(at + 14)));
  }
  CHECK(fits > 10);
  CHECK(fits < 100000);
  // Half of that runs, and gives what an unlimited device gives.
  const uint32_t batch = fits / 2;
  const Shape s = m.input_shape(batch);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 1, 1.0f));
  const ForwardResult got = net.forward(x);
  Context& free_ctx = test::gpu();
  Net reference(free_ctx, m);
  reference.set_parameters(params);
  CHECK(got.probabilities == reference.forward(x).probabilities);
  CHECK(ctx.memory_in_use() <= ctx.memory_budget());
  // A trainer that cannot fit says so before allocating.
  CHECK_THROWS_WITH(Trainer(net, 50000), Catch::Contains("Trainer of alexnet-fashion: batch 50000") &&
                                             Catch::Contains("at most batch"));
  test::require_no_validation_messages(ctx);

  // The samples: a clear message and status 1; a bad limit is refused by name.
  std::string images;
  const std::string image = std::string(VKALEX_TEST_DATA_DIR) + "/../../samples/data/fashion-test-0000-ankle-boot.png";
  for (int i = 0; i < 64; ++i) images += " " + image;
  const auto [status, out] = test::run_command("env VKALEX_MEMORY_LIMIT=8 " VKALEX_CLASSIFY_EXE + images, true);
  INFO(out);
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("batch 64 needs") && Catch::Contains("at most batch"));
  const auto [bad, out2] = test::run_command("env VKALEX_MEMORY_LIMIT=lots " VKALEX_CLASSIFY_EXE " " + image, true);
  CHECK(bad == 1);
  CHECK_THAT(out2, Catch::Contains("VKALEX_MEMORY_LIMIT: \"lots\""));
  const auto [train, out3] = test::run_command("env VKALEX_MEMORY_LIMIT=8 " VKALEX_TRAIN_EXE " --model " +
                                                   std::string(VKALEX_MODEL_DIR) +
                                                   "/alexnet-fashion.json --data fashion-mnist --limit 512 --batch 512 "
                                                   "--epochs 1 --out " + (fs::temp_directory_path() / "vkalex-oom-train").string(),
                                               true);
  INFO(out3);
  CHECK(train == 1);
  CHECK_THAT(out3, Catch::Contains("batch 512 needs") && Catch::Contains("at most batch"));
  fs::remove_all(fs::temp_directory_path() / "vkalex-oom-train");
}
