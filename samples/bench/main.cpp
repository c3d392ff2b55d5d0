// samples/bench: how fast a model infers or trains on a device, layer by layer, against the
// device's own peak. It verifies the plan against the CPU reference before timing anything,
// times whole passes on the host (upload, submit, wait, read-back) and each layer with GPU
// timestamps, and writes everything as JSON for comparing devices (compare.py).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/mpi.hpp"
#include "bench.hpp"
#include "vkalex/vkalex.hpp"

namespace {

const char* const kProgram = "bench";
const std::string kDefaultModel = vkalex_samples::model_dir() + "/alexnet2012.json";
constexpr double kVerifyTolerance = 1e-4;  // a whole net (DESIGN.md)
constexpr double kVerifyToleranceF16 = 1e-2;  // with fp16 storage

void usage(FILE* out) {
  std::fprintf(out,
               "usage: bench [--model FILE.json|FILE.onnx] [--mode forward|train] [--batch 1,8,32] [--repeat N]\n"
               "             [--warmup N] [--peak] [--tune] [--fp16] [--json FILE] [--no-verify]\n"
               "             [--device N|NAME] [--split N|NAME,N|NAME] [--seed S] [--bucket-kib K]\n"
               "       mpirun -n N bench --mode train ...   (data parallelism, see below)\n"
               "\n"
               "Times whole forward passes (or training steps: forward with dropout, loss,\n"
               "backward, SGD update) of the model on random data and parameters, then two more\n"
               "with a GPU timestamp around every dispatch, the layers timed in the second.\n"
               "Before timing, a pass at batch min(B, 2) is compared with the CPU reference\n"
               "(relative L2 at most 1e-4, or 1e-2 with --fp16); a plan that disagrees is not timed.\n"
               "\n"
               "  --model FILE.json  model description (default: %s;\n"
               "                     the folder is $VKALEX_MODEL_DIR where set), or FILE.onnx:\n"
               "                     an ONNX model's layers (its weights are not used)\n"
               "  --mode forward|train  what to time (default forward)\n"
               "  --batch LIST       batch sizes, comma-separated (default 1)\n"
               "  --repeat N         timed passes per batch size (default 10)\n"
               "  --warmup N         untimed passes first (default 2)\n"
               "  --peak             first measure the device's FMA (scalar, vec4) and copy peaks\n"
               "                     with the engine's own kernels; layers then show their share\n"
               "  --tune             first time every kernel variant that applies to each op of\n"
               "                     the model at each batch size (forward ops; --mode train: the\n"
               "                     backward ops too), each op alone on its shapes (median GPU ms\n"
               "                     of 3-7 runs), print them, and write the fastest per op and\n"
               "                     shapes (the built-in choice where it is within 3%%) into this\n"
               "                     device's tuning file (merged with the entries for other\n"
               "                     shapes); then verify and benchmark as usual with that choice\n"
               "  --fp16             forward passes with fp16 storage (weights and activations as\n"
               "                     16-bit floats, fp32 arithmetic; needs 16-bit storage buffers)\n"
               "  --json FILE        also write all results to FILE (schema in the README)\n"
               "  --no-verify        skip the comparison with the CPU reference\n"
               "  --device N|NAME    device index or part of its name (default as in info)\n"
               "  --seed S           seed of the parameters and the data (default 1)\n"
               "  --split A,B        the model split over two devices (the paper's model\n"
               "                     parallelism; each an index or part of a name, the same one\n"
               "                     twice opens it twice): whole passes or steps timed, the\n"
               "                     bytes exchanged between the devices, no per-layer table\n"
               "  --bucket-kib K     under mpirun: gradient buckets of at least K KiB (default 4096)\n"
               "  --help             this text\n"
               "\n"
               "Data parallelism: started by mpirun with N processes, --mode train also times each\n"
               "batch size B as one process's shard of a global batch of N x B: the step alone\n"
               "(every process at once, no exchange), the step with its gradients summed over the\n"
               "processes in buckets as the backward pass makes them, the part of the sum the\n"
               "step waited for, and a blocking all-reduce of all the gradients. The scaling\n"
               "efficiency is the step alone over the step with the exchange. Rank 0 prints and\n"
               "writes --json.\n"
               "\n"
               "Per layer: the kernel, GPU ms, FLOP (2 per multiply-add of convolution and\n"
               "linear layers, 1 per bias add; other ops count bytes only), GFLOP/s, the bytes\n"
               "the layer must at least move and GB/s; with --peak, the share of the vec4 FMA\n"
               "peak (or of the copy bandwidth, for layers without FLOP).\n"
               "\n"
               "Kernel choice: a variant forced per op through the environment, e.g.\n"
               "VKALEX_KERNELS=linear=linear.rows,conv2d=conv2d.direct (see README), wins over the\n"
               "tuning file, which wins over the built-in order. The tuning file lives beside the\n"
               "pipeline cache ($XDG_CACHE_HOME/vkalex, else ~/.cache/vkalex), one per device UUID\n"
               "and driver version; VKALEX_TUNING=0 ignores it (and --tune then refuses to run).\n"
               "\n"
               "Exit status: 0 on success, 1 on any error (a failed verification included).\n",
               kDefaultModel.c_str());
}

struct Options {
  std::string model = kDefaultModel, mode = "forward", json;
  std::optional<std::string> device;
  std::vector<std::string> split;  // two device specs, or none
  std::vector<uint32_t> batches{1};
  uint32_t repeat = 10, warmup = 2;
  uint64_t seed = 1, bucket_kib = 4096;
  bool peak = false, verify = true, tune = false, fp16 = false;
};

std::vector<uint32_t> parse_batches(const std::string& v) {
  std::vector<uint32_t> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(uint32_t(vkalex_samples::parse_count(kProgram, "--batch", item, 1, 65535)));
  if (out.empty() || v.back() == ',') vkalex_samples::die(kProgram, "--batch needs sizes like 1,8,32, got \"" + v + "\"");
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (a == "--peak") {
      o.peak = true;
      continue;
    }
    if (a == "--no-verify") {
      o.verify = false;
      continue;
    }
    if (a == "--tune") {
      o.tune = true;
      continue;
    }
    if (a == "--fp16") {
      o.fp16 = true;
      continue;
    }
    if (a != "--model" && a != "--mode" && a != "--batch" && a != "--repeat" && a != "--warmup" && a != "--json" &&
        a != "--device" && a != "--seed" && a != "--bucket-kib" && a != "--split") {
      vkalex_samples::die(kProgram, "unknown option \"" + a + "\" (see --help)");
    }
    if (i + 1 >= argc) vkalex_samples::die(kProgram, a + " needs a value (see --help)");
    const std::string v = argv[++i];
    if (a == "--model") o.model = v;
    if (a == "--mode") {
      if (v != "train" && v != "forward") vkalex_samples::die(kProgram, "--mode is forward or train, got \"" + v + "\"");
      o.mode = v;
    }
    if (a == "--batch") o.batches = parse_batches(v);
    if (a == "--repeat") o.repeat = uint32_t(vkalex_samples::parse_count(kProgram, a, v, 1, 1000000));
    if (a == "--warmup") o.warmup = uint32_t(vkalex_samples::parse_count(kProgram, a, v, 0, 1000000));
    if (a == "--json") {
      if (v.empty()) vkalex_samples::die(kProgram, "--json needs a file name");
      o.json = v;
    }
    if (a == "--device") o.device = v;
    if (a == "--split") {
      const size_t comma = v.find(',');
      if (comma == std::string::npos || comma == 0 || comma + 1 == v.size() || v.find(',', comma + 1) != std::string::npos) {
        vkalex_samples::die(kProgram, "--split takes two devices, e.g. 0,1 or llvmpipe,SwiftShader; got \"" + v + "\"");
      }
      o.split = {v.substr(0, comma), v.substr(comma + 1)};
    }
    if (a == "--seed") o.seed = vkalex_samples::parse_count(kProgram, a, v, 0, UINT64_MAX);
    if (a == "--bucket-kib") o.bucket_kib = vkalex_samples::parse_count(kProgram, a, v, 1, 1 << 22);
  }
  if (o.fp16 && o.mode == "train") vkalex_samples::die(kProgram, "--fp16 is for --mode forward: training keeps f32");
  if (!o.split.empty() && (o.fp16 || o.tune || o.peak || o.device)) {
    vkalex_samples::die(kProgram, "--split goes without --fp16, --tune, --peak and --device");
  }
  return o;
}

