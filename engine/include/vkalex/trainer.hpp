// Training a Net: one SGD step (forward with dropout, loss, backward, update) recorded once
// into one command buffer and replayed every step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vkalex/net.hpp"
#include "vkalex/ops.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

struct StepStats {
  double loss = 0;       // mean cross-entropy of the batch (of this worker's shard)
  uint32_t correct = 0;  // images whose label had the largest logit
  uint32_t batch = 0;
  // Data parallelism: how long the step waited for the GradientReducer after the device had
  // finished the backward pass (the part of the exchange not hidden behind it), in ms.
  double reduce_wait_ms = 0;
};

// Data parallelism: workers (processes, machines) each train the same net on their shard of
// every global batch and sum their gradients before the update, so every worker applies the
// same update. The Trainer hands a GradientReducer each bucket of its gradients as soon as
// the device has computed it, while the device goes on with the backward pass of the earlier
// layers. samples/train sums them over MPI (samples/train/mpi_reducer.hpp).
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  // Starts summing `gradients`, this worker's bucket `bucket`, with every other worker's, in
  // place. Buckets come in order 0, 1, ..., the same count and sizes on every worker (they
  // depend on the model and TrainerOptions::bucket_bytes only). Nothing touches `gradients`
  // until finish(bucket) has returned.
  virtual void start(size_t bucket, std::span<float> gradients) = 0;
  // Called often while the step waits for the device: a chance to move started sums on.
  virtual void progress() {}
  // Returns once the sum of bucket `bucket` is in its `gradients`.
  virtual void finish(size_t bucket) = 0;
};

struct TrainerOptions {
  RecorderOptions recorder;
  // Data parallelism (0: off): this worker's `batch` images are images first_image to
  // first_image + batch - 1 of a global batch of global_batch. The loss's gradient is then the
  // mean over the global batch (the workers' gradients sum to the global batch's gradient),
  // and dropout draws each image's mask by its index in the global batch: the workers together
  // compute what one worker given the whole global batch would.
  uint32_t global_batch = 0;
  uint32_t first_image = 0;
  // > 0: the backward pass is submitted in buckets of gradients of at least this many bytes
  // (the last layers' first), and step() hands each bucket to a GradientReducer as soon as
  // the device has finished it. 0: the whole step is one submission, without a reducer.
  uint64_t bucket_bytes = 0;
};

// One bucket of gradients as a GradientReducer gets it: the parameters whose gradients it
// holds, in backward order, and its size (each parameter's gradient at a 256-byte aligned
// offset; the gaps are zero).
struct GradientBucket {
  std::vector<std::string> parameters;
  uint64_t floats = 0;
};

// Parameter initialisation, seeded. Paper: weights N(0, 0.01), biases 1 in the layers whose
// description sets "init_bias": 1 (conv2, conv4, conv5, fc6, fc7 in AlexNet), else 0.
// He: weights N(0, 2 / fan_in), biases 0.
enum class Init { Paper, He };
std::map<std::string, HostTensor> initial_parameters(const ModelDesc& model, Init init, uint64_t seed);

// The forward pass of a training step as the device computed it: each layer's output by layer
// name (a ReLU fused into the layer before counts as that layer's output too) and each max
// pool's argmax (flat indices into its input).
struct ForwardRecord {
  std::map<std::string, HostTensor> outputs;
  std::map<std::string, std::vector<uint32_t>> argmax;
};

// Threads: as a Net (one thread at a time per device, see Context).
class Trainer {
 public:
  // Allocates gradients, momentum (zero) and training activations for `batch` images and
  // records the step. The step updates the net's parameters in place, so net.forward()
  // evaluates the trained weights. The Trainer shares the device and the net's parameter
  // memory: the Net and any Context may be destroyed (or moved) first.
  // Throws Error for a net with fp16 storage (NetOptions::storage): training keeps f32.
  Trainer(Net& net, uint32_t batch, const RecorderOptions& options = {});
  // The same; throws Error unless `context` is a handle on the net's device.
  Trainer(Context& context, Net& net, uint32_t batch, const RecorderOptions& options = {});
  // With data parallelism or bucketed gradients (see TrainerOptions). Throws Error where
  // first_image + batch passes global_batch.
  Trainer(Net& net, uint32_t batch, const TrainerOptions& options);
  ~Trainer();

  // One step on images [batch, C, H, W] with labels (each < classes, checked here): one
  // upload of images, labels and `params`, one submit, one read-back of loss and correct count.
  StepStats step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params);
  // The same, summing the gradients with `reducer` before the update (TrainerOptions::
  // bucket_bytes > 0; a null reducer leaves them as this worker computed them). An exception
  // from the reducer leaves the parameters as they were before the step.
  StepStats step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params,
                 GradientReducer* reducer);
  // The buckets step() hands to a reducer (empty without TrainerOptions::bucket_bytes).
  std::vector<GradientBucket> buckets() const;

  uint32_t batch() const { return batch_; }
  // The plan the recorded step walks.
  const Plan& plan() const;
  std::map<std::string, HostTensor> momentum() const;
  void set_momentum(const std::map<std::string, HostTensor>& momentum);
  // How many times the step has been recorded (once per Trainer: every step replays it).
  size_t record_count() const { return records_; }
  // Downloads the last step's forward pass (slow: one download per layer), for checking a
  // step against the CPU reference and for looking at activations.
  ForwardRecord last_forward() const;
  // Per-dispatch GPU times of the last step (with RecorderOptions::timestamps).
  std::vector<DispatchTiming> timings() const;
  // How many steps were submitted.
  size_t submit_count() const { return submits_; }

 private:
  struct State;
  mutable Context context_;  // downloads in const members
  ModelDesc model_;
  uint32_t batch_;
  std::unique_ptr<State> state_;
  size_t submits_ = 0;
  size_t records_ = 0;
};

// Checkpoints: the net's parameters and the trainer's momentum (as "momentum/<name>") in one
// safetensors file, written whole or not at all, with metadata "format" ("vkalex checkpoint 1"),
// "model" (the model's name) and `metadata` besides.
void save_checkpoint(const std::string& path, const Net& net, const Trainer& trainer,
                     std::map<std::string, std::string> metadata = {});
// Loads a checkpoint into `net` and `trainer` after checking its format, its model and every
// tensor (nothing changes where one is wrong); returns its metadata. Throws Error naming the
// file and the problem.
std::map<std::string, std::string> load_checkpoint(const std::string& path, Net& net, Trainer& trainer);

// The same step on the CPU reference (for checking): updates `parameters` and `momentum`.
//
// A ReLU whose input is within rounding of 0, or a max pool whose two largest values are
// within rounding of each other, may decide differently in the device's fp32 and here, and
// one such decision moves a whole gradient element elsewhere. With `follow` (the device's
// forward of the same step), the reference takes the device's decision at exactly those
// near ties (|input| or the gap at most 1e-4 of the layer input's RMS) and counts them in
// *followed; every other decision stays its own, so a wrong kernel still shows.
StepStats train_step_cpu(const ModelDesc& model, std::map<std::string, HostTensor>& parameters,
                         std::map<std::string, HostTensor>& momentum, const HostTensor& images,
                         const std::vector<uint32_t>& labels, const StepParams& params,
                         const ForwardRecord* follow = nullptr, size_t* followed = nullptr);

}  // namespace vkalex
VKALEX_PUBLIC_END
