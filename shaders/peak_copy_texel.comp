#version 450
#extension GL_GOOGLE_include_directive : require
// peak_copy.comp reading through an RGBA32F texel buffer: the load path the GEMM and the
// texel variants use, which on lavapipe is faster than storage-buffer loads.
#include "common.glsl"

// x [n] RGBA32F texels
layout(set = 0, binding = 0) uniform samplerBuffer x;
// y [n] vec4
layout(std430, set = 0, binding = 1) writeonly buffer Y { vec4 y[]; };

layout(push_constant) uniform Params { uint n; } p;

void main() {
  const uint i = global_index();
  if (i < p.n) y[i] = texelFetch(x, int(i));
}
