// The paper's model parallelism: one network spread over two Vulkan devices, each holding its
// half of every layer's kernels and computing its half of every layer's output channels,
// exchanging activations (and in training gradients) through host-visible staging only where
// a layer reads channels the other device computed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/cpu.hpp"
#include "vkalex/model.hpp"
#include "vkalex/net.hpp"
#include "vkalex/plan.hpp"
#include "vkalex/trainer.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// Where a split pass exchanges data: before which op, and how many bytes each device receives
// from the other there (for the whole batch).
struct SplitExchange {
  std::string before;          // the plan op that reads what is exchanged ("loss backward", ...)
  uint64_t bytes_to[2] = {0, 0};
};

// Threads: as a Net, on both devices at once (one thread at a time; nothing else on either
// device meanwhile, see Context).
//
// How it runs (split_plan in vkalex/plan.hpp decides what runs where): each device records its
// share of the pass into one command buffer per stretch between two exchanges. At an exchange,
// the device copies the channels the other needs into a host-visible staging buffer and
// signals a timeline semaphore; the host waits for it, copies the staging buffer into the
// other device's, and signals that device's timeline semaphore, which its next command buffer
// waits for. Every command buffer is submitted at once, so each device runs ahead until it
// needs the other's data, and the two compute their halves at the same time.
//
// For AlexNet (groups 2 in conv2, conv4, conv5) the exchanges are the paper's (the input of
// conv3 and of each fully connected layer, and the logits to device 0 for the softmax) plus a
// few channels around the middle of each LRN: the description normalises across all of a
// layer's channels, where the paper's GPUs normalised their own halves apart.
class SplitNet {
 public:
  // `first` and `second` must be handles on different devices (two GPUs, two drivers, or one
  // GPU opened twice as two Contexts), each with timeline semaphores (Vulkan 1.2; see
  // DeviceInfo::timeline_semaphore). Throws Error otherwise, or where the model does not split
  // (split_plan).
  SplitNet(Context& first, Context& second, ModelDesc model);
  ~SplitNet();
  SplitNet(SplitNet&&) noexcept;
  SplitNet& operator=(SplitNet&&) noexcept;

  const ModelDesc& model() const { return model_; }
  Context& context(int device);

  // Every parameter, whole, as Net::set_parameters takes them: each device gets its rows.
  void set_parameters(const std::map<std::string, HostTensor>& parameters);
  // The parameters, whole, put together from both devices' halves.
  std::map<std::string, HostTensor> parameters() const;

  // Allocates both devices' activations for `batch` images and records the pass; forward()
  // does this itself when the batch size changes.
  void prepare(uint32_t batch);
  uint32_t batch() const { return batch_; }
  const SplitPlan& plan() const;
  // The exchanges of the forward pass recorded (valid after prepare() or forward()).
  const std::vector<SplitExchange>& exchanges() const;

  // The forward pass on `input` ([batch, C, H, W], uploaded to both devices): logits and
  // probabilities as device 0 computes them.
  ForwardResult forward(const HostTensor& input);

 private:
  friend class SplitTrainer;
  struct State;
  ModelDesc model_;
  std::unique_ptr<State> state_;
  uint32_t batch_ = 0;
};

// Training a SplitNet: the Trainer's SGD step (forward with dropout, loss, backward, update)
// with each device updating its own rows of the parameters. Besides the forward pass's
// exchanges, the backward pass sends device 1 its half of the logits' gradient, sends each
// LRN's gradient across the middle, and where a layer read the other device's channels
// (conv3, the fully connected layers) adds the two devices' partial gradients of that input
// (each device gets the sum over its own channels). Dropout draws the single-device net's
// masks. The SplitNet must outlive its SplitTrainer.
class SplitTrainer {
 public:
  // Allocates gradients, momentum (zero) and training activations for `batch` images on both
  // devices, and records the step.
  SplitTrainer(SplitNet& net, uint32_t batch);
  ~SplitTrainer();

  // One step on images [batch, C, H, W] (uploaded to both devices) with labels (each below
  // the class count, checked here); returns the loss and correct count as device 0 computed
  // them.
  StepStats step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params);

  uint32_t batch() const { return batch_; }
  // The momentum, whole, put together from both devices' rows.
  std::map<std::string, HostTensor> momentum() const;
  // The exchanges of the recorded step.
  const std::vector<SplitExchange>& exchanges() const;
  // The last step's forward pass, each layer's output and each max pool's argmax put together
  // whole from both devices (as Trainer::last_forward gives them), for checking a step
  // against the CPU reference (train_step_cpu's `follow`).
  ForwardRecord last_forward() const;

 private:
  struct State;
  uint32_t batch_;
  std::unique_ptr<State> state_;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
