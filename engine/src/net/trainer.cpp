// Trainer: the whole SGD step recorded once, and its CPU reference twin.
#include "vkalex/trainer.hpp"

#include <cmath>
#include <cstring>
#include <random>

#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"

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

namespace {

void check_batch(const ModelDesc& m, const HostTensor& images, const std::vector<uint32_t>& labels, uint32_t batch) {
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
                      cpu::MaxPoolResult<float>& r, size_t* followed) {
  const double window = kTieWindow * rms(x);
  const uint64_t H = x.shape[2], W = x.shape[3], OH = r.y.shape[2], OW = r.y.shape[3];
  for (size_t o = 0; o < r.argmax.size(); ++o) {
    const uint32_t mine = r.argmax[o], theirs = device_argmax[o];
    if (mine == theirs || theirs >= x.data.size()) continue;
    // Only a pick inside this output's own window (same image and channel) can be a tie.
    const int64_t oy = int64_t(o / OW % OH), ox = int64_t(o % OW);
    const int64_t iy = int64_t(theirs / W % H), ix = int64_t(theirs % W);
    const int64_t y0 = oy * p.stride_h - p.pad_h, x0 = ox * p.stride_w - p.pad_w;
    const bool inside = theirs / (H * W) == o / (OH * OW) && iy >= y0 && iy < y0 + p.kernel_h && ix >= x0 &&
                        ix < x0 + p.kernel_w;
    if (inside && double(x.data[mine]) - double(x.data[theirs]) <= window) {
      r.argmax[o] = theirs;
      r.y.data[o] = x.data[theirs];
      if (followed) ++*followed;
    }
  }
}

bool relu_follows(const ModelDesc& m, size_t i) {
  return i + 1 < m.layers.size() && m.layers[i + 1].type == LayerType::Relu;
}

std::vector<uint32_t> words(const StepParams& p) {
  std::vector<uint32_t> w(8);
  std::memcpy(w.data(), &p, sizeof p);
  return w;
}

}  // namespace

struct Trainer::State {
  Tensor images, labels, params, stats;
  Tensor images_staging, labels_staging, params_staging, stats_staging;
  std::map<std::string, Tensor> grads, momentum;
  std::vector<Tensor> keep;  // activations and their gradients, alive as long as the recording
  std::vector<std::pair<std::string, Tensor>> outputs, argmax;  // the forward pass, by layer
  std::unique_ptr<Recorder> recorder;
};

