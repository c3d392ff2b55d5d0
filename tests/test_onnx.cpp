// ONNX import against ONNX's own backend node tests (Debian's libonnx-testdata): every test of
// the ops the importer knows runs through load_onnx and a Net, each of its data sets, within
// ONNX's tolerances; the tests it refuses are listed below with the reason.
#include <algorithm>
#include <numeric>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <functional>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>
#include <sstream>
#include <tuple>

#include "common.hpp"
#include "vkalex/onnx.hpp"
#include "vkalex/vkalex.h"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

const fs::path kNodeTests = "/usr/share/libonnx-testdata/data/node";
const fs::path kPytorchTests = "/usr/share/libonnx-testdata/data/pytorch-converted";

std::string file_bytes(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

onnx::TensorProto read_tensor_file(const fs::path& path) {
  onnx::TensorProto t;
  REQUIRE(t.ParseFromString(file_bytes(path)));
  return t;
}

// A FLOAT TensorProto as a host tensor (the test data stores raw little-endian data).
HostTensor to_host(const onnx::TensorProto& t) {
  std::vector<uint32_t> dims(t.dims().begin(), t.dims().end());
  HostTensor h{Shape(dims)};
  REQUIRE(t.data_type() == onnx::TensorProto::FLOAT);
  if (t.has_raw_data()) {
    REQUIRE(t.raw_data().size() == h.data.size() * 4);
    std::memcpy(h.data.data(), t.raw_data().data(), t.raw_data().size());
  } else {
    REQUIRE(size_t(t.float_data_size()) == h.data.size());
    std::copy(t.float_data().begin(), t.float_data().end(), h.data.begin());
  }
  return h;
}

struct NodeTestResult {
  std::string name, op;
  size_t data_sets = 0, passed = 0;
  std::string refused;  // the importer's message, where it refused
  std::string failure;  // where a data set disagreed
};

// The op a node test is about: its graph's first node that is not a Constant.
std::string op_of(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Constant") return n.op_type();
  }
  return m.graph().node_size() ? "Constant" : "?";
}

// For a test whose inputs are activations of the same images ([N, C_k, ...], differing in C_k
// only): rewrites the graph to take them as one input [N, sum C_k, ...], which a Split node
// (axis 1) cuts into the original inputs, and returns that input's data (the inputs' channels
// one after another, per image). None where the inputs do not join so.
std::optional<onnx::TensorProto> join_inputs(onnx::ModelProto& model, const std::vector<std::string>& names,
                                             const std::vector<onnx::TensorProto>& given) {
  std::vector<HostTensor> xs;
  for (const auto& t : given) {
    if (t.data_type() != onnx::TensorProto::FLOAT) return std::nullopt;
    xs.push_back(to_host(t));
  }
  const Shape& first = xs[0].shape;
  std::vector<int64_t> sizes;
  int64_t channels = 0;
  for (const HostTensor& x : xs) {
    if (x.shape.rank() != first.rank() || x.shape.rank() < 2) return std::nullopt;
    for (size_t d = 0; d < first.rank(); ++d)
      if (d != 1 && x.shape[d] != first[d]) return std::nullopt;
    sizes.push_back(x.shape[1]);
    channels += x.shape[1];
  }
  onnx::TensorProto joined;
  joined.set_data_type(onnx::TensorProto::FLOAT);
  joined.set_name("joined");
  for (size_t d = 0; d < first.rank(); ++d) joined.add_dims(d == 1 ? channels : first[d]);
  for (uint32_t n = 0; n < first[0]; ++n) {
    for (const HostTensor& x : xs) {
      const size_t per_image = x.data.size() / first[0];
      for (size_t i = 0; i < per_image; ++i) joined.add_float_data(x.data[n * per_image + i]);
    }
  }
  onnx::GraphProto& g = *model.mutable_graph();
  onnx::ValueInfoProto in = g.input(0);
  in.set_name("joined");
  in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(channels);
  g.clear_input();
  *g.add_input() = in;
  onnx::NodeProto split;
  split.set_op_type("Split");
  split.set_name("join_split");
  split.add_input("joined");
  for (const std::string& name : names) split.add_output(name);
  auto* axis = split.add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(1);
  int64_t opset = 0;
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  if (opset >= 13) {
    split.add_input("join_sizes");
    onnx::TensorProto* t = g.add_initializer();
    t->set_name("join_sizes");
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(int64_t(sizes.size()));
    for (int64_t v : sizes) t->add_int64_data(v);
  } else {
    auto* a = split.add_attribute();
    a->set_name("split");
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : sizes) a->add_ints(v);
  }
  *g.add_node() = split;
  // The new node first: the graph's nodes are in an order that runs.
  for (int i = g.node_size() - 1; i > 0; --i) g.mutable_node()->SwapElements(i, i - 1);
  return joined;
}

