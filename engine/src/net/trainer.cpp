// Trainer: the whole SGD step recorded once, and its CPU reference twin.
#include "vkalex/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include "net/cpu_walk.hpp"
#include "vk/device.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"
#include "vkalex/safetensors.hpp"

namespace vkalex {

std::map<std::string, HostTensor> initial_parameters(const ModelDesc& model, Init init, uint64_t seed) {
  std::map<std::string, HostTensor> out;
  std::mt19937_64 rng(seed);
  for (const LayerDesc& l : model.layers) {
    if (l.type != LayerType::Conv2d && l.type != LayerType::Linear) continue;
    for (const auto& [name, shape] : parameter_shapes(model)) {
      if (name != l.weight && name != l.bias) continue;
      HostTensor t(shape);
      if (name == l.weight) {
        const double fan_in = double(shape.numel() / shape[0]);
        std::normal_distribution<double> normal(0.0, init == Init::Paper ? 0.01 : std::sqrt(2.0 / fan_in));
        for (float& v : t.data) v = static_cast<float>(normal(rng));
      } else {
        std::fill(t.data.begin(), t.data.end(), init == Init::Paper ? l.init_bias : 0.0f);
      }
      out.emplace(name, std::move(t));
    }
  }
  return out;
}

namespace detail {

void check_step_batch(const ModelDesc& m, const HostTensor& images, const std::vector<uint32_t>& labels, uint32_t batch) {
  if (images.shape != m.input_shape(batch) || images.data.size() != images.shape.numel()) {
    throw Error("train step: images " + images.shape.str() + " are not " + m.input_shape(batch).str());
  }
  if (labels.size() != batch) {
    throw Error("train step: " + std::to_string(labels.size()) + " labels for a batch of " + std::to_string(batch));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= m.classes) {
      throw Error("train step: label " + std::to_string(labels[i]) + " of image " + std::to_string(i) +
                  " is out of range (the model has " + std::to_string(m.classes) + " classes)");
    }
  }
}

}  // namespace detail

namespace {

using detail::check_step_batch;

// Near ties (see train_step_cpu): within this share of the layer input's RMS.
constexpr double kTieWindow = 1e-4;

double rms(const HostTensor& t) {
  double sum = 0;
  for (float v : t.data) sum += double(v) * v;
  return t.data.empty() ? 0 : std::sqrt(sum / double(t.data.size()));
}

const HostTensor& follow_output(const ForwardRecord& f, const std::string& layer, const Shape& shape) {
  auto it = f.outputs.find(layer);
  if (it == f.outputs.end() || it->second.shape != shape) {
    throw Error("train_step_cpu: the recorded forward has no output of " + layer + " " + shape.str());
  }
  return it->second;
}

// y = relu(x); where x is within rounding of 0, the device's output (0 or its tiny positive).
void follow_relu_ties(const HostTensor& x, const HostTensor& device_y, HostTensor& y, size_t* followed) {
  const double window = kTieWindow * rms(x);
  for (size_t j = 0; j < y.data.size(); ++j) {
    if (std::fabs(double(x.data[j])) > window) continue;
    if ((device_y.data[j] > 0) != (y.data[j] > 0)) {
      y.data[j] = device_y.data[j];
      if (followed) ++*followed;
    }
  }
}

// Where the device picked another element of a window and its value here is within rounding
// of this window's maximum, take the device's pick.
void follow_pool_ties(const HostTensor& x, const MaxPoolParams& p, const std::vector<uint32_t>& device_argmax,
                      HostTensor& y, std::vector<uint32_t>& argmax, size_t* followed) {
  const double window = kTieWindow * rms(x);
  const uint64_t H = x.shape[2], W = x.shape[3], OH = y.shape[2], OW = y.shape[3];
  for (size_t o = 0; o < argmax.size(); ++o) {
    const uint32_t mine = argmax[o], theirs = device_argmax[o];
    if (mine == theirs || theirs >= x.data.size()) continue;
    // Only a pick inside this output's own window (same image and channel) can be a tie.
    const int64_t oy = int64_t(o / OW % OH), ox = int64_t(o % OW);
    const int64_t iy = int64_t(theirs / W % H), ix = int64_t(theirs % W);
    const int64_t y0 = oy * p.stride_h - p.pad_h, x0 = ox * p.stride_w - p.pad_w;
    const bool inside = theirs / (H * W) == o / (OH * OW) && iy >= y0 && iy < y0 + p.kernel_h && ix >= x0 &&
                        ix < x0 + p.kernel_w;
    if (inside && double(x.data[mine]) - double(x.data[theirs]) <= window) {
      argmax[o] = theirs;
      y.data[o] = x.data[theirs];
      if (followed) ++*followed;
    }
  }
}


std::vector<uint32_t> words(const StepParams& p) {
  std::vector<uint32_t> w(8);
  std::memcpy(w.data(), &p, sizeof p);
  return w;
}

}  // namespace

