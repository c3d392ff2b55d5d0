// Whole networks: model descriptions, the recorded forward pass against the CPU reference.
#include <cmath>

#include "common.hpp"

using namespace vkalex;

namespace {

const std::string kModelDir = VKALEX_MODEL_DIR;

// A small network with every layer type, for fast tests of the Net machinery.
const char* const kTiny = R"({
  "name": "tiny", "input": {"channels": 3, "height": 15, "width": 15},
  "preprocess": {"resize": 15, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
  "classes": 5,
  "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 6, "kernel": 3, "stride": 2, "padding": 1, "weight": "c1.w", "bias": "c1.b"},
    {"type": "relu"},
    {"type": "lrn", "size": 3, "alpha": 0.1, "beta": 0.75, "k": 1},
    {"type": "max_pool", "kernel": 3, "stride": 2, "padding": 1},
    {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel": [1, 3], "padding": [0, 1], "groups": 2, "weight": "c2.w"},
    {"type": "adaptive_avg_pool", "output": 4},
    {"type": "flatten"},
    {"type": "dropout"},
    {"name": "f1", "type": "linear", "out_features": 7, "weight": "f1.w", "bias": "f1.b"},
    {"type": "relu"},
    {"type": "relu"},
    {"name": "f2", "type": "linear", "out_features": 5, "weight": "f2.w", "bias": "f2.b"},
    {"type": "softmax"}
  ]})";

HostTensor random_input(const ModelDesc& m, uint32_t batch, uint64_t seed) {
  const Shape s = m.input_shape(batch);
  return HostTensor(s, random_uniform(s.numel(), seed, 2.0f));
}

// What a forward pass should give: the CPU reference with double activations (exact to within
// double rounding), and how far the float-activation reference is from it. That distance
// shows how much this input amplifies rounding: next to nothing for most inputs, but where a
// logit is a small difference of large terms (random tiny networks have such seeds: one
// output of the 64-input linear layer 342 times smaller than the sum of its terms' sizes),
// fp32 is off by much more than its 6e-8 however right the kernels are.
struct Expected {
  ForwardResult exact;
  double spread_logits = 0, spread_probabilities = 0;
};

Expected expected(const Net& net, const HostTensor& x) {
  Expected e{net.forward_cpu(x, true)};
  const ForwardResult f32 = net.forward_cpu(x);
  e.spread_logits = relative_l2(f32.logits, e.exact.logits);
  e.spread_probabilities = relative_l2(f32.probabilities, e.exact.probabilities);
  return e;
}

// Unit roundoff of fp32 and of fp16 storage.
constexpr double kRoundF32 = 0x1p-24, kRoundF16 = 0x1p-11;
// How much worse than the float-activation reference a GPU result may be where the input
// amplifies rounding: the GPU rounds the same activations (to half with fp16 storage, a
// rounding 2^13 times coarser), and sums in float besides. Measured with the tiny network
// below where the GPU's error exceeded 1e-6 (fp32) or 1e-3 (fp16): at most 15 and 11 times
// (354 seeds on lavapipe, 41 on SwiftShader).
constexpr double kRoundingGrowth = 32;

// The GPU's output within `tol` relative L2 of the exact one, or within kRoundingGrowth times
// the float reference's own distance (scaled to the storage's rounding), whichever is larger.
void require_close(const ForwardResult& gpu, const Expected& want, double tol, double unit_roundoff = kRoundF32) {
  const double scale = kRoundingGrowth * unit_roundoff / kRoundF32;
  INFO("seed " << test::seed() << "; the float reference's own relative error: logits " << want.spread_logits
               << ", probabilities " << want.spread_probabilities);
  REQUIRE(gpu.logits.size() == want.exact.logits.size());
  CHECK(relative_l2(gpu.logits, want.exact.logits) <= std::max(tol, scale * want.spread_logits));
  CHECK(relative_l2(gpu.probabilities, want.exact.probabilities) <= std::max(tol, scale * want.spread_probabilities));
  for (uint32_t i = 0; i < gpu.batch; ++i) {
    double sum = 0;
    for (uint32_t c = 0; c < gpu.classes; ++c) sum += gpu.probabilities[i * gpu.classes + c];
    CHECK(sum == Approx(1.0).epsilon(unit_roundoff == kRoundF32 ? 1e-5 : 1e-3));
  }
}

}  // namespace

