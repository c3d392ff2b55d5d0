// CPU reference of the forward ops: plain loops, double accumulation, no cleverness.
#include <cmath>
#include <limits>

#include "cpu/conv_taps.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

template <typename T>
BasicHostTensor<T>::BasicHostTensor(Shape s, std::vector<T> d) : shape(std::move(s)), data(std::move(d)) {
  if (data.size() != shape.numel()) {
    throw Error("HostTensor: shape " + shape.str() + " needs " + std::to_string(shape.numel()) +
                " values, got " + std::to_string(data.size()));
  }
}
template struct BasicHostTensor<float>;
template struct BasicHostTensor<double>;

namespace cpu {

namespace {
template <typename T>
void check_size(const char* op, const char* name, const BasicHostTensor<T>& t) {
  if (t.data.size() != t.shape.numel()) {
    throw Error(std::string(op) + ": " + name + " holds " + std::to_string(t.data.size()) +
                " values for shape " + t.shape.str());
  }
}
}  // namespace

template <typename T>
BasicHostTensor<T> conv2d(const BasicHostTensor<T>& x, const BasicHostTensor<T>& w,
                          const std::type_identity_t<BasicHostTensor<T>>* bias,
                          const Conv2dParams& p) {
  check_size("conv2d", "input", x);
  check_size("conv2d", "weight", w);
  if (bias) check_size("conv2d", "bias", *bias);
  BasicHostTensor<T> y(conv2d_output_shape(x.shape, w.shape, bias ? &bias->shape : nullptr, p));
  std::vector<double> acc(y.data.size(), 0.0);
  detail::for_each_conv_tap(x.shape, w.shape, y.shape, p, [&](uint64_t xi, uint64_t wi, uint64_t yi) {
    acc[yi] += double(x.data[xi]) * w.data[wi];
  });
  const uint64_t K = y.shape[1], plane = uint64_t(y.shape[2]) * y.shape[3];
  for (uint64_t i = 0; i < acc.size(); ++i) {
    double v = acc[i] + (bias ? double(bias->data[(i / plane) % K]) : 0.0);
    if (p.relu && v < 0) v = 0;
    y.data[i] = static_cast<T>(v);
  }
  return y;
}

template <typename T>
BasicHostTensor<T> relu(const BasicHostTensor<T>& x) {
  check_size("relu", "input", x);
  BasicHostTensor<T> y = x;
  for (T& v : y.data)
    if (v < 0) v = 0;  // NaN stays NaN
  return y;
}

template <typename T>
BasicHostTensor<T> lrn(const BasicHostTensor<T>& x, const LrnParams& p) {
  check_size("lrn", "input", x);
  BasicHostTensor<T> y(lrn_output_shape(x.shape, p));
  const int64_t N = x.shape[0], C = x.shape[1], HW = int64_t(x.shape[2]) * x.shape[3];
  const int64_t before = p.below(), after = p.above();
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
        y.data[i] = static_cast<T>(x.data[i] / std::pow(scale, double(p.beta)));
      }
  return y;
}

