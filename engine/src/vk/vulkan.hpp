// Vulkan through the engine's own function tables: the one header engine code includes to
// reach Vulkan. Only files in engine/src/vk/ include it.
//
// No Vulkan function is a global symbol of the engine: the loader's vkGetInstanceProcAddr is
// found at run time (dlopen of libvulkan.so.1), the instance-level functions are loaded per
// VkInstance into an InstanceTable and the device-level ones per VkDevice into a DeviceTable.
// So a host program that links the loader, or a volk of its own, is undisturbed, and a device
// can be reached through functions the host hands over (step 5's adopted devices).
#pragma once

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <string>

namespace vkalex::detail {

// Before any instance exists (taken through vkGetInstanceProcAddr(NULL, ...)).
#define VKALEX_VK_GLOBAL_FUNCTIONS(X) \
  X(vkCreateInstance)                 \
  X(vkEnumerateInstanceLayerProperties)

// Of one VkInstance. Every one is core Vulkan 1.1, so each must load.
#define VKALEX_VK_INSTANCE_FUNCTIONS(X)      \
  X(vkDestroyInstance)                       \
  X(vkEnumeratePhysicalDevices)              \
  X(vkEnumerateDeviceExtensionProperties)    \
  X(vkGetPhysicalDeviceProperties)           \
  X(vkGetPhysicalDeviceProperties2)          \
  X(vkGetPhysicalDeviceFeatures2)            \
  X(vkGetPhysicalDeviceMemoryProperties)     \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkCreateDevice)                          \
  X(vkGetDeviceProcAddr)

// Of an instance, where its extension is enabled (validation); may be null.
#define VKALEX_VK_OPTIONAL_INSTANCE_FUNCTIONS(X) \
  X(vkCreateDebugUtilsMessengerEXT)              \
  X(vkDestroyDebugUtilsMessengerEXT)

// Of one VkDevice: what the engine records and submits with. All core Vulkan 1.0.
#define VKALEX_VK_DEVICE_FUNCTIONS(X)                                                          \
  X(vkAllocateCommandBuffers) X(vkAllocateDescriptorSets) X(vkAllocateMemory)                  \
  X(vkBeginCommandBuffer) X(vkBindBufferMemory) X(vkCmdBindDescriptorSets) X(vkCmdBindPipeline) \
  X(vkCmdCopyBuffer) X(vkCmdDispatch) X(vkCmdFillBuffer) X(vkCmdPipelineBarrier)               \
  X(vkCmdPushConstants) X(vkCmdResetQueryPool) X(vkCmdWriteTimestamp) X(vkCreateBuffer)        \
  X(vkCreateBufferView) X(vkCreateCommandPool) X(vkCreateComputePipelines)                     \
  X(vkCreateDescriptorPool) X(vkCreateDescriptorSetLayout) X(vkCreateFence)                    \
  X(vkCreatePipelineCache) X(vkCreatePipelineLayout) X(vkCreateQueryPool)                      \
  X(vkCreateShaderModule) X(vkDestroyBuffer) X(vkDestroyBufferView) X(vkDestroyCommandPool)    \
  X(vkDestroyDescriptorPool) X(vkDestroyDescriptorSetLayout) X(vkDestroyDevice)                \
  X(vkDestroyFence) X(vkDestroyPipeline) X(vkDestroyPipelineCache) X(vkDestroyPipelineLayout)  \
  X(vkDestroyQueryPool) X(vkDestroyShaderModule) X(vkDeviceWaitIdle) X(vkEndCommandBuffer)     \
  X(vkFreeMemory) X(vkGetBufferMemoryRequirements) X(vkGetDeviceQueue) X(vkGetPipelineCacheData) \
  X(vkGetQueryPoolResults) X(vkMapMemory) X(vkQueueSubmit) X(vkQueueWaitIdle) X(vkResetCommandBuffer)             \
  X(vkResetCommandPool) X(vkResetDescriptorPool) X(vkResetFences) X(vkUnmapMemory)             \
  X(vkUpdateDescriptorSets) X(vkWaitForFences) X(vkCreateSemaphore) X(vkDestroySemaphore)

// Of a device with Vulkan 1.2's timeline semaphores (DeviceInfo::timeline_semaphore); null
// where the device does not give them.
#define VKALEX_VK_OPTIONAL_DEVICE_FUNCTIONS(X) X(vkWaitSemaphores) X(vkSignalSemaphore) X(vkGetSemaphoreCounterValue)

#define VKALEX_VK_MEMBER(name) PFN_##name name = nullptr;

struct InstanceTable {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  VKALEX_VK_GLOBAL_FUNCTIONS(VKALEX_VK_MEMBER)
  VKALEX_VK_INSTANCE_FUNCTIONS(VKALEX_VK_MEMBER)
  VKALEX_VK_OPTIONAL_INSTANCE_FUNCTIONS(VKALEX_VK_MEMBER)
};

struct DeviceTable {
  VKALEX_VK_DEVICE_FUNCTIONS(VKALEX_VK_MEMBER)
  VKALEX_VK_OPTIONAL_DEVICE_FUNCTIONS(VKALEX_VK_MEMBER)
};

#undef VKALEX_VK_MEMBER

// The functions of the system's Vulkan loader (libvulkan.so.1, opened once and kept): its
// vkGetInstanceProcAddr and the global functions, no instance ones yet. Throws Error when there
// is no loader, and returns the loader's Vulkan version in `*version` (1.0 when it predates
// vkEnumerateInstanceVersion).
const InstanceTable& system_loader(uint32_t* version = nullptr);
// Loads the instance-level functions of `instance` into `table` through its
// vkGetInstanceProcAddr; throws Error naming a core function that does not load.
void load_instance_functions(InstanceTable& table, VkInstance instance);
// Loads the device-level functions of `device` through `get_device_proc_addr`; throws Error
// naming one that does not load.
void load_device_functions(DeviceTable& table, PFN_vkGetDeviceProcAddr get_device_proc_addr, VkDevice device);

const char* vk_result_name(VkResult result);

// Throws vkalex::Error "<what>: <VkResult name>" unless result is VK_SUCCESS.
void vk_check(VkResult result, const char* what);

}  // namespace vkalex::detail
