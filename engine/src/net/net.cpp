// Net: parameters, activations, and one recorded forward pass replayed per batch.
#include "vkalex/net.hpp"

#include <cmath>
#include <set>

#include "net/cpu_walk.hpp"
#include "vk/device.hpp"
#include "vk/exchange.hpp"
#include "vkalex/random.hpp"
#include "vkalex/error.hpp"
#include "vkalex/safetensors.hpp"

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

}  // namespace

struct Net::State {
  std::map<std::string, Tensor> params;
  // For one batch size:
  Plan plan;
  Tensor input;                    // [N, C, H, W]
  std::vector<Tensor> activations;  // per plan op
  Tensor output;                   // logits, then probabilities at an aligned offset
  Tensor logits, probabilities;    // views of output
  Tensor input_staging, output_staging;  // host-visible copies where device memory is not
  std::unique_ptr<Recorder> recorder;
  // The pass alone, without staging copies, for a host's command buffer (made on request).
  std::unique_ptr<Recorder> host_recorder;
  Tensor external_input;  // set_input(): the input tensor, whatever the batch
};

Net::Net(Context& context, ModelDesc model, NetOptions options)
    : context_(context.share()), model_(std::move(model)), options_(options), state_(std::make_unique<State>()) {
  if (options_.storage != DType::F32 && options_.storage != DType::F16) {
    throw Error("Net " + model_.name + ": storage must be f32 or f16, not " + dtype_name(options_.storage));
  }
  if (options_.storage == DType::F16 && !context.device().storage_buffer_16bit) {
    throw Error("Net " + model_.name + ": fp16 storage needs 16-bit storage buffers (storageBuffer16BitAccess), which \"" +
                context.device().name + "\" does not have");
  }
  for (const auto& [name, shape] : parameter_shapes(model_)) {
    state_->params.emplace(name, context_.tensor(shape, options_.storage));
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
  std::map<std::string, HostTensor> values;  // read (and checked finite) before any upload
  for (const auto& [name, tensor] : state_->params) values.emplace(name, weights.read(name));
  for (auto& [name, tensor] : state_->params) context_.upload(tensor, values.at(name).data);
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
    require_finite(t, name, "set_parameters");
  }
  for (auto& [name, tensor] : state_->params) context_.upload(tensor, parameters.at(name).data);
}

