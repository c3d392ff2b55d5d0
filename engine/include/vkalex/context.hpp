// Vulkan instance and device: listing, choosing, memory, and moving tensors in and out.
#pragma once

#include <array>
#include <map>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vkalex/shape.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

namespace detail {
struct DeviceImpl;
struct Allocation;
struct TensorAccess;
}  // namespace detail

enum class DeviceType { Other, IntegratedGpu, DiscreteGpu, VirtualGpu, Cpu };
const char* device_type_name(DeviceType type);

struct MemoryHeap {
  uint64_t size = 0;
  bool device_local = false;
};

// What a physical device is and what it offers; filled in by list_devices() and Context.
struct DeviceInfo {
  uint32_t index = 0;             // position in the Vulkan loader's enumeration
  std::string name;               // e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
  uint32_t vendor_id = 0;
  std::string vendor;             // "NVIDIA", "AMD", "Intel", "Mesa", ... or the id in hex
  uint32_t device_id = 0;
  DeviceType type = DeviceType::Other;
  uint32_t driver_id = 0;         // VkDriverId (0 where the device does not report it)
  std::string driver_name;        // empty where the device does not report it (Vulkan < 1.2)
  std::string driver_info;
  uint32_t driver_version = 0;    // raw, vendor-encoded
  std::string driver_version_string;
  uint32_t api_version = 0;
  std::string api_version_string;  // "1.3.230"
  std::array<uint8_t, 16> uuid{};
  std::vector<MemoryHeap> heaps;
  uint32_t subgroup_size = 0;
  // Where the subgroup size can be chosen per pipeline (VK_EXT_subgroup_size_control or
  // Vulkan 1.3), the range it can take; otherwise both equal subgroup_size.
  bool subgroup_size_control = false;
  uint32_t min_subgroup_size = 0, max_subgroup_size = 0;
  // subgroupShuffle in compute shaders (VK_SUBGROUP_FEATURE_SHUFFLE_BIT): the GEMM's lanes
  // then share their loads of the left operand.
  bool subgroup_shuffle = false;
  // Cooperative matrices (VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix) are offered;
  // no kernel uses them yet.
  bool cooperative_matrix = false;
  bool shader_float16 = false;     // fp16 arithmetic in shaders
  bool storage_buffer_16bit = false;  // 16-bit values in storage buffers
  bool timestamps = false;         // compute queue can write timestamps
  // Vulkan 1.2's timeline semaphores: a Context the engine makes enables them (a net spread
  // over two devices needs them on both, see vkalex/split.hpp).
  bool timeline_semaphore = false;
  double timestamp_period_ns = 0;  // nanoseconds per timestamp tick
  // Limits the engine respects (DESIGN.md, "Device limits that bite").
  uint64_t max_storage_buffer_range = 0;
  uint64_t min_storage_buffer_offset_alignment = 0;
  uint64_t max_memory_allocation_size = 0;
  uint32_t max_push_constants_size = 0;
  std::array<uint32_t, 3> max_workgroup_count{};
  uint32_t max_workgroup_invocations = 0;
  std::array<uint32_t, 3> max_workgroup_size{};
  uint32_t max_shared_memory = 0;          // bytes of shared memory per workgroup
  uint64_t min_texel_buffer_offset_alignment = 0;
  uint32_t max_texel_buffer_elements = 0;  // texel-buffer kernels need their data within this
  // Loop iterations one shader invocation may run in all before the driver cuts its loops
  // short without an error; 0 where no such limit is known. lavapipe's infinite-loop guard
  // stops at 65,535. Every kernel keeps its trip count within loop_budget() below.
  uint32_t max_loop_iterations = 0;
  // Kernel variants forced per op (ContextOptions::kernels, then $VKALEX_KERNELS): op name ->
  // variant name. Empty: each op takes the registry's choice for this device.
  std::map<std::string, std::string> forced_kernels;
  // Kernel variants measured fastest on this device and driver (the tuning file, see
  // vkalex/tuning.hpp): (op name, ops::kernel_shape_key) -> variant name. Forced kernels win
  // over these; an entry whose variant does not apply (or is unknown) is passed over.
  std::map<std::pair<std::string, std::string>, std::string> tuned_kernels;
};

