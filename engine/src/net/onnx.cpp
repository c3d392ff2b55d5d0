// ONNX import: the graph walked in its (topological) order, each node lowered into layers of a
// model description, constants and initializers into parameters. See vkalex/onnx.hpp.
#include "vkalex/onnx.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

#include "vkalex/error.hpp"

#if VKALEX_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include "base/input_file.hpp"
#endif

namespace vkalex {

std::string OnnxModel::refusal() const {
  if (!graph_refused.empty()) return graph_refused;
  for (const OnnxNode& n : nodes) {
    if (!n.refused.empty()) return "node " + n.name + " (" + n.op_type + "): " + n.refused;
  }
  return {};
}

bool is_onnx_path(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".onnx";
}

#if !VKALEX_HAVE_ONNX

bool onnx_available() { return false; }
OnnxModel load_onnx(const std::string& path, const OnnxOptions&) {
  throw Error(path + ": this vkalex was built without ONNX support (Debian package libonnx-dev)");
}
OnnxModel inspect_onnx(const std::string& path, const OnnxOptions& options) { return load_onnx(path, options); }

#else

bool onnx_available() { return true; }

namespace {

// A node that cannot run: the message names the attribute or value.
struct Refusal {
  std::string why;
};
[[noreturn]] void refuse(const std::string& why) { throw Refusal{why}; }

// The file is not a well-formed model (as opposed to a node the engine cannot run).
struct Malformed {
  std::string why;
};
[[noreturn]] void malformed(const std::string& why) { throw Malformed{why}; }

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + (d[i] < 0 ? std::string("N") : std::to_string(d[i]));
  return s + "]";
}

// The elements a tensor of these dimensions holds, refusing what no model of this engine has.
constexpr uint64_t kMaxTensorElements = 1ull << 31;
uint64_t checked_numel(const std::vector<int64_t>& dims, const std::string& what) {
  uint64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) malformed(what + " has a negative dimension " + std::to_string(d));
    if (d > int64_t(kMaxTensorElements)) malformed(what + " has a dimension " + std::to_string(d) + " beyond 2^31");
    n *= uint64_t(d);
    if (n > kMaxTensorElements) malformed(what + " " + dims_str(dims) + " holds more than 2^31 elements");
  }
  return n;
}

const char* elem_type_name(int t) {
  return onnx::TensorProto_DataType_IsValid(t) ? onnx::TensorProto_DataType_Name(t).c_str() : "an unknown type";
}

// A constant: float (a parameter or a scale) or int64 (a shape).
struct Constant {
  std::vector<int64_t> dims;
  std::vector<float> f;
  std::vector<int64_t> i;
  bool is_int = false;
  std::string origin;  // the initializer it comes from (through a folded Transpose), for naming
  uint64_t numel() const { return is_int ? i.size() : f.size(); }
};

template <typename T>
void from_raw(const std::string& raw, uint64_t n, std::vector<T>& out, const std::string& what) {
  if (raw.size() != n * sizeof(T)) {
    malformed(what + " holds " + std::to_string(raw.size()) + " bytes of data, its shape needs " + std::to_string(n * sizeof(T)));
  }
  out.resize(n);
  if (n) std::memcpy(out.data(), raw.data(), raw.size());  // little-endian, as ONNX stores it
}

Constant read_tensor(const onnx::TensorProto& t, const std::string& what) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    refuse(what + " keeps its data in an external file (not supported: save the model with its data inside)");
  }
  if (t.has_segment()) refuse(what + " is a segment of a tensor (not supported)");
  Constant c;
  c.dims.assign(t.dims().begin(), t.dims().end());
  const uint64_t n = checked_numel(c.dims, what);
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (t.has_raw_data()) {
        from_raw(t.raw_data(), n, c.f, what);
      } else {
        if (uint64_t(t.float_data_size()) != n) {
          malformed(what + " holds " + std::to_string(t.float_data_size()) + " floats, its shape " + dims_str(c.dims) +
                    " needs " + std::to_string(n));
        }
        c.f.assign(t.float_data().begin(), t.float_data().end());
      }
      break;
    case onnx::TensorProto::INT64:
      c.is_int = true;
      if (t.has_raw_data()) {
        from_raw(t.raw_data(), n, c.i, what);
      } else {
        if (uint64_t(t.int64_data_size()) != n) {
          malformed(what + " holds " + std::to_string(t.int64_data_size()) + " int64 values, its shape " +
                    dims_str(c.dims) + " needs " + std::to_string(n));
        }
        c.i.assign(t.int64_data().begin(), t.int64_data().end());
      }
      break;
    default:
      refuse(what + " is of type " + elem_type_name(t.data_type()) + " (only FLOAT tensors and INT64 shapes are supported)");
  }
  return c;
}

// An attribute of a node, typed; every attribute a node has must be known to its op.
class Attributes {
 public:
  Attributes(const onnx::NodeProto& node, std::initializer_list<const char*> known) {
    for (const auto& a : node.attribute()) {
      if (std::find_if(known.begin(), known.end(), [&](const char* k) { return a.name() == k; }) == known.end()) {
        refuse("attribute \"" + a.name() + "\" is not supported");
      }
      if (!map_.emplace(a.name(), &a).second) malformed("attribute \"" + a.name() + "\" is given twice");
      if (!a.ref_attr_name().empty()) refuse("attribute \"" + a.name() + "\" refers to a function's attribute");
    }
  }
  bool has(const char* name) const { return map_.count(name) > 0; }
  int64_t i(const char* name, int64_t fallback) const {
    const auto* a = get(name, onnx::AttributeProto::INT);
    return a ? a->i() : fallback;
  }
  float f(const char* name, float fallback) const {
    const auto* a = get(name, onnx::AttributeProto::FLOAT);
    return a ? a->f() : fallback;
  }
  std::string s(const char* name, const std::string& fallback) const {
    const auto* a = get(name, onnx::AttributeProto::STRING);
    return a ? a->s() : fallback;
  }
  std::optional<std::vector<int64_t>> ints(const char* name) const {
    const auto* a = get(name, onnx::AttributeProto::INTS);
    if (!a) return std::nullopt;
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  }
  const onnx::AttributeProto* get(const char* name, onnx::AttributeProto::AttributeType type) const {
    auto it = map_.find(name);
    if (it == map_.end()) return nullptr;
    if (it->second->type() != type) {
      malformed(std::string("attribute \"") + name + "\" is " + onnx::AttributeProto::AttributeType_Name(it->second->type()) +
                ", needs " + onnx::AttributeProto::AttributeType_Name(type));
    }
    return it->second;
  }

 private:
  std::map<std::string, const onnx::AttributeProto*> map_;
};

// A 2-D window (convolution, pooling) as ONNX gives it, resolved to per-side pads.
struct Window {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t top = 0, left = 0, bottom = 0, right = 0;
  bool ceil = false;
  // Output size along one axis by ONNX's rule.
  static int64_t out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, bool ceil) {
    const int64_t span = (k - 1) * d + 1, padded = in + p0 + p1 - span;
    if (padded < 0) return 0;
    return (ceil ? (padded + s - 1) / s : padded / s) + 1;
  }
  int64_t out_h(int64_t h) const { return out(h, kh, sh, dh, top, bottom, ceil); }
  int64_t out_w(int64_t w) const { return out(w, kw, sw, dw, left, right, ceil); }
};

