// Lowering a model description into a plan: the one place that interprets its layers.
#include "vkalex/plan.hpp"

#include <algorithm>

#include "vkalex/error.hpp"
#include "vkalex/ops.hpp"

namespace vkalex {

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::Conv2d: return "conv2d";
    case OpKind::Linear: return "linear";
    case OpKind::Relu: return "relu";
    case OpKind::Lrn: return "lrn";
    case OpKind::MaxPool: return "max_pool";
    case OpKind::AvgPool: return "avg_pool";
    case OpKind::Dropout: return "dropout";
    case OpKind::Reshape: return "reshape";
    case OpKind::Softmax: return "softmax";
    case OpKind::Concat: return "concat";
    case OpKind::Slice: return "slice";
  }
  return "?";
}

uint64_t Plan::flop() const {
  uint64_t total = 0;
  for (const PlanOp& op : ops) total += op.flop;
  return total;
}

size_t Plan::first_parameter_op() const {
  for (size_t i = 0; i < ops.size(); ++i)
    if (ops[i].kind == OpKind::Conv2d || ops[i].kind == OpKind::Linear) return i;
  return ops.size();
}

bool Plan::is_chain() const {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].inputs.size() != 1 || ops[i].inputs[0] != (i == 0 ? kPlanInput : i - 1)) return false;
  }
  return true;
}

bool owns_output(OpKind kind) {
  return kind == OpKind::Conv2d || kind == OpKind::Linear || kind == OpKind::Relu || kind == OpKind::Lrn ||
         kind == OpKind::MaxPool || kind == OpKind::AvgPool || kind == OpKind::Concat || kind == OpKind::Slice;
}

void require_trainable(const Plan& plan, const std::string& who) {
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const PlanOp& op = plan.ops[i];
    if (op.inputs.size() != 1 || op.inputs[0] != (i == 0 ? kPlanInput : i - 1)) {
      throw Error(who + ": " + plan.model + "'s layer " + op.name + " (" + op_kind_name(op.kind) +
                  ") does not just read the layer before it; graphs that branch have no backward pass yet (such models run inference only)");
    }
  }
  for (const PlanOp& op : plan.ops) {
    if (op.kind == OpKind::AvgPool) {
      throw Error(who + ": " + plan.model + "'s layer " + op.name +
                  " is an average pooling, which has no backward pass yet (such models run inference only)");
    }
    if (op.kind == OpKind::Softmax && (op.softmax_inner != 1 || (op.softmax_length && op.softmax_length != op.in[1]))) {
      throw Error(who + ": " + plan.model + "'s softmax " + op.name +
                  " normalises part of each image's features; the training loss needs all of them");
    }
  }
}

uint64_t activation_elements(const Plan& plan) {
  uint64_t n = 0;
  for (const PlanOp& op : plan.ops)
    if (owns_output(op.kind)) n += op.out.numel();
  return n;
}

Plan lower(const ModelDesc& m, uint32_t batch, const DeviceInfo& device, DType storage) {
  ops::check_forced_kernels(device);
  if (batch == 0) throw Error("model " + m.name + ": batch size must be at least 1");
  const std::vector<Shape> shapes = layer_shapes(m, batch);
  const auto inputs = layer_inputs(m);
  std::vector<size_t> readers(m.layers.size(), 0);  // how many layers read each one
  for (const auto& in : inputs)
    for (size_t k : in)
      if (k != kModelInput) ++readers[k];
  std::vector<size_t> op_of(m.layers.size(), kPlanInput);  // the op that gives each layer's output
  Plan plan;
  plan.model = m.name;
  plan.batch = batch;
  plan.storage = storage;
  plan.input = m.input_shape(batch);
  plan.classes = m.classes;
  const uint64_t f = dtype_size(storage);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    PlanOp op;
    op.name = l.name;
    op.layer = i;
    for (size_t k : inputs[i]) op.inputs.push_back(k == kModelInput ? kPlanInput : op_of[k]);
    const Shape in = inputs[i][0] == kModelInput ? plan.input : shapes[inputs[i][0]];
    op.in = in;
    op.out = shapes[i];
    uint64_t in_bytes = 0;
    for (size_t k : inputs[i]) in_bytes += (k == kModelInput ? plan.input : shapes[k]).numel() * f;
    op.bytes = in_bytes + op.out.numel() * f;
    // A ReLU right after this layer that reads it, and it alone, is applied by its kernel.
    const bool relu_next = i + 1 < m.layers.size() && m.layers[i + 1].type == LayerType::Relu &&
                           inputs[i + 1][0] == i && readers[i] == 1;
    switch (l.type) {
      case LayerType::Conv2d: {
        op.kind = OpKind::Conv2d;
        op.weight = l.weight;
        op.kernel = ops::choose_kernel(device, "conv2d", in, Shape{l.out_channels, in[1] / l.conv.groups, l.kernel_h, l.kernel_w},
                                       l.conv.stride_w);
        op.bias = l.bias;
        op.conv = l.conv;
        const uint64_t taps = uint64_t(in[1] / l.conv.groups) * l.kernel_h * l.kernel_w;
        op.flop = 2 * op.out.numel() * taps + (l.bias.empty() ? 0 : op.out.numel());
        op.bytes += (uint64_t(l.out_channels) * taps + (l.bias.empty() ? 0 : l.out_channels)) * f;
        break;
      }
      case LayerType::Linear: {
        op.kind = OpKind::Linear;
        op.weight = l.weight;
        op.kernel = ops::choose_kernel(device, "linear", in, Shape{l.out_features, in[1]});
        op.bias = l.bias;
        op.flop = 2 * op.out.numel() * in[1] + (l.bias.empty() ? 0 : op.out.numel());
        op.bytes += (uint64_t(l.out_features) * in[1] + (l.bias.empty() ? 0 : l.out_features)) * f;
        break;
      }
      case LayerType::Relu:
        op.kind = OpKind::Relu;
        op.kernel = "relu_forward";
        break;
      case LayerType::Lrn:
        op.kind = OpKind::Lrn;
        op.kernel = ops::choose_kernel(device, "lrn", in, Shape{});
        op.lrn = l.lrn;
        break;
      case LayerType::MaxPool:
        op.kind = OpKind::MaxPool;
        op.kernel = ops::choose_kernel(device, "max_pool", in, Shape{});
        op.pool = l.pool;
        break;
      case LayerType::Dropout:
        op.kind = OpKind::Dropout;
        op.kernel = "dropout_forward";
        op.dropout = l.dropout;
        break;
      case LayerType::AvgPool:
        op.kind = OpKind::AvgPool;
        op.kernel = ops::choose_kernel(device, "avg_pool", in, Shape{});
        op.pool = l.pool;
        op.count_include_pad = l.count_include_pad;
        break;
      case LayerType::AdaptiveAvgPool:
        if (op.out != in) {  // else the identity (a reshape)
          op.kind = OpKind::AvgPool;
          op.kernel = ops::choose_kernel(device, "avg_pool", in, Shape{});
          op.pool = adaptive_pool_window(in, l.out_h, l.out_w);
          break;
        }
        [[fallthrough]];
      case LayerType::Flatten:
        op.kind = OpKind::Reshape;
        op.bytes = 0;
        break;
      case LayerType::Softmax:
        op.kind = OpKind::Softmax;
        op.kernel = "softmax_forward";
        op.softmax_length = l.softmax_length;
        op.softmax_inner = l.softmax_inner;
        break;
      case LayerType::Concat:
        op.kind = OpKind::Concat;
        op.kernel = "copy_channels";
        break;
      case LayerType::Slice:
        op.kind = OpKind::Slice;
        op.kernel = "copy_channels";
        op.slice_begin = l.slice_begin;
        op.slice_end = l.slice_end;
        op.bytes = 2 * op.out.numel() * f;  // it reads only its channels
        break;
    }
    if ((op.kind == OpKind::Conv2d || op.kind == OpKind::Linear) && relu_next) {
      op.relu = op.conv.relu = true;
      op.relu_layer = m.layers[i + 1].name;
      op_of[i] = plan.ops.size();
      ++i;  // that ReLU is this op's
    }
    op_of[i] = plan.ops.size();
    plan.ops.push_back(std::move(op));
  }
  return plan;
}

