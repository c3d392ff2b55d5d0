// The CPU reference's backward ops against central finite differences, all in double.
#include <cmath>
#include <functional>

#include "common.hpp"

using namespace vkalex;

namespace {

HostTensor64 random64(const Shape& s, uint64_t seed, double scale = 1.0) {
  const auto f = random_uniform(s.numel(), seed, 1.0f);
  HostTensor64 t(s);
  for (size_t i = 0; i < f.size(); ++i) t.data[i] = f[i] * scale;
  return t;
}

double dot(const HostTensor64& a, const HostTensor64& b) {
  double s = 0;
  for (size_t i = 0; i < a.data.size(); ++i) s += a.data[i] * b.data[i];
  return s;
}

// Compares `analytic` with (loss(x + h e_i) - loss(x - h e_i)) / 2h for every element i.
void check_gradient(const char* what, HostTensor64 x, const HostTensor64& analytic,
                    const std::function<double(const HostTensor64&)>& loss) {
  INFO(what << ", seed " << test::seed());
  REQUIRE(analytic.shape == x.shape);
  const double h = 1e-6;
  double worst = 0, scale = 1e-12;
  for (size_t i = 0; i < x.data.size(); ++i) {
    const double keep = x.data[i];
    x.data[i] = keep + h;
    const double up = loss(x);
    x.data[i] = keep - h;
    const double down = loss(x);
    x.data[i] = keep;
    const double fd = (up - down) / (2 * h);
    worst = std::max(worst, std::fabs(fd - analytic.data[i]));
    scale = std::max(scale, std::fabs(analytic.data[i]));
  }
  CHECK(worst / scale <= 1e-6);
}

}  // namespace

TEST_CASE("conv2d backward (data, weight, bias) matches finite differences", "[cpu][backward][conv2d]") {
  const uint64_t s = test::seed();
  struct Case { Shape x, w; Conv2dParams p; };
  for (const Case& c : {Case{Shape{2, 4, 7, 6}, Shape{6, 2, 3, 3}, Conv2dParams{2, 1, 1, 2, 2, false}},
                        Case{Shape{1, 3, 9, 9}, Shape{3, 1, 5, 3}, Conv2dParams{3, 2, 2, 0, 3, false}}}) {
    const HostTensor64 x = random64(c.x, s), w = random64(c.w, s + 1), b = random64(Shape{c.w[0]}, s + 2);
    const Shape ys = conv2d_output_shape(c.x, c.w, nullptr, c.p);
    const HostTensor64 r = random64(ys, s + 3);  // loss = sum(r * conv(x, w, b))
    check_gradient("conv2d dx", x, cpu::conv2d_backward_data(r, w, c.x, c.p),
                   [&](const HostTensor64& v) { return dot(r, cpu::conv2d(v, w, &b, c.p)); });
    check_gradient("conv2d dw", w, cpu::conv2d_backward_weight(r, x, c.w, c.p),
                   [&](const HostTensor64& v) { return dot(r, cpu::conv2d(x, v, &b, c.p)); });
    check_gradient("conv2d db", b, cpu::bias_backward(r),
                   [&](const HostTensor64& v) { return dot(r, cpu::conv2d(x, w, &v, c.p)); });
  }
}

TEST_CASE("linear backward matches finite differences", "[cpu][backward][linear]") {
  const uint64_t s = test::seed();
  const HostTensor64 x = random64(Shape{3, 7}, s), w = random64(Shape{5, 7}, s + 1), b = random64(Shape{5}, s + 2);
  const HostTensor64 r = random64(Shape{3, 5}, s + 3);
  check_gradient("linear dx", x, cpu::linear_backward_data(r, w),
                 [&](const HostTensor64& v) { return dot(r, cpu::linear(v, w, &b, false)); });
  check_gradient("linear dw", w, cpu::linear_backward_weight(r, x),
                 [&](const HostTensor64& v) { return dot(r, cpu::linear(x, v, &b, false)); });
  check_gradient("linear db", b, cpu::bias_backward(r),
                 [&](const HostTensor64& v) { return dot(r, cpu::linear(x, w, &v, false)); });
}

