// dx = dy where the ReLU's output y is positive, else 0. dx may be dy itself.
#include "common.glsl"
#include "loads.glsl"

INPUT_F(0, dy);
INPUT_F(1, y);
layout(std430, set = 0, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Params { uint count; } p;

void main() {
  const uint i = global_index();
  if (i >= p.count) return;
  dx[i] = LOAD_F(y, i) > 0.0 ? LOAD_F(dy, i) : 0.0;
}
