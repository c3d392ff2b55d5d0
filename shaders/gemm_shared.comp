#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// The GPU family's matrix product: the same C = A B (+ bias, ReLU, or added to C) with any
// strides, over Z1 x Z2 products and an inner sum of IB, as gemm.comp (its push constants),
// for devices where many invocations share fast on-chip memory. A workgroup of WG invocations
// (specialization constant 0) computes a BM x BN tile of C: per step it stages a BK-deep slice
// of A (BM x BK) and of B (BK x BN) in shared memory, every invocation loading a few elements
// (along whichever of k, m or n is contiguous in memory, so neighbouring invocations read
// neighbouring addresses), then each invocation multiplies its TM x TN outputs from registers:
// TM + TN shared loads per TM * TN multiply-adds. The invocations form WN columns (constant 3)
// by WG / WN rows; an invocation's outputs are WG / WN rows and WN columns apart, so that a
// row of invocations reads and writes neighbouring addresses. Two barriers per step; on CPU
// drivers barriers are costly and the registry prefers gemm.comp there.
// Sums are per BK-deep step, added to the total: fp32 rounding stays close to the double
// reference, as in gemm.comp.
#include "common.glsl"

layout(constant_id = 1) const uint TM = 4;
layout(constant_id = 2) const uint TN = 4;
layout(constant_id = 3) const uint WN = 16;
const uint WM = gl_WorkGroupSize.x / WN;
const uint BM = WM * TM, BN = WN * TN;
const uint BK = 16;

layout(std430, set = 0, binding = 0) readonly buffer A { VALUE a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { VALUE b[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { VALUE bias[]; };
layout(std430, set = 0, binding = 3) buffer C { VALUE c[]; };

#include "gemm_params.glsl"
#include "gemm_store.glsl"

shared float As[BK * BM];  // [k][m]
shared float Bs[BK * BN];  // [k][n]

void main() {
  const uint mtiles = (p.M + BM - 1) / BM, ntiles = (p.N + BN - 1) / BN;
  const uint g = linear_group_id();
  const uint nt = g % ntiles, mt = (g / ntiles) % mtiles, z = g / (ntiles * mtiles);
  const uint z1 = z % p.Z1, z2 = z / p.Z1;
  const uint lid = gl_LocalInvocationID.x;
  const uint tn = lid % WN, tm = lid / WN;
  const uint m0 = mt * BM, n0 = nt * BN;
  // Staging order: k fastest where the operand is contiguous along k, else m (n).
  const bool a_along_k = p.a_ks == 1u, b_along_k = p.b_ks == 1u;

  float acc[TM * TN];
  [[unroll]] for (uint i = 0; i < TM * TN; ++i) acc[i] = 0.0;

  for (uint ib = 0; ib < p.IB; ++ib) {
    const uint abase = p.a_off + z1 * p.a_z1 + z2 * p.a_z2 + ib * p.a_ib;
    const uint bbase = p.b_off + z1 * p.b_z1 + z2 * p.b_z2 + ib * p.b_ib;
    for (uint k0 = 0; k0 < p.K; k0 += BK) {
      for (uint e = lid; e < BK * BM; e += gl_WorkGroupSize.x) {
        const uint kk = a_along_k ? e % BK : e / BM, mm = a_along_k ? e / BK : e % BM;
        const uint m = m0 + mm, k = k0 + kk;
        As[kk * BM + mm] = (m < p.M && k < p.K) ? float(a[abase + m * p.a_ms + k * p.a_ks]) : 0.0;
      }
      for (uint e = lid; e < BK * BN; e += gl_WorkGroupSize.x) {
        const uint kk = b_along_k ? e % BK : e / BN, nn = b_along_k ? e / BK : e % BN;
        const uint n = n0 + nn, k = k0 + kk;
        Bs[kk * BN + nn] = (n < p.N && k < p.K) ? float(b[bbase + k * p.b_ks + n * p.b_ns]) : 0.0;
      }
      barrier();
      float part[TM * TN];
      [[unroll]] for (uint i = 0; i < TM * TN; ++i) part[i] = 0.0;
      [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
        float av[TM], bv[TN];
        [[unroll]] for (uint i = 0; i < TM; ++i) av[i] = As[kk * BM + tm + i * WM];
        [[unroll]] for (uint j = 0; j < TN; ++j) bv[j] = Bs[kk * BN + tn + j * WN];
        [[unroll]] for (uint i = 0; i < TM; ++i)
          [[unroll]] for (uint j = 0; j < TN; ++j) part[i * TN + j] = fma(av[i], bv[j], part[i * TN + j]);
      }
      [[unroll]] for (uint i = 0; i < TM * TN; ++i) acc[i] += part[i];
      barrier();  // the next step overwrites the tiles
    }
  }

  const uint cbase = p.c_off + z1 * p.c_z1 + z2 * p.c_z2;
  [[unroll]] for (uint i = 0; i < TM; ++i) {
    const uint m = m0 + tm + i * WM;
    if (m >= p.M) break;
    [[unroll]] for (uint j = 0; j < TN; ++j) {
      const uint n = n0 + tn + j * WN;
      if (n < p.N) store_c(cbase + m * p.c_ms + n * p.c_ns, m, n, z1, acc[i * TN + j]);
    }
  }
}
