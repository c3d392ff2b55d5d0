// embed: a minimal host program that owns its Vulkan instance, device, queue, buffers and
// command buffer (through the plain Vulkan loader, not volk), hands them to vkalex, and records
// the network's forward pass into its own command buffer between its own commands:
//
//   host: copy the image into the input buffer (its own upload buffer -> its own input buffer)
//   vkalex: the forward pass, reading the host's input buffer in place
//   host: copy the probabilities into its own read-back buffer
//
// then submits once, waits on its own fence and prints the top 5 classes from its own buffer.
#include <vulkan/vulkan.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "vkalex/host_vulkan.hpp"
#include "vkalex/vkalex.hpp"

namespace {

const std::string kDefaultModel = vkalex_samples::model_dir() + "/alexnet-fashion.json";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: embed [--model FILE.json] [--device N] IMAGE\n"
               "\n"
               "Shows vkalex inside a host program that owns its Vulkan device: the host creates\n"
               "the instance, device, queue, buffers and command buffer with the plain Vulkan\n"
               "loader; vkalex records the forward pass into the host's command buffer between\n"
               "the host's own copies in and out; the host submits, waits and prints the top 5\n"
               "classes of IMAGE.\n"
               "\n"
               "  --model FILE.json   model description (default: %s)\n"
               "  --device N          index of the physical device (default: the first one vkalex\n"
               "                      would pick)\n"
               "  --help              this text\n"
               "\n"
               "Exit status: 0 on success, 1 on any error.\n",
               kDefaultModel.c_str());
}

[[noreturn]] void die(const std::string& message) { vkalex_samples::die("embed", message); }

void check(VkResult r, const char* what) {
  if (r != VK_SUCCESS) die(std::string(what) + " failed (VkResult " + std::to_string(r) + ")");
}

// The host's Vulkan objects, destroyed by the host after vkalex is done with them.
struct HostVulkan {
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  uint32_t family = 0;
  VkQueue queue = VK_NULL_HANDLE;
  ~HostVulkan() {
    if (device) vkDestroyDevice(device, nullptr);
    if (instance) vkDestroyInstance(instance, nullptr);
  }
};