struct Data {
  vkalex::HostTensor images;
  std::vector<uint32_t> labels;
};

Data synthetic_batch(const vkalex::ModelDesc& m, uint32_t batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Data d{vkalex::HostTensor(m.input_shape(batch)), std::vector<uint32_t>(batch)};
  for (float& v : d.images.data) v = normal(rng);
  for (uint32_t& l : d.labels) l = uint32_t(rng() % m.classes);
  return d;
}

// One row of the per-layer table: a plan op's forward, or its backward in a training step,
// or the loss and the SGD update (no plan op).
struct LayerRow {
  std::string name, phase, kind, kernel;
  double ms = 0;
  uint64_t flop = 0, bytes = 0;
  int dispatches = 0;
  std::map<std::string, double> kernel_ms;  // GPU ms per kernel (dispatch label)
};

// The work of each timed scope: forward ops as the plan counts them; backward of convolution
// and linear layers is the weight gradient and (but for the first) the input gradient, each
// as many multiply-adds as the forward, plus the bias gradient.
std::vector<LayerRow> layer_rows(const vkalex::Plan& plan, bool train) {
  std::vector<LayerRow> rows;
  for (const auto& op : plan.ops) {
    if (op.kind == vkalex::OpKind::Reshape) continue;
    if (train && op.kind == vkalex::OpKind::Softmax) continue;  // the fused loss replaces it
    if (!train && op.kind == vkalex::OpKind::Dropout) continue;  // the identity at inference
    rows.push_back({op.name, "forward", vkalex::op_kind_name(op.kind), op.kernel, 0, op.flop, op.bytes, 0, {}});
  }
  if (!train) return rows;
  rows.push_back({"loss", "loss", "softmax_cross_entropy", "softmax_xent", 0, 0,
                  2 * uint64_t(plan.batch) * plan.classes * sizeof(float), 0, {}});
  const size_t first = plan.first_parameter_op();
  for (size_t i = plan.ops.size(); i-- > first;) {
    const auto& op = plan.ops[i];
    if (op.kind == vkalex::OpKind::Reshape || op.kind == vkalex::OpKind::Softmax) continue;
    LayerRow r{op.name, "backward", vkalex::op_kind_name(op.kind), "", 0, 0, 0, 0, {}};
    const uint64_t in_bytes = op.in.numel() * sizeof(float);
    r.bytes = op.bytes + (i > first ? in_bytes : 0);
    if (op.kind == vkalex::OpKind::Conv2d || op.kind == vkalex::OpKind::Linear) {
      const uint64_t bias_adds = op.bias.empty() ? 0 : op.out.numel();
      r.flop = (op.flop - bias_adds) * (i > first ? 2 : 1) + bias_adds;
      r.bytes += op.bytes - in_bytes - op.out.numel() * sizeof(float);  // the parameter gradients written
    }
    rows.push_back(r);
  }
  uint64_t params = 0;
  for (const auto& op : plan.ops)
    if (op.kind == vkalex::OpKind::Conv2d || op.kind == vkalex::OpKind::Linear)
      params += op.bytes - (op.in.numel() + op.out.numel()) * sizeof(float);
  rows.push_back({"sgd", "update", "sgd_update", "sgd_update", 0, 0, 5 * params, 0, {}});  // w, v, g read; w, v written
  return rows;
}

