#include "same_training.hpp"

#include <algorithm>

#include "common.hpp"

using namespace vkalex;

namespace test {

double worst_difference(const TrainingRun& a, const TrainingRun& b) {
  REQUIRE(a.parameters.size() == b.parameters.size());
  double worst = 0;
  for (const auto& [name, t] : a.parameters) {
    worst = std::max({worst, relative_l2(b.parameters.at(name).data, t.data),
                      relative_l2(b.momentum.at(name).data, a.momentum.at(name).data)});
  }
  return worst;
}

double require_same_training(const TrainingSteps& steps, const TrainingRun& a, const TrainingRun& b) {
  const double worst = worst_difference(a, b);
  INFO(b.name << " against " << a.name << ": worst relative L2 " << worst << " (seed " << seed() << ")");
  if (worst <= 1e-5) return worst;
  size_t followed_total = 0;
  for (const TrainingRun* run : {&a, &b}) {
    REQUIRE(run->forwards.size() == steps.images.size());
    auto w = steps.start;
    std::map<std::string, HostTensor> v;
    for (const auto& [name, t] : steps.start) v.emplace(name, HostTensor(t.shape));
    for (size_t s = 0; s < steps.images.size(); ++s) {
      size_t followed = 0;
      train_step_cpu(steps.model, w, v, steps.images[s], steps.labels[s], steps.params[s], &run->forwards[s], &followed);
      followed_total += followed;
    }
    for (const auto& [name, t] : w) {
      const double ew = relative_l2(run->parameters.at(name).data, t.data);
      const double ev = relative_l2(run->momentum.at(name).data, v.at(name).data);
      INFO(run->name << " against the CPU reference following its ties: " << name << " weights " << ew
                     << ", momentum " << ev);
      REQUIRE(ew <= 1e-4);
      REQUIRE(ev <= 1e-4);
    }
  }
  WARN(b.name << " and " << a.name << " differ by " << worst << " after near ties decided apart ("
              << followed_total << " followed); each matches its reference (seed " << seed() << ")");
  REQUIRE(followed_total > 0);
  return worst;
}

}  // namespace test
