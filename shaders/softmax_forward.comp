#version 450
#extension GL_GOOGLE_include_directive : require
// Softmax over rows of length L, one workgroup per row: y = exp(x - max) / sum exp(x - max).
// A row's elements are `inner` apart: the tensor is blocks of L x inner values, row r is
// element r % inner of block r / inner (inner 1: consecutive rows, the usual case; ONNX's
// softmax along an axis with others after it). The workgroup size (specialization constant 0)
// must be a power of two.
#include "common.glsl"

// x, y [rows, L]
layout(std430, set = 0, binding = 0) readonly buffer X { VALUE x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params { uint rows, L, inner; } p;

shared float partial[gl_WorkGroupSize.x];

// Tree reduction of partial[]; op 0 = max, 1 = sum. Result in partial[0].
void reduce(uint op) {
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    barrier();
    const uint t = gl_LocalInvocationID.x;
    if (t < stride) {
      partial[t] = op == 0 ? max(partial[t], partial[t + stride]) : partial[t] + partial[t + stride];
    }
  }
  barrier();
}

void main() {
  const uint row = linear_group_id();
  if (row >= p.rows) return;  // whole workgroup leaves together
  const uint t = gl_LocalInvocationID.x;
  const uint base = (row / p.inner) * p.L * p.inner + row % p.inner;
  const uint step = p.inner;

  // A NaN may be dropped by max(), but it still turns the sum, and so every output, to NaN.
  float m = uintBitsToFloat(0xff800000u);
  for (uint j = t; j < p.L; j += gl_WorkGroupSize.x) m = max(m, float(x[base + j * step]));
  partial[t] = m;
  reduce(0);
  const float row_max = partial[0];
  barrier();

  float s = 0.0;
  for (uint j = t; j < p.L; j += gl_WorkGroupSize.x) s += exp(float(x[base + j * step]) - row_max);
  partial[t] = s;
  reduce(1);
  const float inv = 1.0 / partial[0];

  for (uint j = t; j < p.L; j += gl_WorkGroupSize.x) y[base + j * step] = VALUE(exp(float(x[base + j * step]) - row_max) * inv);
}
