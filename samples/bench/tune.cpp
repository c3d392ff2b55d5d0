// bench --tune: every applicable kernel variant of each op of a plan, timed alone on the op's
// real shapes, and the fastest kept per (op, shapes) for the tuning file.
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "bench.hpp"

namespace bench {

namespace {

using vkalex::Context;
using vkalex::Recorder;
using vkalex::Shape;
using vkalex::Tensor;

// Timed runs of each variant: at least kMinRuns, then more until kMaxRuns or kBudget seconds.
constexpr size_t kMinRuns = 3, kMaxRuns = 7;
constexpr double kBudget = 1.0;
constexpr double kTie = 0.03;

// Allocates an op's tensors in a Context (random contents) and records the op alone; returns
// the tensors, which must live as long as the recording is replayed.
using RecordAlone = std::function<std::vector<Tensor>(Context&, Recorder&, std::mt19937_64&)>;

struct Job {
  std::string op;  // the registry's op name
  Shape x, w;      // what the op passes to the registry
  uint32_t stride = 1;
  std::string layers;  // "conv2 forward", several where the shapes repeat
  uint32_t batch = 0;
  RecordAlone record;
  std::vector<std::string> variants;  // those that apply, in the device class's order
  std::string builtin;                // the registry's choice without a tuning file
  std::map<std::string, double> ms;
  std::map<std::string, std::string> refused;  // variant -> why it could not run
};

Tensor random_tensor(Context& ctx, const Shape& s, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(s.numel());
  for (float& f : v) f = normal(rng);
  Tensor t = ctx.tensor(s);
  ctx.upload(t, v);
  return t;
}

class Jobs {
 public:
  explicit Jobs(const vkalex::DeviceInfo& device) : device_(device) { device_.tuned_kernels.clear(); }

  void add(const std::string& op, const Shape& x, const Shape& w, uint32_t stride, const std::string& layer,
           uint32_t batch, RecordAlone record) {
    if (device_.forced_kernels.count(op)) return;  // the user's choice stands
    const std::string key = vkalex::ops::kernel_shape_key(x, w, stride);
    for (Job& j : jobs_) {
      if (j.op == op && j.batch == batch && vkalex::ops::kernel_shape_key(j.x, j.w, j.stride) == key) {
        j.layers += ", " + layer;
        return;
      }
    }
    Job j{op, x, w, stride, layer, batch, std::move(record), {}, {}, {}, {}};
    j.variants = vkalex::ops::applicable_kernels(device_, op, x, w, stride);
    if (j.variants.size() < 2) return;
    j.builtin = vkalex::ops::choose_kernel(device_, op, x, w, stride);
    jobs_.push_back(std::move(j));
  }

  std::vector<Job>& list() { return jobs_; }

 private:
  vkalex::DeviceInfo device_;  // without tuned entries: choose_kernel gives the built-in order's choice
  std::vector<Job> jobs_;
};

Shape conv_weight(const vkalex::ModelDesc& model, const vkalex::PlanOp& op) {
  const vkalex::LayerDesc& l = model.layers[op.layer];
  return Shape{l.out_channels, op.in[1] / op.conv.groups, l.kernel_h, l.kernel_w};
}

void add_forward(Jobs& jobs, const vkalex::ModelDesc& model, const vkalex::PlanOp& op, uint32_t batch, bool train) {
  namespace ops = vkalex::ops;
  const std::string layer = op.name + " forward";
  switch (op.kind) {
    case vkalex::OpKind::Conv2d: {
      const Shape w = conv_weight(model, op);
      jobs.add("conv2d", op.in, w, op.conv.stride_w, layer, batch, [op, w](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.in, rng), random_tensor(c, w, rng), random_tensor(c, Shape{w[0]}, rng),
                              c.tensor(op.out)};
        ops::conv2d(rec, t[0], t[1], op.bias.empty() ? nullptr : &t[2], t[3], op.conv);
        return t;
      });
      break;
    }
    case vkalex::OpKind::Linear: {
      const Shape w{op.out[1], op.in[1]};
      jobs.add("linear", op.in, w, 1, layer, batch, [op, w](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.in, rng), random_tensor(c, w, rng), random_tensor(c, Shape{w[0]}, rng),
                              c.tensor(op.out)};
        ops::linear(rec, t[0], t[1], op.bias.empty() ? nullptr : &t[2], t[3], op.relu);
        return t;
      });
      break;
    }
    case vkalex::OpKind::Lrn:
      jobs.add("lrn", op.in, Shape{}, 1, layer, batch, [op](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.in, rng), c.tensor(op.out)};
        ops::lrn(rec, t[0], t[1], op.lrn);
        return t;
      });
      break;
    case vkalex::OpKind::MaxPool:
      // Training records the argmax the backward pass needs; inference does not.
      jobs.add("max_pool", op.in, Shape{}, 1, layer, batch, [op, train](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.in, rng), c.tensor(op.out), c.tensor(op.out, vkalex::DType::U32)};
        ops::max_pool(rec, t[0], t[1], train ? &t[2] : nullptr, op.pool);
        return t;
      });
      break;
    default:
      break;
  }
}

