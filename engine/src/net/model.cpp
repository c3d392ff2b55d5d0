// Model descriptions from JSON, checked field by field and shape by shape.
#include "vkalex/model.hpp"

#include <cmath>
#include <filesystem>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/input_file.hpp"
#include "base/json_strict.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

using nlohmann::json;

const char* layer_type_name(LayerType type) {
  switch (type) {
    case LayerType::Conv2d: return "conv2d";
    case LayerType::Relu: return "relu";
    case LayerType::Lrn: return "lrn";
    case LayerType::MaxPool: return "max_pool";
    case LayerType::AvgPool: return "avg_pool";
    case LayerType::AdaptiveAvgPool: return "adaptive_avg_pool";
    case LayerType::Flatten: return "flatten";
    case LayerType::Dropout: return "dropout";
    case LayerType::Linear: return "linear";
    case LayerType::Softmax: return "softmax";
    case LayerType::Concat: return "concat";
    case LayerType::Slice: return "slice";
  }
  return "?";
}

namespace {

// Reads fields of one JSON object, remembering which were used so that unknown (misspelt)
// fields are reported rather than silently ignored.
class Fields {
 public:
  Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j.is_object()) fail("must be a JSON object");
  }
  [[noreturn]] void fail(const std::string& why) const { throw Error(where_ + ": " + why); }
  bool has(const char* key) const { return j_.contains(key); }

  uint32_t uint(const char* key, std::optional<uint32_t> fallback = std::nullopt) {
    used_.insert(key);
    if (!j_.contains(key)) {
      if (fallback) return *fallback;
      fail(std::string("missing field \"") + key + "\"");
    }
    const json& v = j_[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 1'000'000) {
      fail(std::string("\"") + key + "\" must be a whole number from 0 to 1000000");
    }
    return v.get<uint32_t>();
  }
  // A number or a pair [h, w].
  std::pair<uint32_t, uint32_t> pair(const char* key, std::optional<uint32_t> fallback = std::nullopt) {
    used_.insert(key);
    if (j_.contains(key) && j_[key].is_array()) {
      const json& v = j_[key];
      if (v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned() ||
          v[0].get<uint64_t>() > 1'000'000 || v[1].get<uint64_t>() > 1'000'000) {
        fail(std::string("\"") + key + "\" must be a whole number or a pair [h, w]");
      }
      return {v[0].get<uint32_t>(), v[1].get<uint32_t>()};
    }
    const uint32_t v = uint(key, fallback);
    return {v, v};
  }
  float number(const char* key, std::optional<float> fallback = std::nullopt) {
    used_.insert(key);
    if (!j_.contains(key)) {
      if (fallback) return *fallback;
      fail(std::string("missing field \"") + key + "\"");
    }
    return checked_number(j_[key], key);
  }
  std::string text(const char* key, std::optional<std::string> fallback = std::nullopt) {
    used_.insert(key);
    if (!j_.contains(key)) {
      if (fallback) return *fallback;
      fail(std::string("missing field \"") + key + "\"");
    }
    if (!j_[key].is_string()) fail(std::string("\"") + key + "\" must be a string");
    return j_[key].get<std::string>();
  }
  bool flag(const char* key, bool fallback) {
    used_.insert(key);
    if (!j_.contains(key)) return fallback;
    if (!j_[key].is_boolean()) fail(std::string("\"") + key + "\" must be true or false");
    return j_[key].get<bool>();
  }
  std::vector<float> numbers(const char* key, size_t count) {
    used_.insert(key);
    if (!j_.contains(key) || !j_[key].is_array() || j_[key].size() != count) {
      fail(std::string("\"") + key + "\" must be a list of " + std::to_string(count) + " numbers");
    }
    std::vector<float> out;
    for (const auto& v : j_[key]) out.push_back(checked_number(v, key));
    return out;
  }
  // The largest magnitude a number of a description may have: far beyond any sensible value,
  // and far inside float's range, so that no later arithmetic on it overflows.
  static constexpr double kMaxMagnitude = 1e6;
  float checked_number(const json& v, const char* key) const {
    if (!v.is_number()) fail(std::string("\"") + key + "\" must be a number (or a list of them)");
    const double d = v.get<double>();
    if (!(std::abs(d) <= kMaxMagnitude)) {
      fail(std::string("\"") + key + "\" holds " + v.dump() + ", beyond the +-1e6 a description's numbers may have");
    }
    return static_cast<float>(d);
  }
  // A list of at least one string; empty when absent.
  std::vector<std::string> names(const char* key) {
    used_.insert(key);
    std::vector<std::string> out;
    if (!j_.contains(key)) return out;
    const json& v = j_[key];
    if (!v.is_array() || v.empty()) fail(std::string("\"") + key + "\" must be a non-empty list of layer names");
    for (const auto& e : v) {
      if (!e.is_string()) fail(std::string("\"") + key + "\" must be a non-empty list of layer names");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  const json& object(const char* key) {
    used_.insert(key);
    if (!j_.contains(key)) fail(std::string("missing field \"") + key + "\"");
    return j_[key];
  }
  void finish() const {
    for (const auto& [k, v] : j_.items()) {
      if (!used_.count(k)) fail("unknown field \"" + k + "\"");
    }
  }

 private:
  const json& j_;
  std::string where_;
  std::set<std::string> used_;
};

LayerType parse_type(Fields& f, const std::string& type) {
  static const std::map<std::string, LayerType> types{
      {"conv2d", LayerType::Conv2d},   {"relu", LayerType::Relu},
      {"lrn", LayerType::Lrn},         {"max_pool", LayerType::MaxPool},
      {"avg_pool", LayerType::AvgPool},
      {"adaptive_avg_pool", LayerType::AdaptiveAvgPool},
      {"flatten", LayerType::Flatten}, {"dropout", LayerType::Dropout},
      {"linear", LayerType::Linear},   {"softmax", LayerType::Softmax},
      {"concat", LayerType::Concat},   {"slice", LayerType::Slice}};
  auto it = types.find(type);
  if (it == types.end()) {
    f.fail("unknown layer type \"" + type +
           "\" (known: conv2d, relu, lrn, max_pool, avg_pool, adaptive_avg_pool, flatten, dropout, linear, softmax, concat, slice)");
  }
  return it->second;
}

std::string where(const ModelDesc& m, size_t i) {
  return m.source + ": layer " + std::to_string(i) + " (" + m.layers[i].name + ")";
}

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

}  // namespace