Window read_window(const Attributes& a, const std::vector<int64_t>& x, std::optional<std::pair<int64_t, int64_t>> kernel) {
  Window w;
  if (auto k = a.ints("kernel_shape")) {
    if (k->size() != 2) refuse("kernel_shape " + dims_str(*k) + ": only 2-D windows are supported");
    if (kernel && (kernel->first != (*k)[0] || kernel->second != (*k)[1])) {
      malformed("kernel_shape " + dims_str(*k) + " disagrees with the weight's " + std::to_string(kernel->first) + "x" +
                std::to_string(kernel->second));
    }
    w.kh = (*k)[0], w.kw = (*k)[1];
  } else if (kernel) {
    w.kh = kernel->first, w.kw = kernel->second;
  } else {
    malformed("attribute \"kernel_shape\" is missing");
  }
  if (w.kh < 1 || w.kw < 1) malformed("kernel_shape must be positive");
  if (auto s = a.ints("strides")) {
    if (s->size() != 2) malformed("strides " + dims_str(*s) + " must have 2 values");
    w.sh = (*s)[0], w.sw = (*s)[1];
    if (w.sh < 1 || w.sw < 1) malformed("strides must be positive");
  }
  if (auto d = a.ints("dilations")) {
    if (d->size() != 2) malformed("dilations " + dims_str(*d) + " must have 2 values");
    w.dh = (*d)[0], w.dw = (*d)[1];
    if (w.dh < 1 || w.dw < 1) malformed("dilations must be positive");
    if (w.dh > 65535 || w.dw > 65535) refuse("dilations " + dims_str(*d) + " beyond 65535");
  }
  w.ceil = a.i("ceil_mode", 0) != 0;
  const std::string auto_pad = a.s("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    if (auto p = a.ints("pads")) {
      if (p->size() != 4) malformed("pads " + dims_str(*p) + " must have 4 values (top, left, bottom, right)");
      for (int64_t v : *p) {
        if (v < 0) refuse("pads " + dims_str(*p) + ": negative pads are not supported");
      }
      w.top = (*p)[0], w.left = (*p)[1], w.bottom = (*p)[2], w.right = (*p)[3];
    }
  } else if (auto_pad == "VALID") {
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    // Output ceil(in / stride); the total padding split evenly, the odd one at the end
    // (SAME_UPPER) or the beginning (SAME_LOWER).
    auto split = [&](int64_t in, int64_t k, int64_t s, int64_t& p0, int64_t& p1) {  // k: the dilated span
      const int64_t total = std::max<int64_t>(((in + s - 1) / s - 1) * s + k - in, 0);
      p0 = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      p1 = total - p0;
    };
    split(x[2], (w.kh - 1) * w.dh + 1, w.sh, w.top, w.bottom);
    split(x[3], (w.kw - 1) * w.dw + 1, w.sw, w.left, w.right);
  } else {
    malformed("auto_pad \"" + auto_pad + "\" is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  }
  if (auto_pad != "NOTSET" && a.has("pads")) malformed("auto_pad " + auto_pad + " and pads given together");
  return w;
}

// The most weights a dilated convolution's kernel may spread to (its zeros included): 64 M.
constexpr int64_t kMaxDilatedWeights = int64_t(1) << 26;

// A convolution's window in the engine's terms: ONNX's pads per side as they are.
void conv_pads(const Window& w, const std::vector<int64_t>& x, Conv2dParams& p) {
  if (w.top > 0xffff || w.left > 0xffff || w.bottom > 0xffff || w.right > 0xffff) refuse("pads beyond 65535");
  if (w.out_h(x[2]) < 1 || w.out_w(x[3]) < 1) {
    malformed("the window " + std::to_string(w.kh) + "x" + std::to_string(w.kw) + " does not fit the input " + dims_str(x));
  }
  p.pad_h = uint32_t(w.top), p.pad_w = uint32_t(w.left);
  p.pad_bottom = w.bottom == w.top ? -1 : int32_t(w.bottom);
  p.pad_right = w.right == w.left ? -1 : int32_t(w.right);
}

// A pooling window in the engine's terms: ONNX's pads per side and ceil_mode as they are.
void pool_window(const Window& w, const std::vector<int64_t>& x, MaxPoolParams& p) {
  const int64_t span_h = (w.kh - 1) * w.dh + 1, span_w = (w.kw - 1) * w.dw + 1;
  if (w.top >= span_h || w.bottom >= span_h || w.left >= span_w || w.right >= span_w) {
    refuse("pads [" + std::to_string(w.top) + ", " + std::to_string(w.left) + ", " + std::to_string(w.bottom) + ", " +
           std::to_string(w.right) + "] not less than the kernel " + std::to_string(w.kh) + "x" + std::to_string(w.kw) +
           " (windows of padding only)");
  }
  if (w.kh > 0xffff || w.kw > 0xffff || w.sh > 0xffff || w.sw > 0xffff) refuse("a window or stride beyond 65535");
  p.kernel_h = uint32_t(w.kh), p.kernel_w = uint32_t(w.kw);
  p.stride_h = uint32_t(w.sh), p.stride_w = uint32_t(w.sw);
  p.pad_h = uint32_t(w.top), p.pad_w = uint32_t(w.left);
  p.pad_bottom = int32_t(w.bottom), p.pad_right = int32_t(w.right);
  p.ceil_mode = w.ceil;
  p.dilation_h = uint32_t(w.dh), p.dilation_w = uint32_t(w.dw);
  // ONNX (1.12) and the engine agree on the output size but where a ceil_mode window would
  // start past the input and its top padding, which the engine drops.
  Shape image{1, uint32_t(x[1]), uint32_t(x[2]), uint32_t(x[3])};
  const Shape out = max_pool_output_shape(image, p);
  if (int64_t(out[2]) != w.out_h(x[2]) || int64_t(out[3]) != w.out_w(x[3])) {
    refuse("ceil_mode gives a last window starting past the input and its padding (" + std::to_string(w.out_h(x[2])) + "x" +
           std::to_string(w.out_w(x[3])) + " outputs; vkalex drops that window, as torch does)");
  }
}

// The state of the walk: the layers so far and what each value name holds.
struct Value {
  std::optional<Constant> constant;  // else an activation
  std::vector<int64_t> dims;         // an activation's dimensions (dims[0] the batch, -1 where symbolic)
  size_t producer = SIZE_MAX;        // the layer that wrote it (SIZE_MAX: the graph input)
  // A linear layer's output as it was before an Add gave the layer its bias: no longer there.
  bool before_bias = false;
};

class Lowering {
 public:
  Lowering(const onnx::ModelProto& proto, const OnnxOptions& options, OnnxModel& out)
      : proto_(proto), options_(options), out_(out) {}

  void run(bool throw_refusals);

 private:
  const onnx::ModelProto& proto_;
  const OnnxOptions& options_;
  OnnxModel& out_;
  std::map<std::string, Value> values_;
  std::vector<LayerDesc> layers_;
  std::set<std::string> layer_names_;
  std::set<std::string> consumed_;  // value names the graph's outputs need (they, and what needed nodes read)
  bool saw_softmax_ = false;

  void read_inputs();
  void lower(const onnx::NodeProto& node, OnnxNode& report);

  const Value& value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) malformed("reads \"" + name + "\", which no earlier node, input or initializer gives");
    return it->second;
  }
  // The node's input `k`, an activation (the graph input or a layer's output).
  const std::vector<int64_t>& activation(const onnx::NodeProto& node, int k) {
    if (node.input_size() <= k || node.input(k).empty()) malformed("input " + std::to_string(k) + " is missing");
    const Value& v = value(node.input(k));
    if (v.constant) refuse("input \"" + node.input(k) + "\" is a constant (constant folding is not supported)");
    if (v.before_bias) refuse(before_bias(node.input(k)));
    return v.dims;
  }
  std::string before_bias(const std::string& name) const {
    return "reads \"" + name + "\", the output of " + layers_[value(name).producer].name +
           " before the bias an Add gives it; only the output with the bias may be read";
  }
  // The description's name of the activation `name`: its layer's, or "input".
  std::string source(const std::string& name) const {
    const Value& v = value(name);
    return v.producer == SIZE_MAX ? std::string("input") : layers_[v.producer].name;
  }
  // What a layer reading activation `name` lists as its inputs: nothing where that is the
  // layer before it (or the graph input, before any layer).
  std::vector<std::string> reads(const std::string& name) const {
    const size_t last = layers_.empty() ? SIZE_MAX : layers_.size() - 1;
    if (value(name).producer == last) return {};
    return {source(name)};
  }
  const Constant& constant(const onnx::NodeProto& node, int k, const char* what) {
    if (node.input_size() <= k || node.input(k).empty()) malformed(std::string(what) + " (input " + std::to_string(k) + ") is missing");
    const Value& v = value(node.input(k));
    if (!v.constant) refuse(std::string(what) + " \"" + node.input(k) + "\" is computed by the graph; only a constant (an initializer) is supported");
    return *v.constant;
  }
  const Constant* optional_constant(const onnx::NodeProto& node, int k, const char* what) {
    if (node.input_size() <= k || node.input(k).empty()) return nullptr;
    return &constant(node, k, what);
  }
  void require_outputs(const onnx::NodeProto& node, int max_used) {
    if (node.output_size() < 1 || node.output(0).empty()) malformed("has no output");
    for (int k = max_used; k < node.output_size(); ++k) {
      if (!node.output(k).empty() && consumed_.count(node.output(k))) {
        refuse("output " + std::to_string(k) + " (\"" + node.output(k) + "\") is used, and only output 0 is supported");
      }
    }
  }
  // Adds a layer whose output becomes the node's output `k`. It reads the node's input 0
  // unless it lists its inputs itself, or `after_previous` (the layer just added for it).
  void add(const onnx::NodeProto& node, LayerDesc layer, std::vector<int64_t> dims, OnnxNode& report, int k = 0,
           bool after_previous = false) {
    if (layer.inputs.empty() && !after_previous) layer.inputs = reads(node.input(0));
    layer.name = unique_layer_name(node, layer.type, node.output_size() > 1 ? "_" + std::to_string(k) : "");
    report.lowered += std::string(report.lowered.empty() ? "" : ", ") + layer_type_name(layer.type) + " " + layer.name;
    layers_.push_back(std::move(layer));
    Value v;
    v.dims = std::move(dims);
    v.producer = layers_.size() - 1;
    define(node.output(k), std::move(v));
  }
  void alias(const onnx::NodeProto& node, const std::string& from) {
    Value v = value(from);
    define(node.output(0), std::move(v));
  }
  void define(const std::string& name, Value v) {
    if (name.empty()) malformed("an output has no name");
    if (!values_.emplace(name, std::move(v)).second) malformed("\"" + name + "\" is given by two nodes (or an input)");
  }
  std::string unique_layer_name(const onnx::NodeProto& node, LayerType type, const std::string& suffix = "") {
    std::string base = (node.name().empty() ? std::string(layer_type_name(type)) + std::to_string(layers_.size() + 1) : node.name()) + suffix;
    std::string name = base;
    for (int k = 2; !layer_names_.insert(name).second; ++k) name = base + "_" + std::to_string(k);
    return name;
  }
  // The name a parameter from the node's input k takes: its initializer's.
  std::string param_name(const onnx::NodeProto& node, int k) const {
    const Value& v = value(node.input(k));
    return v.constant && !v.constant->origin.empty() ? v.constant->origin : node.input(k);
  }
  // A parameter tensor from a constant, under the constant's name (another name where one
  // constant gives two parameters).
  std::string parameter(const std::string& name, const Shape& shape, std::vector<float> data) {
    std::string key = name;
    for (int k = 2; out_.parameters.count(key); ++k) key = name + "#" + std::to_string(k);
    out_.parameters.emplace(key, HostTensor(shape, std::move(data)));
    return key;
  }

  void conv(const onnx::NodeProto& node, OnnxNode& report);
  void pool(const onnx::NodeProto& node, OnnxNode& report, bool average);
  void lrn(const onnx::NodeProto& node, OnnxNode& report);
  void gemm(const onnx::NodeProto& node, OnnxNode& report);
  void matmul(const onnx::NodeProto& node, OnnxNode& report);
  void add_bias(const onnx::NodeProto& node, OnnxNode& report);
  void flatten(const onnx::NodeProto& node, OnnxNode& report);
  void reshape(const onnx::NodeProto& node, OnnxNode& report);
  void dropout(const onnx::NodeProto& node, OnnxNode& report);
  void softmax(const onnx::NodeProto& node, OnnxNode& report);
  void constant_node(const onnx::NodeProto& node, OnnxNode& report);
  void transpose(const onnx::NodeProto& node, OnnxNode& report);
  void concat(const onnx::NodeProto& node, OnnxNode& report);
  void split(const onnx::NodeProto& node, OnnxNode& report);
  void to_features(const onnx::NodeProto& node, const std::vector<int64_t>& x, OnnxNode& report);
};