SplitPlan split_plan(const Plan& plan) {
  if (!plan.is_chain()) {
    throw Error("split over two devices: " + plan.model + " is not a chain of layers (it has a concat, a slice or a layer that reads another than the one before it)");
  }
  SplitPlan sp;
  sp.plan = plan;
  auto halves = [](uint32_t c) { return std::array<ChannelRange, 2>{ChannelRange{0, c / 2}, ChannelRange{c / 2, c}}; };
  auto both = [](uint32_t c) { return std::array<ChannelRange, 2>{ChannelRange{0, c}, ChannelRange{0, c}}; };
  for (const PlanOp& op : plan.ops) {
    const uint32_t cin = op.in[1], cout = op.out[1];
    auto fail = [&](const std::string& why) {
      throw Error("split over two devices: op " + op.name + " (" + op_kind_name(op.kind) + "): " + why);
    };
    SplitOp s;
    switch (op.kind) {
      case OpKind::Conv2d: {
        const uint32_t g = op.conv.groups;
        s.computes = halves(cout);
        if (g == 1) {
          s.input = both(cin);
        } else if (g % 2 == 0) {
          s.input = halves(cin);  // each device holds whole groups: g / 2 of them
        } else {
          fail("groups " + std::to_string(g) + " is neither 1 nor even");
        }
        s.output = s.computes;
        break;
      }
      case OpKind::Linear:
        s.computes = halves(cout);
        s.input = both(cin);
        s.output = s.computes;
        break;
      case OpKind::Relu:
      case OpKind::MaxPool:
      case OpKind::AvgPool:
      case OpKind::Dropout:
        s.computes = s.input = s.output = halves(cout);
        break;
      case OpKind::Lrn: {
        s.computes = halves(cout);
        const uint32_t h = 2 * (op.lrn.size / 2);
        for (int d = 0; d < 2; ++d) {
          s.input[d] = {s.computes[d].begin > h ? s.computes[d].begin - h : 0, std::min(cout, s.computes[d].end + h)};
        }
        s.output = s.input;
        break;
      }
      case OpKind::Reshape: {
        // A flatten ([N, C, H, W] to [N, C*H*W]) or the identity: each input channel becomes
        // k output channels, its elements in the same order.
        const uint64_t inner_in = op.in.numel() / (uint64_t(op.in[0]) * cin);
        const uint64_t inner_out = op.out.numel() / (uint64_t(op.out[0]) * cout);
        if (cout % cin != 0 || inner_in != uint64_t(cout / cin) * inner_out) fail("a reshape that is not a flatten");
        const uint32_t k = cout / cin;
        s.input = halves(cin);
        for (int d = 0; d < 2; ++d) s.computes[d] = {s.input[d].begin * k, s.input[d].end * k};
        s.output = s.computes;
        break;
      }
      case OpKind::Softmax:
        s.computes = s.input = s.output = {ChannelRange{0, cout}, ChannelRange{}};
        break;
      case OpKind::Concat:
      case OpKind::Slice:
        fail("not a chain");  // refused above
    }
    sp.ops.push_back(s);
  }
  return sp;
}

}  // namespace vkalex
