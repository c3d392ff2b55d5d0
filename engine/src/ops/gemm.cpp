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

// Register tile per invocation (VKALEX_GEMM_TILE=RMxRN overrides it, for measuring).
Tile gemm_tile(const Gemm& g, uint32_t bmode) {
  Tile t{4, 8};
  if (const char* e = std::getenv("VKALEX_GEMM_TILE")) {
    unsigned rm = 0, rn = 0;
    if (std::sscanf(e, "%ux%u", &rm, &rn) == 2 && rm >= 1 && rm <= 16 && rn >= 1 && rn <= 16) t = {rm, rn};
  }
  if (g.M < t.rm) {  // few rows (a batch of one): wider along n instead
    t.rn = std::min<uint32_t>(16, t.rn * t.rm / std::max<uint32_t>(1, g.M));
    t.rm = g.M;
  }
  if (bmode == 1) t.rn = std::max<uint32_t>(4, t.rn / 4 * 4);
  return t;
}

}  // namespace

bool is_gemm(const char* shader) {
  return std::string(shader) == "gemm" || std::string(shader) == "gemm_texel";
}

void record_gemm(Recorder& rec, const char* label, const Gemm& g) {
  const DeviceInfo& dev = recorder_device(rec);
  if (g.M == 0 || g.N == 0 || g.Z1 == 0 || g.Z2 == 0) return;
  // Which loads may be vec4 (see gemm.comp): every offset and stride along the vector's rows
  // a multiple of 4, and rows long enough to hold the last vec4.
  uint32_t bmode = 0, avec = 0;
  if (g.b_ks == 1 && g.K >= 4 && all_multiples_of_4({g.b_ns, g.b_off, g.b_z1, g.b_z2, g.b_ib})) {
    bmode = 2;
    avec = g.a_ks == 1 && all_multiples_of_4({g.a_ms, g.a_off, g.a_z1, g.a_z2, g.a_ib}) ? 1 : 0;
  } else if (g.b_ns == 1 && all_multiples_of_4({g.b_ks, g.b_off, g.b_z1, g.b_z2, g.b_ib}) &&
             (g.K == 1 || (g.N + 3) / 4 * 4 <= g.b_ks)) {
    bmode = 1;
  }
  const Tile t = gemm_tile(g, bmode);
  const uint32_t sub = std::clamp<uint32_t>(dev.subgroup_size ? dev.subgroup_size : 8, 1, 64);
  uint32_t wg = std::min<uint32_t>({sub, dev.max_workgroup_invocations, (g.N + t.rn - 1) / t.rn});
  wg = std::max<uint32_t>(1, wg);
  const uint64_t blocks = (uint64_t(g.K) + 31) / 32;
  check_trip_count(dev, label, uint64_t(g.IB) * (uint64_t(g.K) + blocks + 1), "the sum of one matrix product");

  GemmPush push{g.M, g.N, g.K, g.a_off, g.b_off, g.c_off, g.bias_off, g.a_ms, g.a_ks, g.b_ks, g.b_ns, g.c_ms, g.c_ns,
                g.Z1, g.a_z1, g.b_z1, g.c_z1, g.bias_z1, g.a_z2, g.b_z2, g.c_z2, g.IB, g.a_ib, g.b_ib,
                (g.bias_per_m ? 1u : 0u) | (g.bias_per_n ? 2u : 0u) | (g.relu ? 4u : 0u) | (g.accumulate ? 8u : 0u)};
  // Texel views need a whole texel; a smaller operand takes the storage-buffer kernel.
  auto range = [](const Tensor* t, uint64_t off, uint64_t size) { return size ? size : t->bytes() - off; };
  const bool texel = std::string(g.shader) == "gemm_texel" && range(g.a, g.a_bytes, g.a_size) >= 16 &&
                     range(g.b, g.b_bytes, g.b_size) >= 16;
  Dispatch d;
  d.shader = texel ? "gemm_texel" : "gemm";
  d.label = label;
  d.specialization = {wg, t.rm, t.rn, bmode, avec};
  const bool bias = g.bias_per_m || g.bias_per_n;
  d.bindings = {{g.a, Use::Read, g.a_bytes, g.a_size},
                {g.a, avec ? Use::Read : Use::Unused, g.a_bytes, g.a_size, texel},
                {g.b, Use::Read, g.b_bytes, g.b_size},
                {g.b, bmode ? Use::Read : Use::Unused, g.b_bytes, g.b_size, texel},
                bias ? Binding{g.bias, Use::Read} : Binding{g.a, Use::Unused, g.a_bytes, g.a_size},
                {g.c, g.accumulate ? Use::ReadWrite : Use::Write, g.c_bytes, g.c_size}};
  d.push = &push;
  d.push_bytes = sizeof push;
  const uint64_t tiles = uint64_t((g.M + t.rm - 1) / t.rm) * ((g.N + uint64_t(wg) * t.rn - 1) / (uint64_t(wg) * t.rn));
  d.groups = grid_for(dev, tiles * g.Z1 * g.Z2);
  record_dispatch(rec, d);
}