TEST_CASE("alexnet2012 forward, batch 2, matches the CPU reference", "[net][alexnet]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet2012.json");
  CHECK(layer_shapes(m, 2)[15] == Shape{2, 9216});  // flatten of 256x6x6
  uint64_t params = 0;
  for (const auto& [name, shape] : parameter_shapes(m)) params += shape.numel();
  CHECK(params == 60965224);  // the paper's "60 million"
  Net net(ctx, m);
  net.set_parameters(random_parameters(m, test::seed()));
  const HostTensor x = random_input(m, 2, test::seed() + 1);
  require_close(net.forward(x), expected(net, x), 1e-4);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("alexnet-torchvision forward, batch 2, matches the CPU reference", "[net][alexnet]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet-torchvision.json");
  uint64_t params = 0;
  for (const auto& [name, shape] : parameter_shapes(m)) params += shape.numel();
  CHECK(params == 61100840);  // torchvision's AlexNet
  Net net(ctx, m);
  net.set_parameters(random_parameters(m, test::seed()));
  const HostTensor x = random_input(m, 2, test::seed() + 1);
  require_close(net.forward(x), expected(net, x), 1e-4);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("the forward pass is recorded once and replayed per batch", "[net][recorder]") {
  auto o = test::options();
  o.force_staging = GENERATE(false, true);
  Context ctx(o);
  const ModelDesc m = parse_model(kTiny, "tiny", ".");
  Net net(ctx, m);
  net.set_parameters(random_parameters(m, test::seed()));
  for (int i = 0; i < 3; ++i) {
    const HostTensor x = random_input(m, 3, test::seed() + i);
    require_close(net.forward(x), expected(net, x), 1e-5);
  }
  CHECK(net.record_count() == 1);
  CHECK(net.submit_count() == 3);
  // A new batch size records again, once.
  for (int i = 0; i < 2; ++i) {
    const HostTensor x = random_input(m, 1, test::seed() + 10 + i);
    require_close(net.forward(x), expected(net, x), 1e-5);
  }
  CHECK(net.record_count() == 2);
  CHECK(net.submit_count() == 5);
  // Parameters read back are the ones set.
  const auto p = random_parameters(m, test::seed());
  net.set_parameters(p);
  for (const auto& [name, t] : net.parameters()) CHECK(t.data == p.at(name).data);
  CHECK_THROWS_WITH(net.forward(HostTensor(Shape{1, 3, 16, 15})), Catch::Contains("[1, 3, 16, 15]"));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("an input that amplifies rounding is recognised by the float reference's distance", "[net]") {
  // Seed 3758446062297512724 of the test above, batch 1: only one of f1's 7 outputs is
  // positive, 0.062, the sum of 64 terms whose sizes add up to 21.3. fp32 activations put the
  // reference 1.3e-6 from the exact logits, and lavapipe's GPU result 1.4e-5 (more than the
  // test's 1e-5, however right each kernel is: each is within 1e-5 on its own).
  Context& ctx = test::gpu();
  const ModelDesc m = parse_model(kTiny, "tiny", ".");
  const uint64_t seed = 3758446062297512724u;
  Net net(ctx, m);
  net.set_parameters(random_parameters(m, seed));
  const HostTensor x = random_input(m, 1, seed + 10);
  const Expected want = expected(net, x);
  CHECK(want.spread_logits > 1e-6);
  CHECK(want.spread_logits < 1e-5);
  require_close(net.forward(x), want, 1e-5);
  // A well-conditioned input of the same network: the reference's distance is fp32's own.
  const Expected calm = expected(net, random_input(m, 1, seed + 11));
  CHECK(calm.spread_logits < 1e-6);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("bad model descriptions are rejected naming the layer and the problem", "[net][model][errors]") {
  const std::string good = kTiny;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  CHECK_NOTHROW(parse_model(good, "tiny.json", "."));
  CHECK_THROWS_WITH(parse_model(with("\"type\": \"lrn\"", "\"type\": \"batchnorm\""), "tiny.json", "."),
                    Catch::Contains("tiny.json: layer 2") && Catch::Contains("unknown layer type \"batchnorm\""));
  CHECK_THROWS_WITH(parse_model(with("\"out_features\": 7, ", ""), "tiny.json", "."),
                    Catch::Contains("layer 8 (f1)") && Catch::Contains("missing field \"out_features\""));
  CHECK_THROWS_WITH(parse_model(with("\"kernel\": [1, 3]", "\"kernel\": [1, 3], \"dilation\": 2"), "tiny.json", "."),
                    Catch::Contains("layer 4 (c2)") && Catch::Contains("unknown field \"dilation\""));
  CHECK_THROWS_WITH(parse_model(with("\"groups\": 2", "\"groups\": 4"), "tiny.json", "."),
                    Catch::Contains("layer 4 (c2)") && Catch::Contains("groups 4"));
  CHECK_THROWS_WITH(parse_model(with("\"output\": 4", "\"output\": 6"), "tiny.json", "."),
                    Catch::Contains("adaptive_avg_pool5") && Catch::Contains("only outputs 6x6 that divide"));
  CHECK_THROWS_WITH(parse_model(with("{\"type\": \"flatten\"},", ""), "tiny.json", "."),
                    Catch::Contains("(f1)") && Catch::Contains("flatten"));
  CHECK_THROWS_WITH(parse_model(with("\"kernel\": 3, \"stride\": 2, \"padding\": 1}", "\"kernel\": 9, \"stride\": 2}"), "tiny.json", "."),
                    Catch::Contains("max_pool3") && Catch::Contains("does not fit"));
  CHECK_THROWS_WITH(parse_model(with("\"classes\": 5", "\"classes\": 6"), "tiny.json", "."),
                    Catch::Contains("\"classes\" is 6"));
  CHECK_THROWS_WITH(parse_model(with("\"weight\": \"f2.w\"", "\"weight\": \"f1.w\""), "tiny.json", "."),
                    Catch::Contains("(f2)") && Catch::Contains("\"f1.w\" is used twice"));
  CHECK_THROWS_WITH(parse_model(with("{\"type\": \"softmax\"}", "{\"type\": \"relu\"}"), "tiny.json", "."),
                    Catch::Contains("last layer must be softmax"));
  CHECK_THROWS_WITH(parse_model(with("\"mean\": [0.5, 0.5, 0.5]", "\"mean\": [0.5]"), "tiny.json", "."),
                    Catch::Contains("preprocess") && Catch::Contains("\"mean\""));
  CHECK_THROWS_WITH(parse_model(with("\"out_channels\": 6", "\"out_channels\": -6"), "tiny.json", "."),
                    Catch::Contains("(c1)") && Catch::Contains("\"out_channels\""));
  // Numbers beyond any sensible value (1e300 would be an infinity as float), a std that would
  // divide to one, and a key given twice.
  CHECK_THROWS_WITH(parse_model(with("\"mean\": [0.5, 0.5, 0.5]", "\"mean\": [0.5, 1e300, 0.5]"), "tiny.json", "."),
                    Catch::Contains("preprocess") && Catch::Contains("\"mean\" holds 1e+300"));
  CHECK_THROWS_WITH(parse_model(with("\"alpha\": 0.1", "\"alpha\": -2e6"), "tiny.json", "."),
                    Catch::Contains("\"alpha\" holds -2000000.0"));
  CHECK_THROWS_WITH(parse_model(with("\"std\": [0.25, 0.25, 0.25]", "\"std\": [0.25, 1e-30, 0.25]"), "tiny.json", "."),
                    Catch::Contains("std values must be at least 1e-6"));
  CHECK_THROWS_WITH(parse_model(with("\"classes\": 5", "\"classes\": 5, \"classes\": 5"), "tiny.json", "."),
                    Catch::Contains("tiny.json: the key \"classes\" is given twice"));
  CHECK_THROWS_WITH(parse_model(with("\"beta\": 0.75", "\"beta\": 0.75, \"beta\": 0.5"), "tiny.json", "."),
                    Catch::Contains("the key \"beta\" is given twice"));
  CHECK_THROWS_WITH(parse_model("{\"name\": ", "broken.json", "."), Catch::Contains("broken.json: not valid JSON"));
  CHECK_THROWS_WITH(load_model("/nonexistent/model.json"), Catch::Contains("/nonexistent/model.json: cannot open"));
}

TEST_CASE("the shipped descriptions load and name their files", "[net][model]") {
  for (const char* name : {"alexnet2012.json", "alexnet-torchvision.json"}) {
    const ModelDesc m = load_model(kModelDir + "/" + name);
    INFO(name);
    CHECK(m.classes == 1000);
    CHECK(load_labels(m.labels_path, m.classes).size() == 1000);
  }
  const ModelDesc tv = load_model(kModelDir + "/alexnet-torchvision.json");
  CHECK(parameter_shapes(tv).front() == std::pair<std::string, Shape>{"features.0.weight", Shape{64, 3, 11, 11}});
  CHECK(layer_shapes(tv, 1)[12] == Shape{1, 256, 6, 6});
  CHECK_THROWS_WITH(load_labels(kModelDir + "/imagenet_classes.txt", 10), Catch::Contains("more than 10"));
  CHECK_THROWS_WITH(load_labels(kModelDir + "/imagenet_classes.txt", 1001), Catch::Contains("1000 class names"));
}

TEST_CASE("alexnet2012 with fp16 storage stays within 1e-2 of the fp32 CPU reference", "[net][alexnet][f16]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet2012.json");
  if (!ctx.device().storage_buffer_16bit) {  // SwiftShader: refused with the reason
    CHECK_THROWS_WITH(Net(ctx, m, NetOptions{DType::F16}), Catch::Contains("16-bit storage"));
    return;
  }
  CHECK_THROWS_WITH(Net(ctx, m, NetOptions{DType::U32}), Catch::Contains("f32 or f16"));
  const auto params = random_parameters(m, test::seed());
  Net net(ctx, m, NetOptions{DType::F16});
  net.set_parameters(params);
  CHECK(net.parameter_tensor("fc6.weight").bytes() == uint64_t(4096) * 9216 * 2);  // half of fp32's
  // The reference: the fp32 network on the CPU with the unrounded weights, so the error
  // counts every rounding fp16 storage makes (weights, input, each activation).
  Net full(ctx, m);
  full.set_parameters(params);
  const HostTensor x = random_input(m, 2, test::seed() + 1);
  const ForwardResult want = full.forward_cpu(x);
  const ForwardResult got = net.forward(x);
  INFO("seed " << test::seed());
  const double err = relative_l2(got.logits, want.logits);
  CHECK(err <= 1e-2);
  CHECK(err > 1e-6);  // it did store halves: fp32 storage is within 1e-6 here
  CHECK(relative_l2(got.probabilities, want.probabilities) <= 1e-2);
  // The f32 net on the GPU for scale.
  CHECK(relative_l2(full.forward(x).logits, want.logits) <= 1e-4);
  // Replays with new input, and its parameters read back as the halves stored.
  const HostTensor x2 = random_input(m, 2, test::seed() + 2);
  CHECK(relative_l2(net.forward(x2).logits, full.forward_cpu(x2).logits) <= 1e-2);
  CHECK(net.record_count() == 1);
  const auto back = net.parameters().at("conv1.bias");
  for (size_t i = 0; i < back.data.size(); ++i) REQUIRE(back.data[i] == half_to_float(float_to_half(params.at("conv1.bias").data[i])));
  // Training keeps f32.
  CHECK_THROWS_WITH(Trainer(ctx, net, 2), Catch::Contains("fp16 storage"));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("a small network with every layer type runs with fp16 storage at odd sizes", "[net][f16]") {
  // Standalone ReLUs, groups, a 1x3 kernel, odd element counts (f16 tensors whose bytes are
  // not a multiple of 4), batches 3 and 1, each recorded once and replayed, on the direct and
  // the staging path.
  auto o = test::options();
  o.force_staging = GENERATE(false, true);
  Context ctx(o);
  const ModelDesc m = parse_model(kTiny, "tiny", ".");
  if (!ctx.device().storage_buffer_16bit) return;  // refused there (the alexnet2012 case checks how)
  const auto params = random_parameters(m, test::seed());
  Net net(ctx, m, NetOptions{DType::F16});
  net.set_parameters(params);
  Net full(ctx, m);
  full.set_parameters(params);
  for (uint32_t batch : {3u, 3u, 1u}) {
    INFO("batch " << batch << ", seed " << test::seed());
    const HostTensor x = random_input(m, batch, test::seed() + batch);
    require_close(net.forward(x), expected(full, x), 1e-2, kRoundF16);
  }
  CHECK(net.record_count() == 2);  // batch 3 once, then batch 1
  test::require_no_validation_messages(ctx);
}

TEST_CASE("average pooling, ceil_mode and adaptive pooling that shrinks run as the CPU reference", "[net][avg_pool]") {
  const ModelDesc m = parse_model(R"({
    "name": "pools", "input": {"channels": 3, "height": 17, "width": 17},
    "preprocess": {"resize": 17, "mean": [0, 0, 0], "std": [1, 1, 1]}, "classes": 4,
    "layers": [
      {"name": "c1", "type": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1, "weight": "c1.w", "bias": "c1.b"},
      {"type": "relu"},
      {"type": "max_pool", "kernel": 3, "stride": 2, "ceil_mode": true},
      {"type": "avg_pool", "kernel": 3, "stride": 1, "padding": 1, "count_include_pad": true},
      {"type": "avg_pool", "kernel": 2, "stride": 2, "ceil_mode": true},
      {"type": "adaptive_avg_pool", "output": [1, 1]},
      {"type": "flatten"},
      {"name": "f1", "type": "linear", "out_features": 4, "weight": "f1.w", "bias": "f1.b"},
      {"type": "softmax"}
    ]})", "pools", ".");
  // 17 -> max 3/2 ceil: 8 -> avg 3/1 pad 1: 8 -> avg 2/2 ceil: 4 -> adaptive: 1.
  const auto shapes = layer_shapes(m, 2);
  CHECK(shapes[2] == Shape{2, 6, 8, 8});
  CHECK(shapes[4] == Shape{2, 6, 4, 4});
  CHECK(shapes[5] == Shape{2, 6, 1, 1});
  Context& ctx = test::gpu();
  Net net(ctx, m);
  net.set_parameters(random_parameters(m, test::seed()));
  const HostTensor x = random_input(m, 2, test::seed() + 1);
  require_close(net.forward(x), expected(net, x), 1e-5);
  CHECK(net.plan().ops[4].kind == OpKind::AvgPool);  // the adaptive pooling that shrinks (the ReLU is c1's)
  CHECK_THROWS_WITH(Trainer(net, 2), Catch::Contains("layer avg_pool3 is an average pooling, which has no backward pass"));
  CHECK_THROWS_WITH(parse_model(std::string(R"({"name": "x", "input": {"channels": 1, "height": 6, "width": 6},
    "preprocess": {"resize": 6, "mean": [0], "std": [1]}, "classes": 4,
    "layers": [{"type": "adaptive_avg_pool", "output": 4}, {"type": "flatten"}, {"type": "softmax"}]})"), "x", "."),
                    Catch::Contains("only outputs 4x4 that divide the input's height and width"));
  test::require_no_validation_messages(ctx);
}

namespace {

// A network that branches: slices of the input (overlapping), towers with a ReLU the
// convolution applies and one it cannot (its convolution is read twice), a concat of four
// (one twice), slices and a concat of features.
const char* const kBranches = R"({
  "name": "branches", "input": {"channels": 3, "height": 15, "width": 15},
  "preprocess": {"resize": 15, "mean": [0, 0, 0], "std": [1, 1, 1]}, "classes": 4,
  "layers": [
    {"name": "sa", "type": "slice", "inputs": ["input"], "begin": 0, "end": 2},
    {"name": "sb", "type": "slice", "inputs": ["input"], "begin": 1, "end": 3},
    {"name": "ca", "type": "conv2d", "inputs": ["sa"], "out_channels": 4, "kernel": 3, "padding": 1, "weight": "ca.w", "bias": "ca.b"},
    {"name": "ra", "type": "relu"},
    {"name": "cb", "type": "conv2d", "inputs": ["sb"], "out_channels": 3, "kernel": 3, "padding": 1, "weight": "cb.w"},
    {"name": "rb", "type": "relu"},
    {"name": "cat", "type": "concat", "inputs": ["ra", "cb", "rb", "ra"]},
    {"name": "pool", "type": "max_pool", "kernel": 3, "stride": 2},
    {"name": "c2", "type": "conv2d", "out_channels": 6, "kernel": 3, "groups": 2, "weight": "c2.w", "bias": "c2.b"},
    {"name": "flat", "type": "flatten"},
    {"name": "fa", "type": "slice", "begin": 10, "end": 60},
    {"name": "f1", "type": "linear", "out_features": 5, "weight": "f1.w", "bias": "f1.b"},
    {"name": "f2", "type": "linear", "inputs": ["flat"], "out_features": 3, "weight": "f2.w"},
    {"name": "r2", "type": "relu"},
    {"name": "both", "type": "concat", "inputs": ["f1", "r2"]},
    {"name": "f3", "type": "linear", "out_features": 4, "weight": "f3.w", "bias": "f3.b"},
    {"type": "softmax"}
  ]})";

}  // namespace

