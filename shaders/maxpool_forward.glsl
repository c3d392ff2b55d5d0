// Max or average pooling, one invocation per output element. Max: padding counts as
// -infinity; the first maximum wins ties and a NaN wins over everything, as in the CPU
// reference (and torch). Average: the sum over the window's elements inside the input, divided
// by their count, or with count_include_pad by the count of those inside the padded input
// (padding counting as zeros, as ONNX and torch do).
// The window's size is specialization constants 1 and 2 (equal to the push constants KH,
// KW), so that its loops unroll; 0 and 0 for large windows, which loop over the push constants.
#include "common.glsl"
#include "loads.glsl"

layout(constant_id = 1) const uint KH_C = 3;
layout(constant_id = 2) const uint KW_C = 3;

// x [N, C, H, W]
INPUT_F(0, x);
// y [N, C, OH, OW]
layout(std430, set = 0, binding = 1) writeonly buffer Y { VALUE y[]; };
// argmax [N, C, OH, OW]: flat index into this dispatch's x (written when flags & 1)
layout(std430, set = 0, binding = 2) writeonly buffer A { uint argmax[]; };

layout(push_constant) uniform Params {
  uint N, C, H, W;
  uint OH, OW;
  uint KH, KW, SH, SW, PH, PW;
  uint flags;  // 1: write argmax; 2: average; 4: average counting padding
  uint index_base;  // added to every argmax (the dispatch's first element in the whole x)
  uint PHE, PWE;  // padding at the bottom and the right
  uint DH, DW;    // dilation: the window's taps are DH rows (DW columns) apart
} p;

void main() {
  const uint i = global_index();
  if (i >= p.N * p.C * p.OH * p.OW) return;
  const uint ox = i % p.OW;
  const uint oy = (i / p.OW) % p.OH;
  const uint plane = i / (p.OW * p.OH);  // n * C + c
  const int iy0 = int(oy * p.SH) - int(p.PH);
  const int ix0 = int(ox * p.SW) - int(p.PW);
  float best = uintBitsToFloat(0xff800000u);  // -infinity
  uint best_index = 0xffffffffu;
  float sum = 0.0;
  uint count = 0;
  const uint kh = KH_C != 0 ? KH_C : p.KH, kw = KW_C != 0 ? KW_C : p.KW;
  [[unroll]] for (uint ky = 0; ky < kh; ++ky) {
    const int iy = iy0 + int(ky * p.DH);
    if (iy < 0 || iy >= int(p.H)) continue;
    [[unroll]] for (uint kx = 0; kx < kw; ++kx) {
      const int ix = ix0 + int(kx * p.DW);
      if (ix < 0 || ix >= int(p.W)) continue;
      const uint j = (plane * p.H + uint(iy)) * p.W + uint(ix);
      const float v = LOAD_F(x, j);
      sum += v;
      ++count;
      if (best_index == 0xffffffffu || v > best || (isnan(v) && !isnan(best))) {
        best = v;
        best_index = j;
      }
    }
  }
  if ((p.flags & 2u) != 0u) {
    if ((p.flags & 4u) != 0u) {
      // The window's taps inside [-PH, H + PHE) x [-PW, W + PWE) (they start at or after -PH).
      const int ly = int(p.H + p.PHE) - iy0, lx = int(p.W + p.PWE) - ix0;
      const int cy = ly <= 0 ? 0 : min(int(kh), (ly + int(p.DH) - 1) / int(p.DH));
      const int cx = lx <= 0 ? 0 : min(int(kw), (lx + int(p.DW) - 1) / int(p.DW));
      count = uint(cy * cx);
    }
    y[i] = VALUE(sum / float(count));
    return;
  }
  y[i] = VALUE(best);
  if ((p.flags & 1u) != 0u) argmax[i] = best_index + p.index_base;
}
