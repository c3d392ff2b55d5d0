// Training a Net: one SGD step (forward with dropout, loss, backward, update) recorded once
// into one command buffer and replayed every step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vkalex/net.hpp"
#include "vkalex/ops.hpp"

namespace vkalex {

struct StepStats {
  double loss = 0;       // mean cross-entropy of the batch
  uint32_t correct = 0;  // images whose label had the largest logit
  uint32_t batch = 0;
};

// Parameter initialisation, seeded. Paper: weights N(0, 0.01), biases 1 in the layers whose
// description sets "init_bias": 1 (conv2, conv4, conv5, fc6, fc7 in AlexNet), else 0.
// He: weights N(0, 2 / fan_in), biases 0.
enum class Init { Paper, He };
std::map<std::string, HostTensor> initial_parameters(const ModelDesc& model, Init init, uint64_t seed);

class Trainer {
 public:
  // Allocates gradients, momentum (zero) and training activations for `batch` images and
  // records the step. `net` and `context` must outlive the Trainer; the step updates the
  // net's parameters in place, so net.forward() evaluates the trained weights.
  Trainer(Context& context, Net& net, uint32_t batch, const RecorderOptions& options = {});
  ~Trainer();

  // One step on images [batch, C, H, W] with labels (each < classes, checked here): one
  // upload of images, labels and `params`, one submit, one read-back of loss and correct count.
  StepStats step(const HostTensor& images, const std::vector<uint32_t>& labels, const StepParams& params);

  uint32_t batch() const { return batch_; }
  std::map<std::string, HostTensor> momentum() const;
  void set_momentum(const std::map<std::string, HostTensor>& momentum);
  size_t record_count() const { return 1; }
  // Per-dispatch GPU times of the last step (with RecorderOptions::timestamps).
  std::vector<DispatchTiming> timings() const;
  size_t submit_count() const { return submits_; }

 private:
  struct State;
  Context* context_;
  Net* net_;
  uint32_t batch_;
  std::unique_ptr<State> state_;
  size_t submits_ = 0;
};

// The same step on the CPU reference (for checking): updates `parameters` and `momentum`.
StepStats train_step_cpu(const ModelDesc& model, std::map<std::string, HostTensor>& parameters,
                         std::map<std::string, HostTensor>& momentum, const HostTensor& images,
                         const std::vector<uint32_t>& labels, const StepParams& params);

}  // namespace vkalex
