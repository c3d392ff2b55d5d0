// Host side of conv2d_backward_data.comp (and its wide variant), conv2d_backward_weight.comp,
// their gemm.comp variants (through the patch matrix) and bias_backward.comp.
#include <algorithm>
#include <string>

#include "ops/gemm.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

namespace {
struct ConvPush {
  uint32_t N, C, H, W, K, OH, OW, KH, KW, SH, SW, PH, PW, G;
};
// conv2d_backward_weight.comp's: the convolution, then how its rows are cut into slices.
struct ConvWeightPush {
  ConvPush conv;
  uint32_t R, S, s_base;
};
ConvPush conv_push(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  return {x[0], x[1], x[2], x[3], y[1], y[2], y[3], w[2], w[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.groups};
}
}  // namespace

void conv2d_backward_data(Recorder& rec, const Tensor& dy, const Tensor& w, const Tensor& dx,
                          const Conv2dParams& params) {
  using namespace detail;
  const char* op = "conv2d_backward_data";
  check_tensor(op, "dx", dx, dx.shape());
  check_tensor(op, "weight", w, w.shape());
  const Shape ys = conv2d_output_shape(dx.shape(), w.shape(), nullptr, params);
  check_tensor(op, "dy", dy, ys);
  check_no_alias(op, dy, dx);
  ConvPush push = conv_push(dx.shape(), w.shape(), ys, params);
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  check_trip_count(dev, op, uint64_t(push.K / params.groups) * (1 + push.KH * (1 + uint64_t(push.KW))),
                   "the sum over output channels and taps");
  const uint32_t cpg = push.C / params.groups;
  // Stride 1 in both directions for the wide variant (the registry sees the horizontal one).
  const uint32_t stride = params.stride_h == 1 ? params.stride_w : 0;
  const char* shader = kernel_shader(dev, op, dx.shape(), w.shape(), stride);
  if (is_gemm(shader)) {
    // Per group and image: dcol[p, r] = sum over k of dy[k, p] * w[k, r]; then col2im.
    const Patches pm = conv_patches(dx.shape(), w.shape(), ys, params.groups);
    const uint32_t kpg = push.K / params.groups;
    const uint64_t x_item = dx.bytes() / push.N, y_item = dy.bytes() / push.N;
    const auto pieces = patch_pieces(dev, op, pm, ys[0], x_item, y_item);
    const Tensor dcol = patch_workspace(rec, pm, pieces);
    Tensor dyp;  // dy with planes padded to a multiple of 4 pixels, where they are not
    uint32_t dyp_b0 = UINT32_MAX;
    for (const PatchPiece& q : pieces) {
      Gemm g;
      g.shader = shader;
      const uint32_t plane = bind_planes(rec, op, dy, q, push.K, pm.pixels, g, dyp, dyp_b0);
      g.b = &w;
      g.c = &dcol;
      g.c_size = q.floats(pm) * 4;
      g.M = q.pixels, g.N = pm.taps, g.K = kpg;
      g.a_ms = 1, g.a_ks = plane, g.b_ks = pm.taps, g.b_ns = 1, g.c_ms = pm.row, g.c_ns = 1;
      g.Z1 = params.groups, g.a_z1 = kpg * plane, g.b_z1 = kpg * pm.taps, g.c_z1 = q.pixels * pm.row;
      g.Z2 = q.count, g.a_z2 = push.K * plane, g.c_z2 = params.groups * q.pixels * pm.row;
      record_gemm(rec, op, g);
      record_col2im(rec, dcol, dx, q, w.shape(), ys, params, pm);
    }
    return;
  }
  const bool wide = std::string(shader).rfind("conv2d_backward_data_wide", 0) == 0;
  const ConvTile tile = wide ? wide_conv_tile(dev, cpg, push.W) : conv_tile(cpg, push.W);
  const uint64_t tiles =
      uint64_t(params.groups) * ((cpg + tile.channels - 1) / tile.channels) * ((push.W + tile.pixels - 1) / tile.pixels);
  const uint64_t x_item = dx.bytes() / push.N, y_item = dy.bytes() / push.N;
  for (auto [n0, n1] : item_ranges(dev, op, ys[0], {x_item, y_item})) {
    push.N = n1 - n0;
    Dispatch d;
    d.shader = shader;
    d.label = op;
    d.specialization = {wg, tile.channels, tile.pixels,
                        wide ? push.KW : params.stride_h == 1 && params.stride_w == 1 ? 1u : 0u};
    d.bindings = {{&dy, Use::Read, n0 * y_item, push.N * y_item, texel_loads(shader)},
                  {&w, Use::Read, 0, 0, texel_loads(shader)},
                  {&dx, Use::Write, n0 * x_item, push.N * x_item}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, uint64_t(push.N) * tiles * push.H, wg);
    record_dispatch(rec, d);
  }
}

void conv2d_backward_weight(Recorder& rec, const Tensor& dy, const Tensor& x, const Tensor& dw,
                            const Conv2dParams& params) {
  using namespace detail;
  const char* op = "conv2d_backward_weight";
  check_tensor(op, "x", x, x.shape());
  check_tensor(op, "dweight", dw, dw.shape());
  const Shape ys = conv2d_output_shape(x.shape(), dw.shape(), nullptr, params);
  check_tensor(op, "dy", dy, ys);
  check_no_alias(op, dy, dw);
  check_no_alias(op, x, dw);
  const DeviceInfo& dev = recorder_device(rec);
  const ConvPush conv = conv_push(x.shape(), dw.shape(), ys, params);
  if (const char* shader = kernel_shader(dev, op, x.shape(), dw.shape(), params.stride_w); is_gemm(shader)) {
    // Per group: dw[k, r] = sum over images and pixels p of dy[k, p] * col[p, r], a chunk of
    // images at a time, each adding to what the chunks before it left.
    const Patches pm = conv_patches(x.shape(), dw.shape(), ys, params.groups);
    const uint32_t kpg = conv.K / params.groups;
    const uint64_t x_item = x.bytes() / conv.N, y_item = dy.bytes() / conv.N;
    // Each invocation sums images x pixels terms: the loop budget bounds the images per piece,
    // and where one image's pixels exceed it, the pixels.
    const uint64_t budget = loop_budget(dev);
    auto trips = [&](uint64_t terms) { return gemm_trip_count(dev, shader, terms) + 1; };
    uint32_t pix_per = pm.pixels;
    while (trips(pix_per) + 1 > budget && pix_per > 1) pix_per = (pix_per + 1) / 2;
    const uint32_t by_budget =
        pix_per < pm.pixels ? 1u : static_cast<uint32_t>(std::max<uint64_t>(1, (budget - 1) / trips(pm.pixels)));
    const auto pieces = patch_pieces(dev, op, pm, conv.N, x_item, y_item, by_budget, pix_per);
    const Tensor col = patch_workspace(rec, pm, pieces);
    Tensor dyp;  // dy with planes padded to a multiple of 4 pixels, where they are not
    uint32_t dyp_b0 = UINT32_MAX;
    // The product for piece q's images [i, i + count) into slice `slice` of `out`.
    auto product = [&](const PatchPiece& q, const Tensor& out, uint32_t i, uint32_t count, uint32_t slices,
                       uint32_t slice) {
      Gemm g;
      g.shader = shader;
      const uint32_t plane = bind_planes(rec, op, dy, q, conv.K, pm.pixels, g, dyp, dyp_b0);
      g.b = &col;
      g.c = &out;
      g.M = kpg, g.N = pm.taps, g.K = q.pixels;
      g.a_ms = plane, g.a_ks = 1, g.b_ks = pm.row, g.b_ns = 1, g.c_ms = pm.taps, g.c_ns = 1;
      g.Z1 = params.groups, g.a_z1 = kpg * plane, g.b_z1 = q.pixels * pm.row, g.c_z1 = kpg * pm.taps;
      g.IB = count, g.a_ib = conv.K * plane, g.b_ib = params.groups * q.pixels * pm.row;
      g.a_off += i * g.a_ib;
      g.Z2 = slices, g.a_z2 = count * g.a_ib, g.b_z2 = count * g.b_ib, g.c_z2 = static_cast<uint32_t>(dw.numel());
      g.b_off = i * g.b_ib;
      g.c_off = slice * g.c_z2;
      return g;
    };
    // Split-K over the images: where one piece's product is too few workgroups to fill the
    // device (alexnet-fashion's conv1: one), each slice of `per` images sums into a partial
    // weight gradient of its own, and a last pass adds the slices in order. Every piece cuts
    // its images the same way, so later (smaller) pieces add to the slices the first wrote.
    const uint64_t want = dev.type == DeviceType::Cpu ? 64 : 512;
    // (product() binds dy's planes for the piece: where they need a padded copy, this records
    // the copy that piece 0's products then reuse.)
    const uint64_t tiles = gemm_workgroups(dev, product(pieces[0], dw, 0, 1, 1, 0));
    const uint32_t count0 = pieces[0].count;
    uint64_t split = std::clamp<uint64_t>((want + tiles - 1) / tiles, 1, count0);
    const uint64_t max_slices = std::max<uint64_t>(
        1, std::min<uint64_t>(uint64_t(64) << 20, dev.max_storage_buffer_range) / dw.bytes());
    split = std::min(split, max_slices);
    const uint32_t per = static_cast<uint32_t>((count0 + split - 1) / split);
    const uint32_t slices = (count0 + per - 1) / per;
    const Tensor out = slices == 1 ? dw : recorder_scratch(rec, Shape{slices, static_cast<uint32_t>(dw.numel())});
    bool first = true;
    for (const PatchPiece& q : pieces) {
      record_im2col(rec, x, q, dw.shape(), ys, params, pm, col, shader);
      const uint32_t full = q.count / per, rest = q.count % per;
      if (full > 0) {
        Gemm g = product(q, out, 0, per, full, 0);
        g.accumulate = !first;
        record_gemm(rec, op, g);
      }
      if (rest > 0) {
        Gemm g = product(q, out, full * per, rest, 1, full);
        g.accumulate = !first;
        record_gemm(rec, op, g);
      }
      first = false;
    }
    if (slices > 1) record_sum_slices(rec, op, out, slices, dw);
    return;
  }
  const uint32_t kpg = conv.K / params.groups, cpg = conv.C / params.groups;
  const uint32_t kt = std::min<uint32_t>(8, kpg), ct = std::min<uint32_t>(4, cpg);
  const uint64_t per_slice = uint64_t(params.groups) * ((kpg + kt - 1) / kt) * ((cpg + ct - 1) / ct) * conv.KH * conv.KW;
  // Each invocation sums R output rows (over images and oy), about R * (OW + 1) loop
  // iterations: the loop budget bounds R. Below ~8192 invocations, more slices share the work
  // (at the price of a workspace of partial sums and a pass adding them).
  const uint64_t budget = loop_budget(dev);
  check_trip_count(dev, op, uint64_t(conv.OW) + 2, "one output row of the weight gradient");
  const uint64_t rows = uint64_t(conv.N) * conv.OH;
  uint64_t R = std::max<uint64_t>(1, (budget - 1) / (uint64_t(conv.OW) + 1));
  constexpr uint64_t kTargetInvocations = 8192;
  if (per_slice * ((rows + R - 1) / R) < kTargetInvocations) {
    const uint64_t want_slices = (kTargetInvocations + per_slice - 1) / per_slice;
    R = std::max<uint64_t>(1, std::min(R, (rows + want_slices - 1) / want_slices));
  }
  // Never more partial sums than one binding holds.
  const uint64_t max_slices = std::max<uint64_t>(1, dev.max_storage_buffer_range / dw.bytes());
  const uint64_t x_item = x.bytes() / conv.N, y_item = dy.bytes() / conv.N;
  const auto ranges = item_ranges(dev, op, conv.N, {x_item, y_item});
  auto slices_of = [&](uint32_t images) { return (uint64_t(images) * conv.OH + R - 1) / R; };
  uint64_t total = 0;
  for (auto [n0, n1] : ranges) total += slices_of(n1 - n0);
  if (total > max_slices) {
    // Fewer, longer slices, as long as the loop budget allows.
    R = std::max(R, (rows + max_slices - 1) / max_slices);
    total = 0;
    for (auto [n0, n1] : ranges) total += slices_of(n1 - n0);
    if (total > max_slices || R * (uint64_t(conv.OW) + 1) + 1 > budget) {
      throw Error(std::string(op) + ": the batch of " + std::to_string(conv.N) +
                  " needs more partial sums of the weight gradient than one binding holds; use a smaller batch");
    }
  }
  const Tensor out = total == 1 ? dw : recorder_scratch(rec, Shape{uint32_t(total), static_cast<uint32_t>(dw.numel())});
  uint32_t s_base = 0;
  for (auto [n0, n1] : ranges) {
    ConvWeightPush push{conv, static_cast<uint32_t>(R), static_cast<uint32_t>(slices_of(n1 - n0)), s_base};
    push.conv.N = n1 - n0;
    Dispatch d;
    d.shader = "conv2d_backward_weight";
    d.label = op;
    const uint64_t threads = per_slice * push.S;
    // Few invocations, each summing many rows: smaller workgroups spread them over more cores.
    uint32_t wg = elementwise_workgroup(dev);
    while (wg > 8 && threads < 16ull * wg) wg /= 2;
    d.specialization = {wg, kt, ct};
    d.bindings = {{&dy, Use::Read, n0 * y_item, push.conv.N * y_item},
                  {&x, Use::Read, n0 * x_item, push.conv.N * x_item},
                  {&out, Use::Write}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, threads, wg);
    record_dispatch(rec, d);
    s_base += push.S;
  }
  if (total > 1) record_sum_slices(rec, op, out, static_cast<uint32_t>(total), dw);
}

void bias_backward(Recorder& rec, const Tensor& dy, const Tensor& db) {
  using namespace detail;
  const char* op = "bias_backward";
  check_tensor(op, "dy", dy, dy.shape());
  if (dy.shape().rank() < 2) throw Error("bias_backward: dy must have rank 2 or more, got " + dy.shape().str());
  check_tensor(op, "dbias", db, Shape{dy.shape()[1]});
  check_no_alias(op, dy, db);
  const uint32_t N = dy.shape()[0], C = dy.shape()[1];
  const uint32_t S = static_cast<uint32_t>(dy.numel() / std::max<uint64_t>(1, uint64_t(N) * C));
  const DeviceInfo& dev = recorder_device(rec);
  uint32_t wg = 1;
  while (wg * 2 <= std::min<uint32_t>(256, dev.max_workgroup_invocations) && wg < S) wg *= 2;
  // Each invocation loops over images and its share of a plane: images per dispatch are
  // bounded by the loop budget; later dispatches add to what the first wrote.
  const uint64_t per_image = (uint64_t(S) + wg - 1) / wg + 1;
  check_trip_count(dev, op, per_image + 1, "one image's plane");
  const uint64_t max_images = std::max<uint64_t>(1, (loop_budget(dev) - 1) / per_image);
  const uint64_t item = dy.bytes() / std::max<uint32_t>(1, N);
  bool first = true;
  for (auto [n0, n1] : item_ranges(dev, op, N, {item}, static_cast<uint32_t>(std::min<uint64_t>(max_images, UINT32_MAX)))) {
    struct {
      uint32_t N, C, S, accumulate;
    } push{n1 - n0, C, S, first ? 0u : 1u};
    Dispatch d;
    d.shader = kernel_shader(dev, op, dy.shape(), Shape{});
    d.label = op;
    d.specialization = {wg};
    d.bindings = {{&dy, Use::Read, n0 * item, push.N * item, texel_loads(d.shader)},
                  {&db, first ? Use::Write : Use::ReadWrite}};
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for(dev, C);
    record_dispatch(rec, d);
    first = false;
  }
}

}  // namespace vkalex::ops
