// Context: the chosen device, its queue, and blocking transfers between host and tensors.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "vk/device.hpp"
#include "vk/sync.hpp"
#include "vkalex/host_vulkan.hpp"
#include "vkalex/error.hpp"
#include "vkalex/tuning.hpp"

namespace vkalex {
namespace detail {

DeviceImpl::~DeviceImpl() {
  if (device && vk.vkQueueWaitIdle) {
    // The engine's own work only: on a host's device, its other queues are the host's.
    lock_queue ? lock_queue() : void();
    vk.vkQueueWaitIdle(queue);
    unlock_queue ? unlock_queue() : void();
    try {
      pipelines.save();
    } catch (...) {
      // A cache that cannot be written only costs compile time on the next start.
    }
    pipelines.destroy();
    allocator.destroy();
    if (transfer_fence) vk.vkDestroyFence(device, transfer_fence, nullptr);
    if (transfer_pool) vk.vkDestroyCommandPool(device, transfer_pool, nullptr);
  }
}

OwnedVulkan::~OwnedVulkan() {
  if (device && destroy_device) destroy_device(device, nullptr);
  if (messenger) vki.vkDestroyDebugUtilsMessengerEXT(instance, messenger, nullptr);
  if (instance) vki.vkDestroyInstance(instance, nullptr);
}

VkResult DeviceImpl::submit(const VkSubmitInfo& info, VkFence fence) {
  if (!lock_queue) return vk.vkQueueSubmit(queue, 1, &info, fence);
  struct Unlock {
    const std::function<void()>& unlock;
    ~Unlock() { unlock(); }
  };
  lock_queue();
  Unlock guard{unlock_queue};
  return vk.vkQueueSubmit(queue, 1, &info, fence);
}

namespace {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

// Runs `record` in the Context's transfer command buffer and waits for it.
template <typename F>
void run_transfer(DeviceImpl& d, F&& record) {
  auto& vk = d.vk;
  vk_check(vk.vkResetCommandBuffer(d.transfer_cmd, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vk_check(vk.vkBeginCommandBuffer(d.transfer_cmd, &begin), "vkBeginCommandBuffer");
  record_opening_barrier(vk, d.transfer_cmd);
  record(d.transfer_cmd);
  record_completion_barrier(vk, d.transfer_cmd);
  vk_check(vk.vkEndCommandBuffer(d.transfer_cmd), "vkEndCommandBuffer");
  vk_check(vk.vkResetFences(d.device, 1, &d.transfer_fence), "vkResetFences");
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &d.transfer_cmd;
  vk_check(d.submit(submit, d.transfer_fence), "vkQueueSubmit (transfer)");
  vk_check(vk.vkWaitForFences(d.device, 1, &d.transfer_fence, VK_TRUE, UINT64_MAX),
           "vkWaitForFences (transfer)");
}

void check_size(const std::shared_ptr<DeviceImpl>& device, const Tensor& t, uint64_t bytes, const char* what) {
  if (t.empty()) throw Error(std::string(what) + ": the tensor is empty (never allocated)");
  if (t.allocation().device != device) throw Error(std::string(what) + ": the tensor is on another device");
  if (t.bytes() != bytes) {
    throw Error(std::string(what) + ": tensor " + t.shape().str() + " holds " +
                std::to_string(t.bytes()) + " bytes but " + std::to_string(bytes) +
                " were given");
  }
}

void write_bytes(DeviceImpl& d, const std::shared_ptr<DeviceImpl>& shared, const Tensor& t,
                 const void* src, uint64_t bytes) {
  const Allocation& a = t.allocation();
  if (bytes == 0) return;
  if (std::byte* p = a.mapped()) {
    std::memcpy(p + t.offset(), src, bytes);
    return;
  }
  require_usage(a, VK_BUFFER_USAGE_TRANSFER_DST_BIT, "upload");
  auto staging = d.allocator.allocate(shared, MemoryKind::Staging, bytes);
  std::memcpy(staging->mapped(), src, bytes);
  run_transfer(d, [&](VkCommandBuffer cmd) {
    VkBufferCopy region{staging->offset, a.offset + t.offset(), bytes};
    d.vk.vkCmdCopyBuffer(cmd, staging->buffer(), a.buffer(), 1, &region);
  });
}

void read_bytes(DeviceImpl& d, const std::shared_ptr<DeviceImpl>& shared, const Tensor& t, void* dst,
                uint64_t bytes) {
  const Allocation& a = t.allocation();
  if (bytes == 0) return;
  if (std::byte* p = a.mapped()) {
    std::memcpy(dst, p + t.offset(), bytes);
    return;
  }
  require_usage(a, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, "download");
  auto staging = d.allocator.allocate(shared, MemoryKind::Staging, bytes);
  run_transfer(d, [&](VkCommandBuffer cmd) {
    VkBufferCopy region{a.offset + t.offset(), staging->offset, bytes};
    d.vk.vkCmdCopyBuffer(cmd, a.buffer(), staging->buffer(), 1, &region);
  });
  std::memcpy(dst, staging->mapped(), bytes);
}

}  // namespace
}  // namespace detail

using detail::vk_check;

namespace detail {
namespace {

std::vector<VkQueueFamilyProperties> queue_families(const InstanceTable& vki, VkPhysicalDevice physical) {
  uint32_t count = 0;
  vki.vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vki.vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, families.data());
  families.resize(count);
  return families;
}

// What both kinds of Context do once instance, device, queue and tables are there: the
// options, the limits, the engine's own command pool, memory, pipelines and tuning file.
void finish_context(DeviceImpl& d, const ContextOptions& options) {
  d.info.forced_kernels = options.kernels;
  if (const char* env = std::getenv("VKALEX_KERNELS")) {
    std::string list = env;
    size_t start = 0;
    while (start < list.size()) {
      const size_t end = std::min(list.find(',', start), list.size());
      const std::string item = list.substr(start, end - start);
      const size_t eq = item.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
        throw Error("VKALEX_KERNELS: \"" + item + "\" is not op=variant (e.g. linear=linear.rows)");
      }
      d.info.forced_kernels[item.substr(0, eq)] = item.substr(eq + 1);
      start = end + 1;
    }
  }
  const DeviceLimitOverrides& lower = options.limits;
  if (lower.max_storage_buffer_range && lower.max_storage_buffer_range < d.info.max_storage_buffer_range)
    d.info.max_storage_buffer_range = lower.max_storage_buffer_range;
  if (lower.max_loop_iterations &&
      (d.info.max_loop_iterations == 0 || lower.max_loop_iterations < d.info.max_loop_iterations))
    d.info.max_loop_iterations = lower.max_loop_iterations;
  if (lower.no_subgroup_shuffle) d.info.subgroup_shuffle = false;


