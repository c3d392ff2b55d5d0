// The paper's model parallelism: a net split over two devices against the same net on one.
// The two devices: $VKALEX_SPLIT_DEVICES ("SPEC,SPEC", each an index or a part of a device's
// name) where set, e.g. lavapipe and SwiftShader with both ICDs visible (ctest runs that too),
// else the default device opened twice.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common.hpp"
#include "same_training.hpp"

using namespace vkalex;

namespace {

const std::string kModelDir = VKALEX_MODEL_DIR;

std::pair<Context, Context> two_devices() {
  ContextOptions a = test::options(), b = test::options();
  if (const char* env = std::getenv("VKALEX_SPLIT_DEVICES"); env && *env) {
    const std::string spec = env;
    const size_t comma = spec.find(',');
    REQUIRE(comma != std::string::npos);
    a.device = spec.substr(0, comma);
    b.device = spec.substr(comma + 1);
  }
  return {Context(a), Context(b)};
}

HostTensor random_input(const ModelDesc& m, uint32_t batch, uint64_t seed) {
  return HostTensor(m.input_shape(batch), random_uniform(m.input_shape(batch).numel(), seed, 2.0f));
}

void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const char* what) {
  const double e = relative_l2(got, want);
  INFO(what << ": relative L2 " << e << " (seed " << test::seed() << ")");
  REQUIRE(e <= tol);
}

// LRNs whose sums weigh heavily (alpha 1), so that a channel missing across the middle shows;
// 7 and 10 channels, split 3 + 4 and 5 + 5; a ReLU of its own; groups 2 after groups 1.
ModelDesc strong_lrn_model() {
  return parse_model(R"({
    "name": "split-check", "input": {"channels": 3, "height": 9, "width": 9},
    "preprocess": {"resize": 9, "mean": [0, 0, 0], "std": [1, 1, 1]}, "classes": 5,
    "layers": [
      {"name": "c1", "type": "conv2d", "out_channels": 7, "kernel": 3, "padding": 1, "weight": "c1.w", "bias": "c1.b"},
      {"type": "lrn", "size": 5, "alpha": 1, "beta": 0.75, "k": 1},
      {"type": "relu"},
      {"type": "max_pool", "kernel": 2, "stride": 2},
      {"name": "c2", "type": "conv2d", "out_channels": 10, "kernel": 3, "padding": 1, "weight": "c2.w"},
      {"type": "relu"},
      {"type": "lrn", "size": 3, "alpha": 1, "beta": 0.75, "k": 1},
      {"name": "c3", "type": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1, "groups": 2, "weight": "c3.w"},
      {"type": "flatten"},
      {"name": "f1", "type": "linear", "out_features": 5, "weight": "f1.w", "bias": "f1.b"},
      {"type": "softmax"}
    ]})", "split-check", ".");
}

}  // namespace

TEST_CASE("split plan: the paper's halves, exchanges where a layer reads the other half", "[split][plan]") {
  const ModelDesc m = load_model(kModelDir + "/alexnet2012.json");
  const SplitPlan sp = split_plan(lower(m, 2, DeviceInfo{}));
  REQUIRE(sp.ops.size() == sp.plan.ops.size());
  auto op = [&](const std::string& name) -> const SplitOp& {
    for (size_t i = 0; i < sp.plan.ops.size(); ++i)
      if (sp.plan.ops[i].name == name) return sp.ops[i];
    FAIL("no op " << name);
    throw 0;
  };
  // conv1 reads the whole image and computes 48 + 48 maps.
  CHECK(op("conv1").input[0] == ChannelRange{0, 3});
  CHECK(op("conv1").computes[1] == ChannelRange{48, 96});
  // The LRN reads its half and 4 channels across the middle.
  CHECK(op("norm1").input[0] == ChannelRange{0, 52});
  CHECK(op("norm1").input[1] == ChannelRange{44, 96});
  CHECK(op("norm1").computes[0] == ChannelRange{0, 48});
  // conv2 (groups 2) reads its own half; conv3 (groups 1) everything.
  CHECK(op("conv2").input[1] == ChannelRange{48, 96});
  CHECK(op("conv3").input[1] == ChannelRange{0, 256});
  CHECK(op("conv4").input[0] == ChannelRange{0, 192});
  CHECK(op("fc6").input[0] == ChannelRange{0, 9216});
  CHECK(op("fc8").computes[1] == ChannelRange{500, 1000});
  CHECK(op("prob").computes[0] == ChannelRange{0, 1000});
  CHECK(op("prob").computes[1].empty());
  // A convolution with 3 groups cannot be split.
  ModelDesc odd = m;
  for (auto& l : odd.layers)
    if (l.name == "conv2") l.conv.groups = 3, l.out_channels = 255;
  CHECK_THROWS_WITH(split_plan(lower(odd, 1, DeviceInfo{})), Catch::Contains("conv2") && Catch::Contains("groups 3"));
}

