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
struct LrnParams {
  uint32_t size = 5;
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

}  // namespace ops
}  // namespace vkalex
