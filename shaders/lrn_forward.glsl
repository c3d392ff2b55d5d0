// Local response normalisation across channels (torch.nn.LocalResponseNorm's definition):
// y = x / (k + alpha / size * sum_{c' in window(c)} x[c']^2)^beta,
// window(c) = [c - size/2, c + (size-1)/2] clipped to [0, C).
#include "common.glsl"
#include "loads.glsl"

// x, y [N, C, H, W]
INPUT_F(0, x);
layout(std430, set = 0, binding = 1) writeonly buffer Y { VALUE y[]; };

layout(push_constant) uniform Params {
  uint N, C, HW;
  uint size;
  float alpha, beta, k;
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.HW) return;
  const uint s = i % p.HW;
  const int c = int((i / p.HW) % p.C);
  const uint n = i / (p.HW * p.C);
  const int lo = max(c - int(p.size / 2), 0);
  const int hi = min(c + int((p.size - 1) / 2), int(p.C) - 1);
  float sum = 0.0;
  for (int j = lo; j <= hi; ++j) {
    const float v = LOAD_F(x, (n * p.C + uint(j)) * p.HW + s);
    sum += v * v;
  }
  const float scale = p.k + p.alpha / float(p.size) * sum;
  y[i] = VALUE(LOAD_F(x, i) * exp2(-p.beta * log2(scale)));
}
