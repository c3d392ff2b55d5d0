// Recorder: one command buffer recorded once and replayed, with the barriers it needs and
// optional timestamps around each command.
#include "vkalex/recorder.hpp"

#include <cstring>
#include <functional>

#include "vk/device.hpp"
#include "vk/dispatch.hpp"
#include "vk/exchange.hpp"
#include "vk/sync.hpp"
#include "vkalex/error.hpp"
#include "vkalex/host_vulkan.hpp"

namespace vkalex {
namespace detail {

namespace {
constexpr uint32_t kQueriesPerPool = 256;
constexpr uint32_t kSetsPerPool = 128;
constexpr uint32_t kDescriptorsPerPool = kSetsPerPool * 8;
}  // namespace

struct RecorderImpl {
  std::shared_ptr<DeviceImpl> dev;
  bool timestamps = false;
  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;

  std::vector<VkDescriptorPool> descriptor_pools;
  size_t pools_in_use = 0;
  uint32_t sets_left = 0, descriptors_left = 0, texels_left = 0;
  std::vector<VkBufferView> views;  // texel-buffer views of the current recording

  std::vector<VkQueryPool> query_pools;
  std::vector<std::string> timed_labels;
  std::vector<std::string> timed_scopes;
  std::string scope;
  VkQueryPool frame_queries = VK_NULL_HANDLE;  // start and end of the whole recording
  double gpu_ms = 0;

  HazardTracker tracker;
  // Every command of the recording but the timestamps, to record it again into a host's
  // command buffer (record_commands in vkalex/host_vulkan.hpp).
  std::vector<std::function<void(const DeviceTable&, VkCommandBuffer)>> log;
  std::vector<Tensor> scratch;  // workspaces of the ops in the current recording
  enum class State { Empty, Recording, Recorded } state = State::Empty;
  bool in_flight = false;
  size_t dispatches = 0, barriers = 0, submits = 0;
  std::vector<DispatchTiming> timings;

  ~RecorderImpl() {
    if (!dev) return;
    auto& vk = dev->vk;
    if (in_flight) vk.vkWaitForFences(dev->device, 1, &fence, VK_TRUE, UINT64_MAX);
    for (auto p : descriptor_pools) vk.vkDestroyDescriptorPool(dev->device, p, nullptr);
    for (auto v : views) vk.vkDestroyBufferView(dev->device, v, nullptr);
    for (auto q : query_pools) vk.vkDestroyQueryPool(dev->device, q, nullptr);
    if (frame_queries) vk.vkDestroyQueryPool(dev->device, frame_queries, nullptr);
    if (fence) vk.vkDestroyFence(dev->device, fence, nullptr);
    if (pool) vk.vkDestroyCommandPool(dev->device, pool, nullptr);
  }

  void require_recording(const char* what) const {
    if (state != State::Recording) {
      throw Error(std::string("Recorder: ") + what + " outside begin()/end()");
    }
  }

  VkDescriptorSet allocate_set(VkDescriptorSetLayout layout, uint32_t descriptors, uint32_t texels) {
    auto& vk = dev->vk;
    if (sets_left == 0 || descriptors_left < descriptors || texels_left < texels) {
      if (pools_in_use == descriptor_pools.size()) {
        const VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kDescriptorsPerPool},
                                               {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, kDescriptorsPerPool}};
        VkDescriptorPoolCreateInfo info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
        info.maxSets = kSetsPerPool;
        info.poolSizeCount = 2;
        info.pPoolSizes = sizes;
        VkDescriptorPool p = VK_NULL_HANDLE;
        vk_check(vk.vkCreateDescriptorPool(dev->device, &info, nullptr, &p), "vkCreateDescriptorPool");
        descriptor_pools.push_back(p);
      }
      ++pools_in_use;
      sets_left = kSetsPerPool;
      descriptors_left = texels_left = kDescriptorsPerPool;
    }
    VkDescriptorSetAllocateInfo info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    info.descriptorPool = descriptor_pools[pools_in_use - 1];
    info.descriptorSetCount = 1;
    info.pSetLayouts = &layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    vk_check(vk.vkAllocateDescriptorSets(dev->device, &info, &set), "vkAllocateDescriptorSets");
    --sets_left;
    descriptors_left -= descriptors;
    texels_left -= texels;
    return set;
  }

