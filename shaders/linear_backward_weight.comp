#version 450
#extension GL_GOOGLE_include_directive : require
// dW = dy^T x for a fully connected layer: dw[m, k] = sum_n dy[n, m] x[n, k], one invocation
// per element of the bound block of rows [m0, m0 + rows). The host bounds the images of one
// dispatch by the loop budget; a dispatch with `accumulate` adds to what earlier ones wrote.
#include "common.glsl"

// dy [N, M]
layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
// x [N, K]
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
// dw rows [m0, m0 + rows) of [M, K]
layout(std430, set = 0, binding = 2) buffer DW { float dw[]; };

layout(push_constant) uniform Params {
  uint N, K, M;
  uint m0, rows;
  uint accumulate;
} p;

void main() {
  const uint i = global_index();
  if (i >= p.rows * p.K) return;
  const uint k = i % p.K;
  const uint r = i / p.K;
  float acc = 0.0;
  for (uint n = 0; n < p.N; ++n) acc += dy[n * p.M + p.m0 + r] * x[n * p.K + k];
  dw[i] = p.accumulate != 0u ? dw[i] + acc : acc;
}