// Adds the dispatch times to the rows by scope ("conv1", "conv1 backward", "loss", "sgd").
void add_timings(std::vector<LayerRow>& rows, const std::vector<vkalex::DispatchTiming>& timings) {
  std::map<std::string, LayerRow*> by_scope;
  for (auto& r : rows) by_scope[r.phase == "backward" ? r.name + " backward" : r.name] = &r;
  for (const auto& t : timings) {
    auto it = by_scope.find(t.scope);
    if (it == by_scope.end()) continue;  // staging copies
    it->second->ms += t.ms;
    it->second->dispatches += 1;
    it->second->kernel_ms[t.label] += t.ms;
  }
  // The row names the kernel that took longest (the plan's choice, for forward rows).
  for (auto& r : rows) {
    if (!r.kernel.empty() || r.kernel_ms.empty()) continue;
    r.kernel = std::max_element(r.kernel_ms.begin(), r.kernel_ms.end(), [](const auto& a, const auto& b) {
                 return a.second < b.second;
               })->first;
  }
}

// `opt.warmup` untimed calls of `pass`, then the wall time of `opt.repeat` more, in ms.
template <typename F>
std::vector<double> time_passes(const Options& opt, F&& pass) {
  for (uint32_t w = 0; w < opt.warmup; ++w) pass();
  std::vector<double> ms;
  for (uint32_t r = 0; r < opt.repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

// The model split over two devices (--split): verified against one device, then timed whole.
nlohmann::json time_split(vkalex::Context& a, vkalex::Context& b, const vkalex::ModelDesc& model, const Options& opt,
                          uint32_t batch, const std::map<std::string, vkalex::HostTensor>& params) {
  const bool train = opt.mode == "train";
  nlohmann::json run;
  run["batch"] = batch;
  vkalex::SplitNet split(a, b, model);
  split.set_parameters(params);
  vkalex::StepParams sp;
  sp.seed = uint32_t(opt.seed);
  if (opt.verify) {  // against the same pass or step on the first device alone
    const uint32_t vb = std::min<uint32_t>(batch, 2);
    const Data d = synthetic_batch(model, vb, opt.seed + 1);
    vkalex::Net one(a, model);
    one.set_parameters(params);
    double err = 0;
    if (train) {
      vkalex::Trainer t(one, vb);
      vkalex::SplitTrainer st(split, vb);
      t.step(d.images, d.labels, sp);
      st.step(d.images, d.labels, sp);
      const auto want = one.parameters(), got = split.parameters();
      for (const auto& [name, w] : want) err = std::max(err, vkalex::relative_l2(got.at(name).data, w.data));
      split.set_parameters(params);
    } else {
      const auto want = one.forward(d.images), got = split.forward(d.images);
      err = std::max(vkalex::relative_l2(got.logits, want.logits), vkalex::relative_l2(got.probabilities, want.probabilities));
    }
    const bool ok = err <= kVerifyTolerance;
    std::printf("batch %u: verified a split %s at batch %u against %s alone: relative L2 %.2e (%s)\n", batch,
                train ? "training step" : "forward pass", vb, a.device().name.c_str(), err, ok ? "ok" : "FAILED");
    run["verify"] = {{"batch", vb}, {"rel_l2", err}, {"passed", ok}};
    if (!ok) vkalex_samples::die(kProgram, "the split does not match one device; not timing it");
  }
  const Data d = synthetic_batch(model, batch, opt.seed + 2);
  std::optional<vkalex::SplitTrainer> trainer;
  if (train) trainer.emplace(split, batch);
  auto pass = [&] {
    if (trainer) {
      trainer->step(d.images, d.labels, sp);
      ++sp.step;
    } else {
      split.forward(d.images);
    }
  };
  const std::vector<double> ms = time_passes(opt, pass);
  const auto& exchanges = trainer ? trainer->exchanges() : split.exchanges();
  uint64_t bytes[2] = {0, 0};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : exchanges) {
    bytes[0] += e.bytes_to[0];
    bytes[1] += e.bytes_to[1];
    list.push_back({{"before", e.before}, {"bytes_to_0", e.bytes_to[0]}, {"bytes_to_1", e.bytes_to[1]}});
  }
  const double med = bench::median(ms);
  std::printf("batch %u: median %.2f ms per %s over 2 devices (min %.2f, max %.2f, %u passes), %.1f images/s; "
              "%zu exchanges, %.2f MB to device 0 and %.2f MB to device 1\n",
              batch, med, train ? "step" : "pass", *std::min_element(ms.begin(), ms.end()),
              *std::max_element(ms.begin(), ms.end()), opt.repeat, batch * 1000.0 / med, exchanges.size(), bytes[0] / 1e6,
              bytes[1] / 1e6);
  run["median_ms"] = med;
  run["images_per_s"] = batch * 1000.0 / med;
  run["split"] = {{"devices", {a.device().name, b.device().name}}, {"exchanges", list}};
  return run;
}

// Data parallelism (an MPI run, see usage()): training steps of `batch` images as this
// process's shard of a global batch of batch x processes, their gradients summed over the World.
nlohmann::json time_data_parallel(vkalex::Net& net, const Options& opt, uint32_t batch, const Data& d,
                                  const vkalex_samples::World& world, double alone_ms) {
  const uint32_t n = uint32_t(world.size()), rank = uint32_t(world.rank());
  vkalex::TrainerOptions topt;
  topt.global_batch = batch * n;
  topt.first_image = batch * rank;
  topt.bucket_bytes = opt.bucket_kib << 10;
  vkalex::Trainer trainer(net, batch, topt);
  vkalex_samples::MpiReducer reducer(world);
  vkalex::StepParams sp;
  sp.seed = uint32_t(opt.seed);
  for (uint32_t w = 0; w < opt.warmup; ++w, ++sp.step) trainer.step(d.images, d.labels, sp, &reducer);
  std::vector<double> ms, waited;
  for (uint32_t r = 0; r < opt.repeat; ++r, ++sp.step) {
    const auto t0 = std::chrono::steady_clock::now();
    const vkalex::StepStats st = trainer.step(d.images, d.labels, sp, &reducer);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    waited.push_back(st.reduce_wait_ms);
  }
  uint64_t floats = 0;
  for (const auto& b : trainer.buckets()) floats += b.floats;
  const double allreduce_ms = world.time_allreduce(floats, int(opt.repeat));
  const double step_ms = bench::median(ms), wait_ms = bench::median(waited);
  const double bytes = double(floats) * 4, algbw = bytes / (allreduce_ms * 1e6), busbw = algbw * 2 * (n - 1) / n;
  std::printf("batch %u x %u processes (global batch %u): step alone %.2f ms, with the gradient exchange %.2f ms "
              "(waited %.2f ms for the sums) = scaling efficiency %.1f%%\n",
              batch, n, batch * n, alone_ms, step_ms, wait_ms, 100 * alone_ms / step_ms);
  std::printf("  all-reduce of the gradients: %.1f MB in %zu buckets of at least %llu KiB, %.2f ms blocking "
              "(%.2f GB/s algorithm, %.2f GB/s bus bandwidth)\n",
              bytes / 1e6, trainer.buckets().size(), (unsigned long long)opt.bucket_kib, allreduce_ms, algbw, busbw);
  return {{"processes", n},          {"global_batch", batch * n},  {"buckets", trainer.buckets().size()},
          {"gradient_bytes", bytes}, {"step_alone_ms", alone_ms},  {"step_exchange_ms", step_ms},
          {"exposed_ms", wait_ms},   {"allreduce_ms", allreduce_ms}, {"allreduce_algbw_gbps", algbw},
          {"allreduce_busbw_gbps", busbw}, {"efficiency", alone_ms / step_ms}};
}

}  // namespace

