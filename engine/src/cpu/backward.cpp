// CPU reference of the backward ops, the fused softmax cross-entropy and SGD: plain loops,
// double accumulation, the obvious scatter form of every gradient.
#include <cmath>
#include <limits>

#include "cpu/conv_taps.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/error.hpp"

namespace vkalex::cpu {

namespace {

template <typename T>
BasicHostTensor<T> to_tensor(const Shape& shape, const std::vector<double>& acc) {
  BasicHostTensor<T> t(shape);
  for (size_t i = 0; i < acc.size(); ++i) t.data[i] = static_cast<T>(acc[i]);
  return t;
}

template <typename T>
void require_shape(const char* op, const char* name, const BasicHostTensor<T>& t, const Shape& s) {
  if (t.shape != s || t.data.size() != s.numel()) {
    throw Error(std::string(op) + ": " + name + " has shape " + t.shape.str() + ", expected " + s.str());
  }
}

}  // namespace

template <typename T>
BasicHostTensor<T> conv2d_backward_data(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& w,
                                        const Shape& xs, const Conv2dParams& p) {
  const Shape ys = conv2d_output_shape(xs, w.shape, nullptr, p);
  require_shape("conv2d_backward_data", "dy", dy, ys);
  std::vector<double> dx(xs.numel(), 0.0);
  detail::for_each_conv_tap(xs, w.shape, ys, p, [&](uint64_t xi, uint64_t wi, uint64_t yi) {
    dx[xi] += double(dy.data[yi]) * w.data[wi];
  });
  return to_tensor<T>(xs, dx);
}

template <typename T>
BasicHostTensor<T> conv2d_backward_weight(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& x,
                                          const Shape& ws, const Conv2dParams& p) {
  const Shape ys = conv2d_output_shape(x.shape, ws, nullptr, p);
  require_shape("conv2d_backward_weight", "dy", dy, ys);
  std::vector<double> dw(ws.numel(), 0.0);
  detail::for_each_conv_tap(x.shape, ws, ys, p, [&](uint64_t xi, uint64_t wi, uint64_t yi) {
    dw[wi] += double(dy.data[yi]) * x.data[xi];
  });
  return to_tensor<T>(ws, dw);
}

template <typename T>
BasicHostTensor<T> bias_backward(const BasicHostTensor<T>& dy) {
  if (dy.shape.rank() < 2) throw Error("bias_backward: dy must have rank 2 or more, got " + dy.shape.str());
  const uint64_t N = dy.shape[0], C = dy.shape[1], S = dy.shape.numel() / (N * std::max<uint64_t>(C, 1));
  std::vector<double> db(C, 0.0);
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t c = 0; c < C; ++c)
      for (uint64_t s = 0; s < S; ++s) db[c] += dy.data[(n * C + c) * S + s];
  return to_tensor<T>(Shape{dy.shape[1]}, db);
}

template <typename T>
BasicHostTensor<T> relu_backward(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& y) {
  require_shape("relu_backward", "y", y, dy.shape);
  BasicHostTensor<T> dx(dy.shape);
  for (size_t i = 0; i < dy.data.size(); ++i) dx.data[i] = y.data[i] > 0 ? dy.data[i] : T(0);
  return dx;
}

template <typename T>
BasicHostTensor<T> lrn_backward(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& x, const LrnParams& p) {
  require_shape("lrn_backward", "dy", dy, lrn_output_shape(x.shape, p));
  const int64_t N = x.shape[0], C = x.shape[1], HW = int64_t(x.shape[2]) * x.shape[3];
  const int64_t before = p.below(), after = p.above();
  const double a = double(p.alpha) / p.size, beta = p.beta;
  // y_c = x_c s_c^-beta with s_c = k + a sum_{j in W(c)} x_j^2, W(c) = [c - before, c + after]:
  // dx_i = dy_i s_i^-beta - 2 a beta x_i sum_{c : i in W(c)} dy_c x_c s_c^(-beta-1).
  std::vector<double> s(x.data.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t q = 0; q < HW; ++q) {
        double sum = 0;
        for (int64_t j = std::max<int64_t>(0, c - before); j <= std::min(C - 1, c + after); ++j) {
          const double v = x.data[(n * C + j) * HW + q];
          sum += v * v;
        }
        s[(n * C + c) * HW + q] = double(p.k) + a * sum;
      }
  std::vector<double> dx(x.data.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < C; ++i)
      for (int64_t q = 0; q < HW; ++q) {
        const int64_t at = (n * C + i) * HW + q;
        double cross = 0;
        for (int64_t c = std::max<int64_t>(0, i - after); c <= std::min(C - 1, i + before); ++c) {
          const int64_t ct = (n * C + c) * HW + q;
          cross += double(dy.data[ct]) * x.data[ct] * std::pow(s[ct], -beta - 1);
        }
        dx[at] = double(dy.data[at]) * std::pow(s[at], -beta) - 2 * a * beta * double(x.data[at]) * cross;
      }
  return to_tensor<T>(x.shape, dx);
}

template <typename T>
BasicHostTensor<T> max_pool_backward(const BasicHostTensor<T>& dy, const std::vector<uint32_t>& argmax,
                                     const Shape& xs) {
  if (argmax.size() != dy.data.size()) throw Error("max_pool_backward: argmax and dy differ in size");
  std::vector<double> dx(xs.numel(), 0.0);
  for (size_t o = 0; o < argmax.size(); ++o) {
    if (argmax[o] >= dx.size()) throw Error("max_pool_backward: argmax index out of range");
    dx[argmax[o]] += dy.data[o];
  }
  return to_tensor<T>(xs, dx);
}