  VkPhysicalDeviceProperties props{};
  d.vki.vkGetPhysicalDeviceProperties(d.physical, &props);
  d.limits = props.limits;
  d.vki.vkGetPhysicalDeviceMemoryProperties(d.physical, &d.memory_properties);
  const uint32_t bits = queue_families(d.vki, d.physical).at(d.queue_family).timestampValidBits;
  d.info.timestamps = bits > 0;
  d.timestamp_mask = bits >= 64 ? ~0ull : (bits ? (1ull << bits) - 1 : 0);

  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = d.queue_family;
  vk_check(d.vk.vkCreateCommandPool(d.device, &pool_info, nullptr, &d.transfer_pool),
           "vkCreateCommandPool");
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = d.transfer_pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  vk_check(d.vk.vkAllocateCommandBuffers(d.device, &alloc, &d.transfer_cmd),
           "vkAllocateCommandBuffers");
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  vk_check(d.vk.vkCreateFence(d.device, &fence_info, nullptr, &d.transfer_fence), "vkCreateFence");

  d.force_staging = options.force_staging || detail::env_flag("VKALEX_FORCE_STAGING");
  uint64_t budget = options.limits.device_memory;
  if (const char* env = std::getenv("VKALEX_MEMORY_LIMIT"); env && *env) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long mib = std::strtoull(env, &end, 10);
    if (*end || env[0] == '-' || errno == ERANGE || mib == 0 || mib > (1ull << 40)) {
      throw Error(std::string("VKALEX_MEMORY_LIMIT: \"") + env + "\" is not a size in MiB (a whole number from 1)");
    }
    if (budget == 0 || (mib << 20) < budget) budget = mib << 20;
  }
  d.allocator.init(&d, !d.force_staging, budget);
  ContextOptions cache_options = options;
  if (const char* env = std::getenv("VKALEX_PIPELINE_CACHE"); env && std::strcmp(env, "0") == 0)
    cache_options.pipeline_cache = false;
  d.pipelines.init(&d, cache_options);