int main(int argc, char** argv) {
  vkalex_samples::check_stdout_at_exit("bench");
  const Options opt = parse(argc, argv);
  const vkalex_samples::World world(&argc, &argv, kProgram);
  if (!opt.split.empty() && world.distributed()) {
    vkalex_samples::die(kProgram, "--split is for one process: under mpirun each process has its own device");
  }
  // Under mpirun every process runs the same benchmark; rank 0 alone prints and writes.
  if (world.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) {
    vkalex_samples::die(kProgram, "cannot silence the standard output of rank " + std::to_string(world.rank()));
  }
  try {
    // An ONNX model's layers (bench runs random parameters, not the model's initializers).
    const vkalex::ModelDesc model =
        vkalex::is_onnx_path(opt.model) ? vkalex::load_onnx(opt.model).model : vkalex::load_model(opt.model);
    vkalex::ContextOptions copt;
    copt.device = opt.device ? opt.device : vkalex_samples::device_for_rank(world);
    const bool train = opt.mode == "train";
    std::vector<vkalex::TuningEntry> tuned;
    if (opt.tune) {
      vkalex::Context probe(copt);
      const std::string path = probe.tuning_file_path();
      if (path.empty()) vkalex_samples::die(kProgram, "--tune: the tuning file is " + probe.tuning_file_status());
      std::printf("tuning kernels on %s\n", probe.device().name.c_str());
      tuned = bench::tune_kernels(copt, probe.device(), model, opt.batches, train, opt.seed);
      const size_t all = vkalex::save_tuning_file(path, probe.device(), tuned);
      std::printf("wrote %zu tuned choices to %s (%zu in the file)\n\n", tuned.size(), path.c_str(), all);
    }
    if (!opt.split.empty()) copt.device = opt.split[0];
    vkalex::Context ctx(copt);  // takes the tuning file as it is now
    const vkalex::DeviceInfo& dev = ctx.device();
    std::optional<vkalex::Context> second;
    if (!opt.split.empty()) {
      vkalex::ContextOptions o2 = copt;
      o2.device = opt.split[1];
      second.emplace(o2);
    }
    if (const std::string w = vkalex_samples::binding_warning(world, dev); !w.empty() && world.rank() == 0) {
      std::fprintf(stderr, "%s: warning: %s\n", kProgram, w.c_str());
    }
    std::printf("device: %s (%s, driver %s %s), model %s, %s\n", dev.name.c_str(), dev.vendor.c_str(),
                dev.driver_name.c_str(), dev.driver_version_string.c_str(), model.name.c_str(), opt.mode.c_str());
    std::printf("tuning file: %s%s%s\n", ctx.tuning_file_status().c_str(), ctx.tuning_file_path().empty() ? "" : ", ",
                ctx.tuning_file_path().c_str());

    nlohmann::json out;
    out["schema"] = "vkalex-bench/1";
    out["device"] = {{"name", dev.name},
                     {"vendor", dev.vendor},
                     {"vendor_id", dev.vendor_id},
                     {"type", vkalex::device_type_name(dev.type)},
                     {"driver", dev.driver_name},
                     {"driver_info", dev.driver_info},
                     {"driver_version", dev.driver_version_string},
                     {"api_version", dev.api_version_string},
                     {"uuid", vkalex::uuid_hex(dev.uuid)},
                     {"subgroup_size", dev.subgroup_size},
                     {"subgroup_shuffle", dev.subgroup_shuffle}};
    out["model"] = model.name;
    out["mode"] = opt.mode;
    out["storage"] = opt.fp16 ? "f16" : "f32";
    out["repeat"] = opt.repeat;
    out["warmup"] = opt.warmup;
    out["tuning_file"] = {{"path", ctx.tuning_file_path()},
                          {"status", ctx.tuning_file_status()},
                          {"entries", dev.tuned_kernels.size()}};
    if (opt.tune) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& e : tuned)
        list.push_back({{"op", e.op}, {"key", e.key}, {"variant", e.variant}, {"ms", e.ms}, {"measured_on", e.measured_on}});
      out["tuned"] = list;
    }

    std::optional<vkalex::PeakFigures> peak;
    if (opt.peak) {
      peak = vkalex::measure_peak(ctx);
      std::printf("peak: fp32 FMA %.1f GFLOP/s scalar, %.1f GFLOP/s vec4; copy %.1f GB/s\n", peak->fma_scalar_gflops,
                  peak->fma_vec4_gflops, peak->copy_gbps);
      out["peak"] = {{"fma_scalar_gflops", peak->fma_scalar_gflops},
                     {"fma_vec4_gflops", peak->fma_vec4_gflops},
                     {"copy_gbps", peak->copy_gbps}};
    }

    const auto params = vkalex::initial_parameters(model, vkalex::Init::He, opt.seed);
    if (second) {
      std::printf("split over 2 devices: %s and %s\n", dev.name.c_str(), second->device().name.c_str());
      out["split_devices"] = {dev.name, second->device().name};
    }
    for (const uint32_t batch : opt.batches) {
      if (second) {
        out["runs"].push_back(time_split(ctx, *second, model, opt, batch, params));
        continue;
      }
      vkalex::Net net(ctx, model, vkalex::NetOptions{opt.fp16 ? vkalex::DType::F16 : vkalex::DType::F32});
      net.set_parameters(params);
      nlohmann::json run;
      run["batch"] = batch;

      // Verify before timing: a fast wrong answer is not a result.
      if (opt.verify) {
        const uint32_t vb = std::min<uint32_t>(batch, 2);
        const Data d = synthetic_batch(model, vb, opt.seed + 1);
        double err = 0;
        if (train) {
          vkalex::Trainer t(ctx, net, vb);
          vkalex::StepParams sp;
          sp.seed = uint32_t(opt.seed);
          t.step(d.images, d.labels, sp);
          const vkalex::ForwardRecord fwd = t.last_forward();
          auto cpu_params = params;
          std::map<std::string, vkalex::HostTensor> cpu_v;
          for (const auto& [name, p] : params) cpu_v.emplace(name, vkalex::HostTensor(p.shape));
          vkalex::train_step_cpu(model, cpu_params, cpu_v, d.images, d.labels, sp, &fwd);
          const auto got = net.parameters();
          for (const auto& [name, want] : cpu_params) err = std::max(err, vkalex::relative_l2(got.at(name).data, want.data));
          net.set_parameters(params);
        } else {
          // With fp16 storage, against the fp32 reference with unrounded parameters.
          std::optional<vkalex::Net> full;
          if (opt.fp16) {
            full.emplace(ctx, model);
            full->set_parameters(params);
          }
          const auto g = net.forward(d.images), c = (full ? *full : net).forward_cpu(d.images);
          err = std::max(vkalex::relative_l2(g.logits, c.logits), vkalex::relative_l2(g.probabilities, c.probabilities));
        }
        const bool ok = err <= (opt.fp16 ? kVerifyToleranceF16 : kVerifyTolerance);
        std::printf("batch %u: verified a %s at batch %u against the CPU reference: relative L2 %.2e (%s)\n", batch,
                    train ? "training step" : "forward pass", vb, err, ok ? "ok" : "FAILED");
        run["verify"] = {{"batch", vb}, {"rel_l2", err}, {"passed", ok}};
        if (!ok) vkalex_samples::die(kProgram, "the plan does not match the CPU reference; not timing it");
      }

      // Whole passes, timed on the host.
      const Data d = synthetic_batch(model, batch, opt.seed + 2);
      std::optional<vkalex::Trainer> trainer;
      if (train) trainer.emplace(ctx, net, batch);
      vkalex::StepParams sp;
      sp.seed = uint32_t(opt.seed);
      auto pass = [&] {
        if (trainer) {
          trainer->step(d.images, d.labels, sp);
          ++sp.step;
        } else {
          net.forward(d.images);
        }
      };
      const std::vector<double> ms = time_passes(opt, pass);
      const double med = bench::median(ms), lo = *std::min_element(ms.begin(), ms.end()),
                   hi = *std::max_element(ms.begin(), ms.end());
      const vkalex::Plan& plan = trainer ? trainer->plan() : net.plan();
      const double pass_flop = double(plan.flop()) * (train ? 3.0 : 1.0);  // training: about 3x the forward
      std::printf("batch %u: median %.2f ms per %s (min %.2f, max %.2f, %u passes), %.1f images/s, %.1f GFLOP/s%s\n",
                  batch, med, train ? "step" : "pass", lo, hi, opt.repeat, batch * 1000.0 / med, pass_flop / (med * 1e6),
                  peak ? (" = " + std::to_string(int(100 * pass_flop / (med * 1e6) / peak->fma_vec4_gflops + 0.5)) +
                          "% of the vec4 peak")
                             .c_str()
                       : "");
      run["median_ms"] = med;
      run["min_ms"] = lo;
      run["max_ms"] = hi;
      run["images_per_s"] = batch * 1000.0 / med;
      run["flop"] = pass_flop;
      run["gflops"] = pass_flop / (med * 1e6);

      // Two more passes with timestamps, the layers timed in the second: the first touches
      // the new recording's workspaces (page faults on CPU drivers, a few times the work of a
      // copy kernel's first piece).
      std::vector<LayerRow> rows = layer_rows(plan, train);
      if (dev.timestamps) {
        if (train) {
          vkalex::RecorderOptions ro;
          ro.timestamps = true;
          trainer.reset();
          vkalex::Trainer timed(ctx, net, batch, ro);
          for (int i = 0; i < 2; ++i, ++sp.step) timed.step(d.images, d.labels, sp);
          add_timings(rows, timed.timings());
        } else {
          net.set_timestamps(true);
          for (int i = 0; i < 2; ++i) net.forward(d.images);
          add_timings(rows, net.timings());
          net.set_timestamps(false);
        }
      }
      double total_ms = 0;
      for (const auto& r : rows) total_ms += r.ms;
      std::printf("  %-10s %-9s %-22s %9s %6s %12s %9s %11s %8s%s\n", "layer", "phase", "kernel", "GPU ms", "share",
                  "FLOP", "GFLOP/s", "bytes", "GB/s", peak ? "  of peak" : "");
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& r : rows) {
        const double gflops = r.ms > 0 ? r.flop / (r.ms * 1e6) : 0, gbps = r.ms > 0 ? r.bytes / (r.ms * 1e6) : 0;
        double share = -1;
        if (peak) share = r.flop ? gflops / peak->fma_vec4_gflops : gbps / peak->copy_gbps;
        std::printf("  %-10s %-9s %-22s %9.3f %5.1f%% %12llu %9.2f %11llu %8.2f", r.name.c_str(), r.phase.c_str(),
                    r.kernel.c_str(), r.ms, total_ms > 0 ? 100 * r.ms / total_ms : 0.0, (unsigned long long)r.flop, gflops,
                    (unsigned long long)r.bytes, gbps);
        if (peak) std::printf("  %6.1f%% %s", 100 * share, r.flop ? "FMA" : "copy");
        std::printf("\n");
        nlohmann::json l = {{"name", r.name},   {"phase", r.phase}, {"kind", r.kind},     {"kernel", r.kernel},
                            {"gpu_ms", r.ms},   {"flop", r.flop},   {"gflops", gflops},   {"bytes", r.bytes},
                            {"gbps", gbps},     {"dispatches", r.dispatches}, {"kernel_ms", r.kernel_ms}};
        if (peak) l["share_of_peak"] = share;
        layers.push_back(l);
      }
      run["gpu_ms"] = total_ms;
      run["layers"] = layers;
      if (train && world.distributed()) {
        trainer.reset();
        run["data_parallel"] = time_data_parallel(net, opt, batch, d, world, med);
      }
      out["runs"].push_back(run);
    }
    if (!opt.json.empty() && world.rank() == 0) {
      vkalex::write_file_atomically(opt.json, out.dump(2) + "\n");
      std::printf("wrote %s\n", opt.json.c_str());
    }
    vkalex_samples::fail_on_validation_messages("bench", ctx);
    if (second) vkalex_samples::fail_on_validation_messages("bench", *second);
    return 0;
  } catch (const std::exception& e) {
    vkalex_samples::die(kProgram, vkalex_samples::describe(e));
  }
}
