// Two training runs of one model from the same start on the same batches that must agree: one
// device against a split over two, one worker against data-parallel workers. Their kernels see
// other shapes and round differently, so a near tie (a ReLU input within rounding of 0, two
// max-pool candidates within rounding of each other) can be decided apart in the two forward
// passes, and one decision moves a whole gradient element. The rule: every parameter and
// momentum tensor within 1e-5 (relative L2) of the other run's; beyond that only where such
// ties came out differently: each run must then be the CPU reference's steps taking that run's
// own decisions at exactly its near ties (train_step_cpu's `follow`, within 1e-4 as the
// single-device alexnet2012 step test asks), and there must be such ties.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "vkalex/vkalex.hpp"

namespace test {

struct TrainingRun {
  std::string name;
  std::map<std::string, vkalex::HostTensor> parameters, momentum;
  std::vector<vkalex::ForwardRecord> forwards;  // each step's, for the whole batch
};

struct TrainingSteps {
  const vkalex::ModelDesc& model;
  const std::map<std::string, vkalex::HostTensor>& start;
  const std::vector<vkalex::HostTensor>& images;
  const std::vector<std::vector<uint32_t>>& labels;
  const std::vector<vkalex::StepParams>& params;
};

// The worst relative L2 between the runs over all parameter and momentum tensors.
double worst_difference(const TrainingRun& a, const TrainingRun& b);

// Applies the rule above to `a` and `b` (a Catch failure where it does not hold); returns the
// worst difference between them.
double require_same_training(const TrainingSteps& steps, const TrainingRun& a, const TrainingRun& b);

}  // namespace test