NodeTestResult run_node_test(const fs::path& dir) {
  NodeTestResult r;
  r.name = dir.filename().string();
  onnx::ModelProto proto;
  {
    std::ifstream f(dir / "model.onnx", std::ios::binary);
    REQUIRE(proto.ParseFromIstream(&f));
  }
  r.op = op_of(proto);
  std::set<std::string> initializers;
  for (const auto& t : proto.graph().initializer()) initializers.insert(t.name());
  std::vector<std::string> inputs;
  bool tensors = true;  // else a sequence or an optional, which the importer refuses
  for (const auto& in : proto.graph().input()) {
    if (!initializers.count(in.name())) inputs.push_back(in.name());
    tensors = tensors && in.type().has_tensor_type();
  }
  for (const auto& set : fs::directory_iterator(dir)) {
    if (!set.is_directory() || set.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
    ++r.data_sets;
    // The first input is the images; the others (a convolution's weights, a Gemm's B and C, a
    // Reshape's shape) become initializers of the model, as a network's parameters are.
    // Concat's tests join activations: there its inputs come as one, split by the graph.
    onnx::ModelProto bound = proto;
    std::vector<onnx::TensorProto> given;
    for (size_t k = 0; tensors && k < inputs.size(); ++k) {
      const fs::path p = set.path() / ("input_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) break;
      given.push_back(read_tensor_file(p));
    }
    if (r.op == "Concat" && given.size() > 1) {
      if (auto joined = join_inputs(bound, inputs, given)) given = {*joined};
    }
    for (size_t k = 1; k < given.size(); ++k) {
      onnx::TensorProto* t = bound.mutable_graph()->add_initializer();
      *t = given[k];
      t->set_name(inputs[k]);
    }
    // The engine's net has one output: a graph with several (Split's tests) runs once for
    // each, the others dropped from the graph's outputs.
    const int outputs = bound.graph().output_size();
    bool all = true;
    for (int o = 0; o < std::max(outputs, 1); ++o) {
      onnx::ModelProto one = bound;
      if (outputs > 1) {
        one.mutable_graph()->clear_output();
        *one.mutable_graph()->add_output() = bound.graph().output(o);
      }
      const test::TempDir tmp;
      const std::string path = tmp / "model.onnx";
      {
        std::ofstream f(path, std::ios::binary);
        REQUIRE(one.SerializeToOstream(&f));
      }
      OnnxModel model;
      try {
        model = load_onnx(path);
      } catch (const Error& e) {
        r.refused = e.what();
        r.refused = r.refused.substr(r.refused.find(": ") + 2);  // without the path
        return r;
      }
      REQUIRE(!given.empty());
      const HostTensor want = to_host(read_tensor_file(set.path() / ("output_" + std::to_string(o) + ".pb")));
      Net net(test::gpu(), model.model);
      net.set_parameters(model.parameters);
      const HostTensor images = to_host(given[0]);
      HostTensor x(model.model.input_shape(images.shape[0]), images.data);
      const ForwardResult got = net.forward(x);
      const std::vector<float>& out = model.output_is_softmax ? got.probabilities : got.logits;
      const std::string which = outputs > 1 ? "output " + std::to_string(o) + ": " : "";
      if (out.size() != want.data.size()) {
        r.failure = which + "has " + std::to_string(out.size()) + " values, expected " + std::to_string(want.data.size());
        all = false;
        continue;
      }
      // ONNX's backend tests: |got - want| <= atol + rtol |want|, rtol 1e-3, atol 1e-7.
      size_t bad = 0;
      double worst = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const double err = std::fabs(double(out[i]) - want.data[i]), allowed = 1e-7 + 1e-3 * std::fabs(want.data[i]);
        if (!(err <= allowed)) ++bad;
        worst = std::max(worst, err / allowed);
      }
      if (bad) {
        r.failure = which + std::to_string(bad) + " of " + std::to_string(out.size()) + " values beyond rtol 1e-3, atol 1e-7 (worst " +
                    std::to_string(worst) + " times the tolerance)";
        all = false;
      }
    }
    if (all) ++r.passed;
  }
  return r;
}

// The node tests of the ops the importer knows (and their variants, which may use others).
std::vector<fs::path> node_tests() {
  const std::vector<std::string> prefixes = {
      "test_conv_", "test_basic_conv_", "test_relu", "test_lrn", "test_maxpool_", "test_averagepool_",
      "test_gemm_", "test_matmul_", "test_flatten_", "test_reshape_", "test_dropout_", "test_softmax_",
      "test_concat_", "test_split_", "test_constant", "test_identity"};
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kNodeTests)) {
    const std::string n = e.path().filename().string();
    for (const auto& p : prefixes) {
      if (n.rfind(p, 0) == 0 && n.find("constantofshape") == std::string::npos) {
        dirs.push_back(e.path());
        break;
      }
    }
  }
  for (const char* n : {"test_Conv2d", "test_Conv2d_depthwise", "test_Conv2d_depthwise_padded", "test_Conv2d_depthwise_strided",
                        "test_Conv2d_depthwise_with_multiplier", "test_Conv2d_dilated", "test_Conv2d_groups",
                        "test_Conv2d_groups_thnn", "test_Conv2d_no_bias", "test_Conv2d_padding", "test_Conv2d_strided",
                        "test_MaxPool2d", "test_MaxPool2d_stride_padding_dilation", "test_AvgPool2d", "test_AvgPool2d_stride",
                        "test_ReLU", "test_Softmax", "test_Linear", "test_Linear_no_bias"}) {
    dirs.push_back(kPytorchTests / n);
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// The tests the importer refuses, each with (a part of) its reason. Every other test must pass
// every data set.
const std::map<std::string, std::string> kRefused = {
    {"test_averagepool_1d_default", "only 2-D pooling"},
    {"test_averagepool_3d_default", "only [batch, features], [batch, channels, length]"},
    {"test_concat_1d_axis_0", "only [batch, features], [batch, channels, length]"},
    {"test_concat_1d_axis_negative_1", "only [batch, features], [batch, channels, length]"},
    {"test_concat_2d_axis_0", "(only the channels, axis 1, are supported)"},
    {"test_concat_2d_axis_negative_2", "(only the channels, axis 1, are supported)"},
    {"test_concat_3d_axis_0", "(only the channels, axis 1, are supported)"},
    {"test_concat_3d_axis_2", "(only the channels, axis 1, are supported)"},
    {"test_concat_3d_axis_negative_1", "(only the channels, axis 1, are supported)"},
    {"test_concat_3d_axis_negative_3", "(only the channels, axis 1, are supported)"},
    {"test_constant", "0 inputs without an initializer"},
    {"test_constant_pad", "the op Pad is not supported"},
    {"test_dropout_default_mask", "only output 0 is supported"},
    {"test_dropout_default_mask_ratio", "only output 0 is supported"},
    {"test_dropout_default_old", "only [batch, features], [batch, channels, length]"},
    {"test_flatten_axis0", "mixes the images of the batch"},
    {"test_flatten_axis2", "mixes the images of the batch"},
    {"test_flatten_axis3", "mixes the images of the batch"},
    {"test_flatten_negative_axis1", "mixes the images of the batch"},
    {"test_flatten_negative_axis2", "mixes the images of the batch"},
    {"test_flatten_negative_axis4", "mixes the images of the batch"},
    {"test_gemm_all_attributes", "transA 1"},
    {"test_gemm_default_matrix_bias", "differs between rows"},
    {"test_gemm_transposeA", "transA 1"},
    {"test_identity_opt", "is not a tensor"},
    {"test_identity_sequence", "is not a tensor"},
    {"test_matmul_3d", "only a 2-D MatMul"},
    {"test_matmul_4d", "only a 2-D MatMul"},
    {"test_maxpool_1d_default", "only 2-D pooling"},
    {"test_maxpool_2d_uint8", "of type UINT8"},
    {"test_maxpool_3d_default", "only [batch, features], [batch, channels, length]"},
    {"test_maxpool_with_argmax_2d_precomputed_pads", "only output 0 is supported"},
    {"test_maxpool_with_argmax_2d_precomputed_strides", "storage_order 1"},
    {"test_reshape_allowzero_reordered", "empty tensors are not supported"},
    {"test_reshape_extended_dims", "only to [batch, features] is supported"},
    {"test_reshape_negative_dim", "only to [batch, features] is supported"},
    {"test_reshape_negative_extended_dims", "moves the batch dimension"},
    {"test_reshape_one_dim", "moves the batch dimension"},
    {"test_reshape_reordered_all_dims", "moves the batch dimension"},
    {"test_reshape_reordered_last_dims", "only to [batch, features] is supported"},
    {"test_reshape_zero_and_negative_dim", "only to [batch, features] is supported"},
    {"test_reshape_zero_dim", "only to [batch, features] is supported"},
    {"test_softmax_axis_0", "mixes the images of the batch"},
    {"test_softmax_axis_0_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_axis_1_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_axis_2_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_default_axis_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_example_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_large_number_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_negative_axis_expanded", "the op ReduceMax is not supported"},
    {"test_split_equal_parts_1d", "only [batch, features], [batch, channels, length]"},
    {"test_split_equal_parts_default_axis", "only [batch, features], [batch, channels, length]"},
    {"test_split_variable_parts_1d", "only [batch, features], [batch, channels, length]"},
    {"test_split_variable_parts_default_axis", "only [batch, features], [batch, channels, length]"},
    {"test_split_zero_size_splits", "empty tensors are not supported"},
};

}  // namespace

TEST_CASE("ONNX backend node tests through load_onnx", "[onnx]") {
  REQUIRE(onnx_available());
  REQUIRE(fs::is_directory(kNodeTests));
  std::map<std::string, std::array<size_t, 3>> per_op;  // run, passed, refused
  std::ostringstream table;
  for (const fs::path& dir : node_tests()) {
    const NodeTestResult r = run_node_test(dir);
    INFO(r.name << ": " << (r.refused.empty() ? r.failure : "refused: " + r.refused));
    const auto expected = kRefused.find(r.name);
    if (expected != kRefused.end()) {
      CHECK(r.refused.find(expected->second) != std::string::npos);
    } else {
      CHECK(r.refused.empty());
      CHECK(r.failure.empty());
      CHECK(r.data_sets > 0);
      CHECK(r.passed == r.data_sets);
    }
    auto& c = per_op[r.op];
    ++c[0];
    if (!r.refused.empty()) {
      ++c[2];
      table << r.name << "\tREFUSED\t" << r.refused << "\n";
    } else if (r.failure.empty()) {
      ++c[1];
      table << r.name << "\tpassed\t" << r.passed << " data set(s)\n";
    } else {
      table << r.name << "\tFAILED\t" << r.failure << "\n";
    }
  }
  // The table (VKALEX_ONNX_TABLE=1): per test, then per op.
  if (const char* env = std::getenv("VKALEX_ONNX_TABLE"); env && std::string(env) == "1") {
    std::cout << table.str();
    for (const auto& [op, c] : per_op) std::cout << op << ": " << c[0] << " run, " << c[1] << " passed, " << c[2] << " refused\n";
  }
}

// ---- AlexNet-shaped ONNX models, written here from a description and its weights with
// ONNX's protobuf classes (an exporter independent of the importer), against the description.

namespace {

const std::string kModelDir = VKALEX_MODEL_DIR;

// How the exporter writes the graph: the forms exporters use for the same network.
struct Style {
  int64_t opset = 13;
  bool matmul = false;     // linear layers as MatMul + Add (else Gemm with transB 1)
  bool reshape = false;    // flatten as Reshape to [0, -1] with a Constant shape (else Flatten)
  bool softmax = true;     // end in Softmax (else the logits)
  bool identity = false;   // an Identity after every convolution
  bool float_data = false; // initializers in float_data (else raw_data)
  bool transpose = false;  // MatMul's weight as a Transpose of [out, in] (else stored [in, out])
  bool fixed_batch = false;  // the input's and the Reshape's batch 1 (else symbolic, and 0)
};

class OnnxWriter {
 public:
  OnnxWriter(const ModelDesc& m, const std::map<std::string, HostTensor>& params, const Style& style)
      : m_(m), params_(params), style_(style) {
    proto_.set_ir_version(style.opset >= 15 ? 8 : 7);
    proto_.set_producer_name("vkalex-test");
    auto* op = proto_.add_opset_import();
    op->set_domain("");
    op->set_version(style.opset);
    g_ = proto_.mutable_graph();
    g_->set_name(m.name);
    auto* in = g_->add_input();
    in->set_name("images");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    if (style.fixed_batch) {
      tt->mutable_shape()->add_dim()->set_dim_value(1);
    } else {
      tt->mutable_shape()->add_dim()->set_dim_param("batch");
    }
    for (uint32_t d : {m.channels, m.height, m.width}) tt->mutable_shape()->add_dim()->set_dim_value(d);
    // Each layer's ONNX value; a layer reads those its `inputs` name, else the one before.
    const auto inputs = layer_inputs(m);
    shapes_ = layer_shapes(m, 1);
    std::vector<std::string> value(m.layers.size());
    std::string cur = "images";
    for (size_t i = 0; i < m.layers.size(); ++i) {
      std::vector<std::string> xs;
      for (size_t k : inputs[i]) xs.push_back(k == kModelInput ? "images" : value[k]);
      const LayerDesc& l = m.layers[i];
      if (l.type == LayerType::Concat) {
        auto* n = node("Concat", l.name, xs);
        integer(n, "axis", 1);
        cur = n->output(0);
      } else if (l.type == LayerType::Slice) {
        cur = slice(m, inputs, i, xs[0]);
      } else {
        in_ = inputs[i][0] == kModelInput ? m.input_shape(1) : shapes_[inputs[i][0]];
        cur = layer(l, xs[0]);
      }
      value[i] = cur;
    }
    auto* out = g_->add_output();
    out->set_name(cur);
    auto* ot = out->mutable_type()->mutable_tensor_type();
    ot->set_elem_type(onnx::TensorProto::FLOAT);
    ot->mutable_shape()->add_dim()->set_dim_param("batch");
    ot->mutable_shape()->add_dim()->set_dim_value(m.classes);
  }
  onnx::ModelProto& proto() { return proto_; }
  void save(const std::string& path) const {
    std::ofstream f(path, std::ios::binary);
    REQUIRE(proto_.SerializeToOstream(&f));
  }