std::map<std::string, HostTensor> Net::parameters() const {
  std::map<std::string, HostTensor> out;
  for (const auto& [name, tensor] : state_->params) {
    out.emplace(name, HostTensor(tensor.shape(), context_.download(tensor)));
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
  State& s = *state_;
  if (!s.external_input.empty() && batch != s.external_input.shape()[0]) {
    throw Error("Net " + model_.name + ": the input tensor given to set_input() holds batch " +
                std::to_string(s.external_input.shape()[0]) + ", not " + std::to_string(batch));
  }
  if (batch == batch_) return;
  Context& ctx = context_;
  s.recorder.reset();
  s.host_recorder.reset();
  s.activations.clear();
  s.input = s.output = s.logits = s.probabilities = s.input_staging = s.output_staging = Tensor();
  batch_ = 0;

  s.plan = lower(model_, batch, ctx.device(), options_.storage);
  const DType st = options_.storage;
  const uint64_t esize = dtype_size(st);
  {  // What this batch will take, before any of it is allocated (a lower bound: no alignment).
    uint64_t bytes = 2 * uint64_t(batch) * model_.classes * esize;  // logits and probabilities
    if (s.external_input.empty()) bytes += model_.input_shape(batch).numel() * esize;
    bytes += activation_elements(s.plan) * esize;
    ctx.require_memory_for_batch("Net " + model_.name, batch, bytes, bytes / batch);
  }
  s.input = s.external_input.empty() ? ctx.tensor(model_.input_shape(batch), st) : s.external_input;
  const uint64_t out_elems = uint64_t(batch) * model_.classes;
  const uint64_t probs_offset = align_up(out_elems * esize);
  s.output = ctx.tensor(Shape{static_cast<uint32_t>((probs_offset / esize) + out_elems)}, st);
  s.logits = s.output.view(0, Shape{batch, model_.classes}, st);
  s.probabilities = s.output.view(probs_offset, Shape{batch, model_.classes}, st);
  s.input_staging = s.output_staging = Tensor();
  if (!ctx.direct_host_access()) {
    // A host's input buffer is filled by the host, or by upload() through its own staging.
    if (s.external_input.empty()) s.input_staging = ctx.staging_tensor(s.input.shape(), st);
    s.output_staging = ctx.staging_tensor(s.output.shape(), st);
  }
  for (const PlanOp& op : s.plan.ops) {
    if (owns_output(op.kind)) {
      s.activations.push_back(ctx.tensor(op.out, st));
    } else {
      s.activations.emplace_back();  // made while recording
    }
  }

  RecorderOptions options;
  options.timestamps = timestamps_;
  s.recorder = std::make_unique<Recorder>(ctx, options);
  Recorder& rec = *s.recorder;
  rec.begin();
  if (!s.input_staging.empty()) rec.copy(s.input_staging, s.input);
  record_pass(rec);
  if (!s.output_staging.empty()) rec.copy(s.output, s.output_staging);
  rec.end();
  batch_ = batch;
  ++records_;
}

void Net::record_pass(Recorder& rec) {
  State& s = *state_;
  auto output_of = [&](size_t k) -> const Tensor& { return k == kPlanInput ? s.input : s.activations[k]; };
  for (size_t i = 0; i < s.plan.ops.size(); ++i) {
    const PlanOp& op = s.plan.ops[i];
    const Tensor& cur = output_of(op.inputs[0]);
    Tensor& y = s.activations[i];
    const Tensor* bias = op.bias.empty() ? nullptr : &s.params.at(op.bias);
    rec.set_scope(op.name);
    switch (op.kind) {
      case OpKind::Conv2d: ops::conv2d(rec, cur, s.params.at(op.weight), bias, y, op.conv); break;
      case OpKind::Linear: ops::linear(rec, cur, s.params.at(op.weight), bias, y, op.relu); break;
      case OpKind::Relu: ops::relu(rec, cur, y); break;
      case OpKind::Lrn: ops::lrn(rec, cur, y, op.lrn); break;
      case OpKind::MaxPool: ops::max_pool(rec, cur, y, nullptr, op.pool); break;
      case OpKind::AvgPool: ops::avg_pool(rec, cur, y, op.pool, op.count_include_pad); break;
      case OpKind::Dropout: y = ops::dropout_inference(rec, cur); break;
      case OpKind::Reshape: y = cur.reshaped(op.out); break;
      case OpKind::Softmax:
        rec.copy(cur, s.logits);
        ops::softmax(rec, cur, s.probabilities, op.softmax_length, op.softmax_inner);
        y = s.probabilities;
        break;
      case OpKind::Concat: {
        uint32_t first = 0;
        for (size_t k : op.inputs) {
          const Tensor& x = output_of(k);
          detail::copy_channels(rec, x, 0, y, first, x.shape()[1]);
          first += x.shape()[1];
        }
        break;
      }
      case OpKind::Slice:
        detail::copy_channels(rec, cur, op.slice_begin, y, 0, op.slice_end - op.slice_begin);
        break;
    }
  }
}

void Net::set_input(const Tensor& input) {
  if (input.empty()) {  // back to a tensor of the Net's own, recorded at the next prepare()
    if (!state_->external_input.empty()) {
      state_->recorder.reset();
      state_->host_recorder.reset();
      state_->input = Tensor();
      batch_ = 0;
    }
    state_->external_input = Tensor();
    return;
  }
  const Shape& sh = input.shape();
  if (sh.rank() != 4 || sh[0] == 0 || sh[1] != model_.channels || sh[2] != model_.height || sh[3] != model_.width) {
    throw Error("Net " + model_.name + ": set_input: tensor " + sh.str() + " is not [N, " + std::to_string(model_.channels) +
                ", " + std::to_string(model_.height) + ", " + std::to_string(model_.width) + "]");
  }
  if (input.dtype() != options_.storage) {
    throw Error("Net " + model_.name + ": set_input: tensor is " + dtype_name(input.dtype()) + ", the net stores " +
                dtype_name(options_.storage));
  }
  if (input.allocation().device != context_.shared_impl()) {
    throw Error("Net " + model_.name + ": set_input: the tensor is on another device");
  }
  // Where the new input cannot be recorded (a usage bit it lacks, memory), the net goes back to
  // the input it had, recorded again where that is possible.
  Tensor previous = state_->external_input;
  const uint32_t previous_batch = batch_;
  state_->external_input = input;
  batch_ = 0;
  try {
    prepare(sh[0]);
  } catch (...) {
    state_->external_input = std::move(previous);
    batch_ = 0;
    if (previous_batch) {
      try {
        prepare(previous_batch);
      } catch (...) {  // the error reported is the first one; the net prepares again when next asked
        batch_ = 0;
      }
    }
    throw;
  }
}

const Tensor& Net::input() const {
  if (batch_ == 0) throw Error("Net " + model_.name + ": no input tensor before prepare(), forward() or set_input()");
  return state_->input;
}
const Tensor& Net::logits() const {
  if (batch_ == 0) throw Error("Net " + model_.name + ": no output before prepare(), forward() or set_input()");
  return state_->logits;
}
const Tensor& Net::probabilities() const {
  if (batch_ == 0) throw Error("Net " + model_.name + ": no output before prepare(), forward() or set_input()");
  return state_->probabilities;
}

const Recorder& Net::host_recording() {
  if (batch_ == 0) throw Error("Net " + model_.name + ": nothing to record before prepare() or set_input()");
  State& s = *state_;
  if (!s.host_recorder) {
    auto rec = std::make_unique<Recorder>(context_);
    rec->begin();
    record_pass(*rec);
    rec->end();
    s.host_recorder = std::move(rec);
  }
  return *s.host_recorder;
}

void Net::set_timestamps(bool on) {
  if (on == timestamps_) return;
  timestamps_ = on;
  const uint32_t b = batch_;
  batch_ = 0;  // re-record, now where the batch is known, else at the next forward()
  if (b) prepare(b);
}

std::vector<DispatchTiming> Net::timings() const {
  return state_->recorder ? state_->recorder->timings() : std::vector<DispatchTiming>{};
}

const Plan& Net::plan() const {
  if (batch_ == 0) throw Error("Net " + model_.name + ": no plan before prepare() or forward()");
  return state_->plan;
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
  context_.upload(s.input_staging.empty() ? s.input : s.input_staging, input.data);
  return run();
}

ForwardResult Net::run() {
  if (batch_ == 0) throw Error("Net " + model_.name + ": run() needs an input: prepare() or set_input() first");
  State& s = *state_;
  s.recorder->run();
  ++submits_;
  // The recording itself copied the output to staging where the device memory is not mapped.
  ForwardResult r = unpack(context_.download(s.output_staging.empty() ? s.output : s.output_staging));
  r.gpu_ms = s.recorder->gpu_time_ms();
  return r;
}

ForwardResult Net::read_output() {
  if (batch_ == 0) throw Error("Net " + model_.name + ": no output before prepare(), forward() or set_input()");
  return unpack(context_.download(state_->output));
}

void require_finite(const ForwardResult& r) {
  for (const std::vector<float>* v : {&r.logits, &r.probabilities}) {
    for (size_t i = 0; i < v->size(); ++i) {
      if (std::isfinite((*v)[i])) continue;
      const size_t image = r.classes ? i / r.classes : 0;
      throw Error("the network's output for image " + std::to_string(image) + " holds " +
                  (std::isnan((*v)[i]) ? "NaN" : "an infinity") + " (" + (v == &r.logits ? "logit" : "probability") +
                  " of class " + std::to_string(r.classes ? i % r.classes : i) +
                  "): the weights overflow or the device failed; no classification is given");
    }
  }
}

ForwardResult Net::unpack(const std::vector<float>& out) const {
  const State& s = *state_;
  ForwardResult r;
  r.batch = batch_;
  r.classes = model_.classes;
  const uint64_t n = uint64_t(batch_) * model_.classes;
  r.logits.assign(out.begin(), out.begin() + n);
  const uint64_t off = (s.probabilities.offset() - s.output.offset()) / dtype_size(options_.storage);
  r.probabilities.assign(out.begin() + off, out.begin() + off + n);
  return r;
}

namespace {

HostTensor64 widen(const HostTensor& t) { return HostTensor64(t.shape, std::vector<double>(t.data.begin(), t.data.end())); }

template <typename T>
ForwardResult walk_cpu(const Plan& plan, const BasicHostTensor<T>& input, const std::map<std::string, BasicHostTensor<T>>& params,
                       uint32_t classes) {
  ForwardResult r;
  r.batch = input.shape[0];
  r.classes = classes;
  std::vector<BasicHostTensor<T>> outputs(plan.ops.size());
  auto output_of = [&](size_t k) -> const BasicHostTensor<T>& { return k == kPlanInput ? input : outputs[k]; };
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    const BasicHostTensor<T>& x = output_of(op.inputs[0]);
    if (op.kind == OpKind::Softmax) r.logits.assign(x.data.begin(), x.data.end());
    if (op.kind == OpKind::Concat) {
      std::vector<const BasicHostTensor<T>*> xs;
      for (size_t k : op.inputs) xs.push_back(&output_of(k));
      outputs[i] = cpu::concat_channels(xs);
    } else {
      outputs[i] = detail::cpu_forward_op(op, x, params, false, 0, 0).y;
    }
  }
  const BasicHostTensor<T>& y = outputs.empty() ? input : outputs.back();
  r.probabilities.assign(y.data.begin(), y.data.end());
  return r;
}

}  // namespace