namespace detail {
// A bucket of gradients (TrainerOptions::bucket_bytes): one tensor the parameters' gradients
// are views of, and where the host reads and writes it.
struct TrainerBucket {
  GradientBucket info;
  Tensor grads, staging;  // staging: a host-visible copy where the device memory is not mapped
  size_t closes_after = 0;  // the plan op whose backward pass completes the bucket
  std::span<float> host() const {
    const Tensor& t = staging.empty() ? grads : staging;
    return {reinterpret_cast<float*>(t.allocation().mapped() + t.offset()), size_t(t.numel())};
  }
};
}  // namespace detail
using detail::TrainerBucket;

struct Trainer::State {
  Tensor images, labels, params, stats;
  Tensor images_staging, labels_staging, params_staging, stats_staging;
  std::map<std::string, Tensor> grads, momentum;
  std::vector<Tensor> keep;  // activations and their gradients, alive as long as the recording
  Plan plan;
  std::vector<std::pair<std::string, Tensor>> outputs, argmax;  // the forward pass, by layer
  // The step: one recording, or with buckets one per bucket (the first also holds the forward
  // pass and the loss) and `update` (the reduced gradients back and the update).
  std::vector<std::unique_ptr<Recorder>> segments;
  std::unique_ptr<Recorder> update;
  std::vector<TrainerBucket> buckets;
};