 private:
  const ModelDesc& m_;
  const std::map<std::string, HostTensor>& params_;
  Style style_;
  onnx::ModelProto proto_;
  onnx::GraphProto* g_ = nullptr;
  int count_ = 0;
  std::vector<Shape> shapes_;  // of every layer, batch 1
  Shape in_;                   // the input of the layer being written, batch 1
  // Per value a Split cut: the first channel of each part -> (the part's value, its end).
  std::map<std::string, std::map<int64_t, std::pair<std::string, int64_t>>> splits_;

  void initializer(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& data) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    if (style_.float_data) {
      for (float v : data) t->add_float_data(v);
    } else {
      t->set_raw_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * 4));
    }
  }
  onnx::NodeProto* node(const char* op, const std::string& name, std::vector<std::string> inputs) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(name + "_out" + std::to_string(++count_));
    return n;
  }
  static void ints(onnx::NodeProto* n, const char* name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const char* name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  std::vector<int64_t> dims(const std::string& param) const {
    std::vector<int64_t> d;
    for (uint32_t x : params_.at(param).shape.dims()) d.push_back(x);
    return d;
  }

  // A slice layer as an output of a Split node of its input: one Split per input, cut at
  // every slice's ends (the parts no slice is, unread).
  std::string slice(const ModelDesc& m, const std::vector<std::vector<size_t>>& inputs, size_t i, const std::string& x) {
    const LayerDesc& l = m.layers[i];
    if (!splits_.count(x)) {
      const uint32_t channels = inputs[i][0] == kModelInput ? m.channels : shapes_[inputs[i][0]][1];
      std::set<int64_t> cuts{0, channels};
      for (size_t j = 0; j < m.layers.size(); ++j) {
        if (m.layers[j].type == LayerType::Slice && inputs[j] == inputs[i]) {
          cuts.insert(m.layers[j].slice_begin);
          cuts.insert(m.layers[j].slice_end);
        }
      }
      std::vector<int64_t> sizes;
      for (auto it = std::next(cuts.begin()); it != cuts.end(); ++it) sizes.push_back(*it - *std::prev(it));
      auto* n = node("Split", l.name + "_split", {x});
      n->clear_output();
      integer(n, "axis", 1);
      if (style_.opset < 13) {
        ints(n, "split", sizes);
      } else {
        const std::string name = l.name + "_sizes";
        auto* t = g_->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(int64_t(sizes.size()));
        for (int64_t v : sizes) t->add_int64_data(v);
        n->add_input(name);
      }
      auto& parts = splits_[x];
      auto it = cuts.begin();
      for (size_t k = 0; k < sizes.size(); ++k, ++it) {
        n->add_output(x + "_part" + std::to_string(k));
        parts[*it] = {n->output(int(k)), *std::next(it)};
      }
    }
    const auto& parts = splits_.at(x);
    auto part = parts.find(l.slice_begin);
    REQUIRE(part != parts.end());
    REQUIRE(part->second.second == int64_t(l.slice_end));  // one part, not several
    return part->second.first;
  }

  std::string layer(const LayerDesc& l, const std::string& x) {
    onnx::NodeProto* n = nullptr;
    switch (l.type) {
      case LayerType::Conv2d: {
        initializer(l.weight, dims(l.weight), params_.at(l.weight).data);
        std::vector<std::string> in{x, l.weight};
        if (!l.bias.empty()) initializer(l.bias, dims(l.bias), params_.at(l.bias).data), in.push_back(l.bias);
        n = node("Conv", l.name, in);
        ints(n, "kernel_shape", {l.kernel_h, l.kernel_w});
        ints(n, "strides", {l.conv.stride_h, l.conv.stride_w});
        ints(n, "pads", {l.conv.pad_h, l.conv.pad_w, l.conv.pad_h, l.conv.pad_w});
        if (l.conv.groups != 1) integer(n, "group", l.conv.groups);
        if (style_.identity) return node("Identity", l.name + "_id", {n->output(0)})->output(0);
        break;
      }
      case LayerType::Relu: n = node("Relu", l.name, {x}); break;
      case LayerType::Lrn:
        n = node("LRN", l.name, {x});
        integer(n, "size", l.lrn.size);
        real(n, "alpha", l.lrn.alpha);
        real(n, "beta", l.lrn.beta);
        real(n, "bias", l.lrn.k);
        break;
      case LayerType::MaxPool:
        n = node("MaxPool", l.name, {x});
        ints(n, "kernel_shape", {l.pool.kernel_h, l.pool.kernel_w});
        ints(n, "strides", {l.pool.stride_h, l.pool.stride_w});
        if (l.pool.ceil_mode && style_.opset < 10) {
          // No ceil_mode before opset 10: Caffe's rounding up as padding at the end, as
          // converters write it (the windows are the same).
          const Shape out = max_pool_output_shape(in_, l.pool);
          const int64_t bottom = int64_t(out[2] - 1) * l.pool.stride_h + l.pool.kernel_h - in_[2] - l.pool.pad_h;
          const int64_t right = int64_t(out[3] - 1) * l.pool.stride_w + l.pool.kernel_w - in_[3] - l.pool.pad_w;
          ints(n, "pads", {l.pool.pad_h, l.pool.pad_w, std::max<int64_t>(bottom, l.pool.pad_h), std::max<int64_t>(right, l.pool.pad_w)});
        } else {
          if (l.pool.ceil_mode) integer(n, "ceil_mode", 1);
          if (l.pool.pad_h || l.pool.pad_w) ints(n, "pads", {l.pool.pad_h, l.pool.pad_w, l.pool.pad_h, l.pool.pad_w});
        }
        break;
      case LayerType::Flatten:
        if (style_.reshape) {
          auto* c = node("Constant", l.name + "_shape", {});
          auto* a = c->add_attribute();
          a->set_name("value");
          a->set_type(onnx::AttributeProto::TENSOR);
          a->mutable_t()->set_data_type(onnx::TensorProto::INT64);
          a->mutable_t()->add_dims(2);
          a->mutable_t()->add_int64_data(style_.fixed_batch ? 1 : 0);
          a->mutable_t()->add_int64_data(-1);
          n = node("Reshape", l.name, {x, c->output(0)});
        } else {
          n = node("Flatten", l.name, {x});
          integer(n, "axis", 1);
        }
        break;
      case LayerType::Dropout:
        n = node("Dropout", l.name, {x});
        if (style_.opset < 12) real(n, "ratio", l.dropout);
        if (style_.opset < 7) integer(n, "is_test", 1);
        break;
      case LayerType::Linear: {
        const HostTensor& w = params_.at(l.weight);
        if (style_.matmul && style_.transpose) {
          initializer(l.weight, dims(l.weight), w.data);
          auto* t = node("Transpose", l.name + "_t", {l.weight});
          ints(t, "perm", {1, 0});
          n = node("MatMul", l.name, {x, t->output(0)});
          if (!l.bias.empty()) {
            initializer(l.bias, dims(l.bias), params_.at(l.bias).data);
            n = node("Add", l.name + "_bias", {n->output(0), l.bias});
          }
        } else if (style_.matmul) {
          const uint32_t out = w.shape[0], in = w.shape[1];
          std::vector<float> t(w.data.size());
          for (uint32_t o = 0; o < out; ++o)
            for (uint32_t i = 0; i < in; ++i) t[size_t(i) * out + o] = w.data[size_t(o) * in + i];
          initializer(l.weight, {in, out}, t);
          n = node("MatMul", l.name, {x, l.weight});
          if (!l.bias.empty()) {
            initializer(l.bias, dims(l.bias), params_.at(l.bias).data);
            n = node("Add", l.name + "_bias", {n->output(0), l.bias});
          }
        } else {
          initializer(l.weight, dims(l.weight), w.data);
          std::vector<std::string> in{x, l.weight};
          if (!l.bias.empty()) initializer(l.bias, dims(l.bias), params_.at(l.bias).data), in.push_back(l.bias);
          n = node("Gemm", l.name, in);
          integer(n, "transB", 1);
        }
        break;
      }
      case LayerType::Softmax:
        if (!style_.softmax) return x;
        n = node("Softmax", l.name, {x});
        integer(n, "axis", style_.opset < 13 ? 1 : -1);
        break;
      case LayerType::AdaptiveAvgPool:
        n = node("AveragePool", l.name, {x});
        ints(n, "kernel_shape", {1, 1});
        break;
      case LayerType::Concat:
      case LayerType::Slice:
        FAIL("written by the constructor");
        break;
      case LayerType::AvgPool:
        n = node("AveragePool", l.name, {x});
        ints(n, "kernel_shape", {l.pool.kernel_h, l.pool.kernel_w});
        ints(n, "strides", {l.pool.stride_h, l.pool.stride_w});
        ints(n, "pads", {l.pool.pad_h, l.pool.pad_w, l.pool.pad_end_h(), l.pool.pad_end_w()});
        if (l.pool.ceil_mode) integer(n, "ceil_mode", 1);
        if (l.count_include_pad) integer(n, "count_include_pad", 1);
        break;
    }
    return n->output(0);
  }
};