  // Kernel choices measured on this device and driver (bench --tune); read after the limits
  // are lowered, since the registry checks each tuned variant against them when it chooses.
  const char* tuning_env = std::getenv("VKALEX_TUNING");
  if (!options.tuning_file || (tuning_env && std::strcmp(tuning_env, "0") == 0)) {
    d.tuning_status = "off";
  } else if (const std::string dir = detail::cache_dir(options); dir.empty()) {
    d.tuning_status = detail::kNoCacheDir;
  } else {
    d.tuning_path = detail::device_file(dir, "tuning", d.info, ".json");
    TuningFile tuning = read_tuning_file(d.tuning_path, d.info);
    d.tuning_status = std::move(tuning.status);
    for (TuningEntry& e : tuning.entries) d.info.tuned_kernels[{e.op, e.key}] = std::move(e.variant);
  }
}

}  // namespace
}  // namespace detail

Context::Context(const ContextOptions& options) : impl_(std::make_shared<detail::DeviceImpl>()) {
  auto& d = *impl_;
  const bool validation = options.validation || detail::env_flag("VKALEX_VALIDATION");
  if (validation) d.validation = std::make_unique<detail::ValidationLog>();
  d.owned = std::make_unique<detail::OwnedVulkan>();
  d.instance = detail::create_instance(validation, d.validation.get(), &d.owned->messenger, d.vki);
  d.owned->instance = d.instance;
  d.owned->vki = d.vki;

  auto physical = detail::enumerate_physical_devices(d.vki, d.instance);
  std::vector<DeviceInfo> infos;
  for (uint32_t i = 0; i < physical.size(); ++i) infos.push_back(detail::describe_device(d.vki, physical[i], i));
  std::string spec;
  if (options.device) {
    spec = *options.device;
  } else if (const char* env = std::getenv("VKALEX_DEVICE")) {
    spec = env;
  }
  const size_t chosen = select_device(infos, spec);
  d.physical = physical[chosen];
  d.info = infos[chosen];

  const auto families = detail::queue_families(d.vki, d.physical);
  // Prefer a family with compute and timestamps; a compute family without them still works.
  int family = -1;
  for (uint32_t i = 0; i < families.size(); ++i) {
    if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    if (family < 0 || (families[i].timestampValidBits > 0 && families[family].timestampValidBits == 0))
      family = static_cast<int>(i);
  }
  if (family < 0) throw Error("device \"" + d.info.name + "\" has no compute queue");
  d.queue_family = static_cast<uint32_t>(family);

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = d.queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  // 16-bit values in storage buffers where the device has them: nets with fp16 storage need
  // them (a Vulkan 1.1 feature; lavapipe has it, SwiftShader not).
  VkPhysicalDevice16BitStorageFeatures storage16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  storage16.storageBuffer16BitAccess = d.info.storage_buffer_16bit ? VK_TRUE : VK_FALSE;
  // Timeline semaphores where the device has them (Vulkan 1.2): nets over two devices.
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  timeline.timelineSemaphore = VK_TRUE;
  if (d.info.timeline_semaphore) storage16.pNext = &timeline;
  VkDeviceCreateInfo device_info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  device_info.pNext = &storage16;
  device_info.queueCreateInfoCount = 1;
  device_info.pQueueCreateInfos = &queue_info;
  vk_check(d.vki.vkCreateDevice(d.physical, &device_info, nullptr, &d.device),
           ("vkCreateDevice for \"" + d.info.name + "\"").c_str());
  d.owned->device = d.device;
  d.owned->destroy_device =
      reinterpret_cast<PFN_vkDestroyDevice>(d.vki.vkGetDeviceProcAddr(d.device, "vkDestroyDevice"));
  detail::load_device_functions(d.vk, d.vki.vkGetDeviceProcAddr, d.device);
  d.vk.vkGetDeviceQueue(d.device, d.queue_family, 0, &d.queue);
  detail::finish_context(d, options);
}

