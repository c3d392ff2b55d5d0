// Direct convolution with wide register tiles: each invocation computes KT output channels
// (specialization constant 1) of PT neighbouring output pixels in one row (constant 2, up to
// a whole row of 16). Per input channel and kernel row it loads the input row segment the PT
// pixels need once, (PT - 1) * SW + KW values, and KW * KT weights, for KW * KT * PT
// multiply-adds: a weight load serves PT pixels, where conv2d_forward.comp serves 4. The
// kernel width KW (constant 3) and stride SW (constant 4) are constants so that the loops
// over the segment unroll and index registers, not memory. The input and the weights are
// read through storage buffers (conv2d_forward_wide.comp) or through scalar texel buffers
// (conv2d_forward_wide_texel.comp; see loads.glsl).
#include "common.glsl"
#include "loads.glsl"

layout(constant_id = 1) const uint KT = 8;
layout(constant_id = 2) const uint PT = 8;
layout(constant_id = 3) const uint KW = 3;
layout(constant_id = 4) const uint SW = 1;
const uint XS = (PT - 1) * SW + KW;  // the input row segment of one tile

// x [N, C, H, W]
INPUT_F(0, x);
// weight [K, C / G, KH, KW]
INPUT_F(1, w);
// bias [K] (not read unless flags & 1)
layout(std430, set = 0, binding = 2) readonly buffer B { VALUE b[]; };
// y [N, K, OH, OW]
layout(std430, set = 0, binding = 3) writeonly buffer Y { VALUE y[]; };

// As conv2d_forward.comp's (KW and SW there too, equal to the constants).
layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW_, SH, SW_, PH, PW;
  uint G;
  uint flags;  // 1: add bias, 2: ReLU
} p;

void main() {
  const uint kpg = p.K / p.G;
  const uint ktiles = (kpg + KT - 1) / KT;
  const uint xtiles = (p.OW + PT - 1) / PT;
  const uint i = global_index();
  if (i >= p.N * p.G * ktiles * p.OH * xtiles) return;
  const uint ox0 = (i % xtiles) * PT;
  const uint oy = (i / xtiles) % p.OH;
  const uint tile = (i / (xtiles * p.OH)) % (p.G * ktiles);
  const uint n = i / (xtiles * p.OH * p.G * ktiles);
  const uint g = tile / ktiles;
  const uint kl0 = (tile % ktiles) * KT;
  const uint nk = min(KT, kpg - kl0);
  const uint np = min(PT, p.OW - ox0);
  const uint k0 = g * kpg + kl0;
  const uint cpg = p.C / p.G;
  const uint c0 = g * cpg;
  const uint khw = p.KH * KW;
  const uint wstride = cpg * khw;
  const int iy0 = int(oy * p.SH) - int(p.PH);
  const int ix0 = int(ox0 * SW) - int(p.PW);

  float acc[KT * PT];
  [[unroll]] for (uint j = 0; j < KT * PT; ++j) acc[j] = 0.0;
  for (uint c = 0; c < cpg; ++c) {
    // Summing each channel's window apart keeps fp32 rounding close to the double reference.
    float part[KT * PT];
    [[unroll]] for (uint j = 0; j < KT * PT; ++j) part[j] = 0.0;
    const uint xplane = (n * p.C + c0 + c) * p.H * p.W;
    const uint wbase = (k0 * cpg + c) * khw;
    for (uint ky = 0; ky < p.KH; ++ky) {
      const int iy = iy0 + int(ky);
      if (iy < 0 || iy >= int(p.H)) continue;
      const uint xrow = xplane + uint(iy) * p.W;
      float xs[XS];
      [[unroll]] for (uint s = 0; s < XS; ++s) {
        // Padding reads a clamped address and counts as zero: no branch per pixel.
        const int ix = ix0 + int(s);
        const float v = LOAD_F(x, xrow + uint(clamp(ix, 0, int(p.W) - 1)));
        xs[s] = (ix >= 0 && ix < int(p.W)) ? v : 0.0;
      }
      const uint wo = wbase + ky * KW;
      [[unroll]] for (uint kx = 0; kx < KW; ++kx) {
        [[unroll]] for (uint j = 0; j < KT; ++j) {
          // Channels past the tile's end reuse its last channel; their sums are never stored.
          const float wv = LOAD_F(w, wo + kx + min(j, nk - 1) * wstride);
          [[unroll]] for (uint t = 0; t < PT; ++t) part[j * PT + t] += xs[t * SW + kx] * wv;
        }
      }
    }
    [[unroll]] for (uint j = 0; j < KT * PT; ++j) acc[j] += part[j];
  }
  [[unroll]] for (uint j = 0; j < KT; ++j) {
    if (j >= nk) break;
    const uint k = k0 + j;
    const float bias = (p.flags & 1u) != 0u ? float(b[k]) : 0.0;
    const uint yrow = ((n * p.K + k) * p.OH + oy) * p.OW + ox0;
    [[unroll]] for (uint t = 0; t < PT; ++t) {
      if (t >= np) break;
      float v = acc[j * PT + t] + bias;
      if ((p.flags & 2u) != 0u && v < 0.0) v = 0.0;  // NaN stays NaN
      y[yrow + t] = VALUE(v);
    }
  }
}