template <typename T>
MaxPoolResult<T> max_pool(const BasicHostTensor<T>& x, const MaxPoolParams& p) {
  check_size("max_pool", "input", x);
  MaxPoolResult<T> r{BasicHostTensor<T>(max_pool_output_shape(x.shape, p)), {}};
  r.argmax.resize(r.y.data.size());
  const uint32_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const uint32_t OH = r.y.shape[2], OW = r.y.shape[3];
  for (uint64_t plane = 0; plane < uint64_t(N) * C; ++plane)
    for (uint32_t oy = 0; oy < OH; ++oy)
      for (uint32_t ox = 0; ox < OW; ++ox) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_index = -1;
        for (uint32_t ky = 0; ky < p.kernel_h; ++ky)
          for (uint32_t kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t iy = int64_t(oy) * p.stride_h + int64_t(ky) * p.dilation_h - p.pad_h;
            const int64_t ix = int64_t(ox) * p.stride_w + int64_t(kx) * p.dilation_w - p.pad_w;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            const int64_t j = (int64_t(plane) * H + iy) * W + ix;
            const T v = x.data[j];
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

template <typename T>
BasicHostTensor<T> avg_pool(const BasicHostTensor<T>& x, const MaxPoolParams& p, bool count_include_pad) {
  check_size("avg_pool", "input", x);
  BasicHostTensor<T> y(max_pool_output_shape(x.shape, p));
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t OH = y.shape[2], OW = y.shape[3];
  for (int64_t plane = 0; plane < N * C; ++plane)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t y0 = oy * p.stride_h - p.pad_h, x0 = ox * p.stride_w - p.pad_w;
        double sum = 0;
        int64_t inside = 0, padded = 0;
        for (int64_t ky = 0; ky < p.kernel_h; ++ky)
          for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t iy = y0 + ky * p.dilation_h, ix = x0 + kx * p.dilation_w;
            if (iy < H + p.pad_end_h() && ix < W + p.pad_end_w()) ++padded;  // (iy, ix >= -pad always)
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            sum += double(x.data[(plane * H + iy) * W + ix]);
            ++inside;
          }
        y.data[(plane * OH + oy) * OW + ox] = static_cast<T>(sum / double(count_include_pad ? padded : inside));
      }
  return y;
}

template <typename T>
BasicHostTensor<T> linear(const BasicHostTensor<T>& x, const BasicHostTensor<T>& w,
                          const std::type_identity_t<BasicHostTensor<T>>* bias, bool relu) {
  check_size("linear", "input", x);
  check_size("linear", "weight", w);
  if (bias) check_size("linear", "bias", *bias);
  BasicHostTensor<T> y(linear_output_shape(x.shape, w.shape, bias ? &bias->shape : nullptr));
  const uint64_t N = x.shape[0], K = x.shape[1], M = w.shape[0];
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t m = 0; m < M; ++m) {
      double acc = bias ? bias->data[m] : 0.0;
      for (uint64_t k = 0; k < K; ++k) acc += double(x.data[n * K + k]) * w.data[m * K + k];
      if (relu && acc < 0) acc = 0;
      y.data[n * M + m] = static_cast<T>(acc);
    }
  return y;
}

template <typename T>
BasicHostTensor<T> softmax(const BasicHostTensor<T>& x, uint32_t length, uint32_t inner) {
  check_size("softmax", "input", x);
  BasicHostTensor<T> y(softmax_output_shape(x.shape));
  const uint64_t L = length ? length : x.shape.dims().back();
  if (inner == 0 || L == 0 || x.data.size() % (L * inner) != 0) throw Error("softmax: groups do not tile x " + x.shape.str());
  const uint64_t rows = x.data.size() / L;
  for (uint64_t r = 0; r < rows; ++r) {
    const uint64_t base = r / inner * L * inner + r % inner;
    auto at = [&](uint64_t j) { return base + j * inner; };
    double m = -std::numeric_limits<double>::infinity();
    for (uint64_t j = 0; j < L; ++j) m = std::max<double>(m, x.data[at(j)]);
    double sum = 0;
    for (uint64_t j = 0; j < L; ++j) sum += std::exp(double(x.data[at(j)]) - m);
    for (uint64_t j = 0; j < L; ++j) y.data[at(j)] = static_cast<T>(std::exp(double(x.data[at(j)]) - m) / sum);
  }
  return y;
}

template <typename T>
BasicHostTensor<T> dropout_inference(const BasicHostTensor<T>& x) {
  check_size("dropout", "input", x);
  return x;
}

template <typename T>
BasicHostTensor<T> dropout(const BasicHostTensor<T>& x, float p, uint32_t seed, uint32_t step, uint32_t first_index) {
  check_size("dropout", "input", x);
  const uint32_t threshold = dropout_threshold(p);
  const double scale = 1.0 / (1.0 - double(p));
  BasicHostTensor<T> y(x.shape);
  for (size_t i = 0; i < x.data.size(); ++i) {
    y.data[i] = dropout_hash(seed, step, first_index + uint32_t(i)) >= threshold ? static_cast<T>(x.data[i] * scale) : T(0);
  }
  return y;
}