  // Records a command into the recorder's command buffer and keeps it in the log.
  template <typename F>
  void emit(F&& command) {
    command(dev->vk, cmd);
    log.emplace_back(std::forward<F>(command));
  }

  // Records the barrier these accesses need, then (if timing) the opening timestamp.
  void before_command(const std::vector<BufferAccess>& accesses, const char* label) {
    auto barrier = tracker.before(accesses);
    if (barrier.needed()) {
      emit([b = std::move(barrier)](const DeviceTable& vk, VkCommandBuffer c) {
        vk.vkCmdPipelineBarrier(c, b.src_stages, b.dst_stages, 0, 0, nullptr, static_cast<uint32_t>(b.buffers.size()),
                                b.buffers.data(), 0, nullptr);
      });
      ++barriers;
    }
    if (timestamps) {
      const uint32_t q = static_cast<uint32_t>(timed_labels.size()) * 2;
      if (q / kQueriesPerPool == query_pools.size()) {
        VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        info.queryType = VK_QUERY_TYPE_TIMESTAMP;
        info.queryCount = kQueriesPerPool;
        VkQueryPool p = VK_NULL_HANDLE;
        vk_check(dev->vk.vkCreateQueryPool(dev->device, &info, nullptr, &p), "vkCreateQueryPool");
        query_pools.push_back(p);
      }
      VkQueryPool p = query_pools[q / kQueriesPerPool];
      if (q % kQueriesPerPool == 0) dev->vk.vkCmdResetQueryPool(cmd, p, 0, kQueriesPerPool);
      dev->vk.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, p, q % kQueriesPerPool);
      timed_labels.emplace_back(label ? label : "?");
      timed_scopes.push_back(scope);
    }
  }

  void after_command() {
    if (!timestamps) return;
    const uint32_t q = static_cast<uint32_t>(timed_labels.size()) * 2 - 1;
    dev->vk.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                                query_pools[q / kQueriesPerPool], q % kQueriesPerPool);
  }

  void collect_timings() {
    timings.clear();
    if (frame_queries) {
      uint64_t t[2] = {0, 0};
      vk_check(dev->vk.vkGetQueryPoolResults(dev->device, frame_queries, 0, 2, sizeof t, t, sizeof(uint64_t),
                                             VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
               "vkGetQueryPoolResults");
      gpu_ms = double((t[1] - t[0]) & dev->timestamp_mask) * dev->info.timestamp_period_ns * 1e-6;
    }
    if (!timestamps || timed_labels.empty()) return;
    const uint32_t total = static_cast<uint32_t>(timed_labels.size()) * 2;
    std::vector<uint64_t> ticks(total);
    for (uint32_t first = 0; first < total; first += kQueriesPerPool) {
      const uint32_t count = std::min(kQueriesPerPool, total - first);
      vk_check(dev->vk.vkGetQueryPoolResults(dev->device, query_pools[first / kQueriesPerPool], 0,
                                             count, count * sizeof(uint64_t), ticks.data() + first,
                                             sizeof(uint64_t),
                                             VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
               "vkGetQueryPoolResults");
    }
    for (size_t i = 0; i < timed_labels.size(); ++i) {
      const uint64_t dt = (ticks[2 * i + 1] - ticks[2 * i]) & dev->timestamp_mask;
      timings.push_back({timed_labels[i], dt * dev->info.timestamp_period_ns * 1e-6, timed_scopes[i]});
    }
  }

  void wait() { wait_for(UINT64_MAX); }

  bool wait_for(uint64_t timeout_ns) {
    if (!in_flight) return true;
    const VkResult result = dev->vk.vkWaitForFences(dev->device, 1, &fence, VK_TRUE, timeout_ns);
    if (result == VK_TIMEOUT) return false;
    vk_check(result, "vkWaitForFences");
    in_flight = false;
    collect_timings();
    return true;
  }
};

namespace {

BufferAccess access_of(const Tensor& t, uint64_t offset, uint64_t size, VkPipelineStageFlags stage,
                       bool write) {
  const Allocation& a = t.allocation();
  return {a.buffer(), a.offset + t.offset() + offset, size, stage, write};
}

}  // namespace

const DeviceInfo& recorder_device(const Recorder& rec) { return rec.impl().dev->info; }

Tensor recorder_scratch(Recorder& rec, const Shape& shape, DType dtype) {
  auto& r = rec.impl();
  r.require_recording("an op's workspace");
  r.scratch.push_back(TensorAccess::make(
      r.dev->allocator.allocate(r.dev, MemoryKind::Device, shape.numel() * dtype_size(dtype)), shape, dtype));
  return r.scratch.back();
}

std::array<uint32_t, 3> grid_for(const DeviceInfo& device, uint64_t workgroups) {
  const uint64_t mx = device.max_workgroup_count[0], my = device.max_workgroup_count[1],
                 mz = device.max_workgroup_count[2];
  if (workgroups <= mx) return {static_cast<uint32_t>(workgroups), 1, 1};
  const uint64_t y = (workgroups + mx - 1) / mx;
  if (y <= my) return {static_cast<uint32_t>(mx), static_cast<uint32_t>(y), 1};
  const uint64_t z = (y + my - 1) / my;
  if (z > mz) throw Error("a dispatch of " + std::to_string(workgroups) + " workgroups exceeds the device's limits");
  return {static_cast<uint32_t>(mx), static_cast<uint32_t>(my), static_cast<uint32_t>(z)};
}

void record_dispatch(Recorder& rec, const Dispatch& d) {
  RecorderImpl& r = rec.impl();
  r.require_recording("recording a dispatch");
  if (static_cast<uint64_t>(d.groups[0]) * d.groups[1] * d.groups[2] == 0) return;
  auto& dev = *r.dev;
  // The float tensors' element type picks the kernel: NAME for F32, its twin NAME_f16
  // (shaders/storage.glsl) for F16. One dispatch never mixes them.
  std::string shader = d.shader;
  int f16 = -1;
  for (const Binding& b : d.bindings) {
    if (b.use == Use::Unused || b.tensor->dtype() == DType::U32) continue;
    const int is16 = b.tensor->dtype() == DType::F16 ? 1 : 0;
    if (f16 >= 0 && f16 != is16) {
      throw Error(std::string(d.label) + ": its float tensors must all be f32 or all f16, not both");
    }
    f16 = is16;
  }
  if (f16 == 1) {
    if (!dev.info.storage_buffer_16bit) {
      throw Error(std::string(d.label) + ": f16 tensors need 16-bit storage buffers (storageBuffer16BitAccess), which \"" +
                  dev.info.name + "\" does not have");
    }
    shader += "_f16";
    if (!embedded_shader_exists(shader)) {
      throw Error(std::string(d.label) + ": kernel " + d.shader +
                  " has no f16 version (fp16 storage covers the forward pass only)");
    }
  }
  uint32_t texel_mask = 0, texels = 0;
  for (size_t i = 0; i < d.bindings.size(); ++i) {
    if (d.bindings[i].texel == Texel::None) continue;
    texel_mask |= 1u << i;
    ++texels;
  }
  const auto& pipeline = dev.pipelines.get({shader, d.specialization,
                                            static_cast<uint32_t>(d.bindings.size()), texel_mask, d.push_bytes});

  std::vector<VkDescriptorBufferInfo> infos(d.bindings.size());
  std::vector<VkBufferView> views(d.bindings.size(), VK_NULL_HANDLE);
  std::vector<BufferAccess> accesses;
  for (size_t i = 0; i < d.bindings.size(); ++i) {
    const Binding& b = d.bindings[i];
    const Tensor& t = *b.tensor;
    const Allocation& a = t.allocation();
    if (a.kind != MemoryKind::Device) {
      throw Error(std::string(d.label) + ": binding " + std::to_string(i) +
                  " is a staging tensor; ops read and write device tensors only");
    }
    require_usage(a, b.texel != Texel::None ? VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT : VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                  std::string(d.label) + ": binding " + std::to_string(i) +
                      (b.texel != Texel::None ? " (a texel buffer)" : " (a storage buffer)"));
    const uint64_t size = b.size ? b.size : t.bytes() - b.offset;
    const uint64_t offset = a.offset + t.offset() + b.offset;
    if (b.offset + size > t.bytes() || size == 0) {
      throw Error(std::string(d.label) + ": binding " + std::to_string(i) + " (bytes " +
                  std::to_string(b.offset) + ".." + std::to_string(b.offset + size) +
                  ") lies outside its tensor " + t.shape().str());
    }
    if (b.texel != Texel::None) {
      // F16 tensors are viewed in the 16-bit formats; the kernel's fetch converts to fp32.
      const bool half = t.dtype() == DType::F16;
      const uint64_t texel_bytes = (b.texel == Texel::RGBA32F ? 4 : 1) * (half ? 2 : 4);
      const uint64_t texels_bound = size / texel_bytes;
      if (texels_bound == 0 || texels_bound > dev.info.max_texel_buffer_elements ||
          offset % std::max<uint64_t>(1, dev.info.min_texel_buffer_offset_alignment) != 0) {
        throw Error(std::string(d.label) + ": binding " + std::to_string(i) + " (" + std::to_string(texels_bound) +
                    " texels at byte " + std::to_string(offset) +
                    ") is not a texel buffer this device can bind (maxTexelBufferElements " +
                    std::to_string(dev.info.max_texel_buffer_elements) + ", minTexelBufferOffsetAlignment " +
                    std::to_string(dev.info.min_texel_buffer_offset_alignment) + ")");
      }
      VkBufferViewCreateInfo view{VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
      view.buffer = a.buffer();
      view.format = b.texel == Texel::RGBA32F ? (half ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT)
                    : b.texel == Texel::R32F  ? (half ? VK_FORMAT_R16_SFLOAT : VK_FORMAT_R32_SFLOAT)
                                              : VK_FORMAT_R32_UINT;
      view.offset = offset;
      view.range = texels_bound * texel_bytes;
      r.views.push_back(VK_NULL_HANDLE);
      vk_check(dev.vk.vkCreateBufferView(dev.device, &view, nullptr, &r.views.back()), "vkCreateBufferView");
      views[i] = r.views.back();
    } else if (size > dev.info.max_storage_buffer_range) {
      throw Error(std::string(d.label) + ": tensor " + t.shape().str() + " needs a binding of " +
                  std::to_string(size) + " bytes, more than the device's maxStorageBufferRange (" +
                  std::to_string(dev.info.max_storage_buffer_range) + "); use a smaller batch");
    }
    if (b.texel == Texel::None && offset % dev.info.min_storage_buffer_offset_alignment != 0) {
      throw Error(std::string(d.label) + ": binding " + std::to_string(i) + " starts at byte " +
                  std::to_string(offset) + ", not a multiple of minStorageBufferOffsetAlignment");
    }
    infos[i] = {a.buffer(), offset, size};
    if (b.use != Use::Unused) {
      if (b.use != Use::Write) accesses.push_back(access_of(t, b.offset, size, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, false));
      if (b.use != Use::Read) accesses.push_back(access_of(t, b.offset, size, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, true));
    }
  }

  VkDescriptorSet set = r.allocate_set(pipeline.set_layout, pipeline.bindings - texels, texels);
  std::vector<VkWriteDescriptorSet> writes(d.bindings.size());
  for (uint32_t i = 0; i < writes.size(); ++i) {
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstSet = set;
    writes[i].dstBinding = i;
    writes[i].descriptorCount = 1;
    if (views[i]) {
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
      writes[i].pTexelBufferView = &views[i];
    } else {
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[i].pBufferInfo = &infos[i];
    }
  }
  dev.vk.vkUpdateDescriptorSets(dev.device, static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);

  r.before_command(accesses, d.label);
  std::vector<std::byte> push(d.push_bytes);
  if (d.push_bytes) std::memcpy(push.data(), d.push, d.push_bytes);
  r.emit([p = pipeline.pipeline, layout = pipeline.layout, set, push = std::move(push), groups = d.groups](
             const DeviceTable& vk, VkCommandBuffer c) {
    vk.vkCmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, p);
    vk.vkCmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0, nullptr);
    if (!push.empty()) {
      vk.vkCmdPushConstants(c, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, static_cast<uint32_t>(push.size()), push.data());
    }
    vk.vkCmdDispatch(c, groups[0], groups[1], groups[2]);
  });
  r.after_command();
  ++r.dispatches;
}

}  // namespace detail