// The most loop iterations the engine lets one invocation of one of its kernels run on this
// device: half the driver's known limit (a margin for loops the shader compiler keeps that the
// host counts as unrolled), else 1 << 16, which also keeps a dispatch short on desktop GPUs.
uint32_t loop_budget(const DeviceInfo& device);

// Lowers a device's limits, for tests that must reach the paths a smaller device takes (binding
// splits, loop splits) on the driver at hand. A zero field keeps the device's own value;
// a value above the device's own is ignored.
struct DeviceLimitOverrides {
  uint64_t max_storage_buffer_range = 0;
  uint32_t max_loop_iterations = 0;
  bool no_subgroup_shuffle = false;  // as if the device had no subgroup shuffles
  // At most this many bytes of memory for the engine on this device (0: the device's heap;
  // also set by the environment variable VKALEX_MEMORY_LIMIT, in MiB). For a device shared
  // with other work, and for testing what running out of memory does.
  uint64_t device_memory = 0;
};

// Lists the physical devices the Vulkan loader reports, in its order.
// Throws Error when there is no loader; returns an empty list when there is no device.
std::vector<DeviceInfo> list_devices();

// Picks a device from `devices` (as list_devices() returns them) and returns its position.
// `spec` is a decimal index or a case-insensitive substring of the device name; an empty
// spec picks by type: discrete GPU > integrated GPU > virtual GPU > CPU > other, then by
// index. Throws Error naming what was found when nothing matches.
size_t select_device(const std::vector<DeviceInfo>& devices, std::string_view spec);

struct ContextOptions {
  // Index or name substring (see select_device). Unset: the environment variable
  // VKALEX_DEVICE if set, else the default preference.
  std::optional<std::string> device;
  // Enable VK_LAYER_KHRONOS_validation (throws if the layer is not installed). Also turned
  // on by the environment variable VKALEX_VALIDATION=1.
  bool validation = false;
  // Keep and reuse compiled pipelines across runs, in $XDG_CACHE_HOME/vkalex (else
  // ~/.cache/vkalex), unless pipeline_cache_dir names another folder. VKALEX_PIPELINE_CACHE=0
  // turns it off.
  bool pipeline_cache = true;
  std::string pipeline_cache_dir;
  // Take kernel choices from the tuning file that `bench --tune` writes for this device and
  // driver, in the pipeline cache's folder (above; whether or not the pipeline cache is on).
  // VKALEX_TUNING=0 turns it off. Forced kernels (below) win over it.
  bool tuning_file = true;
  // Move data through staging buffers even where device memory is host-visible
  // (lavapipe, integrated GPUs). For testing the path discrete GPUs take.
  bool force_staging = false;
  // Pretend the device has smaller limits than it has (tests).
  DeviceLimitOverrides limits;
  // Force a kernel variant per op, e.g. {"linear", "linear.rows"} (tests, comparisons); the
  // names are checked when an op or plan first asks (ops::kernel_variants lists them). The
  // environment variable VKALEX_KERNELS=op=variant,op=variant adds to these.
  std::map<std::string, std::string> kernels;
};

class Tensor;
struct HostDevice;  // vkalex/host_vulkan.hpp

// A handle on a device: the Vulkan instance, the chosen device, its compute queue, memory and
// pipelines. Everything made from a Context (Nets, Trainers, Tensors, Recorders, and other
// handles from share()) shares ownership of the device, so each may outlive the Context it was
// made from: the device is released (pipeline cache saved, the engine's Vulkan objects
// destroyed, and on a device of the engine's own, the device and instance) when the last of
// them goes. A moved-from Context has no device; using it throws Error.
//
// Threads: a device, with everything made from it, is used by one thread at a time (record,
// submit, upload, download, forward, step); different devices are independent. Only the
// queue's submits are shared with a host (HostDevice::lock_queue), and the validation log and
// the pipeline cache have their own locks.
class Context {
 public:
  explicit Context(const ContextOptions& options = {});
  // Runs on the host's device instead (vkalex/host_vulkan.hpp): creates and destroys none of
  // its Vulkan objects, only the engine's own (memory, pipelines, command pools) on it.
  // options.device and options.validation do not apply (the host chose both). Throws Error
  // saying what is missing where the device lacks what the engine needs (Vulkan 1.1, a compute
  // queue family) or a handle or function is not given.
  explicit Context(const HostDevice& host, const ContextOptions& options = {});
  ~Context();
  Context(Context&&) noexcept;
  Context& operator=(Context&&) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Another handle on the same device.
  Context share() const;

