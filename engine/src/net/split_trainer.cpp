// SplitTrainer: the Trainer's SGD step over a SplitNet's two devices (see vkalex/split.hpp).
#include <cstring>

#include "net/split_program.hpp"
#include "ops/op_common.hpp"
#include "vkalex/error.hpp"
#include "vkalex/ops.hpp"

namespace vkalex {


namespace detail {
// What a device saved of one op in the forward pass.
struct SplitSaved {
  Tensor x, y, argmax;
};
}  // namespace detail
using detail::SplitSaved;

struct SplitTrainer::State {
  SplitNet::State& net;
  ModelDesc model;
  SplitPlan plan;
  std::array<Tensor, 2> images, params;  // params: the step's StepParams words, on each device
  Tensor labels, stats;                  // on device 0, where the loss is
  std::array<std::map<std::string, Tensor>, 2> grads, momentum;
  std::vector<Tensor> keep;
  std::unique_ptr<detail::SplitProgram> program;
  std::vector<SplitExchange> exchanges;
  std::vector<std::array<SplitSaved, 2>> saved;  // per plan op, per device
  explicit State(SplitNet::State& n) : net(n) {}
};

namespace {

// Elements per channel of a tensor shape [N, C, ...].
uint64_t inner(const Shape& s) { return s.numel() / (uint64_t(s[0]) * s[1]); }

}  // namespace

SplitTrainer::SplitTrainer(SplitNet& split, uint32_t batch) : batch_(batch), state_(std::make_unique<State>(*split.state_)) {
  if (batch == 0) throw Error("SplitTrainer: batch size must be at least 1");
  State& s = *state_;
  SplitNet::State& n = s.net;
  s.model = split.model();
  const ModelDesc& m = s.model;
  s.plan = split_plan(lower(m, batch, n.devices.ctx[0].device()));
  require_trainable(s.plan.plan, "SplitTrainer");
  const Plan& plan = s.plan.plan;
  auto& program = *(s.program = std::make_unique<detail::SplitProgram>(n.devices));
  auto ctx = [&](int d) -> Context& { return n.devices.ctx[d]; };
  for (int d = 0; d < 2; ++d) {
    s.images[d] = ctx(d).tensor(m.input_shape(batch));
    s.params[d] = ctx(d).tensor(Shape{8}, DType::U32);
    for (const auto& [name, t] : n.params[d]) {
      s.grads[d].emplace(name, ctx(d).tensor(t.shape()));
      Tensor v = ctx(d).tensor(t.shape());
      ctx(d).fill(v, 0.0f);
      s.momentum[d].emplace(name, v);
      s.keep.push_back(t);
    }
  }
  s.labels = ctx(0).tensor(Shape{batch}, DType::U32);
  s.stats = ctx(0).tensor(Shape{batch, 2});
  auto make = [&](int d, const Shape& like, uint32_t channels, DType type = DType::F32) {
    Tensor t = type == DType::F32 ? detail::with_channels(ctx(d), like, channels, false)
                                  : ctx(d).tensor(detail::with_dim(like, 1, channels), type);
    s.keep.push_back(t);
    return t;
  };
  // Dropout on a device's features f0 to f1 - 1 of each image draws the whole layer's mask.
  auto dropout_index = [&](const PlanOp& op, const ChannelRange& r) {
    const uint64_t per_channel = inner(op.out), row = uint64_t(op.out[1]) * per_channel;
    if (row > UINT32_MAX) throw Error("SplitTrainer: " + op.name + " has more than 2^32 elements per image");
    return std::pair<uint32_t, uint32_t>{uint32_t(r.begin * per_channel), uint32_t(row)};
  };

  // Forward, keeping each op's input and output on each device.
  auto& saved = s.saved;
  saved.resize(plan.ops.size());
  std::array<Tensor, 2> have = s.images;
  const ChannelRange all{0, plan.input[1]};
  std::array<ChannelRange, 2> held{all, all}, valid{all, all};
  Tensor dlogits;
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    const SplitOp& so = s.plan.ops[i];
    const auto in = detail::gather(program, op.name, op.in, so.input, so.input, valid, held, have, s.keep);
    std::array<Tensor, 2> out;
    for (int d = 0; d < 2; ++d) {
      if (so.computes[d].empty()) continue;
      Recorder& rec = program.rec(d);
      rec.set_scope(op.name);
      SplitSaved& sv = saved[i][d];
      sv.x = in[d];
      const auto& P = n.params[d];
      const Tensor* bias = op.bias.empty() ? nullptr : &P.at(op.bias);
      switch (op.kind) {
        case OpKind::Conv2d: {
          Conv2dParams p = op.conv;
          if (p.groups > 1) p.groups /= 2;
          sv.y = make(d, op.out, so.output[d].size());
          ops::conv2d(rec, sv.x, P.at(op.weight), bias, sv.y, p);
          break;
        }
        case OpKind::Linear:
          sv.y = make(d, op.out, so.output[d].size());
          ops::linear(rec, sv.x, P.at(op.weight), bias, sv.y, op.relu);
          break;
        case OpKind::Relu: sv.y = make(d, op.out, so.output[d].size()); ops::relu(rec, sv.x, sv.y); break;
        case OpKind::Lrn: sv.y = make(d, op.out, so.output[d].size()); ops::lrn(rec, sv.x, sv.y, op.lrn); break;
        case OpKind::AvgPool:
        case OpKind::Concat:
        case OpKind::Slice:  // require_trainable and split_plan refused them
          throw Error(std::string("SplitTrainer: ") + op_kind_name(op.kind) + " has no backward pass");
        case OpKind::MaxPool:
          sv.y = make(d, op.out, so.output[d].size());
          sv.argmax = make(d, op.out, so.output[d].size(), DType::U32);
          ops::max_pool(rec, sv.x, sv.y, &sv.argmax, op.pool);
          break;
        case OpKind::Dropout: {
          sv.y = make(d, op.out, so.output[d].size());
          const auto [first, stride] = dropout_index(op, so.computes[d]);
          ops::dropout(rec, sv.x, sv.y, op.dropout, s.params[d], first, stride);
          break;
        }
        case OpKind::Reshape: sv.y = sv.x.reshaped(detail::with_dim(op.out, 1, so.output[d].size())); break;
        case OpKind::Softmax:  // the loss, on device 0: the gradient of the mean cross-entropy
          dlogits = make(d, op.in, op.in[1]);
          rec.set_scope("loss");
          ops::softmax_cross_entropy(rec, sv.x, s.labels, dlogits, s.stats);
          sv.y = sv.x;
          break;
      }
      out[d] = sv.y;
    }
    have = out;
    held = so.output;
    valid = so.computes;
  }
  if (dlogits.empty()) throw Error("SplitTrainer: model " + m.name + " does not end in a softmax");