template <typename T>
BasicHostTensor<T> slice_channels(const BasicHostTensor<T>& x, uint32_t begin, uint32_t end) {
  check_size("slice", "input", x);
  if (x.shape.rank() < 2 || begin >= end || end > x.shape[1]) {
    throw Error("slice: channels " + std::to_string(begin) + " to " + std::to_string(end) + " (end excluded) are not a range of " +
                x.shape.str());
  }
  std::vector<uint32_t> dims = x.shape.dims();
  const uint64_t inner = x.shape.numel() / (uint64_t(dims[0]) * dims[1]);
  dims[1] = end - begin;
  BasicHostTensor<T> y{Shape(dims)};
  for (uint64_t n = 0, o = 0; n < dims[0]; ++n) {
    const uint64_t first = (n * x.shape[1] + begin) * inner;
    for (uint64_t i = 0; i < uint64_t(end - begin) * inner; ++i) y.data[o++] = x.data[first + i];
  }
  return y;
}

template <typename T>
BasicHostTensor<T> concat_channels(const std::vector<const BasicHostTensor<T>*>& inputs) {
  if (inputs.empty()) throw Error("concat: no inputs");
  std::vector<uint32_t> dims = inputs[0]->shape.dims();
  if (dims.size() < 2) throw Error("concat: input " + inputs[0]->shape.str() + " has no channels");
  dims[1] = 0;
  for (const auto* x : inputs) {
    check_size("concat", "input", *x);
    bool same = x->shape.rank() == dims.size();
    for (size_t d = 0; same && d < dims.size(); ++d) same = d == 1 || x->shape[d] == dims[d];
    if (!same) throw Error("concat: inputs " + inputs[0]->shape.str() + " and " + x->shape.str() + " differ in more than their channels");
    dims[1] += x->shape[1];
  }
  BasicHostTensor<T> y{Shape(dims)};
  uint64_t o = 0;
  for (uint32_t n = 0; n < dims[0]; ++n) {
    for (const auto* x : inputs) {
      const uint64_t per_image = x->shape.numel() / dims[0];
      for (uint64_t i = 0; i < per_image; ++i) y.data[o++] = x->data[n * per_image + i];
    }
  }
  return y;
}

#define VKALEX_INSTANTIATE_FORWARD(T)                                                                  \
  template BasicHostTensor<T> conv2d(const BasicHostTensor<T>&, const BasicHostTensor<T>&,            \
                                     const BasicHostTensor<T>*, const Conv2dParams&);                  \
  template BasicHostTensor<T> relu(const BasicHostTensor<T>&);                                        \
  template BasicHostTensor<T> lrn(const BasicHostTensor<T>&, const LrnParams&);                       \
  template MaxPoolResult<T> max_pool(const BasicHostTensor<T>&, const MaxPoolParams&);                \
  template BasicHostTensor<T> avg_pool(const BasicHostTensor<T>&, const MaxPoolParams&, bool);        \
  template BasicHostTensor<T> linear(const BasicHostTensor<T>&, const BasicHostTensor<T>&,            \
                                     const BasicHostTensor<T>*, bool);                                 \
  template BasicHostTensor<T> softmax(const BasicHostTensor<T>&, uint32_t, uint32_t);                                     \
  template BasicHostTensor<T> dropout_inference(const BasicHostTensor<T>&);                           \
  template BasicHostTensor<T> slice_channels(const BasicHostTensor<T>&, uint32_t, uint32_t);          \
  template BasicHostTensor<T> concat_channels(const std::vector<const BasicHostTensor<T>*>&);         \
  template BasicHostTensor<T> dropout(const BasicHostTensor<T>&, float, uint32_t, uint32_t, uint32_t);
VKALEX_INSTANTIATE_FORWARD(float)
VKALEX_INSTANTIATE_FORWARD(double)
#undef VKALEX_INSTANTIATE_FORWARD

}  // namespace cpu
}  // namespace vkalex
