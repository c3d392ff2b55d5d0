// CPU reference of the forward ops: plain loops, double accumulation, no cleverness.
#include <cmath>
#include <limits>

#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

HostTensor::HostTensor(Shape s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {
  if (data.size() != shape.numel()) {
    throw Error("HostTensor: shape " + shape.str() + " needs " + std::to_string(shape.numel()) +
                " values, got " + std::to_string(data.size()));
  }
}

namespace cpu {

namespace {
void check_size(const char* op, const char* name, const HostTensor& t) {
  if (t.data.size() != t.shape.numel()) {
    throw Error(std::string(op) + ": " + name + " holds " + std::to_string(t.data.size()) +
                " values for shape " + t.shape.str());
  }
}
}  // namespace

HostTensor conv2d(const HostTensor& x, const HostTensor& w, const HostTensor* bias,
                  const Conv2dParams& p) {
  check_size("conv2d", "input", x);
  check_size("conv2d", "weight", w);
  if (bias) check_size("conv2d", "bias", *bias);
  HostTensor y(conv2d_output_shape(x.shape, w.shape, bias ? &bias->shape : nullptr, p));
  const uint32_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const uint32_t K = y.shape[1], OH = y.shape[2], OW = y.shape[3];
  const uint32_t KH = w.shape[2], KW = w.shape[3];
  const uint32_t cpg = C / p.groups, kpg = K / p.groups;
  for (uint32_t n = 0; n < N; ++n)
    for (uint32_t k = 0; k < K; ++k) {
      const uint32_t g = k / kpg;
      for (uint32_t oy = 0; oy < OH; ++oy)
        for (uint32_t ox = 0; ox < OW; ++ox) {
          double acc = bias ? bias->data[k] : 0.0;
          for (uint32_t c = 0; c < cpg; ++c)
            for (uint32_t ky = 0; ky < KH; ++ky)
              for (uint32_t kx = 0; kx < KW; ++kx) {
                const int64_t iy = int64_t(oy) * p.stride_h + ky - p.pad_h;
                const int64_t ix = int64_t(ox) * p.stride_w + kx - p.pad_w;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const double xv = x.data[((uint64_t(n) * C + g * cpg + c) * H + iy) * W + ix];
                const double wv = w.data[((uint64_t(k) * cpg + c) * KH + ky) * KW + kx];
                acc += xv * wv;
              }
          if (p.relu && acc < 0) acc = 0;
          y.data[((uint64_t(n) * K + k) * OH + oy) * OW + ox] = static_cast<float>(acc);
        }
    }
  return y;
}

HostTensor relu(const HostTensor& x) {
  check_size("relu", "input", x);
  HostTensor y = x;
  for (float& v : y.data)
    if (v < 0) v = 0;  // NaN stays NaN
  return y;
}

HostTensor lrn(const HostTensor& x, const LrnParams& p) {
  check_size("lrn", "input", x);
  HostTensor y(lrn_output_shape(x.shape, p));
  const int64_t N = x.shape[0], C = x.shape[1], HW = int64_t(x.shape[2]) * x.shape[3];
  const int64_t before = p.size / 2, after = (p.size - 1) / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < HW; ++s) {
        double sum = 0;
        for (int64_t j = std::max<int64_t>(0, c - before); j <= std::min(C - 1, c + after); ++j) {
          const double v = x.data[(n * C + j) * HW + s];
          sum += v * v;
        }
        const double scale = double(p.k) + double(p.alpha) / p.size * sum;
        const size_t i = (n * C + c) * HW + s;
        y.data[i] = static_cast<float>(x.data[i] / std::pow(scale, double(p.beta)));
      }
  return y;
}

MaxPoolResult max_pool(const HostTensor& x, const MaxPoolParams& p) {
  check_size("max_pool", "input", x);
  MaxPoolResult r{HostTensor(max_pool_output_shape(x.shape, p)), {}};
  r.argmax.resize(r.y.data.size());
  const uint32_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const uint32_t OH = r.y.shape[2], OW = r.y.shape[3];
  for (uint64_t plane = 0; plane < uint64_t(N) * C; ++plane)
    for (uint32_t oy = 0; oy < OH; ++oy)
      for (uint32_t ox = 0; ox < OW; ++ox) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_index = -1;
        for (uint32_t ky = 0; ky < p.kernel_h; ++ky)
          for (uint32_t kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t iy = int64_t(oy) * p.stride_h + ky - p.pad_h;
            const int64_t ix = int64_t(ox) * p.stride_w + kx - p.pad_w;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            const int64_t j = (int64_t(plane) * H + iy) * W + ix;
            const float v = x.data[j];
            // First maximum wins; a NaN beats any number (torch does the same).
            if (best_index < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              best_index = j;
            }
          }
        const uint64_t o = (plane * OH + oy) * OW + ox;
        r.y.data[o] = best;
        r.argmax[o] = static_cast<uint32_t>(best_index);
      }
  return r;
}

HostTensor linear(const HostTensor& x, const HostTensor& w, const HostTensor* bias, bool relu) {
  check_size("linear", "input", x);
  check_size("linear", "weight", w);
  if (bias) check_size("linear", "bias", *bias);
  HostTensor y(linear_output_shape(x.shape, w.shape, bias ? &bias->shape : nullptr));
  const uint64_t N = x.shape[0], K = x.shape[1], M = w.shape[0];
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t m = 0; m < M; ++m) {
      double acc = bias ? bias->data[m] : 0.0;
      for (uint64_t k = 0; k < K; ++k) acc += double(x.data[n * K + k]) * w.data[m * K + k];
      if (relu && acc < 0) acc = 0;
      y.data[n * M + m] = static_cast<float>(acc);
    }
  return y;
}

HostTensor softmax(const HostTensor& x) {
  check_size("softmax", "input", x);
  HostTensor y(softmax_output_shape(x.shape));
  const uint64_t L = x.shape.dims().back(), rows = x.data.size() / L;
  for (uint64_t r = 0; r < rows; ++r) {
    const float* in = &x.data[r * L];
    double m = -std::numeric_limits<double>::infinity();
    for (uint64_t j = 0; j < L; ++j) m = std::max<double>(m, in[j]);
    double sum = 0;
    for (uint64_t j = 0; j < L; ++j) sum += std::exp(double(in[j]) - m);
    for (uint64_t j = 0; j < L; ++j) y.data[r * L + j] = static_cast<float>(std::exp(double(in[j]) - m) / sum);
  }
  return y;
}

HostTensor dropout_inference(const HostTensor& x) {
  check_size("dropout", "input", x);
  return x;
}

}  // namespace cpu
}  // namespace vkalex