using detail::vk_check;

Recorder::Recorder(Context& context, const RecorderOptions& options)
    : impl_(std::make_unique<detail::RecorderImpl>()) {
  auto& r = *impl_;
  r.dev = context.shared_impl();
  auto& dev = *r.dev;
  if (options.timestamps && !dev.info.timestamps) {
    throw Error("timestamps asked for, but device \"" + dev.info.name +
                "\" cannot write them on its compute queue");
  }
  r.timestamps = options.timestamps;
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.queueFamilyIndex = dev.queue_family;
  vk_check(dev.vk.vkCreateCommandPool(dev.device, &pool_info, nullptr, &r.pool), "vkCreateCommandPool");
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = r.pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  vk_check(dev.vk.vkAllocateCommandBuffers(dev.device, &alloc, &r.cmd), "vkAllocateCommandBuffers");
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  vk_check(dev.vk.vkCreateFence(dev.device, &fence_info, nullptr, &r.fence), "vkCreateFence");
  if (dev.info.timestamps) {
    VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    info.queryType = VK_QUERY_TYPE_TIMESTAMP;
    info.queryCount = 2;
    vk_check(dev.vk.vkCreateQueryPool(dev.device, &info, nullptr, &r.frame_queries), "vkCreateQueryPool");
  }
}

