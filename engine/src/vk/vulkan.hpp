// Vulkan through volk: the one header engine code includes to reach Vulkan.
// Only files in engine/src/vk/ include it.
#pragma once

#include <volk.h>

#include <string>

namespace vkalex::detail {

const char* vk_result_name(VkResult result);

// Throws vkalex::Error "<what>: <VkResult name>" unless result is VK_SUCCESS.
void vk_check(VkResult result, const char* what);

}  // namespace vkalex::detail