HostTensor sample_images(const ModelDesc& m) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(VKALEX_SAMPLE_DATA_DIR)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  HostTensor x(m.input_shape(uint32_t(files.size())));
  const uint64_t per = m.input_shape(1).numel();
  for (size_t i = 0; i < files.size(); ++i) {
    const HostTensor one = preprocess_image(load_image(files[i], m.channels), m.preprocess, m.channels, m.height, m.width);
    std::copy(one.data.begin(), one.data.end(), x.data.begin() + i * per);
  }
  return x;
}

std::vector<uint32_t> top5(const std::vector<float>& p, uint32_t classes, uint32_t image) {
  std::vector<uint32_t> idx(classes);
  std::iota(idx.begin(), idx.end(), 0u);
  const float* q = &p[size_t(image) * classes];
  std::partial_sort(idx.begin(), idx.begin() + std::min(5u, classes), idx.end(),
                    [&](uint32_t a, uint32_t b) { return q[a] > q[b] || (q[a] == q[b] && a < b); });
  idx.resize(std::min(5u, classes));
  return idx;
}

// The imported parameters are `weights` to the bit (in the engine's layouts), and the imported
// net classifies `images` as `want`: the same top 5, probabilities and logits within relative
// L2 1e-5. Returns the net.
Net require_same_classification(const OnnxModel& onnx, const std::map<std::string, HostTensor>& weights,
                                const HostTensor& images, const ForwardResult& want) {
  REQUIRE(onnx.parameters.size() == weights.size());
  for (const auto& [name, t] : weights) {
    INFO(name);
    REQUIRE(onnx.parameters.count(name));
    CHECK(onnx.parameters.at(name).shape == t.shape);
    CHECK(onnx.parameters.at(name).data == t.data);
  }
  Net net(test::gpu(), onnx.model);
  net.set_parameters(onnx.parameters);
  const ForwardResult got = net.forward(images);
  CHECK(relative_l2(got.probabilities, want.probabilities) <= 1e-5);
  CHECK(relative_l2(got.logits, want.logits) <= 1e-5);
  for (uint32_t i = 0; i < images.shape[0]; ++i) {
    CHECK(top5(got.probabilities, want.classes, i) == top5(want.probabilities, want.classes, i));
  }
  return net;
}

}  // namespace

TEST_CASE("an AlexNet-shaped ONNX model classifies as its JSON description", "[onnx]") {
  const ModelDesc native = load_model(kModelDir + "/alexnet-fashion.json");
  const SafeTensors file(native.weights_path);
  Net reference(test::gpu(), native);
  reference.load_weights(file);
  const auto weights = reference.parameters();
  const HostTensor images = sample_images(native);
  const ForwardResult want = reference.forward(images);
  const test::TempDir tmp;
  for (const Style& style : {Style{7, false, false, true, false, true}, Style{11, true, true, true, true, false},
                             Style{13, false, false, false, false, false}, Style{17, true, false, true, false, false},
                             Style{6, false, false, true, false, false},
                             Style{13, true, false, true, false, false, true}}) {
    INFO("opset " << style.opset << (style.matmul ? ", MatMul + Add" : ", Gemm") << (style.reshape ? ", Reshape" : ", Flatten")
                  << (style.softmax ? ", Softmax" : ", logits") << (style.identity ? ", Identity nodes" : "")
                  << (style.transpose ? ", Transpose of the weights" : ""));
    const std::string path = tmp / "fashion.onnx";
    OnnxWriter(native, weights, style).save(path);
    OnnxOptions opt;
    opt.has_preprocess = true;
    opt.preprocess = native.preprocess;
    const OnnxModel onnx = load_onnx(path, opt);
    CHECK(onnx.output_is_softmax == style.softmax);
    CHECK(onnx.opset == style.opset);
    CHECK(onnx.model.classes == native.classes);
    require_same_classification(onnx, weights, images, want);
  }
}

namespace {

// Rows first to first + count - 1 of a parameter (output channels of a weight or bias).
HostTensor rows(const HostTensor& t, uint32_t first, uint32_t count) {
  const uint64_t per_row = t.shape.numel() / t.shape[0];
  std::vector<uint32_t> dims = t.shape.dims();
  dims[0] = count;
  return HostTensor(Shape(dims), std::vector<float>(t.data.begin() + first * per_row, t.data.begin() + (first + count) * per_row));
}

// A chain `m` with every convolution of groups 2 written out as the paper's two towers: a
// slice of each half of its input, a convolution of one group (and its ReLU) per half, and a
// concat of the two; the weights cut likewise.
std::pair<ModelDesc, std::map<std::string, HostTensor>> two_towers(const ModelDesc& m,
                                                                    const std::map<std::string, HostTensor>& params) {
  ModelDesc out = m;
  out.layers.clear();
  auto p = params;
  const auto shapes = layer_shapes(m, 1);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerDesc& l = m.layers[i];
    if (l.type != LayerType::Conv2d || l.conv.groups != 2) {
      out.layers.push_back(l);
      continue;
    }
    const std::string from = i == 0 ? "input" : m.layers[i - 1].name;
    const uint32_t cin = i == 0 ? m.channels : shapes[i - 1][1], half = l.out_channels / 2;
    const bool relu = i + 1 < m.layers.size() && m.layers[i + 1].type == LayerType::Relu;
    LayerDesc cat;
    cat.type = LayerType::Concat;
    cat.name = relu ? m.layers[i + 1].name : l.name;
    for (uint32_t t = 0; t < 2; ++t) {
      const std::string tower = l.name + (t ? "b" : "a");
      LayerDesc s;
      s.type = LayerType::Slice;
      s.name = tower + "_in";
      s.inputs = {from};
      s.slice_begin = t * cin / 2, s.slice_end = (t + 1) * cin / 2;
      LayerDesc c = l;
      c.name = tower;
      c.conv.groups = 1;
      c.out_channels = half;
      c.weight = tower + ".weight";
      p[c.weight] = rows(params.at(l.weight), t * half, half);
      if (!l.bias.empty()) c.bias = tower + ".bias", p[c.bias] = rows(params.at(l.bias), t * half, half);
      out.layers.push_back(s);
      out.layers.push_back(c);
      cat.inputs.push_back(c.name);
      if (relu) {
        LayerDesc r;
        r.type = LayerType::Relu;
        r.name = tower + "_relu";
        out.layers.push_back(r);
        cat.inputs.back() = r.name;
      }
    }
    p.erase(l.weight);
    if (!l.bias.empty()) p.erase(l.bias);
    out.layers.push_back(cat);
    if (relu) ++i;
  }
  return {out, p};
}

}  // namespace

