// ONNX models, the ecosystem's interchange format, lowered into a model description and its
// parameters (then run by Net like any description). Read with the ONNX project's own protobuf
// classes (Debian's libonnx-dev); opsets 7 to 17 of the default domain.
//
// What runs: the ops AlexNet-family models use, each in its ONNX meaning, in graphs that may
// branch (Split, Concat) from one input to one output (README, "ONNX models"). Anything else is refused before any GPU work by load_onnx, naming the node,
// its op and the attribute or value; inspect_onnx records the refusals instead (for `info`).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vkalex/cpu.hpp"
#include "vkalex/model.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// The ONNX opsets of the default domain ("" or "ai.onnx") a model may import: 7 to 17, and 6
// (ONNX's pytorch-converted tests), with its Gemm "broadcast", Dropout "is_test" and Add
// "broadcast"/"axis" attributes.
inline constexpr int64_t kMinOnnxOpset = 6, kMaxOnnxOpset = 17;
// The largest ONNX file read (the 2012 AlexNet is 244 MB).
inline constexpr uint64_t kMaxOnnxFileBytes = 2000ull << 20;

// One node of the graph: what it became in the description, or why it cannot run.
struct OnnxNode {
  std::string name;     // the node's name, else "#<position>"
  std::string op_type;  // "Conv"
  std::vector<std::string> inputs, outputs;
  std::string lowered;  // "conv2d conv1", "bias of fc6", "constant", "identity"
  std::string refused;  // empty where the node can run
};

struct OnnxOptions {
  // The images' preprocessing, which ONNX files do not carry (classify: flags or a sidecar
  // JSON); the default scales to [0, 1] with mean 0 and std 1 at the model's input size.
  bool has_preprocess = false;
  Preprocess preprocess;
  std::string name;  // the description's name; default: the file's name without ".onnx"
};

struct OnnxModel {
  // The lowered description (ends in a softmax: the graph's own, else one added after the
  // graph's output) and its parameters: the initializers, in the engine's layouts (a Gemm's
  // or MatMul's weight as [out, in], alpha and beta multiplied in).
  ModelDesc model;
  std::map<std::string, HostTensor> parameters;
  int64_t ir_version = 0, opset = 0;
  std::string producer;         // "pytorch 1.13.1"
  std::string input, output;    // the graph's input (the images) and output
  std::vector<int64_t> input_dims, output_dims;  // as the graph declares them (-1: symbolic)
  // Whether the graph's output is the model's softmax (Net's probabilities), else the layer
  // before the added softmax (Net's logits, flattened to [batch, features]).
  bool output_is_softmax = false;
  std::vector<OnnxNode> nodes;  // in the graph's order
  // Why the graph as a whole cannot run (its inputs or outputs), empty where it can.
  std::string graph_refused;

  // The first refusal's message ("node conv1 (Conv): ..."), empty where every node runs.
  std::string refusal() const;
};

// Reads and lowers the ONNX file at `path`. Throws Error naming the file for a file that is not
// a well-formed ONNX model (truncated, wrong types, shapes that do not agree, sizes beyond
// limits) and for the first node that cannot run.
OnnxModel load_onnx(const std::string& path, const OnnxOptions& options = {});
// The same, but nodes (or a graph) that cannot run are recorded in OnnxNode::refused
// (graph_refused), and the description left empty, instead of thrown; a malformed file still
// throws.
OnnxModel inspect_onnx(const std::string& path, const OnnxOptions& options = {});

// Whether `path` names an ONNX model: its extension is ".onnx", in any case. (classify,
// bench and the C API's vkalex_net_create take such a path as an ONNX model, others as a
// description.)
bool is_onnx_path(const std::string& path);

// Whether this build reads ONNX files (built with libonnx-dev); without it both functions
// throw Error saying so.
bool onnx_available();

}  // namespace vkalex
VKALEX_PUBLIC_END
