// ONNX import against ONNX's own backend node tests (Debian's libonnx-testdata): every test of
// the ops the importer knows runs through load_onnx and a Net, each of its data sets, within
// ONNX's tolerances; the tests it refuses are listed below with the reason.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <onnx/onnx_pb.h>
#include <sstream>

#include "common.hpp"
#include "vkalex/onnx.hpp"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

const fs::path kNodeTests = "/usr/share/libonnx-testdata/data/node";
const fs::path kPytorchTests = "/usr/share/libonnx-testdata/data/pytorch-converted";

onnx::TensorProto read_tensor_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  std::stringstream ss;
  ss << f.rdbuf();
  onnx::TensorProto t;
  REQUIRE(t.ParseFromString(ss.str()));
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
    onnx::ModelProto bound = proto;
    std::vector<onnx::TensorProto> given;
    for (size_t k = 0; tensors && k < inputs.size(); ++k) {
      const fs::path p = set.path() / ("input_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) break;
      given.push_back(read_tensor_file(p));
      if (k == 0) continue;
      onnx::TensorProto* t = bound.mutable_graph()->add_initializer();
      *t = given.back();
      t->set_name(inputs[k]);
    }
    const test::TempDir tmp;
    const std::string path = tmp / "model.onnx";
    {
      std::ofstream f(path, std::ios::binary);
      REQUIRE(bound.SerializeToOstream(&f));
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
    const HostTensor want = to_host(read_tensor_file(set.path() / "output_0.pb"));
    Net net(test::gpu(), model.model);
    net.set_parameters(model.parameters);
    const HostTensor images = to_host(given[0]);
    HostTensor x(model.model.input_shape(images.shape[0]), images.data);
    const ForwardResult got = net.forward(x);
    const std::vector<float>& out = model.output_is_softmax ? got.probabilities : got.logits;
    if (out.size() != want.data.size()) {
      r.failure = "output has " + std::to_string(out.size()) + " values, expected " + std::to_string(want.data.size());
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
      r.failure = std::to_string(bad) + " of " + std::to_string(out.size()) + " values beyond rtol 1e-3, atol 1e-7 (worst " +
                  std::to_string(worst) + " times the tolerance)";
    } else {
      ++r.passed;
    }
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
    {"test_averagepool_2d_ceil", "average pooling other than the identity"},
    {"test_averagepool_2d_default", "average pooling other than the identity"},
    {"test_averagepool_2d_pads", "average pooling other than the identity"},
    {"test_averagepool_2d_pads_count_include_pad", "average pooling other than the identity"},
    {"test_averagepool_2d_precomputed_pads", "average pooling other than the identity"},
    {"test_averagepool_2d_precomputed_pads_count_include_pad", "average pooling other than the identity"},
    {"test_averagepool_2d_precomputed_same_upper", "average pooling other than the identity"},
    {"test_averagepool_2d_precomputed_strides", "average pooling other than the identity"},
    {"test_averagepool_2d_same_lower", "average pooling other than the identity"},
    {"test_averagepool_2d_same_upper", "average pooling other than the identity"},
    {"test_averagepool_2d_strides", "average pooling other than the identity"},
    {"test_averagepool_3d_default", "only [batch, features], [batch, channels, length]"},
    {"test_concat_1d_axis_0", "only [batch, features], [batch, channels, length]"},
    {"test_concat_1d_axis_negative_1", "only [batch, features], [batch, channels, length]"},
    {"test_concat_2d_axis_0", "the op Concat is not supported"},
    {"test_concat_2d_axis_1", "the op Concat is not supported"},
    {"test_concat_2d_axis_negative_1", "the op Concat is not supported"},
    {"test_concat_2d_axis_negative_2", "the op Concat is not supported"},
    {"test_concat_3d_axis_0", "the op Concat is not supported"},
    {"test_concat_3d_axis_1", "the op Concat is not supported"},
    {"test_concat_3d_axis_2", "the op Concat is not supported"},
    {"test_concat_3d_axis_negative_1", "the op Concat is not supported"},
    {"test_concat_3d_axis_negative_2", "the op Concat is not supported"},
    {"test_concat_3d_axis_negative_3", "the op Concat is not supported"},
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
    {"test_maxpool_2d_ceil", "give a 2x2 output; only windows"},
    {"test_maxpool_2d_dilations", "dilations [2, 2] (only 1"},
    {"test_maxpool_2d_pads", "beyond half the kernel"},
    {"test_maxpool_2d_same_lower", "give a 32x32 output; only windows"},
    {"test_maxpool_2d_same_upper", "give a 32x32 output; only windows"},
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
    {"test_softmax_axis_1", "normalises part of an image"},
    {"test_softmax_axis_1_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_axis_2", "normalises part of an image"},
    {"test_softmax_axis_2_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_default_axis", "normalises part of an image"},
    {"test_softmax_default_axis_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_example_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_large_number_expanded", "the op ReduceMax is not supported"},
    {"test_softmax_negative_axis", "normalises part of an image"},
    {"test_softmax_negative_axis_expanded", "the op ReduceMax is not supported"},
    {"test_split_equal_parts_1d", "only [batch, features], [batch, channels, length]"},
    {"test_split_equal_parts_2d", "the op Split is not supported"},
    {"test_split_equal_parts_default_axis", "only [batch, features], [batch, channels, length]"},
    {"test_split_variable_parts_1d", "only [batch, features], [batch, channels, length]"},
    {"test_split_variable_parts_2d", "the op Split is not supported"},
    {"test_split_variable_parts_default_axis", "only [batch, features], [batch, channels, length]"},
    {"test_split_zero_size_splits", "empty tensors are not supported"},
    {"test_AvgPool2d", "average pooling other than the identity"},
    {"test_AvgPool2d_stride", "average pooling other than the identity"},
    {"test_Conv2d_dilated", "dilations [2, 2] (only 1"},
    {"test_Linear_no_bias", "the op Transpose is not supported"},
    {"test_MaxPool2d_stride_padding_dilation", "dilations [10, 10] (only 1"},
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