Recorder::~Recorder() = default;
Recorder::Recorder(Recorder&&) noexcept = default;
Recorder& Recorder::operator=(Recorder&&) noexcept = default;

void Recorder::begin() {
  auto& r = *impl_;
  auto& dev = *r.dev;
  r.wait();
  vk_check(dev.vk.vkResetCommandPool(dev.device, r.pool, 0), "vkResetCommandPool");
  for (auto p : r.descriptor_pools) vk_check(dev.vk.vkResetDescriptorPool(dev.device, p, 0), "vkResetDescriptorPool");
  r.pools_in_use = 0;
  r.sets_left = r.descriptors_left = r.texels_left = 0;
  for (auto v : r.views) dev.vk.vkDestroyBufferView(dev.device, v, nullptr);
  r.views.clear();
  r.timed_labels.clear();
  r.timed_scopes.clear();
  r.scope.clear();
  r.timings.clear();
  r.tracker.reset();
  r.log.clear();
  r.scratch.clear();
  r.dispatches = r.barriers = r.submits = 0;
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  vk_check(dev.vk.vkBeginCommandBuffer(r.cmd, &begin), "vkBeginCommandBuffer");
  if (r.frame_queries) {
    dev.vk.vkCmdResetQueryPool(r.cmd, r.frame_queries, 0, 2);
    dev.vk.vkCmdWriteTimestamp(r.cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, r.frame_queries, 0);
  }
  detail::record_opening_barrier(dev.vk, r.cmd);
  r.gpu_ms = 0;
  r.state = detail::RecorderImpl::State::Recording;
}

