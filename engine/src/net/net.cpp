// Net: parameters, activations, and one recorded forward pass replayed per batch.
#include "vkalex/net.hpp"

#include <cmath>
#include <set>

#include "vkalex/random.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

std::map<std::string, HostTensor> random_parameters(const ModelDesc& model, uint64_t seed) {
  std::map<std::string, HostTensor> out;
  uint64_t i = 0;
  for (const auto& [name, shape] : parameter_shapes(model)) {
    const uint64_t fan_in = shape.rank() > 1 ? shape.numel() / shape[0] : 0;
    // Uniform in [-a, a] has variance a^2 / 3; a = sqrt(6 / fan_in) gives 2 / fan_in.
    const float scale = fan_in ? std::sqrt(6.0f / float(fan_in)) : 0.1f;
    out.emplace(name, HostTensor(shape, random_uniform(shape.numel(), seed * 1000003 + ++i, scale)));
  }
  return out;
}

namespace {
// Offsets of tensors sharing one allocation: the largest alignment any device asks for.
constexpr uint64_t kViewAlign = 256;
uint64_t align_up(uint64_t v) { return (v + kViewAlign - 1) / kViewAlign * kViewAlign; }

// Whether layer i's output goes straight into a ReLU that the producing op can apply itself.
bool relu_follows(const ModelDesc& m, size_t i) {
  return i + 1 < m.layers.size() && m.layers[i + 1].type == LayerType::Relu;
}
}  // namespace

struct Net::State {
  std::map<std::string, Tensor> params;
  // For one batch size:
  Tensor input;                    // [N, C, H, W]
  std::vector<Tensor> activations;  // per layer (empty where the layer makes none)
  Tensor output;                   // logits, then probabilities at an aligned offset
  Tensor logits, probabilities;    // views of output
  Tensor input_staging, output_staging;  // host-visible copies where device memory is not
  std::unique_ptr<Recorder> recorder;
};

Net::Net(Context& context, ModelDesc model)
    : context_(&context), model_(std::move(model)), state_(std::make_unique<State>()) {
  for (const auto& [name, shape] : parameter_shapes(model_)) {
    state_->params.emplace(name, context_->tensor(shape));
  }
}

Net::~Net() = default;
Net::Net(Net&&) noexcept = default;
Net& Net::operator=(Net&&) noexcept = default;

std::vector<std::string> Net::load_weights(const SafeTensors& weights) {
  // Check everything before uploading anything.
  for (const auto& [name, shape] : parameter_shapes(model_)) {
    if (!weights.contains(name)) {
      throw Error(weights.path() + ": tensor \"" + name + "\" that model " + model_.name + " needs is missing");
    }
    const auto& e = weights.entry(name);
    if (e.shape != shape) {
      throw Error(weights.path() + ": tensor \"" + name + "\" has shape " + e.shape.str() + ", model " +
                  model_.name + " needs " + shape.str());
    }
    if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16") {
      throw Error(weights.path() + ": tensor \"" + name + "\" is " + e.dtype + "; vkalex reads F32, F16 and BF16");
    }
  }
  for (auto& [name, tensor] : state_->params) context_->upload(tensor, weights.read(name).data);
  std::vector<std::string> extra;
  for (const auto& e : weights.entries())
    if (!state_->params.count(e.name)) extra.push_back(e.name);
  return extra;
}

void Net::set_parameters(const std::map<std::string, HostTensor>& parameters) {
  for (const auto& [name, shape] : parameter_shapes(model_)) {
    auto it = parameters.find(name);
    if (it == parameters.end()) throw Error("set_parameters: tensor \"" + name + "\" is missing");
    if (it->second.shape != shape || it->second.data.size() != shape.numel()) {
      throw Error("set_parameters: tensor \"" + name + "\" has shape " + it->second.shape.str() +
                  ", needs " + shape.str());
    }
  }
  for (const auto& [name, t] : parameters) {
    if (!state_->params.count(name)) throw Error("set_parameters: model " + model_.name + " has no tensor \"" + name + "\"");
  }
  for (auto& [name, tensor] : state_->params) context_->upload(tensor, parameters.at(name).data);
}

std::map<std::string, HostTensor> Net::parameters() const {
  std::map<std::string, HostTensor> out;
  for (const auto& [name, tensor] : state_->params) {
    out.emplace(name, HostTensor(tensor.shape(), context_->download(tensor)));
  }
  return out;
}

const Tensor& Net::parameter_tensor(const std::string& name) const {
  auto it = state_->params.find(name);
  if (it == state_->params.end()) throw Error("Net " + model_.name + " has no parameter \"" + name + "\"");
  return it->second;
}

