// Data parallelism inside one process: workers on devices of their own, each training its
// shard of the global batch, their gradient buckets summed by threads (what MPI does between
// processes), against one worker given the whole global batch.
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>

#include "common.hpp"

using namespace vkalex;

namespace {

const std::string kModelDir = VKALEX_MODEL_DIR;

// Sums every worker's bucket in worker order (the same bits on every worker) through shared
// memory: the thread twin of an MPI all-reduce.
class ThreadSum {
 public:
  explicit ThreadSum(size_t workers) : spans_(workers), sync_(std::ptrdiff_t(workers)) {}

  class Reducer : public GradientReducer {
   public:
    Reducer(ThreadSum& sum, size_t worker) : sum_(sum), worker_(worker) {}
    void start(size_t bucket, std::span<float> g) override {
      if (sum_.spans_[worker_].size() <= bucket) sum_.spans_[worker_].resize(bucket + 1);
      sum_.spans_[worker_][bucket] = g;
      started.push_back(bucket);
    }
    void finish(size_t bucket) override {
      sum_.sync_.arrive_and_wait();  // every worker's bucket is in
      if (worker_ == 0) {
        const size_t n = sum_.spans_[0][bucket].size();
        sum_.total_.assign(n, 0.0f);
        for (const auto& spans : sum_.spans_) {
          REQUIRE(spans[bucket].size() == n);
          for (size_t i = 0; i < n; ++i) sum_.total_[i] += spans[bucket][i];
        }
      }
      sum_.sync_.arrive_and_wait();  // the sum is ready
      std::memcpy(sum_.spans_[worker_][bucket].data(), sum_.total_.data(), sum_.total_.size() * 4);
      sum_.sync_.arrive_and_wait();  // every worker has its copy
      finished.push_back(bucket);
    }
    std::vector<size_t> started, finished;

   private:
    ThreadSum& sum_;
    size_t worker_;
  };

 private:
  std::vector<std::vector<std::span<float>>> spans_;
  std::vector<float> total_;
  std::barrier<> sync_;
};

struct Run {
  std::map<std::string, HostTensor> parameters, momentum;
  std::vector<StepStats> stats;
  std::vector<GradientBucket> buckets;
};

// `steps` steps of alexnet-fashion from the same start on `shards` (image counts, summing to the
// global batch), each worker on a Context of its own in a thread of its own; one shard without
// buckets is the plain single-worker step.
std::vector<Run> train(const std::vector<uint32_t>& shards, uint64_t bucket_bytes, uint32_t steps, uint64_t seed) {
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  uint32_t global = 0;
  for (uint32_t n : shards) global += n;
  std::vector<HostTensor> images;
  std::vector<std::vector<uint32_t>> labels;
  for (uint32_t s = 0; s < steps; ++s) {
    images.emplace_back(m.input_shape(global), random_uniform(m.input_shape(global).numel(), seed + 10 * s, 2.0f));
    std::vector<uint32_t> l(global);
    for (uint32_t i = 0; i < global; ++i) l[i] = uint32_t((seed + 7 * s + 3 * i) % m.classes);
    labels.push_back(l);
  }
  const auto start = initial_parameters(m, Init::He, seed);
  ThreadSum sum(shards.size());
  std::vector<Run> runs(shards.size());
  std::vector<std::string> errors(shards.size());
  auto worker = [&](size_t w) {
    try {
      Context ctx(test::options());
      Net net(ctx, m);
      net.set_parameters(start);
      uint32_t first = 0;
      for (size_t i = 0; i < w; ++i) first += shards[i];
      TrainerOptions opt;
      if (shards.size() > 1) opt.global_batch = global, opt.first_image = first;
      opt.bucket_bytes = bucket_bytes;
      Trainer trainer(net, shards[w], opt);
      ThreadSum::Reducer reducer(sum, w);
      const uint64_t per_image = m.input_shape(1).numel();
      for (uint32_t s = 0; s < steps; ++s) {
        HostTensor x(m.input_shape(shards[w]));
        std::copy_n(images[s].data.begin() + first * per_image, shards[w] * per_image, x.data.begin());
        const std::vector<uint32_t> l(labels[s].begin() + first, labels[s].begin() + first + shards[w]);
        StepParams sp;
        sp.step = s;
        sp.seed = uint32_t(seed);
        sp.lr = 0.02f;
        runs[w].stats.push_back(shards.size() > 1 ? trainer.step(x, l, sp, &reducer) : trainer.step(x, l, sp));
      }
      if (shards.size() > 1) {
        std::vector<size_t> want(trainer.buckets().size());
        for (size_t k = 0; k < want.size(); ++k) want[k] = k;
        std::vector<size_t> all;
        for (uint32_t s = 0; s < steps; ++s) all.insert(all.end(), want.begin(), want.end());
        if (reducer.started != all || reducer.finished != all) errors[w] = "buckets out of order";
      }
      runs[w].parameters = net.parameters();
      runs[w].momentum = trainer.momentum();
      runs[w].buckets = trainer.buckets();
      const auto messages = ctx.take_validation_messages();
      if (!messages.empty()) errors[w] = "validation: " + messages.front();
    } catch (const std::exception& e) {
      errors[w] = e.what();
    }
  };
  std::vector<std::thread> threads;
  for (size_t w = 0; w < shards.size(); ++w) threads.emplace_back(worker, w);
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e == "");
  return runs;
}