Context::Context(const HostDevice& host, const ContextOptions& options) : impl_(std::make_shared<detail::DeviceImpl>()) {
  auto& d = *impl_;
  const char* missing = !host.instance                 ? "instance"
                        : !host.physical_device        ? "physical_device"
                        : !host.device                 ? "device"
                        : !host.queue                  ? "queue"
                        : !host.get_instance_proc_addr ? "get_instance_proc_addr"
                                                       : nullptr;
  if (missing) throw Error(std::string("HostDevice: ") + missing + " is not given");
  if (bool(host.lock_queue) != bool(host.unlock_queue))
    throw Error("HostDevice: lock_queue and unlock_queue go together (one is given without the other)");
  d.vki.vkGetInstanceProcAddr = host.get_instance_proc_addr;
  detail::load_instance_functions(d.vki, host.instance);
  d.instance = host.instance;
  d.physical = host.physical_device;

  const auto physical = detail::enumerate_physical_devices(d.vki, d.instance);
  const auto at = std::find(physical.begin(), physical.end(), host.physical_device);
  if (at == physical.end()) throw Error("HostDevice: physical_device is not one of the instance's physical devices");
  d.info = detail::describe_device(d.vki, d.physical, static_cast<uint32_t>(at - physical.begin()));
  d.info.timeline_semaphore = false;  // the host's device may not have them enabled
  if (d.info.api_version < VK_API_VERSION_1_1) {
    throw Error("HostDevice: \"" + d.info.name + "\" supports Vulkan " + d.info.api_version_string +
                "; vkalex needs 1.1 or later");
  }
  const auto families = detail::queue_families(d.vki, d.physical);
  if (host.queue_family >= families.size()) {
    throw Error("HostDevice: queue_family " + std::to_string(host.queue_family) + " is out of range (\"" +
                d.info.name + "\" has " + std::to_string(families.size()) + ")");
  }
  if (!(families[host.queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT)) {
    throw Error("HostDevice: queue family " + std::to_string(host.queue_family) + " of \"" + d.info.name +
                "\" has no compute (VK_QUEUE_COMPUTE_BIT); vkalex needs a compute queue");
  }
  if (host.storage_buffer_16bit && !d.info.storage_buffer_16bit) {
    throw Error("HostDevice: storage_buffer_16bit is set, but \"" + d.info.name +
                "\" does not support 16-bit storage buffers");
  }
  d.info.storage_buffer_16bit = host.storage_buffer_16bit;
  d.device = host.device;
  d.queue_family = host.queue_family;
  d.queue = host.queue;
  d.lock_queue = host.lock_queue;
  d.unlock_queue = host.unlock_queue;
  detail::load_device_functions(d.vk, host.get_device_proc_addr ? host.get_device_proc_addr : d.vki.vkGetDeviceProcAddr,
                                d.device);
  detail::finish_context(d, options);
}

Context::Context(std::shared_ptr<detail::DeviceImpl> impl) : impl_(std::move(impl)) {
  if (!impl_) throw Error("this Context was moved from: it no longer has a device");
}

Context::~Context() = default;

Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;

detail::DeviceImpl& Context::impl() const {
  if (!impl_) throw Error("this Context was moved from: it no longer has a device");
  return *impl_;
}

Context Context::share() const { return Context(impl_); }

const DeviceInfo& Context::device() const { return impl().info; }

bool Context::direct_host_access() const { return impl().allocator.device_memory_mapped(); }

uint64_t Context::memory_budget() const {
  if (const uint64_t b = impl().allocator.budget()) return b;
  uint64_t device_local = 0, any = 0;
  for (const MemoryHeap& h : impl().info.heaps) {
    any = std::max(any, h.size);
    if (h.device_local) device_local = std::max(device_local, h.size);
  }
  return device_local ? device_local : any;
}

uint64_t Context::memory_in_use() const { return impl().allocator.in_use(); }

void Context::require_memory_for_batch(const std::string& what, uint32_t batch, uint64_t bytes,
                                       uint64_t bytes_per_image) const {
  const uint64_t budget = memory_budget(), taken = impl().allocator.allocated();
  const uint64_t free = budget > taken ? budget - taken : 0;
  if (bytes <= free) return;
  const uint64_t fixed = bytes > uint64_t(batch) * bytes_per_image ? bytes - uint64_t(batch) * bytes_per_image : 0;
  const uint64_t fits = bytes_per_image && free > fixed ? (free - fixed) / bytes_per_image : 0;
  auto mib = [](uint64_t b) {  // one decimal, rounded down (so "free" never overstates)
    const uint64_t tenths = b * 10 / (1u << 20);
    return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " MiB";
  };
  throw Error(what + ": batch " + std::to_string(batch) + " needs at least " + mib(bytes) + " of device memory, " +
                  mib(free) + " of the " + mib(budget) + " the engine may use is free: " +
                  (fits ? "at most batch " + std::to_string(fits) + " fits" : "not even batch 1 fits"),
              "VK_ERROR_OUT_OF_DEVICE_MEMORY");
}

Tensor Context::tensor(const Shape& shape, DType dtype) {
  const uint64_t bytes = shape.numel() * dtype_size(dtype);
  Tensor t;
  t.alloc_ = impl().allocator.allocate(impl_, detail::MemoryKind::Device, bytes);
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Context::staging_tensor(const Shape& shape, DType dtype) {
  Tensor t;
  t.alloc_ = impl().allocator.allocate(impl_, detail::MemoryKind::Staging, shape.numel() * dtype_size(dtype));
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

void Context::upload(const Tensor& t, std::span<const float> data) {
  if (t.dtype() == DType::F16) {
    if (data.size() != t.numel()) {
      throw Error("upload: f16 tensor " + t.shape().str() + " has " + std::to_string(t.numel()) + " elements but " +
                  std::to_string(data.size()) + " values were given");
    }
    std::vector<uint16_t> halves(data.size());
    for (size_t i = 0; i < data.size(); ++i) halves[i] = float_to_half(data[i]);
    detail::check_size(impl_, t, halves.size() * sizeof(uint16_t), "upload");
    detail::write_bytes(impl(), impl_, t, halves.data(), t.bytes());
    return;
  }
  detail::check_size(impl_, t, data.size_bytes(), "upload");
  if (t.dtype() != DType::F32) throw Error("upload: float data given for a u32 tensor");
  detail::write_bytes(impl(), impl_, t, data.data(), data.size_bytes());
}

void Context::upload(const Tensor& t, std::span<const uint32_t> data) {
  detail::check_size(impl_, t, data.size_bytes(), "upload");
  if (t.dtype() != DType::U32) throw Error("upload: uint32 data given for an f32 tensor");
  detail::write_bytes(impl(), impl_, t, data.data(), data.size_bytes());
}

std::vector<float> Context::download(const Tensor& t) {
  if (t.dtype() == DType::F16) {
    std::vector<uint16_t> halves(t.numel());
    detail::check_size(impl_, t, halves.size() * sizeof(uint16_t), "download");
    detail::read_bytes(impl(), impl_, t, halves.data(), t.bytes());
    std::vector<float> out(halves.size());
    for (size_t i = 0; i < halves.size(); ++i) out[i] = half_to_float(halves[i]);
    return out;
  }
  if (t.dtype() != DType::F32) throw Error("download: the tensor is u32; use download_u32");
  std::vector<float> out(t.numel());
  detail::check_size(impl_, t, out.size() * sizeof(float), "download");
  detail::read_bytes(impl(), impl_, t, out.data(), t.bytes());
  return out;
}

std::vector<uint32_t> Context::download_u32(const Tensor& t) {
  if (t.dtype() != DType::U32) throw Error(std::string("download_u32: the tensor is ") + dtype_name(t.dtype()) + "; use download");
  std::vector<uint32_t> out(t.numel());
  detail::check_size(impl_, t, out.size() * sizeof(uint32_t), "download_u32");
  detail::read_bytes(impl(), impl_, t, out.data(), t.bytes());
  return out;
}

void Context::fill(const Tensor& t, float value) {
  detail::check_size(impl_, t, t.bytes(), "fill");
  if (t.bytes() == 0) return;
  if (t.dtype() == DType::F16) {  // vkCmdFillBuffer writes whole 32-bit words
    const std::vector<uint16_t> halves(t.numel(), float_to_half(value));
    detail::write_bytes(impl(), impl_, t, halves.data(), t.bytes());
    return;
  }
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const auto& a = t.allocation();
  detail::require_usage(a, VK_BUFFER_USAGE_TRANSFER_DST_BIT, "fill");
  detail::run_transfer(impl(), [&](VkCommandBuffer cmd) {
    impl().vk.vkCmdFillBuffer(cmd, a.buffer(), a.offset + t.offset(), t.bytes(), bits);
  });
}

std::vector<std::string> Context::take_validation_messages() {
  if (!impl().validation) return {};
  std::lock_guard lock(impl().validation->mutex);
  return std::exchange(impl().validation->messages, {});
}

std::string Context::pipeline_cache_path() const { return impl().pipelines.path(); }
std::string Context::pipeline_cache_status() const { return impl().pipelines.status(); }
void Context::save_pipeline_cache() { impl().pipelines.save(); }
std::string Context::tuning_file_path() const { return impl().tuning_path; }
std::string Context::tuning_file_status() const { return impl().tuning_status; }

Tensor Tensor::reshaped(const Shape& shape) const {
  if (shape.numel() != numel()) {
    throw Error("reshape: " + shape_.str() + " has " + std::to_string(numel()) +
                " elements, " + shape.str() + " has " + std::to_string(shape.numel()));
  }
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::view(uint64_t byte_offset, const Shape& shape, DType dtype) const {
  const uint64_t bytes = shape.numel() * dtype_size(dtype);
  if (empty() || byte_offset > this->bytes() || bytes > this->bytes() - byte_offset) {
    throw Error("view: " + shape.str() + " at byte " + std::to_string(byte_offset) +
                " does not lie within tensor " + shape_.str());
  }
  Tensor t = *this;
  t.offset_ = offset_ + byte_offset;
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

bool Tensor::aliases(const Tensor& other) const {
  if (empty() || other.empty()) return false;
  const auto& a = allocation();
  const auto& b = other.allocation();
  if (a.buffer() != b.buffer()) return false;
  const uint64_t a0 = a.offset + offset_, a1 = a0 + bytes();
  const uint64_t b0 = b.offset + other.offset_, b1 = b0 + other.bytes();
  return a0 < b1 && b0 < a1;
}

const detail::Allocation& Tensor::allocation() const {
  if (!alloc_) throw Error("tensor is empty (never allocated)");
  return *alloc_;
}

}  // namespace vkalex

namespace vkalex {

Tensor wrap_buffer(Context& context, const HostBuffer& buffer, const Shape& shape, DType dtype) {
  auto& d = context.impl();
  const uint64_t bytes = shape.numel() * dtype_size(dtype);
  const std::string what = "wrap_buffer (" + shape.str() + " " + dtype_name(dtype) + ")";
  if (buffer.buffer == VK_NULL_HANDLE) throw Error(what + ": the buffer is VK_NULL_HANDLE");
  if (bytes == 0) throw Error(what + ": the shape has no elements");
  if (buffer.size < bytes) {
    throw Error(what + ": the buffer range holds " + std::to_string(buffer.size) + " bytes, the tensor needs " +
                std::to_string(bytes));
  }
  if (buffer.offset % d.info.min_storage_buffer_offset_alignment != 0) {
    throw Error(what + ": offset " + std::to_string(buffer.offset) + " is not a multiple of the device's minStorageBufferOffsetAlignment (" +
                std::to_string(d.info.min_storage_buffer_offset_alignment) + ")");
  }
  if (buffer.offset > UINT64_MAX - buffer.size) throw Error(what + ": offset + size overflows");
  auto a = std::make_shared<detail::Allocation>();
  a->borrowed = std::make_unique<detail::MemoryBlock>();
  a->borrowed->buffer = buffer.buffer;
  a->borrowed->size = buffer.offset + buffer.size;
  a->borrowed->usage = buffer.usage;
  a->block = a->borrowed.get();
  a->device = context.shared_impl();
  a->kind = detail::MemoryKind::Device;
  a->offset = buffer.offset;
  a->size = bytes;
  a->id = d.allocator.next_id();
  return detail::TensorAccess::make(std::move(a), shape, dtype);
}

HostBuffer buffer_of(const Tensor& tensor) {
  if (tensor.empty()) throw Error("buffer_of: the tensor is empty (never allocated)");
  const auto& a = tensor.allocation();
  return {a.buffer(), a.offset + tensor.offset(), tensor.bytes(), a.block->usage};
}

}  // namespace vkalex