// The backward ops a training step records for `op` (Trainer's order and shapes); `first`:
// the plan's first op with parameters, which computes no input gradient.
void add_backward(Jobs& jobs, const vkalex::ModelDesc& model, const vkalex::PlanOp& op, uint32_t batch, bool first) {
  namespace ops = vkalex::ops;
  const std::string layer = op.name + " backward";
  auto add_relu = [&] {
    jobs.add("relu_backward", op.out, Shape{}, 1, layer, batch, [op](Context& c, Recorder& rec, auto& rng) {
      std::vector<Tensor> t{random_tensor(c, op.out, rng), random_tensor(c, op.out, rng)};
      ops::relu_backward(rec, t[0], t[1], t[0]);
      return t;
    });
  };
  switch (op.kind) {
    case vkalex::OpKind::Conv2d: {
      if (op.relu) add_relu();
      const Shape w = conv_weight(model, op);
      vkalex::Conv2dParams p = op.conv;
      p.relu = false;
      jobs.add("conv2d_backward_weight", op.in, w, p.stride_w, layer, batch, [op, w, p](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.out, rng), random_tensor(c, op.in, rng), c.tensor(w)};
        ops::conv2d_backward_weight(rec, t[0], t[1], t[2], p);
        return t;
      });
      if (first) break;
      jobs.add("conv2d_backward_data", op.in, w, p.stride_w, layer, batch, [op, w, p](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.out, rng), random_tensor(c, w, rng), c.tensor(op.in)};
        ops::conv2d_backward_data(rec, t[0], t[1], t[2], p);
        return t;
      });
      break;
    }
    case vkalex::OpKind::Linear: {
      if (op.relu) add_relu();
      const Shape w{op.out[1], op.in[1]};
      jobs.add("linear_backward_weight", op.in, w, 1, layer, batch, [op, w](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.out, rng), random_tensor(c, op.in, rng), c.tensor(w)};
        ops::linear_backward_weight(rec, t[0], t[1], t[2]);
        return t;
      });
      if (first) break;
      jobs.add("linear_backward_data", op.in, w, 1, layer, batch, [op, w](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.out, rng), random_tensor(c, w, rng), c.tensor(op.in)};
        ops::linear_backward_data(rec, t[0], t[1], t[2]);
        return t;
      });
      break;
    }
    case vkalex::OpKind::Relu:
      add_relu();
      break;
    case vkalex::OpKind::Lrn:
      jobs.add("lrn_backward", op.in, Shape{}, 1, layer, batch, [op](Context& c, Recorder& rec, auto& rng) {
        std::vector<Tensor> t{random_tensor(c, op.out, rng), random_tensor(c, op.in, rng), c.tensor(op.in)};
        ops::lrn_backward(rec, t[0], t[1], t[2], op.lrn);
        return t;
      });
      break;
    case vkalex::OpKind::MaxPool:
      jobs.add("max_pool_backward", op.in, Shape{}, 1, layer, batch, [op](Context& c, Recorder& rec, auto& rng) {
        // A real argmax (the CPU reference's), so that the gradient goes where a forward pass sends it.
        std::vector<Tensor> t{random_tensor(c, op.in, rng), random_tensor(c, op.out, rng),
                              c.tensor(op.out, vkalex::DType::U32), c.tensor(op.in)};
        vkalex::HostTensor x(op.in, c.download(t[0]));
        c.upload(t[2], vkalex::cpu::max_pool(x, op.pool).argmax);
        ops::max_pool_backward(rec, t[1], t[2], t[3], op.pool);
        return t;
      });
      break;
    default:
      break;
  }
}