MaxPoolParams adaptive_pool_window(const Shape& x, uint32_t out_h, uint32_t out_w) {
  if (x.rank() != 4 || out_h == 0 || out_w == 0 || x[2] % out_h != 0 || x[3] % out_w != 0) {
    throw Error("gets " + x.str() + "; only outputs " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                " that divide the input's height and width (equal windows) are supported");
  }
  MaxPoolParams p;
  p.kernel_h = p.stride_h = x[2] / out_h;
  p.kernel_w = p.stride_w = x[3] / out_w;
  p.pad_h = p.pad_w = 0;
  return p;
}

Shape adaptive_pool_output_shape(const Shape& x, uint32_t out_h, uint32_t out_w) {
  adaptive_pool_window(x, out_h, out_w);
  return Shape{x[0], x[1], out_h, out_w};
}

std::vector<std::vector<size_t>> layer_inputs(const ModelDesc& m) {
  std::map<std::string, size_t> position;
  std::vector<std::vector<size_t>> inputs(m.layers.size());
  std::vector<bool> read(m.layers.size(), false);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    if (l.name == "input") throw Error(where(m, i) + ": a layer may not be named \"input\" (the name of the model's input)");
    if (l.inputs.empty()) {
      inputs[i].push_back(i == 0 ? kModelInput : i - 1);
    } else {
      for (const std::string& name : l.inputs) {
        if (name == "input") {
          inputs[i].push_back(kModelInput);
          continue;
        }
        auto it = position.find(name);
        if (it == position.end()) {
          throw Error(where(m, i) + ": reads \"" + name + "\", which is not an earlier layer (nor \"input\")");
        }
        inputs[i].push_back(it->second);
      }
    }
    if (inputs[i].size() > 1 && l.type != LayerType::Concat) {
      throw Error(where(m, i) + ": reads " + std::to_string(inputs[i].size()) + " layers; only a concat reads more than one");
    }
    for (size_t k : inputs[i])
      if (k != kModelInput) read[k] = true;
    position.emplace(l.name, i);
  }
  for (size_t i = 0; i + 1 < m.layers.size(); ++i) {
    if (!read[i]) throw Error(where(m, i) + ": no layer reads its output (the model's output is the last layer's)");
  }
  return inputs;
}

