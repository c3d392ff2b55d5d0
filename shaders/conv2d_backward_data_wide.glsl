// dx of a stride-1 convolution with wide register tiles: dx[n, c, iy, ix] = sum over k, ky, kx
// of dy[n, k, iy + PH - ky, ix + PW - kx] * w[k, c, ky, kx]. Each invocation computes CT input
// channels (specialization constant 1) of PT neighbouring pixels in a row (constant 2); per
// output channel and kernel row it loads the dy row segment the PT pixels need once,
// PT + KW - 1 values, and KW * CT weights. The kernel width KW (constant 3) is a constant so
// that the loops over the segment unroll and index registers. Strides other than 1 take
// conv2d_backward_data.comp. dy and the weights are read through storage buffers
// (conv2d_backward_data_wide.comp) or through scalar texel buffers
// (conv2d_backward_data_wide_texel.comp; see loads.glsl).
#include "common.glsl"
#include "loads.glsl"

layout(constant_id = 1) const uint CT = 4;
layout(constant_id = 2) const uint PT = 8;
layout(constant_id = 3) const uint KW = 3;
const uint XS = PT + KW - 1;

// dy [N, K, OH, OW]
INPUT_F(0, dy);
// weight [K, C / G, KH, KW]
INPUT_F(1, w);
// dx [N, C, H, W]
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

// As conv2d_backward_data.comp's (KW_ there equals the constant KW; both strides are 1).
layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint K, OH, OW;
  uint KH, KW_, SH, SW, PH, PW;
  uint G;
} p;

void main() {
  const uint cpg = p.C / p.G, kpg = p.K / p.G;
  const uint ctiles = (cpg + CT - 1) / CT;
  const uint xtiles = (p.W + PT - 1) / PT;
  const uint i = global_index();
  if (i >= p.N * p.G * ctiles * p.H * xtiles) return;
  const uint ix0 = (i % xtiles) * PT;
  const int iy = int((i / xtiles) % p.H);
  const uint tile = (i / (xtiles * p.H)) % (p.G * ctiles);
  const uint n = i / (xtiles * p.H * p.G * ctiles);
  const uint g = tile / ctiles;
  const uint cl0 = (tile % ctiles) * CT;
  const uint nc = min(CT, cpg - cl0);
  const uint np = min(PT, p.W - ix0);
  const uint khw = p.KH * KW;
  // Output column of segment value s: ox = ix0 + PW - (KW - 1) + s, so that pixel t and tap
  // kx read segment value t + KW - 1 - kx.
  const int ox0 = int(ix0 + p.PW) - int(KW - 1);

  float acc[CT * PT];
  [[unroll]] for (uint j = 0; j < CT * PT; ++j) acc[j] = 0.0;
  for (uint kk = 0; kk < kpg; ++kk) {
    const uint k = g * kpg + kk;
    const uint wk = (k * cpg + cl0) * khw;
    float part[CT * PT];
    [[unroll]] for (uint j = 0; j < CT * PT; ++j) part[j] = 0.0;
    for (uint ky = 0; ky < p.KH; ++ky) {
      const int oy = iy + int(p.PH) - int(ky);
      if (oy < 0 || oy >= int(p.OH)) continue;
      const uint dyrow = ((n * p.K + k) * p.OH + uint(oy)) * p.OW;
      float gs[XS];
      [[unroll]] for (uint s = 0; s < XS; ++s) {
        // Columns outside dy read a clamped address and count as zero.
        const int ox = ox0 + int(s);
        const float v = LOAD_F(dy, dyrow + uint(clamp(ox, 0, int(p.OW) - 1)));
        gs[s] = (ox >= 0 && ox < int(p.OW)) ? v : 0.0;
      }
      const uint wo = wk + ky * KW;
      [[unroll]] for (uint kx = 0; kx < KW; ++kx) {
        [[unroll]] for (uint j = 0; j < CT; ++j) {
          // Channels past the tile's end reuse its last channel; their sums are never stored.
          const float wv = LOAD_F(w, wo + kx + min(j, nc - 1) * khw);
          [[unroll]] for (uint t = 0; t < PT; ++t) part[j * PT + t] += gs[t + KW - 1 - kx] * wv;
        }
      }
    }
    [[unroll]] for (uint j = 0; j < CT * PT; ++j) acc[j] += part[j];
  }
  const uint plane = p.H * p.W;
  const uint o = ((n * p.C + g * cpg + cl0) * p.H + uint(iy)) * p.W + ix0;
  [[unroll]] for (uint j = 0; j < CT; ++j) {
    if (j >= nc) break;
    [[unroll]] for (uint t = 0; t < PT; ++t) {
      if (t >= np) break;
      dx[o + j * plane + t] = acc[j * PT + t];
    }
  }
}
