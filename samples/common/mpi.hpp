// MPI for the samples (train, bench): a World of the job's processes, and a GradientReducer that
// sums gradient buckets over it with non-blocking all-reduces. A program not started by an MPI
// launcher (mpirun, srun) is a World of one and never calls MPI; a build without MPI (no
// libopenmpi-dev) refuses to run under a launcher with more than one process.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vkalex/trainer.hpp"

namespace vkalex_samples {

class World {
 public:
  // Initialises MPI when this process was started by an MPI launcher. On an error, die()
  // ends every process of the job (MPI_Abort), not this one alone.
  World(int* argc, char*** argv, const char* program);
  ~World();  // MPI_Finalize
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  bool distributed() const { return active_; }  // started by an MPI launcher (even with one process)
  int rank() const { return rank_; }
  int size() const { return size_; }
  // This process's position among the job's processes on its machine (for picking a GPU).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // "rank R of N" in a distributed run, else "".
  std::string where() const;

  // Collectives (every process calls them in the same order; no-ops in a World of one).
  void sum(std::span<double> values) const;  // in place
  // Whether every process passed the same value.
  bool same_everywhere(uint64_t value) const;
  void broadcast(std::string& text) const;   // from rank 0
  void broadcast(std::span<float> values) const;
  void barrier() const;
  // The median time, in ms, of a blocking all-reduce (sum) of `floats` floats over the World.
  double time_allreduce(size_t floats, int repeats) const;

 private:
  bool active_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// The device a process of an MPI job uses unless told (--device, VKALEX_DEVICE): where a
// machine runs several of the job's processes and has several discrete GPUs, one GPU each in
// turn (by local rank); else the default choice (nullopt).
std::optional<std::string> device_for_rank(const World& world);

// Where the device runs on the CPU (lavapipe, SwiftShader) and mpirun bound this process to
// fewer cores than the machine has (its default for a few processes), the device's threads
// share those cores and run many times slower: a warning saying so and what to do, else "".
std::string binding_warning(const World& world, const vkalex::DeviceInfo& device);

// Sums each bucket over the World with MPI_Iallreduce as soon as the Trainer hands it over,
// moving the sums on (MPI_Testall) while the Trainer waits for the device.
class MpiReducer : public vkalex::GradientReducer {
 public:
  explicit MpiReducer(const World& world) : world_(world) {}
  ~MpiReducer() override;
  void start(size_t bucket, std::span<float> gradients) override;
  void progress() override;
  void finish(size_t bucket) override;

 private:
  const World& world_;
  std::vector<void*> requests_;  // MPI_Request, one per bucket in flight
};

}  // namespace vkalex_samples
