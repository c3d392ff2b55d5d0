// dx of local response normalisation (see lrn_forward.comp). With s_c = k + alpha/size *
// sum_{j in W(c)} x_j^2 and y_c = x_c s_c^-beta:
// dx_i = dy_i s_i^-beta - 2 alpha/size beta x_i sum_{c : i in W(c)} dy_c x_c s_c^(-beta-1).
// The window size is specialization constant 1 (equal to p.size): each invocation loads the
// 2 size - 1 channels around its own once and forms every s_c it needs from them.
#include "common.glsl"
#include "loads.glsl"

layout(constant_id = 1) const int SIZE = 5;

// dy, x, dx [N, C, H, W]
INPUT_F(0, dy);
INPUT_F(1, x);
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, HW;
  uint size;
  float alpha, beta, k;
} p;

const int REACH = SIZE - 1;  // channels on each side whose value can matter

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.HW) return;
  const uint s = i % p.HW;
  const int ci = int((i / p.HW) % p.C);
  const uint n = i / (p.HW * p.C);
  const uint base = n * p.C * p.HW + s;
  // xs[r] = x of channel ci - REACH + r, zero outside [0, C).
  float xs[2 * SIZE - 1];
  for (int r = 0; r < 2 * SIZE - 1; ++r) {
    const int c = ci - REACH + r;
    const float v = LOAD_F(x, base + uint(clamp(c, 0, int(p.C) - 1)) * p.HW);
    xs[r] = (c >= 0 && c < int(p.C)) ? v : 0.0;
  }
  // s_c for the channel at offset r from xs: the window [c - size/2, c + (size-1)/2].
  const float a = p.alpha / float(SIZE);
  float cross = 0.0, si = 0.0;
  // Channels whose window holds ci: [ci - (size-1)/2, ci + size/2].
  for (int d = -(SIZE - 1) / 2; d <= SIZE / 2; ++d) {
    const int c = ci + d;
    float sum = 0.0;
    for (int j = -SIZE / 2; j <= (SIZE - 1) / 2; ++j) sum += xs[REACH + d + j] * xs[REACH + d + j];
    const float sc = p.k + a * sum;
    if (d == 0) si = sc;
    if (c < 0 || c >= int(p.C)) continue;
    const float g = LOAD_F(dy, base + uint(c) * p.HW);
    cross += g * xs[REACH + d] * exp2((-p.beta - 1.0) * log2(sc));
  }
  dx[i] = LOAD_F(dy, i) * exp2(-p.beta * log2(si)) - 2.0 * a * p.beta * xs[REACH] * cross;
}
