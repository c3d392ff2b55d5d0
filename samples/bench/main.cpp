// samples/bench: how fast a model trains or infers on a device, with synthetic data. Each
// step is timed on the host (upload, submit, wait, read-back); the median of the steps is
// reported, and with --layers the GPU time of every kind of op in the last step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "vkalex/vkalex.hpp"

namespace {

const char* const kProgram = "bench";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: bench --model FILE.json [--mode train|forward] [--batch B] [--steps N]\n"
               "             [--layers] [--device N|NAME] [--seed S]\n"
               "\n"
               "Times training steps (forward with dropout, loss, backward, SGD update) or forward\n"
               "passes of the model on random images and labels, after one untimed warm-up step.\n"
               "Prints the median and fastest step and images per second (batch / median).\n"
               "\n"
               "  --model FILE.json  model description (parameters are random, He-initialised)\n"
               "  --mode train|forward  what to time (default train)\n"
               "  --batch B          images per step (default 8)\n"
               "  --steps N          timed steps (default 5)\n"
               "  --layers           also print the GPU time of each kind of op in the last training\n"
               "                     step (needs timestamp queries on the device)\n"
               "  --device N|NAME    device index or part of its name (default as in info)\n"
               "  --seed S           seed of the parameters and the data (default 1)\n"
               "  --help             this text\n"
               "\n"
               "Exit status: 0 on success, 1 on any error.\n");
}

struct Options {
  std::string model, mode = "train";
  std::optional<std::string> device;
  uint32_t batch = 8, steps = 5;
  uint64_t seed = 1;
  bool layers = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (a == "--layers") {
      o.layers = true;
      continue;
    }
    if (a != "--model" && a != "--mode" && a != "--batch" && a != "--steps" && a != "--device" && a != "--seed") {
      vkalex_samples::die(kProgram, "unknown option \"" + a + "\" (see --help)");
    }
    if (i + 1 >= argc) vkalex_samples::die(kProgram, a + " needs a value (see --help)");
    const std::string v = argv[++i];
    if (a == "--model") o.model = v;
    if (a == "--mode") {
      if (v != "train" && v != "forward") vkalex_samples::die(kProgram, "--mode is train or forward, got \"" + v + "\"");
      o.mode = v;
    }
    if (a == "--batch") o.batch = uint32_t(vkalex_samples::parse_count(kProgram, a, v, 1, 65535));
    if (a == "--steps") o.steps = uint32_t(vkalex_samples::parse_count(kProgram, a, v, 1, 1000000));
    if (a == "--device") o.device = v;
    if (a == "--seed") o.seed = vkalex_samples::parse_count(kProgram, a, v, 0, UINT64_MAX);
  }
  if (o.model.empty()) vkalex_samples::die(kProgram, "--model is required (see --help)");
  if (o.layers && o.mode != "train") {
    vkalex_samples::die(kProgram, "--layers times training steps only for now (use --mode train)");
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    const vkalex::ModelDesc model = vkalex::load_model(opt.model);
    vkalex::ContextOptions copt;
    copt.device = opt.device;
    vkalex::Context ctx(copt);
    vkalex::Net net(ctx, model);
    net.set_parameters(vkalex::initial_parameters(model, vkalex::Init::He, opt.seed));

    std::mt19937_64 rng(opt.seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    vkalex::HostTensor images(vkalex::Shape{opt.batch, model.channels, model.height, model.width});
    for (float& v : images.data) v = normal(rng);
    std::vector<uint32_t> labels(opt.batch);
    for (uint32_t& l : labels) l = uint32_t(rng() % model.classes);

    vkalex::RecorderOptions ropt;
    ropt.timestamps = opt.layers;
    std::optional<vkalex::Trainer> trainer;
    if (opt.mode == "train") trainer.emplace(ctx, net, opt.batch, ropt);
    vkalex::StepParams sp;
    sp.seed = uint32_t(opt.seed);
    auto step = [&] {
      if (trainer) {
        trainer->step(images, labels, sp);
        ++sp.step;
      } else {
        net.forward(images);
      }
    };
    step();  // warm-up: pipelines, first touches of memory
    std::vector<double> ms;
    for (uint32_t s = 0; s < opt.steps; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const double med = median(ms);
    std::printf("%s, %s, batch %u, %s: median %.1f ms per step (fastest %.1f ms, %u steps), %.1f images/s\n",
                ctx.device().name.c_str(), model.name.c_str(), opt.batch, opt.mode.c_str(), med,
                *std::min_element(ms.begin(), ms.end()), opt.steps, opt.batch * 1000.0 / med);

    if (opt.layers) {
      std::map<std::string, std::pair<double, int>> by_op;
      double total = 0;
      for (const auto& t : trainer->timings()) {
        by_op[t.label].first += t.ms;
        by_op[t.label].second += 1;
        total += t.ms;
      }
      std::vector<std::pair<std::string, std::pair<double, int>>> rows(by_op.begin(), by_op.end());
      std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
      std::printf("GPU time of the last step by op (%.1f ms in all):\n", total);
      for (const auto& [op, v] : rows) {
        std::printf("  %-24s %9.2f ms %5.1f%%  (%d dispatches)\n", op.c_str(), v.first, 100 * v.first / total, v.second);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    vkalex_samples::die(kProgram, e.what());
  }
}