Trainer::Trainer(Context& context, Net& net, uint32_t batch, const RecorderOptions& options)
    : context_(&context), net_(&net), batch_(batch), state_(std::make_unique<State>()) {
  if (batch == 0) throw Error("Trainer: batch size must be at least 1");
  const ModelDesc& m = net.model();
  State& s = *state_;
  Context& ctx = context;
  const auto shapes = layer_shapes(m, batch);
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
  for (const auto& [name, shape] : parameter_shapes(m)) {
    s.grads.emplace(name, ctx.tensor(shape));
    Tensor v = ctx.tensor(shape);
    ctx.fill(v, 0.0f);
    s.momentum.emplace(name, v);
  }

  s.recorder = std::make_unique<Recorder>(ctx, options);
  Recorder& rec = *s.recorder;
  rec.begin();
  if (!s.images_staging.empty()) {
    rec.copy(s.images_staging, s.images);
    rec.copy(s.labels_staging, s.labels);
    rec.copy(s.params_staging, s.params);
  }

  // Forward, keeping what the backward pass needs: each layer's input and output.
  struct Saved {
    Tensor x, y, argmax;
    bool fused_relu = false;
  };
  std::vector<Saved> saved(m.layers.size());
  Tensor cur = s.images;
  auto keep = [&](Tensor t) {
    s.keep.push_back(t);
    return t;
  };
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    Saved& sv = saved[i];
    sv.x = cur;
    switch (l.type) {
      case LayerType::Conv2d: {
        sv.y = keep(ctx.tensor(shapes[i]));
        Conv2dParams p = l.conv;
        p.relu = sv.fused_relu = relu_follows(m, i);
        ops::conv2d(rec, cur, net.parameter_tensor(l.weight), l.bias.empty() ? nullptr : &net.parameter_tensor(l.bias), sv.y, p);
        break;
      }
      case LayerType::Linear:
        sv.y = keep(ctx.tensor(shapes[i]));
        sv.fused_relu = relu_follows(m, i);
        ops::linear(rec, cur, net.parameter_tensor(l.weight), l.bias.empty() ? nullptr : &net.parameter_tensor(l.bias), sv.y,
                    sv.fused_relu);
        break;
      case LayerType::Relu:
        if (i > 0 && saved[i - 1].fused_relu) {
          sv.y = cur;  // done by the layer before
        } else {
          sv.y = keep(ctx.tensor(shapes[i]));
          ops::relu(rec, cur, sv.y);
        }
        break;
      case LayerType::Lrn:
        sv.y = keep(ctx.tensor(shapes[i]));
        ops::lrn(rec, cur, sv.y, l.lrn);
        break;
      case LayerType::MaxPool:
        sv.y = keep(ctx.tensor(shapes[i]));
        sv.argmax = keep(ctx.tensor(shapes[i], DType::U32));
        ops::max_pool(rec, cur, sv.y, &sv.argmax, l.pool);
        break;
      case LayerType::AdaptiveAvgPool:
        sv.y = cur;
        break;
      case LayerType::Flatten:
        sv.y = cur.reshaped(shapes[i]);
        break;
      case LayerType::Dropout:
        sv.y = keep(ctx.tensor(shapes[i]));
        ops::dropout(rec, cur, sv.y, l.dropout, s.params);
        break;
      case LayerType::Softmax:
        sv.y = cur;
        break;
    }
    cur = sv.y;
    s.outputs.emplace_back(l.name, sv.y);
    if (!sv.argmax.empty()) s.argmax.emplace_back(l.name, sv.argmax);
  }

  // Loss: gradient of the mean cross-entropy with respect to the logits.
  Tensor grad = keep(ctx.tensor(cur.shape()));
  ops::softmax_cross_entropy(rec, cur, s.labels, grad, s.stats);

  // Backward, last layer first; `grad` is the gradient of the current layer's output.
  size_t first_param_layer = m.layers.size();
  for (size_t i = 0; i < m.layers.size(); ++i) {
    if (m.layers[i].type == LayerType::Conv2d || m.layers[i].type == LayerType::Linear) {
      first_param_layer = i;
      break;
    }
  }
  for (size_t i = m.layers.size(); i-- > 0;) {
    const LayerDesc& l = m.layers[i];
    const Saved& sv = saved[i];
    if (i < first_param_layer) break;  // nothing below needs a gradient
    switch (l.type) {
      case LayerType::Conv2d:
      case LayerType::Linear: {
        if (sv.fused_relu) ops::relu_backward(rec, grad, sv.y, grad);
        const bool conv = l.type == LayerType::Conv2d;
        Conv2dParams p = l.conv;
        p.relu = false;
        if (conv) {
          ops::conv2d_backward_weight(rec, grad, sv.x, s.grads.at(l.weight), p);
        } else {
          ops::linear_backward_weight(rec, grad, sv.x, s.grads.at(l.weight));
        }
        if (!l.bias.empty()) ops::bias_backward(rec, grad, s.grads.at(l.bias));
        if (i > first_param_layer) {
          Tensor gx = keep(ctx.tensor(sv.x.shape()));
          if (conv) {
            ops::conv2d_backward_data(rec, grad, net.parameter_tensor(l.weight), gx, p);
          } else {
            ops::linear_backward_data(rec, grad, net.parameter_tensor(l.weight), gx);
          }
          grad = gx;
        }
        break;
      }
      case LayerType::Relu:
        if (!(i > 0 && saved[i - 1].fused_relu)) ops::relu_backward(rec, grad, sv.y, grad);
        break;
      case LayerType::Lrn: {
        Tensor gx = keep(ctx.tensor(sv.x.shape()));
        ops::lrn_backward(rec, grad, sv.x, gx, l.lrn);
        grad = gx;
        break;
      }
      case LayerType::MaxPool: {
        Tensor gx = keep(ctx.tensor(sv.x.shape()));
        ops::max_pool_backward(rec, grad, sv.argmax, gx, l.pool);
        grad = gx;
        break;
      }
      case LayerType::Dropout:
        ops::dropout_backward(rec, grad, grad, l.dropout, s.params);
        break;
      case LayerType::Flatten:
        grad = grad.reshaped(sv.x.shape());
        break;
      case LayerType::AdaptiveAvgPool:
      case LayerType::Softmax:
        break;
    }
  }

  for (const auto& [name, shape] : parameter_shapes(m)) {
    ops::sgd_update(rec, net.parameter_tensor(name), s.momentum.at(name), s.grads.at(name), s.params);
  }
  if (!s.stats_staging.empty()) rec.copy(s.stats, s.stats_staging);
  rec.end();
  ++records_;
}

Trainer::~Trainer() = default;

std::vector<DispatchTiming> Trainer::timings() const { return state_->recorder->timings(); }

StepStats Trainer::step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params) {
  const ModelDesc& m = net_->model();
  check_batch(m, images, labels, batch_);
  State& s = *state_;
  Context& ctx = *context_;
  const bool staged = !s.images_staging.empty();
  ctx.upload(staged ? s.images_staging : s.images, images.data);
  ctx.upload(staged ? s.labels_staging : s.labels, labels);
  ctx.upload(staged ? s.params_staging : s.params, words(params));
  s.recorder->run();
  ++submits_;
  const std::vector<float> stats = ctx.download(staged ? s.stats_staging : s.stats);
  StepStats r;
  r.batch = batch_;
  for (uint32_t i = 0; i < batch_; ++i) {
    r.loss += stats[2 * i] / double(batch_);
    r.correct += stats[2 * i + 1] == 1.0f;
  }
  return r;
}

ForwardRecord Trainer::last_forward() const {
  ForwardRecord r;
  for (const auto& [name, t] : state_->outputs) r.outputs.emplace(name, HostTensor(t.shape(), context_->download(t)));
  for (const auto& [name, t] : state_->argmax) r.argmax.emplace(name, context_->download_u32(t));
  return r;
}

