#version 450
#extension GL_GOOGLE_include_directive : require
// dx of a convolution, one invocation per input element (a gather, so no atomics):
// dx[n, c, iy, ix] = sum over the outputs whose window covers (iy, ix) of dy * w.
#include "common.glsl"

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
  const uint i = global_index();
  if (i >= p.N * p.C * p.H * p.W) return;
  const int ix = int(i % p.W);
  const int iy = int((i / p.W) % p.H);
  const uint c = (i / (p.W * p.H)) % p.C;
  const uint n = i / (p.W * p.H * p.C);
  const uint cpg = p.C / p.G, kpg = p.K / p.G;
  const uint g = c / cpg, cl = c - g * cpg;
  // Only kernel taps with (i + pad - tap) divisible by the stride reach an output: start at
  // the first such tap and step by the stride, so the loops test no remainders.
  const int ry = (iy + int(p.PH)) % int(p.SH), rx = (ix + int(p.PW)) % int(p.SW);
  float acc = 0.0;
  for (uint kk = 0; kk < kpg; ++kk) {
    const uint k = g * kpg + kk;
    const uint wk = (k * cpg + cl) * p.KH;
    float part = 0.0;
    for (int ky = ry; ky < int(p.KH); ky += int(p.SH)) {
      const int oy = (iy + int(p.PH) - ky) / int(p.SH);
      if (oy < 0) break;  // larger taps give smaller oy
      if (oy >= int(p.OH)) continue;
      const uint dyrow = ((n * p.K + k) * p.OH + uint(oy)) * p.OW;
      const uint wrow = (wk + uint(ky)) * p.KW;
      for (int kx = rx; kx < int(p.KW); kx += int(p.SW)) {
        const int ox = (ix + int(p.PW) - kx) / int(p.SW);
        if (ox < 0) break;
        if (ox >= int(p.OW)) continue;
        part += dy[dyrow + uint(ox)] * w[wrow + uint(kx)];
      }
    }
    acc += part;
  }
  dx[i] = acc;
}
