// Internal: what a net spread over two devices records and submits besides ops (net/split.cpp):
// channel-range copies, timeline semaphores, submissions that wait for and signal them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "vk/device.hpp"
#include "vkalex/recorder.hpp"

namespace vkalex::detail {

// Records a copy of channels src_first to src_first + count - 1 of `src` into channels from
// dst_first on of `dst`: tensors [N, C, ...] of the same N, type and elements per channel (C
// may differ). One copy region per image, or one where the ranges are contiguous in both.
void copy_channels(Recorder& rec, const Tensor& src, uint32_t src_first, const Tensor& dst, uint32_t dst_first,
                   uint32_t count);

// Records a barrier making the host's writes that happened before this submission's
// semaphore wait (a timeline value the host signals with vkSignalSemaphore) visible to the
// commands after it: a host-signalled semaphore orders execution, but only a memory
// dependency with VK_ACCESS_HOST_WRITE_BIT in its source carries the host's writes over.
void record_host_writes_barrier(Recorder& rec);

// A timeline semaphore of one device (Vulkan 1.2; DeviceInfo::timeline_semaphore).
class Timeline {
 public:
  explicit Timeline(std::shared_ptr<DeviceImpl> device);
  ~Timeline();
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;
  VkSemaphore handle() const { return semaphore_; }
  // Waits on the host until the value is at least `value`. Throws Error on a device loss.
  void wait(uint64_t value) const;
  // Sets the value from the host.
  void signal(uint64_t value) const;

 private:
  std::shared_ptr<DeviceImpl> device_;
  VkSemaphore semaphore_ = VK_NULL_HANDLE;
};

struct TimelinePoint {
  const Timeline* timeline = nullptr;
  uint64_t value = 0;
};

// Submits the recording (as Recorder::submit) after `wait` is reached (all commands wait), and
// signals `signal` when it has finished.
void submit_timeline(Recorder& rec, std::optional<TimelinePoint> wait, std::optional<TimelinePoint> signal);

}  // namespace vkalex::detail