TEST_CASE("an ONNX model of two towers (Split, Concat) classifies as the grouped description", "[onnx][branch]") {
  const ModelDesc native = load_model(kModelDir + "/alexnet-fashion.json");
  Net reference(test::gpu(), native);
  reference.load_weights(SafeTensors(native.weights_path));
  const auto weights = reference.parameters();
  const HostTensor images = sample_images(native);
  const ForwardResult want = reference.forward(images);
  const auto [towers, tower_weights] = two_towers(native, weights);
  // conv2, 4 and 5 (each with its ReLU) become 2 slices, 2 convolutions, 2 ReLUs and a concat.
  REQUIRE(towers.layers.size() == native.layers.size() + 3 * 5);
  const test::TempDir tmp;
  for (const Style& style : {Style{11, false, false, true, false, false}, Style{13, true, true, false, true, false}}) {
    INFO("opset " << style.opset);
    const std::string path = tmp / "towers.onnx";
    OnnxWriter(towers, tower_weights, style).save(path);
    OnnxOptions opt;
    opt.has_preprocess = true;
    opt.preprocess = native.preprocess;
    const OnnxModel onnx = load_onnx(path, opt);
    size_t slices = 0, concats = 0;
    for (const LayerDesc& l : onnx.model.layers) {
      slices += l.type == LayerType::Slice;
      concats += l.type == LayerType::Concat;
    }
    CHECK(slices == 6);
    CHECK(concats == 3);
    Net net = require_same_classification(onnx, tower_weights, images, want);
    // The towers' ReLUs are their convolutions' (nothing else reads them).
    for (const PlanOp& op : net.plan().ops)
      if (op.kind == OpKind::Conv2d) CHECK(op.relu);
    CHECK_THROWS_WITH(Trainer(net, 2), Catch::Contains("graphs that branch have no backward pass yet"));
  }
}

TEST_CASE("a Caffe-style AlexNet in ONNX (the model zoo's bvlcalexnet form) classifies as its description", "[onnx][alexnet]") {
  // The model zoo's bvlcalexnet and caffenet come from Caffe: 224x224 input of batch 1, LRN
  // with k = 1, pools that round up (written as end padding at opset 9, where MaxPool has no
  // ceil_mode), Reshape to [1, -1], Gemm, Softmax. The zoo's files cannot be downloaded here:
  // this one is alexnet2012 in that form with random weights, against the same description.
  ModelDesc caffe = load_model(kModelDir + "/alexnet2012.json");
  caffe.name = "caffe-style";
  caffe.height = caffe.width = caffe.preprocess.crop = 224;
  for (LayerDesc& l : caffe.layers) {
    if (l.type == LayerType::Lrn) l.lrn.k = 1;
    if (l.type == LayerType::MaxPool) l.pool.ceil_mode = true;
  }
  REQUIRE(layer_shapes(caffe, 1)[3] == Shape{1, 96, 27, 27});  // 54 rounded up (26 down)
  const auto weights = random_parameters(caffe, test::seed());
  Net native(test::gpu(), caffe);
  native.set_parameters(weights);
  const Shape in = caffe.input_shape(2);
  const HostTensor images(in, random_uniform(in.numel(), test::seed() + 1, 2.0f));
  const ForwardResult want = native.forward(images);
  const test::TempDir tmp;
  for (const Style& style : {Style{9, false, true, true, false, false, false, true}, Style{12, false, true, true, false, false, false, true}}) {
    INFO("opset " << style.opset << ", seed " << test::seed());
    const std::string path = tmp / "caffe.onnx";
    OnnxWriter(caffe, weights, style).save(path);
    const OnnxModel onnx = load_onnx(path);
    REQUIRE(onnx.input_dims == std::vector<int64_t>{1, 3, 224, 224});
    require_same_classification(onnx, weights, images, want);  // at batch 2: a fixed batch is any batch
  }
}

namespace {

// The fashion model with its trained weights as an ONNX file (logits out, as torch.onnx
// exports a classifier) and its preprocessing as a sidecar FILE.onnx.json.
std::string write_fashion_onnx(const test::TempDir& tmp, const Style& style) {
  const ModelDesc native = load_model(kModelDir + "/alexnet-fashion.json");
  Net net(test::gpu(), native);
  net.load_weights(SafeTensors(native.weights_path));
  const std::string path = tmp / "fashion.onnx";
  OnnxWriter(native, net.parameters(), style).save(path);
  std::ofstream(path + ".json") << R"({"preprocess": {"resize": 28, "crop": 28, "mean": [0.286], "std": [0.353]},
                                      "labels": ")" << kModelDir << R"(/fashion_classes.txt"})";
  return path;
}

std::pair<int, std::string> classify(const std::string& args) {
  return test::run_command(std::string(VKALEX_CLASSIFY_EXE) + " " + args, false);
}

std::string sample_image_args() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(VKALEX_SAMPLE_DATA_DIR)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::string s;
  for (const auto& f : files) s += " " + f;
  return s;
}

}  // namespace

TEST_CASE("classify --model FILE.onnx gives the description's top 5 and probabilities", "[onnx][classify]") {
  const test::TempDir tmp;
  const std::string onnx = write_fashion_onnx(tmp, Style{13, false, false, false, false, false});
  const auto [s1, native] = classify("--json --top 5 --model " + kModelDir + "/alexnet-fashion.json" + sample_image_args());
  REQUIRE(s1 == 0);
  const auto [s2, imported] = classify("--json --top 5 --model " + onnx + sample_image_args());
  REQUIRE(s2 == 0);
  const auto a = nlohmann::json::parse(native), b = nlohmann::json::parse(imported);
  REQUIRE(a["images"].size() == 10);
  REQUIRE(b["images"].size() == a["images"].size());
  CHECK(b["onnx"]["output"] == "logits");
  std::vector<float> pa, pb;
  for (size_t i = 0; i < a["images"].size(); ++i) {
    const auto &ta = a["images"][i]["top"], &tb = b["images"][i]["top"];
    REQUIRE(ta.size() == 5);
    REQUIRE(tb.size() == 5);
    for (size_t k = 0; k < 5; ++k) {
      CHECK(tb[k]["index"] == ta[k]["index"]);
      CHECK(tb[k]["label"] == ta[k]["label"]);
      pa.push_back(ta[k]["probability"].get<float>());
      pb.push_back(tb[k]["probability"].get<float>());
    }
  }
  CHECK(relative_l2(pb, pa) <= 1e-5);

  // Flags override the sidecar; without either there is a note and the [0, 1] default.
  const auto [s3, flagged] = classify("--json --model " + onnx + " --mean 0.5 --std 0.25" + sample_image_args());
  REQUIRE(s3 == 0);
  CHECK(nlohmann::json::parse(flagged)["images"][0]["top"][0]["probability"] != b["images"][0]["top"][0]["probability"]);
  fs::remove(onnx + ".json");
  const auto [s4, plain] = test::run_command(std::string(VKALEX_CLASSIFY_EXE) + " --model " + onnx + sample_image_args(), true);
  CHECK(s4 == 0);
  CHECK_THAT(plain, Catch::Contains("carries no preprocessing"));
  CHECK_THAT(plain, Catch::Contains("class "));  // no labels without the sidecar
}

TEST_CASE("classify and info refuse what an ONNX model cannot run, by node, before the device", "[onnx][classify]") {
  const test::TempDir tmp;
  const std::string onnx = write_fashion_onnx(tmp, Style{13, false, false, true, false, false});
  // An op the importer does not know, in the middle of the chain.
  onnx::ModelProto m;
  {
    std::ifstream f(onnx, std::ios::binary);
    REQUIRE(m.ParseFromIstream(&f));
  }
  auto* relu = m.mutable_graph()->mutable_node(1);
  REQUIRE(relu->op_type() == "Relu");
  relu->set_op_type("Elu");
  const std::string bad = tmp / "elu.onnx";
  {
    std::ofstream f(bad, std::ios::binary);
    REQUIRE(m.SerializeToOstream(&f));
  }
  // VKALEX_DEVICE names no device: a refusal must come before any device is looked for.
  const auto [status, out] = test::run_command("VKALEX_DEVICE=no-such-device " + std::string(VKALEX_CLASSIFY_EXE) +
                                               " --model " + bad + sample_image_args());
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("node relu1 (Elu): the op Elu is not supported"));
  const auto [istatus, iout] = test::run_command(std::string(VKALEX_INFO_EXE) + " --model " + bad);
  CHECK(istatus == 1);
  CHECK_THAT(iout, Catch::Contains("CANNOT RUN: the op Elu is not supported"));
  CHECK_THAT(iout, Catch::Contains("-> conv2d conv1"));
  // A node nothing reads (of an op vkalex cannot run, even) is dead code: left out, and said.
  relu->set_op_type("Relu");
  auto* dead = m.mutable_graph()->add_node();
  *dead = *relu;
  dead->set_op_type("Elu");
  dead->set_name("unused");
  dead->set_output(0, "unused_out");
  const std::string with_dead = tmp / "dead.onnx";
  {
    std::ofstream f(with_dead, std::ios::binary);
    REQUIRE(m.SerializeToOstream(&f));
  }
  const auto [dstatus, dout] = test::run_command(std::string(VKALEX_INFO_EXE) + " --model " + with_dead);
  CHECK(dstatus == 0);
  CHECK_THAT(dout, Catch::Contains("nothing (no node reads its outputs"));
  CHECK(load_onnx(with_dead).model.layers.size() == load_onnx(onnx).model.layers.size());
  const auto [gstatus, gout] = test::run_command(std::string(VKALEX_INFO_EXE) + " --model " + onnx + " --save-weights " + (tmp / "w.safetensors"));
  CHECK(gstatus == 0);
  CHECK_THAT(gout, Catch::Contains("every node runs"));
  const SafeTensors saved(tmp / "w.safetensors");
  CHECK(saved.entries().size() == 16);
  CHECK(saved.contains("fc8.weight"));
  // Flags that need an ONNX model, and weights it does not take.
  CHECK(classify("--model " + kModelDir + "/alexnet-fashion.json --mean 0 x.png").first == 1);
  CHECK(classify("--model " + onnx + " --weights w.safetensors x.png").first == 1);
  CHECK(classify("--model " + onnx + " --mean 0,0" + sample_image_args()).first == 1);
}