  // Backward, last op first, down to the first op with parameters. g[d]: the gradient of the
  // current op's output on device d, holding channels gheld[d], right on gvalid[d].
  const size_t first = plan.first_parameter_op();
  const size_t last = plan.ops.size() - 1;
  std::array<Tensor, 2> g{dlogits, Tensor()};
  std::array<ChannelRange, 2> gheld = s.plan.ops[last].input, gvalid = gheld;
  bool through_relu = false;
  for (size_t i = last; i-- > first;) {
    const PlanOp& op = plan.ops[i];
    const SplitOp& so = s.plan.ops[i];
    // What each device needs of the gradient of this op's output: its own channels, and an
    // LRN's neighbours' across the middle too.
    std::array<ChannelRange, 2> need = so.computes;
    if (op.kind == OpKind::Lrn) {
      const uint32_t h = op.lrn.size / 2, c = op.out[1];
      for (int d = 0; d < 2; ++d) {
        need[d] = {need[d].begin > h ? need[d].begin - h : 0, std::min(c, need[d].end + h)};
      }
    }
    const auto dy = detail::gather(program, op.name + " backward", op.out, so.output, need, gvalid, gheld, g, s.keep);
    // Where the op read all input channels, each device's input gradient is a partial sum to
    // add to the other device's (below).
    const bool partial = (op.kind == OpKind::Conv2d || op.kind == OpKind::Linear) && i > first &&
                         so.input[0] == so.input[1];
    std::array<Tensor, 2> gx;
    bool relu_before = false;
    for (int d = 0; d < 2; ++d) {
      if (so.computes[d].empty()) continue;
      Recorder& rec = program.rec(d);
      rec.set_scope(op.name + " backward");
      const SplitSaved& sv = saved[i][d];
      const auto& P = n.params[d];
      switch (op.kind) {
        case OpKind::Conv2d:
        case OpKind::Linear: {
          if (op.relu && !through_relu) ops::relu_backward(rec, dy[d], sv.y, dy[d]);
          Conv2dParams p = op.conv;
          p.relu = false;
          if (p.groups > 1) p.groups /= 2;
          const bool conv = op.kind == OpKind::Conv2d;
          if (conv) {
            ops::conv2d_backward_weight(rec, dy[d], sv.x, s.grads[d].at(op.weight), p);
          } else {
            ops::linear_backward_weight(rec, dy[d], sv.x, s.grads[d].at(op.weight));
          }
          if (!op.bias.empty()) ops::bias_backward(rec, dy[d], s.grads[d].at(op.bias));
          if (i > first) {
            gx[d] = make(d, op.in, so.input[d].size());
            if (conv) {
              ops::conv2d_backward_data(rec, dy[d], P.at(op.weight), gx[d], p);
            } else {
              ops::linear_backward_data(rec, dy[d], P.at(op.weight), gx[d]);
            }
          }
          break;
        }
        case OpKind::Relu:
          ops::relu_backward(rec, dy[d], sv.y, dy[d]);
          gx[d] = dy[d];
          break;
        case OpKind::Lrn:
          gx[d] = make(d, op.in, so.input[d].size());
          relu_before = i > first && plan.ops[i - 1].relu;
          ops::lrn_backward(rec, dy[d], sv.x, gx[d], op.lrn, relu_before);
          break;
        case OpKind::AvgPool:
        case OpKind::Concat:
        case OpKind::Slice:  // require_trainable and split_plan refused them
          throw Error(std::string("SplitTrainer: ") + op_kind_name(op.kind) + " has no backward pass");
        case OpKind::MaxPool:
          gx[d] = make(d, op.in, so.input[d].size());
          ops::max_pool_backward(rec, dy[d], sv.argmax, gx[d], op.pool);
          break;
        case OpKind::Dropout: {
          const auto [first_index, stride] = dropout_index(op, so.computes[d]);
          ops::dropout_backward(rec, dy[d], dy[d], op.dropout, s.params[d], first_index, stride);
          gx[d] = dy[d];
          break;
        }
        case OpKind::Reshape: gx[d] = dy[d].reshaped(sv.x.shape()); break;
        case OpKind::Softmax: break;
      }
    }
    if (op.kind == OpKind::Conv2d || op.kind == OpKind::Linear) through_relu = false;
    if (op.kind == OpKind::Lrn) through_relu = relu_before;
    if (i == first) break;
    const SplitOp& prev = s.plan.ops[i - 1];
    if (partial) {
      // Each device's own channels of the input: its partial sum plus the other's.
      std::array<Tensor, 2> theirs;
      for (int d = 0; d < 2; ++d) {
        const ChannelRange own = prev.computes[d];
        theirs[d] = program.transfer(1 - d, gx[1 - d], own.begin, own.size());
      }
      program.cut(op.name + " backward (sum of the input's gradient)");
      for (int d = 0; d < 2; ++d) {
        const ChannelRange own = prev.computes[d];
        const Shape half = detail::with_dim(op.in, 1, own.size());
        const Tensor both = make(d, detail::with_dim(half, 0, 2 * half[0]), own.size());
        detail::copy_channels(program.rec(d), gx[d], own.begin, both.view(0, half), 0, own.size());
        detail::copy_channels(program.rec(d), theirs[d], 0, both.view(half.numel() * 4, half), 0, own.size());
        const Tensor sum = make(d, op.in, own.size());
        detail::record_sum_slices(program.rec(d), "input gradient sum", both, 2, sum);
        gx[d] = sum;
      }
      g = gx;
      gheld = gvalid = prev.computes;
    } else {
      g = gx;
      gheld = so.input;
      gvalid = op.kind == OpKind::Lrn ? so.computes : so.input;
    }
  }

