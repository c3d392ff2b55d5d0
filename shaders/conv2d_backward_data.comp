#version 450
#extension GL_GOOGLE_include_directive : require
// dx of a convolution, a gather with no atomics: dx[n, c, iy, ix] = sum over the outputs
// whose window covers (iy, ix) of dy * w. Register-tiled like the forward kernel: each
// invocation computes CT input channels (specialization constant 1) of PT neighbouring pixels
// in a row (constant 2), loading PT dy and CT weights per kernel tap.
#include "common.glsl"

layout(constant_id = 1) const uint CT = 8;
layout(constant_id = 2) const uint PT = 4;
// 1 when both strides are 1 (the host checks): then every tap reaches an output and the
// kernel divides nothing, which matters where vector integer division is slow (CPUs).
layout(constant_id = 3) const uint UNIT_STRIDE = 0;

// dy [N, K, OH, OW]
layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
// weight [K, C / G, KH, KW]
layout(std430, set = 0, binding = 1) readonly buffer Wt { float w[]; };
// dx [N, C, H, W]
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint G;
} p;

void main() {
  const uint cpg = p.C / p.G, kpg = p.K / p.G;
  const uint ctiles = (cpg + CT - 1) / CT;
  const uint xtiles = (p.W + PT - 1) / PT;
  const uint i = global_index();
  if (i >= p.N * p.G * ctiles * p.H * xtiles) return;
  const uint ix0 = (i % xtiles) * PT;
  const int iy = int((i / xtiles) % p.H);
  const uint tile = (i / (xtiles * p.H)) % (p.G * ctiles);
  const uint n = i / (xtiles * p.H * p.G * ctiles);
  const uint g = tile / ctiles;
  const uint cl0 = (tile % ctiles) * CT;
  const uint nc = min(CT, cpg - cl0);
  const uint np = min(PT, p.W - ix0);
  const uint khw = p.KH * p.KW;

  float acc[CT * PT];
  for (uint j = 0; j < CT * PT; ++j) acc[j] = 0.0;
  for (uint kk = 0; kk < kpg; ++kk) {
    const uint k = g * kpg + kk;
    const uint wk = (k * cpg + cl0) * khw;
    float part[CT * PT];
    for (uint j = 0; j < CT * PT; ++j) part[j] = 0.0;
    for (uint ky = 0; ky < p.KH; ++ky) {
      // Output row oy reaches input row iy through tap ky when oy * SH + ky = iy + PH.
      const int sy = iy + int(p.PH) - int(ky);
      if (sy < 0) continue;
      if (UNIT_STRIDE == 0 && sy % int(p.SH) != 0) continue;
      const int oy = UNIT_STRIDE != 0 ? sy : sy / int(p.SH);
      if (oy >= int(p.OH)) continue;
      const uint dyrow = ((n * p.K + k) * p.OH + uint(oy)) * p.OW;
      for (uint kx = 0; kx < p.KW; ++kx) {
        float gv[PT];
        for (uint t = 0; t < PT; ++t) {
          // Taps that reach no output read a clamped address and count as zero.
          const int sx = int(ix0 + t + p.PW) - int(kx);
          const int ox = UNIT_STRIDE != 0 ? sx : sx / int(p.SW);
          const float v = dy[dyrow + uint(clamp(ox, 0, int(p.OW) - 1))];
          const bool hit = sx >= 0 && ox < int(p.OW) && (UNIT_STRIDE != 0 || sx % int(p.SW) == 0);
          gv[t] = hit ? v : 0.0;
        }
        const uint wo = wk + ky * p.KW + kx;
        for (uint j = 0; j < CT; ++j) {
          // Channels past the tile's end reuse its last channel; their sums are never stored.
          const float wv = w[wo + min(j, nc - 1) * khw];
          for (uint t = 0; t < PT; ++t) part[j * PT + t] += gv[t] * wv;
        }
      }
    }
    for (uint j = 0; j < CT * PT; ++j) acc[j] += part[j];
  }
  const uint plane = p.H * p.W;
  const uint o = ((n * p.C + g * cpg + cl0) * p.H + uint(iy)) * p.W + ix0;
  for (uint j = 0; j < CT; ++j) {
    if (j >= nc) break;
    for (uint t = 0; t < PT; ++t) {
      if (t >= np) break;
      dx[o + j * plane + t] = acc[j * PT + t];
    }
  }
}
