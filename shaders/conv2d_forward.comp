#version 450
#extension GL_GOOGLE_include_directive : require
// Direct convolution. Each invocation computes KT output channels (specialization constant 1)
// of one output pixel, so every input value it loads serves KT multiply-adds.
#include "common.glsl"

layout(constant_id = 1) const uint KT = 4;

// x [N, C, H, W]
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
// weight [K, C / G, KH, KW]
layout(std430, set = 0, binding = 1) readonly buffer Wt { float w[]; };
// bias [K] (not read unless flags & 1)
layout(std430, set = 0, binding = 2) readonly buffer B { float b[]; };
// y [N, K, OH, OW]
layout(std430, set = 0, binding = 3) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint G;
  uint flags;  // 1: add bias, 2: ReLU
} p;

void main() {
  const uint kpg = p.K / p.G;                 // output channels per group
  const uint tiles = (kpg + KT - 1) / KT;     // tiles of KT channels per group
  const uint i = global_index();
  if (i >= p.N * p.G * tiles * p.OH * p.OW) return;
  const uint ox = i % p.OW;
  const uint oy = (i / p.OW) % p.OH;
  const uint tile = (i / (p.OW * p.OH)) % (p.G * tiles);
  const uint n = i / (p.OW * p.OH * p.G * tiles);
  const uint g = tile / tiles;
  const uint kl0 = (tile % tiles) * KT;       // first channel of the tile within its group
  const uint nk = min(KT, kpg - kl0);         // channels in this tile
  const uint k0 = g * kpg + kl0;
  const uint cpg = p.C / p.G;
  const uint c0 = g * cpg;
  const uint wstride = cpg * p.KH * p.KW;     // between output channels in w
  const int iy0 = int(oy * p.SH) - int(p.PH);
  const int ix0 = int(ox * p.SW) - int(p.PW);

  float acc[KT];
  for (uint j = 0; j < KT; ++j) acc[j] = 0.0;
  for (uint c = 0; c < cpg; ++c) {
    // Summing each channel's window apart keeps fp32 rounding close to the double reference.
    float part[KT];
    for (uint j = 0; j < KT; ++j) part[j] = 0.0;
    const uint xbase = ((n * p.C + c0 + c) * p.H) * p.W;
    const uint wbase = (k0 * cpg + c) * p.KH * p.KW;
    for (uint ky = 0; ky < p.KH; ++ky) {
      const int iy = iy0 + int(ky);
      if (iy < 0 || iy >= int(p.H)) continue;
      for (uint kx = 0; kx < p.KW; ++kx) {
        const int ix = ix0 + int(kx);
        if (ix < 0 || ix >= int(p.W)) continue;
        const float xv = x[xbase + uint(iy) * p.W + uint(ix)];
        const uint wo = wbase + ky * p.KW + kx;
        for (uint j = 0; j < KT; ++j) {
          if (j < nk) part[j] += xv * w[wo + j * wstride];
        }
      }
    }
    for (uint j = 0; j < KT; ++j) acc[j] += part[j];
  }
  for (uint j = 0; j < KT; ++j) {
    if (j >= nk) break;
    const uint k = k0 + j;
    float v = acc[j];
    if ((p.flags & 1u) != 0u) v += b[k];
    if ((p.flags & 2u) != 0u) v = max(v, 0.0);
    y[((n * p.K + k) * p.OH + oy) * p.OW + ox] = v;
  }
}
