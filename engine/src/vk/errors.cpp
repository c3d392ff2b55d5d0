#include "vk/vulkan.hpp"
#include "vkalex/error.hpp"

namespace vkalex::detail {

const char* vk_result_name(VkResult result) {
  switch (result) {
#define VKALEX_RESULT(name) \
  case name:                \
    return #name;
    VKALEX_RESULT(VK_SUCCESS)
    VKALEX_RESULT(VK_NOT_READY)
    VKALEX_RESULT(VK_TIMEOUT)
    VKALEX_RESULT(VK_EVENT_SET)
    VKALEX_RESULT(VK_EVENT_RESET)
    VKALEX_RESULT(VK_INCOMPLETE)
    VKALEX_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY)
    VKALEX_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    VKALEX_RESULT(VK_ERROR_INITIALIZATION_FAILED)
    VKALEX_RESULT(VK_ERROR_DEVICE_LOST)
    VKALEX_RESULT(VK_ERROR_MEMORY_MAP_FAILED)
    VKALEX_RESULT(VK_ERROR_LAYER_NOT_PRESENT)
    VKALEX_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT)
    VKALEX_RESULT(VK_ERROR_FEATURE_NOT_PRESENT)
    VKALEX_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER)
    VKALEX_RESULT(VK_ERROR_TOO_MANY_OBJECTS)
    VKALEX_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED)
    VKALEX_RESULT(VK_ERROR_FRAGMENTED_POOL)
    VKALEX_RESULT(VK_ERROR_UNKNOWN)
    VKALEX_RESULT(VK_ERROR_OUT_OF_POOL_MEMORY)
    VKALEX_RESULT(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    VKALEX_RESULT(VK_ERROR_FRAGMENTATION)
    VKALEX_RESULT(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
    VKALEX_RESULT(VK_PIPELINE_COMPILE_REQUIRED)
#undef VKALEX_RESULT
    default:
      return "VK_ERROR_(unlisted)";
  }
}

void vk_check(VkResult result, const char* what) {
  if (result == VK_SUCCESS) return;
  std::string name = vk_result_name(result);
  if (name == "VK_ERROR_(unlisted)") name = "VkResult " + std::to_string(static_cast<int>(result));
  std::string message = std::string(what) + " failed: " + name;
  if (result == VK_ERROR_DEVICE_LOST) {
    message += " (the device was lost: a driver reset, a hung or removed GPU; nothing more can run on this "
               "Context: make a new one)";
  }
  throw Error(message, name);
}

}  // namespace vkalex::detail
