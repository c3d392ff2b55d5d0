#version 450
#extension GL_GOOGLE_include_directive : require
// The patch matrix of a convolution, for gemm.comp: col[n, g, p, r] = x[n, g * C/G + c, iy, ix]
// where p = oy * OW + ox is an output pixel and r = (c * KH + ky) * KW + kx a tap of group g
// (zero in the padding). Each row p is R = C/G * KH * KW taps long, stored in RP >= R floats
// (a multiple of 4, so that gemm.comp loads it as vec4; the extra taps are zero).
#include "common.glsl"

// x [N, C, H, W]
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
// col [N, G, OH * OW, RP]
layout(std430, set = 0, binding = 1) writeonly buffer Col { float col[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW, KH, KW, SH, SW, PH, PW, G;
  uint RP;
} p;

void main() {
  const uint i = global_index();
  const uint P = p.OH * p.OW;
  if (i >= p.N * p.G * P * p.RP) return;
  const uint r = i % p.RP;
  const uint pix = (i / p.RP) % P;
  const uint g = (i / (p.RP * P)) % p.G;
  const uint n = i / (p.RP * P * p.G);
  const uint cpg = p.C / p.G;
  const uint khw = p.KH * p.KW;
  float v = 0.0;
  if (r < cpg * khw) {
    const uint c = g * cpg + r / khw;
    const uint ky = (r % khw) / p.KW, kx = r % p.KW;
    const int iy = int((pix / p.OW) * p.SH + ky) - int(p.PH);
    const int ix = int((pix % p.OW) * p.SW + kx) - int(p.PW);
    if (iy >= 0 && iy < int(p.H) && ix >= 0 && ix < int(p.W)) v = x[((n * p.C + c) * p.H + uint(iy)) * p.W + uint(ix)];
  }
  col[i] = v;
}