TEST_CASE("graphs that branch (slice, concat, inputs) run as the CPU reference", "[net][branch]") {
  const ModelDesc m = parse_model(kBranches, "branches", ".");
  const auto shapes = layer_shapes(m, 2);
  CHECK(shapes[6] == Shape{2, 14, 15, 15});  // 4 + 3 + 3 + 4 channels
  CHECK(shapes[10] == Shape{2, 50});
  CHECK(shapes[14] == Shape{2, 8});
  Context& ctx = test::gpu();
  Net net(ctx, m);
  net.set_parameters(random_parameters(m, test::seed()));
  for (uint32_t batch : {1u, 3u}) {
    const HostTensor x = random_input(m, batch, test::seed() + batch);
    require_close(net.forward(x), expected(net, x), 1e-5);
  }
  // The ReLU after ca is its kernel's; the one after cb is not (cat reads cb as well), nor is
  // f2's (not the layer after it).
  const Plan& plan = net.plan();
  std::map<std::string, const PlanOp*> op;
  for (const PlanOp& o : plan.ops) op[o.name] = &o;
  REQUIRE(op.count("ca"));
  CHECK(op.at("ca")->relu);
  CHECK_FALSE(op.count("ra"));
  CHECK_FALSE(op.at("cb")->relu);
  CHECK(op.at("rb")->kind == OpKind::Relu);
  CHECK(op.at("f2")->relu);  // r2 follows f2 and reads it alone
  CHECK(op.at("cat")->inputs.size() == 4);
  CHECK(op.at("cat")->inputs[0] == op.at("cat")->inputs[3]);
  CHECK(op.at("sa")->inputs == std::vector<size_t>{kPlanInput});
  CHECK_FALSE(plan.is_chain());
  CHECK_THROWS_WITH(Trainer(net, 2), Catch::Contains("layer sb (slice) does not just read the layer before it") &&
                                         Catch::Contains("no backward pass yet"));
  CHECK_THROWS_WITH(split_plan(plan), Catch::Contains("not a chain"));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("a grouped convolution spelt as slices, convolutions and a concat gives the same", "[net][branch]") {
  // c2 with groups 2, and the same as two towers of one group each.
  const std::string head = R"({"name": "g", "input": {"channels": 3, "height": 12, "width": 12},
    "preprocess": {"resize": 12, "mean": [0, 0, 0], "std": [1, 1, 1]}, "classes": 5, "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 8, "kernel": 3, "weight": "c1.w", "bias": "c1.b"},
    {"type": "relu"},)";
  const std::string tail = R"(
    {"name": "flat", "type": "flatten"},
    {"name": "f", "type": "linear", "out_features": 5, "weight": "f.w", "bias": "f.b"},
    {"type": "softmax"}]})";
  const ModelDesc grouped = parse_model(head + R"(
    {"name": "c2", "type": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1, "groups": 2, "weight": "c2.w", "bias": "c2.b"},
    {"name": "r2", "type": "relu"},)" + tail, "grouped", ".");
  const ModelDesc towers = parse_model(head + R"(
    {"name": "s0", "type": "slice", "begin": 0, "end": 4},
    {"name": "c2a", "type": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1, "weight": "c2a.w", "bias": "c2a.b"},
    {"name": "r2a", "type": "relu"},
    {"name": "s1", "type": "slice", "inputs": ["relu1"], "begin": 4, "end": 8},
    {"name": "c2b", "type": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1, "weight": "c2b.w", "bias": "c2b.b"},
    {"name": "r2b", "type": "relu"},
    {"name": "cat", "type": "concat", "inputs": ["r2a", "r2b"]},)" + tail, "towers", ".");
  auto p = random_parameters(grouped, test::seed());
  auto rows = [&](const std::string& name, uint32_t first, uint32_t count) {
    const HostTensor& t = p.at(name);
    const uint64_t per_row = t.shape.numel() / t.shape[0];
    std::vector<uint32_t> dims = t.shape.dims();
    dims[0] = count;
    return HostTensor(Shape(dims), std::vector<float>(t.data.begin() + first * per_row, t.data.begin() + (first + count) * per_row));
  };
  auto q = p;
  q.erase("c2.w"), q.erase("c2.b");
  q["c2a.w"] = rows("c2.w", 0, 3), q["c2a.b"] = rows("c2.b", 0, 3);
  q["c2b.w"] = rows("c2.w", 3, 3), q["c2b.b"] = rows("c2.b", 3, 3);
  Context& ctx = test::gpu();
  Net a(ctx, grouped), b(ctx, towers);
  a.set_parameters(p);
  b.set_parameters(q);
  for (uint32_t batch : {1u, 4u, 128u}) {  // 128: a copy region per image and input
    const HostTensor x = random_input(grouped, batch, test::seed() + 7 * batch);
    const ForwardResult ra = a.forward(x), rb = b.forward(x);
    INFO("seed " << test::seed() << ", batch " << batch);
    // The same kernels on the same values (a convolution of 3 output channels per tower):
    // equal but for the summation order a kernel variant may choose by shape.
    CHECK(relative_l2(rb.logits, ra.logits) <= 1e-6);
    CHECK(relative_l2(rb.probabilities, ra.probabilities) <= 1e-6);
  }
  test::require_no_validation_messages(ctx);
}

