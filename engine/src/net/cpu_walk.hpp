// Internal: one plan op on the CPU reference, shared by Net::forward_cpu and the CPU
// training step.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "vkalex/cpu.hpp"
#include "vkalex/plan.hpp"

namespace vkalex::detail {

struct CpuForward {
  HostTensor y;                   // the op's output (after its fused ReLU, if any)
  HostTensor pre_relu;            // conv2d and linear with a fused ReLU: the output before it
  std::vector<uint32_t> argmax;   // max pool
};

// Runs `op` on x. Dropout is the identity unless `training`, when it draws the mask of
// (seed, step). Softmax returns the probabilities.
CpuForward cpu_forward_op(const PlanOp& op, const HostTensor& x, const std::map<std::string, HostTensor>& params,
                          bool training, uint32_t seed, uint32_t step);

}  // namespace vkalex::detail