  const DeviceInfo& device() const;

  // Allocates a device tensor (contents undefined). Throws Error naming the size when the
  // device is out of memory or the size is beyond its limits.
  Tensor tensor(const Shape& shape, DType dtype = DType::F32);

  // Allocates a host-visible tensor for moving data with Recorder::copy (not usable by ops):
  // upload() and download() on it are plain memory copies.
  Tensor staging_tensor(const Shape& shape, DType dtype = DType::F32);

  // Copies host data into / out of a tensor and waits until done. The sizes must match the
  // tensor's exactly. Must not overlap a submission that uses the tensor.
  void upload(const Tensor& tensor, std::span<const float> data);
  void upload(const Tensor& tensor, std::span<const uint32_t> data);
  std::vector<float> download(const Tensor& tensor);
  std::vector<uint32_t> download_u32(const Tensor& tensor);
  // Sets every element's bits to `value`'s bits (NaN included; for an f16 tensor, the bits of
  // value's half) and waits until done. upload() and download() convert float data to and
  // from half for f16 tensors.
  void fill(const Tensor& tensor, float value);

  // True when tensors are read and written by the host directly (no staging copies).
  bool direct_host_access() const;

  // The bytes of memory the engine may use on this device (DeviceLimitOverrides::device_memory
  // where set, else the largest device-local heap), and the bytes its allocations hold now.
  uint64_t memory_budget() const;
  uint64_t memory_in_use() const;
  // Throws Error (VK_ERROR_OUT_OF_DEVICE_MEMORY) where `bytes` more, for `what` at `batch`
  // images of `bytes_per_image` each (plus the rest, which does not grow with the batch), can
  // certainly not be had within memory_budget(): it names the batch that would fit.
  void require_memory_for_batch(const std::string& what, uint32_t batch, uint64_t bytes, uint64_t bytes_per_image) const;

  // Messages the validation layer reported (warnings and errors) since the last call.
  std::vector<std::string> take_validation_messages();
  // Where the pipeline cache lives (empty when off), and why it was not loaded, if it was not.
  std::string pipeline_cache_path() const;
  std::string pipeline_cache_status() const;
  // Saves the pipeline cache now (also done when the device is released).
  void save_pipeline_cache();
  // Where this device's tuning file is (whether or not it exists; empty when the tuning file
  // is off), and what became of it: "loaded", "no tuning file yet", "off..." or "ignored: why".
  std::string tuning_file_path() const;
  std::string tuning_file_status() const;

  // Engine internals. impl() throws Error on a moved-from Context.
  detail::DeviceImpl& impl() const;
  const std::shared_ptr<detail::DeviceImpl>& shared_impl() const { return impl_; }
  explicit Context(std::shared_ptr<detail::DeviceImpl> impl);

 private:
  std::shared_ptr<detail::DeviceImpl> impl_;
};

// A shape plus a region of device memory. Copying a Tensor copies the handle, not the data
// (both refer to the same memory); the memory is freed when the last handle goes.
class Tensor {
 public:
  Tensor() = default;

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  uint64_t numel() const { return shape_.numel(); }
  uint64_t bytes() const { return numel() * dtype_size(dtype_); }
  bool empty() const { return alloc_ == nullptr; }

  // The same memory seen with another shape of the same element count.
  Tensor reshaped(const Shape& shape) const;
  // A part of this tensor's memory, `byte_offset` bytes in, seen with `shape`. Ops can bind it
  // when the offset is a multiple of the device's minStorageBufferOffsetAlignment (256 always is).
  Tensor view(uint64_t byte_offset, const Shape& shape, DType dtype = DType::F32) const;
  // True when both refer to overlapping memory.
  bool aliases(const Tensor& other) const;

  // Engine internals: the allocation and the byte offset of this tensor within it.
  const detail::Allocation& allocation() const;
  uint64_t offset() const { return offset_; }

 private:
  friend class Context;
  friend struct detail::TensorAccess;
  std::shared_ptr<detail::Allocation> alloc_;
  Shape shape_;
  DType dtype_ = DType::F32;
  uint64_t offset_ = 0;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