void Recorder::end() {
  auto& r = *impl_;
  r.require_recording("end()");
  if (r.frame_queries) {
    r.dev->vk.vkCmdWriteTimestamp(r.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, r.frame_queries, 1);
  }
  detail::record_completion_barrier(r.dev->vk, r.cmd);
  vk_check(r.dev->vk.vkEndCommandBuffer(r.cmd), "vkEndCommandBuffer");
  r.state = detail::RecorderImpl::State::Recorded;
}

void Recorder::submit() {
  auto& r = *impl_;
  if (r.state != detail::RecorderImpl::State::Recorded) {
    throw Error("Recorder: submit() needs a finished recording (begin(), ops, end())");
  }
  r.wait();
  auto& dev = *r.dev;
  vk_check(dev.vk.vkResetFences(dev.device, 1, &r.fence), "vkResetFences");
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &r.cmd;
  vk_check(dev.submit(submit, r.fence), "vkQueueSubmit");
  r.in_flight = true;
  ++r.submits;
}

void Recorder::wait() { impl_->wait(); }

bool Recorder::wait_for(uint64_t timeout_ns) { return impl_->wait_for(timeout_ns); }

void Recorder::run() {
  submit();
  wait();
}

void Recorder::fill(const Tensor& tensor, float value) {
  auto& r = *impl_;
  r.require_recording("fill()");
  if (tensor.bytes() == 0) return;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const auto& a = tensor.allocation();
  if (tensor.dtype() == DType::F16) {  // vkCmdFillBuffer writes 32-bit words: two halves each
    bits = uint32_t(float_to_half(value)) * 0x10001u;
    if ((a.offset + tensor.offset()) % 4 != 0 || tensor.bytes() % 4 != 0) {
      throw Error("fill: the recorder fills f16 tensors of an even element count at 4-byte offsets only (tensor " +
                  tensor.shape().str() + "); Context::fill fills any");
    }
  }
  detail::require_usage(a, VK_BUFFER_USAGE_TRANSFER_DST_BIT, "fill");
  r.before_command({detail::access_of(tensor, 0, tensor.bytes(), VK_PIPELINE_STAGE_TRANSFER_BIT, true)}, "fill");
  r.emit([buf = a.buffer(), off = a.offset + tensor.offset(), size = tensor.bytes(), bits](const detail::DeviceTable& vk,
                                                                                          VkCommandBuffer c) {
    vk.vkCmdFillBuffer(c, buf, off, size, bits);
  });
  r.after_command();
}

