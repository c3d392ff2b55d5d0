// Device memory: a few large blocks, each with one VkBuffer, sub-allocated per tensor.
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "vk/device.hpp"
#include "vkalex/error.hpp"

namespace vkalex::detail {

namespace {

constexpr VkBufferUsageFlags kUsage[2] = {
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
        VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
    VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
};

std::string size_text(VkDeviceSize bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB (%" PRIu64 " bytes)", bytes / 1048576.0,
                static_cast<uint64_t>(bytes));
  return buf;
}

VkDeviceSize align_up(VkDeviceSize v, VkDeviceSize a) { return (v + a - 1) / a * a; }

// Best memory type among `allowed` for `kind`; -1 when none is usable.
int pick_type(const VkPhysicalDeviceMemoryProperties& mp, uint32_t allowed, MemoryKind kind,
              bool unified) {
  int best = -1, best_score = -1;
  for (uint32_t i = 0; i < mp.memoryTypeCount; ++i) {
    if (!(allowed & (1u << i))) continue;
    const VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
    const bool device_local = f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    const bool host = (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
                      (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    const bool cached = f & VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    int score = 0;
    if (kind == MemoryKind::Device) {
      // On unified memory, device-local memory the host can map saves every staging copy;
      // on a discrete GPU, host-visible device memory is scarce (BAR) and slow to read back.
      score = (device_local ? 4 : 0) + (unified ? (host ? 2 : 0) : (host ? 0 : 2));
    } else {
      if (!host) continue;
      score = 2 + (cached ? 1 : 0);
    }
    if (score > best_score) best = static_cast<int>(i), best_score = score;
  }
  return best;
}

}  // namespace

Allocation::~Allocation() {
  if (device && block && !borrowed) device->allocator.release(*this);
}

void require_usage(const Allocation& a, VkBufferUsageFlags usage, const std::string& what) {
  if ((a.block->usage & usage) == usage) return;
  std::string names;
  const std::pair<VkBufferUsageFlags, const char*> bits[] = {
      {VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, "STORAGE_BUFFER"},
      {VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT, "UNIFORM_TEXEL_BUFFER"},
      {VK_BUFFER_USAGE_TRANSFER_SRC_BIT, "TRANSFER_SRC"},
      {VK_BUFFER_USAGE_TRANSFER_DST_BIT, "TRANSFER_DST"}};
  for (const auto& [bit, name] : bits) {
    if ((usage & bit) && !(a.block->usage & bit)) names += std::string(names.empty() ? "" : ", ") + "VK_BUFFER_USAGE_" + name + "_BIT";
  }
  throw Error(what + ": the host's buffer was not created with " + names);
}

void Allocator::init(DeviceImpl* device, bool map_device_memory, uint64_t budget) {
  device_ = device;
  budget_ = budget;
  const auto& limits = device->limits;
  alignment_ = std::max<VkDeviceSize>({VkDeviceSize{16}, limits.minStorageBufferOffsetAlignment,
                                       limits.nonCoherentAtomSize});
  block_size_ = std::min<VkDeviceSize>(256ull << 20, device->info.max_memory_allocation_size
                                                         ? device->info.max_memory_allocation_size
                                                         : (256ull << 20));
  const bool unified = device->info.type == DeviceType::IntegratedGpu ||
                       device->info.type == DeviceType::Cpu;
  for (int k = 0; k < 2; ++k) {
    VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    info.size = 4096;
    info.usage = kUsage[k];
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VkBuffer probe = VK_NULL_HANDLE;
    vk_check(device->vk.vkCreateBuffer(device->device, &info, nullptr, &probe), "vkCreateBuffer");
    VkMemoryRequirements req{};
    device->vk.vkGetBufferMemoryRequirements(device->device, probe, &req);
    device->vk.vkDestroyBuffer(device->device, probe, nullptr);
    const int type = pick_type(device->memory_properties, req.memoryTypeBits,
                               static_cast<MemoryKind>(k), unified);
    if (type < 0) {
      throw Error(std::string("device \"") + device->info.name + "\" offers no memory type for " +
                  (k == 0 ? "storage buffers" : "host-visible staging buffers"));
    }
    type_index_[k] = static_cast<uint32_t>(type);
    const auto f = device->memory_properties.memoryTypes[type].propertyFlags;
    host_visible_[k] = (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  }
  device_mapped_ = map_device_memory && host_visible_[0];
}

void Allocator::destroy() {
  for (auto& list : blocks_) {
    while (!list.empty()) free_block(list.back().get());
  }
}

MemoryBlock* Allocator::new_block(MemoryKind kind, VkDeviceSize size, bool dedicated) {
  auto& d = *device_;
  const int k = static_cast<int>(kind);
  const uint32_t type = type_index_[k];
  const uint32_t heap = d.memory_properties.memoryTypes[type].heapIndex;
  const VkDeviceSize heap_size = d.memory_properties.memoryHeaps[heap].size;
  const VkDeviceSize max_alloc = d.info.max_memory_allocation_size;
  if (size > heap_size) {
    throw Error("out of device memory: " + size_text(size) + " asked for, but the memory heap holds " +
                    size_text(heap_size),
                "VK_ERROR_OUT_OF_DEVICE_MEMORY");
  }
  if (budget_ && (size > budget_ || in_use_ > budget_ - size)) {
    throw Error("out of device memory: " + size_text(size) + " more asked for, with " + size_text(in_use_) +
                    " in use, beyond the engine's limit of " + size_text(budget_) +
                    " (DeviceLimitOverrides::device_memory, VKALEX_MEMORY_LIMIT)",
                "VK_ERROR_OUT_OF_DEVICE_MEMORY");
  }
  if (max_alloc && size > max_alloc) {
    throw Error("cannot allocate " + size_text(size) +
                    " in one piece: the device's maxMemoryAllocationSize is " + size_text(max_alloc),
                "VK_ERROR_OUT_OF_DEVICE_MEMORY");
  }

  auto block = std::make_unique<MemoryBlock>();
  block->size = size;
  block->dedicated = dedicated;
  block->usage = kUsage[k];
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = size;
  info.usage = kUsage[k];
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  vk_check(d.vk.vkCreateBuffer(d.device, &info, nullptr, &block->buffer), "vkCreateBuffer");
  VkMemoryRequirements req{};
  d.vk.vkGetBufferMemoryRequirements(d.device, block->buffer, &req);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = type;
  VkResult r = (req.memoryTypeBits & (1u << type))
                   ? d.vk.vkAllocateMemory(d.device, &alloc, nullptr, &block->memory)
                   : VK_ERROR_FEATURE_NOT_PRESENT;
  if (r != VK_SUCCESS) {
    d.vk.vkDestroyBuffer(d.device, block->buffer, nullptr);
    const std::string name = vk_result_name(r);
    throw Error(std::string(r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY
                                ? "out of memory: "
                                : "memory allocation failed: ") +
                    "could not allocate " + size_text(req.size) + " of " +
                    (kind == MemoryKind::Device ? "device" : "staging") + " memory (" + name + ")",
                name);
  }
  r = d.vk.vkBindBufferMemory(d.device, block->buffer, block->memory, 0);
  if (r == VK_SUCCESS && (kind == MemoryKind::Staging || device_mapped_)) {
    void* p = nullptr;
    r = d.vk.vkMapMemory(d.device, block->memory, 0, VK_WHOLE_SIZE, 0, &p);
    block->mapped = static_cast<std::byte*>(p);
  }
  if (r != VK_SUCCESS) {
    d.vk.vkDestroyBuffer(d.device, block->buffer, nullptr);
    d.vk.vkFreeMemory(d.device, block->memory, nullptr);
    vk_check(r, "binding or mapping a memory block");
  }
  block->free_ranges[0] = size;
  in_use_ += size;
  blocks_[k].push_back(std::move(block));
  return blocks_[k].back().get();
}

void Allocator::free_block(MemoryBlock* block) {
  auto& d = *device_;
  for (auto& list : blocks_) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->get() != block) continue;
      if (block->mapped) d.vk.vkUnmapMemory(d.device, block->memory);
      d.vk.vkDestroyBuffer(d.device, block->buffer, nullptr);
      d.vk.vkFreeMemory(d.device, block->memory, nullptr);
      in_use_ -= block->size;
      list.erase(it);
      return;
    }
  }
}

