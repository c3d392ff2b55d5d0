// What each op computes, apart from where: its parameters, its output-shape rules, the values
// a training step reads per step, and the dropout mask. Shared by the GPU ops (ops.hpp) and
// the CPU reference (cpu.hpp), which depend on neither each other nor a device.
#pragma once

#include <cstdint>

#include "vkalex/shape.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// 2-D convolution, NCHW. x [N, C, H, W], weight [K, C/groups, KH, KW], bias [K],
// y [N, K, OH, OW] with OH = (H + pad_h + pad_end_h() - KH) / stride_h + 1 (likewise OW):
// pad_h rows of zeros above the input, and as many below unless pad_bottom says otherwise
// (ONNX's pads per side; -1: the same as above).
struct Conv2dParams {
  uint32_t stride_h = 1, stride_w = 1;
  uint32_t pad_h = 0, pad_w = 0;
  uint32_t groups = 1;
  bool relu = false;  // apply max(0, .) to the output
  int32_t pad_bottom = -1, pad_right = -1;

  uint32_t pad_end_h() const { return pad_bottom < 0 ? pad_h : uint32_t(pad_bottom); }
  uint32_t pad_end_w() const { return pad_right < 0 ? pad_w : uint32_t(pad_right); }
};

// Local response normalisation across channels, as torch.nn.LocalResponseNorm (and Caffe)
// define it: y = x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta.
// The window of channel c is [c - size/2, c + (size-1)/2], clipped to the channels present;
// with onnx_window, ONNX's [c - (size-1)/2, c + size/2] (the same for odd sizes, one channel
// higher for even ones).
// The backward kernel keeps 2 size - 1 values per invocation: sizes beyond this are refused.
inline constexpr uint32_t kMaxLrnSize = 64;
struct LrnParams {
  uint32_t size = 5;  // 1 to kMaxLrnSize
  float alpha = 1e-4f;
  float beta = 0.75f;
  float k = 2.0f;
  bool onnx_window = false;

  // The channels the window reaches below c and above it.
  uint32_t below() const { return onnx_window ? (size - 1) / 2 : size / 2; }
  uint32_t above() const { return size - 1 - below(); }
};

// Max pooling, NCHW. Window oy covers rows oy * stride_h - pad_h to that + kernel_h - 1 (the
// same across); rows outside the input are padding, which counts as -infinity. The output has
// OH = (H + pad_h + pad_bottom - kernel_h) / stride_h + 1 rows, rounded down (torch's
// default), or up with ceil_mode, where a last window starting beyond the input and its top
// padding is dropped (as torch and ONNX do). pad_bottom and pad_right are ONNX's padding at
// the end where it differs from the beginning's (-1: the same). Padding must be less than the
// kernel, so that no window is padding only. Overlapping windows (kernel 3, stride 2) are
// fine. The argmax is the flat index into x of each maximum (the first one on ties; a NaN
// wins). Average pooling (ops::avg_pool) takes the same windows.
struct MaxPoolParams {
  uint32_t kernel_h = 3, kernel_w = 3;
  uint32_t stride_h = 2, stride_w = 2;
  uint32_t pad_h = 0, pad_w = 0;
  int32_t pad_bottom = -1, pad_right = -1;
  bool ceil_mode = false;
  // ONNX's dilations: the window's taps dilation_h rows (dilation_w columns) apart, spanning
  // (kernel - 1) * dilation + 1; every window must hold at least one input element.
  uint32_t dilation_h = 1, dilation_w = 1;

  uint32_t pad_end_h() const { return pad_bottom < 0 ? pad_h : uint32_t(pad_bottom); }
  uint32_t pad_end_w() const { return pad_right < 0 ? pad_w : uint32_t(pad_right); }
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

// Dropout's keep decision for element `index` of a step: a hash of (seed, step, index), the
// same on the GPU and in the CPU reference, so a step is reproducible and its backward pass draws the same
// mask. An element is kept (and scaled by 1 / (1 - p)) when the hash is at least
// dropout_threshold(p).
uint32_t dropout_hash(uint32_t seed, uint32_t step, uint32_t index);
uint32_t dropout_threshold(float p);

// The paper's SGD with momentum and weight decay: v <- momentum v - weight_decay lr w - lr g;
// w <- w + v.
struct SgdParams {
  float lr = 0.01f;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
