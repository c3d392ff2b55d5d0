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

// Throws Error naming the first image whose logits or probabilities hold a NaN or an infinity:
// a net gone wrong (weights whose products overflow, a device fault), never a classification.
// The samples and the C API refuse such a result with it.
void require_finite(const ForwardResult& result);

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

// Threads: a Net is used by one thread at a time, and not at the same time as anything else on
// its device (see Context); it may move between threads. Different devices' Nets run in
// parallel.
class Net {
 public:
  // Allocates the parameters on `context`'s device, which the Net shares: the Context may be
  // destroyed first. Throws Error for a moved-from Context, a storage type other than F32 and
  // F16, and F16 on a device without 16-bit storage.
  Net(Context& context, ModelDesc model, NetOptions options = {});
  ~Net();
  Net(Net&&) noexcept;
  Net& operator=(Net&&) noexcept;

  // The Net's own handle on its device.
  Context& context() { return context_; }
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
  // Runs the recorded forward pass on what input() holds now (a host's buffer the host
  // filled, see set_input), and downloads the output.
  ForwardResult run();

  // Reads the input from `input` from now on, without a copy: a [N, C, H, W] tensor of the
  // net's storage type on its device, e.g. the host's own buffer (wrap_buffer in
  // vkalex/host_vulkan.hpp). N becomes the batch (prepare() with another batch is then an
  // error); forward() uploads into it. An empty Tensor goes back to an input of the Net's own.
  // Throws Error where the tensor does not fit (shape, type, device, a usage bit the pass
  // needs); the net keeps its previous input then.
  void set_input(const Tensor& input);
  // The tensors the recorded pass reads and writes (valid after prepare(), forward() or
  // set_input(); they change when the batch does): [N, C, H, W] input, [N, classes] outputs.
  // The host's commands may read the outputs (buffer_of in vkalex/host_vulkan.hpp).
  const Tensor& input() const;
  const Tensor& logits() const;
  const Tensor& probabilities() const;
  // The forward pass alone (no staging copies, no timestamps): the input() tensor to logits()
  // and probabilities(), for the host to record into its own command buffer with
  // record_commands (vkalex/host_vulkan.hpp), which documents the barriers around it and how
  // long it stays valid. Recorded on the first call after each prepare().
  const Recorder& host_recording();
  // Downloads logits and probabilities as the device holds them now: after the host's
  // submission of host_recording() has finished (the host waited on its fence).
  ForwardResult read_output();
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
  void record_pass(Recorder& rec);
  ForwardResult unpack(const std::vector<float>& output) const;

  mutable Context context_;  // downloads in const members
  ModelDesc model_;
  NetOptions options_;
  std::unique_ptr<State> state_;
  uint32_t batch_ = 0;
  bool timestamps_ = false;
  size_t records_ = 0, submits_ = 0;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