std::shared_ptr<Allocation> Allocator::allocate(const std::shared_ptr<DeviceImpl>& device,
                                                MemoryKind kind, VkDeviceSize size) {
  std::lock_guard lock(mutex_);
  const int k = static_cast<int>(kind);
  const VkDeviceSize want = align_up(std::max<VkDeviceSize>(size, 1), alignment_);

  MemoryBlock* block = nullptr;
  VkDeviceSize offset = 0;
  for (auto& b : blocks_[k]) {
    for (auto& [off, len] : b->free_ranges) {
      if (len >= want) {
        block = b.get();
        offset = off;
        break;
      }
    }
    if (block) break;
  }
  if (!block) {
    if (want > block_size_) {
      block = new_block(kind, want, true);
    } else {
      try {
        block = new_block(kind, block_size_, false);
      } catch (const Error&) {
        block = new_block(kind, want, true);  // memory is short: take only what is needed
      }
    }
    offset = 0;
  }

  auto it = block->free_ranges.find(offset);
  const VkDeviceSize len = it->second;
  block->free_ranges.erase(it);
  if (len > want) block->free_ranges[offset + want] = len - want;
  block->used += want;

  auto a = std::make_shared<Allocation>();
  a->device = device;
  a->kind = kind;
  a->block = block;
  a->offset = offset;
  a->size = want;
  a->id = next_id_++;
  return a;
}

void Allocator::release(Allocation& a) {
  std::lock_guard lock(mutex_);
  MemoryBlock* block = a.block;
  a.block = nullptr;
  auto& ranges = block->free_ranges;
  VkDeviceSize off = a.offset, len = a.size;
  auto next = ranges.lower_bound(off);
  if (next != ranges.end() && off + len == next->first) {
    len += next->second;
    next = ranges.erase(next);
  }
  if (next != ranges.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      off = prev->first;
      len += prev->second;
      ranges.erase(prev);
    }
  }
  ranges[off] = len;
  block->used -= a.size;
  if (block->used == 0) {
    // Keep one empty block per kind for the next tensor; give the others back.
    auto& list = blocks_[static_cast<int>(a.kind)];
    if (block->dedicated || list.size() > 1) free_block(block);
  }
}

}  // namespace vkalex::detail