void Recorder::copy(const Tensor& src, const Tensor& dst) {
  auto& r = *impl_;
  r.require_recording("copy()");
  if (src.bytes() != dst.bytes()) {
    throw Error("copy: source " + src.shape().str() + " and destination " + dst.shape().str() +
                " differ in size");
  }
  if (src.dtype() != dst.dtype()) {
    throw Error(std::string("copy: source is ") + dtype_name(src.dtype()) + ", destination " + dtype_name(dst.dtype()));
  }
  if (src.aliases(dst)) throw Error("copy: source and destination overlap");
  if (src.bytes() == 0) return;
  const auto& sa = src.allocation();
  const auto& da = dst.allocation();
  detail::require_usage(sa, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, "copy (source)");
  detail::require_usage(da, VK_BUFFER_USAGE_TRANSFER_DST_BIT, "copy (destination)");
  r.before_command({detail::access_of(src, 0, src.bytes(), VK_PIPELINE_STAGE_TRANSFER_BIT, false),
                    detail::access_of(dst, 0, dst.bytes(), VK_PIPELINE_STAGE_TRANSFER_BIT, true)},
                   "copy");
  VkBufferCopy region{sa.offset + src.offset(), da.offset + dst.offset(), src.bytes()};
  r.emit([src = sa.buffer(), dst = da.buffer(), region](const detail::DeviceTable& vk, VkCommandBuffer c) {
    vk.vkCmdCopyBuffer(c, src, dst, 1, &region);
  });
  r.after_command();
}