template <typename T>
BasicHostTensor<T> linear_backward_data(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& w) {
  const uint64_t N = dy.shape[0], M = w.shape[0], K = w.shape[1];
  require_shape("linear_backward_data", "dy", dy, Shape{dy.shape[0], w.shape[0]});
  std::vector<double> dx(N * K, 0.0);
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t m = 0; m < M; ++m)
      for (uint64_t k = 0; k < K; ++k) dx[n * K + k] += double(dy.data[n * M + m]) * w.data[m * K + k];
  return to_tensor<T>(Shape{dy.shape[0], w.shape[1]}, dx);
}

template <typename T>
BasicHostTensor<T> linear_backward_weight(const BasicHostTensor<T>& dy, const BasicHostTensor<T>& x) {
  const uint64_t N = x.shape[0], K = x.shape[1], M = dy.shape[1];
  require_shape("linear_backward_weight", "dy", dy, Shape{x.shape[0], dy.shape[1]});
  std::vector<double> dw(M * K, 0.0);
  for (uint64_t n = 0; n < N; ++n)
    for (uint64_t m = 0; m < M; ++m)
      for (uint64_t k = 0; k < K; ++k) dw[m * K + k] += double(dy.data[n * M + m]) * x.data[n * K + k];
  return to_tensor<T>(Shape{dy.shape[1], x.shape[1]}, dw);
}

template <typename T>
BasicHostTensor<T> dropout_backward(const BasicHostTensor<T>& dy, float p, uint32_t seed, uint32_t step,
                                    uint32_t first_index) {
  return dropout(dy, p, seed, step, first_index);  // the same mask and scale
}

template <typename T>
CrossEntropyResult<T> softmax_cross_entropy(const BasicHostTensor<T>& logits, const std::vector<uint32_t>& labels,
                                            uint32_t mean_over) {
  if (logits.shape.rank() != 2 || logits.shape[0] != labels.size()) {
    throw Error("softmax_cross_entropy: logits " + logits.shape.str() + " do not match " +
                std::to_string(labels.size()) + " labels");
  }
  const uint64_t N = logits.shape[0], L = logits.shape[1];
  const double M = mean_over ? double(mean_over) : double(N);
  CrossEntropyResult<T> r;
  r.dlogits = BasicHostTensor<T>(logits.shape);
  for (uint64_t n = 0; n < N; ++n) {
    if (labels[n] >= L) {
      throw Error("softmax_cross_entropy: label " + std::to_string(labels[n]) + " of row " + std::to_string(n) +
                  " is out of range (" + std::to_string(L) + " classes)");
    }
    const T* x = &logits.data[n * L];
    double m = -std::numeric_limits<double>::infinity();
    uint64_t best = 0;
    for (uint64_t j = 0; j < L; ++j) {
      if (x[j] > m) m = x[j], best = j;
    }
    double sum = 0;
    for (uint64_t j = 0; j < L; ++j) sum += std::exp(double(x[j]) - m);
    const double lse = m + std::log(sum);
    r.loss += (lse - x[labels[n]]) / double(N);
    r.correct += best == labels[n];
    for (uint64_t j = 0; j < L; ++j) {
      r.dlogits.data[n * L + j] = static_cast<T>((std::exp(double(x[j]) - lse) - (j == labels[n])) / M);
    }
  }
  return r;
}

void sgd_update(HostTensor& w, HostTensor& v, const HostTensor& g, const SgdParams& p) {
  if (v.data.size() != w.data.size() || g.data.size() != w.data.size()) {
    throw Error("sgd_update: weights, momentum and gradient differ in size");
  }
  for (size_t i = 0; i < w.data.size(); ++i) {
    const double nv = double(p.momentum) * v.data[i] - double(p.weight_decay) * p.lr * w.data[i] - double(p.lr) * g.data[i];
    v.data[i] = static_cast<float>(nv);
    w.data[i] = static_cast<float>(double(w.data[i]) + v.data[i]);
  }
}

#define VKALEX_INSTANTIATE_BACKWARD(T)                                                                        \
  template BasicHostTensor<T> conv2d_backward_data(const BasicHostTensor<T>&, const BasicHostTensor<T>&,     \
                                                   const Shape&, const Conv2dParams&);                        \
  template BasicHostTensor<T> conv2d_backward_weight(const BasicHostTensor<T>&, const BasicHostTensor<T>&,   \
                                                     const Shape&, const Conv2dParams&);                      \
  template BasicHostTensor<T> bias_backward(const BasicHostTensor<T>&);                                      \
  template BasicHostTensor<T> relu_backward(const BasicHostTensor<T>&, const BasicHostTensor<T>&);           \
  template BasicHostTensor<T> lrn_backward(const BasicHostTensor<T>&, const BasicHostTensor<T>&,             \
                                           const LrnParams&);                                                 \
  template BasicHostTensor<T> max_pool_backward(const BasicHostTensor<T>&, const std::vector<uint32_t>&,     \
                                                const Shape&);                                                \
  template BasicHostTensor<T> linear_backward_data(const BasicHostTensor<T>&, const BasicHostTensor<T>&);    \
  template BasicHostTensor<T> linear_backward_weight(const BasicHostTensor<T>&, const BasicHostTensor<T>&);  \
  template BasicHostTensor<T> dropout_backward(const BasicHostTensor<T>&, float, uint32_t, uint32_t, uint32_t); \
  template CrossEntropyResult<T> softmax_cross_entropy(const BasicHostTensor<T>&, const std::vector<uint32_t>&, uint32_t);
VKALEX_INSTANTIATE_BACKWARD(float)
VKALEX_INSTANTIATE_BACKWARD(double)
#undef VKALEX_INSTANTIATE_BACKWARD

}  // namespace vkalex::cpu
