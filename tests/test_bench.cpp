// samples/bench end to end: it verifies before timing, reports what it timed with FLOP counts
// that match a hand count, writes consistent JSON, and refuses bad arguments.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>
#include <string>

#include "common.hpp"

namespace {

std::pair<int, std::string> run(const std::string& args) {
  return test::run_command(std::string(VKALEX_BENCH_EXE) + " " + args, true);
}

const std::string kModel = std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

const nlohmann::json& layer(const nlohmann::json& run, const std::string& name, const std::string& phase) {
  for (const auto& l : run.at("layers"))
    if (l.at("name") == name && l.at("phase") == phase) return l;
  FAIL("no layer " << name << " " << phase);
  throw std::logic_error("unreachable");
}

// What every run must say about itself, whatever the mode.
void check_run(const nlohmann::json& r, uint32_t batch, double tolerance = 1e-4) {
  CHECK(r.at("batch") == batch);
  CHECK(r.at("verify").at("passed") == true);
  CHECK(r.at("verify").at("rel_l2").get<double>() <= tolerance);
  const double med = r.at("median_ms"), lo = r.at("min_ms"), hi = r.at("max_ms");
  CHECK(lo <= med);
  CHECK(med <= hi);
  CHECK(r.at("images_per_s").get<double>() == Approx(batch * 1000.0 / med).epsilon(1e-9));
  CHECK(r.at("gflops").get<double>() == Approx(r.at("flop").get<double>() / (med * 1e6)).epsilon(1e-9));
  double gpu = 0;
  for (const auto& l : r.at("layers")) {
    INFO(l.dump());
    CHECK(l.at("gpu_ms").get<double>() > 0);  // every layer ran and was timed
    CHECK(l.at("dispatches").get<int>() >= 1);
    const double ms = l.at("gpu_ms");
    CHECK(l.at("gflops").get<double>() == Approx(l.at("flop").get<double>() / (ms * 1e6)).epsilon(1e-9));
    CHECK(l.at("gbps").get<double>() == Approx(l.at("bytes").get<double>() / (ms * 1e6)).epsilon(1e-9));
    gpu += ms;
  }
  CHECK(r.at("gpu_ms").get<double>() == Approx(gpu).epsilon(1e-9));
}

}  // namespace

TEST_CASE("bench: forward passes at two batch sizes, FLOP by hand, JSON consistent", "[bench]") {
  test::TempDir dir;
  const std::string json = dir / "forward.json";
  const auto [status, out] = run("--model " + kModel + " --batch 2,4 --repeat 2 --warmup 1 --json " + json);
  INFO(out);
  REQUIRE(status == 0);
  CHECK_THAT(out, Catch::Contains("verified a forward pass at batch 2 against the CPU reference"));
  const auto doc = read_json(json);
  CHECK(doc.at("schema") == "vkalex-bench/1");
  CHECK(doc.at("model") == "alexnet-fashion");
  CHECK(doc.at("mode") == "forward");
  CHECK(doc.at("storage") == "f32");
  for (const char* key : {"name", "vendor", "driver", "driver_version", "api_version"}) CHECK(doc.at("device").contains(key));
  CHECK(doc.at("device").at("uuid").get<std::string>().size() == 32);
  REQUIRE(doc.at("runs").size() == 2);
  for (int i = 0; i < 2; ++i) {
    const auto& r = doc.at("runs")[i];
    const uint64_t n = i == 0 ? 2 : 4;
    check_run(r, uint32_t(n));
    // conv1: 24 filters of 1x5x5 over a 28x28 output (padding 2), plus the bias adds.
    CHECK(layer(r, "conv1", "forward").at("flop") == 2 * n * 24 * 28 * 28 * 25 + n * 24 * 28 * 28);
    // conv2: groups 2, 12 input channels per group, 3x3, 48 filters over 13x13.
    CHECK(layer(r, "conv2", "forward").at("flop") == 2 * n * 48 * 13 * 13 * 12 * 9 + n * 48 * 13 * 13);
    // fc6: 48 x 2 x 2 = 192 features in, 256 out.
    CHECK(layer(r, "fc6", "forward").at("flop") == 2 * n * 256 * 192 + n * 256);
    CHECK(layer(r, "fc6", "forward").at("bytes") == 4 * (n * 192 + 256 * 192 + 256 + n * 256));
    CHECK(layer(r, "norm1", "forward").at("flop") == 0);
    uint64_t sum = 0;
    for (const auto& l : r.at("layers")) sum += l.at("flop").get<uint64_t>();
    CHECK(r.at("flop").get<uint64_t>() == sum);  // a forward pass is its layers
  }

  // compare.py turns the file into a table and a chart.
  const std::string md = dir / "table.md", svg = dir / "chart.svg";
  const auto [cstatus, cout] = test::run_command("python3 " + std::string(VKALEX_BENCH_DIR) + "/compare.py " + json +
                                                 " --markdown " + md + " --svg " + svg);
  INFO(cout);
  CHECK(cstatus == 0);
  std::ifstream t(md);
  const std::string table((std::istreambuf_iterator<char>(t)), std::istreambuf_iterator<char>());
  CHECK_THAT(table, Catch::Contains("| alexnet-fashion | forward | 2 |") && Catch::Contains("| conv1 forward |"));
  CHECK(std::ifstream(svg).good());
}

