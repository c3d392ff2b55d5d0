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
  // engine's vkQueueSubmit calls (lock before, unlock after, also when the submit fails).
  // Both or neither.
  std::function<void()> lock_queue, unlock_queue;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