int64_t features(const std::vector<int64_t>& x) {
  int64_t n = 1;
  for (size_t i = 1; i < x.size(); ++i) n *= x[i];
  return n;
}

void Lowering::read_inputs() {
  const auto& g = proto_.graph();
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) {
    const std::string what = "initializer \"" + t.name() + "\"";
    if (t.name().empty()) malformed("an initializer has no name");
    Value v;
    try {
      v.constant = read_tensor(t, what);
      v.constant->origin = t.name();
    } catch (const Refusal& r) {
      malformed(r.why);  // no node can use it then; say so at once
    }
    define(t.name(), std::move(v));
    initializers.insert(t.name());
  }
  if (g.sparse_initializer_size() > 0) refuse("the graph has sparse initializers (not supported)");
  std::vector<const onnx::ValueInfoProto*> images;
  for (const auto& in : g.input()) {
    if (initializers.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
    images.push_back(&in);
  }
  if (images.size() != 1) {
    std::string names;
    for (const auto* in : images) names += (names.empty() ? "\"" : ", \"") + in->name() + "\"";
    refuse("the graph has " + std::to_string(images.size()) + " inputs without an initializer (" + names +
           "); one is the images, the others must have initializers (constants)");
  }
  const onnx::ValueInfoProto& in = *images[0];
  out_.input = in.name();
  if (!in.type().has_tensor_type()) refuse("input \"" + in.name() + "\" is not a tensor");
  const auto& tt = in.type().tensor_type();
  if (tt.elem_type() != onnx::TensorProto::FLOAT) {
    refuse("input \"" + in.name() + "\" is of type " + elem_type_name(tt.elem_type()) + " (only FLOAT is supported)");
  }
  if (!tt.has_shape()) refuse("input \"" + in.name() + "\" has no shape");
  std::vector<int64_t> dims;
  for (int i = 0; i < tt.shape().dim_size(); ++i) {
    const auto& d = tt.shape().dim(i);
    if (d.has_dim_value()) {
      if (d.dim_value() < 1) refuse("input \"" + in.name() + "\" has dimension " + std::to_string(d.dim_value()) + " (empty tensors are not supported)");
      dims.push_back(d.dim_value());
    } else if (i == 0) {
      dims.push_back(-1);  // a symbolic batch
    } else {
      refuse("input \"" + in.name() + "\" has a symbolic dimension " + std::to_string(i) + " (only the batch may be)");
    }
  }
  out_.input_dims = dims;
  if (dims.size() < 2 || dims.size() > 4) {
    refuse("input \"" + in.name() + "\" " + dims_str(dims) + ": only [batch, features], [batch, channels, length] and [batch, channels, height, width] are supported");
  }
  std::vector<int64_t> image = dims;
  image[0] = 1;
  checked_numel(image, "input \"" + in.name() + "\"");
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] > 1000000) refuse("input \"" + in.name() + "\" " + dims_str(dims) + ": a dimension beyond 1000000");
  }
  ModelDesc& m = out_.model;
  m.channels = uint32_t(dims[1]);
  m.height = dims.size() > 2 ? uint32_t(dims[2]) : 1;
  m.width = dims.size() > 3 ? uint32_t(dims[3]) : 1;
  layer_names_.insert("input");  // the description's name of its input
  Value v;
  v.dims = dims;
  if (dims.size() == 2) {  // the description's input is an image [C, H, W]: [F, 1, 1] here
    LayerDesc f;
    f.type = LayerType::Flatten;
    f.name = "input_flatten";
    layer_names_.insert(f.name);
    layers_.push_back(f);
    v.producer = 0;
  }
  define(in.name(), std::move(v));
  // Walking back from the graph's outputs (the nodes are in an order that runs): a node is
  // needed where one of its outputs is, and then so is everything it reads.
  for (const auto& o : g.output()) consumed_.insert(o.name());
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const auto& n = g.node(i);
    bool needed = false;
    for (const auto& o : n.output()) needed = needed || (!o.empty() && consumed_.count(o));
    if (needed) consumed_.insert(n.input().begin(), n.input().end());
  }
}

