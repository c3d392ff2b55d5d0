// The CPU reference of every op: plain loops with double accumulation, written to be
// obviously right rather than fast. The GPU kernels are tested against it; users can run it
// to check a driver (samples/info does).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "vkalex/op_params.hpp"
#include "vkalex/shape.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// A tensor in host memory, row-major in the order of its shape. HostTensor (float) is what
// the engine moves to and from the GPU; HostTensor64 lets tests run the reference in double
// (central finite differences of the backward ops).
template <typename T>
struct BasicHostTensor {
  Shape shape;
  std::vector<T> data;

  BasicHostTensor() = default;
  explicit BasicHostTensor(Shape s) : shape(std::move(s)), data(shape.numel(), T(0)) {}
  BasicHostTensor(Shape s, std::vector<T> d);  // throws Error when sizes differ
};
using HostTensor = BasicHostTensor<float>;
using HostTensor64 = BasicHostTensor<double>;

namespace cpu {

// Forward ops (accumulating in double).
template <typename T>
VKALEX_API BasicHostTensor<T> conv2d(const BasicHostTensor<T>& x, const BasicHostTensor<T>& weight,
                          const std::type_identity_t<BasicHostTensor<T>>* bias, const Conv2dParams& params);
template <typename T>
VKALEX_API BasicHostTensor<T> relu(const BasicHostTensor<T>& x);
template <typename T>
VKALEX_API BasicHostTensor<T> lrn(const BasicHostTensor<T>& x, const LrnParams& params);

template <typename T>
struct MaxPoolResult {
  BasicHostTensor<T> y;
  std::vector<uint32_t> argmax;  // flat index into x of each output's maximum
};
template <typename T>
VKALEX_API MaxPoolResult<T> max_pool(const BasicHostTensor<T>& x, const MaxPoolParams& params);
// Average pooling (see ops::avg_pool), summed in double.
template <typename T>
VKALEX_API BasicHostTensor<T> avg_pool(const BasicHostTensor<T>& x, const MaxPoolParams& params, bool count_include_pad);

template <typename T>
VKALEX_API BasicHostTensor<T> linear(const BasicHostTensor<T>& x, const BasicHostTensor<T>& weight,
                          const std::type_identity_t<BasicHostTensor<T>>* bias, bool relu);
template <typename T>
VKALEX_API BasicHostTensor<T> softmax(const BasicHostTensor<T>& x, uint32_t length = 0, uint32_t inner = 1);
template <typename T>
VKALEX_API BasicHostTensor<T> dropout_inference(const BasicHostTensor<T>& x);
// Channels begin to end - 1 of x [N, C, ...] (features of [N, F]).
template <typename T>
VKALEX_API BasicHostTensor<T> slice_channels(const BasicHostTensor<T>& x, uint32_t begin, uint32_t end);
// The inputs' channels one after another: tensors [N, C_i, ...] that differ only in C_i.
template <typename T>
VKALEX_API BasicHostTensor<T> concat_channels(const std::vector<const BasicHostTensor<T>*>& inputs);
// Training-mode dropout: kept elements scaled by 1 / (1 - p), the others zero. Element i draws
// dropout_hash(seed, step, first_index + i) (see ops::dropout).
template <typename T>
VKALEX_API BasicHostTensor<T> dropout(const BasicHostTensor<T>& x, float p, uint32_t seed, uint32_t step,
                                      uint32_t first_index = 0);

// Backward ops: the gradient of the loss with respect to an op's input (or parameters),
// given the gradient dy with respect to its output.
template <typename T>
VKALEX_API BasicHostTensor<T> conv2d_backward_data(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& weight,
                                        const Shape& x_shape, const Conv2dParams& params);
template <typename T>
VKALEX_API BasicHostTensor<T> conv2d_backward_weight(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& x,
                                          const Shape& weight_shape, const Conv2dParams& params);
// Sum of dy over every dimension but dimension 1: the bias gradient of conv2d ([N, K, ...])
// and of linear ([N, M]).
template <typename T>
VKALEX_API BasicHostTensor<T> bias_backward(const BasicHostTensor<T>& dy);
// Through ReLU given its output y (y > 0 exactly where the input was).
template <typename T>
VKALEX_API BasicHostTensor<T> relu_backward(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& y);
template <typename T>
VKALEX_API BasicHostTensor<T> lrn_backward(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& x,
                                const LrnParams& params);
template <typename T>
VKALEX_API BasicHostTensor<T> max_pool_backward(const BasicHostTensor<T>& dy, const std::vector<uint32_t>& argmax,
                                     const Shape& x_shape);
// dX = dY W and dW = dY^T X.
template <typename T>
VKALEX_API BasicHostTensor<T> linear_backward_data(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& weight);
template <typename T>
VKALEX_API BasicHostTensor<T> linear_backward_weight(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& x);
template <typename T>
VKALEX_API BasicHostTensor<T> dropout_backward(const BasicHostTensor<T>& dy, float p, uint32_t seed, uint32_t step,
                                               uint32_t first_index = 0);

// Softmax with cross-entropy averaged over the batch, fused: the loss, how many rows have
// their label as the largest logit (first on ties), and the gradient of the mean loss with
// respect to the logits, (softmax - onehot) / M with M = `mean_over` (0: N; see
// ops::softmax_cross_entropy). Throws Error for a label out of range.
template <typename T>
struct CrossEntropyResult {
  double loss = 0;
  uint32_t correct = 0;
  BasicHostTensor<T> dlogits;
};
template <typename T>
VKALEX_API CrossEntropyResult<T> softmax_cross_entropy(const BasicHostTensor<T>& logits,
                                            const std::vector<uint32_t>& labels, uint32_t mean_over = 0);

// One SGD step on w with momentum buffer v and gradient g (all the same size).
void sgd_update(HostTensor& w, HostTensor& v, const HostTensor& g, const SgdParams& params);

}  // namespace cpu
}  // namespace vkalex
VKALEX_PUBLIC_END
