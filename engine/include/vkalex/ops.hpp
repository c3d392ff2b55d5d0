// The forward ops: their parameters, their output shapes, and recording them on the GPU.
// Each op checks its shapes and throws Error naming the op and the mismatch.
#pragma once

#include <cstdint>

#include "vkalex/context.hpp"
#include "vkalex/recorder.hpp"

namespace vkalex {

// 2-D convolution, NCHW. x [N, C, H, W], weight [K, C/groups, KH, KW], bias [K],
// y [N, K, OH, OW] with OH = (H + 2*pad_h - KH) / stride_h + 1 (likewise OW).
struct Conv2dParams {
  uint32_t stride_h = 1, stride_w = 1;
  uint32_t pad_h = 0, pad_w = 0;
  uint32_t groups = 1;
  bool relu = false;  // apply max(0, .) to the output
};

// Local response normalisation across channels, as torch.nn.LocalResponseNorm (and Caffe)
// define it: y = x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta.
// The window of channel c is [c - size/2, c + (size-1)/2], clipped to the channels present.
// The backward kernel keeps 2 size - 1 values per invocation: sizes beyond this are refused.
inline constexpr uint32_t kMaxLrnSize = 64;
struct LrnParams {
  uint32_t size = 5;  // 1 to kMaxLrnSize
  float alpha = 1e-4f;
  float beta = 0.75f;
  float k = 2.0f;
};

// Max pooling, NCHW, floor rounding of the output size (as torch with ceil_mode=False).
// Padding counts as -infinity and may be at most half the kernel. Overlapping windows
// (kernel 3, stride 2) are fine. The argmax is the flat index into x of each maximum
// (the first one on ties; a NaN wins).
struct MaxPoolParams {
  uint32_t kernel_h = 3, kernel_w = 3;
  uint32_t stride_h = 2, stride_w = 2;
  uint32_t pad_h = 0, pad_w = 0;
};

// Output shapes; throw Error when the inputs do not fit together.
Shape conv2d_output_shape(const Shape& x, const Shape& weight, const Shape* bias,
                          const Conv2dParams& params);
Shape lrn_output_shape(const Shape& x, const LrnParams& params);
Shape max_pool_output_shape(const Shape& x, const MaxPoolParams& params);
// Linear: x [N, in], weight [out, in], bias [out] -> [N, out].
Shape linear_output_shape(const Shape& x, const Shape& weight, const Shape* bias);
// Softmax over the last dimension of x (rank >= 1).
Shape softmax_output_shape(const Shape& x);

// Values a training step reads from a small device buffer (a U32 tensor of 8 elements),
// rewritten by the host before each replay: the layout of shaders/step_params.glsl.
struct StepParams {
  uint32_t step = 0;
  uint32_t seed = 0;
  float lr = 0.01f;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
  uint32_t pad[3] = {0, 0, 0};
};
static_assert(sizeof(StepParams) == 32);

namespace ops {

// Each function records the op into `rec` (between begin() and end()); y must already have
// the output shape. Inputs are never modified unless noted.

void conv2d(Recorder& rec, const Tensor& x, const Tensor& weight, const Tensor* bias,
            const Tensor& y, const Conv2dParams& params);
// y = max(x, 0). y may be x itself (in place).
void relu(Recorder& rec, const Tensor& x, const Tensor& y);
void lrn(Recorder& rec, const Tensor& x, const Tensor& y, const LrnParams& params);
// argmax (U32, shaped like y) is optional; the backward pass needs it.
void max_pool(Recorder& rec, const Tensor& x, const Tensor& y, const Tensor* argmax,
              const MaxPoolParams& params);
// Y = X W^T + b, optionally followed by ReLU. Weights larger than the device's
// maxStorageBufferRange are bound and dispatched in row blocks.
void linear(Recorder& rec, const Tensor& x, const Tensor& weight, const Tensor* bias,
            const Tensor& y, bool relu);
// Numerically stable softmax over the last dimension (the row maximum is subtracted).
void softmax(Recorder& rec, const Tensor& x, const Tensor& y);
// Dropout at inference is the identity. With no `y` nothing is recorded and x is returned;
// with a distinct y, x is copied into it and y is returned.
Tensor dropout_inference(Recorder& rec, const Tensor& x, const Tensor* y = nullptr);

// ---- Training: backward ops, loss, dropout and the optimizer. Shapes as in the forward ops;
// dy is the gradient of the loss with respect to the forward op's output.

void conv2d_backward_data(Recorder& rec, const Tensor& dy, const Tensor& weight, const Tensor& dx,
                          const Conv2dParams& params);
void conv2d_backward_weight(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dweight,
                            const Conv2dParams& params);
// Sum of dy over every dimension but dimension 1 (the bias gradient of conv2d and linear).
void bias_backward(Recorder& rec, const Tensor& dy, const Tensor& dbias);
// dx = dy where y (the ReLU's output) > 0. dx may be dy itself.
void relu_backward(Recorder& rec, const Tensor& dy, const Tensor& y, const Tensor& dx);
void lrn_backward(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dx, const LrnParams& params);
// Through the argmax the forward pass recorded.
void max_pool_backward(Recorder& rec, const Tensor& dy, const Tensor& argmax, const Tensor& dx,
                       const MaxPoolParams& params);
void linear_backward_data(Recorder& rec, const Tensor& dy, const Tensor& weight, const Tensor& dx);
void linear_backward_weight(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dweight);
// Training-mode dropout with the mask of dropout_hash(seed, step, index) (seed and step read
// from `step_params`); dropout_backward applies the same mask to dy. y may be x itself.
void dropout(Recorder& rec, const Tensor& x, const Tensor& y, float p, const Tensor& step_params);
void dropout_backward(Recorder& rec, const Tensor& dy, const Tensor& dx, float p, const Tensor& step_params);
// Fused softmax and cross-entropy averaged over the batch: dlogits = (softmax - onehot) / N,
// stats [N, 2] = per row (loss, 1 if the label is the first largest logit). labels (U32, [N])
// must be checked against the class count by the caller before upload.
void softmax_cross_entropy(Recorder& rec, const Tensor& logits, const Tensor& labels, const Tensor& dlogits,
                           const Tensor& stats);
// w += v = momentum v - weight_decay lr w - lr g, with lr, momentum and weight_decay from
// step_params.
void sgd_update(Recorder& rec, const Tensor& w, const Tensor& v, const Tensor& g, const Tensor& step_params);

}  // namespace ops
}  // namespace vkalex