ForwardResult Net::forward_cpu(const HostTensor& input, bool double_activations) const {
  check_input(input);
  const auto params = parameters();
  const Plan plan = lower(model_, input.shape[0], context_.device());
  if (!double_activations) return walk_cpu(plan, input, params, model_.classes);
  std::map<std::string, HostTensor64> params64;
  for (const auto& [name, t] : params) params64.emplace(name, widen(t));
  return walk_cpu(plan, widen(input), params64, model_.classes);
}

namespace detail {

template <typename T>
BasicCpuForward<T> cpu_forward_op(const PlanOp& op, const BasicHostTensor<T>& x,
                                  const std::map<std::string, BasicHostTensor<T>>& params, bool training,
                                  uint32_t seed, uint32_t step) {
  const BasicHostTensor<T>* bias = op.bias.empty() ? nullptr : &params.at(op.bias);
  BasicCpuForward<T> r;
  switch (op.kind) {
    case OpKind::Conv2d: {
      Conv2dParams p = op.conv;
      p.relu = false;
      r.y = cpu::conv2d(x, params.at(op.weight), bias, p);
      break;
    }
    case OpKind::Linear:
      r.y = cpu::linear(x, params.at(op.weight), bias, false);
      break;
    case OpKind::Relu: r.y = cpu::relu(x); break;
    case OpKind::Lrn: r.y = cpu::lrn(x, op.lrn); break;
    case OpKind::MaxPool: {
      auto m = cpu::max_pool(x, op.pool);
      r.y = std::move(m.y);
      r.argmax = std::move(m.argmax);
      break;
    }
    case OpKind::AvgPool: r.y = cpu::avg_pool(x, op.pool, op.count_include_pad); break;
    case OpKind::Dropout: r.y = training ? cpu::dropout(x, op.dropout, seed, step) : cpu::dropout_inference(x); break;
    case OpKind::Reshape:
      r.y = x;
      r.y.shape = op.out;
      break;
    case OpKind::Softmax: r.y = cpu::softmax(x, op.softmax_length, op.softmax_inner); break;
    case OpKind::Slice: r.y = cpu::slice_channels(x, op.slice_begin, op.slice_end); break;
    case OpKind::Concat: r.y = cpu::concat_channels(std::vector<const BasicHostTensor<T>*>{&x}); break;  // of one input
  }
  if (op.relu) {
    r.pre_relu = r.y;
    r.y = cpu::relu(r.pre_relu);
  }
  return r;
}

template BasicCpuForward<float> cpu_forward_op(const PlanOp&, const HostTensor&, const std::map<std::string, HostTensor>&,
                                               bool, uint32_t, uint32_t);
template BasicCpuForward<double> cpu_forward_op(const PlanOp&, const HostTensor64&,
                                                const std::map<std::string, HostTensor64>&, bool, uint32_t, uint32_t);

}  // namespace detail

}  // namespace vkalex
