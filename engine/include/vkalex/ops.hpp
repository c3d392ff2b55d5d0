// Recording the ops on the GPU (their parameters and shape rules: op_params.hpp).
// Each op checks its shapes and throws Error naming the op and the mismatch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/op_params.hpp"
#include "vkalex/recorder.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

namespace ops {

// Kernel variants. An op with more than one (a different shader or tiling for the same
// result) takes, in this order: the variant DeviceInfo::forced_kernels names; else the one
// DeviceInfo::tuned_kernels (the tuning file) names for these shapes, if it applies; else the
// first in its device class's order (CPU drivers, GPUs) whose conditions hold for the device
// and the shapes. The plan records the choice. Every variant is tested against the CPU
// reference on every driver.
// The variants of `op` ("conv2d", "linear"), in the order a CPU driver prefers them:
std::vector<std::string> kernel_variants(const std::string& op);
// The variants of `op` that can run these shapes on `device`, in its device class's order.
std::vector<std::string> applicable_kernels(const DeviceInfo& device, const std::string& op, const Shape& x,
                                            const Shape& weight, uint32_t stride = 1);
// The key of the tuning file for these shapes: "x[128, 24, 13, 13] w[48, 12, 3, 3] stride 1"
// (w and stride only where the op has them). x, weight and stride are what the op passes
// to the registry (choose_kernel's arguments).
std::string kernel_shape_key(const Shape& x, const Shape& weight, uint32_t stride = 1);
// The variant `op` runs with on `device` for input x, weight w and (convolutions) horizontal
// stride. Throws Error when a forced variant is unknown or does not apply.
std::string choose_kernel(const DeviceInfo& device, const std::string& op, const Shape& x, const Shape& weight,
                          uint32_t stride = 1);
// Throws Error naming the first forced op or variant the registry does not know.
void check_forced_kernels(const DeviceInfo& device);

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
// Average pooling over the windows of max pooling (`params`): the mean of each window's elements
// inside x, or with count_include_pad their sum over the count of positions inside the padded x (ONNX's
// count_include_pad, torch's default).
void avg_pool(Recorder& rec, const Tensor& x, const Tensor& y, const MaxPoolParams& params, bool count_include_pad);
// Y = X W^T + b, optionally followed by ReLU. Weights larger than the device's
// maxStorageBufferRange are bound and dispatched in row blocks.
void linear(Recorder& rec, const Tensor& x, const Tensor& weight, const Tensor* bias,
            const Tensor& y, bool relu);
// Numerically stable softmax over the last dimension (the row maximum is subtracted).
// With `length` and `inner`: over groups of `length` elements `inner` apart, in blocks of
// length x inner consecutive values (ONNX's softmax along an axis; 0 and 1: the last dimension).
void softmax(Recorder& rec, const Tensor& x, const Tensor& y, uint32_t length = 0, uint32_t inner = 1);
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
// With relu_input, x is a ReLU's output and dx is passed back through that ReLU as well
// (zero where x <= 0: relu_backward fused, one pass fewer over the tensor).
void lrn_backward(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dx, const LrnParams& params,
                  bool relu_input = false);
// Through the argmax the forward pass recorded.
void max_pool_backward(Recorder& rec, const Tensor& dy, const Tensor& argmax, const Tensor& dx,
                       const MaxPoolParams& params);
void linear_backward_data(Recorder& rec, const Tensor& dy, const Tensor& weight, const Tensor& dx);
void linear_backward_weight(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dweight);
// Training-mode dropout with the mask of dropout_hash(seed, step, index) (seed and step read
// from `step_params`); dropout_backward applies the same mask to dy. y may be x itself.
// Element (n, j) of x ([N, ...], j counting within image n) draws the index first_index +
// n * row_stride + j of the whole tensor the mask is drawn for (row_stride 0: x's own elements
// per image). A data-parallel worker holding images from k on of a global batch passes
// first_index = k times the elements of one image; a device holding features f0 to f1 - 1 of
// a layer split over two devices passes first_index = f0 and row_stride = the layer's
// features: each draws the mask one device given the whole batch would.
void dropout(Recorder& rec, const Tensor& x, const Tensor& y, float p, const Tensor& step_params,
             uint32_t first_index = 0, uint32_t row_stride = 0);
void dropout_backward(Recorder& rec, const Tensor& dy, const Tensor& dx, float p, const Tensor& step_params,
                      uint32_t first_index = 0, uint32_t row_stride = 0);
// Fused softmax and cross-entropy averaged over the batch: dlogits = (softmax - onehot) / M,
// where M is `mean_over` (0: N, this batch; a data-parallel worker passes the global batch, so
// that the workers' gradients sum to the global batch's),
// stats [N, 2] = per row (loss, 1 if the label is the first largest logit). labels (U32, [N])
// must be checked against the class count by the caller before upload; a row whose label is
// not (>= classes) reads nothing outside its row and gets a NaN loss, so the step's loss
// shows it.
void softmax_cross_entropy(Recorder& rec, const Tensor& logits, const Tensor& labels, const Tensor& dlogits,
                           const Tensor& stats, uint32_t mean_over = 0);
// w += v = momentum v - weight_decay lr w - lr g, with lr, momentum and weight_decay from
// step_params.
void sgd_update(Recorder& rec, const Tensor& w, const Tensor& v, const Tensor& g, const Tensor& step_params);

}  // namespace ops
}  // namespace vkalex
VKALEX_PUBLIC_END