// Each variant of the job's op recorded alone in the Context that forces it, then run in turn,
// one run of each per lap, so that a machine whose load drifts (other work, clock changes)
// slows every variant alike: one warm-up lap, then kMinRuns to kMaxRuns laps (while within
// kBudget seconds per variant). GPU ms per run (wall ms where the device has no timestamps);
// the median per variant goes into job.ms.
void time_variants(const std::vector<std::unique_ptr<Context>>& contexts, Job& job, uint64_t seed) {
  struct Timed {
    std::string variant;
    Context* ctx;
    std::unique_ptr<Recorder> rec;
    std::vector<Tensor> keep;
    std::vector<double> ms;
  };
  std::vector<Timed> timed;
  const auto all = vkalex::ops::kernel_variants(job.op);
  for (const std::string& v : job.variants) {
    Context& ctx = *contexts[std::find(all.begin(), all.end(), v) - all.begin()];
    try {
      std::mt19937_64 rng(seed);  // the same data for every variant
      auto rec = std::make_unique<Recorder>(ctx);
      rec->begin();
      std::vector<Tensor> keep = job.record(ctx, *rec, rng);
      rec->end();
      rec->run();
      timed.push_back({v, &ctx, std::move(rec), std::move(keep), {}});
    } catch (const vkalex::Error& e) {
      job.refused[v] = e.what();  // e.g. a loop this device would cut short
    }
  }
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  for (size_t lap = 0; lap < kMinRuns || (lap < kMaxRuns && seconds() < kBudget * timed.size()); ++lap) {
    for (Timed& t : timed) {
      const auto t0 = std::chrono::steady_clock::now();
      t.rec->run();
      const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      t.ms.push_back(t.ctx->device().timestamps ? t.rec->gpu_time_ms() : wall);
    }
  }
  for (const Timed& t : timed) job.ms[t.variant] = median(t.ms);
}

// The fastest variant, unless the built-in choice is within kTie of it: differences that small
// are within the noise of a few runs on a busy machine, and the built-in order then stands
// rather than flip with each tuning.
const std::string& chosen(const Job& j) {
  const auto best =
      std::min_element(j.ms.begin(), j.ms.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  const auto builtin = j.ms.find(j.builtin);
  return builtin != j.ms.end() && builtin->second <= best->second * (1 + kTie) ? builtin->first : best->first;
}

void print_table(const std::vector<Job>& jobs, uint32_t batch) {
  std::printf("  %-30s %-24s %-34s %s\n", "layer", "op", "chosen", "ms of each variant");
  for (const Job& j : jobs) {
    if (j.batch != batch || j.ms.empty()) continue;
    std::string choice = chosen(j);
    if (choice != j.builtin) choice += " *";
    std::string each;
    for (const std::string& v : j.variants) {
      each += each.empty() ? "" : ", ";
      if (auto it = j.ms.find(v); it != j.ms.end()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, " %.3f", it->second);
        each += v + buf;
      } else {
        each += v + " refused (" + j.refused.at(v) + ")";
      }
    }
    std::printf("  %-30s %-24s %-34s %s\n", j.layers.c_str(), j.op.c_str(), choice.c_str(), each.c_str());
  }
}

}  // namespace

std::vector<vkalex::TuningEntry> tune_kernels(const vkalex::ContextOptions& options, const vkalex::DeviceInfo& device,
                                              const vkalex::ModelDesc& model, const std::vector<uint32_t>& batches,
                                              bool train, uint64_t seed) {
  Jobs jobs(device);
  for (const uint32_t batch : batches) {
    const vkalex::Plan plan = vkalex::lower(model, batch, device);
    for (const vkalex::PlanOp& op : plan.ops) add_forward(jobs, model, op, batch, train);
    if (!train) continue;
    const size_t first = plan.first_parameter_op();
    for (size_t i = plan.ops.size(); i-- > first;) add_backward(jobs, model, plan.ops[i], batch, i == first);
  }

  // Context r forces the r-th registered variant of every op: a few Contexts run them all.
  size_t rounds = 0;
  for (const Job& j : jobs.list()) rounds = std::max(rounds, vkalex::ops::kernel_variants(j.op).size());
  std::vector<std::unique_ptr<Context>> contexts;
  for (size_t r = 0; r < rounds; ++r) {
    vkalex::ContextOptions o = options;
    o.tuning_file = false;
    for (const Job& j : jobs.list()) {
      const auto all = vkalex::ops::kernel_variants(j.op);
      if (r < all.size()) o.kernels[j.op] = all[r];
    }
    contexts.push_back(std::make_unique<Context>(o));
  }
  for (Job& j : jobs.list()) time_variants(contexts, j, seed);

  std::vector<vkalex::TuningEntry> entries;
  for (const uint32_t batch : batches) {
    std::printf("tuned %s %s, batch %u: GPU ms of each op alone, median of %zu-%zu runs; the fastest is chosen "
                "unless the built-in choice is within %.0f%% of it (* differs from the built-in choice)\n",
                model.name.c_str(), train ? "train" : "forward", batch, kMinRuns, kMaxRuns, 100 * kTie);
    print_table(jobs.list(), batch);
  }
  for (const Job& j : jobs.list()) {
    if (j.ms.empty()) continue;
    vkalex::TuningEntry e;
    e.op = j.op;
    e.key = vkalex::ops::kernel_shape_key(j.x, j.w, j.stride);
    e.variant = chosen(j);
    e.ms = j.ms;
    e.measured_on = model.name + " " + j.layers + ", batch " + std::to_string(j.batch);
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace bench
