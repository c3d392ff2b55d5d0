// Shapes and element types of tensors.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// Element type of a tensor. Activations and weights are F32, or F16 in a net with fp16
// storage (IEEE binary16 in memory, fp32 arithmetic in the kernels); U32 holds indices
// (max-pool argmax).
enum class DType : uint32_t { F32, U32, F16 };

// Bytes of one element of `dtype`.
uint32_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

// IEEE binary16 <-> float. float_to_half rounds to nearest, ties to even; a value that rounds
// past 65504 becomes infinity, a NaN stays a (quiet) NaN, tiny values become subnormals or 0.
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);

// Dimensions of a tensor, outermost first (NCHW for images, [N, features] for linear layers).
// A shape of rank 0 has one element. Dimensions may be 0 (an empty tensor).
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<uint32_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<uint32_t> dims) : dims_(std::move(dims)) {}

  size_t rank() const { return dims_.size(); }
  uint32_t operator[](size_t i) const { return dims_.at(i); }
  const std::vector<uint32_t>& dims() const { return dims_; }
  // Product of all dimensions; 64-bit so that no AlexNet-sized product overflows.
  uint64_t numel() const;
  // "[2, 96, 55, 55]"
  std::string str() const;

  bool operator==(const Shape&) const = default;

 private:
  std::vector<uint32_t> dims_;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
