// MPI for the samples: see mpi.hpp.
#include "mpi.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>

#include "cli.hpp"

#ifdef VKALEX_WITH_MPI
#include <mpi.h>
#endif

namespace vkalex_samples {

namespace {

// The number of processes an MPI launcher started (Open MPI's mpirun, Hydra, Slurm with PMI or
// PMIx), or 0 when none did.
int launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char* v = std::getenv(name);
    if (v && *v) return std::max(1, std::atoi(v));
  }
  return std::getenv("PMIX_RANK") ? 1 : 0;
}

#ifdef VKALEX_WITH_MPI
[[noreturn]] void abort_job(int status) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);  // MPI_Abort does not return; should it, this process still ends
}
#endif

}  // namespace

World::World(int* argc, char*** argv, [[maybe_unused]] const char* program) {
  const int launched = launcher_size();
  if (launched == 0) return;
#ifdef VKALEX_WITH_MPI
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  active_ = true;
  abort_hook() = abort_job;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
#else
  (void)argc;
  (void)argv;
  if (launched > 1) {
    die(program, "started by an MPI launcher with " + std::to_string(launched) +
                     " processes, but built without MPI (install libopenmpi-dev and rebuild)");
  }
#endif
}

World::~World() {
#ifdef VKALEX_WITH_MPI
  if (active_) {
    abort_hook() = nullptr;
    MPI_Finalize();
  }
#endif
}

std::optional<std::string> device_for_rank(const World& world) {
  if (!world.distributed() || world.local_size() < 2 || std::getenv("VKALEX_DEVICE")) return std::nullopt;
  std::vector<size_t> gpus;
  const auto devices = vkalex::list_devices();
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i].type == vkalex::DeviceType::DiscreteGpu) gpus.push_back(i);
  }
  if (gpus.size() < 2) return std::nullopt;
  return std::to_string(gpus[size_t(world.local_rank()) % gpus.size()]);
}

std::string binding_warning(const World& world, const vkalex::DeviceInfo& device) {
  if (!world.distributed() || device.type != vkalex::DeviceType::Cpu) return "";
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return "";
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int bound = CPU_COUNT(&set);
  if (online <= 0 || bound >= online) return "";
  return "this process is bound to " + std::to_string(bound) + " of " + std::to_string(online) + " cores and its device (" +
         device.name + ") runs on the CPU, which then shares them: start mpirun with --bind-to none";
}

std::string World::where() const {
  return active_ ? "rank " + std::to_string(rank_) + " of " + std::to_string(size_) : "";
}

void World::sum(std::span<double> values) const {
#ifdef VKALEX_WITH_MPI
  if (!active_) return;
  // Summed on rank 0 and sent from there: every process gets the same bits (an all-reduce
  // may add in another order on each, and a learning-rate decision must not differ).
  std::vector<double> total(values.size());
  MPI_Reduce(values.data(), total.data(), int(values.size()), MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank_ == 0) std::copy(total.begin(), total.end(), values.begin());
  MPI_Bcast(values.data(), int(values.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
#else
  (void)values;
#endif
}

bool World::same_everywhere(uint64_t value) const {
#ifdef VKALEX_WITH_MPI
  if (!active_) return true;
  unsigned long long v[2] = {value, ~value}, r[2] = {0, 0};
  // max(v) == v and max(~v) == ~v on every process only when every v is the same.
  MPI_Allreduce(v, r, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  const int mine = r[0] == v[0] && r[1] == v[1];
  int all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
#else
  (void)value;
  return true;
#endif
}

void World::broadcast(std::string& text) const {
#ifdef VKALEX_WITH_MPI
  if (!active_) return;
  unsigned long long n = text.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
  if (n > INT_MAX) die("mpi", "a broadcast of more than 2^31 bytes");
  text.resize(n);
  MPI_Bcast(text.data(), int(n), MPI_CHAR, 0, MPI_COMM_WORLD);
#else
  (void)text;
#endif
}

void World::broadcast(std::span<float> values) const {
#ifdef VKALEX_WITH_MPI
  if (!active_) return;
  for (size_t i = 0; i < values.size(); i += INT_MAX / 2) {
    const size_t n = std::min<size_t>(INT_MAX / 2, values.size() - i);
    MPI_Bcast(values.data() + i, int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
  }
#else
  (void)values;
#endif
}

void World::barrier() const {
#ifdef VKALEX_WITH_MPI
  if (active_) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

double World::time_allreduce(size_t floats, int repeats) const {
  std::vector<float> data(floats, 1.0f);
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    barrier();
    const auto t0 = std::chrono::steady_clock::now();
#ifdef VKALEX_WITH_MPI
    if (active_) {
      for (size_t j = 0; j < data.size(); j += INT_MAX / 2) {
        const size_t n = std::min<size_t>(INT_MAX / 2, data.size() - j);
        MPI_Allreduce(MPI_IN_PLACE, data.data() + j, int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      }
    }
#endif
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  // Every process reports the slowest's time of each repeat: the collective ends for all then.
#ifdef VKALEX_WITH_MPI
  if (active_) MPI_Allreduce(MPI_IN_PLACE, ms.data(), int(ms.size()), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#endif
  std::sort(ms.begin(), ms.end());
  return ms.empty() ? 0 : ms[ms.size() / 2];
}

MpiReducer::~MpiReducer() {
#ifdef VKALEX_WITH_MPI
  // A step that failed half-way: sums still running must end before their memory goes.
  for (void*& r : requests_) {
    if (!r) continue;
    auto* req = static_cast<MPI_Request*>(r);
    MPI_Wait(req, MPI_STATUS_IGNORE);
    delete req;
  }
#endif
}

void MpiReducer::start(size_t bucket, std::span<float> gradients) {
#ifdef VKALEX_WITH_MPI
  if (!world_.distributed()) return;
  if (gradients.size() > INT_MAX) die("mpi", "a gradient bucket of more than 2^31 floats");
  if (requests_.size() <= bucket) requests_.resize(bucket + 1, nullptr);
  auto* req = new MPI_Request;
  MPI_Iallreduce(MPI_IN_PLACE, gradients.data(), int(gradients.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, req);
  requests_[bucket] = req;
#else
  (void)bucket;
  (void)gradients;
#endif
}

void MpiReducer::progress() {
#ifdef VKALEX_WITH_MPI
  for (void* r : requests_) {
    if (!r) continue;
    int done = 0;
    MPI_Test(static_cast<MPI_Request*>(r), &done, MPI_STATUS_IGNORE);
  }
#endif
}

void MpiReducer::finish(size_t bucket) {
#ifdef VKALEX_WITH_MPI
  if (bucket >= requests_.size() || !requests_[bucket]) return;
  auto* req = static_cast<MPI_Request*>(requests_[bucket]);
  MPI_Wait(req, MPI_STATUS_IGNORE);
  delete req;
  requests_[bucket] = nullptr;
#else
  (void)bucket;
#endif
}

}  // namespace vkalex_samples