void Net::prepare(uint32_t batch) {
  if (batch == 0) throw Error("Net: batch size must be at least 1");
  if (batch == batch_) return;
  State& s = *state_;
  Context& ctx = *context_;
  s.recorder.reset();
  s.activations.clear();
  batch_ = 0;

  const auto shapes = layer_shapes(model_, batch);
  s.input = ctx.tensor(model_.input_shape(batch));
  const uint64_t out_elems = uint64_t(batch) * model_.classes;
  const uint64_t probs_offset = align_up(out_elems * sizeof(float));
  s.output = ctx.tensor(Shape{static_cast<uint32_t>((probs_offset / sizeof(float)) + out_elems)});
  s.logits = s.output.view(0, Shape{batch, model_.classes});
  s.probabilities = s.output.view(probs_offset, Shape{batch, model_.classes});
  if (!ctx.direct_host_access()) {
    s.input_staging = ctx.staging_tensor(s.input.shape());
    s.output_staging = ctx.staging_tensor(s.output.shape());
  }

  RecorderOptions options;
  s.recorder = std::make_unique<Recorder>(ctx, options);
  Recorder& rec = *s.recorder;
  rec.begin();
  if (!s.input_staging.empty()) rec.copy(s.input_staging, s.input);
  Tensor cur = s.input;
  s.activations.resize(model_.layers.size());
  for (size_t i = 0; i < model_.layers.size(); ++i) {
    const LayerDesc& l = model_.layers[i];
    Tensor& y = s.activations[i];
    switch (l.type) {
      case LayerType::Conv2d: {
        y = ctx.tensor(shapes[i]);
        Conv2dParams p = l.conv;
        p.relu = relu_follows(model_, i);
        ops::conv2d(rec, cur, s.params.at(l.weight), l.bias.empty() ? nullptr : &s.params.at(l.bias), y, p);
        cur = y;
        if (p.relu) ++i;  // the ReLU is done
        break;
      }
      case LayerType::Linear: {
        y = ctx.tensor(shapes[i]);
        const bool relu = relu_follows(model_, i);
        ops::linear(rec, cur, s.params.at(l.weight), l.bias.empty() ? nullptr : &s.params.at(l.bias), y, relu);
        cur = y;
        if (relu) ++i;
        break;
      }
      case LayerType::Relu:
        y = ctx.tensor(shapes[i]);
        ops::relu(rec, cur, y);
        cur = y;
        break;
      case LayerType::Lrn:
        y = ctx.tensor(shapes[i]);
        ops::lrn(rec, cur, y, l.lrn);
        cur = y;
        break;
      case LayerType::MaxPool:
        y = ctx.tensor(shapes[i]);
        ops::max_pool(rec, cur, y, nullptr, l.pool);
        cur = y;
        break;
      case LayerType::AdaptiveAvgPool:  // checked to be the identity
        break;
      case LayerType::Flatten:
        cur = cur.reshaped(shapes[i]);
        break;
      case LayerType::Dropout:
        cur = ops::dropout_inference(rec, cur);
        break;
      case LayerType::Softmax:
        rec.copy(cur, s.logits);
        ops::softmax(rec, cur, s.probabilities);
        break;
    }
  }
  if (!s.output_staging.empty()) rec.copy(s.output, s.output_staging);
  rec.end();
  batch_ = batch;
  ++records_;
}

void Net::check_input(const HostTensor& input) const {
  if (input.shape.rank() != 4 || input.shape[0] == 0 || input.shape[1] != model_.channels ||
      input.shape[2] != model_.height || input.shape[3] != model_.width) {
    throw Error("Net " + model_.name + ": input " + input.shape.str() + " is not [N, " +
                std::to_string(model_.channels) + ", " + std::to_string(model_.height) + ", " +
                std::to_string(model_.width) + "]");
  }
  if (input.data.size() != input.shape.numel()) throw Error("Net: input data does not match its shape");
}

ForwardResult Net::forward(const HostTensor& input) {
  check_input(input);
  prepare(input.shape[0]);
  State& s = *state_;
  Context& ctx = *context_;
  ctx.upload(s.input_staging.empty() ? s.input : s.input_staging, input.data);
  s.recorder->run();
  ++submits_;
  const std::vector<float> out = ctx.download(s.output_staging.empty() ? s.output : s.output_staging);
  ForwardResult r;
  r.batch = batch_;
  r.classes = model_.classes;
  const uint64_t n = uint64_t(batch_) * model_.classes;
  r.logits.assign(out.begin(), out.begin() + n);
  const uint64_t off = s.probabilities.offset() / sizeof(float);
  r.probabilities.assign(out.begin() + off, out.begin() + off + n);
  r.gpu_ms = s.recorder->gpu_time_ms();
  return r;
}

ForwardResult Net::forward_cpu(const HostTensor& input) const {
  check_input(input);
  const auto params = parameters();
  auto param = [&](const std::string& name) -> const HostTensor* {
    return name.empty() ? nullptr : &params.at(name);
  };
  HostTensor cur = input;
  ForwardResult r;
  r.batch = input.shape[0];
  r.classes = model_.classes;
  for (const LayerDesc& l : model_.layers) {
    switch (l.type) {
      case LayerType::Conv2d: cur = cpu::conv2d(cur, *param(l.weight), param(l.bias), l.conv); break;
      case LayerType::Linear: cur = cpu::linear(cur, *param(l.weight), param(l.bias), false); break;
      case LayerType::Relu: cur = cpu::relu(cur); break;
      case LayerType::Lrn: cur = cpu::lrn(cur, l.lrn); break;
      case LayerType::MaxPool: cur = cpu::max_pool(cur, l.pool).y; break;
      case LayerType::AdaptiveAvgPool: break;
      case LayerType::Flatten: cur.shape = Shape{cur.shape[0], static_cast<uint32_t>(cur.shape.numel() / cur.shape[0])}; break;
      case LayerType::Dropout: cur = cpu::dropout_inference(cur); break;
      case LayerType::Softmax:
        r.logits = cur.data;
        cur = cpu::softmax(cur);
        break;
    }
  }
  r.probabilities = cur.data;
  return r;
}

}  // namespace vkalex