// Each tensor of `got` within `tol` (relative L2) of `want`.
void require_close(const std::map<std::string, HostTensor>& got, const std::map<std::string, HostTensor>& want,
                   double tol, const char* what) {
  REQUIRE(got.size() == want.size());
  for (const auto& [name, t] : want) {
    const double e = relative_l2(got.at(name).data, t.data);
    INFO(what << " " << name << ": relative L2 " << e << " (seed " << test::seed() << ")");
    REQUIRE(e <= tol);
  }
}

}  // namespace

TEST_CASE("two data-parallel workers match one worker given the whole batch", "[train][dataparallel]") {
  const uint64_t seed = test::seed();
  // Shards 4 + 4 and uneven 3 + 2; buckets small enough that every layer has its own.
  for (const std::vector<uint32_t>& shards : {std::vector<uint32_t>{4, 4}, std::vector<uint32_t>{3, 2}}) {
    uint32_t global = 0;
    for (uint32_t n : shards) global += n;
    INFO("shards " << shards[0] << " + " << shards[1]);
    const Run one = train({global}, 0, 3, seed)[0];
    const std::vector<Run> two = train(shards, 1, 3, seed);
    REQUIRE(two[0].buckets.size() == 8);  // fc8, fc7, fc6, conv5 ... conv1: one each
    CHECK(two[0].buckets[0].parameters == std::vector<std::string>{"fc8.weight", "fc8.bias"});
    // Every worker applied the same update, to the bit.
    for (const auto& [name, t] : two[0].parameters) {
      INFO(name);
      REQUIRE(std::memcmp(t.data.data(), two[1].parameters.at(name).data.data(), t.data.size() * 4) == 0);
    }
    require_close(two[0].parameters, one.parameters, 1e-5, "weights");
    require_close(two[0].momentum, one.momentum, 1e-5, "momentum");
    // The workers' losses, weighted by their shards, are the global batch's.
    for (size_t s = 0; s < one.stats.size(); ++s) {
      double loss = 0;
      uint32_t correct = 0;
      for (size_t w = 0; w < two.size(); ++w) {
        loss += two[w].stats[s].loss * two[w].stats[s].batch;
        correct += two[w].stats[s].correct;
      }
      CHECK(std::fabs(loss / global - one.stats[s].loss) <= 1e-5 * one.stats[s].loss);
      CHECK(correct == one.stats[s].correct);
    }
    // The steps moved the weights (a reducer that dropped the gradients would not match).
    CHECK(relative_l2(one.parameters.at("fc8.weight").data,
                      initial_parameters(load_model(kModelDir + "/alexnet-fashion.json"), Init::He, seed)
                          .at("fc8.weight").data) > 1e-3);
  }
}

TEST_CASE("bucketed steps without a reducer are the plain step, to the bit", "[train][dataparallel]") {
  const uint64_t seed = test::seed();
  const Run plain = train({6}, 0, 2, seed)[0];
  const Run bucketed = train({6}, 64 << 10, 2, seed)[0];
  CHECK(bucketed.buckets.size() > 1);
  CHECK(plain.buckets.empty());
  for (const auto& [name, t] : plain.parameters) {
    INFO(name);
    REQUIRE(std::memcmp(t.data.data(), bucketed.parameters.at(name).data.data(), t.data.size() * 4) == 0);
  }
}

TEST_CASE("data-parallel options are checked", "[train][dataparallel]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  Net net(ctx, m);
  TrainerOptions opt;
  opt.global_batch = 8;
  opt.first_image = 5;
  CHECK_THROWS_WITH(Trainer(net, 4, opt), Catch::Contains("images 5 to 8 are not within a global batch of 8"));
  opt.global_batch = 0;
  CHECK_THROWS_WITH(Trainer(net, 4, opt), Catch::Contains("first_image 5 without a global_batch"));
  Trainer plain(net, 2, TrainerOptions{});
  ThreadSum sum(1);
  ThreadSum::Reducer reducer(sum, 0);
  const HostTensor x(m.input_shape(2));
  CHECK_THROWS_WITH(plain.step(x, {0, 1}, StepParams{}, &reducer), Catch::Contains("needs a Trainer made with TrainerOptions::bucket_bytes"));
}
