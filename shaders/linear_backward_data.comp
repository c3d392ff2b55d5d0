#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy W for a fully connected layer: dx[n, k] = sum_m dy[n, m] w[m, k], one invocation
// per dx element. W may be bound in blocks of rows [m0, m0 + rows); every block after the
// first adds to dx (flags & 1).
#include "common.glsl"

// dy [N, M]
layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
// w rows [m0, m0 + rows) of [M, K]
layout(std430, set = 0, binding = 1) readonly buffer Wt { float w[]; };
// dx [N, K]
layout(std430, set = 0, binding = 2) buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, K, M;
  uint m0, rows;
  uint flags;  // 1: accumulate into dx
} p;

const uint kBlock = 32;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.K) return;
  const uint k = i % p.K;
  const uint n = i / p.K;
  float acc = 0.0;
  for (uint r0 = 0; r0 < p.rows; r0 += kBlock) {
    float part = 0.0;
    const uint r1 = min(r0 + kBlock, p.rows);
    for (uint r = r0; r < r1; ++r) part += dy[n * p.M + p.m0 + r] * w[r * p.K + k];
    acc += part;
  }
  dx[i] = (p.flags & 1u) != 0u ? dx[i] + acc : acc;
}
