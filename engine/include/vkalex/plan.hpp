// A model lowered once, for one device and one batch size, into the ordered ops that run it.
// Everything that runs a model walks a plan and nothing else interprets the description:
// Net's recorded forward pass, the Trainer's recorded step, the CPU reference (forward and
// backward) and bench's per-layer report.
#pragma once

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
  Dropout,  // training only: the identity at inference
  Reshape,  // flatten, and adaptive average pooling where it is the identity
  Softmax,  // the model's output; training replaces it with the fused loss
};
const char* op_kind_name(OpKind kind);

struct PlanOp {
  OpKind kind = OpKind::Relu;
  std::string name;     // the layer's name
  size_t layer = 0;     // the layer's position in the description
  Shape in, out;        // with the batch dimension
  // Conv2d and Linear: parameter names (bias may be empty), and the ReLU layer that follows
  // and is applied by this op's kernel (relu_layer names it; the plan has no op for it).
  std::string weight, bias;
  bool relu = false;
  std::string relu_layer;
  Conv2dParams conv;    // Conv2d (conv.relu == relu)
  LrnParams lrn;        // Lrn
  MaxPoolParams pool;   // MaxPool
  float dropout = 0;    // Dropout: probability of dropping
  // The kernel that runs the forward op on this plan's device: the registry's variant
  // ("linear.vec4") where the op has several, else its shader's name.
  std::string kernel;
  // Forward work: floating-point operations of the multiply-adds (2 each) and bias adds of
  // convolution and linear layers, 0 for the other ops, which are bound by memory; and
  // bytes every op must at least move: inputs and parameters read once, outputs written once.
  uint64_t flop = 0;
  uint64_t bytes = 0;
};

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
};

// Lowers `model` for `batch` images on `device`, its tensors stored as `storage` (F32 or F16;
// the ops' bytes count that element size). Throws Error (naming the layer) where the shapes
// do not chain, as load_model does.
Plan lower(const ModelDesc& model, uint32_t batch, const DeviceInfo& device, DType storage = DType::F32);

// Whether an op of this kind writes a tensor of its own (dropout in inference, reshape and
// softmax do not: they alias or write the outputs), and the elements those tensors of `plan`
// hold in all: what a forward pass allocates for its activations.
bool owns_output(OpKind kind);
uint64_t activation_elements(const Plan& plan);

}  // namespace vkalex
VKALEX_PUBLIC_END
