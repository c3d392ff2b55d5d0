// The CPU reference of every op: plain loops with double accumulation, written to be
// obviously right rather than fast. The GPU kernels are tested against it; users can run it
// to check a driver (samples/info does).
#pragma once

#include <cstdint>
#include <vector>

#include "vkalex/ops.hpp"
#include "vkalex/shape.hpp"

namespace vkalex {

// A tensor in host memory, row-major in the order of its shape.
struct HostTensor {
  Shape shape;
  std::vector<float> data;

  HostTensor() = default;
  explicit HostTensor(Shape s) : shape(std::move(s)), data(shape.numel(), 0.0f) {}
  HostTensor(Shape s, std::vector<float> d);  // throws Error when sizes differ
};

namespace cpu {

HostTensor conv2d(const HostTensor& x, const HostTensor& weight, const HostTensor* bias,
                  const Conv2dParams& params);
HostTensor relu(const HostTensor& x);
HostTensor lrn(const HostTensor& x, const LrnParams& params);

struct MaxPoolResult {
  HostTensor y;
  std::vector<uint32_t> argmax;  // flat index into x of each output's maximum
};
MaxPoolResult max_pool(const HostTensor& x, const MaxPoolParams& params);

HostTensor linear(const HostTensor& x, const HostTensor& weight, const HostTensor* bias,
                  bool relu);
HostTensor softmax(const HostTensor& x);
HostTensor dropout_inference(const HostTensor& x);

}  // namespace cpu
}  // namespace vkalex