// A buffer of the host's in host-visible memory, mapped.
struct HostBuffer {
  VkDevice device = VK_NULL_HANDLE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  void* mapped = nullptr;
  VkBufferUsageFlags usage = 0;
  HostBuffer(const HostVulkan& vk, VkDeviceSize size, VkBufferUsageFlags usage_flags)
      : device(vk.device), usage(usage_flags) {
    VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = size;
    bi.usage = usage;
    check(vkCreateBuffer(device, &bi, nullptr, &buffer), "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, buffer, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(vk.physical, &mp);
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = 0;
    while (type < mp.memoryTypeCount &&
           !((req.memoryTypeBits & (1u << type)) && (mp.memoryTypes[type].propertyFlags & want) == want))
      ++type;
    if (type == mp.memoryTypeCount) die("the device has no host-visible, coherent memory for a buffer");
    VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = type;
    check(vkAllocateMemory(device, &ai, nullptr, &memory), "vkAllocateMemory");
    check(vkBindBufferMemory(device, buffer, memory, 0), "vkBindBufferMemory");
    check(vkMapMemory(device, memory, 0, VK_WHOLE_SIZE, 0, &mapped), "vkMapMemory");
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() {
    if (memory) vkFreeMemory(device, memory, nullptr);
    if (buffer) vkDestroyBuffer(device, buffer, nullptr);
  }
};

void create_device(HostVulkan& vk, int device_index) {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "vkalex embed sample";
  app.apiVersion = VK_API_VERSION_1_1;  // vkalex needs 1.1
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  check(vkCreateInstance(&ci, nullptr, &vk.instance), "vkCreateInstance");
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(vk.instance, &n, nullptr);
  std::vector<VkPhysicalDevice> all(n);
  vkEnumeratePhysicalDevices(vk.instance, &n, all.data());
  if (n == 0) die("no Vulkan device");
  // vkalex's own preference where no index is given (discrete > integrated > ... > CPU).
  const size_t pick = device_index >= 0 ? size_t(device_index) : vkalex::select_device(vkalex::list_devices(), "");
  if (pick >= n) die("--device " + std::to_string(device_index) + ": there are " + std::to_string(n) + " devices");
  vk.physical = all[pick];
  uint32_t families = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(vk.physical, &families, nullptr);
  std::vector<VkQueueFamilyProperties> props(families);
  vkGetPhysicalDeviceQueueFamilyProperties(vk.physical, &families, props.data());
  while (vk.family < families && !(props[vk.family].queueFlags & VK_QUEUE_COMPUTE_BIT)) ++vk.family;
  if (vk.family == families) die("the device has no compute queue");
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qi.queueFamilyIndex = vk.family;
  qi.queueCount = 1;
  qi.pQueuePriorities = &priority;
  VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  di.queueCreateInfoCount = 1;
  di.pQueueCreateInfos = &qi;
  check(vkCreateDevice(vk.physical, &di, nullptr, &vk.device), "vkCreateDevice");
  vkGetDeviceQueue(vk.device, vk.family, 0, &vk.queue);
}

}  // namespace

int main(int argc, char** argv) {
  vkalex_samples::check_stdout_at_exit("embed");
  std::string model_path = kDefaultModel, image_path;
  int device_index = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--model") {
      model_path = value();
    } else if (a == "--device") {
      device_index = int(vkalex_samples::parse_count("embed", a, value(), 0, 1000));
    } else if (a.size() > 1 && a[0] == '-') {
      usage(stderr);
      die("unknown option " + a);
    } else if (image_path.empty()) {
      image_path = a;
    } else {
      die("one image only (got " + image_path + " and " + a + ")");
    }
  }
  if (image_path.empty()) {
    usage(stderr);
    die("no image given");
  }
  try {
    const vkalex::ModelDesc model = vkalex::load_model(model_path);
    const auto labels = vkalex::load_labels(model.labels_path, model.classes);
    const vkalex::HostTensor x = vkalex::preprocess_image(vkalex::load_image(image_path, model.channels),
                                                          model.preprocess, model.channels, model.height, model.width);
    const VkDeviceSize in_bytes = x.data.size() * sizeof(float), out_bytes = model.classes * sizeof(float);

    HostVulkan vk;
    create_device(vk, device_index);
    // The host's buffers: an upload buffer, the input buffer vkalex reads in place, a read-back.
    HostBuffer upload(vk, in_bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
    HostBuffer input(vk, in_bytes,
                     VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                         VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    HostBuffer readback(vk, out_bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    std::memcpy(upload.mapped, x.data.data(), in_bytes);

    VkCommandPool pool = VK_NULL_HANDLE;
    VkCommandPoolCreateInfo pi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pi.queueFamilyIndex = vk.family;
    check(vkCreateCommandPool(vk.device, &pi, nullptr, &pool), "vkCreateCommandPool");
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(vk.device, &ai, &cmd), "vkAllocateCommandBuffers");
    VkFence fence = VK_NULL_HANDLE;
    VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(vkCreateFence(vk.device, &fi, nullptr, &fence), "vkCreateFence");

    std::string device_name;
    std::vector<float> probabilities(model.classes);
    {
      // vkalex on the host's device: it creates and destroys none of the host's objects.
      vkalex::HostDevice host;
      host.instance = vk.instance;
      host.physical_device = vk.physical;
      host.device = vk.device;
      host.queue_family = vk.family;
      host.queue = vk.queue;
      host.get_instance_proc_addr = vkGetInstanceProcAddr;
      vkalex::Context context(host);
      device_name = context.device().name;
      vkalex::Net net(context, model);
      net.load_weights(vkalex::SafeTensors(model.weights_path));
      net.set_input(vkalex::wrap_buffer(context, {input.buffer, 0, in_bytes, input.usage}, model.input_shape(1)));
      const vkalex::HostBuffer probs = vkalex::buffer_of(net.probabilities());

      VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
      bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
      check(vkBeginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer");
      const VkBufferCopy in_region{0, 0, in_bytes};
      vkCmdCopyBuffer(cmd, upload.buffer, input.buffer, 1, &in_region);  // the host's own command
      vkalex::record_commands(net.host_recording(), cmd);                 // vkalex's, with its barriers
      const VkBufferCopy out_region{probs.offset, 0, out_bytes};
      vkCmdCopyBuffer(cmd, probs.buffer, readback.buffer, 1, &out_region);  // the host's own again
      // The host's read of its mapped read-back buffer after the fence.
      VkMemoryBarrier to_host{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      to_host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, nullptr,
                           0, nullptr);
      check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
      VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
      si.commandBufferCount = 1;
      si.pCommandBuffers = &cmd;
      check(vkQueueSubmit(vk.queue, 1, &si, fence), "vkQueueSubmit");
      check(vkWaitForFences(vk.device, 1, &fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
      std::memcpy(probabilities.data(), readback.mapped, out_bytes);
    }  // vkalex's objects go here; the host's stay

    vkDestroyFence(vk.device, fence, nullptr);
    vkDestroyCommandPool(vk.device, pool, nullptr);
    std::vector<uint32_t> order(model.classes);
    std::iota(order.begin(), order.end(), 0u);
    const size_t k = std::min<size_t>(5, order.size());
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](uint32_t a, uint32_t b) { return probabilities[a] > probabilities[b]; });
    std::printf("%s (%s, on the host's device \"%s\"):\n", image_path.c_str(), model.name.c_str(), device_name.c_str());
    for (size_t i = 0; i < k; ++i) std::printf("  %-24s %.4f\n", labels[order[i]].c_str(), probabilities[order[i]]);
    return 0;
  } catch (const vkalex::Error& e) {
    die(e.what());
  } catch (const std::exception& e) {
    die(vkalex_samples::describe(e));
  }
}