TEST_CASE("a net split over two devices gives the single-device net's forward pass", "[split]") {
  auto [a, b] = two_devices();
  INFO("devices: " << a.device().name << " and " << b.device().name);
  WARN("split over " << a.device().name << " and " << b.device().name);
  for (const char* name : {"alexnet-fashion", "alexnet2012"}) {
    const ModelDesc m = load_model(kModelDir + "/" + name + ".json");
    const auto params = random_parameters(m, test::seed());
    Net one(a, m);
    one.set_parameters(params);
    SplitNet split(a, b, m);
    split.set_parameters(params);
    // The batch people train with too, where the model is small enough to run it here.
    const std::vector<uint32_t> batches = std::string(name) == "alexnet-fashion" ? std::vector<uint32_t>{1, 3, 128}
                                                                                  : std::vector<uint32_t>{1, 3};
    for (uint32_t batch : batches) {
      INFO(name << " batch " << batch);
      const HostTensor x = random_input(m, batch, test::seed() + batch);
      const ForwardResult want = one.forward(x);
      const ForwardResult got = split.forward(x);
      require_close(got.logits, want.logits, 1e-5, "logits");
      require_close(got.probabilities, want.probabilities, 1e-5, "probabilities");
    }
    // The exchanges: the LRNs' middle channels, the inputs of conv3 and the fully connected
    // layers, and the logits to device 0.
    std::vector<std::string> where;
    for (const auto& e : split.exchanges()) where.push_back(e.before);
    CHECK(where == std::vector<std::string>{"norm1", "norm2", "conv3", "fc6", "fc7", "fc8", "prob"});
    // The parameters come back whole.
    const auto back = split.parameters();
    for (const auto& [pname, t] : params) {
      INFO(pname);
      REQUIRE(back.at(pname).data.size() == t.data.size());
      REQUIRE(std::memcmp(back.at(pname).data.data(), t.data.data(), t.data.size() * 4) == 0);
    }
    test::require_no_validation_messages(a);
    test::require_no_validation_messages(b);
  }
}

TEST_CASE("a split net with strong LRNs, odd channel counts and a separate ReLU", "[split]") {
  const ModelDesc m = strong_lrn_model();
  auto [a, b] = two_devices();
  const auto params = random_parameters(m, test::seed());
  Net one(a, m);
  one.set_parameters(params);
  SplitNet split(a, b, m);
  split.set_parameters(params);
  const HostTensor x = random_input(m, 3, test::seed() + 1);
  const ForwardResult want = one.forward_cpu(x, true), got = split.forward(x);
  require_close(got.logits, want.logits, 1e-5, "logits");
  require_close(got.probabilities, want.probabilities, 1e-5, "probabilities");
}

