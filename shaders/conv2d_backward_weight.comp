#version 450
#extension GL_GOOGLE_include_directive : require
// dw of a convolution: dw[k, c, ky, kx] = sum over n, oy, ox of
// dy[n, k, oy, ox] * x[n, c', oy*SH + ky - PH, ox*SW + kx - PW]. Register-tiled: each
// invocation computes one tap (ky, kx) for KT output channels (specialization constant 1) and
// CT input channels (constant 2), loading KT dy and CT x per output position for KT * CT
// multiply-adds.
//
// Split over the batch: the N * OH output rows of this dispatch are cut into slices of R rows,
// and each invocation sums one slice only, so its loop trip count (about R * (OW + 1)) stays
// within the device's loop budget however large the batch, and more invocations share the
// work. Slice s writes its partial sums to part[(s_base + s) * |dw| + ...]; with a single
// slice in all, the host binds dw itself and s_base is 0. sum_slices.comp adds the partials.
#include "common.glsl"

layout(constant_id = 1) const uint KT = 8;
layout(constant_id = 2) const uint CT = 4;

// dy [N, K, OH, OW]: this dispatch's images
layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
// x [N, C, H, W]: the same images
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
// partial sums [slices, K, C / G, KH, KW] (or dw [K, C / G, KH, KW] when there is one slice)
layout(std430, set = 0, binding = 2) writeonly buffer DW { float part[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint G;
  uint R;       // output rows (over n and oy) per slice
  uint S;       // slices in this dispatch: ceil(N * OH / R)
  uint s_base;  // index of this dispatch's first slice in part
} p;

void main() {
  const uint cpg = p.C / p.G, kpg = p.K / p.G;
  const uint ktiles = (kpg + KT - 1) / KT, ctiles = (cpg + CT - 1) / CT;
  const uint per_slice = p.G * ktiles * ctiles * p.KH * p.KW;
  const uint gi = global_index();
  if (gi >= per_slice * p.S) return;
  const uint slice = gi / per_slice;
  const uint i = gi % per_slice;
  const uint kx = i % p.KW;
  const uint ky = (i / p.KW) % p.KH;
  const uint ct = (i / (p.KW * p.KH)) % ctiles;
  const uint tile = i / (p.KW * p.KH * ctiles);
  const uint g = tile / ktiles;
  const uint kl0 = (tile % ktiles) * KT;
  const uint nk = min(KT, kpg - kl0);
  const uint cl0 = ct * CT;
  const uint nc = min(CT, cpg - cl0);
  const uint k0 = g * kpg + kl0;
  const uint c0 = g * cpg + cl0;
  const uint plane = p.OH * p.OW, xplane = p.H * p.W;
  // Output rows and columns whose tap lands inside the input (the rest read padding).
  const int py = int(p.PH) - int(ky), px = int(p.PW) - int(kx);
  // (Divisions only of non-negative values: GLSL's integer division truncates.)
  const int ylast = int(p.H) - 1 + py, xlast = int(p.W) - 1 + px;
  const uint oy0 = py > 0 ? uint((py + int(p.SH) - 1) / int(p.SH)) : 0u;
  const uint oy1 = ylast < 0 ? 0u : min(uint(ylast) / p.SH + 1u, p.OH);
  const uint ox0 = px > 0 ? uint((px + int(p.SW) - 1) / int(p.SW)) : 0u;
  const uint ox1 = xlast < 0 ? 0u : min(uint(xlast) / p.SW + 1u, p.OW);

  const uint r0 = slice * p.R;
  const uint r1 = min(r0 + p.R, p.N * p.OH);
  uint n = r0 / p.OH, oy = r0 % p.OH;
  float acc[KT * CT];
  for (uint j = 0; j < KT * CT; ++j) acc[j] = 0.0;
  for (uint r = r0; r < r1; ++r) {
    if (oy >= oy0 && oy < oy1) {
      float part_row[KT * CT];  // one row's sum apart keeps fp32 rounding small for large batches
      for (uint j = 0; j < KT * CT; ++j) part_row[j] = 0.0;
      const uint o_row = (n * p.K + k0) * plane + oy * p.OW;
      const uint xrow = (n * p.C + c0) * xplane + (oy * p.SH - uint(py)) * p.W;
      for (uint ox = ox0; ox < ox1; ++ox) {
        const uint o = o_row + ox;
        const uint xo = xrow + ox * p.SW - uint(px);
        float xv[CT];
        // Channels past a tile's end reuse its last channel; their sums are never stored.
        for (uint q = 0; q < CT; ++q) xv[q] = x[xo + min(q, nc - 1) * xplane];
        for (uint j = 0; j < KT; ++j) {
          const float g_ = dy[o + min(j, nk - 1) * plane];
          for (uint q = 0; q < CT; ++q) part_row[j * CT + q] += g_ * xv[q];
        }
      }
      for (uint j = 0; j < KT * CT; ++j) acc[j] += part_row[j];
    }
    if (++oy == p.OH) {
      oy = 0;
      ++n;
    }
  }
  const uint wk = cpg * p.KH * p.KW;
  const uint wo = (p.s_base + slice) * p.K * wk + (k0 * cpg + cl0) * p.KH * p.KW + ky * p.KW + kx;
  for (uint j = 0; j < KT; ++j) {
    if (j >= nk) break;
    for (uint q = 0; q < CT; ++q) {
      if (q >= nc) break;
      part[wo + j * wk + q * p.KH * p.KW] = acc[j * CT + q];
    }
  }
}
