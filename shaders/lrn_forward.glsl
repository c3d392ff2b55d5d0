// Local response normalisation across channels (torch.nn.LocalResponseNorm's definition):
// y = x / (k + alpha / size * sum_{c' in window(c)} x[c']^2)^beta,
// window(c) = [c - LO, c + HI] clipped to [0, C) (LO = size/2 and HI = (size-1)/2 as torch,
// or ONNX's LO = (size-1)/2 and HI = size/2).
// One invocation walks the channels of one pixel of one image, keeping the window's values in
// registers (size is specialization constant 1): each value is loaded once, where one
// invocation per output would load it size times. Neighbouring invocations are neighbouring
// pixels, so their loads and stores are neighbouring addresses.
#include "common.glsl"
#include "loads.glsl"

layout(constant_id = 1) const int SIZE = 5;
// The window reaches LO channels below and HI above: LO = SIZE / 2 (torch, Caffe), or ONNX's
// (SIZE - 1) / 2 (LrnParams::below()).
layout(constant_id = 2) const int LO = 2;
const int HI = SIZE - 1 - LO;

// x, y [N, C, H, W]
INPUT_F(0, x);
layout(std430, set = 0, binding = 1) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params {
  uint N, C, HW;
  uint size;  // = SIZE
  float alpha, beta, k;
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.HW) return;
  const uint base = (i / p.HW) * p.C * p.HW + i % p.HW;  // channel 0 of this pixel
  const int C = int(p.C);
  // win[j] = x of channel c - LO + j (zero outside [0, C)), for the channel c being written.
  float win[SIZE];
  [[unroll]] for (int j = 0; j < SIZE; ++j) {
    const int ch = j - LO;
    win[j] = ch >= 0 && ch < C ? LOAD_F(x, base + uint(ch) * p.HW) : 0.0;
  }
  const float a = p.alpha / float(SIZE);
  for (int c = 0; c < C; ++c) {
    if (c > 0) {
      [[unroll]] for (int j = 0; j + 1 < SIZE; ++j) win[j] = win[j + 1];
      const int ch = c + HI;
      win[SIZE - 1] = ch < C ? LOAD_F(x, base + uint(ch) * p.HW) : 0.0;
    }
    float sum = 0.0;
    [[unroll]] for (int j = 0; j < SIZE; ++j) sum += win[j] * win[j];
    y[base + uint(c) * p.HW] = VALUE(win[LO] * exp2(-p.beta * log2(p.k + a * sum)));
  }
}
