// samples/bench end to end: it runs, reports what it timed, and refuses bad arguments.
#include <cstdlib>
#include <regex>
#include <string>

#include "common.hpp"

namespace {

std::pair<int, std::string> run(const std::string& args) {
  return test::run_command(std::string(VKALEX_BENCH_EXE) + " " + args, true);
}

const std::string kModel = std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json";

}  // namespace

TEST_CASE("bench: times training steps and forward passes and reports images per second", "[bench]") {
  const auto [status, out] = run("--model " + kModel + " --batch 4 --steps 3 --layers");
  INFO(out);
  REQUIRE(status == 0);
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("batch 4, train: median ([0-9.]+) ms per step .*, ([0-9.]+) images/s")));
  const double ms = std::stod(m[1]), ips = std::stod(m[2]);
  CHECK(ms > 0);
  CHECK(ips == Approx(4000.0 / ms).epsilon(0.01));
  // Every kind of op of the step shows up in the per-op GPU times.
  for (const char* op : {"conv2d ", "conv2d_backward_data", "conv2d_backward_weight", "lrn_backward",
                         "max_pool_backward", "linear_backward_weight", "softmax_cross_entropy", "sgd_update"}) {
    CHECK_THAT(out, Catch::Contains(std::string("  ") + op));
  }
  const auto [fstatus, fout] = run("--model " + kModel + " --mode forward --batch 2 --steps 1");
  INFO(fout);
  CHECK(fstatus == 0);
  CHECK_THAT(fout, Catch::Contains("batch 2, forward: median"));
}

TEST_CASE("bench: bad arguments give a clear message and exit status 1", "[bench][errors]") {
  auto refuse = [&](const std::string& args, const std::string& what) {
    const auto [status, out] = run(args);
    INFO(args << "\n" << out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains(what));
  };
  refuse("", "--model is required");
  refuse("--model " + kModel + " --batch 0", "--batch needs a whole number");
  refuse("--model " + kModel + " --steps x", "--steps needs a whole number");
  refuse("--model " + kModel + " --mode sideways", "--mode is train or forward");
  refuse("--model " + kModel + " --frobnicate", "unknown option");
  refuse("--model " + kModel + " --mode forward --layers", "--layers times training steps only");
  refuse("--model /nonexistent.json", "cannot open the model description");
  refuse("--model " + kModel + " --device nosuchgpu", "no device name contains \"nosuchgpu\"");
  const auto [status, help] = run("--help");
  CHECK(status == 0);
  CHECK_THAT(help, Catch::Contains("--mode") && Catch::Contains("--layers"));
}
