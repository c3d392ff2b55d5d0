// The patch matrix of a convolution, for gemm.comp: col[n, g, p, r] = x[n, g * C/G + c, iy, ix]
// where p = oy * OW + ox is an output pixel and r = (c * KH + ky) * KW + kx a tap of group g
// (zero in the padding). Each row p is R = C/G * KH * KW taps long, stored in RP >= R floats
// (a multiple of 4, so that gemm.comp loads it as vec4; the extra taps are zero). Only the
// pixels [P0, P0 + PC) of each image: col is [N, G, PC, RP]. With PANEL > 0 the rows of each
// image and group are cut into panels of PANEL pixels, each stored k-major as vec4
// [RP / 4][PANEL] (the last panel's missing pixels left unwritten): gemm.glsl's BMODE 3, whose
// workgroup spans PANEL columns and then reads one contiguous stretch per step along k.
// Each invocation writes SEG consecutive taps of one row as vec4: the divisions that find the
// first tap's channel and position run once, the rest step through the taps. x is read
// through a storage buffer (im2col.comp) or a scalar texel buffer (im2col_texel.comp).
#include "common.glsl"
#include "loads.glsl"

// 64 taps: alexnet2012 conv1 and conv2 patch matrices at batch 32 took a median 64 and 81 ms
// against 82 and 93 with 32 on lavapipe (single-layer models, four alternated rounds; noisy).
const uint SEG = 64;

// x [N, C, H, W]
INPUT_F(0, x);
// col [N, G, PC, RP / 4]
layout(std430, set = 0, binding = 1) writeonly buffer Col { VALUE4 col[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW, KH, KW, SH, SW, PH, PW, G;
  uint RP, P0, PC, accumulate;
  uint N0;     // the first image's index in the bound x
  uint PANEL;  // 0: rows of RP floats; else panels of PANEL pixels (see above)
} p;

void main() {
  const uint i = global_index();
  const uint segs = (p.RP + SEG - 1) / SEG;
  if (i >= p.N * p.G * p.PC * segs) return;
  // Rows: one row's segments side by side. Panels: neighbouring invocations take neighbouring
  // pixels (one segment), whose vec4 are neighbours in the panel.
  const uint seg = p.PANEL == 0u ? i % segs : (i / p.PC) % segs;
  const uint row = p.PANEL == 0u ? i / segs : (i / (p.PC * segs)) * p.PC + i % p.PC;  // (n * G + g) * PC + pixel - P0
  const uint pix = p.P0 + row % p.PC;
  const uint g = (row / p.PC) % p.G;
  const uint n = row / (p.PC * p.G);
  const uint cpg = p.C / p.G;
  const uint khw = p.KH * p.KW;
  const uint taps = cpg * khw;
  const uint r0 = seg * SEG;
  // The first tap's channel and kernel position; then kx, ky and c advance as r does.
  uint c = r0 / khw;
  uint ky = (r0 % khw) / p.KW;
  uint kx = r0 % p.KW;
  const int iy0 = int((pix / p.OW) * p.SH) - int(p.PH);
  const int ix0 = int((pix % p.OW) * p.SW) - int(p.PW);
  const uint xbase = ((p.N0 + n) * p.C + g * cpg) * p.H * p.W;
  uint out0 = (row * p.RP + r0) / 4, step = 1;  // where the segment's vec4 go
  if (p.PANEL != 0u) {
    const uint px = row % p.PC, panels = (p.PC + p.PANEL - 1) / p.PANEL;
    out0 = (row / p.PC) * panels * p.PANEL * (p.RP / 4) + ((px / p.PANEL) * (p.RP / 4) + r0 / 4) * p.PANEL + px % p.PANEL;
    step = p.PANEL;
  }
  const uint n4 = (min(p.RP, r0 + SEG) - r0) / 4;
  for (uint q = 0; q < SEG / 4; ++q) {
    if (q >= n4) break;
    vec4 v = vec4(0.0);
    for (uint e = 0; e < 4; ++e) {
      const uint r = r0 + 4 * q + e;
      float t = 0.0;
      const int iy = iy0 + int(ky), ix = ix0 + int(kx);
      if (r < taps && iy >= 0 && iy < int(p.H) && ix >= 0 && ix < int(p.W)) {
        t = LOAD_F(x, xbase + (c * p.H + uint(iy)) * p.W + uint(ix));
      }
      v[e] = t;
      if (++kx == p.KW) {
        kx = 0;
        if (++ky == p.KH) {
          ky = 0;
          ++c;
        }
      }
    }
    col[out0 + q * step] = VALUE4(v);
  }
}