void record_commands(const Recorder& recording, VkCommandBuffer cmd) {
  const auto& r = recording.impl();
  if (r.state != detail::RecorderImpl::State::Recorded) {
    throw Error("record_commands: the recording is not finished (begin(), ops, end())");
  }
  if (cmd == VK_NULL_HANDLE) throw Error("record_commands: the command buffer is VK_NULL_HANDLE");
  const auto& vk = r.dev->vk;
  detail::record_opening_barrier(vk, cmd);
  for (const auto& command : r.log) command(vk, cmd);
  VkMemoryBarrier after{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  after.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  after.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT | VK_ACCESS_HOST_READ_BIT;
  vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                          VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &after, 0, nullptr, 0,
                          nullptr);
}

std::vector<DispatchTiming> Recorder::timings() const { return impl_->timings; }

void Recorder::set_scope(std::string scope) { impl_->scope = std::move(scope); }
double Recorder::gpu_time_ms() const { return impl_->gpu_ms; }
size_t Recorder::dispatch_count() const { return impl_->dispatches; }
size_t Recorder::barrier_count() const { return impl_->barriers; }
size_t Recorder::submit_count() const { return impl_->submits; }

}  // namespace vkalex

namespace vkalex::detail {

void copy_channels(Recorder& rec, const Tensor& src, uint32_t src_first, const Tensor& dst, uint32_t dst_first,
                   uint32_t count) {
  auto& r = rec.impl();
  r.require_recording("copy_channels()");
  const Shape& s = src.shape();
  const Shape& d = dst.shape();
  if (s.rank() < 2 || d.rank() != s.rank() || s[0] != d[0] || src.dtype() != dst.dtype() ||
      s.numel() / (uint64_t(s[0]) * s[1]) != d.numel() / (uint64_t(d[0]) * d[1])) {
    throw Error("copy_channels: " + s.str() + " and " + d.str() + " differ in more than their channels");
  }
  if (uint64_t(src_first) + count > s[1] || uint64_t(dst_first) + count > d[1]) {
    throw Error("copy_channels: channels " + std::to_string(src_first) + "+" + std::to_string(count) + " of " + s.str() +
                " to " + std::to_string(dst_first) + " of " + d.str() + " lie outside them");
  }
  if (src.aliases(dst)) throw Error("copy_channels: source and destination overlap");
  if (count == 0 || s[0] == 0) return;
  const uint64_t channel = s.numel() / (uint64_t(s[0]) * s[1]) * dtype_size(src.dtype());
  const auto& sa = src.allocation();
  const auto& da = dst.allocation();
  require_usage(sa, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, "copy_channels (source)");
  require_usage(da, VK_BUFFER_USAGE_TRANSFER_DST_BIT, "copy_channels (destination)");
  r.before_command({access_of(src, 0, src.bytes(), VK_PIPELINE_STAGE_TRANSFER_BIT, false),
                    access_of(dst, 0, dst.bytes(), VK_PIPELINE_STAGE_TRANSFER_BIT, true)},
                   "copy_channels");
  std::vector<VkBufferCopy> regions;
  const bool whole = count == s[1] && count == d[1];
  for (uint32_t n = 0; n < (whole ? 1u : s[0]); ++n) {
    regions.push_back({sa.offset + src.offset() + (uint64_t(n) * s[1] + src_first) * channel,
                       da.offset + dst.offset() + (uint64_t(n) * d[1] + dst_first) * channel,
                       (whole ? uint64_t(s[0]) : 1u) * count * channel});
  }
  r.emit([sb = sa.buffer(), db = da.buffer(), regions](const DeviceTable& vk, VkCommandBuffer c) {
    vk.vkCmdCopyBuffer(c, sb, db, uint32_t(regions.size()), regions.data());
  });
  r.after_command();
}

void record_host_writes_barrier(Recorder& rec) {
  auto& r = rec.impl();
  r.require_recording("record_host_writes_barrier()");
  r.emit([](const DeviceTable& vk, VkCommandBuffer c) {
    VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_HOST_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_SHADER_READ_BIT;
    vk.vkCmdPipelineBarrier(c, VK_PIPELINE_STAGE_HOST_BIT,
                            VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0,
                            nullptr, 0, nullptr);
  });
}

Timeline::Timeline(std::shared_ptr<DeviceImpl> device) : device_(std::move(device)) {
  if (!device_->info.timeline_semaphore || !device_->vk.vkWaitSemaphores || !device_->vk.vkSignalSemaphore) {
    throw Error("device \"" + device_->info.name +
                "\" has no timeline semaphores enabled (Vulkan 1.2; a Context on a host's device does not enable them)");
  }
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  type.initialValue = 0;
  VkSemaphoreCreateInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  info.pNext = &type;
  vk_check(device_->vk.vkCreateSemaphore(device_->device, &info, nullptr, &semaphore_), "vkCreateSemaphore");
}

Timeline::~Timeline() {
  if (semaphore_) device_->vk.vkDestroySemaphore(device_->device, semaphore_, nullptr);
}

void Timeline::wait(uint64_t value) const {
  VkSemaphoreWaitInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO};
  info.semaphoreCount = 1;
  info.pSemaphores = &semaphore_;
  info.pValues = &value;
  vk_check(device_->vk.vkWaitSemaphores(device_->device, &info, UINT64_MAX), "vkWaitSemaphores");
}

