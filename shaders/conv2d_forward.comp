#version 450
#extension GL_GOOGLE_include_directive : require
// Direct convolution, register-tiled: each invocation computes KT output channels
// (specialization constant 1) of PT neighbouring output pixels in one row (constant 2). Per
// kernel tap it loads PT inputs and KT weights and does KT * PT multiply-adds, so loads, the
// costly part on every device and above all on CPU drivers, are few per multiply-add.
#include "common.glsl"

layout(constant_id = 1) const uint KT = 8;
layout(constant_id = 2) const uint PT = 4;

// x [N, C, H, W]
layout(std430, set = 0, binding = 0) readonly buffer X { VALUE x[]; };
// weight [K, C / G, KH, KW]
layout(std430, set = 0, binding = 1) readonly buffer Wt { VALUE w[]; };
// bias [K] (not read unless flags & 1)
layout(std430, set = 0, binding = 2) readonly buffer B { VALUE b[]; };
// y [N, K, OH, OW]
layout(std430, set = 0, binding = 3) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint G;
  uint flags;  // 1: add bias, 2: ReLU
} p;

void main() {
  const uint kpg = p.K / p.G;                 // output channels per group
  const uint ktiles = (kpg + KT - 1) / KT;    // tiles of KT channels per group
  const uint xtiles = (p.OW + PT - 1) / PT;   // tiles of PT pixels per output row
  const uint i = global_index();
  if (i >= p.N * p.G * ktiles * p.OH * xtiles) return;
  const uint ox0 = (i % xtiles) * PT;
  const uint oy = (i / xtiles) % p.OH;
  const uint tile = (i / (xtiles * p.OH)) % (p.G * ktiles);
  const uint n = i / (xtiles * p.OH * p.G * ktiles);
  const uint g = tile / ktiles;
  const uint kl0 = (tile % ktiles) * KT;      // first channel of the tile within its group
  const uint nk = min(KT, kpg - kl0);         // channels in this tile
  const uint np = min(PT, p.OW - ox0);        // pixels in this tile
  const uint k0 = g * kpg + kl0;
  const uint cpg = p.C / p.G;
  const uint c0 = g * cpg;
  const uint khw = p.KH * p.KW;
  const uint wstride = cpg * khw;             // between output channels in w
  const int iy0 = int(oy * p.SH) - int(p.PH);
  const int ix0 = int(ox0 * p.SW) - int(p.PW);

  float acc[KT * PT];
  for (uint j = 0; j < KT * PT; ++j) acc[j] = 0.0;
  for (uint c = 0; c < cpg; ++c) {
    // Summing each channel's window apart keeps fp32 rounding close to the double reference.
    float part[KT * PT];
    for (uint j = 0; j < KT * PT; ++j) part[j] = 0.0;
    const uint xplane = (n * p.C + c0 + c) * p.H * p.W;
    const uint wbase = (k0 * cpg + c) * khw;
    for (uint ky = 0; ky < p.KH; ++ky) {
      const int iy = iy0 + int(ky);
      if (iy < 0 || iy >= int(p.H)) continue;
      const uint xrow = xplane + uint(iy) * p.W;
      for (uint kx = 0; kx < p.KW; ++kx) {
        float xv[PT];
        for (uint t = 0; t < PT; ++t) {
          // Taps in the padding read a clamped address and count as zero: no branch per pixel.
          const int ix = ix0 + int(t * p.SW + kx);
          const float v = float(x[xrow + uint(clamp(ix, 0, int(p.W) - 1))]);
          xv[t] = (ix >= 0 && ix < int(p.W)) ? v : 0.0;
        }
        const uint wo = wbase + ky * p.KW + kx;
        for (uint j = 0; j < KT; ++j) {
          // Channels past the tile's end reuse its last channel; their sums are never stored.
          const float wv = float(w[wo + min(j, nk - 1) * wstride]);
          for (uint t = 0; t < PT; ++t) part[j * PT + t] += xv[t] * wv;
        }
      }
    }
    for (uint j = 0; j < KT * PT; ++j) acc[j] += part[j];
  }
  for (uint j = 0; j < KT; ++j) {
    if (j >= nk) break;
    const uint k = k0 + j;
    const float bias = (p.flags & 1u) != 0u ? float(b[k]) : 0.0;
    const uint yrow = ((n * p.K + k) * p.OH + oy) * p.OW + ox0;
    for (uint t = 0; t < PT; ++t) {
      if (t >= np) break;
      float v = acc[j * PT + t] + bias;
      if ((p.flags & 2u) != 0u && v < 0.0) v = 0.0;  // NaN stays NaN
      y[yrow + t] = VALUE(v);
    }
  }
}
