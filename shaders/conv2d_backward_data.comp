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
  float acc = 0.0;
  for (uint kk = 0; kk < kpg; ++kk) {
    const uint k = g * kpg + kk;
    float part = 0.0;
    for (uint ky = 0; ky < p.KH; ++ky) {
      const int ty = iy + int(p.PH) - int(ky);  // = oy * SH
      if (ty < 0 || ty % int(p.SH) != 0) continue;
      const uint oy = uint(ty) / p.SH;
      if (oy >= p.OH) continue;
      for (uint kx = 0; kx < p.KW; ++kx) {
        const int tx = ix + int(p.PW) - int(kx);
        if (tx < 0 || tx % int(p.SW) != 0) continue;
        const uint ox = uint(tx) / p.SW;
        if (ox >= p.OW) continue;
        part += dy[((n * p.K + k) * p.OH + oy) * p.OW + ox] * w[((k * cpg + cl) * p.KH + ky) * p.KW + kx];
      }
    }
    acc += part;
  }
  dx[i] = acc;
}
