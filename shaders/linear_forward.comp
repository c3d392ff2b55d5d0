#version 450
#extension GL_GOOGLE_include_directive : require
// Fully connected layer as a plain GEMM: y[n, m] = sum_k x[n, k] * w[m, k] + b[m], one
// invocation per output. The host may bind w in blocks of rows (a large fc6 exceeds
// maxStorageBufferRange); this dispatch computes columns [m0, m0 + rows) of y.
#include "common.glsl"

// x [N, K]
layout(std430, set = 0, binding = 0) readonly buffer X { VALUE x[]; };
// w rows [m0, m0 + rows) of [M, K]
layout(std430, set = 0, binding = 1) readonly buffer Wt { VALUE w[]; };
// bias [M] (read when flags & 1)
layout(std430, set = 0, binding = 2) readonly buffer B { VALUE b[]; };
// y [N, M]
layout(std430, set = 0, binding = 3) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params {
  uint N, K, M;
  uint m0, rows;
  uint flags;  // 1: add bias, 2: ReLU
} p;

const uint kBlock = 32;  // partial sums of 32 terms keep fp32 rounding small for K = 9216

void main() {
  const uint i = global_index();
  if (i >= p.N * p.rows) return;
  const uint r = i % p.rows;
  const uint n = i / p.rows;
  const uint xbase = n * p.K;
  const uint wbase = r * p.K;
  float acc = 0.0;
  for (uint k0 = 0; k0 < p.K; k0 += kBlock) {
    const uint k1 = min(k0 + kBlock, p.K);
    float part = 0.0;
    for (uint k = k0; k < k1; ++k) part += float(x[xbase + k]) * float(w[wbase + k]);
    acc += part;
  }
  const uint m = p.m0 + r;
  if ((p.flags & 1u) != 0u) acc += float(b[m]);
  if ((p.flags & 2u) != 0u && acc < 0.0) acc = 0.0;  // NaN stays NaN
  y[n * p.M + m] = VALUE(acc);
}