namespace {

// A gradient's room in a bucket: its floats rounded up to 256 bytes, at least any device's
// minStorageBufferOffsetAlignment.
uint64_t bucket_floats(const Shape& shape) { return (shape.numel() + 63) / 64 * 64; }

// Splits the gradients into buckets in backward order, each closed after the layer that
// brings it to `bucket_bytes`; the first parameter op closes the last.
std::vector<TrainerBucket> plan_buckets(const Plan& plan, const ModelDesc& m, uint64_t bucket_bytes) {
  std::vector<TrainerBucket> buckets;
  if (bucket_bytes == 0) return buckets;
  std::map<std::string, Shape> shapes;
  for (const auto& [name, shape] : parameter_shapes(m)) shapes.emplace(name, shape);
  const size_t first = plan.first_parameter_op();
  uint64_t bytes = 0;
  for (size_t i = plan.ops.size(); i-- > first;) {
    const PlanOp& op = plan.ops[i];
    if (op.weight.empty()) continue;
    if (buckets.empty() || bytes >= bucket_bytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    for (const std::string& name : {op.weight, op.bias}) {
      if (name.empty()) continue;
      buckets.back().info.parameters.push_back(name);
      buckets.back().info.floats += bucket_floats(shapes.at(name));
      bytes += bucket_floats(shapes.at(name)) * 4;
    }
    buckets.back().closes_after = i;
  }
  return buckets;
}

}  // namespace

Trainer::Trainer(Context& context, Net& net, uint32_t batch, const RecorderOptions& options)
    : Trainer(net, batch, options) {
  if (context.shared_impl() != net.context().shared_impl()) {
    throw Error("Trainer: the Context given is not the device net " + net.model().name + " is on");
  }
}

Trainer::Trainer(Net& net, uint32_t batch, const RecorderOptions& options)
    : Trainer(net, batch, TrainerOptions{options, 0, 0, 0}) {}

Trainer::Trainer(Net& net, uint32_t batch, const TrainerOptions& options)
    : context_(net.context().share()), model_(net.model()), batch_(batch), state_(std::make_unique<State>()) {
  if (batch == 0) throw Error("Trainer: batch size must be at least 1");
  if (options.global_batch == 0 && options.first_image != 0) {
    throw Error("Trainer: first_image " + std::to_string(options.first_image) + " without a global_batch");
  }
  if (options.global_batch != 0 && uint64_t(options.first_image) + batch > options.global_batch) {
    throw Error("Trainer: images " + std::to_string(options.first_image) + " to " +
                std::to_string(uint64_t(options.first_image) + batch - 1) + " are not within a global batch of " +
                std::to_string(options.global_batch));
  }
  if (net.options().storage != DType::F32) {
    throw Error("Trainer: net " + net.model().name + " has fp16 storage, which is for inference; train with f32 storage");
  }
  const ModelDesc& m = net.model();
  State& s = *state_;
  Context& ctx = context_;
  s.plan = lower(m, batch, ctx.device());
  require_trainable(s.plan, "Trainer");
  const Plan& plan = s.plan;
  {  // A lower bound of what the step takes, checked before any of it is allocated: the images,
     // every op's output, the gradients and the momentum of the parameters.
    const uint64_t per_batch = (m.input_shape(batch).numel() + activation_elements(plan)) * 4;
    uint64_t params = 0;
    for (const auto& [name, shape] : parameter_shapes(m)) params += shape.numel() * 4;
    ctx.require_memory_for_batch("Trainer of " + m.name, batch, per_batch + 2 * params, per_batch / batch);
  }
  s.images = ctx.tensor(m.input_shape(batch));
  s.labels = ctx.tensor(Shape{batch}, DType::U32);
  s.params = ctx.tensor(Shape{8}, DType::U32);
  s.stats = ctx.tensor(Shape{batch, 2});
  if (!ctx.direct_host_access()) {
    s.images_staging = ctx.staging_tensor(s.images.shape());
    s.labels_staging = ctx.staging_tensor(s.labels.shape(), DType::U32);
    s.params_staging = ctx.staging_tensor(s.params.shape(), DType::U32);
    s.stats_staging = ctx.staging_tensor(s.stats.shape());
  }
  s.buckets = plan_buckets(plan, m, options.bucket_bytes);
  for (TrainerBucket& b : s.buckets) {
    if (b.info.floats > UINT32_MAX) throw Error("Trainer: a bucket of gradients holds more than 2^32 floats");
    b.grads = ctx.tensor(Shape{uint32_t(b.info.floats)});
    ctx.fill(b.grads, 0.0f);  // the gaps between the gradients stay zero
    if (!ctx.direct_host_access()) {
      b.staging = ctx.staging_tensor(b.grads.shape());
      ctx.fill(b.staging, 0.0f);
    }
    uint64_t offset = 0;
    for (const std::string& name : b.info.parameters) {
      const Shape shape = net.parameter_tensor(name).shape();
      s.grads.emplace(name, b.grads.view(offset, shape));
      offset += bucket_floats(shape) * 4;
    }
  }
  for (const auto& [name, shape] : parameter_shapes(m)) {
    if (!s.grads.count(name)) s.grads.emplace(name, ctx.tensor(shape));
    Tensor v = ctx.tensor(shape);
    ctx.fill(v, 0.0f);
    s.momentum.emplace(name, v);
  }

  // The net's parameters, kept alive with the recording that updates them: the Net may go first.
  for (const auto& [name, shape] : parameter_shapes(m)) s.keep.push_back(net.parameter_tensor(name));
  s.segments.push_back(std::make_unique<Recorder>(ctx, options.recorder));
  Recorder* rec = s.segments.back().get();
  rec->begin();
  if (!s.images_staging.empty()) {
    rec->copy(s.images_staging, s.images);
    rec->copy(s.labels_staging, s.labels);
    rec->copy(s.params_staging, s.params);
  }

  // Forward, keeping what the backward pass needs: each op's input and output.
  struct Saved {
    Tensor x, y, argmax;
  };
  std::vector<Saved> saved(plan.ops.size());
  Tensor cur = s.images;
  auto keep = [&](Tensor t) {
    s.keep.push_back(t);
    return t;
  };
  auto param = [&](const std::string& name) -> const Tensor& { return net.parameter_tensor(name); };
  // The index of this worker's first element of a dropout input in the global batch's tensor.
  auto dropout_first_index = [&](const PlanOp& op) {
    const uint64_t index = uint64_t(options.first_image) * (op.in.numel() / batch);
    if (index > UINT32_MAX) throw Error("Trainer: " + op.name + " of a global batch of " + std::to_string(options.global_batch) + " has more than 2^32 elements");
    return uint32_t(index);
  };
  size_t next_bucket = 0;
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    Saved& sv = saved[i];
    sv.x = cur;
    const Tensor* bias = op.bias.empty() ? nullptr : &param(op.bias);
    rec->set_scope(op.name);
    switch (op.kind) {
      case OpKind::Conv2d:
        sv.y = keep(ctx.tensor(op.out));
        ops::conv2d(*rec, cur, param(op.weight), bias, sv.y, op.conv);
        break;
      case OpKind::Linear:
        sv.y = keep(ctx.tensor(op.out));
        ops::linear(*rec, cur, param(op.weight), bias, sv.y, op.relu);
        break;
      case OpKind::Relu:
        sv.y = keep(ctx.tensor(op.out));
        ops::relu(*rec, cur, sv.y);
        break;
      case OpKind::Lrn:
        sv.y = keep(ctx.tensor(op.out));
        ops::lrn(*rec, cur, sv.y, op.lrn);
        break;
      case OpKind::AvgPool:
      case OpKind::Concat:
      case OpKind::Slice:  // require_trainable refused them
        throw Error(std::string("Trainer: ") + op_kind_name(op.kind) + " has no backward pass");
      case OpKind::MaxPool:
        sv.y = keep(ctx.tensor(op.out));
        sv.argmax = keep(ctx.tensor(op.out, DType::U32));
        ops::max_pool(*rec, cur, sv.y, &sv.argmax, op.pool);
        break;
      case OpKind::Dropout:
        sv.y = keep(ctx.tensor(op.out));
        ops::dropout(*rec, cur, sv.y, op.dropout, s.params, dropout_first_index(op));
        break;
      case OpKind::Reshape:
        sv.y = cur.reshaped(op.out);
        break;
      case OpKind::Softmax:  // the loss below takes the logits
        sv.y = cur;
        break;
    }
    cur = sv.y;
    s.outputs.emplace_back(op.name, sv.y);
    if (op.relu) s.outputs.emplace_back(op.relu_layer, sv.y);
    if (!sv.argmax.empty()) s.argmax.emplace_back(op.name, sv.argmax);
  }

