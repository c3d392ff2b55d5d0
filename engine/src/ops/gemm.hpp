// Internal: gemm.comp and the patch-matrix kernels behind the convolution and linear ".gemm"
// variants.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_common.hpp"

namespace vkalex::detail {

// C[m, n] (op)= sum over k of A[m, k] * B[k, n]; strides and offsets in elements. The
// product repeats over z1 < Z1 (groups) and z2 < Z2 (images), each shifting A, B, C by their
// z strides, and each sums IB inner products (A and B shifted by their ib strides).
struct Gemm {
  const char* shader = "gemm";  // "gemm_texel": vec4 loads through texel buffers; "gemm_shared": shared-memory tiles
  const Tensor *a = nullptr, *b = nullptr, *bias = nullptr, *c = nullptr;
  uint64_t a_bytes = 0, a_size = 0, b_bytes = 0, b_size = 0, c_bytes = 0, c_size = 0;  // binding ranges (0: whole)
  uint32_t M = 0, N = 0, K = 0;
  uint32_t a_off = 0, b_off = 0, c_off = 0, bias_off = 0;
  uint32_t a_ms = 0, a_ks = 0, b_ks = 0, b_ns = 0, c_ms = 0, c_ns = 1;
  uint32_t Z1 = 1, a_z1 = 0, b_z1 = 0, c_z1 = 0, bias_z1 = 0;
  uint32_t Z2 = 1, a_z2 = 0, b_z2 = 0, c_z2 = 0;
  uint32_t IB = 1, a_ib = 0, b_ib = 0;
  bool bias_per_m = false, bias_per_n = false, relu = false, accumulate = false;
  // B in panels of this many columns (gemm.comp's BMODE 3; b_ks then counts a panel's vec4
  // along k, K must be a multiple of 4): the workgroup must span as many (gemm_columns).
  uint32_t b_panel = 0;
};

// Whether `shader` (a variant's, from kernel_shader) is gemm.comp, gemm_texel.comp or
// gemm_shared.comp (the GPU family: shared-memory tiles).
bool is_gemm(const char* shader);

// Loop iterations one invocation of `shader` runs for a product summing K terms (per inner
// product of IB): what the loop budget is checked against.
uint64_t gemm_trip_count(const DeviceInfo& dev, const char* shader, uint64_t K);

// A copy of rows x cols floats of x (row stride ld, from byte `offset` within a binding of
// `size` bytes, 0: to the end) in rows padded with zeros to a multiple of 4 floats, so that
// gemm.comp can load them as vec4 (pad_rows.comp). A workspace of the recording.
Tensor record_pad_rows(Recorder& rec, const char* label, const Tensor& x, uint64_t offset, uint64_t size,
                       uint32_t rows, uint32_t cols, uint32_t ld);

// The workgroups record_gemm dispatches for `g` (its parallelism), and the columns one of them
// spans (0 for gemm_shared, which takes no panels).
uint64_t gemm_workgroups(const DeviceInfo& dev, const Gemm& g);
uint32_t gemm_columns(const DeviceInfo& dev, const Gemm& g);

// Records one gemm.comp dispatch; picks the tile and the vectorised load paths the strides
// allow. `label` names the op in timings and errors.
void record_gemm(Recorder& rec, const char* label, const Gemm& g);

// The patch matrix of a convolution: per image and group, one row per output pixel of the
// C/G * KH * KW taps it reads, padded to a multiple of 4 floats.
struct Patches {
  uint32_t taps = 0, row = 0, pixels = 0, groups = 1;  // taps per row, floats per row, pixels per image
};
Patches conv_patches(const Shape& x, const Shape& w, const Shape& y, uint32_t groups);

// A piece of the patch matrix built at a time: images [n0, n0 + count), pixels [p0, p0 +
// pixels) of each, laid out [count, groups, pixels, row]. The images' tensors are bound from
// image b0 (b0 <= n0; bound images [b0, b0 + bound)), at an offset the device allows.
// `panel`: rows, or panels of that many pixels (im2col.glsl's PANEL) for a BMODE 3 product.
struct PatchPiece {
  uint32_t n0 = 0, count = 0, p0 = 0, pixels = 0, b0 = 0, bound = 0, panel = 0;
  uint32_t padded_pixels() const { return panel ? (pixels + panel - 1) / panel * panel : pixels; }
  uint64_t floats(const Patches& pm) const { return uint64_t(count) * pm.groups * padded_pixels() * pm.row; }
};
// The pieces that cover a batch: whole images where a chunk of them fits a bounded workspace
// (and one binding), with images bound at aligned offsets; else pixel ranges of one image. At
// most max_images images and max_pixels pixels per piece.
std::vector<PatchPiece> patch_pieces(const DeviceInfo& dev, const char* op, const Patches& pm, uint32_t images,
                                     uint64_t x_item, uint64_t y_item, uint32_t max_images = UINT32_MAX,
                                     uint32_t max_pixels = UINT32_MAX);
// dy of the bound images of piece q as A of a product: its planes of `pixels` floats padded to
// a multiple of 4 (a copy) where they are not already, so that A loads as vec4. Sets a, its
// binding, a_off (for q's images and first pixel) and returns the plane stride.
struct Gemm;
uint32_t bind_planes(Recorder& rec, const char* label, const Tensor& dy, const PatchPiece& q, uint32_t channels,
                     uint32_t pixels, Gemm& g, Tensor& padded, uint32_t& padded_b0);
// A workspace of `dtype` elements for the largest of the pieces (for the recording's life).
Tensor patch_workspace(Recorder& rec, const Patches& pm, const std::vector<PatchPiece>& pieces,
                       DType dtype = DType::F32);
// im2col.comp: the piece of x's patch matrix into col. For the GEMM variant `gemm_shader`'s
// product: with gemm_texel, x is read through a scalar texel buffer (im2col_texel.comp) where
// the device's are large enough.
void record_im2col(Recorder& rec, const Tensor& x, const PatchPiece& q, const Shape& w, const Shape& y,
                   const Conv2dParams& params, const Patches& pm, const Tensor& col, const char* gemm_shader);
// col2im.comp: dx of the piece's images from its part of the patch matrix's gradient (the
// first pixel range writes dx, later ones add to it).
void record_col2im(Recorder& rec, const Tensor& dcol, const Tensor& dx, const PatchPiece& q, const Shape& w,
                   const Shape& y, const Conv2dParams& params, const Patches& pm);

}  // namespace vkalex::detail
