#version 450
#extension GL_GOOGLE_include_directive : require
// Copies a row-major matrix into rows of RP >= COLS floats, the extra columns zero:
// y[r, c] = c < COLS ? x[r * LD + c] : 0. gemm.comp loads rows padded to a multiple of 4 as vec4
// (a convolution's weights with 363 taps, for one).
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { VALUE x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params { uint ROWS, COLS, LD, RP; } p;

void main() {
  const uint i = global_index();
  if (i >= p.ROWS * p.RP) return;
  const uint r = i / p.RP, c = i % p.RP;
  y[i] = VALUE(c < p.COLS ? float(x[r * p.LD + c]) : 0.0);
}