void Lowering::to_features(const onnx::NodeProto& node, const std::vector<int64_t>& x, OnnxNode& report) {
  LayerDesc l;
  l.type = LayerType::Flatten;
  add(node, l, {x[0], features(x)}, report);
}

void Lowering::conv(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  const auto x = activation(node, 0);
  if (x.size() != 4) refuse("input " + dims_str(x) + ": only 2-D convolutions ([batch, channels, height, width]) are supported");
  const Constant& w = constant(node, 1, "weight");
  if (w.is_int || w.dims.size() != 4) malformed("weight " + dims_str(w.dims) + " is not a 4-D FLOAT tensor");
  const Constant* b = optional_constant(node, 2, "bias");
  const int64_t groups = a.i("group", 1);
  if (groups < 1 || x[1] % groups != 0 || w.dims[0] % groups != 0 || w.dims[1] * groups != x[1]) {
    malformed("group " + std::to_string(groups) + " does not fit the input " + dims_str(x) + " and weight " + dims_str(w.dims));
  }
  if (b && (b->is_int || b->dims.size() != 1 || b->dims[0] != w.dims[0])) {
    malformed("bias " + dims_str(b->dims) + " must be [" + std::to_string(w.dims[0]) + "]");
  }
  const Window win = read_window(a, x, std::make_pair(w.dims[2], w.dims[3]));
  // Dilations: the same convolution with a kernel spanning (k - 1) * d + 1 whose taps between
  // the dilated ones are zero (d^2 times the multiply-adds; every kernel variant runs it).
  const int64_t kh = (w.dims[2] - 1) * win.dh + 1, kw = (w.dims[3] - 1) * win.dw + 1;
  const bool dilated = kh != w.dims[2] || kw != w.dims[3];
  if (dilated && double(w.dims[0]) * double(w.dims[1]) * double(kh) * double(kw) > double(kMaxDilatedWeights)) {
    refuse("dilations [" + std::to_string(win.dh) + ", " + std::to_string(win.dw) + "] spread the kernel to " + std::to_string(kh) +
           "x" + std::to_string(kw) + ", more than " + std::to_string(kMaxDilatedWeights) + " weights with the zeros between its taps");
  }
  std::vector<float> weight = w.f;
  if (dilated) {
    weight.assign(size_t(w.dims[0] * w.dims[1] * kh * kw), 0.0f);
    for (int64_t r = 0; r < w.dims[0] * w.dims[1]; ++r) {
      for (int64_t y = 0; y < w.dims[2]; ++y) {
        for (int64_t x0 = 0; x0 < w.dims[3]; ++x0) {
          weight[size_t((r * kh + y * win.dh) * kw + x0 * win.dw)] = w.f[size_t((r * w.dims[2] + y) * w.dims[3] + x0)];
        }
      }
    }
  }
  require_outputs(node, 1);
  LayerDesc l;
  l.type = LayerType::Conv2d;
  l.out_channels = uint32_t(w.dims[0]);
  l.kernel_h = uint32_t(kh), l.kernel_w = uint32_t(kw);
  l.conv.stride_h = uint32_t(win.sh), l.conv.stride_w = uint32_t(win.sw);
  conv_pads(win, x, l.conv);
  l.conv.groups = uint32_t(groups);
  l.weight = parameter(param_name(node, 1), Shape{uint32_t(w.dims[0]), uint32_t(w.dims[1]), uint32_t(kh), uint32_t(kw)}, std::move(weight));
  if (b) l.bias = parameter(param_name(node, 2), Shape{uint32_t(b->dims[0])}, b->f);
  add(node, l, {x[0], w.dims[0], win.out_h(x[2]), win.out_w(x[3])}, report);
  if (dilated) {
    report.lowered += " (dilations [" + std::to_string(win.dh) + ", " + std::to_string(win.dw) + "]: a " + std::to_string(kh) + "x" +
                      std::to_string(kw) + " kernel, zero between the taps)";
  }
}