TEST_CASE("bench --fp16: forward passes with fp16 storage, bytes counted in halves", "[bench][f16]") {
  test::TempDir dir;
  const std::string json = dir / "f16.json";
  const auto [status, out] = run("--model " + kModel + " --fp16 --batch 2 --repeat 2 --warmup 0 --json " + json);
  INFO(out);
  if (!test::gpu().device().storage_buffer_16bit) {
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains("16-bit storage"));
    return;
  }
  REQUIRE(status == 0);
  const auto doc = read_json(json);
  CHECK(doc.at("storage") == "f16");
  const auto& r = doc.at("runs")[0];
  check_run(r, 2, 1e-2);
  CHECK(r.at("verify").at("rel_l2").get<double>() > 1e-6);  // halves were stored
  const uint64_t n = 2;
  CHECK(layer(r, "fc6", "forward").at("bytes") == 2 * (n * 192 + 256 * 192 + 256 + n * 256));
}

TEST_CASE("bench: a training step with the device's peak", "[bench]") {
  test::TempDir dir;
  const std::string json = dir / "train.json";
  const auto [status, out] = run("--model " + kModel + " --mode train --batch 4 --repeat 2 --warmup 1 --peak --json " + json);
  INFO(out);
  REQUIRE(status == 0);
  CHECK_THAT(out, Catch::Contains("verified a training step at batch 2"));
  const auto doc = read_json(json);
  const auto& peak = doc.at("peak");
  CHECK(peak.at("fma_scalar_gflops").get<double>() > 0);
  CHECK(peak.at("fma_vec4_gflops").get<double>() > 0);
  CHECK(peak.at("copy_gbps").get<double>() > 0);
  const auto& r = doc.at("runs")[0];
  check_run(r, 4);
  const uint64_t n = 4;
  // Backward of conv2: its input gradient and its weight gradient, each as many multiply-adds
  // as the forward, plus the bias gradient; conv1 (the first layer) has no input gradient.
  const uint64_t conv2_macs = n * 48 * 13 * 13 * 12 * 9, conv1_macs = n * 24 * 28 * 28 * 25;
  CHECK(layer(r, "conv2", "backward").at("flop") == 4 * conv2_macs + n * 48 * 13 * 13);
  CHECK(layer(r, "conv1", "backward").at("flop") == 2 * conv1_macs + n * 24 * 28 * 28);
  for (const char* name : {"loss", "sgd"}) CHECK(layer(r, name, name == std::string("loss") ? "loss" : "update").at("gpu_ms") > 0);
  for (const auto& l : r.at("layers")) {
    const double share = l.at("share_of_peak");
    CHECK(share > 0);
    CHECK(share == Approx(l.at("flop").get<double>() ? l.at("gflops").get<double>() / peak.at("fma_vec4_gflops").get<double>()
                                                     : l.at("gbps").get<double>() / peak.at("copy_gbps").get<double>()));
  }
}

