#version 450
#extension GL_GOOGLE_include_directive : require
// The input gradient of a convolution from the gradient of its patch matrix (im2col.comp's
// layout): dx[n, c, iy, ix] = sum of dcol[n, g, p, r] over the pixels p and taps r that read
// x[n, c, iy, ix]. One invocation per input element gathers its at most KH * KW terms, in a
// fixed order: no atomics, the same result on every device. dcol holds the pixels [P0, P0 + PC)
// of each image, [N, G, PC, RP]; with `accumulate` the sum is added to dx (later pixel ranges).
#include "common.glsl"

// dcol [N, G, PC, RP]
layout(std430, set = 0, binding = 0) readonly buffer Col { float dcol[]; };
// dx [N, C, H, W]
layout(std430, set = 0, binding = 1) buffer X { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW, KH, KW, SH, SW, PH, PW, G;
  uint RP, P0, PC, accumulate;
  uint N0;     // the first image's index in the bound x
  uint PANEL;  // im2col.comp's (always 0 here: dcol is in rows)
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.H * p.W) return;
  const uint o = p.N0 * p.C * p.H * p.W + i;  // where in the bound dx
  const uint ix = i % p.W;
  const uint iy = (i / p.W) % p.H;
  const uint c = (i / (p.W * p.H)) % p.C;
  const uint n = i / (p.W * p.H * p.C);
  const uint cpg = p.C / p.G;
  const uint g = c / cpg;
  const uint rbase = (c % cpg) * p.KH * p.KW;
  const uint base = (n * p.G + g) * p.PC * p.RP;
  // The taps that read (iy, ix): ky = ty - oy * SH for ty = iy + PH, so ky runs from ty % SH
  // in steps of SH while oy falls by one per step (and kx likewise): no division per tap.
  const uint ty = iy + p.PH, tx = ix + p.PW;
  const uint ky0 = ty % p.SH, kx0 = tx % p.SW;
  const uint oy0 = ty / p.SH, ox0 = tx / p.SW;
  float acc = 0.0;
  for (uint ky = ky0, oy = oy0; ky < p.KH && ky <= ty; ky += p.SH, --oy) {
    if (oy >= p.OH) continue;
    for (uint kx = kx0, ox = ox0; kx < p.KW && kx <= tx; kx += p.SW, --ox) {
      const uint pix = oy * p.OW + ox;
      if (ox >= p.OW || pix < p.P0 || pix >= p.P0 + p.PC) continue;
      acc += dcol[base + (pix - p.P0) * p.RP + rbase + ky * p.KW + kx];
    }
  }
  dx[o] = p.accumulate != 0u ? dx[o] + acc : acc;
}
