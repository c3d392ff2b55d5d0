// dx of local response normalisation (see lrn_forward.glsl). With s_c = k + alpha/size *
// sum_{j in W(c)} x_j^2, r_c = s_c^-beta and y_c = x_c r_c:
// dx_i = dy_i r_i - 2 alpha/size beta x_i sum_{c : i in W(c)} t_c,  t_c = dy_c x_c r_c / s_c,
// where the channels c whose window holds i are [i - HI, i + LO].
// One invocation walks the channels of one pixel of one image: at step c it forms s_c from
// the x window in registers, then t_c, and writes dx of channel c - LO, whose sum needs t up
// to channel c. Each x and dy is loaded once and each s_c raised to a power once, where one
// invocation per element would load 3 size and raise size + 1.
#include "common.glsl"
#include "loads.glsl"

layout(constant_id = 1) const int SIZE = 5;
// The window reaches LO channels below and HI above: LO = SIZE / 2 (torch, Caffe), or ONNX's
// (SIZE - 1) / 2 (LrnParams::below()).
layout(constant_id = 2) const int LO = 2;
const int HI = SIZE - 1 - LO;

// dy, x, dx [N, C, H, W]
INPUT_F(0, dy);
INPUT_F(1, x);
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, HW;
  uint size;  // = SIZE
  float alpha, beta, k;
  uint relu;  // 1: x is a ReLU's output, and dx goes back through it (zero where x <= 0)
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.HW) return;
  const uint base = (i / p.HW) * p.C * p.HW + i % p.HW;
  const int C = int(p.C);
  const float a = p.alpha / float(SIZE);
  // At step c: xw[j] = x of channel c - LO + j; tw[j] = t of channel c - SIZE + 1 + j;
  // qw[j] = dy r of channel c - LO + j (j <= LO). Zero outside [0, C).
  float xw[SIZE], tw[SIZE], qw[LO + 1];
  [[unroll]] for (int j = 0; j < SIZE; ++j) {
    const int ch = j - LO - 1;  // the window of channel -1: step 0 shifts it in place
    xw[j] = ch >= 0 && ch < C ? LOAD_F(x, base + uint(ch) * p.HW) : 0.0;
    tw[j] = 0.0;
  }
  [[unroll]] for (int j = 0; j <= LO; ++j) qw[j] = 0.0;
  for (int c = 0; c < C + LO; ++c) {
    [[unroll]] for (int j = 0; j + 1 < SIZE; ++j) {
      xw[j] = xw[j + 1];
      tw[j] = tw[j + 1];
    }
    [[unroll]] for (int j = 0; j < LO; ++j) qw[j] = qw[j + 1];
    const int ahead = c + HI;
    xw[SIZE - 1] = ahead < C ? LOAD_F(x, base + uint(ahead) * p.HW) : 0.0;
    float t = 0.0, q = 0.0;
    if (c < C) {
      float sum = 0.0;
      [[unroll]] for (int j = 0; j < SIZE; ++j) sum += xw[j] * xw[j];
      const float s = p.k + a * sum;
      const float r = exp2(-p.beta * log2(s));
      const float g = LOAD_F(dy, base + uint(c) * p.HW);
      t = g * xw[LO] * r / s;
      q = g * r;
    }
    tw[SIZE - 1] = t;
    qw[LO] = q;
    const int o = c - LO;  // the channel written; its x is xw[0]
    if (o >= 0) {
      float cross = 0.0;
      [[unroll]] for (int j = 0; j < SIZE; ++j) cross += tw[j];
      const float v = qw[0] - 2.0 * a * p.beta * xw[0] * cross;
      dx[base + uint(o) * p.HW] = p.relu == 0u || xw[0] > 0.0 ? v : 0.0;
    }
  }
}