  for (int d = 0; d < 2; ++d) {
    Recorder& rec = program.rec(d);
    rec.set_scope("sgd");
    for (const auto& [name, w] : n.params[d]) {
      ops::sgd_update(rec, w, s.momentum[d].at(name), s.grads[d].at(name), s.params[d]);
    }
  }
  program.finish();
  s.exchanges = program.exchanges();
}

SplitTrainer::~SplitTrainer() = default;

const std::vector<SplitExchange>& SplitTrainer::exchanges() const { return state_->exchanges; }

ForwardRecord SplitTrainer::last_forward() const {
  const State& s = *state_;
  const Plan& plan = s.plan.plan;
  ForwardRecord r;
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    const SplitOp& so = s.plan.ops[i];
    if (op.kind == OpKind::Softmax || op.kind == OpKind::Reshape) continue;
    const uint64_t n = op.out[0], c = op.out[1], per = inner(op.out);
    HostTensor whole(op.out);
    std::vector<uint32_t> argmax(op.kind == OpKind::MaxPool ? op.out.numel() : 0);
    for (int d = 0; d < 2; ++d) {
      const SplitSaved& sv = s.saved[i][d];
      const ChannelRange own = so.computes[d], held = so.output[d], in = so.input[d];
      const auto y = s.net.devices.ctx[d].download(sv.y);
      std::vector<uint32_t> idx;
      if (!argmax.empty()) idx = s.net.devices.ctx[d].download_u32(sv.argmax);
      const uint64_t in_per = inner(op.in);
      for (uint64_t b = 0; b < n; ++b) {
        for (uint32_t ch = own.begin; ch < own.end; ++ch) {
          const uint64_t from = (b * held.size() + (ch - held.begin)) * per, to = (b * c + ch) * per;
          std::copy_n(y.begin() + from, per, whole.data.begin() + to);
          for (uint64_t k = 0; k < (argmax.empty() ? 0 : per); ++k) {
            // The device's index into its own input [N, in.size(), ...], into the whole input.
            const uint64_t local = idx[from + k];
            const uint64_t lb = local / (uint64_t(in.size()) * in_per), lc = local / in_per % in.size(), lk = local % in_per;
            argmax[to + k] = uint32_t((lb * op.in[1] + lc + in.begin) * in_per + lk);
          }
        }
      }
    }
    r.outputs.emplace(op.name, whole);
    if (op.relu) r.outputs.emplace(op.relu_layer, whole);
    if (!argmax.empty()) r.argmax.emplace(op.name, std::move(argmax));
  }
  return r;
}

std::map<std::string, HostTensor> SplitTrainer::momentum() const {
  return detail::whole(state_->net.devices, state_->momentum, state_->model);
}

StepStats SplitTrainer::step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params) {
  State& s = *state_;
  detail::check_step_batch(s.model, images, labels, batch_);
  std::vector<uint32_t> words(8);
  std::memcpy(words.data(), &params, sizeof params);
  for (int d = 0; d < 2; ++d) {
    s.net.devices.ctx[d].upload(s.images[d], images.data);
    s.net.devices.ctx[d].upload(s.params[d], words);
  }
  s.net.devices.ctx[0].upload(s.labels, labels);
  s.program->run();
  const std::vector<float> stats = s.net.devices.ctx[0].download(s.stats);
  StepStats r;
  r.batch = batch_;
  for (uint32_t i = 0; i < batch_; ++i) {
    r.loss += stats[2 * i] / double(batch_);
    r.correct += stats[2 * i + 1] == 1.0f;
  }
  return r;
}

}  // namespace vkalex
