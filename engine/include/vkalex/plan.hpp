// A model lowered once, for one device and one batch size, into the ordered ops that run it.
// Everything that runs a model walks a plan and nothing else interprets the description:
// Net's recorded forward pass, the Trainer's recorded step, the CPU reference (forward and
// backward) and bench's per-layer report.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/model.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

enum class OpKind {
  Conv2d,
  Linear,
  Relu,     // a ReLU no op before it could apply itself
  Lrn,
  MaxPool,
  AvgPool,  // inference only (a Trainer refuses it)
  Dropout,  // training only: the identity at inference
  Reshape,  // flatten, and adaptive average pooling where it is the identity
  Softmax,  // the model's output; training replaces it with the fused loss
  Concat,   // joins its inputs' channels (copies; inference only)
  Slice,    // a range of its input's channels (a copy; inference only)
};
const char* op_kind_name(OpKind kind);

struct PlanOp {
  OpKind kind = OpKind::Relu;
  std::string name;     // the layer's name
  size_t layer = 0;     // the layer's position in the description
  // The ops whose outputs this one reads (kPlanInput: the plan's input): the op before it in
  // a chain; a concat reads several. `in` is the shape of the first.
  std::vector<size_t> inputs;
  Shape in, out;        // with the batch dimension
  // Conv2d and Linear: parameter names (bias may be empty), and the ReLU layer that follows
  // and is applied by this op's kernel (relu_layer names it; the plan has no op for it).
  std::string weight, bias;
  bool relu = false;
  std::string relu_layer;
  Conv2dParams conv;    // Conv2d (conv.relu == relu)
  LrnParams lrn;        // Lrn
  MaxPoolParams pool;   // MaxPool, AvgPool
  bool count_include_pad = false;  // AvgPool
  float dropout = 0;    // Dropout: probability of dropping
  uint32_t softmax_length = 0, softmax_inner = 1;  // Softmax (see LayerDesc)
  uint32_t slice_begin = 0, slice_end = 0;          // Slice: its channels of the input
  // The kernel that runs the forward op on this plan's device: the registry's variant
  // ("linear.vec4") where the op has several, else its shader's name.
  std::string kernel;
  // Forward work: floating-point operations of the multiply-adds (2 each) and bias adds of
  // convolution and linear layers, 0 for the other ops, which are bound by memory; and
  // bytes every op must at least move: inputs and parameters read once, outputs written once.
  uint64_t flop = 0;
  uint64_t bytes = 0;
};

constexpr size_t kPlanInput = SIZE_MAX;

struct Plan {
  std::string model;
  uint32_t batch = 0;
  DType storage = DType::F32;  // of parameters and activations (F16: fp16 storage)
  Shape input;            // [batch, C, H, W]
  uint32_t classes = 0;
  std::vector<PlanOp> ops;

  uint64_t flop() const;  // of the whole forward pass
  // The first op with parameters: a training step's backward pass ends there.
  size_t first_parameter_op() const;
  // Whether every op reads the op before it (the first the input) and nothing else.
  bool is_chain() const;
};

// Lowers `model` for `batch` images on `device`, its tensors stored as `storage` (F32 or F16;
// the ops' bytes count that element size). Throws Error (naming the layer) where the shapes
// do not chain, as load_model does.
Plan lower(const ModelDesc& model, uint32_t batch, const DeviceInfo& device, DType storage = DType::F32);

// Whether an op of this kind writes a tensor of its own (dropout in inference, reshape and
// softmax do not: they alias or write the outputs), and the elements those tensors of `plan`
// hold in all: what a forward pass allocates for its activations.
bool owns_output(OpKind kind);
// Throws Error naming the op where the plan has one that cannot be trained (average pooling,
// a softmax over part of the features) or is not a chain (concat, slice, a layer that reads
// another than the one before it).
void require_trainable(const Plan& plan, const std::string& who);
uint64_t activation_elements(const Plan& plan);

// ---- The paper's model parallelism (vkalex/split.hpp): a plan shared by two devices.

// Channels begin to end - 1 of a tensor [N, C, ...] (features of [N, F]).
struct ChannelRange {
  uint32_t begin = 0, end = 0;
  uint32_t size() const { return end > begin ? end - begin : 0; }
  bool empty() const { return end <= begin; }
  bool operator==(const ChannelRange&) const = default;
};

// One plan op on each of the two devices (index 0 and 1).
struct SplitOp {
  // The output channels each device computes: the first half on device 0, the second on
  // device 1 (the softmax: all on device 0, nothing on device 1).
  std::array<ChannelRange, 2> computes;
  // The input channels each device's op reads, which its input tensor holds: its own half
  // (ReLU, max pool, dropout, a convolution whose groups split with the devices), all of them
  // (a convolution with groups 1, a linear layer, the softmax), or its half and
  // 2 x floor(size / 2) channels each side (an LRN: its sums reach that far in the backward pass).
  std::array<ChannelRange, 2> input;
  // The channels each device's output tensor holds: `computes`, but for an LRN, which runs
  // over what it reads (only its `computes` channels are right).
  std::array<ChannelRange, 2> output;
};

struct SplitPlan {
  Plan plan;
  std::vector<SplitOp> ops;  // one per plan op
};

// Splits `plan` over two devices. Input channels a device needs and does not compute itself
// come from the other device (see SplitNet). Throws Error naming the op where it cannot be
// split: a convolution whose groups are neither 1 nor even, a reshape that is not a flatten,
// a plan that is not a chain.
SplitPlan split_plan(const Plan& plan);

}  // namespace vkalex
VKALEX_PUBLIC_END