void Lowering::pool(const onnx::NodeProto& node, OnnxNode& report, bool average) {
  const Attributes a = average ? Attributes(node, {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"})
                               : Attributes(node, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  const auto x = activation(node, 0);
  if (x.size() != 4) refuse("input " + dims_str(x) + ": only 2-D pooling ([batch, channels, height, width]) is supported");
  const Window win = read_window(a, x, std::nullopt);
  if (a.i("storage_order", 0) != 0) refuse("storage_order 1 (only the indices' order, and output 1 is not supported)");
  require_outputs(node, 1);
  LayerDesc l;
  l.type = average ? LayerType::AvgPool : LayerType::MaxPool;
  pool_window(win, x, l.pool);
  if (average) l.count_include_pad = a.i("count_include_pad", 0) != 0;
  add(node, l, {x[0], x[1], win.out_h(x[2]), win.out_w(x[3])}, report);
}

void Lowering::lrn(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"alpha", "beta", "bias", "size"});
  const auto x = activation(node, 0);
  if (x.size() < 3) refuse("input " + dims_str(x) + ": LRN needs [batch, channels, ...]");
  if (!a.has("size")) malformed("attribute \"size\" is missing");
  const int64_t size = a.i("size", 0);
  if (size < 1) malformed("size " + std::to_string(size) + " must be at least 1");
  if (size > int64_t(kMaxLrnSize)) refuse("size " + std::to_string(size) + " beyond " + std::to_string(kMaxLrnSize));
  require_outputs(node, 1);
  LayerDesc l;
  l.type = LayerType::Lrn;
  l.lrn.size = uint32_t(size);
  l.lrn.alpha = a.f("alpha", 1e-4f);
  l.lrn.beta = a.f("beta", 0.75f);
  l.lrn.k = a.f("bias", 1.0f);
  l.lrn.onnx_window = true;  // for even sizes one channel higher than torch's
  add(node, l, x, report);
}

// Linear layer from a weight [out, in] (already in the engine's layout) and a bias.
void Lowering::gemm(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a = out_.opset < 7 ? Attributes(node, {"alpha", "beta", "broadcast", "transA", "transB"})
                                      : Attributes(node, {"alpha", "beta", "transA", "transB"});
  const auto x = activation(node, 0);
  if (x.size() != 2) malformed("input A " + dims_str(x) + " is not 2-D");
  if (a.i("transA", 0) != 0) refuse("transA 1 (the images' features as columns) is not supported");
  const Constant& bm = constant(node, 1, "B");
  if (bm.is_int || bm.dims.size() != 2) malformed("B " + dims_str(bm.dims) + " is not a 2-D FLOAT tensor");
  const bool trans_b = a.i("transB", 0) != 0;
  const int64_t k = trans_b ? bm.dims[1] : bm.dims[0], n = trans_b ? bm.dims[0] : bm.dims[1];
  if (k != x[1]) malformed("A " + dims_str(x) + " and B " + dims_str(bm.dims) + (trans_b ? " (transposed)" : "") + " do not multiply");
  const float alpha = a.f("alpha", 1.0f), beta = a.f("beta", 1.0f);
  std::vector<float> w(size_t(n * k));
  for (int64_t o = 0; o < n; ++o) {
    for (int64_t i = 0; i < k; ++i) w[o * k + i] = alpha * (trans_b ? bm.f[o * k + i] : bm.f[i * n + o]);
  }
  const Constant* c = optional_constant(node, 2, "C");
  require_outputs(node, 1);
  LayerDesc l;
  l.type = LayerType::Linear;
  l.out_features = uint32_t(n);
  l.weight = parameter(param_name(node, 1), Shape{uint32_t(n), uint32_t(k)}, std::move(w));
  if (c) {
    if (c->is_int) malformed("C is not FLOAT");
    // C broadcasts to [M, N]: a bias only where it is the same for every row.
    const auto& d = c->dims;
    const bool per_column = d.empty() || (d.size() == 1 && (d[0] == 1 || d[0] == n)) ||
                            (d.size() == 2 && d[0] == 1 && (d[1] == 1 || d[1] == n));
    if (!per_column) {
      const bool broadcasts = d.size() <= 2 && (d.size() < 2 || d[0] == 1 || d[0] == x[0]) &&
                              (d.empty() || d.back() == 1 || d.back() == n);
      if (!broadcasts) malformed("C " + dims_str(d) + " does not broadcast to [" + std::to_string(x[0]) + ", " + std::to_string(n) + "]");
      refuse("C " + dims_str(d) + " differs between rows (only a bias, the same for every image, is supported)");
    }
    std::vector<float> bias(static_cast<size_t>(n));
    for (int64_t o = 0; o < n; ++o) bias[o] = beta * c->f[c->f.size() == 1 ? 0 : o];
    l.bias = parameter(param_name(node, 2), Shape{uint32_t(n)}, std::move(bias));
  }
  add(node, l, {x[0], n}, report);
}

void Lowering::matmul(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {});
  const auto x = activation(node, 0);
  if (x.size() != 2) refuse("A " + dims_str(x) + ": only a 2-D MatMul ([batch, features] by a constant) is supported");
  const Constant& bm = constant(node, 1, "B");
  if (bm.is_int || bm.dims.size() != 2) refuse("B " + dims_str(bm.dims) + ": only a 2-D FLOAT constant is supported");
  if (bm.dims[0] != x[1]) malformed("A " + dims_str(x) + " and B " + dims_str(bm.dims) + " do not multiply");
  const int64_t k = bm.dims[0], n = bm.dims[1];
  std::vector<float> w(size_t(n * k));
  for (int64_t o = 0; o < n; ++o) {
    for (int64_t i = 0; i < k; ++i) w[o * k + i] = bm.f[i * n + o];
  }
  require_outputs(node, 1);
  LayerDesc l;
  l.type = LayerType::Linear;
  l.out_features = uint32_t(n);
  l.weight = parameter(param_name(node, 1), Shape{uint32_t(n), uint32_t(k)}, std::move(w));
  add(node, l, {x[0], n}, report);
}

// Add after a MatMul (or a Gemm without C): the linear layer's bias.
void Lowering::add_bias(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a = out_.opset < 7 ? Attributes(node, {"axis", "broadcast"}) : Attributes(node, {});
  if (out_.opset < 7) {
    // Opset 6 broadcasts only with broadcast 1, B's dimensions aligned from `axis` (default:
    // the trailing ones); a bias [features] of [batch, features] is axis 1.
    if (a.i("broadcast", 0) == 0) refuse("broadcast 0: an Add of two activations (only a bias is supported)");
    if (a.has("axis") && a.i("axis", 1) != 1 && a.i("axis", 1) != -1) {
      refuse("axis " + std::to_string(a.i("axis", 1)) + " (only a bias along the features, axis 1)");
    }
  }
  if (node.input_size() != 2) malformed("Add needs 2 inputs");
  const int data = values_.count(node.input(0)) && !value(node.input(0)).constant ? 0 : 1;
  const auto x = activation(node, data);
  const Value& v = value(node.input(data));
  if (v.producer == SIZE_MAX || layers_[v.producer].type != LayerType::Linear || !layers_[v.producer].bias.empty() ||
      v.producer + 1 != layers_.size()) {
    refuse("Add other than a bias right after a MatMul is not supported");
  }
  const Constant& c = constant(node, 1 - data, "the addend");
  const int64_t n = x[1];
  const auto& d = c.dims;
  if (c.is_int || !(d.empty() || (d.size() == 1 && (d[0] == 1 || d[0] == n)) || (d.size() == 2 && d[0] == 1 && (d[1] == 1 || d[1] == n)))) {
    refuse("the addend " + dims_str(d) + " is not a bias [" + std::to_string(n) + "] the same for every image");
  }
  require_outputs(node, 1);
  std::vector<float> bias(static_cast<size_t>(n));
  for (int64_t o = 0; o < n; ++o) bias[o] = c.f[c.f.size() == 1 ? 0 : o];
  const size_t linear = v.producer;
  LayerDesc& l = layers_[linear];
  l.bias = parameter(param_name(node, 1 - data), Shape{uint32_t(n)}, std::move(bias));
  report.lowered = "bias of " + l.name;
  Value out = v;
  // The layer now gives the output with the bias: its output without (and that output's
  // aliases) is gone.
  for (auto& [name, other] : values_)
    if (!other.constant && other.producer == linear) other.before_bias = true;
  define(node.output(0), std::move(out));
}

void Lowering::flatten(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"axis"});
  const auto x = activation(node, 0);
  int64_t axis = a.i("axis", 1);
  if (axis < -int64_t(x.size()) || axis > int64_t(x.size())) malformed("axis " + std::to_string(axis) + " is outside " + dims_str(x));
  if (axis < 0) axis += int64_t(x.size());
  if (axis != 1) refuse("axis " + std::to_string(axis) + " mixes the images of the batch (only axis 1 is supported)");
  require_outputs(node, 1);
  if (x.size() == 2) {
    alias(node, node.input(0));
    report.lowered = "identity";
    return;
  }
  to_features(node, x, report);
}

