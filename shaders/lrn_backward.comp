#version 450
#extension GL_GOOGLE_include_directive : require
// dx of local response normalisation (see lrn_forward.comp). With s_c = k + alpha/size *
// sum_{j in W(c)} x_j^2 and y_c = x_c s_c^-beta:
// dx_i = dy_i s_i^-beta - 2 alpha/size beta x_i sum_{c : i in W(c)} dy_c x_c s_c^(-beta-1).
#include "common.glsl"

// dy, x, dx [N, C, H, W]
layout(std430, set = 0, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, HW;
  uint size;
  float alpha, beta, k;
} p;

float scale_of(uint n, int c, uint s) {
  const int lo = max(c - int(p.size / 2), 0);
  const int hi = min(c + int((p.size - 1) / 2), int(p.C) - 1);
  float sum = 0.0;
  for (int j = lo; j <= hi; ++j) {
    const float v = x[(n * p.C + uint(j)) * p.HW + s];
    sum += v * v;
  }
  return p.k + p.alpha / float(p.size) * sum;
}

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.HW) return;
  const uint s = i % p.HW;
  const int ci = int((i / p.HW) % p.C);
  const uint n = i / (p.HW * p.C);
  // Channels whose window holds ci: [ci - (size-1)/2, ci + size/2].
  const int lo = max(ci - int((p.size - 1) / 2), 0);
  const int hi = min(ci + int(p.size / 2), int(p.C) - 1);
  float cross = 0.0;
  for (int c = lo; c <= hi; ++c) {
    const uint at = (n * p.C + uint(c)) * p.HW + s;
    const float sc = scale_of(n, c, s);
    cross += dy[at] * x[at] * exp2((-p.beta - 1.0) * log2(sc));
  }
  const float si = scale_of(n, ci, s);
  dx[i] = dy[i] * exp2(-p.beta * log2(si)) - 2.0 * p.alpha / float(p.size) * p.beta * x[i] * cross;
}
