// dx of max pooling, one invocation per input element (a gather over the windows that cover
// it, so overlapping windows need no atomics): dx[j] = sum of dy[o] over outputs o whose
// argmax is j.
#include "common.glsl"
#include "loads.glsl"

// dy [N, C, OH, OW]
INPUT_F(0, dy);
// argmax [N, C, OH, OW]: flat indices into the whole x (index_base is this dispatch's first)
INPUT_U(1, argmax);
// dx [N, C, H, W]
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint index_base;
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.H * p.W) return;
  const int ix = int(i % p.W);
  const int iy = int((i / p.W) % p.H);
  const uint plane = i / (p.W * p.H);
  // Outputs whose window covers (iy, ix): oy*SH - PH <= iy <= oy*SH - PH + KH - 1.
  const int oy0 = max(0, (iy + int(p.PH) - int(p.KH) + int(p.SH)) / int(p.SH));
  const int oy1 = min(int(p.OH) - 1, (iy + int(p.PH)) / int(p.SH));
  const int ox0 = max(0, (ix + int(p.PW) - int(p.KW) + int(p.SW)) / int(p.SW));
  const int ox1 = min(int(p.OW) - 1, (ix + int(p.PW)) / int(p.SW));
  const uint me = i + p.index_base;
  float acc = 0.0;
  for (int oy = oy0; oy <= oy1; ++oy)
    for (int ox = ox0; ox <= ox1; ++ox) {
      const uint o = (plane * p.OH + uint(oy)) * p.OW + uint(ox);
      if (LOAD_U(argmax, o) == me) acc += LOAD_F(dy, o);
    }
  dx[i] = acc;
}
