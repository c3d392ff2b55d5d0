#version 450
#extension GL_GOOGLE_include_directive : require
// Fully connected layer as a register-tiled GEMM with vec4 loads: y[n, m] = sum_k x[n, k] *
// w[m, k] + b[m]. Each invocation computes 4 neighbouring output features for RN images
// (specialization constant 1), loading 4 + RN vec4 per 16 RN multiply-adds: a quarter of the
// loads per multiply-add of linear_forward.comp, which is what bounds it on CPU drivers (every
// storage-buffer load is a loop over lanes there). K must be a multiple of 4. The host may bind
// w in blocks of rows; this dispatch computes columns [m0, m0 + rows) of y.
#include "common.glsl"

layout(constant_id = 1) const uint RN = 4;

// x [N, K / 4] vec4
layout(std430, set = 0, binding = 0) readonly buffer X { VALUE4 x[]; };
// w rows [m0, m0 + rows) of [M, K / 4] vec4
layout(std430, set = 0, binding = 1) readonly buffer Wt { VALUE4 w[]; };
// bias [M] (read when flags & 1)
layout(std430, set = 0, binding = 2) readonly buffer B { VALUE b[]; };
// y [N, M]
layout(std430, set = 0, binding = 3) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params {
  uint N, K, M;
  uint m0, rows;
  uint flags;  // 1: add bias, 2: ReLU
} p;

const uint kBlock = 8;  // vec4 steps per partial sum (32 terms) keep fp32 rounding small for K = 9216

void main() {
  const uint K4 = p.K / 4;
  const uint mtiles = (p.rows + 3) / 4;
  const uint ntiles = (p.N + RN - 1) / RN;
  const uint i = global_index();
  if (i >= mtiles * ntiles) return;
  const uint r0 = (i % mtiles) * 4, n0 = (i / mtiles) * RN;
  const uint nr = min(4u, p.rows - r0), nn = min(RN, p.N - n0);
  float acc[4 * RN];
  for (uint j = 0; j < 4 * RN; ++j) acc[j] = 0.0;
  for (uint k0 = 0; k0 < K4; k0 += kBlock) {
    vec4 part[4 * RN];
    for (uint j = 0; j < 4 * RN; ++j) part[j] = vec4(0.0);
    const uint k1 = min(k0 + kBlock, K4);
    for (uint k = k0; k < k1; ++k) {
      vec4 wv[4];
      // Rows and images past a tile's end reuse its last one; their sums are never stored.
      for (uint j = 0; j < 4; ++j) wv[j] = vec4(w[(r0 + min(j, nr - 1)) * K4 + k]);
      for (uint q = 0; q < RN; ++q) {
        const vec4 xv = vec4(x[(n0 + min(q, nn - 1)) * K4 + k]);
        for (uint j = 0; j < 4; ++j) part[j * RN + q] = fma(wv[j], xv, part[j * RN + q]);
      }
    }
    for (uint j = 0; j < 4 * RN; ++j) acc[j] += (part[j].x + part[j].y) + (part[j].z + part[j].w);
  }
  for (uint j = 0; j < 4; ++j) {
    if (j >= nr) break;
    const uint m = p.m0 + r0 + j;
    const float bias = (p.flags & 1u) != 0u ? float(b[m]) : 0.0;
    for (uint q = 0; q < RN; ++q) {
      if (q >= nn) break;
      float v = acc[j * RN + q] + bias;
      if ((p.flags & 2u) != 0u && v < 0.0) v = 0.0;  // NaN stays NaN
      y[(n0 + q) * p.M + m] = VALUE(v);
    }
  }
}
