#version 450
#extension GL_GOOGLE_include_directive : require
// Direct convolution, one invocation per output element. Simple and exact; the fast
// implicit-GEMM kernel comes later and is tested against the same CPU reference.
#include "common.glsl"

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
  const uint i = global_index();
  if (i >= p.N * p.K * p.OH * p.OW) return;
  const uint ox = i % p.OW;
  const uint oy = (i / p.OW) % p.OH;
  const uint k = (i / (p.OW * p.OH)) % p.K;
  const uint n = i / (p.OW * p.OH * p.K);
  const uint cpg = p.C / p.G;          // input channels per group
  const uint c0 = (k / (p.K / p.G)) * cpg;
  const int iy0 = int(oy * p.SH) - int(p.PH);
  const int ix0 = int(ox * p.SW) - int(p.PW);

  float acc = 0.0;
  for (uint c = 0; c < cpg; ++c) {
    // Summing each channel's window apart keeps fp32 rounding close to the double reference.
    float part = 0.0;
    const uint xbase = ((n * p.C + c0 + c) * p.H) * p.W;
    const uint wbase = ((k * cpg + c) * p.KH) * p.KW;
    for (uint ky = 0; ky < p.KH; ++ky) {
      const int iy = iy0 + int(ky);
      if (iy < 0 || iy >= int(p.H)) continue;
      for (uint kx = 0; kx < p.KW; ++kx) {
        const int ix = ix0 + int(kx);
        if (ix < 0 || ix >= int(p.W)) continue;
        part += x[xbase + uint(iy) * p.W + uint(ix)] * w[wbase + ky * p.KW + kx];
      }
    }
    acc += part;
  }
  if ((p.flags & 1u) != 0u) acc += b[k];
  if ((p.flags & 2u) != 0u) acc = max(acc, 0.0);
  y[i] = acc;
}
