#include "vk/sync.hpp"

namespace vkalex::detail {

namespace {

VkAccessFlags read_access(VkPipelineStageFlags stage) {
  return stage == VK_PIPELINE_STAGE_TRANSFER_BIT ? VK_ACCESS_TRANSFER_READ_BIT
                                                 : VK_ACCESS_SHADER_READ_BIT;
}
VkAccessFlags write_access(VkPipelineStageFlags stage) {
  return stage == VK_PIPELINE_STAGE_TRANSFER_BIT ? VK_ACCESS_TRANSFER_WRITE_BIT
                                                 : VK_ACCESS_SHADER_WRITE_BIT;
}

bool overlap(const BufferAccess& a, const BufferAccess& b) {
  return a.buffer == b.buffer && a.offset < b.offset + b.size && b.offset < a.offset + a.size;
}

}  // namespace

void record_completion_barrier(const DeviceTable& vk, VkCommandBuffer cmd) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                          VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                          VK_ACCESS_HOST_READ_BIT;
  vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                          VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                              VK_PIPELINE_STAGE_HOST_BIT,
                          0, 1, &barrier, 0, nullptr, 0, nullptr);
}

void record_opening_barrier(const DeviceTable& vk, VkCommandBuffer cmd) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                          VK_ACCESS_TRANSFER_WRITE_BIT;
  vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                          VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0,
                          nullptr, 0, nullptr);
}

HazardTracker::Barrier HazardTracker::before(const std::vector<BufferAccess>& accesses) {
  Barrier barrier;
  for (const auto& a : accesses) {
    for (auto& p : pending_) {
      if (!overlap(p.access, a)) continue;
      const bool raw_waw = p.access.write && !(p.visible_to & a.stage);
      const bool war = !p.access.write && a.write && !(p.ordered_before & a.stage);
      if (!raw_waw && !war) continue;
      barrier.src_stages |= p.access.stage;
      barrier.dst_stages |= a.stage;
      p.ordered_before |= a.stage;
      if (raw_waw) {
        p.visible_to |= a.stage;
        // The whole written range, since it is now marked visible to this stage.
        VkBufferMemoryBarrier b{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
        b.srcAccessMask = write_access(p.access.stage);
        b.dstAccessMask = read_access(a.stage) | write_access(a.stage);
        b.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
        b.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
        b.buffer = p.access.buffer;
        b.offset = p.access.offset;
        b.size = p.access.size;
        barrier.buffers.push_back(b);
      }
    }
  }
  // The barrier orders everything recorded so far in its source stages before the new
  // command's stages, so accesses it covered need no second barrier for those stages.
  for (auto& p : pending_) {
    if (p.access.stage & barrier.src_stages) p.ordered_before |= barrier.dst_stages;
  }
  for (const auto& a : accesses) pending_.push_back({a, 0, 0});
  return barrier;
}

}  // namespace vkalex::detail
