#version 450
#extension GL_GOOGLE_include_directive : require
// The device's fp32 multiply-add peak with scalar operands: every invocation runs 12
// independent chains of fused multiply-adds, `iterations` times, so that the latency of one
// is hidden behind the others (fewer chains measure latency, not throughput). 12 x 1 x 2
// floating-point operations per iteration. a and b come from push constants, so the compiler
// cannot fold the chains; the sum is written, so it cannot drop them.
#include "common.glsl"

// one value per invocation
layout(std430, set = 0, binding = 0) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Params {
  uint iterations;
  float a, b;
} p;

void main() {
  const uint i = global_index();
  const float a = float(p.a), b = float(p.b);
  float c0 = float(float(i + 0u) * 1e-7);
  float c1 = float(float(i + 1u) * 1e-7);
  float c2 = float(float(i + 2u) * 1e-7);
  float c3 = float(float(i + 3u) * 1e-7);
  float c4 = float(float(i + 4u) * 1e-7);
  float c5 = float(float(i + 5u) * 1e-7);
  float c6 = float(float(i + 6u) * 1e-7);
  float c7 = float(float(i + 7u) * 1e-7);
  float c8 = float(float(i + 8u) * 1e-7);
  float c9 = float(float(i + 9u) * 1e-7);
  float c10 = float(float(i + 10u) * 1e-7);
  float c11 = float(float(i + 11u) * 1e-7);
  for (uint k = 0; k < p.iterations; ++k) {
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c4 = fma(c4, a, b);
    c5 = fma(c5, a, b);
    c6 = fma(c6, a, b);
    c7 = fma(c7, a, b);
    c8 = fma(c8, a, b);
    c9 = fma(c9, a, b);
    c10 = fma(c10, a, b);
    c11 = fma(c11, a, b);
  }
  result[i] = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
}
