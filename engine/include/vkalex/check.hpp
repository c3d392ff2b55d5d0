// Checking the GPU kernels against the CPU reference on random inputs: the machinery behind
// samples/info's self-check and the tests. Each check fills its outputs with NaN first, so
// an element a kernel fails to write shows up as an error.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/ops.hpp"
#include "vkalex/random.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

struct CheckResult {
  std::string op;       // "conv2d"
  std::string case_name;  // shapes and parameters, e.g. "x[1, 3, 227, 227] w[96, 3, 11, 11] s4"
  uint64_t seed = 0;    // reruns the same inputs
  double rel_l2 = 0;    // ||gpu - ref|| / ||ref||; infinity when the GPU gave a NaN or Inf
  double max_abs = 0;   // largest |gpu - ref|
  bool exact_match = true;  // integer outputs (argmax) equal, where the op has them
  // What the check must reach: 1e-5 (DESIGN.md), 1e-3 for an op with fp16 storage (its
  // output rounded to half: at most 2^-11 of each element).
  double tolerance = 1e-5;
  bool passed() const { return passed(tolerance); }
  bool passed(double tol) const { return rel_l2 <= tol && exact_match; }
};

// Relative L2 error of `got` against `want`; infinity if any value of `got` is NaN or Inf
// or the sizes differ; 0 when both are all zero.
double relative_l2(std::span<const float> got, std::span<const float> want);

// Forward ops. With `storage` F16 every tensor is f16 (fp16 storage); the random inputs are
// rounded to half first, so the reference computes on exactly what the kernel reads and the
// error left is the kernel's own: its fp32 arithmetic and the rounding of its output to half
// (a relative error of at most 2^-11 per element).
CheckResult check_conv2d(Context& ctx, const Shape& x, const Shape& weight, bool bias,
                         const Conv2dParams& params, uint64_t seed, DType storage = DType::F32);
CheckResult check_relu(Context& ctx, const Shape& x, uint64_t seed, DType storage = DType::F32);
CheckResult check_lrn(Context& ctx, const Shape& x, const LrnParams& params, uint64_t seed,
                      float input_scale = 1.0f, DType storage = DType::F32);
// Also requires the argmax indices to equal the reference's.
CheckResult check_max_pool(Context& ctx, const Shape& x, const MaxPoolParams& params, uint64_t seed,
                           DType storage = DType::F32);
CheckResult check_avg_pool(Context& ctx, const Shape& x, const MaxPoolParams& params, bool count_include_pad,
                           uint64_t seed, DType storage = DType::F32);
CheckResult check_linear(Context& ctx, uint32_t batch, uint32_t in, uint32_t out, bool bias,
                         bool relu, uint64_t seed, DType storage = DType::F32);
CheckResult check_softmax(Context& ctx, const Shape& x, uint64_t seed, float input_scale = 10.0f,
                          DType storage = DType::F32, uint32_t length = 0, uint32_t inner = 1);
// Checks both forms: no output (x itself comes back, nothing recorded) and a copy.
CheckResult check_dropout_inference(Context& ctx, const Shape& x, uint64_t seed);

// Backward ops, each against the CPU reference's twin; one result per gradient.
// dy is random; inputs and weights as in the forward checks.
std::vector<CheckResult> check_conv2d_backward(Context& ctx, const Shape& x, const Shape& weight,
                                               const Conv2dParams& params, uint64_t seed);
std::vector<CheckResult> check_linear_backward(Context& ctx, uint32_t batch, uint32_t in, uint32_t out,
                                               uint64_t seed);
CheckResult check_relu_backward(Context& ctx, const Shape& x, uint64_t seed);
// With relu_input, the fused ReLU backward too (against the reference's two ops).
CheckResult check_lrn_backward(Context& ctx, const Shape& x, const LrnParams& params, uint64_t seed,
                               float input_scale = 1.0f, bool relu_input = false);
CheckResult check_max_pool_backward(Context& ctx, const Shape& x, const MaxPoolParams& params, uint64_t seed);
// Training dropout forward and backward (exact_match: the GPU kept exactly the CPU's elements).
std::vector<CheckResult> check_dropout(Context& ctx, const Shape& x, float p, uint32_t step, uint64_t seed);
// dlogits, and the per-row losses (exact_match: the same rows counted correct).
std::vector<CheckResult> check_softmax_cross_entropy(Context& ctx, uint32_t batch, uint32_t classes,
                                                     uint64_t seed);
// Updated weights and momentum after one step from random w, v, g.
std::vector<CheckResult> check_sgd(Context& ctx, uint32_t count, const SgdParams& params, uint64_t seed);

// Every backward op (and dropout and the loss) on each layer of alexnet-fashion (batch n: it
// trains at 128) and of alexnet2012 (it trains at 128 too; 32 here already takes minutes),
// at the batch sizes where sums over the batch grow long.
// `progress`, when given, sees each result as it is made.
using Progress = std::function<void(const CheckResult&)>;
std::vector<CheckResult> check_fashion_backward(Context& ctx, uint32_t n, uint64_t seed, const Progress& progress = {});
std::vector<CheckResult> check_alexnet2012_backward(Context& ctx, uint32_t n, uint64_t seed,
                                                    const Progress& progress = {});

// One check per op on AlexNet's own layer shapes (batch 1), the forward ops again with fp16
// storage where the device has 16-bit storage buffers, and the backward ops at
// alexnet-fashion's training batch of 128: what samples/info runs. With `full`, also every
// backward op of alexnet2012 at batch 32 and of alexnet-fashion at batch 128 (minutes: the
// CPU reference is plain loops), where a driver's own limits on long loops or large bindings
// would show.
std::vector<CheckResult> self_check(Context& ctx, uint64_t seed, bool full = false, const Progress& progress = {});

}  // namespace vkalex
VKALEX_PUBLIC_END