TEST_CASE("lrn backward matches finite differences", "[cpu][backward][lrn]") {
  const uint64_t s = test::seed();
  for (const LrnParams& p : {LrnParams{5, 0.5f, 0.75f, 2.0f}, LrnParams{4, 1.0f, 1.5f, 1.0f}, LrnParams{3, 0.1f, 0.5f, 0.5f},
                             LrnParams{4, 1.0f, 1.5f, 1.0f, true}, LrnParams{2, 0.7f, 0.75f, 1.0f, true}}) {
    const HostTensor64 x = random64(Shape{2, 7, 2, 3}, s, 2.0), r = random64(Shape{2, 7, 2, 3}, s + 1);
    check_gradient("lrn dx", x, cpu::lrn_backward(r, x, p),
                   [&](const HostTensor64& v) { return dot(r, cpu::lrn(v, p)); });
  }
}

TEST_CASE("relu, max pool and dropout backward match finite differences", "[cpu][backward]") {
  const uint64_t s = test::seed();
  HostTensor64 x = random64(Shape{2, 3, 7, 7}, s);
  for (double& v : x.data)
    if (std::fabs(v) < 1e-3) v = 0.5;  // keep away from the kink
  const HostTensor64 r = random64(x.shape, s + 1);
  check_gradient("relu dx", x, cpu::relu_backward(r, cpu::relu(x)),
                 [&](const HostTensor64& v) { return dot(r, cpu::relu(v)); });

  const MaxPoolParams p{3, 3, 2, 2, 1, 1};
  const auto pooled = cpu::max_pool(x, p);
  const HostTensor64 rp = random64(pooled.y.shape, s + 2);
  check_gradient("max_pool dx", x, cpu::max_pool_backward(rp, pooled.argmax, x.shape),
                 [&](const HostTensor64& v) { return dot(rp, cpu::max_pool(v, p).y); });

  check_gradient("dropout dx", x, cpu::dropout_backward(r, 0.3f, 7, 11),
                 [&](const HostTensor64& v) { return dot(r, cpu::dropout(v, 0.3f, 7, 11)); });
  // About 30% dropped, the rest scaled by 1 / 0.7.
  const auto d = cpu::dropout(HostTensor64(Shape{10000}, std::vector<double>(10000, 1.0)), 0.3f, 7, 11);
  size_t kept = 0;
  for (double v : d.data) {
    if (v != 0) {
      ++kept;
      REQUIRE(v == Approx(1 / 0.7));
    }
  }
  CHECK(kept > 6800);
  CHECK(kept < 7200);
}

TEST_CASE("softmax cross-entropy gradient matches finite differences", "[cpu][backward][loss]") {
  const uint64_t s = test::seed();
  const HostTensor64 logits = random64(Shape{4, 6}, s, 3.0);
  const std::vector<uint32_t> labels{0, 5, 2, 2};
  const auto r = cpu::softmax_cross_entropy(logits, labels);
  check_gradient("softmax_cross_entropy dlogits", logits, r.dlogits,
                 [&](const HostTensor64& v) { return cpu::softmax_cross_entropy(v, labels).loss; });
  // The loss is the mean of -log p[label].
  const auto p = cpu::softmax(logits);
  double want = 0;
  uint32_t correct = 0;
  for (uint32_t n = 0; n < 4; ++n) {
    want -= std::log(p.data[n * 6 + labels[n]]) / 4;
    uint32_t best = 0;
    for (uint32_t j = 1; j < 6; ++j)
      if (p.data[n * 6 + j] > p.data[n * 6 + best]) best = j;
    correct += best == labels[n];
  }
  CHECK(r.loss == Approx(want).epsilon(1e-12));
  CHECK(r.correct == correct);
  CHECK_THROWS_WITH(cpu::softmax_cross_entropy(logits, {0, 6, 1, 1}), Catch::Contains("label 6 of row 1 is out of range"));
}

TEST_CASE("sgd follows the paper's update rule", "[cpu][sgd]") {
  HostTensor w(Shape{2}, {1.0f, -2.0f}), v(Shape{2}, {0.5f, 0.0f});
  const HostTensor g(Shape{2}, {0.25f, 1.0f});
  cpu::sgd_update(w, v, g, SgdParams{0.1f, 0.9f, 0.01f});
  // v = 0.9 v - 0.01 * 0.1 * w - 0.1 * g; w = w + v
  CHECK(v.data[0] == Approx(0.45 - 0.001 - 0.025));
  CHECK(v.data[1] == Approx(0.0 + 0.002 - 0.1));
  CHECK(w.data[0] == Approx(1.0 + 0.424));
  CHECK(w.data[1] == Approx(-2.0 - 0.098));
}
