#version 450
#extension GL_GOOGLE_include_directive : require
// dw of a convolution: dw[k, c, ky, kx] = sum over n, oy, ox of
// dy[n, k, oy, ox] * x[n, c', oy*SH + ky - PH, ox*SW + kx - PW]. Each invocation computes KT
// output channels k (specialization constant 1) of one (c, ky, kx), so every x it loads
// serves KT multiply-adds.
#include "common.glsl"

layout(constant_id = 1) const uint KT = 4;

// dy [N, K, OH, OW]
layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
// x [N, C, H, W]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
// dw [K, C / G, KH, KW]
layout(std430, set = 0, binding = 2) writeonly buffer DW { float dw[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint G;
} p;

void main() {
  const uint cpg = p.C / p.G, kpg = p.K / p.G;
  const uint tiles = (kpg + KT - 1) / KT;
  const uint i = global_index();
  if (i >= p.G * tiles * cpg * p.KH * p.KW) return;
  const uint kx = i % p.KW;
  const uint ky = (i / p.KW) % p.KH;
  const uint cl = (i / (p.KW * p.KH)) % cpg;
  const uint tile = i / (p.KW * p.KH * cpg);
  const uint g = tile / tiles;
  const uint kl0 = (tile % tiles) * KT;
  const uint nk = min(KT, kpg - kl0);
  const uint k0 = g * kpg + kl0;
  const uint c = g * cpg + cl;
  const uint plane = p.OH * p.OW;
  float acc[KT];
  for (uint j = 0; j < KT; ++j) acc[j] = 0.0;
  for (uint n = 0; n < p.N; ++n) {
    float part[KT];  // one image's sum apart keeps fp32 rounding small for large batches
    for (uint j = 0; j < KT; ++j) part[j] = 0.0;
    const uint dybase = (n * p.K + k0) * plane;
    for (uint oy = 0; oy < p.OH; ++oy) {
      const int iy = int(oy * p.SH + ky) - int(p.PH);
      if (iy < 0 || iy >= int(p.H)) continue;
      const uint xrow = ((n * p.C + c) * p.H + uint(iy)) * p.W;
      for (uint ox = 0; ox < p.OW; ++ox) {
        const int ix = int(ox * p.SW + kx) - int(p.PW);
        if (ix < 0 || ix >= int(p.W)) continue;
        const float xv = x[xrow + uint(ix)];
        const uint o = dybase + oy * p.OW + ox;
        for (uint j = 0; j < KT; ++j) {
          if (j < nk) part[j] += dy[o + j * plane] * xv;
        }
      }
    }
    for (uint j = 0; j < KT; ++j) acc[j] += part[j];
  }
  const uint wk = cpg * p.KH * p.KW;
  const uint wo = (k0 * cpg + cl) * p.KH * p.KW + ky * p.KW + kx;
  for (uint j = 0; j < KT; ++j) {
    if (j < nk) dw[wo + j * wk] = acc[j];
  }
}