  // Loss: gradient of the mean cross-entropy with respect to the logits.
  Tensor grad = keep(ctx.tensor(cur.shape()));
  rec->set_scope("loss");
  ops::softmax_cross_entropy(*rec, cur, s.labels, grad, s.stats, options.global_batch);

  // Backward, last op first, down to the first op with parameters; `grad` is the gradient of
  // the current op's output.
  const size_t first = plan.first_parameter_op();
  bool through_relu = false;  // `grad` already went back through the next op's fused ReLU
  for (size_t i = plan.ops.size(); i-- > first;) {
    const PlanOp& op = plan.ops[i];
    const Saved& sv = saved[i];
    rec->set_scope(op.name + " backward");
    switch (op.kind) {
      case OpKind::Conv2d:
      case OpKind::Linear: {
        if (op.relu && !through_relu) ops::relu_backward(*rec, grad, sv.y, grad);
        through_relu = false;
        const bool conv = op.kind == OpKind::Conv2d;
        Conv2dParams p = op.conv;
        p.relu = false;
        if (conv) {
          ops::conv2d_backward_weight(*rec, grad, sv.x, s.grads.at(op.weight), p);
        } else {
          ops::linear_backward_weight(*rec, grad, sv.x, s.grads.at(op.weight));
        }
        if (!op.bias.empty()) ops::bias_backward(*rec, grad, s.grads.at(op.bias));
        if (i > first) {
          Tensor gx = keep(ctx.tensor(sv.x.shape()));
          if (conv) {
            ops::conv2d_backward_data(*rec, grad, param(op.weight), gx, p);
          } else {
            ops::linear_backward_data(*rec, grad, param(op.weight), gx);
          }
          grad = gx;
        }
        break;
      }
      case OpKind::Relu:
        ops::relu_backward(*rec, grad, sv.y, grad);
        break;
      case OpKind::Lrn: {
        Tensor gx = keep(ctx.tensor(sv.x.shape()));
        // An LRN right after a layer's ReLU (AlexNet's conv1, conv2) also passes the
        // gradient back through that ReLU: its input is the ReLU's output.
        const bool relu_before = i > first && plan.ops[i - 1].relu;
        ops::lrn_backward(*rec, grad, sv.x, gx, op.lrn, relu_before);
        through_relu = relu_before;
        grad = gx;
        break;
      }
      case OpKind::AvgPool:
      case OpKind::Concat:
      case OpKind::Slice:  // require_trainable refused them
        throw Error(std::string("Trainer: ") + op_kind_name(op.kind) + " has no backward pass");
      case OpKind::MaxPool: {
        Tensor gx = keep(ctx.tensor(sv.x.shape()));
        ops::max_pool_backward(*rec, grad, sv.argmax, gx, op.pool);
        grad = gx;
        break;
      }
      case OpKind::Dropout:
        ops::dropout_backward(*rec, grad, grad, op.dropout, s.params, dropout_first_index(op));
        break;
      case OpKind::Reshape:
        grad = grad.reshaped(sv.x.shape());
        break;
      case OpKind::Softmax:
        break;
    }
    // A bucket complete: its own submission ends here (with its copy to the host), the next
    // bucket's backward pass goes on in the next.
    if (next_bucket < s.buckets.size() && s.buckets[next_bucket].closes_after == i) {
      const TrainerBucket& b = s.buckets[next_bucket++];
      if (!b.staging.empty()) rec->copy(b.grads, b.staging);
      rec->end();
      if (next_bucket < s.buckets.size()) {
        s.segments.push_back(std::make_unique<Recorder>(ctx, options.recorder));
        rec = s.segments.back().get();
        rec->begin();
      } else {
        s.update = std::make_unique<Recorder>(ctx, options.recorder);
        rec = s.update.get();
        rec->begin();
        for (const TrainerBucket& bk : s.buckets) {
          if (!bk.staging.empty()) rec->copy(bk.staging, bk.grads);
        }
      }
    }
  }

