// SplitNet: the paper's model parallelism over two devices (see vkalex/split.hpp).
#include "vkalex/split.hpp"

#include <cstring>

#include "net/split_program.hpp"
#include "vkalex/error.hpp"
#include "vkalex/ops.hpp"

namespace vkalex {

namespace detail {

SplitDevices::SplitDevices(Context& first, Context& second) : ctx{first.share(), second.share()} {
  if (first.shared_impl() == second.shared_impl()) {
    throw Error("SplitNet: both Contexts are handles on one device; to split over one GPU, open it twice (two Contexts)");
  }
  for (int d = 0; d < 2; ++d) {
    out[d] = std::make_unique<Timeline>(ctx[d].shared_impl());
    in[d] = std::make_unique<Timeline>(ctx[d].shared_impl());
  }
}

Shape with_dim(const Shape& shape, size_t i, uint32_t value) {
  std::vector<uint32_t> dims = shape.dims();
  dims.at(i) = value;
  return Shape(dims);
}

Tensor with_channels(Context& ctx, const Shape& shape, uint32_t channels, bool staging) {
  return staging ? ctx.staging_tensor(with_dim(shape, 1, channels)) : ctx.tensor(with_dim(shape, 1, channels));
}

SplitProgram::SplitProgram(SplitDevices& devices) : devices_(devices) {
  for (int d = 0; d < 2; ++d) open(d, false);
}

void SplitProgram::open(int d, bool after_exchange) {
  segments_[d].push_back(std::make_unique<Recorder>(devices_.ctx[d]));
  segments_[d].back()->begin();
  if (after_exchange) record_host_writes_barrier(*segments_[d].back());
}

Tensor SplitProgram::transfer(int from, const Tensor& src, uint32_t src_first, uint32_t count) {
  const int to = 1 - from;
  Transfer t;
  t.from = from;
  t.send = with_channels(devices_.ctx[from], src.shape(), count, true);
  t.recv = with_channels(devices_.ctx[to], src.shape(), count, true);
  copy_channels(rec(from), src, src_first, t.send, 0, count);
  pending_.push_back(t);
  return t.recv;
}

void SplitProgram::cut(const std::string& before) {
  if (pending_.empty()) return;
  SplitExchange info;
  info.before = before;
  for (const Transfer& t : pending_) info.bytes_to[1 - t.from] += t.recv.bytes();
  exchanges_.push_back({info, std::move(pending_)});
  pending_.clear();
  for (int d = 0; d < 2; ++d) {
    rec(d).end();
    open(d, true);
  }
}

void SplitProgram::finish() {
  if (!pending_.empty()) throw Error("SplitProgram: transfers recorded after the last exchange");
  for (int d = 0; d < 2; ++d) rec(d).end();
}

std::vector<SplitExchange> SplitProgram::exchanges() const {
  std::vector<SplitExchange> out;
  for (const auto& e : exchanges_) out.push_back(e.info);
  return out;
}

void SplitProgram::run() {
  const size_t K = exchanges_.size();
  const uint64_t base = devices_.value;
  auto& out = devices_.out;
  auto& in = devices_.in;
  // Whatever happens, the host signals every value the submitted command buffers wait for, so
  // that both queues drain (and the recorders can be waited for and destroyed).
  size_t released = 0;
  auto release_all = [&] {
    for (int d = 0; d < 2; ++d) {
      try {
        in[d]->signal(base + K);
      } catch (...) {  // a lost device: its queue does not run anyway
      }
    }
    released = K;
  };
  try {
    for (int d = 0; d < 2; ++d) {
      for (size_t k = 0; k <= K; ++k) {
        std::optional<TimelinePoint> wait, signal;
        if (k > 0) wait = TimelinePoint{in[d].get(), base + k};
        if (k < K) signal = TimelinePoint{out[d].get(), base + k + 1};
        submit_timeline(*segments_[d][k], wait, signal);
      }
    }
    for (size_t k = 0; k < K; ++k) {
      // Each device is let go as soon as what it receives here is in its staging.
      for (int to = 0; to < 2; ++to) {
        for (const Transfer& t : exchanges_[k].transfers) {
          if (t.from != 1 - to) continue;
          out[t.from]->wait(base + k + 1);
          std::memcpy(t.recv.allocation().mapped() + t.recv.offset(), t.send.allocation().mapped() + t.send.offset(),
                      t.send.bytes());
        }
        in[to]->signal(base + k + 1);
      }
      released = k + 1;
    }
    // Every command buffer waited for now, not only each queue's last: one left unwaited would
    // be waited for when submitted again, with the next pass queued behind a host signal not
    // yet given, and lavapipe's wait for its timestamps then waits for that too (deadlock).
    for (int d = 0; d < 2; ++d) {
      for (auto& seg : segments_[d]) seg->wait();
    }
  } catch (...) {
    if (released < K) release_all();
    devices_.value = base + K;
    throw;
  }
  devices_.value = base + K;
}

}  // namespace detail

using detail::SplitProgram;
using detail::with_channels;
using detail::with_dim;


namespace detail {

std::vector<ChannelRange> missing(const ChannelRange& need, const ChannelRange& have) {
  std::vector<ChannelRange> parts;
  if (need.empty()) return parts;
  if (have.empty() || have.end <= need.begin || have.begin >= need.end) return {need};
  if (need.begin < have.begin) parts.push_back({need.begin, have.begin});
  if (have.end < need.end) parts.push_back({have.end, need.end});
  return parts;
}

ChannelRange intersect(const ChannelRange& a, const ChannelRange& b) {
  const ChannelRange r{std::max(a.begin, b.begin), std::min(a.end, b.end)};
  return r.empty() ? ChannelRange{} : r;
}

std::array<Tensor, 2> gather(SplitProgram& program, const std::string& before, const Shape& shape,
                             const std::array<ChannelRange, 2>& holds, const std::array<ChannelRange, 2>& need,
                             const std::array<ChannelRange, 2>& valid, const std::array<ChannelRange, 2>& held,
                             const std::array<Tensor, 2>& have, std::vector<Tensor>& keep) {
  std::array<Tensor, 2> in;
  // Where a device already holds what it needs, as it needs it, its tensor is the one.
  std::array<bool, 2> reuse{};
  std::array<std::vector<std::pair<ChannelRange, Tensor>>, 2> received;
  for (int d = 0; d < 2; ++d) {
    if (need[d].empty()) continue;
    reuse[d] = holds[d] == held[d] && intersect(need[d], valid[d]) == need[d];
    for (const ChannelRange& part : missing(need[d], valid[d])) {
      const int from = 1 - d;
      if (intersect(part, valid[from]) != part) {
        throw Error("split pass: " + before + " needs channels " + std::to_string(part.begin) + " to " +
                    std::to_string(part.end - 1) + " that neither device computed");
      }
      received[d].emplace_back(part, program.transfer(from, have[from], part.begin - held[from].begin, part.size()));
    }
  }
  program.cut(before);
  for (int d = 0; d < 2; ++d) {
    if (need[d].empty()) continue;
    if (reuse[d]) {
      in[d] = have[d];
      continue;
    }
    in[d] = with_channels(program.context(d), shape, holds[d].size(), false);
    keep.push_back(in[d]);
    if (need[d] != holds[d]) program.rec(d).fill(in[d], 0.0f);  // channels nobody reads, defined
    const ChannelRange own = intersect(need[d], valid[d]);
    if (!own.empty()) {
      copy_channels(program.rec(d), have[d], own.begin - held[d].begin, in[d], own.begin - holds[d].begin, own.size());
    }
    for (const auto& [part, recv] : received[d]) {
      copy_channels(program.rec(d), recv, 0, in[d], part.begin - holds[d].begin, part.size());
    }
  }
  return in;
}

std::map<std::string, HostTensor> whole(SplitDevices& devices, const std::array<std::map<std::string, Tensor>, 2>& rows,
                                         const ModelDesc& model) {
  std::map<std::string, HostTensor> out;
  for (const auto& [name, shape] : parameter_shapes(model)) {
    HostTensor t(shape);
    size_t at = 0;
    for (int d = 0; d < 2; ++d) {
      const auto part = devices.ctx[d].download(rows[d].at(name));
      std::copy(part.begin(), part.end(), t.data.begin() + at);
      at += part.size();
    }
    out.emplace(name, std::move(t));
  }
  return out;
}

// Rows begin to end - 1 of a parameter [rows, ...] (a weight's output channels, a bias).
HostTensor rows_of(const HostTensor& t, const ChannelRange& r) {
  const uint64_t row = t.shape.numel() / t.shape[0];
  HostTensor out(with_dim(t.shape, 0, r.size()));
  std::copy_n(t.data.begin() + r.begin * row, r.size() * row, out.data.begin());
  return out;
}

}  // namespace detail

SplitNet::SplitNet(Context& first, Context& second, ModelDesc model)
    : model_(std::move(model)), state_(std::make_unique<State>(first, second)) {
  state_->plan = split_plan(lower(model_, 1, state_->devices.ctx[0].device()));
  // Each device's rows of every parameter: the output channels it computes.
  std::map<std::string, Shape> shapes;
  for (const auto& [name, shape] : parameter_shapes(model_)) shapes.emplace(name, shape);
  for (size_t i = 0; i < state_->plan.plan.ops.size(); ++i) {
    const PlanOp& op = state_->plan.plan.ops[i];
    for (const std::string& name : {op.weight, op.bias}) {
      if (!name.empty()) state_->rows.emplace(name, state_->plan.ops[i].computes);
    }
  }
  for (const auto& [name, rows] : state_->rows) {
    for (int d = 0; d < 2; ++d) {
      state_->params[d].emplace(name, state_->devices.ctx[d].tensor(with_dim(shapes.at(name), 0, rows[d].size())));
    }
  }
}

SplitNet::~SplitNet() = default;
SplitNet::SplitNet(SplitNet&&) noexcept = default;
SplitNet& SplitNet::operator=(SplitNet&&) noexcept = default;

Context& SplitNet::context(int device) {
  if (device != 0 && device != 1) throw Error("SplitNet: device " + std::to_string(device) + " is not 0 or 1");
  return state_->devices.ctx[device];
}

const SplitPlan& SplitNet::plan() const { return state_->plan; }
const std::vector<SplitExchange>& SplitNet::exchanges() const { return state_->exchanges; }

void SplitNet::set_parameters(const std::map<std::string, HostTensor>& parameters) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, shape] : parameter_shapes(model_)) shapes.emplace(name, shape);
  for (const auto& [name, shape] : shapes) {
    auto it = parameters.find(name);
    if (it == parameters.end()) throw Error("SplitNet " + model_.name + ": parameter \"" + name + "\" is missing");
    if (it->second.shape != shape || it->second.data.size() != shape.numel()) {
      throw Error("SplitNet " + model_.name + ": parameter \"" + name + "\" has shape " + it->second.shape.str() +
                  ", needs " + shape.str());
    }
    require_finite(it->second, name, "SplitNet::set_parameters");
  }
  for (const auto& [name, t] : parameters) {
    if (!shapes.count(name)) throw Error("SplitNet " + model_.name + ": the model has no parameter \"" + name + "\"");
  }
  for (const auto& [name, rows] : state_->rows) {
    for (int d = 0; d < 2; ++d) {
      state_->devices.ctx[d].upload(state_->params[d].at(name), detail::rows_of(parameters.at(name), rows[d]).data);
    }
  }
}

