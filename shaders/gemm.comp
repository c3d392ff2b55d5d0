#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Register-tiled matrix product for CPU-class drivers: C[m, n] = sum_k A[m, k] * B[k, n]
// (+ bias, ReLU, or added to C), with any strides, over a grid of Z1 x Z2 independent
// products (groups x images) and an optional inner sum over IB products (images, for weight
// gradients). Every operand may be strided, so one kernel serves the convolutions (through
// im2col.comp's patch matrix) and the fully connected layers, forward and both gradients.
//
// A workgroup is a row of lanes along n; each lane computes RM rows x RN columns (constants 1
// and 2). All lanes of a workgroup read the same A values (their rows depend only on the
// workgroup), and each lane reads its own B columns, as vec4 where the layout allows:
//   BMODE 0: B strided, scalar loads.
//   BMODE 1: B rows contiguous along n (b_ns = 1; N, b_ks and the tile's start multiples of 4).
//   BMODE 2: B columns contiguous along k (b_ks = 1; b_ns a multiple of 4).
//   BMODE 3: B in panels of the workgroup's WN columns (im2col.glsl's PANEL), each k-major:
//            the k4-th vec4 of column n at ((n / WN) * b_ks + k4) * WN + n % WN, b_ks counting
//            a panel's vec4 along k (K a multiple of 4). A lane takes every workgroup-size-th
//            column (not RN neighbours), so that the lanes' loads of one step are neighbours.
// and A as vec4 where its layout allows (AMODE, gemm.glsl).
// The sum runs in blocks of kBlock terms added to the total, which keeps fp32 rounding close
// to the double reference for sums of thousands of terms.

#include "storage.glsl"
layout(std430, set = 0, binding = 1) readonly buffer A4 { VALUE4 a4[]; };
layout(std430, set = 0, binding = 3) readonly buffer B4 { VALUE4 b4[]; };
#define LOAD_A4(i) vec4(a4[i])
#define LOAD_B4(i) vec4(b4[i])
#include "gemm.glsl"
