// Internal: one plan op on the CPU reference, shared by Net::forward_cpu and the CPU
// training step.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "vkalex/cpu.hpp"
#include "vkalex/plan.hpp"

namespace vkalex::detail {

template <typename T>
struct BasicCpuForward {
  BasicHostTensor<T> y;           // the op's output (after its fused ReLU, if any)
  BasicHostTensor<T> pre_relu;    // conv2d and linear with a fused ReLU: the output before it
  std::vector<uint32_t> argmax;   // max pool
};
using CpuForward = BasicCpuForward<float>;

// Runs `op` on x, with activations (and parameters) stored as T: float like the GPU, or
// double. Dropout is the identity unless `training`, when it draws the mask of (seed, step).
// Softmax returns the probabilities. A concat joins x alone (Net::forward_cpu joins several).
template <typename T>
BasicCpuForward<T> cpu_forward_op(const PlanOp& op, const BasicHostTensor<T>& x,
                                  const std::map<std::string, BasicHostTensor<T>>& params, bool training,
                                  uint32_t seed, uint32_t step);

}  // namespace vkalex::detail