TEST_CASE("bench --tune times each variant, writes the tuning file, and the next Context takes it", "[bench][tuning]") {
  test::TempDir dir;
  const std::string json = dir / "tune.json";
  // Training mode: the forward ops and the backward ops are tuned.
  const std::string env = "VKALEX_TUNING=1 XDG_CACHE_HOME=" + dir.path.string() + " ";
  const auto [status, out] = test::run_command(env + VKALEX_BENCH_EXE + " --model " + kModel +
                                               " --mode train --batch 2 --repeat 1 --warmup 0 --tune --json " + json);
  INFO(out);
  REQUIRE(status == 0);
  CHECK_THAT(out, Catch::Contains("tuned alexnet-fashion train, batch 2") && Catch::Contains("tuning file: loaded"));
  const auto doc = read_json(json);
  check_run(doc.at("runs")[0], 2);
  const std::string path = doc.at("tuning_file").at("path");
  CHECK_THAT(path, Catch::StartsWith(dir.path.string() + "/vkalex/tuning-"));
  CHECK(doc.at("tuning_file").at("status") == "loaded");

  // The file: this device's, every choice among the variants timed and (nearly) the fastest.
  const auto file = read_json(path);
  CHECK(file.at("schema") == "vkalex-tuning/1");
  CHECK(file.at("uuid") == doc.at("device").at("uuid"));
  const auto& entries = file.at("entries");
  CHECK(entries.size() == doc.at("tuned").size());  // nothing else was in the file
  test::ScopedEnv on("VKALEX_TUNING", "1");
  vkalex::ContextOptions o = test::options();
  o.tuning_file = true;
  o.pipeline_cache_dir = dir.path.string() + "/vkalex";
  vkalex::Context ctx(o);
  CHECK(ctx.tuning_file_status() == "loaded");
  const vkalex::DeviceInfo& dev = ctx.device();
  CHECK(dev.tuned_kernels.size() == entries.size());
  std::set<std::string> ops_tuned;
  for (const auto& e : entries) {
    INFO(e.dump());
    const std::string op = e.at("op"), variant = e.at("variant");
    ops_tuned.insert(op);
    const auto& ms = e.at("ms");
    REQUIRE(ms.size() >= 2);
    double best = 1e300;
    for (const auto& [v, t] : ms.items()) {
      CHECK(t.get<double>() > 0);
      best = std::min(best, t.get<double>());
      const auto all = vkalex::ops::kernel_variants(op);
      CHECK(std::find(all.begin(), all.end(), v) != all.end());
    }
    CHECK(ms.at(variant).get<double>() <= best * 1.03 + 1e-4);  // the fastest, or the built-in choice within 3%
    CHECK(dev.tuned_kernels.at({op, e.at("key").get<std::string>()}) == variant);
  }
  // Every op with several variants on every driver (SwiftShader has one for the pointwise ops).
  for (const char* op : {"conv2d", "conv2d_backward_data", "conv2d_backward_weight", "linear", "linear_backward_data",
                         "linear_backward_weight"})
    CHECK(ops_tuned.count(op) == 1);
  // The plan the next Context lowers takes the tuned variants, and so did the benchmark after tuning.
  const auto model = vkalex::load_model(kModel);
  const vkalex::Plan plan = vkalex::lower(model, 2, dev);
  for (const auto& op : plan.ops) {
    if (op.kind != vkalex::OpKind::Linear && op.kind != vkalex::OpKind::Conv2d) continue;
    INFO(op.name);
    const auto& l = model.layers[op.layer];
    const vkalex::Shape w = op.kind == vkalex::OpKind::Linear
                                ? vkalex::Shape{op.out[1], op.in[1]}
                                : vkalex::Shape{l.out_channels, op.in[1] / op.conv.groups, l.kernel_h, l.kernel_w};
    const auto key = vkalex::ops::kernel_shape_key(op.in, w, op.kind == vkalex::OpKind::Linear ? 1 : op.conv.stride_w);
    const auto tuned = dev.tuned_kernels.find({vkalex::op_kind_name(op.kind), key});
    REQUIRE(tuned != dev.tuned_kernels.end());
    CHECK(op.kernel == tuned->second);
    CHECK(layer(doc.at("runs")[0], op.name, "forward").at("kernel") == tuned->second);
  }
}