std::vector<Shape> layer_shapes(const ModelDesc& m, uint32_t batch) {
  std::vector<Shape> shapes;
  const auto inputs = layer_inputs(m);
  const Shape input = m.input_shape(batch);
  auto shape_of = [&](size_t k) { return k == kModelInput ? input : shapes[k]; };
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    Shape s = shape_of(inputs[i][0]);
    try {
      switch (l.type) {
        case LayerType::Conv2d: {
          if (s.rank() != 4) throw Error("needs a 4-D input, gets " + s.str());
          const Shape w{l.out_channels, s[1] / std::max(1u, l.conv.groups), l.kernel_h, l.kernel_w};
          if (l.conv.groups && s[1] % l.conv.groups) {
            throw Error("groups " + std::to_string(l.conv.groups) + " do not divide its " +
                        std::to_string(s[1]) + " input channels");
          }
          const Shape b{l.out_channels};
          s = conv2d_output_shape(s, w, l.bias.empty() ? nullptr : &b, l.conv);
          break;
        }
        case LayerType::Lrn:
          s = lrn_output_shape(s, l.lrn);
          break;
        case LayerType::MaxPool:
        case LayerType::AvgPool:
          s = max_pool_output_shape(s, l.pool);
          break;
        case LayerType::AdaptiveAvgPool:
          s = adaptive_pool_output_shape(s, l.out_h, l.out_w);
          break;
        case LayerType::Flatten:
          if (s.rank() < 2) throw Error("needs a batch dimension, gets " + s.str());
          s = Shape{s[0], static_cast<uint32_t>(s.numel() / s[0])};
          break;
        case LayerType::Linear: {
          if (s.rank() != 2) throw Error("needs a [batch, features] input, gets " + s.str() + " (add a flatten layer)");
          const Shape w{l.out_features, s[1]}, b{l.out_features};
          s = linear_output_shape(s, w, l.bias.empty() ? nullptr : &b);
          break;
        }
        case LayerType::Softmax:
          s = softmax_output_shape(s);
          break;
        case LayerType::Concat: {
          // Every input as the first but for its channels (features), which add up.
          uint64_t channels = 0;
          for (size_t k : inputs[i]) {
            const Shape x = shape_of(k);
            bool same = x.rank() == s.rank() && x.rank() >= 2;
            for (size_t d = 0; same && d < x.rank(); ++d) same = d == 1 || x[d] == s[d];
            if (!same) {
              throw Error("its inputs " + s.str() + " and " + x.str() + " differ in more than their channels (dimension 1)");
            }
            channels += x[1];
          }
          if (channels > 1'000'000) throw Error("joins " + std::to_string(channels) + " channels, more than 1000000");
          std::vector<uint32_t> d = s.dims();
          d[1] = static_cast<uint32_t>(channels);
          s = Shape(std::move(d));
          break;
        }
        case LayerType::Slice:
          if (s.rank() < 2) throw Error("needs a batch dimension, gets " + s.str());
          if (l.slice_begin >= l.slice_end || l.slice_end > s[1]) {
            throw Error("channels " + std::to_string(l.slice_begin) + " to " + std::to_string(l.slice_end) + " (end excluded) are not a range of its input " +
                        s.str() + "'s " + std::to_string(s[1]));
          }
          {
            std::vector<uint32_t> d = s.dims();
            d[1] = l.slice_end - l.slice_begin;
            s = Shape(std::move(d));
          }
          break;
        case LayerType::Relu:
        case LayerType::Dropout:
          break;
      }
    } catch (const Error& e) {
      throw Error(where(m, i) + ": " + e.what());
    }
    shapes.push_back(s);
  }
  return shapes;
}

std::vector<std::pair<std::string, Shape>> parameter_shapes(const ModelDesc& m) {
  std::vector<std::pair<std::string, Shape>> out;
  const auto shapes = layer_shapes(m, 1);
  const auto inputs = layer_inputs(m);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    const Shape in = inputs[i][0] == kModelInput ? m.input_shape(1) : shapes[inputs[i][0]];
    if (l.type == LayerType::Conv2d) {
      out.emplace_back(l.weight, Shape{l.out_channels, in[1] / l.conv.groups, l.kernel_h, l.kernel_w});
      if (!l.bias.empty()) out.emplace_back(l.bias, Shape{l.out_channels});
    } else if (l.type == LayerType::Linear) {
      out.emplace_back(l.weight, Shape{l.out_features, in[1]});
      if (!l.bias.empty()) out.emplace_back(l.bias, Shape{l.out_features});
    }
  }
  return out;
}

