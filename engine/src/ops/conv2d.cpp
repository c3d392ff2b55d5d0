// Host side of conv2d_forward.comp, conv2d_forward_wide.comp and im2col + gemm.comp (the
// registry chooses).
#include <string>

#include "ops/gemm.hpp"

namespace vkalex::ops {

void conv2d(Recorder& rec, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y,
            const Conv2dParams& params) {
  using namespace detail;
  const char* op = "conv2d";
  const DType ft = float_type(op, x);
  check_tensor(op, "input", x, x.shape(), ft);
  check_tensor(op, "weight", w, w.shape(), ft);
  if (bias) check_tensor(op, "bias", *bias, bias->shape(), ft);
  const Shape out = conv2d_output_shape(x.shape(), w.shape(), bias ? &bias->shape() : nullptr, params);
  check_tensor(op, "output", y, out, ft);
  check_no_alias(op, x, y);
  check_no_alias(op, w, y);

  struct {
    uint32_t N, C, H, W, K, OH, OW, KH, KW, SH, SW, PH, PW, G, flags;
  } push{0, x.shape()[1], x.shape()[2], x.shape()[3], out[1], out[2], out[3], w.shape()[2],
         w.shape()[3], params.stride_h, params.stride_w, params.pad_h, params.pad_w, params.groups,
         (bias ? 1u : 0u) | (params.relu ? 2u : 0u)};

  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  check_trip_count(dev, op, uint64_t(push.C / params.groups) * (1 + push.KH * (1 + uint64_t(push.KW))),
                   "the sum over input channels and taps");
  const char* shader = kernel_shader(dev, op, x.shape(), w.shape(), params.stride_w);
  const uint64_t x_item = x.bytes() / x.shape()[0], y_item = y.bytes() / out[0];
  if (is_gemm(shader)) {
    // Per group g and image: y[k, p] = sum over taps r of w[k, r] * col[p, r] (+ bias, ReLU).
    const Patches pm = conv_patches(x.shape(), w.shape(), out, params.groups);
    const uint32_t kpg = out[1] / params.groups;
    // Where the product takes vec4 (not gemm_shared): the patch matrix in panels of the
    // product's columns (BMODE 3: one contiguous stretch per step along k, where rows had each
    // lane's columns a row apart; alexnet2012's conv2 alone at batch 32 took a median 685
    // against 718 ms on lavapipe, 4 alternated rounds), and the weights' rows padded with
    // zeros to the patch rows' length where the taps are not a multiple of 4 (zeros times
    // zeros past the taps).
    const bool panels = std::string(shader) != "gemm_shared";
    Tensor wpad;
    const Tensor* a = &w;
    uint32_t a_row = pm.taps;
    if (panels && pm.row != pm.taps) {
      wpad = record_pad_rows(rec, op, w, 0, 0, out[1], pm.taps, pm.taps);
      a = &wpad;
      a_row = pm.row;
    }
    auto product = [&](const PatchPiece& q) {
      Gemm g;
      g.shader = shader;
      g.a = a;
      g.b_size = q.floats(pm) * dtype_size(ft);  // B is set when the workspace is
      g.c = &y;
      g.bias = bias;
      g.c_bytes = q.b0 * y_item;
      g.c_size = q.bound * y_item;
      g.M = kpg, g.N = q.pixels, g.K = panels ? pm.row : pm.taps;
      g.c_off = static_cast<uint32_t>((q.n0 - q.b0) * y_item / dtype_size(ft) + q.p0);
      g.a_ms = a_row, g.a_ks = 1, g.c_ms = pm.pixels, g.c_ns = 1;
      if (q.panel) {
        g.b_panel = q.panel, g.b_ks = pm.row / 4;
      } else {
        g.b_ks = 1, g.b_ns = pm.row;
      }
      g.Z1 = params.groups, g.a_z1 = kpg * a_row, g.b_z1 = q.padded_pixels() * pm.row, g.c_z1 = kpg * pm.pixels;
      g.bias_z1 = kpg;
      g.Z2 = q.count, g.b_z2 = params.groups * g.b_z1, g.c_z2 = out[1] * pm.pixels;
      g.bias_per_m = bias != nullptr;
      g.relu = params.relu;
      return g;
    };
    auto pieces = patch_pieces(dev, op, pm, out[0], x_item, y_item);
    if (panels) {
      for (PatchPiece& q : pieces) {
        q.panel = gemm_columns(dev, product(q));  // the columns its tile spans in rows
        // Pieces are cut to fit a binding in rows; a last panel filled up past it stays in rows.
        if (q.floats(pm) * dtype_size(ft) > dev.max_storage_buffer_range) q.panel = 0;
      }
    }
    const Tensor col = patch_workspace(rec, pm, pieces, ft);
    for (const PatchPiece& q : pieces) {
      record_im2col(rec, x, q, w.shape(), out, params, pm, col, shader);
      Gemm g = product(q);
      g.b = &col;
      record_gemm(rec, op, g);
    }
    return;
  }
  const bool wide = std::string(shader).rfind("conv2d_forward_wide", 0) == 0;
  const ConvTile tile = wide ? wide_conv_tile(dev, out[1] / params.groups, out[3]) : conv_tile(out[1] / params.groups, out[3]);
  const uint64_t tiles = uint64_t(params.groups) * ((out[1] / params.groups + tile.channels - 1) / tile.channels) *
                         ((out[3] + tile.pixels - 1) / tile.pixels);
  for (auto [n0, n1] : item_ranges(dev, op, out[0], {x_item, y_item})) {
    push.N = n1 - n0;
    Dispatch d;
    d.shader = shader;
    d.label = op;
    d.specialization = {wg, tile.channels, tile.pixels};
    if (wide) {
      d.specialization.push_back(push.KW);
      d.specialization.push_back(push.SW);
    }
    d.bindings = {{&x, Use::Read, n0 * x_item, push.N * x_item, texel_loads(shader)},
                  {&w, Use::Read, 0, 0, texel_loads(shader)},
                  {bias ? bias : &w, bias ? Use::Read : Use::Unused},
                  {&y, Use::Write, n0 * y_item, push.N * y_item}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * tiles * push.OH, wg);
    record_dispatch(rec, d);
  }
}

}  // namespace vkalex::ops
