// dx of max pooling: dx[j] = sum of dy[o] over the outputs o whose argmax is j. The host fills
// dx with zeros, then runs this kernel once per class of outputs (RY, RX): those with
// oy % PY == RY and ox % PX == RX, where PY = ceil(KH / SH) and PX = ceil(KW / SW). Windows
// of one class never overlap, so no two of its outputs add to the same dx element and each
// invocation adds its dy without atomics; the classes run one after another. Work grows with
// the outputs (a quarter of the inputs for 3/2 pooling), not with inputs times windows.
#include "common.glsl"
#include "loads.glsl"

// dy [N, C, OH, OW]
INPUT_F(0, dy);
// argmax [N, C, OH, OW]: flat indices into the whole x (index_base is this dispatch's first)
INPUT_U(1, argmax);
// dx [N, C, H, W], zero before the first class
layout(std430, set = 0, binding = 2) buffer DX { float dx[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW;
  uint PY, PX, RY, RX;  // the class of outputs this dispatch adds
  uint index_base;
} p;

void main() {
  const uint i = global_index();
  const uint cy = (p.OH - p.RY + p.PY - 1) / p.PY, cx = (p.OW - p.RX + p.PX - 1) / p.PX;
  if (i >= p.N * p.C * cy * cx) return;
  const uint ox = p.RX + (i % cx) * p.PX;
  const uint oy = p.RY + ((i / cx) % cy) * p.PY;
  const uint plane = i / (cx * cy);
  const uint o = (plane * p.OH + oy) * p.OW + ox;
  const uint j = LOAD_U(argmax, o) - p.index_base;
  if (j < p.N * p.C * p.H * p.W) dx[j] += LOAD_F(dy, o);  // an argmax from elsewhere adds nothing
}