namespace {

// The "preprocess" object of a description (or of an ONNX model's sidecar) for an input of
// `channels` x `height` x `width`.
Preprocess read_preprocess(const json& j, const std::string& where, uint32_t channels, uint32_t height, uint32_t width) {
  Fields p(j, where);
  Preprocess out;
  out.resize = p.uint("resize");
  out.crop = p.uint("crop", std::max(height, width));
  out.mean = p.numbers("mean", channels);
  out.std = p.numbers("std", channels);
  const std::string order = p.text("channel_order", channels == 3 ? "RGB" : "gray");
  if (channels == 3 && order != "RGB" && order != "BGR") p.fail("channel_order must be \"RGB\" or \"BGR\"");
  if (channels == 1 && order != "gray") p.fail("channel_order of a 1-channel input must be \"gray\"");
  out.bgr = order == "BGR";
  for (float s : out.std)
    if (!(s >= 1e-6f)) p.fail("std values must be at least 1e-6");
  if (out.crop != height || height != width) {
    p.fail("crop must equal the input's height and width (square inputs only)");
  }
  if (out.resize < out.crop) p.fail("resize must be at least crop");
  p.finish();
  return out;
}

json parse_json_text(const std::string& text, const std::string& source) {
  json j;
  std::string duplicate;
  try {
    j = detail::parse_json_unique_keys(text.data(), text.data() + text.size(), duplicate);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) {
    throw Error(source + ": the key \"" + duplicate + "\" is given twice in one object (which one was meant?)");
  }
  return j;
}

}  // namespace

void load_preprocess_sidecar(const std::string& path, ModelDesc& model) {
  const std::string text = detail::read_input_file(path, "preprocessing file", kMaxModelFileBytes);
  const json j = parse_json_text(text, path);
  Fields top(j, path);
  if (model.channels != 1 && model.channels != 3) {
    top.fail("the model's input has " + std::to_string(model.channels) + " channels; images give 1 (gray) or 3 (RGB)");
  }
  const Preprocess p = read_preprocess(top.object("preprocess"), path + ": preprocess", model.channels, model.height, model.width);
  const std::string labels = top.text("labels", "");
  top.finish();
  model.preprocess = p;
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (!labels.empty()) model.labels_path = resolve(dir, labels);
}

