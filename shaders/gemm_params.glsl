// The push constants of gemm.comp, gemm_texel.comp and gemm_shared.comp (one C++ struct on the
// host, GemmPush in engine/src/ops/gemm.cpp; the pipeline check compares the two).
#ifndef VKALEX_GEMM_PARAMS_GLSL
#define VKALEX_GEMM_PARAMS_GLSL

layout(push_constant) uniform Params {
  uint M, N, K;
  uint a_off, b_off, c_off, bias_off;  // elements from each binding's start
  uint a_ms, a_ks, b_ks, b_ns, c_ms, c_ns;
  uint Z1;                          // products in the first grid dimension (groups)
  uint a_z1, b_z1, c_z1, bias_z1;   // their strides
  uint a_z2, b_z2, c_z2;            // strides of the second (images)
  uint IB, a_ib, b_ib;              // inner products summed into one C (at least 1)
  uint flags;                       // 1: bias per row m, 2: bias per column n, 4: ReLU, 8: add to C
} p;

#endif
