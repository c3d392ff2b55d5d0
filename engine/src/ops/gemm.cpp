// Host side of gemm.comp, im2col.comp and col2im.comp.
#include "ops/gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "vkalex/error.hpp"

namespace vkalex::detail {

namespace {

struct GemmPush {
  uint32_t M, N, K, a_off, b_off, c_off, bias_off, a_ms, a_ks, b_ks, b_ns, c_ms, c_ns;
  uint32_t Z1, a_z1, b_z1, c_z1, bias_z1, a_z2, b_z2, c_z2, IB, a_ib, b_ib, flags;
};

bool all_multiples_of_4(std::initializer_list<uint32_t> v) {
  return std::all_of(v.begin(), v.end(), [](uint32_t x) { return x % 4 == 0; });
}

struct Tile {
  uint32_t rm, rn;
};

// Tall tiles where the lanes share A's loads: per step a lane loads RM / SUB values of A and
// RN of B for RM x RN multiply-adds. 32 x 8 was the fastest of 16, 24, 32 x 4, 8 on
// alexnet2012's conv1-5 and fc6 at batch 32 on lavapipe in most runs (1.4-2.7x the 8 x 8 and
// 4 x 16 tiles of gemm_texel); 24 or 16 rows where they waste fewer rows past M (48: 24).
Tile shared_a_tile(uint32_t M) {
  uint32_t best = 32;
  for (uint32_t rm : {24u, 16u}) {
    if ((M + rm - 1) / rm * rm < (M + best - 1) / best * best) best = rm;
  }
  return {best, 8};
}

// Register tile per invocation (VKALEX_GEMM_TILE=RMxRN overrides it, for measuring).
// `shared_a`: the lanes share A's loads (gemm_texel_shuffle), so a row of the tile costs a
// shuffle rather than a load and tall tiles pay.
Tile gemm_tile(const Gemm& g, uint32_t bmode, bool shared_a, uint32_t sub) {
  // 8 x 8; 4 x 16 for long rows along k and wide n (alexnet2012's conv1 and conv2 forward,
  // 3025 and 729 pixels: 7-20% faster on lavapipe in two side-by-side runs; conv3-5's 169
  // pixels ran 20-26% slower with it).
  Tile t{8, 8};
  if (bmode == 2 && g.N >= 640) t = {4, 16};
  if (shared_a) t = shared_a_tile(g.M);
  if (const char* e = std::getenv("VKALEX_GEMM_TILE"); e && *e) {
    unsigned rm = 0, rn = 0;
    char end = 0;
    if (std::sscanf(e, "%ux%u%c", &rm, &rn, &end) != 2 || rm < 1 || rm > 32 || rn < 1 || rn > 16) {
      throw Error(std::string("VKALEX_GEMM_TILE=\"") + e + "\": expected RMxRN, RM from 1 to 32, RN from 1 to 16 (8x8, 4x16)");
    }
    t = {rm, rn};
  }
  if (g.M < t.rm) {  // few rows (a batch of one): wider along n instead
    t.rn = std::min<uint32_t>(16, t.rn * t.rm / std::max<uint32_t>(1, g.M));
    t.rm = g.M;
  }
  // Sharing A, the workgroup is always a whole subgroup: for few columns (a weight gradient's
  // 25 taps) fewer per lane, so that a subgroup of 8 spans 32 columns rather than 64.
  if (shared_a) t.rn = std::min(t.rn, std::max<uint32_t>(1, (g.N + sub - 1) / sub));
  if (bmode == 1) t.rn = std::max<uint32_t>(4, t.rn / 4 * 4);
  return t;
}

}  // namespace

bool is_gemm(const char* shader) {
  const std::string s = shader;
  return s == "gemm" || s == "gemm_texel" || s == "gemm_shared";
}

namespace {

// gemm_shared.comp's shape: WG invocations in WN columns, TM x TN outputs each, BK-deep steps.
struct SharedTile {
  uint32_t wg, wn, tm, tn;
  uint32_t bm() const { return wg / wn * tm; }
  uint32_t bn() const { return wn * tn; }
};
constexpr uint32_t kSharedDepth = 16;  // BK

// 16 x 16 invocations of 4 x 4 outputs (a 64 x 64 tile, 8 KiB of shared memory) where the
// device allows 256 invocations, else 8 x 16 (Vulkan guarantees 128).
SharedTile shared_tile(const DeviceInfo& dev) {
  if (dev.max_workgroup_invocations >= 256 && dev.max_workgroup_size[0] >= 256) return {256, 16, 4, 4};
  return {128, 16, 4, 4};
}

}  // namespace

uint64_t gemm_trip_count(const DeviceInfo& dev, const char* shader, uint64_t K) {
  if (std::string(shader) == "gemm_shared") {
    const SharedTile t = shared_tile(dev);
    const uint64_t loads = (kSharedDepth * t.bm() + t.wg - 1) / t.wg + (kSharedDepth * t.bn() + t.wg - 1) / t.wg;
    return (K / kSharedDepth + 1) * (kSharedDepth + loads + 2) + 1;
  }
  return K + (K + 31) / 32 + 1;
}

namespace {

void record_gemm_shared(Recorder& rec, const char* label, const Gemm& g, const GemmPush& push) {
  const DeviceInfo& dev = recorder_device(rec);
  const SharedTile t = shared_tile(dev);
  const uint64_t shared_bytes = uint64_t(kSharedDepth) * (t.bm() + t.bn()) * 4;
  if (shared_bytes > dev.max_shared_memory) {
    throw Error(std::string(label) + ": gemm_shared needs " + std::to_string(shared_bytes) +
                " bytes of shared memory, the device has " + std::to_string(dev.max_shared_memory));
  }
  Dispatch d;
  d.shader = "gemm_shared";
  d.label = label;
  d.specialization = {t.wg, t.tm, t.tn, t.wn};
  const bool bias = g.bias_per_m || g.bias_per_n;
  d.bindings = {{g.a, Use::Read, g.a_bytes, g.a_size},
                {g.b, Use::Read, g.b_bytes, g.b_size},
                bias ? Binding{g.bias, Use::Read} : Binding{g.a, Use::Unused, g.a_bytes, g.a_size},
                {g.c, g.accumulate ? Use::ReadWrite : Use::Write, g.c_bytes, g.c_size}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for(dev, gemm_workgroups(dev, g));
  record_dispatch(rec, d);
}

}  // namespace

Tensor record_pad_rows(Recorder& rec, const char* label, const Tensor& x, uint64_t offset, uint64_t size,
                       uint32_t rows, uint32_t cols, uint32_t ld) {
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t padded = (cols + 3) / 4 * 4;
  Tensor out = recorder_scratch(rec, Shape{rows, padded}, x.dtype());
  struct {
    uint32_t ROWS, COLS, LD, RP;
  } push{rows, cols, ld, padded};
  const uint32_t wg = elementwise_workgroup(dev);
  Dispatch d;
  d.shader = "pad_rows";
  d.label = label;
  d.specialization = {wg};
  d.bindings = {{&x, Use::Read, offset, size}, {&out, Use::Write}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for_threads(dev, uint64_t(rows) * padded, wg);
  record_dispatch(rec, d);
  return out;
}


namespace {

// How record_gemm runs a product on gemm.comp or gemm_texel(_shuffle).comp: the vec4 load
// paths the strides allow (see gemm.comp), the tile and the workgroup.
struct GemmShape {
  uint32_t bmode = 0, amode = 0, wg = 1, sub = 8;
  bool texel = false, shuffle = false;
  Tile t{8, 8};
  uint64_t workgroups(const Gemm& g) const {
    return uint64_t((g.M + t.rm - 1) / t.rm) * ((g.N + uint64_t(wg) * t.rn - 1) / (uint64_t(wg) * t.rn)) * g.Z1 * g.Z2;
  }
};

GemmShape gemm_shape(const DeviceInfo& dev, const Gemm& g) {
  GemmShape s;
  // Which loads may be vec4 (see gemm.comp): every offset and stride along the vector's rows
  // a multiple of 4, and rows long enough to hold the last vec4.
  if (g.b_panel) {
    if (g.K % 4 != 0 || !all_multiples_of_4({g.b_off, g.b_z1, g.b_z2, g.b_ib})) {
      throw Error("gemm: B in panels needs K and B's offsets multiples of 4");
    }
    s.bmode = 3;
  } else if (g.b_ks == 1 && g.K >= 4 && all_multiples_of_4({g.b_ns, g.b_off, g.b_z1, g.b_z2, g.b_ib})) {
    s.bmode = 2;
  } else if (g.b_ns == 1 && all_multiples_of_4({g.b_ks, g.b_off, g.b_z1, g.b_z2, g.b_ib}) &&
             (g.K == 1 || (g.N + 3) / 4 * 4 <= g.b_ks)) {
    s.bmode = 1;
  }
  // Texel views need a whole texel; a smaller operand takes the storage-buffer kernel.
  auto range = [](const Tensor* t, uint64_t off, uint64_t size) { return size ? size : t->bytes() - off; };
  s.texel = std::string(g.shader) == "gemm_texel" && range(g.a, g.a_bytes, g.a_size) >= 16 &&
            range(g.b, g.b_bytes, g.b_size) >= 16;
  // One subgroup per workgroup shares A's loads where the device has subgroup shuffles.
  s.sub = std::clamp<uint32_t>(dev.subgroup_size ? dev.subgroup_size : 8, 1, 64);
  s.shuffle = s.texel && dev.subgroup_shuffle && dev.subgroup_size == s.sub &&
              s.sub <= dev.max_workgroup_invocations && s.sub <= dev.max_workgroup_size[0];
  s.t = gemm_tile(g, s.bmode == 3 ? 2 : s.bmode, s.shuffle, s.sub);
  const bool a_offsets_4 = all_multiples_of_4({g.a_off, g.a_z1, g.a_z2, g.a_ib});
  if (s.bmode >= 2) {
    s.amode = g.a_ks == 1 && g.a_ms % 4 == 0 && a_offsets_4 ? 2 : 0;
  } else if (g.a_ms == 1 && s.t.rm % 4 == 0 && g.a_ks % 4 == 0 && a_offsets_4 && (g.K == 1 || (g.M + 3) / 4 * 4 <= g.a_ks)) {
    s.amode = 1;
  } else if (s.bmode == 1 && g.a_ks == 1 && g.K >= 4 && g.a_ms % 4 == 0 && a_offsets_4) {
    s.amode = 2;
  }
  // A workgroup is one subgroup (all of it where the lanes share A; else no wider than N).
  s.wg = s.shuffle ? s.sub : std::min<uint32_t>({s.sub, dev.max_workgroup_invocations, (g.N + s.t.rn - 1) / s.t.rn});
  s.wg = std::max<uint32_t>(1, s.wg);
  if (g.b_panel && g.b_panel != s.wg * s.t.rn) {
    throw Error("gemm: B in panels of " + std::to_string(g.b_panel) + " columns for a workgroup spanning " +
                std::to_string(s.wg * s.t.rn));
  }
  return s;
}

}  // namespace

uint64_t gemm_workgroups(const DeviceInfo& dev, const Gemm& g) {
  if (std::string(g.shader) == "gemm_shared") {
    const SharedTile t = shared_tile(dev);
    return uint64_t((g.M + t.bm() - 1) / t.bm()) * ((g.N + t.bn() - 1) / t.bn()) * g.Z1 * g.Z2;
  }
  return gemm_shape(dev, g).workgroups(g);
}

uint32_t gemm_columns(const DeviceInfo& dev, const Gemm& g) {
  if (std::string(g.shader) == "gemm_shared") return 0;
  const GemmShape s = gemm_shape(dev, g);
  return s.wg * s.t.rn;
}

void record_gemm(Recorder& rec, const char* label, const Gemm& g) {
  const DeviceInfo& dev = recorder_device(rec);
  if (g.M == 0 || g.N == 0 || g.Z1 == 0 || g.Z2 == 0) return;
  check_trip_count(dev, label, uint64_t(g.IB) * gemm_trip_count(dev, g.shader, g.K), "the sum of one matrix product");
  const GemmPush push{g.M, g.N, g.K, g.a_off, g.b_off, g.c_off, g.bias_off, g.a_ms, g.a_ks, g.b_ks, g.b_ns, g.c_ms, g.c_ns,
                      g.Z1, g.a_z1, g.b_z1, g.c_z1, g.bias_z1, g.a_z2, g.b_z2, g.c_z2, g.IB, g.a_ib, g.b_ib,
                      (g.bias_per_m ? 1u : 0u) | (g.bias_per_n ? 2u : 0u) | (g.relu ? 4u : 0u) | (g.accumulate ? 8u : 0u)};
  if (std::string(g.shader) == "gemm_shared") {  // scalar loads along any strides: no layout rules
    if (g.b_panel) throw Error("gemm_shared: B in panels is not supported");
    record_gemm_shared(rec, label, g, push);
    return;
  }
  const GemmShape gs = gemm_shape(dev, g);
  const uint32_t bmode = gs.bmode, amode = gs.amode;
  // B's columns run along k but A's rows do not start at multiples of 4 (a convolution's
  // 363 taps): a padded copy of A lets both load vec4 (the copy is small next to the product).
  if (bmode == 2 && amode == 0 && g.a_ks == 1 && g.a_ms % 4 != 0 && g.a_off == 0 && g.a_z2 == 0 && g.IB == 1 &&
      (g.Z1 == 1 || g.a_z1 == g.M * g.a_ms) && g.K == g.a_ms) {
    const Tensor padded = record_pad_rows(rec, label, *g.a, g.a_bytes, g.a_size, g.M * g.Z1, g.K, g.a_ms);
    Gemm h = g;
    h.a = &padded;
    h.a_bytes = h.a_size = 0;
    h.a_ms = padded.shape()[1];
    h.a_z1 = g.M * h.a_ms;
    record_gemm(rec, label, h);
    return;
  }
  const bool texel = gs.texel, shuffle = gs.shuffle;
  const Tile t = gs.t;
  const uint32_t wg = gs.wg;
  Dispatch d;
  d.shader = shuffle ? "gemm_texel_shuffle" : texel ? "gemm_texel" : "gemm";
  d.label = label;
  d.specialization = {wg, t.rm, t.rn, bmode, amode};
  if (shuffle) d.specialization.push_back(gs.sub);
  const bool bias = g.bias_per_m || g.bias_per_n;
  d.bindings = {{g.a, Use::Read, g.a_bytes, g.a_size},
                {g.a, amode ? Use::Read : Use::Unused, g.a_bytes, g.a_size, texel ? Texel::RGBA32F : Texel::None},
                {g.b, Use::Read, g.b_bytes, g.b_size},
                {g.b, bmode ? Use::Read : Use::Unused, g.b_bytes, g.b_size, texel ? Texel::RGBA32F : Texel::None},
                bias ? Binding{g.bias, Use::Read} : Binding{g.a, Use::Unused, g.a_bytes, g.a_size},
                {g.c, g.accumulate ? Use::ReadWrite : Use::Write, g.c_bytes, g.c_size}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for(dev, gs.workgroups(g));
  record_dispatch(rec, d);
}

Patches conv_patches(const Shape& x, const Shape& w, const Shape& y, uint32_t groups) {
  Patches pm;
  pm.taps = x[1] / groups * w[2] * w[3];
  pm.row = (pm.taps + 3) / 4 * 4;
  pm.pixels = y[2] * y[3];
  pm.groups = groups;
  return pm;
}

std::vector<PatchPiece> patch_pieces(const DeviceInfo& dev, const char* op, const Patches& pm, uint32_t images,
                                     uint64_t x_item, uint64_t y_item, uint32_t max_images, uint32_t max_pixels) {
  // 32 MiB of patches at a time: large enough that each product is thousands of tiles, small
  // enough to stay far from any binding limit. Whole images where one fits, else pixel ranges.
  const uint64_t cap = std::min<uint64_t>(uint64_t(32) << 20, dev.max_storage_buffer_range) / 4;
  const uint64_t per_pixel = uint64_t(pm.groups) * pm.row;
  uint32_t pixels = static_cast<uint32_t>(std::clamp<uint64_t>(cap / per_pixel, 1, std::min(pm.pixels, max_pixels)));
  if (pixels < pm.pixels && pixels >= 4) pixels = pixels / 4 * 4;  // pieces start at multiples of 4
  uint32_t chunk = 1;
  if (pixels == pm.pixels) {
    chunk = static_cast<uint32_t>(std::clamp<uint64_t>(cap / (per_pixel * pm.pixels), 1, std::min(images, max_images)));
  }
  std::vector<PatchPiece> out;
  for (auto [b0, b1] : item_ranges(dev, op, images, {x_item, y_item})) {
    for (uint32_t n0 = b0; n0 < b1; n0 += chunk) {
      for (uint32_t p0 = 0; p0 < pm.pixels; p0 += pixels) {
        out.push_back({n0, std::min(chunk, b1 - n0), p0, std::min(pixels, pm.pixels - p0), b0, b1 - b0});
      }
    }
  }
  return out;
}

uint32_t bind_planes(Recorder& rec, const char* label, const Tensor& dy, const PatchPiece& q, uint32_t channels,
                     uint32_t pixels, Gemm& g, Tensor& padded, uint32_t& padded_b0) {
  const uint64_t item = dy.bytes() / dy.shape()[0];
  if (pixels % 4 == 0) {
    g.a = &dy;
    g.a_bytes = q.b0 * item;
    g.a_size = q.bound * item;
    g.a_off = static_cast<uint32_t>((q.n0 - q.b0) * item / dtype_size(dy.dtype()) + q.p0);
    return pixels;
  }
  if (padded_b0 != q.b0) {  // once per bound range
    padded = record_pad_rows(rec, label, dy, q.b0 * item, q.bound * item, q.bound * channels, pixels, pixels);
    padded_b0 = q.b0;
  }
  const uint32_t stride = padded.shape()[1];
  g.a = &padded;
  g.a_bytes = g.a_size = 0;
  g.a_off = (q.n0 - q.b0) * channels * stride + q.p0;
  return stride;
}

Tensor patch_workspace(Recorder& rec, const Patches& pm, const std::vector<PatchPiece>& pieces, DType dtype) {
  uint64_t floats = 0;
  for (const PatchPiece& q : pieces) floats = std::max(floats, q.floats(pm));
  if (floats > UINT32_MAX) throw Error("the patch matrix of one piece exceeds 2^32 floats");
  return recorder_scratch(rec, Shape{static_cast<uint32_t>(floats)}, dtype);
}

namespace {
struct PatchPush {
  uint32_t N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, G, RP, P0, PC, accumulate, N0, PANEL;
};
PatchPush patch_push(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p, const PatchPiece& q,
                     const Patches& pm) {
  return {q.count, x[1], x[2], x[3], y[2], y[3], w[2], w[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.groups,
          pm.row, q.p0, q.pixels, q.p0 > 0 ? 1u : 0u, q.n0 - q.b0, q.panel};
}
}  // namespace

void record_im2col(Recorder& rec, const Tensor& x, const PatchPiece& q, const Shape& w, const Shape& y,
                   const Conv2dParams& params, const Patches& pm, const Tensor& col, const char* gemm_shader) {
  const DeviceInfo& dev = recorder_device(rec);
  const bool texel = std::string(gemm_shader) == "gemm_texel" && scalar_texels_cover_bindings(dev);
  const PatchPush push = patch_push(x.shape(), w, y, params, q, pm);
  const uint64_t x_item = x.bytes() / x.shape()[0];
  const uint32_t wg = elementwise_workgroup(dev);
  Dispatch d;
  d.shader = texel ? "im2col_texel" : "im2col";
  d.label = "im2col";  // timed apart from the product
  d.specialization = {wg};
  d.bindings = {{&x, Use::Read, q.b0 * x_item, q.bound * x_item, texel_loads(d.shader)}, {&col, Use::Write, 0, q.floats(pm) * dtype_size(col.dtype())}};
  d.push = &push;
  d.push_bytes = sizeof push;
  constexpr uint32_t kSegment = 64;  // taps per invocation (im2col.comp's SEG)
  d.groups = grid_for_threads(dev, uint64_t(q.count) * pm.groups * q.pixels * ((pm.row + kSegment - 1) / kSegment), wg);
  record_dispatch(rec, d);
}

void record_col2im(Recorder& rec, const Tensor& dcol, const Tensor& dx, const PatchPiece& q, const Shape& w,
                   const Shape& y, const Conv2dParams& params, const Patches& pm) {
  const DeviceInfo& dev = recorder_device(rec);
  if (q.panel) throw Error("col2im: the patch matrix's gradient is in rows, not panels");
  const PatchPush push = patch_push(dx.shape(), w, y, params, q, pm);
  const uint64_t x_item = dx.bytes() / dx.shape()[0];
  const uint32_t wg = elementwise_workgroup(dev);
  Dispatch d;
  d.shader = "col2im";
  d.label = "col2im";
  d.specialization = {wg};
  d.bindings = {{&dcol, Use::Read, 0, q.floats(pm) * dtype_size(dcol.dtype())},
                {&dx, push.accumulate ? Use::ReadWrite : Use::Write, q.b0 * x_item, q.bound * x_item}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for_threads(dev, uint64_t(q.count) * (x_item / dtype_size(dx.dtype())), wg);
  record_dispatch(rec, d);
}

}  // namespace vkalex::detail