ModelDesc parse_model(const std::string& text, const std::string& source, const std::string& base_dir) {
  const json j = parse_json_text(text, source);
  ModelDesc m;
  m.source = source;
  Fields top(j, source);
  m.name = top.text("name");
  m.description = top.text("description", "");
  {
    Fields in(top.object("input"), source + ": input");
    m.channels = in.uint("channels");
    m.height = in.uint("height");
    m.width = in.uint("width");
    in.finish();
    if (m.channels != 1 && m.channels != 3) in.fail("channels must be 1 (gray) or 3 (RGB)");
    if (m.height == 0 || m.width == 0) in.fail("height and width must be at least 1");
  }
  m.preprocess = read_preprocess(top.object("preprocess"), source + ": preprocess", m.channels, m.height, m.width);
  m.classes = top.uint("classes");
  m.labels_path = resolve(base_dir, top.text("labels", ""));
  m.weights_path = resolve(base_dir, top.text("weights", ""));

  const json& layers = top.object("layers");
  if (!layers.is_array() || layers.empty()) top.fail("\"layers\" must be a non-empty list");
  std::set<std::string> names, tensors;
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& lj = layers[i];
    LayerDesc l;
    std::string label = source + ": layer " + std::to_string(i);
    if (lj.is_object() && lj.contains("name") && lj["name"].is_string()) {
      label += " (" + lj["name"].get<std::string>() + ")";
    }
    Fields f(lj, label);
    l.type = parse_type(f, f.text("type"));
    l.name = f.text("name", std::string(layer_type_name(l.type)) + std::to_string(i));
    if (!names.insert(l.name).second) f.fail("layer name \"" + l.name + "\" is used twice");
    l.inputs = f.names("inputs");
    switch (l.type) {
      case LayerType::Conv2d: {
        l.out_channels = f.uint("out_channels");
        std::tie(l.kernel_h, l.kernel_w) = f.pair("kernel");
        std::tie(l.conv.stride_h, l.conv.stride_w) = f.pair("stride", 1);
        std::tie(l.conv.pad_h, l.conv.pad_w) = f.pair("padding", 0);
        l.conv.groups = f.uint("groups", 1);
        if (l.out_channels == 0 || l.kernel_h == 0 || l.kernel_w == 0) f.fail("out_channels and kernel must be at least 1");
        l.weight = f.text("weight");
        l.bias = f.text("bias", "");
        l.init_bias = f.number("init_bias", 0.0f);
        break;
      }
      case LayerType::Lrn:
        l.lrn.size = f.uint("size");
        l.lrn.alpha = f.number("alpha");
        l.lrn.beta = f.number("beta");
        l.lrn.k = f.number("k");
        break;
      case LayerType::MaxPool:
      case LayerType::AvgPool:
        std::tie(l.pool.kernel_h, l.pool.kernel_w) = f.pair("kernel");
        std::tie(l.pool.stride_h, l.pool.stride_w) = f.pair("stride");
        std::tie(l.pool.pad_h, l.pool.pad_w) = f.pair("padding", 0);
        l.pool.ceil_mode = f.flag("ceil_mode", false);
        if (l.type == LayerType::AvgPool) l.count_include_pad = f.flag("count_include_pad", false);
        break;
      case LayerType::AdaptiveAvgPool:
        std::tie(l.out_h, l.out_w) = f.pair("output");
        break;
      case LayerType::Dropout:
        l.dropout = f.number("p", 0.5f);
        if (!(l.dropout >= 0 && l.dropout < 1)) f.fail("dropout p must be in [0, 1)");
        break;
      case LayerType::Linear:
        l.out_features = f.uint("out_features");
        if (l.out_features == 0) f.fail("out_features must be at least 1");
        l.weight = f.text("weight");
        l.bias = f.text("bias", "");
        l.init_bias = f.number("init_bias", 0.0f);
        break;
      case LayerType::Slice:
        l.slice_begin = f.uint("begin");
        l.slice_end = f.uint("end");
        break;
      case LayerType::Concat:
        if (l.inputs.size() < 2) f.fail("a concat needs \"inputs\": the names of at least two layers");
        break;
      case LayerType::Relu:
      case LayerType::Flatten:
      case LayerType::Softmax:
        break;
    }
    f.finish();
    for (const std::string* t : {&l.weight, &l.bias}) {
      if (!t->empty() && !tensors.insert(*t).second) f.fail("tensor name \"" + *t + "\" is used twice");
    }
    m.layers.push_back(std::move(l));
  }
  top.finish();

  const auto shapes = layer_shapes(m, 1);
  const Shape& out = shapes.back();
  if (out.rank() != 2 || out[1] != m.classes) {
    top.fail("the last layer gives " + out.str() + ", but \"classes\" is " + std::to_string(m.classes));
  }
  if (m.layers.back().type != LayerType::Softmax) top.fail("the last layer must be softmax");
  for (size_t i = 0; i + 1 < m.layers.size(); ++i) {
    if (m.layers[i].type == LayerType::Softmax) throw Error(where(m, i) + ": softmax may only be the last layer");
  }
  return m;
}

ModelDesc load_model(const std::string& path) {
  const std::string text = detail::read_input_file(path, "model description", kMaxModelFileBytes);
  return parse_model(text, path, std::filesystem::path(path).parent_path().string());
}

std::vector<std::string> load_labels(const std::string& path, uint32_t classes) {
  std::istringstream in(detail::read_input_file(path, "class names", kMaxLabelsFileBytes));
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) throw Error(path + ": line " + std::to_string(labels.size() + 1) + " is empty");
    labels.push_back(line);
    if (labels.size() > classes) break;
  }
  if (labels.size() > classes) {
    throw Error(path + ": holds more than " + std::to_string(classes) + " class names, the model has " +
                std::to_string(classes));
  }
  if (labels.size() < classes) {
    throw Error(path + ": holds " + std::to_string(labels.size()) + " class names, the model has " +
                std::to_string(classes));
  }
  return labels;
}

}  // namespace vkalex
