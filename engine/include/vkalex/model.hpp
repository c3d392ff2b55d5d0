// Model descriptions: a network's input, preprocessing and layers, read from JSON (model/*.json).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vkalex/image.hpp"
#include "vkalex/ops.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

enum class LayerType { Conv2d, Relu, Lrn, MaxPool, AvgPool, AdaptiveAvgPool, Flatten, Dropout, Linear, Softmax, Concat, Slice };
const char* layer_type_name(LayerType type);

struct LayerDesc {
  std::string name;  // from the description, else "<type><position>"
  LayerType type = LayerType::Relu;
  // The layers whose outputs this one reads, by name ("input": the model's input). Empty: the
  // layer before it (the model's input for the first layer). Only concat reads more than one.
  std::vector<std::string> inputs;
  // conv2d
  uint32_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  Conv2dParams conv;
  // lrn, max_pool and avg_pool (the same windows)
  LrnParams lrn;
  MaxPoolParams pool;
  bool count_include_pad = false;  // avg_pool: divide by the window's positions in the padded input
  // adaptive_avg_pool: output size (one that divides the input's: windows of equal size)
  uint32_t out_h = 0, out_w = 0;
  // dropout
  float dropout = 0.5f;
  // softmax: over groups of softmax_length features softmax_inner apart (ONNX's softmax along
  // an axis, see ops::softmax); 0 and 1: over all of an image's features, the usual case
  uint32_t softmax_length = 0, softmax_inner = 1;
  // linear
  uint32_t out_features = 0;
  // slice: channels slice_begin to slice_end - 1 of its input (features of a [N, F] input);
  // concat joins its inputs' channels (features) in the order of `inputs`
  uint32_t slice_begin = 0, slice_end = 0;
  // names of the parameter tensors (conv2d, linear); bias may be empty (no bias)
  std::string weight, bias;
  // initial value of the bias for the paper's initialisation ("init_bias", default 0)
  float init_bias = 0.0f;
};

struct ModelDesc {
  std::string name;
  std::string description;
  std::string source;  // the file it came from
  uint32_t channels = 3, height = 224, width = 224;  // input of one image
  Preprocess preprocess;
  uint32_t classes = 0;
  std::string labels_path;   // resolved against the description's folder; may be empty
  std::string weights_path;  // default weights, resolved likewise; may be empty
  std::vector<LayerDesc> layers;

  Shape input_shape(uint32_t batch) const { return Shape{batch, channels, height, width}; }
};

// The largest model description and class-names files read (only regular files are read).
constexpr uint64_t kMaxModelFileBytes = 16u << 20;
constexpr uint64_t kMaxLabelsFileBytes = 16u << 20;

// Reads and checks a description. Throws Error naming the file, the layer and the problem for
// an unknown layer type or field value, a missing field, or shapes that do not chain.
ModelDesc load_model(const std::string& path);
// The same from JSON text; `source` names it in errors, `base_dir` resolves relative paths.
ModelDesc parse_model(const std::string& json_text, const std::string& source,
                      const std::string& base_dir);

// Reads a preprocessing file (an ONNX model's sidecar, which the model itself cannot carry):
// {"preprocess": {...as in a description...}, "labels": "FILE"} (labels optional, resolved
// against the file's folder) into `model`. Throws Error naming the file and the field.
void load_preprocess_sidecar(const std::string& path, ModelDesc& model);

// What each layer reads: the positions of the layers named by its `inputs` (kModelInput: the
// model's input), or of the layer before it. Throws Error naming the layer where a name is
// unknown or not an earlier layer, where a layer is named "input" (the name of the model's
// input), where a layer other than concat reads more than one, and where a layer's output is
// read by none (every layer but the last must be read: the model's output is the last one's).
constexpr size_t kModelInput = SIZE_MAX;
std::vector<std::vector<size_t>> layer_inputs(const ModelDesc& model);

// Output shape of every layer for a batch (checked as parse_model checks).
std::vector<Shape> layer_shapes(const ModelDesc& model, uint32_t batch);

// The equal windows of adaptive average pooling of x [N, C, H, W] to out_h x out_w: kernel and
// stride H / out_h (likewise across). Throws Error unless the output divides the input.
MaxPoolParams adaptive_pool_window(const Shape& x, uint32_t out_h, uint32_t out_w);
Shape adaptive_pool_output_shape(const Shape& x, uint32_t out_h, uint32_t out_w);

// Every parameter tensor the model needs, in layer order: (name, shape).
std::vector<std::pair<std::string, Shape>> parameter_shapes(const ModelDesc& model);

// Class names, one per line; throws unless there are exactly `classes` non-empty lines.
std::vector<std::string> load_labels(const std::string& path, uint32_t classes);

}  // namespace vkalex
VKALEX_PUBLIC_END