void Lowering::reshape(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"allowzero"});
  const auto x = activation(node, 0);
  const Constant& s = constant(node, 1, "shape");
  if (!s.is_int || s.dims.size() != 1) malformed("shape " + dims_str(s.dims) + " is not a 1-D INT64 tensor");
  const bool allowzero = a.i("allowzero", 0) != 0;
  // The batch stays in dimension 0: the target keeps it (0 copies it, -1 there takes what one
  // image's features leave, or the declared batch size) and holds the rest of each image.
  std::vector<int64_t> target = s.i;
  if (target.empty()) refuse("reshape of " + dims_str(x) + " to a scalar moves the batch dimension");
  int inferred = -1;
  bool batch_kept = false;
  int64_t known = 1;
  const int64_t total = features(x);
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == 0 && !allowzero) {
      if (i >= x.size()) malformed("shape " + dims_str(s.i) + " copies dimension " + std::to_string(i) + " of " + dims_str(x) + ", which it lacks");
      if (i == 0) {
        batch_kept = true;
        continue;
      }
      target[i] = x[i];
    }
    if (target[i] == -1) {
      if (inferred >= 0) malformed("shape " + dims_str(s.i) + " has two -1");
      inferred = int(i);
    } else if (target[i] < 0) {
      malformed("shape " + dims_str(s.i) + " has a negative dimension");
    } else if (i > 0) {
      known *= target[i];
    }
  }
  if (target[0] > 0 && target[0] == x[0]) batch_kept = true;
  if (inferred == 0 && known == total) batch_kept = true;
  if (inferred > 0) {
    if (known == 0 || total % known != 0) malformed("shape " + dims_str(s.i) + " does not fit " + dims_str(x));
    target[inferred] = total / known;
    known = total;
  }
  target[0] = x[0];
  if (!batch_kept || known != total) {
    refuse("reshape of " + dims_str(x) + " to " + dims_str(s.i) + " moves the batch dimension (only to [batch, features] is supported)");
  }
  require_outputs(node, 1);
  if (target == x) {
    alias(node, node.input(0));
    report.lowered = "identity";
  } else if (target.size() == 2) {
    to_features(node, x, report);
  } else {
    refuse("reshape of " + dims_str(x) + " to " + dims_str(target) + " (only to [batch, features] is supported)");
  }
}

void Lowering::dropout(const onnx::NodeProto& node, OnnxNode& report) {
  const int64_t opset = out_.opset;
  const Attributes a = opset < 7 ? Attributes(node, {"ratio", "is_test"})
                       : opset < 12 ? Attributes(node, {"ratio"}) : Attributes(node, {"seed"});
  const auto x = activation(node, 0);
  if (opset < 7 && a.i("is_test", 0) == 0) refuse("is_test 0: dropout in training mode (only inference is supported)");
  float ratio = opset < 12 ? a.f("ratio", 0.5f) : 0.5f;
  if (opset >= 12) {
    if (const Constant* r = optional_constant(node, 1, "ratio")) {
      if (r->is_int || r->f.size() != 1) malformed("ratio must be one FLOAT");
      ratio = r->f[0];
    }
    if (node.input_size() > 2 && !node.input(2).empty()) {
      const Value& v = value(node.input(2));
      if (!v.constant) refuse("training_mode is computed by the graph (only inference is supported)");
      // A BOOL constant arrives as an unsupported type and is refused there; the ONNX default
      // (absent) is inference.
    }
  }
  if (!(ratio >= 0 && ratio < 1)) malformed("ratio " + std::to_string(ratio) + " must be in [0, 1)");
  require_outputs(node, 1);
  LayerDesc l;
  l.type = LayerType::Dropout;
  l.dropout = ratio;
  add(node, l, x, report);
}

void Lowering::softmax(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"axis"});
  const auto x = activation(node, 0);
  const int64_t opset = out_.opset, rank = int64_t(x.size());
  int64_t axis = a.i("axis", opset < 13 ? 1 : -1);
  if (axis < -rank || axis >= rank) malformed("axis " + std::to_string(axis) + " is outside " + dims_str(x));
  if (axis < 0) axis += rank;
  // Opsets before 13 take the input as 2-D [product of dims before axis, product from axis]
  // and normalise its rows; 13 on normalise along the one axis, the dims after it apart.
  // Axis 0 would normalise across the images of the batch.
  if (axis == 0) refuse("axis 0 of " + dims_str(x) + " mixes the images of the batch");
  int64_t length = 1, inner = 1;
  for (int64_t i = axis; i < rank; ++i) (opset < 13 || i == axis ? length : inner) *= x[i];
  if (length > 0xffffffffll || inner > 0xffffffffll) refuse("softmax groups beyond 2^32 elements");
  require_outputs(node, 1);
  if (saw_softmax_) refuse("a second softmax (only one, at the end, is supported)");
  saw_softmax_ = true;
  const bool flatten = x.size() > 2;
  if (flatten) {
    LayerDesc f;
    f.type = LayerType::Flatten;
    f.inputs = reads(node.input(0));
    f.name = unique_layer_name(node, LayerType::Flatten);
    layers_.push_back(f);
  }
  LayerDesc l;
  l.type = LayerType::Softmax;
  if (length != features(x) || inner != 1) l.softmax_length = uint32_t(length), l.softmax_inner = uint32_t(inner);
  add(node, l, x, report, 0, flatten);
}

void Lowering::constant_node(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"value", "value_float", "value_floats", "value_int", "value_ints"});
  Constant c;
  if (node.attribute_size() != 1) malformed("a Constant needs exactly one value attribute");
  if (const auto* t = a.get("value", onnx::AttributeProto::TENSOR)) {
    c = read_tensor(t->t(), "value");
  } else if (const auto* f = a.get("value_float", onnx::AttributeProto::FLOAT)) {
    c.f = {f->f()};
  } else if (const auto* fs = a.get("value_floats", onnx::AttributeProto::FLOATS)) {
    c.f.assign(fs->floats().begin(), fs->floats().end());
    c.dims = {int64_t(c.f.size())};
  } else if (const auto* i = a.get("value_int", onnx::AttributeProto::INT)) {
    c.is_int = true, c.i = {i->i()};
  } else if (const auto* is = a.get("value_ints", onnx::AttributeProto::INTS)) {
    c.is_int = true;
    c.i.assign(is->ints().begin(), is->ints().end());
    c.dims = {int64_t(c.i.size())};
  }
  require_outputs(node, 1);
  Value v;
  v.constant = std::move(c);
  define(node.output(0), std::move(v));
  report.lowered = "constant";
}

