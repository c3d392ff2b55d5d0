// Internal: barriers. The hazard tracker decides where a recording needs one.
#pragma once

#include <vector>

#include "vk/vulkan.hpp"

namespace vkalex::detail {

// Makes every write of the command buffer so far visible to all later commands (in this or
// later submissions on the queue) and to the host. Ends every command buffer the engine
// submits, so that work in separate submissions never needs a semaphore to be ordered.
void record_completion_barrier(const DeviceTable& vk, VkCommandBuffer cmd);
// Makes every write before the command buffer (earlier submissions on the queue, the host's
// own commands included) visible to the compute and transfer commands after it. Opens every
// command buffer the engine records, so that a buffer the host wrote may be read.
void record_opening_barrier(const DeviceTable& vk, VkCommandBuffer cmd);

// One command's use of a byte range of a buffer.
struct BufferAccess {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0;
  VkDeviceSize size = 0;
  VkPipelineStageFlags stage = 0;  // the one stage the command runs in
  bool write = false;
};

// Tracks accesses within one recording and returns the barrier a new command needs:
// read-after-write and write-after-write need a buffer memory barrier on the written range;
// write-after-read needs only an execution dependency.
class HazardTracker {
 public:
  struct Barrier {
    VkPipelineStageFlags src_stages = 0;
    VkPipelineStageFlags dst_stages = 0;
    std::vector<VkBufferMemoryBarrier> buffers;
    bool needed() const { return src_stages != 0; }
  };

  void reset() { pending_.clear(); }
  // The barrier to record before a command making `accesses`; the command is then tracked.
  Barrier before(const std::vector<BufferAccess>& accesses);

 private:
  struct Pending {
    BufferAccess access;
    VkPipelineStageFlags ordered_before = 0;  // stages already ordered after this access
    VkPipelineStageFlags visible_to = 0;      // stages that already see this write
  };
  std::vector<Pending> pending_;
};

}  // namespace vkalex::detail
