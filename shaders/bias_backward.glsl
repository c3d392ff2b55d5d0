// db[c] = sum over n and s of dy[n, c, s]: one workgroup per channel, a tree reduction in
// shared memory. The workgroup size (specialization constant 0) must be a power of two.
// The host bounds the images of one dispatch (each invocation loops over all of them); a
// dispatch with `accumulate` adds its sum to what earlier ones wrote.
#include "common.glsl"
#include "loads.glsl"

// dy [N, C, S]
INPUT_F(0, dy);
// db [C]
layout(std430, set = 0, binding = 1) buffer DB { float db[]; };

layout(push_constant) uniform Params { uint N, C, S, accumulate; } p;

shared float partial[gl_WorkGroupSize.x];

void main() {
  const uint c = linear_group_id();
  if (c >= p.C) return;
  const uint t = gl_LocalInvocationID.x;
  float acc = 0.0;
  for (uint n = 0; n < p.N; ++n) {
    float part = 0.0;
    for (uint s = t; s < p.S; s += gl_WorkGroupSize.x) part += LOAD_F(dy, (n * p.C + c) * p.S + s);
    acc += part;
  }
  partial[t] = acc;
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    barrier();
    if (t < stride) partial[t] += partial[t + stride];
  }
  if (t == 0) db[c] = p.accumulate != 0u ? db[c] + partial[0] : partial[0];
}