  rec->set_scope("sgd");
  for (const auto& [name, shape] : parameter_shapes(m)) {
    ops::sgd_update(*rec, net.parameter_tensor(name), s.momentum.at(name), s.grads.at(name), s.params);
  }
  if (!s.stats_staging.empty()) rec->copy(s.stats, s.stats_staging);
  rec->end();
  ++records_;
}

Trainer::~Trainer() = default;

std::vector<DispatchTiming> Trainer::timings() const {
  std::vector<DispatchTiming> all;
  for (const auto& seg : state_->segments) {
    for (auto& t : seg->timings()) all.push_back(std::move(t));
  }
  if (state_->update) {
    for (auto& t : state_->update->timings()) all.push_back(std::move(t));
  }
  return all;
}

std::vector<GradientBucket> Trainer::buckets() const {
  std::vector<GradientBucket> out;
  for (const TrainerBucket& b : state_->buckets) out.push_back(b.info);
  return out;
}

StepStats Trainer::step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params) {
  return step(images, labels, params, nullptr);
}

StepStats Trainer::step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params,
                        GradientReducer* reducer) {
  const ModelDesc& m = model_;
  if (reducer && state_->buckets.empty()) {
    throw Error("Trainer::step: a GradientReducer needs a Trainer made with TrainerOptions::bucket_bytes");
  }
  check_step_batch(m, images, labels, batch_);
  State& s = *state_;
  Context& ctx = context_;
  const bool staged = !s.images_staging.empty();
  ctx.upload(staged ? s.images_staging : s.images, images.data);
  ctx.upload(staged ? s.labels_staging : s.labels, labels);
  ctx.upload(staged ? s.params_staging : s.params, words(params));
  StepStats r;
  if (!s.update) {
    s.segments[0]->run();
  } else {
    // Every bucket's submission at once: the device runs them in order while the host hands
    // each finished bucket to the reducer, whose sums then overlap the earlier layers' backward.
    for (auto& seg : s.segments) seg->submit();
    if (reducer) {
      constexpr uint64_t kPollNs = 200'000;
      for (size_t k = 0; k < s.segments.size(); ++k) {
        while (!s.segments[k]->wait_for(kPollNs)) reducer->progress();
        reducer->start(k, s.buckets[k].host());
      }
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t k = 0; k < s.buckets.size(); ++k) reducer->finish(k);
      r.reduce_wait_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    } else {
      for (auto& seg : s.segments) seg->wait();
    }
    s.update->run();
  }
  ++submits_;
  const std::vector<float> stats = ctx.download(staged ? s.stats_staging : s.stats);
  r.batch = batch_;
  for (uint32_t i = 0; i < batch_; ++i) {
    r.loss += stats[2 * i] / double(batch_);
    r.correct += stats[2 * i + 1] == 1.0f;
  }
  return r;
}

