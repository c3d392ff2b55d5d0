// Records many dispatches into one command buffer, once, and replays it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vkalex/context.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

namespace detail {
struct RecorderImpl;
}

struct RecorderOptions {
  // Write a GPU timestamp around every dispatch (read with timings() after wait()).
  // Timed dispatches run one after another, so leave it off when not measuring.
  bool timestamps = false;
};

// GPU time of one recorded command, from the device's timestamps.
struct DispatchTiming {
  std::string label;  // the op that recorded it, e.g. "conv2d"
  double ms = 0;
  std::string scope;  // what set_scope() said when it was recorded, e.g. a layer's name
};

// Usage: begin(); record ops (vkalex::ops::*); end(); then run() as often as needed: each
// run replays the same command buffer (nothing is re-recorded). The recorder inserts a
// buffer memory barrier only where a command reads or overwrites memory that an earlier
// command of the same recording wrote (or overwrites what one read).
// Tensors recorded must stay alive as long as the recording is replayed.
// Threads: as its Context (one thread at a time per device).
class Recorder {
 public:
  explicit Recorder(Context& context, const RecorderOptions& options = {});
  ~Recorder();
  Recorder(Recorder&&) noexcept;
  Recorder& operator=(Recorder&&) noexcept;

  // Starts a new recording; the previous one is dropped (waits for it if it is running).
  void begin();
  // Finishes the recording; after this it can be submitted.
  void end();
  // Submits the recording. Returns at once; a second submit waits for the first.
  void submit();
  // Waits until the last submission has finished.
  void wait();
  // Waits at most `timeout_ns` for it; true when it has finished (or none is in flight).
  bool wait_for(uint64_t timeout_ns);
  // submit() then wait().
  void run();

  // Records filling every element of `tensor` with the bits of `value` (NaN included; for an
  // f16 tensor, value's half, and only an even element count at a 4-byte offset).
  void fill(const Tensor& tensor, float value);
  // Records a copy of all of `src` into `dst` (same byte size).
  void copy(const Tensor& src, const Tensor& dst);

  // Names the commands recorded from now on (until the next call) in timings(): Net and
  // Trainer set each plan op's name, so that times add up per layer.
  void set_scope(std::string scope);

  // Per-command GPU times of the last finished submission (timestamps option only).
  std::vector<DispatchTiming> timings() const;
  // GPU time of the whole last finished submission, in ms (0 where the device has no timestamps).
  double gpu_time_ms() const;
  size_t dispatch_count() const;
  size_t barrier_count() const;
  // How many times the current recording has been submitted (replays, not re-recordings).
  size_t submit_count() const;

  detail::RecorderImpl& impl() const { return *impl_; }

 private:
  std::unique_ptr<detail::RecorderImpl> impl_;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