TEST_CASE("bench --split: passes and steps over two devices, verified, with their exchanges", "[bench][split]") {
  test::TempDir dir;
  for (const char* mode : {"forward", "train"}) {
    INFO(mode);
    const auto [status, out] = run("--model " + kModel + " --mode " + mode + " --split 0,0 --batch 3 --repeat 2 --warmup 1 --json " +
                                   (dir / "split.json"));
    INFO(out);
    REQUIRE(status == 0);
    CHECK_THAT(out, Catch::Contains("verified a split") && Catch::Contains("(ok)") && Catch::Contains("over 2 devices"));
    const nlohmann::json j = read_json(dir / "split.json");
    const auto& run0 = j.at("runs").at(0);
    CHECK(run0.at("verify").at("rel_l2").get<double>() <= 1e-4);
    CHECK(run0.at("median_ms").get<double>() > 0);
    // Forward: norm1, norm2, conv3, fc6, fc7, fc8, prob; a step adds 7 backward exchanges.
    CHECK(run0.at("split").at("exchanges").size() == (std::string(mode) == "train" ? 14u : 7u));
  }
}

TEST_CASE("bench: bad arguments give a clear message and exit status 1", "[bench][errors]") {
  auto refuse = [&](const std::string& args, const std::string& what) {
    const auto [status, out] = run(args);
    INFO(args << "\n" << out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains(what));
  };
  refuse("--model " + kModel + " --batch 0", "--batch needs a whole number");
  refuse("--model " + kModel + " --batch 4,,8", "--batch needs a whole number");
  refuse("--model " + kModel + " --batch 4,", "--batch needs sizes like 1,8,32");
  refuse("--model " + kModel + " --repeat x", "--repeat needs a whole number");
  refuse("--model " + kModel + " --warmup -1", "--warmup needs a whole number");
  refuse("--model " + kModel + " --mode sideways", "--mode is forward or train");
  refuse("--model " + kModel + " --frobnicate", "unknown option");
  refuse("--model " + kModel + " --mode train --fp16", "--fp16 is for --mode forward");
  refuse("--model " + kModel + " --json", "--json needs a value");
  refuse("--model /nonexistent.json", "cannot open the model description");
  refuse("--model " + kModel + " --device nosuchgpu", "no device name contains \"nosuchgpu\"");
  refuse("--model " + kModel + " --batch 1 --repeat 1 --json /nonexistent/dir/out.json", "cannot write /nonexistent/dir/out.json");
  refuse("--model " + kModel + " --tune", "--tune: the tuning file is off");  // the tests run with VKALEX_TUNING=0
  refuse("--model " + kModel + " --split 0", "--split takes two devices");
  refuse("--model " + kModel + " --split 0,0,0", "--split takes two devices");
  refuse("--model " + kModel + " --split 0,0 --fp16", "--split goes without");
  refuse("--model " + kModel + " --split 0,nosuchgpu", "no device name contains \"nosuchgpu\"");
  const auto [cstatus, cout] = test::run_command("python3 " + std::string(VKALEX_BENCH_DIR) + "/compare.py /nonexistent.json");
  CHECK(cstatus == 1);
  CHECK_THAT(cout, Catch::Contains("cannot read /nonexistent.json"));
  const auto [status, help] = run("--help");
  CHECK(status == 0);
  CHECK_THAT(help, Catch::Contains("--peak") && Catch::Contains("--json") && Catch::Contains("--repeat") &&
                       Catch::Contains("--tune"));
}