// Transpose of a constant (an exporter's weight [in, out] turned [out, in]) folded into a new
// constant; of an activation it is refused.
void Lowering::transpose(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"perm"});
  if (node.input_size() != 1) malformed("Transpose needs one input");
  const Value& v = value(node.input(0));
  if (!v.constant) refuse("a Transpose of activations (only of a constant, which is folded) is not supported");
  const Constant& c = *v.constant;
  const size_t rank = c.dims.size();
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = int64_t(rank - 1 - i);  // default: reversed
  if (auto p = a.ints("perm")) perm = *p;
  std::vector<bool> seen(rank, false);
  if (perm.size() != rank) malformed("perm " + dims_str(perm) + " does not fit the input " + dims_str(c.dims));
  for (int64_t p : perm) {
    if (p < 0 || p >= int64_t(rank) || seen[size_t(p)]) malformed("perm " + dims_str(perm) + " is not a permutation");
    seen[size_t(p)] = true;
  }
  require_outputs(node, 1);
  Constant out;
  out.is_int = c.is_int;
  out.origin = c.origin;
  for (int64_t p : perm) out.dims.push_back(c.dims[size_t(p)]);
  const uint64_t n = c.numel();
  // Strides of the input, then each output element's source.
  std::vector<uint64_t> in_stride(rank, 1);
  for (size_t i = rank; i-- > 1;) in_stride[i - 1] = in_stride[i] * uint64_t(c.dims[i]);
  std::vector<uint64_t> idx(rank, 0);
  if (c.is_int) out.i.resize(n); else out.f.resize(n);
  for (uint64_t o = 0; o < n; ++o) {
    uint64_t src = 0;
    for (size_t k = 0; k < rank; ++k) src += idx[k] * in_stride[size_t(perm[k])];
    if (c.is_int) out.i[o] = c.i[src]; else out.f[o] = c.f[src];
    for (size_t k = rank; k-- > 0;) {  // next output index
      if (++idx[k] < uint64_t(out.dims[k])) break;
      idx[k] = 0;
    }
  }
  Value r;
  r.constant = std::move(out);
  define(node.output(0), std::move(r));
  report.lowered = "constant (transposed)";
}

// Concat's and Split's axis, which must be the channels (features): 1, or 1 - rank.
void require_channel_axis(int64_t axis, const std::vector<int64_t>& x) {
  const int64_t rank = int64_t(x.size());
  if (axis < -rank || axis >= rank) malformed("axis " + std::to_string(axis) + " is outside " + dims_str(x));
  if (axis < 0) axis += rank;
  if (axis != 1) refuse("axis " + std::to_string(axis) + " of " + dims_str(x) + " (only the channels, axis 1, are supported)");
}

// Concat along the channels (features): a concat layer of the inputs in order.
void Lowering::concat(const onnx::NodeProto& node, OnnxNode& report) {
  const Attributes a(node, {"axis"});
  if (!a.has("axis")) malformed("has no axis (required)");
  const auto x = activation(node, 0);
  require_channel_axis(a.i("axis", 1), x);
  std::vector<int64_t> out = x;
  out[1] = 0;
  LayerDesc l;
  l.type = LayerType::Concat;
  for (int k = 0; k < node.input_size(); ++k) {
    const auto d = activation(node, k);
    bool same = d.size() == x.size();
    for (size_t i = 2; same && i < d.size(); ++i) same = d[i] == x[i];
    if (!same) malformed("inputs " + dims_str(x) + " and " + dims_str(d) + " differ in more than their channels (axis 1)");
    out[1] += d[1];
    l.inputs.push_back(source(node.input(k)));
  }
  require_outputs(node, 1);
  if (node.input_size() == 1) {
    alias(node, node.input(0));
    report.lowered = "identity";
    return;
  }
  add(node, l, out, report);
}

// Split along the channels (features): a slice layer for each output some node reads.
void Lowering::split(const onnx::NodeProto& node, OnnxNode& report) {
  const int64_t opset = out_.opset;
  const Attributes a = opset < 13 ? Attributes(node, {"axis", "split"}) : Attributes(node, {"axis"});
  const auto x = activation(node, 0);
  require_channel_axis(a.i("axis", 0), x);
  const int outputs = node.output_size();
  if (outputs < 1) malformed("has no output");
  std::vector<int64_t> sizes;
  if (opset < 13) {
    if (auto v = a.ints("split")) sizes = *v;
  } else if (const Constant* c = optional_constant(node, 1, "split")) {
    if (!c->is_int || c->dims.size() != 1) malformed("split " + dims_str(c->dims) + " is not a 1-D INT64 tensor");
    sizes = c->i;
  }
  if (sizes.empty()) {
    if (x[1] % outputs) malformed(dims_str(x) + " has " + std::to_string(x[1]) + " channels, which do not split into " + std::to_string(outputs) + " equal parts");
    sizes.assign(size_t(outputs), x[1] / outputs);
  }
  if (int64_t(sizes.size()) != outputs) {
    malformed("split gives " + std::to_string(sizes.size()) + " sizes for " + std::to_string(outputs) + " outputs");
  }
  int64_t total = 0;
  for (int64_t v : sizes) {
    if (v < 0 || v > x[1]) malformed("split size " + std::to_string(v) + " is not a part of " + std::to_string(x[1]) + " channels");
    total += v;
  }
  if (total != x[1]) malformed("split sizes add up to " + std::to_string(total) + ", the input " + dims_str(x) + " has " + std::to_string(x[1]) + " channels");
  const std::string from = source(node.input(0));
  int64_t begin = 0;
  for (int k = 0; k < outputs; ++k) {
    const int64_t end = begin + sizes[size_t(k)];
    if (!node.output(k).empty() && consumed_.count(node.output(k))) {
      if (end == begin) refuse("output " + std::to_string(k) + " (\"" + node.output(k) + "\") is empty, and read");
      LayerDesc l;
      l.type = LayerType::Slice;
      l.inputs = {from};
      l.slice_begin = uint32_t(begin), l.slice_end = uint32_t(end);
      std::vector<int64_t> d = x;
      d[1] = end - begin;
      add(node, l, d, report, k);
    }
    begin = end;
  }
}

void Lowering::lower(const onnx::NodeProto& node, OnnxNode& report) {
  const std::string& op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx") refuse("domain \"" + node.domain() + "\" is not supported");
  if (op == "Conv") return conv(node, report);
  if (op == "MaxPool") return pool(node, report, false);
  if (op == "AveragePool") return pool(node, report, true);
  if (op == "GlobalAveragePool") {
    const Attributes a(node, {});
    const auto x = activation(node, 0);
    if (x.size() != 4) refuse("input " + dims_str(x) + ": only 2-D pooling ([batch, channels, height, width]) is supported");
    require_outputs(node, 1);
    LayerDesc l;
    l.type = LayerType::AdaptiveAvgPool;
    l.out_h = l.out_w = 1;
    return add(node, l, {x[0], x[1], 1, 1}, report);
  }
  if (op == "LRN") return lrn(node, report);
  if (op == "Gemm") return gemm(node, report);
  if (op == "MatMul") return matmul(node, report);
  if (op == "Add") return add_bias(node, report);
  if (op == "Flatten") return flatten(node, report);
  if (op == "Reshape") return reshape(node, report);
  if (op == "Dropout") return dropout(node, report);
  if (op == "Softmax") return softmax(node, report);
  if (op == "Constant") return constant_node(node, report);
  if (op == "Transpose") return transpose(node, report);
  if (op == "Concat") return concat(node, report);
  if (op == "Split") return split(node, report);
  if (op == "Relu") {
    const Attributes a(node, {});
    const auto x = activation(node, 0);
    require_outputs(node, 1);
    LayerDesc l;
    l.type = LayerType::Relu;
    return add(node, l, x, report);
  }
  if (op == "Identity") {
    const Attributes a(node, {});
    if (node.input_size() != 1 || node.output_size() != 1) malformed("Identity needs one input and one output");
    value(node.input(0));
    alias(node, node.input(0));
    report.lowered = "identity";
    return;
  }
  refuse("the op " + op + " is not supported");
}