TEST_CASE("malformed ONNX files get clear errors", "[onnx]") {
  const test::TempDir tmp;
  const std::string good = write_fashion_onnx(tmp, Style{13, false, false, true, false, false});
  const std::string bytes = file_bytes(good);
  const std::string path = tmp / "bad.onnx";
  auto write = [&](const std::string& b) { std::ofstream(path, std::ios::binary) << b; };
  auto error_of = [&]() -> std::string {
    try {
      load_onnx(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  // Truncated anywhere: an error naming the file, never a model.
  for (size_t cut : {size_t(0), size_t(1), size_t(10), size_t(100), bytes.size() / 3, bytes.size() / 2, bytes.size() - 200,
                     bytes.size() - 30, bytes.size() - 1}) {
    INFO("cut at " << cut << " of " << bytes.size());
    write(bytes.substr(0, cut));
    CHECK_THAT(error_of(), Catch::StartsWith(path + ": "));
  }
  write("this is not an ONNX model\n");
  CHECK_THAT(error_of(), Catch::Contains("not an ONNX model"));
  CHECK_THROWS_WITH(load_onnx(tmp / "missing.onnx"), Catch::Contains("missing.onnx"));
  CHECK_THROWS_WITH(load_onnx(tmp.path.string()), Catch::Contains("not a regular file"));

  // Edits of the good model: each refused with what is wrong.
  onnx::ModelProto m;
  REQUIRE(m.ParseFromString(bytes));
  auto edited = [&](const std::function<void(onnx::ModelProto&)>& edit) {
    onnx::ModelProto e = m;
    edit(e);
    std::string b;
    REQUIRE(e.SerializeToString(&b));
    write(b);
    return error_of();
  };
  auto init = [](onnx::ModelProto& e, const std::string& name) -> onnx::TensorProto& {
    for (auto& t : *e.mutable_graph()->mutable_initializer()) {
      if (t.name() == name) return t;
    }
    FAIL("no initializer " << name);
    throw 0;
  };
  CHECK_THAT(edited([&](onnx::ModelProto& e) {
               auto& t = init(e, "conv1.weight");
               t.set_data_type(onnx::TensorProto::INT32);
             }),
             Catch::Contains("conv1.weight") && Catch::Contains("INT32"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) { init(e, "conv1.weight").mutable_raw_data()->resize(100); }),
             Catch::Contains("initializer \"conv1.weight\" holds 100 bytes of data, its shape needs"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) {
               auto& t = init(e, "fc6.weight");
               t.set_dims(0, int64_t(1) << 40);
             }),
             Catch::Contains("fc6.weight") && Catch::Contains("2^31"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) {
               auto& t = init(e, "conv3.weight");  // [64, 48, 3, 3]: 24 input channels a group of 2 would need
               t.set_dims(1, 24);
               t.mutable_raw_data()->resize(64 * 24 * 9 * 4);
             }),
             Catch::Contains("node conv3 (Conv)") && Catch::Contains("does not fit the input"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) {
               auto& t = init(e, "fc8.weight");  // [10, 256] -> [10, 255]
               t.set_dims(1, 255);
               t.mutable_raw_data()->resize(10 * 255 * 4);
             }),
             Catch::Contains("node fc8 (Gemm)") && Catch::Contains("do not multiply"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) { e.mutable_opset_import(0)->set_version(18); }),
             Catch::Contains("opset 18 is not supported"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) { e.mutable_graph()->mutable_node(2)->set_input(0, "nowhere"); }),
             Catch::Contains("nowhere"));
  CHECK_THAT(edited([&](onnx::ModelProto& e) {
               auto* a = e.mutable_graph()->mutable_node(0)->mutable_attribute(0);  // conv1's kernel_shape
               a->set_type(onnx::AttributeProto::FLOAT);
             }),
             Catch::Contains(path));
  CHECK_THAT(edited([&](onnx::ModelProto& e) {
               auto* d = e.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1);
               d->set_dim_value(11);
             }),
             Catch::Contains("declares its output [N, 11], its layers give [N, 10]"));
}

TEST_CASE("the ONNX importer survives random damage", "[onnx]") {
  const test::TempDir tmp;
  // The fashion model as a chain, and as two towers (Split, Concat, layers reading earlier ones).
  const std::string chain = file_bytes(write_fashion_onnx(tmp, Style{11, true, true, false, true, false}));
  const ModelDesc native = load_model(kModelDir + "/alexnet-fashion.json");
  Net net(test::gpu(), native);
  net.load_weights(SafeTensors(native.weights_path));
  const auto [towers, tower_weights] = two_towers(native, net.parameters());
  OnnxWriter(towers, tower_weights, Style{13, false, false, true, false, false}).save(tmp / "towers.onnx");
  const std::string branched = file_bytes(tmp / "towers.onnx");
  // Bytes flipped in the graph's structure (the first and last kilobytes hold the nodes and
  // the headers of the initializers around the weights): an Error or a model, never a crash.
  uint64_t state = test::seed();
  auto next = [&]() { return state = state * 6364136223846793005ull + 1442695040888963407ull, uint32_t(state >> 33); };
  size_t errors = 0, loaded = 0;
  for (int round = 0; round < 200; ++round) {
    std::string b = round % 2 ? branched : chain;
    for (int k = 0; k < 4; ++k) {
      const size_t where = next() % 2 ? next() % 2048 : b.size() - 1 - next() % 2048;
      b[where] = char(next());
    }
    const std::string path = tmp / "damaged.onnx";
    std::ofstream(path, std::ios::binary) << b;
    try {
      const OnnxModel m = load_onnx(path);
      ++loaded;
      CHECK(m.model.classes > 0);
    } catch (const Error& e) {
      ++errors;
      CHECK_THAT(std::string(e.what()), Catch::StartsWith(path + ": "));
    }
  }
  INFO("seed " << test::seed() << ": " << errors << " errors, " << loaded << " loaded");
  CHECK(errors > 0);
}

namespace {

// A model of one node `op` from "x" to "y", both of `dims`, with FLOAT and INT attributes.
std::string write_one_node(const test::TempDir& tmp, const char* op, int64_t opset, const std::vector<int64_t>& dims,
                           const std::map<std::string, float>& floats, const std::map<std::string, int64_t>& ints) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.add_opset_import()->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name(op);
  for (const char* name : {"x", "y"}) {
    auto* v = std::string(name) == "x" ? g->add_input() : g->add_output();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  auto* n = g->add_node();
  n->set_op_type(op);
  n->add_input("x");
  n->add_output("y");
  for (const auto& [name, value] : floats) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }
  for (const auto& [name, value] : ints) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  const std::string path = (tmp.path / (std::string(op) + ".onnx")).string();
  std::ofstream f(path, std::ios::binary);
  REQUIRE(m.SerializeToOstream(&f));
  return path;
}

}  // namespace

TEST_CASE("ONNX Softmax follows its opset: rows from the axis on before 13, the one axis from 13", "[onnx][softmax]") {
  // x [2, 3, 4]; axis 1 at opset 11 normalises each image's 12 values together, at opset 13
  // each of the 4 columns' 3 values; axis 2 normalises rows of 4 at both.
  const test::TempDir tmp;
  const HostTensor x(Shape{2, 3, 4}, random_uniform(24, test::seed(), 3.0f));
  auto expect = [&](uint32_t length, uint32_t stride) {  // written out here, apart from the engine
    std::vector<double> y(24);
    for (uint32_t start = 0; start < 24; ++start) {
      // start is the first element of its group where no earlier element of the group exists
      const uint32_t block = length * stride;
      if ((start % block) / stride != 0) continue;
      double m = -1e300, sum = 0;
      for (uint32_t j = 0; j < length; ++j) m = std::max(m, double(x.data[start + j * stride]));
      for (uint32_t j = 0; j < length; ++j) sum += std::exp(double(x.data[start + j * stride]) - m);
      for (uint32_t j = 0; j < length; ++j) y[start + j * stride] = std::exp(double(x.data[start + j * stride]) - m) / sum;
    }
    return std::vector<float>(y.begin(), y.end());
  };
  for (const auto& [opset, axis, length, stride] : {std::tuple{11, 1, 12u, 1u}, std::tuple{13, 1, 3u, 4u},
                                                    std::tuple{11, 2, 4u, 1u}, std::tuple{13, 2, 4u, 1u},
                                                    std::tuple{13, -2, 3u, 4u}}) {
    INFO("opset " << opset << ", axis " << axis);
    const OnnxModel m = load_onnx(write_one_node(tmp, "Softmax", opset, {2, 3, 4}, {}, {{"axis", axis}}));
    CHECK(m.output_is_softmax);
    Net net(test::gpu(), m.model);
    const ForwardResult r = net.forward(HostTensor(m.model.input_shape(2), x.data));
    CHECK(relative_l2(r.probabilities, expect(length, stride)) <= 1e-6);
  }
}

