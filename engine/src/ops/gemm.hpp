// Internal: gemm.comp and the patch-matrix kernels behind the convolution and linear ".gemm"
// variants.
#pragma once

#include <cstdint>

#include "ops/op_common.hpp"

namespace vkalex::detail {

// C[m, n] (op)= sum over k of A[m, k] * B[k, n]; strides and offsets in elements. The
// product repeats over z1 < Z1 (groups) and z2 < Z2 (images), each shifting A, B, C by their
// z strides, and each sums IB inner products (A and B shifted by their ib strides).
struct Gemm {
  const char* shader = "gemm";  // or "gemm_texel": vec4 loads through texel buffers
  const Tensor *a = nullptr, *b = nullptr, *bias = nullptr, *c = nullptr;
  uint64_t a_bytes = 0, a_size = 0, b_bytes = 0, b_size = 0, c_bytes = 0, c_size = 0;  // binding ranges (0: whole)
  uint32_t M = 0, N = 0, K = 0;
  uint32_t a_off = 0, b_off = 0, c_off = 0, bias_off = 0;
  uint32_t a_ms = 0, a_ks = 0, b_ks = 0, b_ns = 0, c_ms = 0, c_ns = 1;
  uint32_t Z1 = 1, a_z1 = 0, b_z1 = 0, c_z1 = 0, bias_z1 = 0;
  uint32_t Z2 = 1, a_z2 = 0, b_z2 = 0, c_z2 = 0;
  uint32_t IB = 1, a_ib = 0, b_ib = 0;
  bool bias_per_m = false, bias_per_n = false, relu = false, accumulate = false;
};

// Whether `shader` (a variant's, from kernel_shader) is gemm.comp or gemm_texel.comp.
bool is_gemm(const char* shader);

// Records one gemm.comp dispatch; picks the tile and the vectorised load paths the strides
// allow. `label` names the op in timings and errors.
void record_gemm(Recorder& rec, const char* label, const Gemm& g);

// The patch matrix of a convolution: [images, groups, OH * OW, row] floats per image, each
// row of C/G * KH * KW taps padded to a multiple of 4.
struct Patches {
  uint32_t taps = 0, row = 0, pixels = 0;  // taps per row, floats per row, rows per group
  uint64_t image_floats() const;
};
Patches conv_patches(const Shape& x, const Shape& w, const Shape& y, uint32_t groups);
// Images per chunk of the patch matrix: its workspace stays within a bound (and one binding).
uint32_t patch_chunk(const DeviceInfo& dev, const Patches& pm, uint32_t images);
// im2col.comp for images [n0, n0 + count) of x into col (which holds at least count images).
void record_im2col(Recorder& rec, const char* label, const Tensor& x, uint32_t n0, uint32_t count,
                   const Shape& w, const Shape& y, const Conv2dParams& params, const Patches& pm, const Tensor& col);
// col2im.comp: dx images [n0, n0 + count) from dcol.
void record_col2im(Recorder& rec, const char* label, const Tensor& dcol, const Tensor& dx, uint32_t n0,
                   uint32_t count, const Shape& w, const Shape& y, const Conv2dParams& params, const Patches& pm);

}  // namespace vkalex::detail