void Timeline::signal(uint64_t value) const {
  VkSemaphoreSignalInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO};
  info.semaphore = semaphore_;
  info.value = value;
  vk_check(device_->vk.vkSignalSemaphore(device_->device, &info), "vkSignalSemaphore");
}

void submit_timeline(Recorder& rec, std::optional<TimelinePoint> wait, std::optional<TimelinePoint> signal) {
  auto& r = rec.impl();
  if (r.state != RecorderImpl::State::Recorded) {
    throw Error("Recorder: submit needs a finished recording (begin(), ops, end())");
  }
  r.wait();
  auto& dev = *r.dev;
  vk_check(dev.vk.vkResetFences(dev.device, 1, &r.fence), "vkResetFences");
  const VkSemaphore wait_sem = wait ? wait->timeline->handle() : VK_NULL_HANDLE;
  const VkSemaphore signal_sem = signal ? signal->timeline->handle() : VK_NULL_HANDLE;
  const uint64_t wait_value = wait ? wait->value : 0, signal_value = signal ? signal->value : 0;
  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
  VkTimelineSemaphoreSubmitInfo values{VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO};
  values.waitSemaphoreValueCount = wait ? 1 : 0;
  values.pWaitSemaphoreValues = &wait_value;
  values.signalSemaphoreValueCount = signal ? 1 : 0;
  values.pSignalSemaphoreValues = &signal_value;
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.pNext = &values;
  submit.waitSemaphoreCount = wait ? 1 : 0;
  submit.pWaitSemaphores = &wait_sem;
  submit.pWaitDstStageMask = &wait_stage;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &r.cmd;
  submit.signalSemaphoreCount = signal ? 1 : 0;
  submit.pSignalSemaphores = &signal_sem;
  vk_check(dev.submit(submit, r.fence), "vkQueueSubmit");
  r.in_flight = true;
  ++r.submits;
}

}  // namespace vkalex::detail
