// Internal: the Vulkan objects behind a Context, the memory allocator and the pipelines.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vk/vulkan.hpp"
#include "vkalex/context.hpp"

namespace vkalex::detail {

struct DeviceImpl;

enum class MemoryKind {
  Device,   // device-local storage buffers (tensors)
  Staging,  // host-visible, coherent: uploads and downloads through copies
};

// One large VkDeviceMemory with one VkBuffer over all of it, handed out in aligned ranges.
struct MemoryBlock {
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize size = 0;
  std::byte* mapped = nullptr;          // non-null when host-visible and mapped
  std::map<VkDeviceSize, VkDeviceSize> free_ranges;  // offset -> size, coalesced
  VkDeviceSize used = 0;
  bool dedicated = false;               // made for one allocation larger than a block
  VkBufferUsageFlags usage = 0;         // what `buffer` was created for
};

// A range of a MemoryBlock. Returns itself to the allocator when destroyed.
struct Allocation {
  std::shared_ptr<DeviceImpl> device;
  MemoryKind kind = MemoryKind::Device;
  MemoryBlock* block = nullptr;
  VkDeviceSize offset = 0;  // within block->buffer
  VkDeviceSize size = 0;
  uint64_t id = 0;          // unique per allocation, for tracking hazards
  // A range of the host's own buffer (wrap_buffer): `block` is this, describing the host's
  // VkBuffer; nothing is returned to the allocator, nothing is destroyed.
  std::unique_ptr<MemoryBlock> borrowed;

  VkBuffer buffer() const { return block->buffer; }
  std::byte* mapped() const { return block->mapped ? block->mapped + offset : nullptr; }
  ~Allocation();
};

// Throws Error naming `what` and the missing flags unless `a`'s buffer has every `usage` bit
// (only a host's buffer can lack one).
void require_usage(const Allocation& a, VkBufferUsageFlags usage, const std::string& what);

// Makes Tensors from allocations (Tensor's members are private; this is its friend).
struct TensorAccess {
  static Tensor make(std::shared_ptr<Allocation> alloc, const Shape& shape, DType dtype) {
    Tensor t;
    t.alloc_ = std::move(alloc);
    t.shape_ = shape;
    t.dtype_ = dtype;
    return t;
  }
};

// Sub-allocates tensors from few large blocks: some drivers allow only 4096 allocations.
class Allocator {
 public:
  // `budget`: the most bytes the blocks may hold in all (0: no limit but the heaps').
  void init(DeviceImpl* device, bool map_device_memory, uint64_t budget);
  void destroy();
  // Throws Error naming `size` when the memory cannot be had.
  std::shared_ptr<Allocation> allocate(const std::shared_ptr<DeviceImpl>& device, MemoryKind kind,
                                       VkDeviceSize size);
  void release(Allocation& allocation);
  bool device_memory_mapped() const { return device_mapped_; }
  uint64_t in_use() {
    std::lock_guard lock(mutex_);
    return in_use_;
  }
  uint64_t budget() const { return budget_; }
  // The bytes the live allocations take (what in_use() holds but for the blocks' free ranges).
  uint64_t allocated() {
    std::lock_guard lock(mutex_);
    uint64_t sum = 0;
    for (const auto& list : blocks_)
      for (const auto& b : list) sum += b->used;
    return sum;
  }
  // A fresh allocation id (for a host's buffer, which the allocator does not hand out).
  uint64_t next_id() {
    std::lock_guard lock(mutex_);
    return next_id_++;
  }

 private:
  MemoryBlock* new_block(MemoryKind kind, VkDeviceSize size, bool dedicated);
  void free_block(MemoryBlock* block);

