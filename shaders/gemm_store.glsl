// The end of every GEMM kernel: C[o] = v (+ the bias of row m or of column n) (+ C[o]), then
// ReLU, stored as the tensors' element type. Included after the push constants p and the
// bindings `bias` and `c` are declared.
#ifndef VKALEX_GEMM_STORE_GLSL
#define VKALEX_GEMM_STORE_GLSL

void store_c(uint o, uint m, uint n, uint z1, float v) {
  if ((p.flags & 1u) != 0u) v += float(bias[p.bias_off + z1 * p.bias_z1 + m]);
  if ((p.flags & 2u) != 0u) v += float(bias[p.bias_off + z1 * p.bias_z1 + n]);
  if ((p.flags & 8u) != 0u) v += float(c[o]);
  if ((p.flags & 4u) != 0u && v < 0.0) v = 0.0;  // NaN stays NaN
  c[o] = VALUE(v);
}

#endif