void Lowering::run(bool throw_refusals) {
  const auto& g = proto_.graph();
  bool refused = false;
  try {
    read_inputs();
  } catch (const Error& e) {
    throw Malformed{e.what()};
  } catch (const Refusal& r) {
    if (throw_refusals) throw;
    out_.graph_refused = r.why;
    refused = true;
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    OnnxNode report;
    report.name = node.name().empty() ? "#" + std::to_string(i) : node.name();
    report.op_type = node.op_type();
    report.inputs.assign(node.input().begin(), node.input().end());
    report.outputs.assign(node.output().begin(), node.output().end());
    bool read = false;
    for (const auto& o : node.output()) read = read || (!o.empty() && consumed_.count(o));
    if (!refused && !read) {  // dead code: nothing needs it, so nothing runs it
      report.lowered = "nothing (no node reads its outputs, nor is one the graph's output)";
      out_.nodes.push_back(report);
      continue;
    }
    if (refused) {
      // After a refusal the layers are unknown: say what each later node is, and whether its op
      // is one the importer knows.
      for (const auto& out : node.output()) values_.emplace(out, Value{});
      out_.nodes.push_back(report);
      continue;
    }
    try {
      lower(node, report);
    } catch (const Refusal& r) {
      if (throw_refusals) throw Malformed{"node " + report.name + " (" + report.op_type + "): " + r.why};
      report.refused = r.why;
      refused = true;
    } catch (const Malformed& m) {
      throw Malformed{"node " + report.name + " (" + report.op_type + "): " + m.why};
    } catch (const Error& e) {  // the engine's own shape rules (a window that does not fit)
      throw Malformed{"node " + report.name + " (" + report.op_type + "): " + e.what()};
    }
    out_.nodes.push_back(report);
  }
  if (refused) return;
  if (g.output_size() != 1) {
    Refusal r{"the graph has " + std::to_string(g.output_size()) + " outputs (only one is supported)"};
    if (throw_refusals) throw r;
    out_.graph_refused = r.why;
    return;
  }
  out_.output = g.output(0).name();
  if (g.output(0).type().has_tensor_type() && g.output(0).type().tensor_type().has_shape()) {
    for (const auto& d : g.output(0).type().tensor_type().shape().dim()) out_.output_dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  auto it = values_.find(out_.output);
  if (it == values_.end()) malformed("the graph's output \"" + out_.output + "\" is given by no node");
  std::string why;
  if (it->second.constant || it->second.producer != (layers_.empty() ? SIZE_MAX : layers_.size() - 1)) {
    why = "the graph's output \"" + out_.output + "\" is not the output of its last layer" +
          (layers_.empty() ? std::string() : " (" + layers_.back().name + ")");
  } else if (it->second.before_bias) {
    why = "the graph's output " + before_bias(out_.output);
  }
  for (size_t i = 0; why.empty() && i + 1 < layers_.size(); ++i) {
    if (layers_[i].type == LayerType::Softmax) {
      why = "the softmax " + layers_[i].name + " is read by other layers (only a softmax that gives the graph's output is supported)";
    }
  }
  if (!why.empty()) {
    Refusal r{why};
    if (throw_refusals) throw r;
    out_.graph_refused = r.why;
    return;
  }
  // Declared output dims, where given, must be what the layers give.
  const auto& got = it->second.dims;
  if (!out_.output_dims.empty()) {
    bool same = out_.output_dims.size() == got.size();
    for (size_t i = 1; same && i < got.size(); ++i) same = out_.output_dims[i] < 0 || out_.output_dims[i] == got[i];
    if (!same) malformed("the graph declares its output " + dims_str(out_.output_dims) + ", its layers give " + dims_str(got));
  }
  ModelDesc& m = out_.model;
  out_.output_is_softmax = !layers_.empty() && layers_.back().type == LayerType::Softmax;
  if (!out_.output_is_softmax) {
    if (got.size() > 2) {
      LayerDesc f;
      f.type = LayerType::Flatten;
      f.name = "output_flatten";
      for (int k = 2; !layer_names_.insert(f.name).second; ++k) f.name = "output_flatten_" + std::to_string(k);
      layers_.push_back(f);
    }
    LayerDesc s;
    s.type = LayerType::Softmax;
    s.name = "output_softmax";
    for (int k = 2; !layer_names_.insert(s.name).second; ++k) s.name = "output_softmax_" + std::to_string(k);
    layers_.push_back(s);
  }
  m.classes = uint32_t(features(got));
  m.layers = std::move(layers_);
}

// Runs the lowering; `throw_refusals`: load_onnx (throw) or inspect_onnx (record).
OnnxModel import(const std::string& path, const OnnxOptions& options, bool throw_refusals) {
  const std::string bytes = detail::read_input_file(path, "ONNX model", kMaxOnnxFileBytes);
  onnx::ModelProto proto;
  if (!proto.ParseFromString(bytes)) throw Error(path + ": not an ONNX model (the protobuf message does not parse: truncated or another format)");
  OnnxModel out;
  out.ir_version = proto.ir_version();
  out.producer = proto.producer_name() + (proto.producer_version().empty() ? "" : " " + proto.producer_version());
  if (!proto.has_graph()) throw Error(path + ": not an ONNX model (no graph)");
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    std::string why = e.what();
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Error(path + ": not a valid ONNX model: " + why);
  }
  bool have_opset = false;
  for (const auto& o : proto.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") out.opset = o.version(), have_opset = true;
  }
  if (!have_opset) throw Error(path + ": imports no opset of the default ONNX domain");
  if (out.opset < kMinOnnxOpset || out.opset > kMaxOnnxOpset) {
    throw Error(path + ": opset " + std::to_string(out.opset) + " is not supported (opsets " + std::to_string(kMinOnnxOpset) +
                " to " + std::to_string(kMaxOnnxOpset) + ")");
  }
  ModelDesc& m = out.model;
  m.name = options.name.empty() ? std::filesystem::path(path).stem().string() : options.name;
  m.source = path;
  m.description = "ONNX model" + (out.producer.empty() ? std::string() : " from " + out.producer);
  Lowering lowering(proto, options, out);
  try {
    lowering.run(throw_refusals);
  } catch (const Refusal& r) {
    throw Error(path + ": " + r.why);
  } catch (const Malformed& e) {
    throw Error(path + ": " + e.why);
  }
  if (!out.refusal().empty()) {
    out.model.layers.clear();
    out.parameters.clear();
    return out;
  }
  // The preprocessing: as given, else [0, 1] at the input's size.
  if (options.has_preprocess) {
    m.preprocess = options.preprocess;
  } else {
    m.preprocess.resize = std::min(m.height, m.width);
    m.preprocess.crop = m.preprocess.resize;
    m.preprocess.mean.assign(m.channels == 3 ? 3 : 1, 0.0f);
    m.preprocess.std.assign(m.channels == 3 ? 3 : 1, 1.0f);
  }
  // The engine's own shape rules must agree with the walk's: the layers chain and give the
  // graph's output size.
  std::vector<Shape> shapes;
  try {
    shapes = layer_shapes(m, 1);
  } catch (const Error& e) {
    throw Error(path + ": the lowered layers do not fit together: " + e.what());
  }
  if (shapes.back().numel() != m.classes) {
    throw Error(path + ": the lowered layers give " + shapes.back().str() + ", the graph's output has " +
                std::to_string(m.classes) + " values per image (an importer error)");
  }
  return out;
}

}  // namespace

OnnxModel load_onnx(const std::string& path, const OnnxOptions& options) { return import(path, options, true); }
OnnxModel inspect_onnx(const std::string& path, const OnnxOptions& options) { return import(path, options, false); }

#endif

}  // namespace vkalex