std::map<std::string, HostTensor> SplitNet::parameters() const {
  return detail::whole(state_->devices, state_->params, model_);
}

void SplitNet::prepare(uint32_t batch) {
  if (batch == 0) throw Error("SplitNet " + model_.name + ": batch size must be at least 1");
  if (batch == batch_) return;
  State& s = *state_;
  batch_ = 0;
  s.program.reset();
  s.keep.clear();
  s.plan = split_plan(lower(model_, batch, s.devices.ctx[0].device()));
  const Plan& plan = s.plan.plan;
  auto& program = *(s.program = std::make_unique<SplitProgram>(s.devices));
  for (int d = 0; d < 2; ++d) s.input[d] = s.devices.ctx[d].tensor(plan.input);

  // What each device holds of the current tensor: the tensor, its channels, the right ones.
  std::array<Tensor, 2> have = s.input;
  const ChannelRange all{0, plan.input[1]};
  std::array<ChannelRange, 2> held{all, all}, valid{all, all};
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    const SplitOp& so = s.plan.ops[i];
    const std::array<Tensor, 2> in =
        detail::gather(program, op.name, op.in, so.input, so.input, valid, held, have, s.keep);
    std::array<Tensor, 2> out;
    for (int d = 0; d < 2; ++d) {
      if (so.computes[d].empty()) continue;
      Context& ctx = s.devices.ctx[d];
      Recorder& rec = program.rec(d);
      rec.set_scope(op.name);
      const Tensor* bias = op.bias.empty() ? nullptr : &s.params[d].at(op.bias);
      auto output = [&] {
        const Shape sh = with_dim(op.out, 1, so.output[d].size());
        s.keep.push_back(ctx.tensor(sh));
        return s.keep.back();
      };
      switch (op.kind) {
        case OpKind::Conv2d: {
          Conv2dParams p = op.conv;
          if (p.groups > 1) p.groups /= 2;
          out[d] = output();
          ops::conv2d(rec, in[d], s.params[d].at(op.weight), bias, out[d], p);
          break;
        }
        case OpKind::Linear:
          out[d] = output();
          ops::linear(rec, in[d], s.params[d].at(op.weight), bias, out[d], op.relu);
          break;
        case OpKind::Relu: out[d] = output(); ops::relu(rec, in[d], out[d]); break;
        case OpKind::Lrn: out[d] = output(); ops::lrn(rec, in[d], out[d], op.lrn); break;
        case OpKind::MaxPool: out[d] = output(); ops::max_pool(rec, in[d], out[d], nullptr, op.pool); break;
        case OpKind::AvgPool: out[d] = output(); ops::avg_pool(rec, in[d], out[d], op.pool, op.count_include_pad); break;
        case OpKind::Dropout: out[d] = ops::dropout_inference(rec, in[d]); break;
        case OpKind::Reshape: {
          const Shape sh = with_dim(op.out, 1, so.output[d].size());
          out[d] = in[d].reshaped(sh);
          break;
        }
        case OpKind::Softmax:
          s.logits = in[d];
          s.probabilities = output();
          ops::softmax(rec, in[d], s.probabilities, op.softmax_length, op.softmax_inner);
          out[d] = s.probabilities;
          break;
        case OpKind::Concat:
        case OpKind::Slice:
          throw Error("SplitNet: a plan that is not a chain");  // split_plan refused it
      }
    }
    have = out;
    held = so.output;
    valid = so.computes;
  }
  if (s.logits.empty()) throw Error("SplitNet " + model_.name + ": the model does not end in a softmax");
  program.finish();
  s.exchanges = program.exchanges();
  batch_ = batch;
}

ForwardResult SplitNet::forward(const HostTensor& input) {
  const Shape want = model_.input_shape(input.shape.rank() ? input.shape[0] : 0);
  if (input.shape.rank() != 4 || input.shape != want || input.data.size() != input.shape.numel() || input.shape[0] == 0) {
    throw Error("SplitNet " + model_.name + ": input " + input.shape.str() + " is not [N, " +
                std::to_string(model_.channels) + ", " + std::to_string(model_.height) + ", " +
                std::to_string(model_.width) + "]");
  }
  prepare(input.shape[0]);
  State& s = *state_;
  for (int d = 0; d < 2; ++d) s.devices.ctx[d].upload(s.input[d], input.data);
  s.program->run();
  ForwardResult r;
  r.batch = batch_;
  r.classes = model_.classes;
  r.logits = s.devices.ctx[0].download(s.logits);
  r.probabilities = s.devices.ctx[0].download(s.probabilities);
  return r;
}

}  // namespace vkalex
