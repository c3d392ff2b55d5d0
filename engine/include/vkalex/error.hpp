// The one exception type the engine throws.
#pragma once

#include <stdexcept>
#include <string>

#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// Thrown by every engine function that fails. what() says what was being done and why;
// vk_result() names the VkResult (e.g. "VK_ERROR_OUT_OF_DEVICE_MEMORY") when a Vulkan call
// failed, and is empty otherwise. The engine never calls exit(), abort() or prints.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, std::string vk_result = {})
      : std::runtime_error(message), vk_result_(std::move(vk_result)) {}

  const std::string& vk_result() const noexcept { return vk_result_; }

 private:
  std::string vk_result_;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