  DeviceImpl* device_ = nullptr;
  std::mutex mutex_;
  std::vector<std::unique_ptr<MemoryBlock>> blocks_[2];
  uint32_t type_index_[2] = {0, 0};
  bool host_visible_[2] = {false, false};
  bool device_mapped_ = false;
  VkDeviceSize alignment_ = 256;
  VkDeviceSize block_size_ = 256ull << 20;
  uint64_t next_id_ = 1;
  uint64_t budget_ = 0, in_use_ = 0;  // bytes: the limit (0: none) and what the blocks hold
};

// Whether the build embedded a kernel of this name (shaders/NAME.comp, or a NAME_f16 twin).
bool embedded_shader_exists(const std::string& name);

struct PipelineKey {
  std::string shader;
  std::vector<uint32_t> specialization;  // value of constant_id i at position i
  uint32_t bindings = 0;
  uint32_t texel_bindings = 0;  // bit i: binding i is a uniform texel buffer (RGBA32F), not a storage buffer
  uint32_t push_constant_bytes = 0;
  auto operator<=>(const PipelineKey&) const = default;
};

struct Pipeline {
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
  uint32_t bindings = 0;
  uint32_t push_constant_bytes = 0;
};

// Pipelines built once per (shader, specialization) and kept for the device's life, plus the
// driver's pipeline cache stored on disk per device.
class PipelineStore {
 public:
  void init(DeviceImpl* device, const ContextOptions& options);
  void destroy();
  const Pipeline& get(const PipelineKey& key);
  void save();
  const std::string& path() const { return path_; }
  const std::string& status() const { return status_; }

 private:
  void load();
  DeviceImpl* device_ = nullptr;
  std::mutex mutex_;
  std::map<PipelineKey, std::unique_ptr<Pipeline>> pipelines_;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  std::string path_;
  std::string status_;
  bool dirty_ = false;
};

// Collects validation-layer messages; the debug messenger writes here from any thread.
struct ValidationLog {
  std::mutex mutex;
  std::vector<std::string> messages;
};

// The Vulkan objects the engine created itself (a Context of its own), destroyed with it. A
// Context on a host's device has none: its handles are borrowed, and nothing destroys them.
struct OwnedVulkan {
  InstanceTable vki;
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  PFN_vkDestroyDevice destroy_device = nullptr;
  OwnedVulkan() = default;
  OwnedVulkan(const OwnedVulkan&) = delete;
  OwnedVulkan& operator=(const OwnedVulkan&) = delete;
  ~OwnedVulkan();
};

struct DeviceImpl {
  // Declared first, so destroyed last: after the destructor's body has destroyed the engine's
  // objects on the device. Null on a host's device.
  std::unique_ptr<OwnedVulkan> owned;
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  InstanceTable vki;  // the instance's functions (vulkan.hpp: the engine has no global ones)
  DeviceTable vk;     // this device's functions
  uint32_t queue_family = 0;
  VkQueue queue = VK_NULL_HANDLE;
  // The host's lock around submits to a queue it shares (HostDevice); empty otherwise.
  std::function<void()> lock_queue, unlock_queue;
  DeviceInfo info;
  VkPhysicalDeviceLimits limits{};
  VkPhysicalDeviceMemoryProperties memory_properties{};
  uint64_t timestamp_mask = ~0ull;  // the queue's timestampValidBits as a mask
  std::unique_ptr<ValidationLog> validation;  // null when validation is off
  bool force_staging = false;

  Allocator allocator;
  PipelineStore pipelines;
  // The tuning file (its entries are in info.tuned_kernels): where, and what became of it.
  std::string tuning_path, tuning_status;

  // One command buffer and fence for the Context's own blocking transfers.
  VkCommandPool transfer_pool = VK_NULL_HANDLE;
  VkCommandBuffer transfer_cmd = VK_NULL_HANDLE;
  VkFence transfer_fence = VK_NULL_HANDLE;

  // vkQueueSubmit of one batch on the queue, inside the host's lock where there is one.
  VkResult submit(const VkSubmitInfo& info, VkFence fence);

  ~DeviceImpl();
};

// The folder of the per-device files (pipeline cache, tuning file): options.pipeline_cache_dir,
// else $XDG_CACHE_HOME/vkalex, else ~/.cache/vkalex; empty when neither variable is set.
std::string cache_dir(const ContextOptions& options);
inline constexpr const char* kNoCacheDir = "off: neither XDG_CACHE_HOME nor HOME is set";
// "DIR/PREFIX-<device UUID>-<driver version>EXTENSION", in hex: another GPU or a driver
// update starts afresh.
std::string device_file(const std::string& dir, const char* prefix, const DeviceInfo& info, const char* extension);

// Instance creation and device description (instance.cpp).
// create_instance fills `vki` with the system loader's and the new instance's functions.
VkInstance create_instance(bool validation, ValidationLog* log, VkDebugUtilsMessengerEXT* messenger,
                           InstanceTable& vki);
DeviceInfo describe_device(const InstanceTable& vki, VkPhysicalDevice device, uint32_t index);
std::vector<VkPhysicalDevice> enumerate_physical_devices(const InstanceTable& vki, VkInstance instance);

}  // namespace vkalex::detail