const Plan& Trainer::plan() const { return state_->plan; }

ForwardRecord Trainer::last_forward() const {
  ForwardRecord r;
  for (const auto& [name, t] : state_->outputs) r.outputs.emplace(name, HostTensor(t.shape(), context_.download(t)));
  for (const auto& [name, t] : state_->argmax) r.argmax.emplace(name, context_.download_u32(t));
  return r;
}

std::map<std::string, HostTensor> Trainer::momentum() const {
  std::map<std::string, HostTensor> out;
  for (const auto& [name, t] : state_->momentum) out.emplace(name, HostTensor(t.shape(), context_.download(t)));
  return out;
}

void Trainer::set_momentum(const std::map<std::string, HostTensor>& momentum) {
  for (const auto& [name, t] : state_->momentum) {
    auto it = momentum.find(name);
    if (it == momentum.end()) throw Error("set_momentum: tensor \"" + name + "\" is missing");
    if (it->second.shape != t.shape()) {
      throw Error("set_momentum: tensor \"" + name + "\" has shape " + it->second.shape.str() + ", needs " + t.shape().str());
    }
    require_finite(it->second, name, "set_momentum");
  }
  for (auto& [name, t] : state_->momentum) context_.upload(t, momentum.at(name).data);
}

StepStats train_step_cpu(const ModelDesc& m, std::map<std::string, HostTensor>& params,
                         std::map<std::string, HostTensor>& momentum, const HostTensor& images,
                         const std::vector<uint32_t>& labels, const StepParams& sp, const ForwardRecord* follow,
                         size_t* followed) {
  const uint32_t batch = images.shape.rank() ? images.shape[0] : 0;
  if (followed) *followed = 0;
  check_step_batch(m, images, labels, batch);
  const Plan plan = lower(m, batch, DeviceInfo{});
  require_trainable(plan, "train_step_cpu");
  struct Saved {
    HostTensor x, y;
    std::vector<uint32_t> argmax;
  };
  std::vector<Saved> saved(plan.ops.size());
  HostTensor cur = images;
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    saved[i].x = cur;
    if (op.kind == OpKind::Softmax) {  // the fused loss below takes the logits
      saved[i].y = cur;
      continue;
    }
    auto r = detail::cpu_forward_op(op, cur, params, true, sp.seed, sp.step);
    if (follow && op.relu) {
      follow_relu_ties(r.pre_relu, follow_output(*follow, op.name, r.y.shape), r.y, followed);
    } else if (follow && op.kind == OpKind::Relu) {
      follow_relu_ties(cur, follow_output(*follow, op.name, r.y.shape), r.y, followed);
    } else if (follow && op.kind == OpKind::MaxPool) {
      auto it = follow->argmax.find(op.name);
      if (it == follow->argmax.end() || it->second.size() != r.argmax.size()) {
        throw Error("train_step_cpu: the recorded forward has no argmax of " + op.name + " " + r.y.shape.str());
      }
      follow_pool_ties(cur, op.pool, it->second, r.y, r.argmax, followed);
    }
    cur = std::move(r.y);
    saved[i].y = cur;
    saved[i].argmax = std::move(r.argmax);
  }
  auto loss = cpu::softmax_cross_entropy(cur, labels);
  StepStats stats{loss.loss, loss.correct, batch};
  std::map<std::string, HostTensor> grads;
  HostTensor g = std::move(loss.dlogits);
  const size_t first = plan.first_parameter_op();
  for (size_t i = plan.ops.size(); i-- > first;) {
    const PlanOp& op = plan.ops[i];
    const Saved& sv = saved[i];
    switch (op.kind) {
      case OpKind::Conv2d:
      case OpKind::Linear: {
        if (op.relu) g = cpu::relu_backward(g, sv.y);
        Conv2dParams p = op.conv;
        p.relu = false;
        const bool conv = op.kind == OpKind::Conv2d;
        grads[op.weight] = conv ? cpu::conv2d_backward_weight(g, sv.x, params.at(op.weight).shape, p)
                                : cpu::linear_backward_weight(g, sv.x);
        if (!op.bias.empty()) grads[op.bias] = cpu::bias_backward(g);
        if (i > first) {
          g = conv ? cpu::conv2d_backward_data(g, params.at(op.weight), sv.x.shape, p)
                   : cpu::linear_backward_data(g, params.at(op.weight));
        }
        break;
      }
      case OpKind::Relu: g = cpu::relu_backward(g, sv.y); break;
      case OpKind::Lrn: g = cpu::lrn_backward(g, sv.x, op.lrn); break;
      case OpKind::AvgPool:
      case OpKind::Concat:
      case OpKind::Slice:  // require_trainable refused them
        throw Error(std::string("Trainer: ") + op_kind_name(op.kind) + " has no backward pass");
      case OpKind::MaxPool: g = cpu::max_pool_backward(g, sv.argmax, sv.x.shape); break;
      case OpKind::Reshape: g.shape = sv.x.shape; break;
      case OpKind::Dropout: g = cpu::dropout_backward(g, op.dropout, sp.seed, sp.step); break;
      case OpKind::Softmax: break;
    }
  }
  const SgdParams sgd{sp.lr, sp.momentum, sp.weight_decay};
  for (auto& [name, w] : params) cpu::sgd_update(w, momentum.at(name), grads.at(name), sgd);
  return stats;
}

