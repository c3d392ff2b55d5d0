#version 450
#extension GL_GOOGLE_include_directive : require
// The second half of a reduction split over the batch: y[i] = sum over s of part[s * L + i],
// added in slice order so that the result does not depend on the device.
#include "common.glsl"

// part [S, L]
layout(std430, set = 0, binding = 0) readonly buffer Part { float part[]; };
// y [L]
layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Params { uint S, L; } p;

void main() {
  const uint i = global_index();
  if (i >= p.L) return;
  float acc = 0.0;
  for (uint s = 0; s < p.S; ++s) acc += part[s * p.L + i];
  y[i] = acc;
}