uint64_t Patches::image_floats() const { return uint64_t(row) * pixels; }

Patches conv_patches(const Shape& x, const Shape& w, const Shape& y, uint32_t groups) {
  Patches pm;
  pm.taps = x[1] / groups * w[2] * w[3];
  pm.row = (pm.taps + 3) / 4 * 4;
  pm.pixels = y[2] * y[3];
  (void)groups;
  return pm;
}

uint32_t patch_chunk(const DeviceInfo& dev, const Patches& pm, uint32_t images) {
  // 32 MiB of patches at a time: large enough that each product is thousands of tiles, small
  // enough to stay in caches' reach and far from any binding limit.
  const uint64_t cap = std::min<uint64_t>(uint64_t(32) << 20, dev.max_storage_buffer_range);
  return static_cast<uint32_t>(std::clamp<uint64_t>(cap / std::max<uint64_t>(1, pm.image_floats() * 4), 1, images));
}

namespace {
struct PatchPush {
  uint32_t N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, G, RP;
};
PatchPush patch_push(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p, uint32_t count,
                     const Patches& pm) {
  return {count, x[1], x[2], x[3], y[2], y[3], w[2], w[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.groups, pm.row};
}
}  // namespace

void record_im2col(Recorder& rec, const char* label, const Tensor& x, uint32_t n0, uint32_t count, const Shape& w,
                   const Shape& y, const Conv2dParams& params, const Patches& pm, const Tensor& col) {
  const DeviceInfo& dev = recorder_device(rec);
  const PatchPush push = patch_push(x.shape(), w, y, params, count, pm);
  const uint64_t x_item = x.bytes() / x.shape()[0];
  const uint64_t floats = uint64_t(count) * params.groups * pm.image_floats();
  if (floats > UINT32_MAX) throw Error(std::string(label) + ": the patch matrix of one chunk exceeds 2^32 floats");
  const uint32_t wg = elementwise_workgroup(dev);
  Dispatch d;
  d.shader = "im2col";
  d.label = "im2col";  // timed apart from the product (errors still name `label`)
  d.specialization = {wg};
  d.bindings = {{&x, Use::Read, n0 * x_item, count * x_item}, {&col, Use::Write, 0, floats * 4}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for_threads(dev, floats, wg);
  record_dispatch(rec, d);
}

void record_col2im(Recorder& rec, const char* label, const Tensor& dcol, const Tensor& dx, uint32_t n0, uint32_t count,
                   const Shape& w, const Shape& y, const Conv2dParams& params, const Patches& pm) {
  const DeviceInfo& dev = recorder_device(rec);
  const PatchPush push = patch_push(dx.shape(), w, y, params, count, pm);
  const uint64_t x_item = dx.bytes() / dx.shape()[0];
  const uint64_t floats = uint64_t(count) * params.groups * pm.image_floats();
  const uint32_t wg = elementwise_workgroup(dev);
  Dispatch d;
  d.shader = "col2im";
  d.label = "col2im";
  d.specialization = {wg};
  d.bindings = {{&dcol, Use::Read, 0, floats * 4}, {&dx, Use::Write, n0 * x_item, count * x_item}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for_threads(dev, uint64_t(count) * (x_item / 4), wg);
  record_dispatch(rec, d);
}

}  // namespace vkalex::detail
