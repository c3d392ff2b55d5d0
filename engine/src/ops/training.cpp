// Host side of dropout_forward.comp, softmax_xent.comp and sgd_update.comp.
#include <algorithm>

#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

namespace {

void check_step_params(const char* op, const Tensor& t) {
  detail::check_tensor(op, "step_params", t, Shape{8}, DType::U32);
}

// One dispatch of `shader` per element range, binding `tensors` (all of `count` floats) in
// that range and then `step_params` whole; set_base gets the range's first element.
template <typename Push>
void elementwise(Recorder& rec, const char* shader, const char* op, uint64_t count,
                 std::initializer_list<std::pair<const Tensor*, detail::Use>> tensors, const Tensor& step_params,
                 Push push) {
  using namespace detail;
  const DeviceInfo& dev = recorder_device(rec);
  const uint32_t wg = elementwise_workgroup(dev);
  if (count > UINT32_MAX) throw Error(std::string(op) + ": more than 2^32 elements");
  for (auto [i0, i1] : item_ranges(dev, op, static_cast<uint32_t>(count), {sizeof(float)})) {
    push.count = i1 - i0;
    push.set_base(i0);
    Dispatch d;
    d.shader = shader;
    d.label = op;
    d.specialization = {wg};
    for (const auto& [t, use] : tensors) d.bindings.push_back({t, use, i0 * 4ull, push.count * 4ull});
    d.bindings.push_back({&step_params, Use::Read});
    d.push = &push;
    d.push_bytes = sizeof push;
    d.groups = grid_for_threads(dev, push.count, wg);
    record_dispatch(rec, d);
  }
}

struct DropoutPush {
  uint32_t count, threshold;
  float scale;
  uint32_t index_base, first, row_len, row_stride;
  void set_base(uint32_t b) { index_base = b; }
};

void record_dropout(Recorder& rec, const char* op, const Tensor& x, const Tensor& y, float p, const Tensor& step_params,
                    uint32_t first_index, uint32_t row_stride) {
  detail::check_tensor(op, "input", x, x.shape());
  detail::check_tensor(op, "output", y, x.shape());
  check_step_params(op, step_params);
  if (!(p >= 0.0f && p < 1.0f)) throw Error(std::string(op) + ": p must be in [0, 1)");
  if (y.aliases(x) && y.offset() != x.offset()) throw Error(std::string(op) + ": output overlaps the input without being it");
  const uint64_t rows = x.shape().rank() ? x.shape()[0] : 1;
  const uint64_t row_len = rows ? x.numel() / rows : 0;
  if (row_stride == 0) row_stride = uint32_t(std::min<uint64_t>(row_len, UINT32_MAX));
  if (row_stride < row_len) {
    throw Error(std::string(op) + ": row_stride " + std::to_string(row_stride) + " is less than the " +
                std::to_string(row_len) + " elements of each image");
  }
  if (rows && uint64_t(first_index) + (rows - 1) * row_stride + row_len > UINT32_MAX) {
    throw Error(std::string(op) + ": the mask's indices (from " + std::to_string(first_index) + ", " +
                std::to_string(rows) + " rows of " + std::to_string(row_stride) + ") pass 2^32");
  }
  const bool in_place = y.aliases(x);
  elementwise(rec, "dropout_forward", op, x.numel(),
              {{&x, in_place ? detail::Use::Unused : detail::Use::Read}, {&y, in_place ? detail::Use::ReadWrite : detail::Use::Write}},
              step_params,
              DropoutPush{0, dropout_threshold(p), float(1.0 / (1.0 - double(p))), 0, first_index,
                          uint32_t(std::max<uint64_t>(row_len, 1)), row_stride});
}

}  // namespace

void dropout(Recorder& rec, const Tensor& x, const Tensor& y, float p, const Tensor& step_params,
             uint32_t first_index, uint32_t row_stride) {
  record_dropout(rec, "dropout", x, y, p, step_params, first_index, row_stride);
}

void dropout_backward(Recorder& rec, const Tensor& dy, const Tensor& dx, float p, const Tensor& step_params,
                      uint32_t first_index, uint32_t row_stride) {
  record_dropout(rec, "dropout_backward", dy, dx, p, step_params, first_index, row_stride);
}

void softmax_cross_entropy(Recorder& rec, const Tensor& logits, const Tensor& labels, const Tensor& dlogits,
                           const Tensor& stats, uint32_t mean_over) {
  using namespace detail;
  const char* op = "softmax_cross_entropy";
  check_tensor(op, "logits", logits, logits.shape());
  if (logits.shape().rank() != 2) throw Error("softmax_cross_entropy: logits must be [N, classes], got " + logits.shape().str());
  const uint32_t N = logits.shape()[0], L = logits.shape()[1];
  check_tensor(op, "labels", labels, Shape{N}, DType::U32);
  check_tensor(op, "dlogits", dlogits, logits.shape());
  check_tensor(op, "stats", stats, Shape{N, 2});
  check_no_alias(op, logits, dlogits);
  const DeviceInfo& dev = recorder_device(rec);
  uint32_t wg = 1;
  while (wg * 2 <= std::min<uint32_t>(256, dev.max_workgroup_invocations) && wg < L) wg *= 2;
  check_trip_count(dev, op, 3 * ((uint64_t(L) + wg - 1) / wg + 1) + 32, "one row");
  struct {
    uint32_t N, L;
    float inv_m;
  } push{N, L, float(1.0 / double(mean_over ? mean_over : N))};
  Dispatch d;
  d.shader = "softmax_xent";
  d.label = op;
  d.specialization = {wg};
  d.bindings = {{&logits, Use::Read}, {&labels, Use::Read}, {&dlogits, Use::Write}, {&stats, Use::Write}};
  d.push = &push;
  d.push_bytes = sizeof push;
  d.groups = grid_for(dev, N);
  record_dispatch(rec, d);
}

void sgd_update(Recorder& rec, const Tensor& w, const Tensor& v, const Tensor& g, const Tensor& step_params) {
  const char* op = "sgd_update";
  detail::check_tensor(op, "weights", w, w.shape());
  detail::check_tensor(op, "momentum", v, w.shape());
  detail::check_tensor(op, "gradient", g, w.shape());
  check_step_params(op, step_params);
  struct Push {
    uint32_t count;
    void set_base(uint32_t) {}
  };
  elementwise(rec, "sgd_update", op, w.numel(),
              {{&w, detail::Use::ReadWrite}, {&v, detail::Use::ReadWrite}, {&g, detail::Use::Read}}, step_params,
              Push{0});
}

}  // namespace vkalex::ops