TEST_CASE("an ONNX LRN of even size takes ONNX's window, not torch's", "[onnx][lrn]") {
  // One LRN node, size 2, alpha 2, beta 1, bias 1 on x = (1, 2, 3) at one pixel: ONNX's window
  // of channel c is {c, c + 1} (torch's would be {c - 1, c}): 1/6, 2/14, 3/10.
  const test::TempDir tmp;
  const OnnxModel model = load_onnx(
      write_one_node(tmp, "LRN", 13, {1, 3, 1, 1}, {{"alpha", 2.0f}, {"beta", 1.0f}, {"bias", 1.0f}}, {{"size", 2}}));
  Net net(test::gpu(), model.model);
  const ForwardResult r = net.forward(HostTensor(Shape{1, 3, 1, 1}, {1, 2, 3}));
  REQUIRE(r.logits.size() == 3);
  CHECK(r.logits[0] == Approx(1.0 / 6));
  CHECK(r.logits[1] == Approx(2.0 / 14));
  CHECK(r.logits[2] == Approx(3.0 / 10));
}

TEST_CASE("ONNX convolutions with dilations and pads per side compute their definition", "[onnx][conv]") {
  // y[n, k, oy, ox] = b[k] + sum over c, ky, kx of w[k, c, ky, kx] *
  //   x[n, g * C/G + c, oy * SH - top + ky * DH, ox * SW - left + kx * DW] (zero outside), for
  // oy < OH = (H + top + bottom - span) / SH + 1, computed here from ONNX's definition alone.
  struct Config {
    int64_t N, C, H, W, K, G, KH, KW, DH, DW, SH, SW;
    std::vector<int64_t> pads;  // top, left, bottom, right; empty: auto_pad
    const char* auto_pad;
    const char* lowered;        // what info says
  };
  const Config configs[] = {
      {2, 4, 13, 11, 6, 2, 3, 2, 2, 3, 2, 1, {2, 1, 2, 1}, "", "dilations [2, 3]: a 5x4 kernel"},
      {2, 3, 10, 9, 4, 1, 3, 3, 1, 1, 2, 1, {0, 2, 3, 0}, "", "conv2d"},        // a last row in the padding alone
      {1, 2, 8, 7, 3, 1, 2, 4, 1, 1, 1, 2, {}, "SAME_LOWER", "conv2d"},          // even kernels: the odd pad in front
      {1, 2, 8, 7, 3, 1, 2, 4, 2, 1, 3, 1, {}, "SAME_UPPER", "dilations [2, 1]"},  // the odd pad at the end
  };
  for (size_t ci = 0; ci < std::size(configs); ++ci) {
    const Config& f = configs[ci];
    INFO("config " << ci << ", seed " << test::seed());
    // auto_pad SAME_*: output ceil(in / stride), the total padding split as ONNX says.
    std::vector<int64_t> pads = f.pads;
    const int64_t span_h = (f.KH - 1) * f.DH + 1, span_w = (f.KW - 1) * f.DW + 1;
    if (pads.empty()) {
      const int64_t th = std::max<int64_t>(((f.H + f.SH - 1) / f.SH - 1) * f.SH + span_h - f.H, 0);
      const int64_t tw = std::max<int64_t>(((f.W + f.SW - 1) / f.SW - 1) * f.SW + span_w - f.W, 0);
      const bool upper = std::string(f.auto_pad) == "SAME_UPPER";
      pads = {upper ? th / 2 : th - th / 2, upper ? tw / 2 : tw - tw / 2, 0, 0};
      pads[2] = th - pads[0], pads[3] = tw - pads[1];
    }
    const int64_t OH = (f.H + pads[0] + pads[2] - span_h) / f.SH + 1, OW = (f.W + pads[1] + pads[3] - span_w) / f.SW + 1;
    const int64_t cpg = f.C / f.G;
    const auto xv = random_uniform(size_t(f.N * f.C * f.H * f.W), test::seed() + ci, 1.0f);
    const auto wv = random_uniform(size_t(f.K * cpg * f.KH * f.KW), test::seed() + 10 + ci, 1.0f);
    const auto bv = random_uniform(size_t(f.K), test::seed() + 20 + ci, 1.0f);
    onnx::ModelProto m;
    m.set_ir_version(7);
    m.add_opset_import()->set_version(13);
    auto* g = m.mutable_graph();
    g->set_name("conv");
    auto value = [](onnx::ValueInfoProto* v, const char* name, std::vector<int64_t> dims) {
      v->set_name(name);
      auto* tt = v->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(onnx::TensorProto::FLOAT);
      for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
    };
    value(g->add_input(), "x", {f.N, f.C, f.H, f.W});
    value(g->add_output(), "y", {f.N, f.K, OH, OW});
    auto tensor = [&](const char* name, std::vector<int64_t> dims, const std::vector<float>& data) {
      auto* t = g->add_initializer();
      t->set_name(name);
      t->set_data_type(onnx::TensorProto::FLOAT);
      for (int64_t d : dims) t->add_dims(d);
      for (float v : data) t->add_float_data(v);
    };
    tensor("w", {f.K, cpg, f.KH, f.KW}, wv);
    tensor("b", {f.K}, bv);
    auto* n = g->add_node();
    n->set_op_type("Conv");
    n->set_name("conv");
    for (const char* i : {"x", "w", "b"}) n->add_input(i);
    n->add_output("y");
    auto ints = [&](const char* name, std::vector<int64_t> v) {
      auto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t e : v) a->add_ints(e);
    };
    ints("dilations", {f.DH, f.DW});
    ints("strides", {f.SH, f.SW});
    ints("kernel_shape", {f.KH, f.KW});
    if (f.pads.empty()) {
      auto* a = n->add_attribute();
      a->set_name("auto_pad");
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s(f.auto_pad);
    } else {
      ints("pads", f.pads);
    }
    auto* group = n->add_attribute();
    group->set_name("group");
    group->set_type(onnx::AttributeProto::INT);
    group->set_i(f.G);
    const test::TempDir tmp;
    const std::string path = tmp / "conv.onnx";
    {
      std::ofstream out(path, std::ios::binary);
      REQUIRE(m.SerializeToOstream(&out));
    }
    const OnnxModel model = load_onnx(path);
    REQUIRE(model.nodes.size() == 1);
    CHECK_THAT(model.nodes[0].lowered, Catch::Contains(f.lowered));
    std::vector<float> want(size_t(f.N * f.K * OH * OW));
    for (int64_t i = 0; i < f.N; ++i)
      for (int64_t k = 0; k < f.K; ++k)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double sum = bv[size_t(k)];
            const int64_t gi = k / (f.K / f.G);
            for (int64_t c = 0; c < cpg; ++c)
              for (int64_t ky = 0; ky < f.KH; ++ky)
                for (int64_t kx = 0; kx < f.KW; ++kx) {
                  const int64_t iy = oy * f.SH - pads[0] + ky * f.DH, ix = ox * f.SW - pads[1] + kx * f.DW;
                  if (iy < 0 || iy >= f.H || ix < 0 || ix >= f.W) continue;
                  sum += double(wv[size_t(((k * cpg + c) * f.KH + ky) * f.KW + kx)]) *
                         xv[size_t(((i * f.C + gi * cpg + c) * f.H + iy) * f.W + ix)];
                }
            want[size_t(((i * f.K + k) * OH + oy) * OW + ox)] = float(sum);
          }
    Net net(test::gpu(), model.model);
    net.set_parameters(model.parameters);
    const ForwardResult r = net.forward(HostTensor(model.model.input_shape(uint32_t(f.N)), xv));
    REQUIRE(r.logits.size() == want.size());
    CHECK(relative_l2(r.logits, want) <= 1e-6);
  }
}

