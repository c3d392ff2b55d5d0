// The body of gemm.comp and gemm_texel.comp (see gemm.comp).
#ifndef VKALEX_GEMM_GLSL
#define VKALEX_GEMM_GLSL

#include "common.glsl"

layout(constant_id = 1) const uint RM = 4;
layout(constant_id = 2) const uint RN = 8;
// How B loads (BMODE 0-3): see gemm.comp.
layout(constant_id = 3) const uint BMODE = 0;
// How A loads: 0 scalars; 1 vec4 along m (a_ms = 1, a_ks and the tile's start multiples of 4,
// rows of at least M rounded up to 4; BMODE 0 and 1); 2 vec4 along k (a_ks = 1, a_ms a
// multiple of 4).
layout(constant_id = 4) const uint AMODE = 0;
// gemm_texel_shuffle.comp: the workgroup is one subgroup of SUB lanes (constant 5), which
// share A: lane l loads rows (or vec4 groups of rows) l, l + SUB, ... once, and every lane
// takes each value from the lane that loaded it (subgroupShuffle), instead of every lane
// loading all RM rows itself. On lavapipe that turns RM loads per step into RM / 8.
// Where the subgroup is not exactly the workgroup (a driver that sizes it otherwise), the
// lanes load A themselves, as in gemm.comp.
#ifdef GEMM_SHUFFLE
layout(constant_id = 5) const uint SUB = 8;
const uint ASLOTS = (RM + SUB - 1) / SUB;         // rows each lane loads
const uint ASLOTS4 = (RM / 4 + SUB - 1) / SUB;    // vec4 groups of rows (AMODE 1; 0 if RM < 4)
#endif

layout(std430, set = 0, binding = 0) readonly buffer A { VALUE a[]; };
layout(std430, set = 0, binding = 2) readonly buffer B { VALUE b[]; };
// Bindings 1 and 3 view the same ranges as A and B as vec4: LOAD_A4(i) and LOAD_B4(i) read
// the i-th vec4 (declared by the including shader).
layout(std430, set = 0, binding = 4) readonly buffer Bias { VALUE bias[]; };
layout(std430, set = 0, binding = 5) buffer C { VALUE c[]; };

#include "gemm_params.glsl"
#include "gemm_store.glsl"

const uint kBlock = 32;

