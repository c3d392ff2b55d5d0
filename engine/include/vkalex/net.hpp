// A network built from a model description on a Context: its parameters, its activations
// for one batch size, and its forward pass recorded once and replayed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/model.hpp"
#include "vkalex/plan.hpp"
#include "vkalex/recorder.hpp"
#include "vkalex/safetensors.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// Random parameters for every tensor the model needs, seeded: weights uniform with He scale
// (variance 2 / fan_in), biases uniform in [-0.1, 0.1]. For tests and checks, not training.
std::map<std::string, HostTensor> random_parameters(const ModelDesc& model, uint64_t seed);

struct ForwardResult {
  uint32_t batch = 0, classes = 0;
  std::vector<float> logits;         // [batch, classes]
  std::vector<float> probabilities;  // [batch, classes]
  double gpu_ms = 0;                 // GPU time of the forward pass (0 when not measured)
};

// How a Net keeps its tensors on the device.
struct NetOptions {
  // DType::F32 (the default) or DType::F16: fp16 storage. Parameters, activations and the
  // output are then IEEE half in device memory (half the memory and bandwidth) while every
  // kernel computes in fp32; weights are rounded to half when loaded. Needs 16-bit storage
  // buffers (DeviceInfo::storage_buffer_16bit; lavapipe and most GPUs have them, SwiftShader
  // not) and is for inference: a Trainer refuses such a net. Accuracy: the whole alexnet2012
  // forward pass stays within a relative L2 error of 1e-2 of the fp32 CPU reference (tested).
  DType storage = DType::F32;
};

class Net {
 public:
  // Allocates the parameters on `context`, which must outlive the Net. Throws Error for a
  // storage type other than F32 and F16, and for F16 on a device without 16-bit storage.
  Net(Context& context, ModelDesc model, NetOptions options = {});
  ~Net();
  Net(Net&&) noexcept;
  Net& operator=(Net&&) noexcept;

  const ModelDesc& model() const { return model_; }
  const NetOptions& options() const { return options_; }

  // Loads every parameter from `weights`, converting F16/BF16 to float (and to half with fp16
  // storage). Throws Error naming
  // the tensor when one is missing or has the wrong shape (nothing is loaded then). Returns
  // the names of tensors in the file that the model does not use.
  std::vector<std::string> load_weights(const SafeTensors& weights);
  // The same from host tensors (all required; extra ones are an error).
  void set_parameters(const std::map<std::string, HostTensor>& parameters);
  // The parameters as they are on the device (as float; with fp16 storage, the half values).
  std::map<std::string, HostTensor> parameters() const;
  // The device tensor of one parameter (the trainer updates it in place).
  const Tensor& parameter_tensor(const std::string& name) const;

  // Allocates activations for `batch` images and records the forward pass; forward() does
  // this itself when the batch size changes.
  void prepare(uint32_t batch);
  uint32_t batch() const { return batch_; }
  // The plan the recorded forward pass walks (valid after prepare() or forward()).
  const Plan& plan() const;

  // Runs the recorded forward pass on `input` ([batch, C, H, W]): one upload, one submit,
  // one download of logits and probabilities together.
  ForwardResult forward(const HostTensor& input);
  // The same network on the CPU reference (slow; for checking). Its sums are in double; the
  // activations between ops are rounded to float as the GPU stores them, or kept in double
  // with `double_activations`. The two differ by what fp32 activations cost at this input:
  // next to nothing for most inputs, much where an output is a small difference of large
  // terms (a GPU result is then off by as much, and more, however right its kernels are).
  ForwardResult forward_cpu(const HostTensor& input, bool double_activations = false) const;

  // Timestamps around every dispatch of the forward pass (from the next recording on; they
  // serialise the dispatches, so leave them off but to measure), and the GPU time of each
  // dispatch of the last forward() with its plan op's name as scope.
  void set_timestamps(bool on);
  std::vector<DispatchTiming> timings() const;

  // How often the forward pass was recorded, and submitted, since construction.
  size_t record_count() const { return records_; }
  size_t submit_count() const { return submits_; }

 private:
  struct State;
  void check_input(const HostTensor& input) const;

  Context* context_;
  ModelDesc model_;
  NetOptions options_;
  std::unique_ptr<State> state_;
  uint32_t batch_ = 0;
  bool timestamps_ = false;
  size_t records_ = 0, submits_ = 0;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
