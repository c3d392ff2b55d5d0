#version 450
#extension GL_GOOGLE_include_directive : require
// y = max(x, 0), elementwise; x and y may be the same memory.
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { VALUE x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params { uint count; } p;

void main() {
  const uint i = global_index();
  if (i >= p.count) return;
  const float v = float(x[i]);
  // max(NaN, 0) may return either operand in GLSL: keep a NaN where the implementation lets
  // us (see common.glsl for why nothing depends on it).
  y[i] = VALUE(isnan(v) ? v : max(v, 0.0));
}
