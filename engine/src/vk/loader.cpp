// The engine's Vulkan function tables (vulkan.hpp): the system loader opened at run time, and
// instance and device functions loaded per handle, never into global symbols.
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "vk/vulkan.hpp"
#include "vkalex/error.hpp"

namespace vkalex::detail {

namespace {

struct Loader {
  void* library = nullptr;
  InstanceTable table;
  uint32_t version = VK_API_VERSION_1_0;
  std::string error;  // why there is none
};

Loader open_loader() {
  Loader l;
  // Kept open for the process's life: tables loaded from it may live as long.
  for (const char* name : {"libvulkan.so.1", "libvulkan.so"}) {
    l.library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (l.library) break;
  }
  if (!l.library) {
    const char* why = dlerror();
    l.error = std::string("no Vulkan loader found (libvulkan.so.1 could not be loaded: ") + (why ? why : "?") + ")";
    return l;
  }
  l.table.vkGetInstanceProcAddr =
      reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(l.library, "vkGetInstanceProcAddr"));
  if (!l.table.vkGetInstanceProcAddr) {
    l.error = "the Vulkan loader libvulkan.so.1 has no vkGetInstanceProcAddr";
    return l;
  }
  auto get = [&](const char* name) { return l.table.vkGetInstanceProcAddr(VK_NULL_HANDLE, name); };
#define VKALEX_VK_LOAD(name) l.table.name = reinterpret_cast<PFN_##name>(get(#name));
  VKALEX_VK_GLOBAL_FUNCTIONS(VKALEX_VK_LOAD)
#undef VKALEX_VK_LOAD
  if (!l.table.vkCreateInstance || !l.table.vkEnumerateInstanceLayerProperties) {
    l.error = "the Vulkan loader does not give vkCreateInstance";
    return l;
  }
  if (auto enumerate = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(get("vkEnumerateInstanceVersion"))) {
    if (enumerate(&l.version) != VK_SUCCESS) l.version = VK_API_VERSION_1_0;
  }
  return l;
}

}  // namespace

const InstanceTable& system_loader(uint32_t* version) {
  static const Loader loader = open_loader();
  if (!loader.error.empty()) throw Error(loader.error);
  if (version) *version = loader.version;
  return loader.table;
}

void load_instance_functions(InstanceTable& table, VkInstance instance) {
  if (!table.vkGetInstanceProcAddr) throw Error("no vkGetInstanceProcAddr to load the instance's functions with");
  auto get = [&](const char* name) { return table.vkGetInstanceProcAddr(instance, name); };
#define VKALEX_VK_LOAD(name) table.name = reinterpret_cast<PFN_##name>(get(#name));
#define VKALEX_VK_LOAD_REQUIRED(name)                                                          \
  VKALEX_VK_LOAD(name)                                                                         \
  if (!table.name) throw Error("the Vulkan instance does not give " #name " (Vulkan 1.1 needed)");
  VKALEX_VK_INSTANCE_FUNCTIONS(VKALEX_VK_LOAD_REQUIRED)
  VKALEX_VK_OPTIONAL_INSTANCE_FUNCTIONS(VKALEX_VK_LOAD)
#undef VKALEX_VK_LOAD_REQUIRED
#undef VKALEX_VK_LOAD
}

void load_device_functions(DeviceTable& table, PFN_vkGetDeviceProcAddr get_device_proc_addr, VkDevice device) {
  if (!get_device_proc_addr) throw Error("no vkGetDeviceProcAddr to load the device's functions with");
#define VKALEX_VK_LOAD(name)                                                                  \
  table.name = reinterpret_cast<PFN_##name>(get_device_proc_addr(device, #name));             \
  if (!table.name) throw Error("the Vulkan device does not give " #name);
  VKALEX_VK_DEVICE_FUNCTIONS(VKALEX_VK_LOAD)
#undef VKALEX_VK_LOAD
#define VKALEX_VK_LOAD_OPTIONAL(name) table.name = reinterpret_cast<PFN_##name>(get_device_proc_addr(device, #name));
  VKALEX_VK_OPTIONAL_DEVICE_FUNCTIONS(VKALEX_VK_LOAD_OPTIONAL)
#undef VKALEX_VK_LOAD_OPTIONAL
}

}  // namespace vkalex::detail
