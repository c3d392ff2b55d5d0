// Loading Vulkan, creating the instance, describing and choosing physical devices.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "vk/device.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

const char* device_type_name(DeviceType type) {
  switch (type) {
    case DeviceType::DiscreteGpu: return "discrete GPU";
    case DeviceType::IntegratedGpu: return "integrated GPU";
    case DeviceType::VirtualGpu: return "virtual GPU";
    case DeviceType::Cpu: return "CPU";
    default: return "other";
  }
}

namespace detail {
namespace {

const char* const kNoDeviceHint =
    "Install a Vulkan driver for your GPU, or Mesa's lavapipe for a CPU device "
    "(Debian/Ubuntu: apt-get install mesa-vulkan-drivers).";

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

std::string vendor_name(uint32_t id) {
  switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x1022: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "Imagination";
    case 0x106B: return "Apple";
    case 0x10005: return "Mesa";
    case 0x1AE0: return "Google";  // SwiftShader
    default: return hex(id);
  }
}

std::string api_version_string(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

// Drivers encode their version in vendor-specific ways.
std::string driver_version_string(uint32_t vendor, uint32_t v) {
  if (vendor == 0x10DE) {
    return std::to_string((v >> 22) & 0x3ff) + "." + std::to_string((v >> 14) & 0xff) + "." +
           std::to_string((v >> 6) & 0xff);
  }
#ifdef _WIN32
  if (vendor == 0x8086) return std::to_string(v >> 14) + "." + std::to_string(v & 0x3fff);
#endif
  return api_version_string(v);
}

bool has_extension(const InstanceTable& vki, VkPhysicalDevice device, const char* name) {
  uint32_t count = 0;
  vki.vkEnumerateDeviceExtensionProperties(device, nullptr, &count, nullptr);
  std::vector<VkExtensionProperties> props(count);
  vki.vkEnumerateDeviceExtensionProperties(device, nullptr, &count, props.data());
  for (const auto& p : props)
    if (std::strcmp(p.extensionName, name) == 0) return true;
  return false;
}

VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT type,
    const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
  // Only the validation layer's findings count: the loader's notices (e.g. that
  // VK_INSTANCE_LAYERS added a layer) come as GENERAL messages, even at warning severity.
  if (severity < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT || !(type & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT)) {
    return VK_FALSE;
  }
  auto* log = static_cast<ValidationLog*>(user);
  std::lock_guard lock(log->mutex);
  log->messages.emplace_back(data && data->pMessage ? data->pMessage : "(no message)");
  return VK_FALSE;
}

bool layer_available(const InstanceTable& loader, const char* name) {
  uint32_t count = 0;
  loader.vkEnumerateInstanceLayerProperties(&count, nullptr);
  std::vector<VkLayerProperties> layers(count);
  loader.vkEnumerateInstanceLayerProperties(&count, layers.data());
  for (const auto& l : layers)
    if (std::strcmp(l.layerName, name) == 0) return true;
  return false;
}

}  // namespace

