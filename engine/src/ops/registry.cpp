// The registry of kernel variants: which shader (and tiling) runs an op, and when each applies.
#include <algorithm>

#include "ops/op_common.hpp"
#include "vkalex/error.hpp"

namespace vkalex::ops {

namespace {

using Applies = bool (*)(const DeviceInfo&, const Shape& x, const Shape& w, uint32_t stride);

struct Variant {
  const char* op;
  const char* name;
  const char* shader;
  Applies applies;
  Applies suits;  // where the automatic choice takes it (forcing needs only `applies`)
  int cpu_rank, gpu_rank;  // order of preference per device class (lower first)
  const char* when;        // the condition, for error messages
};

bool always(const DeviceInfo&, const Shape&, const Shape&, uint32_t) { return true; }
// The wide tile loads a row segment of (pixels - 1) * stride + kernel width values: at
// stride 1 a kernel up to 11 wide. (At alexnet2012's conv1, 11 wide at stride 4, it measured
// slower than the direct kernel on lavapipe.)
bool conv_wide(const DeviceInfo&, const Shape& x, const Shape& w, uint32_t stride) {
  return x.rank() == 4 && w.rank() == 4 && w[3] <= 11 && stride == 1;
}
// Texel buffers of `texel_bytes` texels as large as a storage-buffer binding, at the same
// offsets (lavapipe: 128 M texels; SwiftShader's 65,536 are too few unless its bindings are
// limited as small).
bool texels_cover_bindings(const DeviceInfo& d, uint64_t texel_bytes) {
  return uint64_t(d.max_texel_buffer_elements) * texel_bytes >= d.max_storage_buffer_range &&
         d.min_texel_buffer_offset_alignment > 0 &&
         d.min_storage_buffer_offset_alignment % d.min_texel_buffer_offset_alignment == 0;
}
bool texel_buffers(const DeviceInfo& d, const Shape&, const Shape&, uint32_t) { return texels_cover_bindings(d, 16); }
// The GEMM convolutions pay for their patch matrix where each output channel group is large:
// measured on lavapipe, alexnet2012's 96-384 channels per group ran 1.5-2.5x faster than the
// direct kernels, alexnet-fashion's 24-32 slower. At 64 (alexnet-fashion's conv3) the wide
// kernels through texel buffers won (forward 36 against 42 ms, input gradient 39 against 59,
// `bench --tune`, batch 128), at 128 (alexnet2012's conv2 and conv5) the GEMM (25 against 32,
// 9.5 against 13 ms, batch 1): the GEMM from 96, between the two (not measured there). The
// input gradient's sum runs over these channels.
uint32_t channels_per_group(const Shape& x, const Shape& w) {
  const uint32_t groups = x.rank() == 4 && w.rank() == 4 && w[1] > 0 ? x[1] / w[1] : 0;
  return groups > 0 ? w[0] / groups : 0;
}
bool wide_groups(const DeviceInfo&, const Shape& x, const Shape& w, uint32_t) { return channels_per_group(x, w) >= 96; }
// The forward product since its patch matrix is read in panels and its lanes share A: from
// 64 channels per group. alexnet-fashion at batch 128, forward, every convolution forced to
// each variant, three alternated runs on lavapipe: conv3 (64) 12.8-13.5 ms with
// `.gemm_texel` against 15.7-16.6 with `.wide_texel`; conv4 (32 per group) 10.9-11.5 against
// 10.3-10.6. (The input gradient stays at 96: `bench --tune` timed conv3's 30.5 ms against
// 16.5.)
bool gemm_forward_groups(const DeviceInfo&, const Shape& x, const Shape& w, uint32_t) {
  return channels_per_group(x, w) >= 64;
}
bool scalar_texels(const DeviceInfo& d, const Shape&, const Shape&, uint32_t) { return texels_cover_bindings(d, 4); }
bool wide_scalar_texels(const DeviceInfo& d, const Shape& x, const Shape& w, uint32_t stride) {
  return conv_wide(d, x, w, stride) && scalar_texels(d, x, w, stride);
}
// gemm_shared's 64-row tiles waste most of a workgroup on a handful of rows: linear layers
// (rows = images) take it from a batch of 8.
bool batch_of_8(const DeviceInfo&, const Shape& x, const Shape&, uint32_t) { return x.rank() >= 1 && x[0] >= 8; }
bool k_multiple_of_4(const DeviceInfo&, const Shape& x, const Shape&, uint32_t) { return x.rank() == 2 && x[1] % 4 == 0; }

// Order on CPU drivers (measured with bench on lavapipe and SwiftShader, see the README): the
// GEMM through texel buffers, then through storage buffers, then the direct kernels, and the
// shared-memory GEMM last (barriers are costly there). On lavapipe every storage-buffer load
// is a loop over the lanes and a texel fetch one gather; SwiftShader's texel buffers are too
// small for it. On GPUs the shared-memory GEMM comes first: staging tiles in on-chip memory
// is how GPU matrix products reach a useful share of peak, while the direct kernels reload
// every input from memory. That order is not measured yet (no GPU was at hand).
constexpr const char* kTexelWhen = "texel buffers as large as its storage-buffer bindings";
constexpr const char* kScalarTexelWhen = "scalar texel buffers as large as its storage-buffer bindings";
constexpr const char* kWideWhen = "stride 1 and a kernel at most 11 wide";
constexpr const char* kWideTexelWhen =
    "stride 1, a kernel at most 11 wide and scalar texel buffers as large as its storage-buffer bindings";
const Variant kVariants[] = {
    {"conv2d", "conv2d.gemm_texel", "gemm_texel", texel_buffers, gemm_forward_groups, 0, 4, kTexelWhen},
    {"conv2d", "conv2d.gemm", "gemm", always, gemm_forward_groups, 1, 3, "always"},
    {"conv2d", "conv2d.wide_texel", "conv2d_forward_wide_texel", wide_scalar_texels, always, 2, 5, kWideTexelWhen},
    {"conv2d", "conv2d.wide", "conv2d_forward_wide", conv_wide, always, 3, 1, kWideWhen},
    {"conv2d", "conv2d.direct", "conv2d_forward", always, always, 4, 2, "always"},
    {"conv2d", "conv2d.gemm_shared", "gemm_shared", always, always, 5, 0, "always"},
    {"conv2d_backward_data", "conv2d_backward_data.gemm_texel", "gemm_texel", texel_buffers, wide_groups, 0, 4, kTexelWhen},
    {"conv2d_backward_data", "conv2d_backward_data.gemm", "gemm", always, wide_groups, 1, 3, "always"},
    {"conv2d_backward_data", "conv2d_backward_data.wide_texel", "conv2d_backward_data_wide_texel", wide_scalar_texels, always, 2, 5, kWideTexelWhen},
    {"conv2d_backward_data", "conv2d_backward_data.wide", "conv2d_backward_data_wide", conv_wide, always, 3, 1, kWideWhen},
    {"conv2d_backward_data", "conv2d_backward_data.direct", "conv2d_backward_data", always, always, 4, 2, "always"},
    {"conv2d_backward_data", "conv2d_backward_data.gemm_shared", "gemm_shared", always, always, 5, 0, "always"},
    {"conv2d_backward_weight", "conv2d_backward_weight.gemm_texel", "gemm_texel", texel_buffers, always, 0, 3, kTexelWhen},
    {"conv2d_backward_weight", "conv2d_backward_weight.gemm", "gemm", always, always, 1, 2, "always"},
    {"conv2d_backward_weight", "conv2d_backward_weight.direct", "conv2d_backward_weight", always, always, 2, 1, "always"},
    {"conv2d_backward_weight", "conv2d_backward_weight.gemm_shared", "gemm_shared", always, always, 3, 0, "always"},
    {"linear", "linear.gemm_texel", "gemm_texel", texel_buffers, always, 0, 4, kTexelWhen},
    {"linear", "linear.gemm", "gemm", always, always, 1, 3, "always"},
    {"linear", "linear.vec4", "linear_forward_vec4", k_multiple_of_4, always, 2, 1, "input features a multiple of 4"},
    {"linear", "linear.rows", "linear_forward", always, always, 3, 2, "always"},
    {"linear", "linear.gemm_shared", "gemm_shared", always, batch_of_8, 4, 0, "always"},
    {"linear_backward_data", "linear_backward_data.gemm_texel", "gemm_texel", texel_buffers, always, 0, 3, kTexelWhen},
    {"linear_backward_data", "linear_backward_data.gemm", "gemm", always, always, 1, 2, "always"},
    {"linear_backward_data", "linear_backward_data.direct", "linear_backward_data", always, always, 2, 1, "always"},
    {"linear_backward_data", "linear_backward_data.gemm_shared", "gemm_shared", always, batch_of_8, 3, 0, "always"},
    {"linear_backward_weight", "linear_backward_weight.gemm_texel", "gemm_texel", texel_buffers, always, 0, 3, kTexelWhen},
    {"linear_backward_weight", "linear_backward_weight.gemm", "gemm", always, always, 1, 2, "always"},
    {"linear_backward_weight", "linear_backward_weight.gemm_shared", "gemm_shared", always, always, 3, 0, "always"},
    // Inputs through scalar texel buffers or storage buffers: the same arithmetic. On lavapipe
    // the backward kernels ran 1.2-1.5x faster with texel loads, the forward ones no faster
    // (max-pool slower), measured in alexnet-fashion training at batch 128.
    {"lrn", "lrn.buffer", "lrn_forward", always, always, 0, 0, "always"},
    {"lrn", "lrn.texel", "lrn_forward_texel", scalar_texels, always, 1, 1, kScalarTexelWhen},
    {"lrn_backward", "lrn_backward.texel", "lrn_backward_texel", scalar_texels, always, 0, 1, kScalarTexelWhen},
    {"lrn_backward", "lrn_backward.buffer", "lrn_backward", always, always, 1, 0, "always"},
    {"max_pool", "max_pool.buffer", "maxpool_forward", always, always, 0, 0, "always"},
    {"max_pool", "max_pool.texel", "maxpool_forward_texel", scalar_texels, always, 1, 1, kScalarTexelWhen},
    {"avg_pool", "avg_pool.buffer", "maxpool_forward", always, always, 0, 0, "always"},
    {"avg_pool", "avg_pool.texel", "maxpool_forward_texel", scalar_texels, always, 1, 1, kScalarTexelWhen},
    {"max_pool_backward", "max_pool_backward.texel", "maxpool_backward_texel", scalar_texels, always, 0, 1, kScalarTexelWhen},
    {"max_pool_backward", "max_pool_backward.buffer", "maxpool_backward", always, always, 1, 0, "always"},
    {"relu_backward", "relu_backward.texel", "relu_backward_texel", scalar_texels, always, 0, 1, kScalarTexelWhen},
    {"relu_backward", "relu_backward.buffer", "relu_backward", always, always, 1, 0, "always"},
    {"bias_backward", "bias_backward.texel", "bias_backward_texel", scalar_texels, always, 0, 1, kScalarTexelWhen},
    {"bias_backward", "bias_backward.buffer", "bias_backward", always, always, 1, 0, "always"},
    {"linear_backward_weight", "linear_backward_weight.direct", "linear_backward_weight", always, always, 2, 1, "always"},
};

std::vector<const Variant*> variants_of(const std::string& op, bool gpu) {
  std::vector<const Variant*> out;
  for (const Variant& v : kVariants)
    if (op == v.op) out.push_back(&v);
  std::stable_sort(out.begin(), out.end(), [gpu](const Variant* a, const Variant* b) {
    return gpu ? a->gpu_rank < b->gpu_rank : a->cpu_rank < b->cpu_rank;
  });
  return out;
}

std::string names(const std::vector<const Variant*>& vs) {
  std::string s;
  for (const Variant* v : vs) s += (s.empty() ? "" : ", ") + std::string(v->name);
  return s;
}

}  // namespace

namespace {
const Variant& choose(const DeviceInfo& dev, const std::string& op, const Shape& x, const Shape& w, uint32_t stride) {
  const auto vs = variants_of(op, dev.type != DeviceType::Cpu);
  if (vs.empty()) throw Error("no kernel variants are registered for op \"" + op + "\"");
  if (auto f = dev.forced_kernels.find(op); f != dev.forced_kernels.end()) {
    for (const Variant* v : vs) {
      if (f->second != v->name) continue;
      if (!v->applies(dev, x, w, stride)) {
        throw Error(op + ": the forced kernel " + v->name + " needs " + v->when + "; input " + x.str() +
                    ", weight " + w.str());
      }
      return *v;
    }
    throw Error("forced kernel \"" + f->second + "\" is not a variant of " + op + " (" + names(vs) + ")");
  }
  // The tuning file is a cache of measurements: an entry that names no variant of this op, or
  // one that does not apply (other limits, a changed registry), is passed over.
  if (!dev.tuned_kernels.empty()) {
    if (auto t = dev.tuned_kernels.find({op, kernel_shape_key(x, w, stride)}); t != dev.tuned_kernels.end()) {
      for (const Variant* v : vs)
        if (t->second == v->name && v->applies(dev, x, w, stride)) return *v;
    }
  }
  for (const Variant* v : vs)
    if (v->applies(dev, x, w, stride) && v->suits(dev, x, w, stride)) return *v;
  for (const Variant* v : vs)
    if (v->applies(dev, x, w, stride)) return *v;
  throw Error(op + ": no kernel variant applies to input " + x.str());
}

}  // namespace

std::vector<std::string> kernel_variants(const std::string& op) {
  std::vector<std::string> out;
  for (const Variant* v : variants_of(op, false)) out.emplace_back(v->name);
  return out;
}

std::string kernel_shape_key(const Shape& x, const Shape& weight, uint32_t stride) {
  std::string key = "x" + x.str();
  if (weight.rank() > 0) key += " w" + weight.str();
  if (weight.rank() == 4) key += " stride " + std::to_string(stride);
  return key;
}

std::vector<std::string> applicable_kernels(const DeviceInfo& device, const std::string& op, const Shape& x,
                                            const Shape& weight, uint32_t stride) {
  std::vector<std::string> out;
  for (const Variant* v : variants_of(op, device.type != DeviceType::Cpu))
    if (v->applies(device, x, weight, stride)) out.emplace_back(v->name);
  return out;
}

std::string choose_kernel(const DeviceInfo& device, const std::string& op, const Shape& x, const Shape& weight,
                          uint32_t stride) {
  return choose(device, op, x, weight, stride).name;
}

void check_forced_kernels(const DeviceInfo& device) {
  for (const auto& [op, forced] : device.forced_kernels) {
    const std::string& name = forced;  // (a structured binding cannot be captured before C++20 in clang 14)
    const auto vs = variants_of(op, false);
    if (vs.empty()) {
      throw Error("forced kernel for op \"" + op + "\", which has no variants (see kernel_variants)");
    }
    if (std::none_of(vs.begin(), vs.end(), [&](const Variant* v) { return name == v->name; })) {
      throw Error("forced kernel \"" + name + "\" is not a variant of " + op + " (" + names(vs) + ")");
    }
  }
}

}  // namespace vkalex::ops

namespace vkalex::detail {

const char* kernel_shader(const DeviceInfo& device, const char* op, const Shape& x, const Shape& w, uint32_t stride) {
  return ops::choose(device, op, x, w, stride).shader;
}

bool scalar_texels_cover_bindings(const DeviceInfo& device) { return ops::texels_cover_bindings(device, 4); }

}  // namespace vkalex::detail