namespace {

// `steps` SGD steps on one device and split over two from the same start: the same training by
// the rule of same_training.hpp (near ties decided apart are followed by the CPU reference).
void check_split_training(const ModelDesc& m, uint32_t batch, uint32_t steps, Init init, const std::string& moved) {
  auto [a, b] = two_devices();
  const auto start = initial_parameters(m, init, test::seed());
  Net one(a, m);
  one.set_parameters(start);
  Trainer trainer(one, batch);
  SplitNet split(a, b, m);
  split.set_parameters(start);
  SplitTrainer split_trainer(split, batch);
  std::vector<HostTensor> inputs;
  std::vector<std::vector<uint32_t>> labels;
  std::vector<StepParams> params;
  test::TrainingRun runs[2];
  runs[0].name = "one device";
  runs[1].name = "split";
  std::vector<std::pair<double, double>> losses;
  for (uint32_t step = 0; step < steps; ++step) {
    inputs.push_back(random_input(m, batch, test::seed() + 100 + step));
    labels.emplace_back(batch);
    for (uint32_t i = 0; i < batch; ++i) labels.back()[i] = uint32_t((test::seed() + 3 * i + step) % m.classes);
    StepParams sp;
    sp.step = step;
    sp.seed = uint32_t(test::seed());
    sp.lr = 0.005f;  // as in test_data_parallel.cpp: 0.02 diverges on random data for some seeds
    params.push_back(sp);
    const StepStats want = trainer.step(inputs.back(), labels.back(), sp);
    const StepStats got = split_trainer.step(inputs.back(), labels.back(), sp);
    runs[0].forwards.push_back(trainer.last_forward());
    runs[1].forwards.push_back(split_trainer.last_forward());
    losses.push_back({want.loss, got.loss});
  }
  runs[0].parameters = one.parameters();
  runs[0].momentum = trainer.momentum();
  runs[1].parameters = split.parameters();
  runs[1].momentum = split_trainer.momentum();
  // The weights moved: a step that updated nothing would match nothing but the start.
  CHECK(relative_l2(runs[1].parameters.at(moved).data, start.at(moved).data) > 1e-4);
  test::require_no_validation_messages(a);
  test::require_no_validation_messages(b);
  const double worst = test::require_same_training({m, start, inputs, labels, params}, runs[0], runs[1]);
  // The losses: the first step's always (a tie decided apart changes no value of the forward
  // pass), the later ones where the weights still agree.
  for (size_t step = 0; step < losses.size(); ++step) {
    if (step > 0 && worst > 1e-5) break;
    INFO("loss of step " << step << ": " << losses[step].second << " split, " << losses[step].first << " one device");
    CHECK(std::fabs(losses[step].second - losses[step].first) <= 1e-5 * std::fabs(losses[step].first));
  }
}

}  // namespace

TEST_CASE("training steps split over two devices match the single-device steps", "[split][train]") {
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  check_split_training(m, 3, 3, Init::He, "fc8.weight");
  check_split_training(strong_lrn_model(), 3, 2, Init::He, "f1.w");
  check_split_training(m, 64, 1, Init::He, "fc8.weight");  // a batch people train with
}

TEST_CASE("an alexnet2012 training step split over two devices matches the single-device step", "[split][train][alexnet]") {
  const ModelDesc m = load_model(kModelDir + "/alexnet2012.json");
  check_split_training(m, 2, 1, Init::He, "fc8.weight");
}

TEST_CASE("a split net refuses one device twice and bad parameters", "[split]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  CHECK_THROWS_WITH(SplitNet(ctx, ctx, m), Catch::Contains("both Contexts are handles on one device"));
  Context other(test::options());
  SplitNet split(ctx, other, m);
  auto params = random_parameters(m, 1);
  params.erase("fc7.bias");
  CHECK_THROWS_WITH(split.set_parameters(params), Catch::Contains("\"fc7.bias\" is missing"));
  CHECK_THROWS_WITH(split.forward(HostTensor(Shape{2, 3, 28, 28})), Catch::Contains("is not [N, 1, 28, 28]"));
}
