// Shapes, element types, the output-shape rules every op (GPU and CPU) checks against, and
// the dropout mask both draw.
#include <numeric>

#include "vkalex/error.hpp"
#include "vkalex/op_params.hpp"

namespace vkalex {

uint32_t dtype_size(DType dtype) { return dtype == DType::F16 ? 2 : 4; }

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "f32";
    case DType::U32: return "u32";
    case DType::F16: return "f16";
  }
  return "?";
}

uint64_t Shape::numel() const {
  uint64_t n = 1;
  for (uint32_t d : dims_) n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
  return s + "]";
}

namespace {

[[noreturn]] void fail(const char* op, const std::string& why) {
  throw Error(std::string(op) + ": " + why);
}

void require_rank(const char* op, const char* name, const Shape& s, size_t rank) {
  if (s.rank() != rank) {
    fail(op, std::string(name) + " must have rank " + std::to_string(rank) + ", got " + s.str());
  }
}

// Output size of a sliding window, or 0 when the window does not fit.
uint32_t window_out(uint32_t in, uint32_t kernel, uint32_t stride, uint32_t pad, uint32_t pad_end) {
  const uint64_t padded = uint64_t(in) + pad + pad_end;
  if (kernel == 0 || stride == 0 || padded < kernel) return 0;
  return static_cast<uint32_t>((padded - kernel) / stride + 1);
}

}  // namespace

Shape conv2d_output_shape(const Shape& x, const Shape& w, const Shape* bias, const Conv2dParams& p) {
  const char* op = "conv2d";
  require_rank(op, "input", x, 4);
  require_rank(op, "weight", w, 4);
  if (p.groups == 0) fail(op, "groups must be at least 1");
  if (p.stride_h == 0 || p.stride_w == 0) fail(op, "stride must be at least 1");
  const uint32_t C = x[1], K = w[0];
  if (C % p.groups != 0 || K % p.groups != 0) {
    fail(op, "groups " + std::to_string(p.groups) + " must divide input channels " +
                 std::to_string(C) + " and output channels " + std::to_string(K));
  }
  if (w[1] != C / p.groups) {
    fail(op, "weight " + w.str() + " needs " + std::to_string(C / p.groups) +
                 " input channels per group (input " + x.str() + ", groups " +
                 std::to_string(p.groups) + ")");
  }
  if (bias && (bias->rank() != 1 || (*bias)[0] != K)) {
    fail(op, "bias " + bias->str() + " must be [" + std::to_string(K) + "]");
  }
  if (p.pad_bottom < -1 || p.pad_right < -1) fail(op, "end padding must be at least 0 (or -1: as the beginning's)");
  const uint32_t oh = window_out(x[2], w[2], p.stride_h, p.pad_h, p.pad_end_h());
  const uint32_t ow = window_out(x[3], w[3], p.stride_w, p.pad_w, p.pad_end_w());
  if (oh == 0 || ow == 0) {
    fail(op, "kernel " + std::to_string(w[2]) + "x" + std::to_string(w[3]) +
                 " does not fit input " + x.str() + " with padding " + std::to_string(p.pad_h) +
                 "x" + std::to_string(p.pad_w));
  }
  return Shape{x[0], K, oh, ow};
}

Shape lrn_output_shape(const Shape& x, const LrnParams& p) {
  require_rank("lrn", "input", x, 4);
  if (p.size == 0 || p.size > kMaxLrnSize) {
    fail("lrn", "size must be from 1 to " + std::to_string(kMaxLrnSize) + ", is " + std::to_string(p.size));
  }
  if (!(p.k > 0.0f) || !(p.alpha >= 0.0f) || !(p.beta >= 0.0f)) {
    fail("lrn", "needs k > 0, alpha >= 0 and beta >= 0");
  }
  return x;
}