TEST_CASE("descriptions that branch wrongly are rejected naming the layer", "[net][model][errors][branch]") {
  const std::string good = kBranches;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  CHECK_NOTHROW(parse_model(good, "b.json", "."));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"sa\"]", "\"inputs\": [\"nosuch\"]"), "b.json", "."),
                    Catch::Contains("layer 2 (ca)") && Catch::Contains("reads \"nosuch\", which is not an earlier layer"));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"sa\"]", "\"inputs\": [\"cb\"]"), "b.json", "."),
                    Catch::Contains("layer 2 (ca)") && Catch::Contains("reads \"cb\""));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"sa\"]", "\"inputs\": [\"sa\", \"sb\"]"), "b.json", "."),
                    Catch::Contains("(ca)") && Catch::Contains("only a concat reads more than one"));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"f1\", \"r2\"]", "\"inputs\": [\"f1\"]"), "b.json", "."),
                    Catch::Contains("(both)") && Catch::Contains("at least two layers"));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"f1\", \"r2\"]", "\"inputs\": []"), "b.json", "."),
                    Catch::Contains("(both)") && Catch::Contains("non-empty list of layer names"));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"f1\", \"r2\"]", "\"inputs\": [\"f1\", 3]"), "b.json", "."),
                    Catch::Contains("(both)") && Catch::Contains("list of layer names"));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"f1\", \"r2\"]", "\"inputs\": [\"f2\", \"r2\"]"), "b.json", "."),
                    Catch::Contains("(f1)") && Catch::Contains("no layer reads its output"));
  CHECK_THROWS_WITH(parse_model(with("\"name\": \"sa\"", "\"name\": \"input\""), "b.json", "."),
                    Catch::Contains("may not be named \"input\""));
  CHECK_THROWS_WITH(parse_model(with("\"begin\": 1, \"end\": 3", "\"begin\": 1, \"end\": 4"), "b.json", "."),
                    Catch::Contains("(sb)") && Catch::Contains("channels 1 to 4 (end excluded) are not a range of its input [1, 3, 15, 15]'s 3"));
  CHECK_THROWS_WITH(parse_model(with("\"begin\": 1, \"end\": 3", "\"begin\": 2, \"end\": 2"), "b.json", "."),
                    Catch::Contains("(sb)") && Catch::Contains("are not a range"));
  CHECK_THROWS_WITH(parse_model(with("\"begin\": 1, \"end\": 3", "\"end\": 3"), "b.json", "."),
                    Catch::Contains("(sb)") && Catch::Contains("missing field \"begin\""));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"f1\", \"r2\"]", "\"inputs\": [\"f1\", \"r2\", \"pool\"]"), "b.json", "."),
                    Catch::Contains("(both)") && Catch::Contains("its inputs [1, 5] and [1, 14, 7, 7] differ in more than their channels"));
  CHECK_THROWS_WITH(parse_model(with("\"inputs\": [\"ra\", \"cb\", \"rb\", \"ra\"]", "\"inputs\": [\"ra\", \"f1\"]"), "b.json", "."),
                    Catch::Contains("(cat)") && Catch::Contains("reads \"f1\", which is not an earlier layer"));
}