TEST_CASE("the C API opens ONNX models: vkalex_net_create with a .onnx path", "[onnx][capi]") {
  const test::TempDir tmp;
  const std::string path = write_fashion_onnx(tmp, Style{13, true, true, false, false, false});  // and its sidecar
  vkalex_context_options o{};
  o.validation = test::options().validation ? 1 : 0;
  vkalex_context* ctx = nullptr;
  REQUIRE(vkalex_context_create(&o, &ctx) == VKALEX_OK);
  auto last_error = [&] {
    char buf[1024];
    vkalex_last_error(ctx, buf, sizeof buf);
    return std::string(buf);
  };
  vkalex_net* net = nullptr;
  REQUIRE(vkalex_net_create(ctx, path.c_str(), nullptr, &net) == VKALEX_OK);
  vkalex_net_info info{};
  REQUIRE(vkalex_net_get_info(net, &info) == VKALEX_OK);
  CHECK(info.classes == 10);
  char name[64];
  REQUIRE(vkalex_net_class_name(net, 9, name, sizeof name, nullptr) == VKALEX_OK);
  CHECK(std::string(name) == "Ankle boot");  // the sidecar's labels
  // The sidecar's preprocessing and the ONNX weights: the description's probabilities.
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  Net ref(test::gpu(), m);
  ref.load_weights(SafeTensors(m.weights_path));
  const Image img = load_image(std::string(VKALEX_SAMPLE_DATA_DIR) + "/fashion-test-0000-ankle-boot.png", 3);
  std::vector<float> got(10);
  REQUIRE(vkalex_classify_rgb8(net, img.pixels.data(), img.pixels.size(), img.width, img.height, 1, got.data(), got.size()) ==
          VKALEX_OK);
  const ForwardResult want = ref.forward(preprocess_image(load_image(std::string(VKALEX_SAMPLE_DATA_DIR) + "/fashion-test-0000-ankle-boot.png", 1),
                                                          m.preprocess, 1, m.height, m.width));
  CHECK(relative_l2(got, want.probabilities) <= 1e-5);
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);
  // Weights beside an ONNX model, and a model that cannot run: a status and the reason.
  vkalex_net* other = nullptr;
  CHECK(vkalex_net_create(ctx, path.c_str(), m.weights_path.c_str(), &other) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(), Catch::Contains("weights_path must be null for an ONNX model"));
  onnx::ModelProto proto;
  {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(proto.ParseFromIstream(&f));
  }
  proto.mutable_graph()->mutable_node(1)->set_op_type("Elu");
  const std::string bad = tmp / "elu.onnx";
  {
    std::ofstream f(bad, std::ios::binary);
    REQUIRE(proto.SerializeToOstream(&f));
  }
  CHECK(vkalex_net_create(ctx, bad.c_str(), nullptr, &other) == VKALEX_ERROR_FILE);
  CHECK_THAT(last_error(), Catch::Contains("elu.onnx") && Catch::Contains("the op Elu is not supported"));
  CHECK(other == nullptr);
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
}

TEST_CASE("bench times an ONNX model's layers, verified against the CPU reference", "[onnx][bench]") {
  const test::TempDir tmp;
  const std::string path = write_fashion_onnx(tmp, Style{13, false, false, false, false, false});
  const std::string upper = tmp / "FASHION.ONNX";  // the extension in any case
  fs::copy_file(path, upper);
  const auto [status, out] = test::run_command(std::string(VKALEX_BENCH_EXE) + " --model " + upper +
                                                   " --batch 2 --repeat 1 --warmup 0 --seed 5",
                                               true);
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("model FASHION, forward"));
  CHECK_THAT(out, Catch::Contains("against the CPU reference") && Catch::Contains("(ok)"));
  CHECK_THAT(out, Catch::Contains("conv1") && Catch::Contains("fc8"));
  const auto [bad, bout] = test::run_command(std::string(VKALEX_BENCH_EXE) + " --model " + (tmp / "missing.onnx"), true);
  CHECK(bad == 1);
  CHECK_THAT(bout, Catch::Contains("missing.onnx: cannot open the ONNX model"));
}

namespace {

// A small graph from "x" [batch, 4] to "y" [batch, features]: nodes given as (op, inputs, outputs, INT
// attributes), FLOAT initializers by name.
std::string write_graph(const test::TempDir& tmp, const char* file,
                        const std::vector<std::tuple<std::string, std::vector<std::string>, std::vector<std::string>,
                                                     std::map<std::string, int64_t>>>& nodes,
                        const std::map<std::string, HostTensor>& initializers) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name(file);
  for (const char* name : {"x", "y"}) {
    auto* v = std::string(name) == "x" ? g->add_input() : g->add_output();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("batch");
    if (std::string(name) == "x") {
      tt->mutable_shape()->add_dim()->set_dim_value(4);
    } else {
      tt->mutable_shape()->add_dim()->set_dim_param("features");
    }
  }
  for (const auto& [name, t] : initializers) {
    auto* i = g->add_initializer();
    i->set_name(name);
    i->set_data_type(onnx::TensorProto::FLOAT);
    for (uint32_t d : t.shape.dims()) i->add_dims(d);
    for (float v : t.data) i->add_float_data(v);
  }
  for (const auto& [op, ins, outs, ints] : nodes) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(outs[0] + "_node");
    for (const auto& i : ins) n->add_input(i);
    for (const auto& o : outs) n->add_output(o);
    for (const auto& [name, value] : ints) {
      auto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(value);
    }
  }
  const std::string path = (tmp.path / file).string();
  std::ofstream f(path, std::ios::binary);
  REQUIRE(m.SerializeToOstream(&f));
  return path;
}

}  // namespace

TEST_CASE("ONNX graphs that branch where vkalex cannot follow are refused, and dead branches left out", "[onnx][branch]") {
  const test::TempDir tmp;
  const std::map<std::string, HostTensor> w{{"w", HostTensor(Shape{4, 3}, random_uniform(12, test::seed(), 1.0f))},
                                            {"b", HostTensor(Shape{3}, random_uniform(3, test::seed() + 1, 1.0f))}};
  // The MatMul's output without the bias read besides the Add: the bias goes into the linear
  // layer, so that output no longer exists.
  const std::string without = write_graph(
      tmp, "without.onnx", {{"MatMul", {"x", "w"}, {"m"}, {}}, {"Add", {"m", "b"}, {"a"}, {}}, {"Concat", {"m", "a"}, {"y"}, {{"axis", 1}}}}, w);
  CHECK_THROWS_WITH(load_onnx(without), Catch::Contains("reads \"m\", the output of m_node before the bias an Add gives it"));
  const std::string alias = write_graph(tmp, "alias.onnx",
                                        {{"MatMul", {"x", "w"}, {"m"}, {}}, {"Identity", {"m"}, {"i"}, {}}, {"Add", {"m", "b"}, {"a"}, {}},
                                         {"Concat", {"i", "a"}, {"y"}, {{"axis", 1}}}},
                                        w);
  CHECK_THROWS_WITH(load_onnx(alias), Catch::Contains("reads \"i\", the output of m_node before the bias"));
  // With the biased output alone read twice, it runs: y = [xW + b, relu(xW + b)].
  const std::string fine = write_graph(tmp, "fine.onnx",
                                       {{"MatMul", {"x", "w"}, {"m"}, {}}, {"Add", {"m", "b"}, {"a"}, {}}, {"Relu", {"a"}, {"r"}, {}},
                                        {"Concat", {"a", "r"}, {"y"}, {{"axis", 1}}}},
                                       w);
  const OnnxModel ok = load_onnx(fine);
  Net net(test::gpu(), ok.model);
  net.set_parameters(ok.parameters);
  const HostTensor x(Shape{2, 4}, random_uniform(8, test::seed() + 2, 1.0f));
  const ForwardResult r = net.forward(HostTensor(ok.model.input_shape(2), x.data));
  REQUIRE(r.logits.size() == 12);
  for (uint32_t i = 0; i < 2; ++i) {
    for (uint32_t o = 0; o < 3; ++o) {
      double a = w.at("b").data[o];
      for (uint32_t k = 0; k < 4; ++k) a += double(x.data[i * 4 + k]) * w.at("w").data[k * 3 + o];
      CHECK(r.logits[i * 6 + o] == Approx(a).margin(1e-6));
      CHECK(r.logits[i * 6 + 3 + o] == Approx(std::max(a, 0.0)).margin(1e-6));
    }
  }
  // A softmax read by other layers: only a final one is supported.
  const std::string mid = write_graph(tmp, "mid.onnx", {{"Softmax", {"x"}, {"s"}, {{"axis", 1}}}, {"Concat", {"s", "x"}, {"y"}, {{"axis", 1}}}}, {});
  CHECK_THROWS_WITH(load_onnx(mid), Catch::Contains("the softmax s_node is read by other layers"));
  // A dead branch of two nodes (a Relu only an Elu reads, and nothing reads the Elu): left out.
  const std::string dead = write_graph(tmp, "dead.onnx",
                                       {{"Relu", {"x"}, {"r"}, {}}, {"Elu", {"r"}, {"e"}, {}}, {"MatMul", {"x", "w"}, {"y"}, {}}}, w);
  const OnnxModel pruned = load_onnx(dead);
  REQUIRE(pruned.nodes.size() == 3);
  CHECK_THAT(pruned.nodes[0].lowered, Catch::Contains("nothing"));
  CHECK_THAT(pruned.nodes[1].lowered, Catch::Contains("nothing"));
  CHECK(pruned.model.layers.size() == 3);  // input_flatten, the MatMul's linear layer, output_softmax
}