std::map<std::string, HostTensor> Trainer::momentum() const {
  std::map<std::string, HostTensor> out;
  for (const auto& [name, t] : state_->momentum) out.emplace(name, HostTensor(t.shape(), context_->download(t)));
  return out;
}

void Trainer::set_momentum(const std::map<std::string, HostTensor>& momentum) {
  for (const auto& [name, t] : state_->momentum) {
    auto it = momentum.find(name);
    if (it == momentum.end()) throw Error("set_momentum: tensor \"" + name + "\" is missing");
    if (it->second.shape != t.shape()) {
      throw Error("set_momentum: tensor \"" + name + "\" has shape " + it->second.shape.str() + ", needs " + t.shape().str());
    }
  }
  for (auto& [name, t] : state_->momentum) context_->upload(t, momentum.at(name).data);
}

StepStats train_step_cpu(const ModelDesc& m, std::map<std::string, HostTensor>& params,
                         std::map<std::string, HostTensor>& momentum, const HostTensor& images,
                         const std::vector<uint32_t>& labels, const StepParams& sp, const ForwardRecord* follow,
                         size_t* followed) {
  const uint32_t batch = images.shape.rank() ? images.shape[0] : 0;
  if (followed) *followed = 0;
  check_batch(m, images, labels, batch);
  auto param = [&](const std::string& name) -> const HostTensor* { return name.empty() ? nullptr : &params.at(name); };
  struct Saved {
    HostTensor x, y;
    std::vector<uint32_t> argmax;
  };
  std::vector<Saved> saved(m.layers.size());
  HostTensor cur = images;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    saved[i].x = cur;
    switch (l.type) {
      case LayerType::Conv2d: cur = cpu::conv2d(cur, *param(l.weight), param(l.bias), l.conv); break;
      case LayerType::Linear: cur = cpu::linear(cur, *param(l.weight), param(l.bias), false); break;
      case LayerType::Relu:
        cur = cpu::relu(cur);
        if (follow) follow_relu_ties(saved[i].x, follow_output(*follow, l.name, cur.shape), cur, followed);
        break;
      case LayerType::Lrn: cur = cpu::lrn(cur, l.lrn); break;
      case LayerType::MaxPool: {
        auto r = cpu::max_pool(cur, l.pool);
        if (follow) {
          auto it = follow->argmax.find(l.name);
          if (it == follow->argmax.end() || it->second.size() != r.argmax.size()) {
            throw Error("train_step_cpu: the recorded forward has no argmax of " + l.name + " " + r.y.shape.str());
          }
          follow_pool_ties(saved[i].x, l.pool, it->second, r, followed);
        }
        cur = std::move(r.y);
        saved[i].argmax = std::move(r.argmax);
        break;
      }
      case LayerType::Flatten: cur.shape = Shape{cur.shape[0], static_cast<uint32_t>(cur.shape.numel() / cur.shape[0])}; break;
      case LayerType::Dropout: cur = cpu::dropout(cur, l.dropout, sp.seed, sp.step); break;
      case LayerType::AdaptiveAvgPool:
      case LayerType::Softmax: break;
    }
    saved[i].y = cur;
  }
  auto loss = cpu::softmax_cross_entropy(cur, labels);
  StepStats stats{loss.loss, loss.correct, batch};
  std::map<std::string, HostTensor> grads;
  HostTensor g = std::move(loss.dlogits);
  for (size_t i = m.layers.size(); i-- > 0;) {
    const LayerDesc& l = m.layers[i];
    const Saved& sv = saved[i];
    switch (l.type) {
      case LayerType::Conv2d:
        grads[l.weight] = cpu::conv2d_backward_weight(g, sv.x, params.at(l.weight).shape, l.conv);
        if (!l.bias.empty()) grads[l.bias] = cpu::bias_backward(g);
        g = cpu::conv2d_backward_data(g, params.at(l.weight), sv.x.shape, l.conv);
        break;
      case LayerType::Linear:
        grads[l.weight] = cpu::linear_backward_weight(g, sv.x);
        if (!l.bias.empty()) grads[l.bias] = cpu::bias_backward(g);
        g = cpu::linear_backward_data(g, params.at(l.weight));
        break;
      case LayerType::Relu: g = cpu::relu_backward(g, sv.y); break;
      case LayerType::Lrn: g = cpu::lrn_backward(g, sv.x, l.lrn); break;
      case LayerType::MaxPool: g = cpu::max_pool_backward(g, sv.argmax, sv.x.shape); break;
      case LayerType::Flatten: g.shape = sv.x.shape; break;
      case LayerType::Dropout: g = cpu::dropout_backward(g, l.dropout, sp.seed, sp.step); break;
      case LayerType::AdaptiveAvgPool:
      case LayerType::Softmax: break;
    }
  }
  const SgdParams sgd{sp.lr, sp.momentum, sp.weight_decay};
  for (auto& [name, w] : params) cpu::sgd_update(w, momentum.at(name), grads.at(name), sgd);
  return stats;
}

}  // namespace vkalex
