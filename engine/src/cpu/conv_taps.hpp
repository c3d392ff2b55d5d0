// Internal to the CPU reference: the one loop nest of a convolution, shared by its forward
// pass and both gradients so that the three cannot disagree about which input meets which
// weight.
#pragma once

#include <cstdint>

#include "vkalex/op_params.hpp"

namespace vkalex::cpu::detail {

// Calls f(x_index, w_index, y_index) for every (input element, weight element, output element)
// that meet in conv2d(x, w) with params p: flat indices into x [N, C, H, W],
// w [K, C/groups, KH, KW] and y [N, K, OH, OW]. Taps in the padding are skipped.
template <typename F>
void for_each_conv_tap(const Shape& xs, const Shape& ws, const Shape& ys, const Conv2dParams& p, F&& f) {
  const uint64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
  const uint64_t K = ys[1], OH = ys[2], OW = ys[3], KH = ws[2], KW = ws[3];
  const uint64_t cpg = C / p.groups, kpg = K / p.groups;
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t k = 0; k < K; ++k)
      for (uint64_t oy = 0; oy < OH; ++oy)
        for (uint64_t ox = 0; ox < OW; ++ox) {
          const uint64_t yi = ((n * K + k) * OH + oy) * OW + ox;
          for (uint64_t c = 0; c < cpg; ++c)
            for (uint64_t ky = 0; ky < KH; ++ky)
              for (uint64_t kx = 0; kx < KW; ++kx) {
                const int64_t iy = int64_t(oy * p.stride_h + ky) - p.pad_h;
                const int64_t ix = int64_t(ox * p.stride_w + kx) - p.pad_w;
                if (iy < 0 || iy >= int64_t(H) || ix < 0 || ix >= int64_t(W)) continue;
                const uint64_t xi = ((n * C + (k / kpg) * cpg + c) * H + uint64_t(iy)) * W + uint64_t(ix);
                const uint64_t wi = ((k * cpg + c) * KH + ky) * KW + kx;
                f(xi, wi, yi);
              }
        }
}

}  // namespace vkalex::cpu::detail