void main() {
  const uint mtiles = (p.M + RM - 1) / RM;
  const uint wn = gl_WorkGroupSize.x * RN;  // columns of one workgroup
  const uint ntiles = (p.N + wn - 1) / wn;
  const uint g = linear_group_id();
  const uint nt = g % ntiles;
  const uint mt = (g / ntiles) % mtiles;
  const uint z = g / (ntiles * mtiles);
  const uint z1 = z % p.Z1, z2 = z / p.Z1;
  const uint m0 = mt * RM;
  const uint n0 = nt * wn + gl_LocalInvocationID.x * RN;
  // A lane's j-th column: n0 + j, or with B in panels (BMODE 3) every workgroup-size-th
  // column from its own, so that for each j the lanes read neighbouring vec4 of the panel.
#define COLUMN(j) (BMODE == 3 ? nt * wn + (j) * gl_WorkGroupSize.x + gl_LocalInvocationID.x : n0 + (j))
  // Rows and columns past the end repeat the last one: loads stay in range, stores skip them.
  const uint mlast = p.M - 1, nlast = p.N - 1;

#ifdef GEMM_SHUFFLE
  const bool shared_a = gl_NumSubgroups == 1 && gl_SubgroupSize == SUB && gl_WorkGroupSize.x == SUB;
  const uint lane = gl_SubgroupInvocationID;
#endif

  float acc[RM * RN];
  [[unroll]] for (uint i = 0; i < RM * RN; ++i) acc[i] = 0.0;

  for (uint ib = 0; ib < p.IB; ++ib) {
    const uint abase = p.a_off + z1 * p.a_z1 + z2 * p.a_z2 + ib * p.a_ib;
    const uint bbase = p.b_off + z1 * p.b_z1 + z2 * p.b_z2 + ib * p.b_ib;
    if (BMODE == 2 || BMODE == 3) {
      const uint K4 = p.K / 4;
      // Where each of the lane's columns starts (in vec4), and the step along k: computed once,
      // since not every driver's compiler hoists it (SwiftShader's Subzero).
      uint boff[RN];
      [[unroll]] for (uint j = 0; j < RN; ++j) {
        const uint n = min(COLUMN(j), nlast);
        boff[j] = BMODE == 3 ? bbase / 4 + (n / wn) * p.b_ks * wn + n % wn : (bbase + n * p.b_ns) / 4;
      }
      const uint kstep = BMODE == 3 ? wn : 1;
      for (uint kb = 0; kb < K4; kb += kBlock / 4) {
        float part[RM * RN];
        [[unroll]] for (uint i = 0; i < RM * RN; ++i) part[i] = 0.0;
        const uint kend = min(K4, kb + kBlock / 4);
        for (uint k4 = kb; k4 < kend; ++k4) {
          vec4 av[RM];
#ifdef GEMM_SHUFFLE
          if (AMODE == 2 && shared_a) {
            vec4 mine[ASLOTS];
            [[unroll]] for (uint r = 0; r < ASLOTS; ++r) mine[r] = LOAD_A4((abase + min(m0 + r * SUB + lane, mlast) * p.a_ms) / 4 + k4);
            [[unroll]] for (uint i = 0; i < RM; ++i) av[i] = subgroupShuffle(mine[i / SUB], i % SUB);
          } else
#endif
          [[unroll]] for (uint i = 0; i < RM; ++i) {
            const uint ar = abase + min(m0 + i, mlast) * p.a_ms;
            if (AMODE == 2) {
              av[i] = LOAD_A4(ar / 4 + k4);
            } else {
              const uint o = ar + 4 * k4 * p.a_ks;
              av[i] = vec4(float(a[o]), float(a[o + p.a_ks]), float(a[o + 2 * p.a_ks]), float(a[o + 3 * p.a_ks]));
            }
          }
          [[unroll]] for (uint j = 0; j < RN; ++j) {
            const vec4 bv = LOAD_B4(boff[j] + k4 * kstep);
            [[unroll]] for (uint i = 0; i < RM; ++i) {
              part[i * RN + j] = fma(av[i].x, bv.x, fma(av[i].y, bv.y, fma(av[i].z, bv.z, fma(av[i].w, bv.w, part[i * RN + j]))));
            }
          }
        }
        [[unroll]] for (uint i = 0; i < RM * RN; ++i) acc[i] += part[i];
      }
    } else if (AMODE == 2) {
      // B rows along n, A rows along k: 4 terms per step, each A vec4 serving 4 B rows.
      const uint K4 = p.K / 4;
      for (uint kb = 0; kb < K4; kb += kBlock / 4) {
        float part[RM * RN];
        [[unroll]] for (uint i = 0; i < RM * RN; ++i) part[i] = 0.0;
        const uint kend = min(K4, kb + kBlock / 4);
        for (uint k4 = kb; k4 < kend; ++k4) {
          vec4 av[RM];
#ifdef GEMM_SHUFFLE
          if (shared_a) {
            vec4 mine[ASLOTS];
            [[unroll]] for (uint r = 0; r < ASLOTS; ++r) mine[r] = LOAD_A4((abase + min(m0 + r * SUB + lane, mlast) * p.a_ms) / 4 + k4);
            [[unroll]] for (uint i = 0; i < RM; ++i) av[i] = subgroupShuffle(mine[i / SUB], i % SUB);
          } else
#endif
          [[unroll]] for (uint i = 0; i < RM; ++i) av[i] = LOAD_A4((abase + min(m0 + i, mlast) * p.a_ms) / 4 + k4);
          [[unroll]] for (uint e = 0; e < 4; ++e) {
            [[unroll]] for (uint j = 0; j < RN / 4; ++j) {
              const vec4 bv = LOAD_B4((bbase + (4 * k4 + e) * p.b_ks) / 4 + min(n0 / 4 + j, nlast / 4));
              [[unroll]] for (uint i = 0; i < RM; ++i) {
                const float x = av[i][e];
                part[i * RN + 4 * j] = fma(x, bv.x, part[i * RN + 4 * j]);
                part[i * RN + 4 * j + 1] = fma(x, bv.y, part[i * RN + 4 * j + 1]);
                part[i * RN + 4 * j + 2] = fma(x, bv.z, part[i * RN + 4 * j + 2]);
                part[i * RN + 4 * j + 3] = fma(x, bv.w, part[i * RN + 4 * j + 3]);
              }
            }
          }
        }
        [[unroll]] for (uint i = 0; i < RM * RN; ++i) acc[i] += part[i];
      }
    } else {
      for (uint kb = 0; kb < p.K; kb += kBlock) {
        float part[RM * RN];
        [[unroll]] for (uint i = 0; i < RM * RN; ++i) part[i] = 0.0;
        const uint kend = min(p.K, kb + kBlock);
        for (uint k = kb; k < kend; ++k) {
          float av[RM];
#ifdef GEMM_SHUFFLE
          if (AMODE == 1 && shared_a) {
            vec4 mine[ASLOTS4 + 1];  // never an array of size 0
            [[unroll]] for (uint r = 0; r < ASLOTS4; ++r) mine[r] = LOAD_A4((abase + k * p.a_ks) / 4 + min(m0 / 4 + r * SUB + lane, mlast / 4));
            [[unroll]] for (uint i = 0; i < RM / 4; ++i) {
              const vec4 v = subgroupShuffle(mine[i / SUB], i % SUB);
              av[4 * i] = v.x;
              av[4 * i + 1] = v.y;
              av[4 * i + 2] = v.z;
              av[4 * i + 3] = v.w;
            }
          } else if (AMODE == 0 && shared_a) {
            float mine[ASLOTS];
            [[unroll]] for (uint r = 0; r < ASLOTS; ++r) mine[r] = float(a[abase + min(m0 + r * SUB + lane, mlast) * p.a_ms + k * p.a_ks]);
            [[unroll]] for (uint i = 0; i < RM; ++i) av[i] = subgroupShuffle(mine[i / SUB], i % SUB);
          } else
#endif
          if (AMODE == 1) {
            [[unroll]] for (uint i = 0; i < RM / 4; ++i) {
              const vec4 v = LOAD_A4((abase + k * p.a_ks) / 4 + min(m0 / 4 + i, mlast / 4));
              av[4 * i] = v.x;
              av[4 * i + 1] = v.y;
              av[4 * i + 2] = v.z;
              av[4 * i + 3] = v.w;
            }
          } else {
            [[unroll]] for (uint i = 0; i < RM; ++i) av[i] = float(a[abase + min(m0 + i, mlast) * p.a_ms + k * p.a_ks]);
          }
          if (BMODE == 1) {
            [[unroll]] for (uint j = 0; j < RN / 4; ++j) {
              const vec4 bv = LOAD_B4((bbase + k * p.b_ks) / 4 + min(n0 / 4 + j, nlast / 4));
              [[unroll]] for (uint i = 0; i < RM; ++i) {
                part[i * RN + 4 * j] = fma(av[i], bv.x, part[i * RN + 4 * j]);
                part[i * RN + 4 * j + 1] = fma(av[i], bv.y, part[i * RN + 4 * j + 1]);
                part[i * RN + 4 * j + 2] = fma(av[i], bv.z, part[i * RN + 4 * j + 2]);
                part[i * RN + 4 * j + 3] = fma(av[i], bv.w, part[i * RN + 4 * j + 3]);
              }
            }
          } else {
            [[unroll]] for (uint j = 0; j < RN; ++j) {
              const float bv = float(b[bbase + k * p.b_ks + min(n0 + j, nlast) * p.b_ns]);
              [[unroll]] for (uint i = 0; i < RM; ++i) part[i * RN + j] = fma(av[i], bv, part[i * RN + j]);
            }
          }
        }
        [[unroll]] for (uint i = 0; i < RM * RN; ++i) acc[i] += part[i];
      }
    }
    // The vec4 paths leave the last K % 4 terms: one at a time, with the general strides.
    // (BMODE 3 has none: the host makes K a multiple of 4.)
    for (uint k = (BMODE >= 2 || AMODE == 2) ? p.K / 4 * 4 : p.K; k < p.K; ++k) {
      [[unroll]] for (uint i = 0; i < RM; ++i) {
        const float av = float(a[abase + min(m0 + i, mlast) * p.a_ms + k * p.a_ks]);
        [[unroll]] for (uint j = 0; j < RN; ++j) acc[i * RN + j] += av * float(b[bbase + k * p.b_ks + min(n0 + j, nlast) * p.b_ns]);
      }
    }
  }

  const uint cbase = p.c_off + z1 * p.c_z1 + z2 * p.c_z2;
  [[unroll]] for (uint i = 0; i < RM; ++i) {
    const uint m = m0 + i;
    if (m >= p.M) break;
    [[unroll]] for (uint j = 0; j < RN; ++j) {
      const uint n = COLUMN(j);
      if (n >= p.N) break;
      store_c(cbase + m * p.c_ms + n * p.c_ns, m, n, z1, acc[i * RN + j]);
    }
  }
}

#endif
