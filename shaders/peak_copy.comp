#version 450
#extension GL_GOOGLE_include_directive : require
// The device's memory bandwidth: y = x, one vec4 per invocation (16 bytes read, 16 written).
#include "common.glsl"

// x [n] vec4
layout(std430, set = 0, binding = 0) readonly buffer X { vec4 x[]; };
// y [n] vec4
layout(std430, set = 0, binding = 1) writeonly buffer Y { vec4 y[]; };

layout(push_constant) uniform Params { uint n; } p;

void main() {
  const uint i = global_index();
  if (i < p.n) y[i] = x[i];
}
