#version 450
#extension GL_GOOGLE_include_directive : require
// Softmax with cross-entropy, averaged over the batch, fused: one workgroup per row.
// dlogits = (softmax(x) - onehot(label)) * inv_m (1/N, or 1/the global batch of data parallelism); stats[row] = (loss of the row, 1 if the label
// is the first largest logit else 0). The host checks every label < L; a label that is not
// (a caller that skipped the check) reads nothing out of the row: its loss is NaN, its
// gradient the softmax alone, and it is not counted correct.
// The workgroup size (specialization constant 0) must be a power of two.
#include "common.glsl"

// logits, dlogits [N, L]
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Labels { uint labels[]; };
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };
// stats [N, 2]
layout(std430, set = 0, binding = 3) writeonly buffer Stats { float stats[]; };

layout(push_constant) uniform Params { uint N, L; float inv_m; } p;

shared float best_value[gl_WorkGroupSize.x];
shared uint best_index[gl_WorkGroupSize.x];
shared float partial[gl_WorkGroupSize.x];

void main() {
  const uint row = linear_group_id();
  if (row >= p.N) return;
  const uint t = gl_LocalInvocationID.x;
  const uint base = row * p.L;

  // Row maximum and its first index.
  float m = uintBitsToFloat(0xff800000u);
  uint mi = 0xffffffffu;
  for (uint j = t; j < p.L; j += gl_WorkGroupSize.x) {
    const float v = x[base + j];
    if (mi == 0xffffffffu || v > m) { m = v; mi = j; }
  }
  best_value[t] = m;
  best_index[t] = mi;
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    barrier();
    if (t < stride) {
      const float a = best_value[t], b = best_value[t + stride];
      const uint ia = best_index[t], ib = best_index[t + stride];
      if (ia == 0xffffffffu || (ib != 0xffffffffu && (b > a || (b == a && ib < ia)))) {
        best_value[t] = b;
        best_index[t] = ib;
      }
    }
  }
  barrier();
  const float row_max = best_value[0];
  const uint argmax = best_index[0];

  float s = 0.0;
  for (uint j = t; j < p.L; j += gl_WorkGroupSize.x) s += exp(x[base + j] - row_max);
  partial[t] = s;
  for (uint stride = gl_WorkGroupSize.x / 2; stride > 0; stride /= 2) {
    barrier();
    if (t < stride) partial[t] += partial[t + stride];
  }
  barrier();
  const float lse = row_max + log(partial[0]);
  const uint label = labels[row];
  const bool valid = label < p.L;
  for (uint j = t; j < p.L; j += gl_WorkGroupSize.x) {
    dx[base + j] = (exp(x[base + j] - lse) - (j == label ? 1.0 : 0.0)) * p.inv_m;
  }
  if (t == 0) {
    stats[2 * row] = valid ? lse - x[base + min(label, p.L - 1u)] : uintBitsToFloat(0x7fc00000u);
    stats[2 * row + 1] = valid && argmax == label ? 1.0 : 0.0;
  }
}
