#version 450
#extension GL_GOOGLE_include_directive : require
// dx of a convolution, a gather with no atomics: dx[n, c, iy, ix] = sum over the outputs
// whose window covers (iy, ix) of dy * w. Each invocation computes KT input channels
// (specialization constant 1) of one pixel, so every dy it loads serves KT multiply-adds.
#include "common.glsl"

layout(constant_id = 1) const uint KT = 4;

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
  const uint tiles = (cpg + KT - 1) / KT;
  const uint i = global_index();
  if (i >= p.N * p.G * tiles * p.H * p.W) return;
  const int ix = int(i % p.W);
  const int iy = int((i / p.W) % p.H);
  const uint tile = (i / (p.W * p.H)) % (p.G * tiles);
  const uint n = i / (p.W * p.H * p.G * tiles);
  const uint g = tile / tiles;
  const uint cl0 = (tile % tiles) * KT;
  const uint nc = min(KT, cpg - cl0);
  const uint khw = p.KH * p.KW;
  // Only kernel taps with (i + pad - tap) divisible by the stride reach an output: start at
  // the first such tap and step by the stride, so the loops test no remainders.
  const int ry = (iy + int(p.PH)) % int(p.SH), rx = (ix + int(p.PW)) % int(p.SW);
  float acc[KT];
  for (uint j = 0; j < KT; ++j) acc[j] = 0.0;
  for (uint kk = 0; kk < kpg; ++kk) {
    const uint k = g * kpg + kk;
    const uint wk = (k * cpg + cl0) * khw;
    float part[KT];
    for (uint j = 0; j < KT; ++j) part[j] = 0.0;
    for (int ky = ry; ky < int(p.KH); ky += int(p.SH)) {
      const int oy = (iy + int(p.PH) - ky) / int(p.SH);
      if (oy < 0) break;  // larger taps give smaller oy
      if (oy >= int(p.OH)) continue;
      const uint dyrow = ((n * p.K + k) * p.OH + uint(oy)) * p.OW;
      for (int kx = rx; kx < int(p.KW); kx += int(p.SW)) {
        const int ox = (ix + int(p.PW) - kx) / int(p.SW);
        if (ox < 0) break;
        if (ox >= int(p.OW)) continue;
        const float g_ = dy[dyrow + uint(ox)];
        const uint wo = wk + uint(ky) * p.KW + uint(kx);
        for (uint j = 0; j < KT; ++j) {
          if (j < nc) part[j] += g_ * w[wo + j * khw];
        }
      }
    }
    for (uint j = 0; j < KT; ++j) acc[j] += part[j];
  }
  const uint plane = p.H * p.W;
  const uint o = ((n * p.C + g * cpg + cl0) * p.H + uint(iy)) * p.W + uint(ix);
  for (uint j = 0; j < KT; ++j) {
    if (j < nc) dx[o + j * plane] = acc[j];
  }
}