VkInstance create_instance(bool validation, ValidationLog* log, VkDebugUtilsMessengerEXT* messenger,
                           InstanceTable& vki) {
  uint32_t loader_version = 0;
  try {
    vki = system_loader(&loader_version);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + ". Install libvulkan1 and a driver; " + kNoDeviceHint);
  }
  if (loader_version < VK_API_VERSION_1_1) {
    throw Error("the Vulkan loader supports only Vulkan " + api_version_string(loader_version) +
                "; vkalex needs 1.1 or later");
  }

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "vkalex";
  app.pEngineName = "vkalex";
  app.apiVersion = std::min<uint32_t>(loader_version, VK_API_VERSION_1_3);

  std::vector<const char*> layers;
  std::vector<const char*> extensions;
  VkDebugUtilsMessengerCreateInfoEXT messenger_info{
      VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  if (validation) {
    if (!layer_available(vki, "VK_LAYER_KHRONOS_validation")) {
      throw Error("validation was asked for, but VK_LAYER_KHRONOS_validation is not installed "
                  "(Debian: apt-get install vulkan-validationlayers)");
    }
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
    messenger_info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                                     VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT;
    messenger_info.pfnUserCallback = on_validation_message;
    messenger_info.pUserData = log;
  }

  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  // Synchronization validation checks the recorder's barriers, not only API usage.
  const VkValidationFeatureEnableEXT enables[] = {
      VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;
  if (validation) {
    features.pNext = &messenger_info;
    info.pNext = &features;
  }

  VkInstance instance = VK_NULL_HANDLE;
  VkResult result = vki.vkCreateInstance(&info, nullptr, &instance);
  if (result == VK_ERROR_INCOMPATIBLE_DRIVER) {
    throw Error(std::string("the Vulkan loader found no driver (vkCreateInstance: "
                            "VK_ERROR_INCOMPATIBLE_DRIVER). ") + kNoDeviceHint,
                vk_result_name(result));
  }
  vk_check(result, "vkCreateInstance");
  try {
    load_instance_functions(vki, instance);
  } catch (...) {
    if (auto destroy = reinterpret_cast<PFN_vkDestroyInstance>(vki.vkGetInstanceProcAddr(instance, "vkDestroyInstance")))
      destroy(instance, nullptr);
    throw;
  }

  if (validation) {
    result = vki.vkCreateDebugUtilsMessengerEXT
                 ? vki.vkCreateDebugUtilsMessengerEXT(instance, &messenger_info, nullptr, messenger)
                 : VK_ERROR_EXTENSION_NOT_PRESENT;
    if (result != VK_SUCCESS) {
      vki.vkDestroyInstance(instance, nullptr);
      vk_check(result, "vkCreateDebugUtilsMessengerEXT");
    }
  }
  return instance;
}

std::vector<VkPhysicalDevice> enumerate_physical_devices(const InstanceTable& vki, VkInstance instance) {
  uint32_t count = 0;
  vk_check(vki.vkEnumeratePhysicalDevices(instance, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devices(count);
  vk_check(vki.vkEnumeratePhysicalDevices(instance, &count, devices.data()),
           "vkEnumeratePhysicalDevices");
  devices.resize(count);
  return devices;
}

DeviceInfo describe_device(const InstanceTable& vki, VkPhysicalDevice device, uint32_t index) {
  DeviceInfo info;
  info.index = index;

  VkPhysicalDeviceProperties base{};
  vki.vkGetPhysicalDeviceProperties(device, &base);
  const bool v12 = base.apiVersion >= VK_API_VERSION_1_2;

  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  VkPhysicalDeviceIDProperties id{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  props.pNext = &id;
  id.pNext = &subgroup;
  if (v12 || has_extension(vki, device, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME)) subgroup.pNext = &driver;
  vki.vkGetPhysicalDeviceProperties2(device, &props);

  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  VkPhysicalDevice16BitStorageFeatures storage16{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features float16{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  features.pNext = &storage16;
  if (v12 || has_extension(vki, device, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME))
    storage16.pNext = &float16;
  if (v12) float16.pNext = &timeline;  // core in 1.2 (the extension alone is not used)
  vki.vkGetPhysicalDeviceFeatures2(device, &features);

  VkPhysicalDeviceMemoryProperties memory{};
  vki.vkGetPhysicalDeviceMemoryProperties(device, &memory);

  uint32_t family_count = 0;
  vki.vkGetPhysicalDeviceQueueFamilyProperties(device, &family_count, nullptr);
  std::vector<VkQueueFamilyProperties> families(family_count);
  vki.vkGetPhysicalDeviceQueueFamilyProperties(device, &family_count, families.data());

  info.name = base.deviceName;
  info.vendor_id = base.vendorID;
  info.vendor = vendor_name(base.vendorID);
  info.device_id = base.deviceID;
  switch (base.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info.type = DeviceType::DiscreteGpu; break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info.type = DeviceType::IntegratedGpu; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info.type = DeviceType::VirtualGpu; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: info.type = DeviceType::Cpu; break;
    default: info.type = DeviceType::Other; break;
  }
  if (subgroup.pNext == &driver) {
    info.driver_id = static_cast<uint32_t>(driver.driverID);
    info.driver_name = driver.driverName;
    info.driver_info = driver.driverInfo;
  }
  info.driver_version = base.driverVersion;
  info.driver_version_string = driver_version_string(base.vendorID, base.driverVersion);
  info.api_version = base.apiVersion;
  info.api_version_string = api_version_string(base.apiVersion);
  std::memcpy(info.uuid.data(), id.deviceUUID, VK_UUID_SIZE);
  for (uint32_t i = 0; i < memory.memoryHeapCount; ++i) {
    info.heaps.push_back({memory.memoryHeaps[i].size,
                          (memory.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});
  }
  info.subgroup_size = subgroup.subgroupSize;
  info.subgroup_shuffle = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                          (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
  info.storage_buffer_16bit = storage16.storageBuffer16BitAccess == VK_TRUE;
  info.shader_float16 = storage16.pNext == &float16 && float16.shaderFloat16 == VK_TRUE;
  info.timeline_semaphore = v12 && timeline.timelineSemaphore == VK_TRUE;
  for (const auto& f : families) {
    if ((f.queueFlags & VK_QUEUE_COMPUTE_BIT) && f.timestampValidBits > 0) info.timestamps = true;
  }
  info.timestamp_period_ns = base.limits.timestampPeriod;
  info.max_storage_buffer_range = base.limits.maxStorageBufferRange;
  info.min_storage_buffer_offset_alignment = base.limits.minStorageBufferOffsetAlignment;
  info.max_memory_allocation_size = 0;
  {
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    VkPhysicalDeviceMaintenance3Properties m3{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    p2.pNext = &m3;
    vki.vkGetPhysicalDeviceProperties2(device, &p2);
    info.max_memory_allocation_size = m3.maxMemoryAllocationSize;
  }
  info.max_push_constants_size = base.limits.maxPushConstantsSize;
  for (int i = 0; i < 3; ++i) info.max_workgroup_count[i] = base.limits.maxComputeWorkGroupCount[i];
  info.max_workgroup_invocations = base.limits.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) info.max_workgroup_size[i] = base.limits.maxComputeWorkGroupSize[i];
  info.max_shared_memory = base.limits.maxComputeSharedMemorySize;
  info.max_texel_buffer_elements = base.limits.maxTexelBufferElements;
  info.min_texel_buffer_offset_alignment = base.limits.minTexelBufferOffsetAlignment;
  info.min_subgroup_size = info.max_subgroup_size = info.subgroup_size;
  const bool v13 = base.apiVersion >= VK_API_VERSION_1_3;
  if (v13 || has_extension(vki, device, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME)) {
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT control{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &control;
    vki.vkGetPhysicalDeviceFeatures2(device, &f2);
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT range{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT};
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &range;
    vki.vkGetPhysicalDeviceProperties2(device, &p2);
    info.subgroup_size_control = control.subgroupSizeControl == VK_TRUE && control.computeFullSubgroups == VK_TRUE;
    if (info.subgroup_size_control) {
      info.min_subgroup_size = range.minSubgroupSize;
      info.max_subgroup_size = range.maxSubgroupSize;
    }
  }
  info.cooperative_matrix = has_extension(vki, device, "VK_KHR_cooperative_matrix") ||
                            has_extension(vki, device, "VK_NV_cooperative_matrix");
  // llvmpipe (lavapipe) ends every loop of an invocation once 65,535 iterations have run in
  // all (gallivm's guard against infinite loops) and reports nothing; Mesa 22.3 measured here.
  const bool llvmpipe = info.driver_id == VK_DRIVER_ID_MESA_LLVMPIPE ||
                        (info.driver_id == 0 && info.name.rfind("llvmpipe", 0) == 0);
  if (llvmpipe) info.max_loop_iterations = 65535;
  return info;
}

}  // namespace detail

std::vector<DeviceInfo> list_devices() {
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  detail::InstanceTable vki;
  VkInstance instance = detail::create_instance(false, nullptr, &messenger, vki);
  std::vector<DeviceInfo> out;
  try {
    auto devices = detail::enumerate_physical_devices(vki, instance);
    for (uint32_t i = 0; i < devices.size(); ++i) out.push_back(detail::describe_device(vki, devices[i], i));
  } catch (...) {
    vki.vkDestroyInstance(instance, nullptr);
    throw;
  }
  vki.vkDestroyInstance(instance, nullptr);
  return out;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int type_rank(DeviceType t) {
  switch (t) {
    case DeviceType::DiscreteGpu: return 0;
    case DeviceType::IntegratedGpu: return 1;
    case DeviceType::VirtualGpu: return 2;
    case DeviceType::Cpu: return 3;
    default: return 4;
  }
}

std::string found_list(const std::vector<DeviceInfo>& devices) {
  std::string s = "found " + std::to_string(devices.size()) + " device(s)";
  for (size_t i = 0; i < devices.size(); ++i) {
    s += (i == 0 ? ": " : ", ") + std::to_string(i) + " = \"" + devices[i].name + "\" (" +
         device_type_name(devices[i].type) + ")";
  }
  return s;
}

}  // namespace

uint32_t loop_budget(const DeviceInfo& device) {
  return device.max_loop_iterations ? std::max<uint32_t>(1, device.max_loop_iterations / 2) : 1u << 16;
}

size_t select_device(const std::vector<DeviceInfo>& devices, std::string_view spec) {
  if (devices.empty()) {
    throw Error(std::string("the Vulkan loader reports no device. ") + detail::kNoDeviceHint);
  }
  if (spec.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < devices.size(); ++i)
      if (type_rank(devices[i].type) < type_rank(devices[best].type)) best = i;
    return best;
  }
  const bool numeric = std::all_of(spec.begin(), spec.end(),
                                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (numeric) {
    if (spec.size() > 9 || std::stoul(std::string(spec)) >= devices.size()) {
      throw Error("device index " + std::string(spec) + " is out of range; " + found_list(devices));
    }
    return std::stoul(std::string(spec));
  }
  const std::string needle = lower(spec);
  for (size_t i = 0; i < devices.size(); ++i)
    if (lower(devices[i].name).find(needle) != std::string::npos) return i;
  throw Error("no device name contains \"" + std::string(spec) + "\"; " + found_list(devices));
}

}  // namespace vkalex
