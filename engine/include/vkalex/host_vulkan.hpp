// Running the engine on a Vulkan device the host program already owns (a game, a tool).
//
// Include Vulkan's header your own way first (<vulkan/vulkan.h>, or volk.h, which must then
// come before this header); this one includes <vulkan/vulkan.h> only where neither was.
#pragma once

#if !defined(VK_VERSION_1_0)
#include <vulkan/vulkan.h>
#endif

#include <cstdint>
#include <functional>

#include "vkalex/context.hpp"
#include "vkalex/export.hpp"
#include "vkalex/recorder.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// The host's Vulkan objects, which a Context made from them uses and never destroys: the host
// destroys them, after every Context, Net, Trainer, Tensor and Recorder made from them is gone.
// The engine reaches Vulkan only through the two functions given here (it loads its own tables
// from them), so a host using volk or the plain loader is undisturbed.
struct HostDevice {
  VkInstance instance = VK_NULL_HANDLE;   // created with apiVersion 1.1 or later
  VkPhysicalDevice physical_device = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;       // made from physical_device
  uint32_t queue_family = 0;              // a family with VK_QUEUE_COMPUTE_BIT
  VkQueue queue = VK_NULL_HANDLE;         // a queue of that family on `device`
  PFN_vkGetInstanceProcAddr get_instance_proc_addr = nullptr;  // required
  // Optional: where null, the instance's vkGetDeviceProcAddr.
  PFN_vkGetDeviceProcAddr get_device_proc_addr = nullptr;
  // Whether the host created `device` with VkPhysicalDevice16BitStorageFeatures::
  // storageBuffer16BitAccess enabled: nets with fp16 storage need it. The engine cannot ask a
  // device what was enabled on it, so it takes the host's word, checked against what the
  // physical device supports.
  bool storage_buffer_16bit = false;
  // Where other threads of the host submit to the same queue: called around each of the
  // engine's vkQueueSubmit calls (lock before, unlock after, also when the submit fails), on
  // the thread that called the engine, and around its vkQueueWaitIdle when the device is
  // released. Both or neither. The engine's other Vulkan calls need no lock of the host's:
  // they are on objects of its own (command pools, fences, descriptor pools, memory).
  // Besides that vkQueueWaitIdle the engine waits only on its own fences, never on the device.
  std::function<void()> lock_queue, unlock_queue;
};

// A byte range of a VkBuffer, the host's or the engine's.
struct HostBuffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0;
  VkDeviceSize size = 0;
  // What the buffer was created for. Ops read and write a tensor as a storage buffer (some
  // kernels read their input as a uniform texel buffer), and uploads, downloads and copies
  // move it with transfers: a buffer lacking a bit a use needs is refused then, by name.
  // VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
  // VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT allows every use.
  VkBufferUsageFlags usage = 0;
};

// The host's buffer range seen as a tensor, without a copy: ops, Recorder and Net::set_input
// take it like any tensor. `buffer.offset` must be a multiple of the device's
// minStorageBufferOffsetAlignment and `buffer.size` at least the shape's bytes. The tensor
// borrows the buffer: the host keeps it (and its memory) alive while the tensor, or a recording
// that uses it, lives, and destroys it itself. Where the host's memory is host-visible, the
// engine still reaches it only through the device (upload() and download() copy through a
// staging buffer). Throws Error naming what is wrong.
Tensor wrap_buffer(Context& context, const HostBuffer& buffer, const Shape& shape, DType dtype = DType::F32);

// Where a tensor lives (e.g. a Net's probabilities()), for the host's own commands to read or
// write it: the VkBuffer, the tensor's byte range in it, and the buffer's usage.
HostBuffer buffer_of(const Tensor& tensor);

// Records a finished recording's commands (every command but timestamps; e.g. a Net's
// host_recording()) into the host's command buffer `cmd`, which must be in the recording state,
// outside a render pass, from a pool of the Context's queue family (the engine's buffers are
// VK_SHARING_MODE_EXCLUSIVE and owned by that family; a buffer of the host's given to
// wrap_buffer must be usable by it too: exclusive to it, or concurrent with it among its
// families). The host then submits it, as often as it likes, to any queue of that family.
//
// Barriers recorded around the commands, so the host needs none of its own for the engine:
//   before: a global memory barrier from every stage and write of the host's earlier commands
//     (VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_WRITE_BIT) to the engine's compute
//     shaders and transfers (their reads and writes): what the host wrote into an input buffer
//     is seen, and an earlier run's reads finish before this one's writes.
//   after: a global memory barrier from the engine's compute-shader and transfer writes to
//     every later stage and access (VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | HOST_BIT,
//     VK_ACCESS_MEMORY_READ_BIT | MEMORY_WRITE_BIT | HOST_READ_BIT): the host's later commands,
//     and the host itself after waiting on its fence, see the outputs.
// The commands leave the compute pipeline, descriptor set 0 and the push constants bound to
// the engine's: rebind the host's own after them. They refer to the recording's descriptor
// sets and buffer views, which stay valid until the recording is recorded again (begin(), or a
// Net's prepare() for another batch, set_input(), set_timestamps()) or destroyed: let every
// submission of `cmd` finish before either. The recording must not be running at the same
// time in the engine's own submissions (Net::forward() uses the same activations): one
// thread, one submission at a time, as for the Context.
// Throws Error where the recording is not finished or `cmd` is null.
void record_commands(const Recorder& recording, VkCommandBuffer cmd);

}  // namespace vkalex
VKALEX_PUBLIC_END
