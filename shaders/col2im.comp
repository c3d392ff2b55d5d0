#version 450
#extension GL_GOOGLE_include_directive : require
// The input gradient of a convolution from the gradient of its patch matrix (im2col.comp's
// layout): dx[n, c, iy, ix] = sum of dcol[n, g, p, r] over the pixels p and taps r that read
// x[n, c, iy, ix]. One invocation per input element gathers its at most KH * KW terms, in a
// fixed order: no atomics, the same result on every device.
#include "common.glsl"

// dcol [N, G, OH * OW, RP]
layout(std430, set = 0, binding = 0) readonly buffer Col { float dcol[]; };
// dx [N, C, H, W]
layout(std430, set = 0, binding = 1) writeonly buffer X { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW, KH, KW, SH, SW, PH, PW, G;
  uint RP;
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.H * p.W) return;
  const uint ix = i % p.W;
  const uint iy = (i / p.W) % p.H;
  const uint c = (i / (p.W * p.H)) % p.C;
  const uint n = i / (p.W * p.H * p.C);
  const uint cpg = p.C / p.G;
  const uint g = c / cpg;
  const uint P = p.OH * p.OW;
  const uint rbase = (c % cpg) * p.KH * p.KW;
  const uint base = (n * p.G + g) * P * p.RP;
  float acc = 0.0;
  for (uint ky = 0; ky < p.KH; ++ky) {
    const int ty = int(iy + p.PH) - int(ky);  // oy * SH
    if (ty < 0 || ty % int(p.SH) != 0) continue;
    const uint oy = uint(ty) / p.SH;
    if (oy >= p.OH) continue;
    for (uint kx = 0; kx < p.KW; ++kx) {
      const int tx = int(ix + p.PW) - int(kx);
      if (tx < 0 || tx % int(p.SW) != 0) continue;
      const uint ox = uint(tx) / p.SW;
      if (ox >= p.OW) continue;
      acc += dcol[base + (oy * p.OW + ox) * p.RP + rbase + ky * p.KW + kx];
    }
  }
  dx[i] = acc;
}
