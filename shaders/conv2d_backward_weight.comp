#version 450
#extension GL_GOOGLE_include_directive : require
// dw of a convolution, one invocation per weight element:
// dw[k, c, ky, kx] = sum over n, oy, ox of dy[n, k, oy, ox] * x[n, c', oy*SH + ky - PH, ox*SW + kx - PW].
#include "common.glsl"

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
  const uint i = global_index();
  if (i >= p.K * cpg * p.KH * p.KW) return;
  const uint kx = i % p.KW;
  const uint ky = (i / p.KW) % p.KH;
  const uint cl = (i / (p.KW * p.KH)) % cpg;
  const uint k = i / (p.KW * p.KH * cpg);
  const uint c = (k / kpg) * cpg + cl;
  float acc = 0.0;
  for (uint n = 0; n < p.N; ++n) {
    float part = 0.0;  // one image's sum apart keeps fp32 rounding small for large batches
    for (uint oy = 0; oy < p.OH; ++oy) {
      const int iy = int(oy * p.SH + ky) - int(p.PH);
      if (iy < 0 || iy >= int(p.H)) continue;
      float row = 0.0;
      for (uint ox = 0; ox < p.OW; ++ox) {
        const int ix = int(ox * p.SW + kx) - int(p.PW);
        if (ix < 0 || ix >= int(p.W)) continue;
        row += dy[((n * p.K + k) * p.OH + oy) * p.OW + ox] * x[((n * p.C + c) * p.H + uint(iy)) * p.W + uint(ix)];
      }
      part += row;
    }
    acc += part;
  }
  dw[i] = acc;
}