namespace {
constexpr const char* kCheckpointFormat = "vkalex checkpoint 1";
}

void save_checkpoint(const std::string& path, const Net& net, const Trainer& trainer,
                     std::map<std::string, std::string> metadata) {
  std::map<std::string, HostTensor> tensors = net.parameters();
  for (auto& [name, t] : trainer.momentum()) tensors.emplace("momentum/" + name, std::move(t));
  metadata["format"] = kCheckpointFormat;
  metadata["model"] = net.model().name;
  save_safetensors(path, tensors, metadata);
}

std::map<std::string, std::string> load_checkpoint(const std::string& path, Net& net, Trainer& trainer) {
  const SafeTensors ck(path);
  const auto& meta = ck.metadata();
  auto it = meta.find("format");
  if (it == meta.end() || it->second != kCheckpointFormat) {
    throw Error(path + ": not a vkalex checkpoint (its metadata has no \"format\": \"" + kCheckpointFormat + "\")");
  }
  it = meta.find("model");
  if (it == meta.end() || it->second != net.model().name) {
    throw Error(path + " is a checkpoint of " + (it == meta.end() ? std::string("an unnamed model") : it->second) +
                ", not " + net.model().name);
  }
  std::map<std::string, HostTensor> momentum;
  for (const auto& [name, shape] : parameter_shapes(net.model())) {
    const std::string key = "momentum/" + name;
    if (!ck.contains(key)) throw Error(path + ": tensor \"" + key + "\" is missing");
    if (ck.entry(key).shape != shape) {
      throw Error(path + ": tensor \"" + key + "\" has shape " + ck.entry(key).shape.str() + ", needs " + shape.str());
    }
    momentum.emplace(name, ck.read(key));
  }
  net.load_weights(ck);  // checks every parameter before uploading any
  trainer.set_momentum(momentum);
  return meta;
}

}  // namespace vkalex
