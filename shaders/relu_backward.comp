#version 450
#extension GL_GOOGLE_include_directive : require
// dx = dy where the ReLU's output y is positive, else 0. dx may be dy itself.
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, set = 0, binding = 1) readonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params { uint count; } p;

void main() {
  const uint i = global_index();
  if (i >= p.count) return;
  dx[i] = y[i] > 0.0 ? dy[i] : 0.0;
}