namespace {

// Output size of pooling windows along one axis (0 where none fits); `kernel` is the span of
// a dilated window.
uint32_t pool_out(uint32_t in, uint64_t kernel, uint32_t stride, uint32_t pad, uint32_t pad_end, bool ceil_mode) {
  const uint64_t padded = uint64_t(in) + pad + pad_end;
  if (padded < kernel) return 0;
  uint64_t out = (padded - kernel + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  if (ceil_mode && (out - 1) * stride >= uint64_t(in) + pad) --out;  // a window past the input
  return static_cast<uint32_t>(out);
}

// Whether every window along one axis holds an input element (its taps `dilation` apart).
bool windows_touch_input(uint32_t in, uint32_t out, uint32_t kernel, uint32_t stride, uint32_t pad, uint32_t dilation) {
  for (uint64_t o = 0; o < out; ++o) {
    const int64_t start = int64_t(o * stride) - int64_t(pad);
    bool any = false;
    for (uint64_t k = 0; k < kernel && !any; ++k) {
      const int64_t i = start + int64_t(k * dilation);
      any = i >= 0 && i < int64_t(in);
    }
    if (!any) return false;
  }
  return true;
}

}  // namespace

Shape max_pool_output_shape(const Shape& x, const MaxPoolParams& p) {
  const char* op = "max_pool";
  require_rank(op, "input", x, 4);
  if (p.kernel_h == 0 || p.kernel_w == 0 || p.stride_h == 0 || p.stride_w == 0) {
    fail(op, "kernel and stride must be at least 1");
  }
  if (p.pad_bottom < -1 || p.pad_right < -1) fail(op, "end padding must be at least 0 (or -1: as the beginning's)");
  if (p.dilation_h == 0 || p.dilation_w == 0 || p.dilation_h > 65535 || p.dilation_w > 65535) {
    fail(op, "dilation must be from 1 to 65535");
  }
  const uint64_t span_h = uint64_t(p.kernel_h - 1) * p.dilation_h + 1, span_w = uint64_t(p.kernel_w - 1) * p.dilation_w + 1;
  if (p.pad_h >= span_h || p.pad_w >= span_w || p.pad_end_h() >= span_h || p.pad_end_w() >= span_w) {
    fail(op, "padding must be less than the kernel (a window of padding only)");
  }
  const uint32_t oh = pool_out(x[2], span_h, p.stride_h, p.pad_h, p.pad_end_h(), p.ceil_mode);
  const uint32_t ow = pool_out(x[3], span_w, p.stride_w, p.pad_w, p.pad_end_w(), p.ceil_mode);
  if (oh == 0 || ow == 0) fail(op, "kernel does not fit input " + x.str());
  if (!windows_touch_input(x[2], oh, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h) ||
      !windows_touch_input(x[3], ow, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w)) {
    fail(op, "a dilated window of padding only (between its taps or beside the input)");
  }
  return Shape{x[0], x[1], oh, ow};
}

Shape linear_output_shape(const Shape& x, const Shape& w, const Shape* bias) {
  const char* op = "linear";
  require_rank(op, "input", x, 2);
  require_rank(op, "weight", w, 2);
  if (w[1] != x[1]) fail(op, "weight " + w.str() + " does not take input " + x.str());
  if (bias && (bias->rank() != 1 || (*bias)[0] != w[0])) {
    fail(op, "bias " + bias->str() + " must be [" + std::to_string(w[0]) + "]");
  }
  return Shape{x[0], w[0]};
}

Shape softmax_output_shape(const Shape& x) {
  if (x.rank() == 0 || x.dims().back() == 0) fail("softmax", "needs a non-empty last dimension, got " + x.str());
  return x;
}

uint32_t dropout_hash(uint32_t seed, uint32_t step, uint32_t index) {
  // An integer mix ("lowbias32") applied three times; shaders/dropout.glsl has the same.
  auto mix = [](uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
  };
  return mix(mix(mix(seed) ^ step) ^ index);
}

uint32_t dropout_threshold(float p) {
  const double t = double(p) * 4294967296.0;
  return t <= 0 ? 0u : t >= 4294967295.0 ? 0xffffffffu : static_cast<uint32_t>(t);
}

}  // namespace vkalex
