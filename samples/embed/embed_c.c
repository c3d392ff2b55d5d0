/* embed-c: the embed sample's host through vkalex's C API (vkalex/vkalex.h), in C99. The
 * program creates its own Vulkan instance, device, queue, buffers and command buffer with the
 * plain loader and hands them to vkalex (vkalex_context_create_host); vkalex prepares one image
 * (decoded with stb_image into RGB8) into the host's upload buffer, and records the forward
 * pass into the host's command buffer between the host's own copies in and out; the host
 * submits, waits on its fence and prints the top 5 classes from its own read-back buffer. Then
 * it destroys vkalex's objects and, after them, its own. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb_image.h>
#include <vulkan/vulkan.h>

#include "vkalex/vkalex.h"

static void usage(FILE* out) {
  fprintf(out,
          "usage: embed-c [--model FILE.json] IMAGE\n"
          "\n"
          "The embed sample through vkalex's C API: the program owns its Vulkan device, vkalex\n"
          "runs on it, and the top 5 classes of IMAGE are printed.\n"
          "\n"
          "  --model FILE.json   model description (default: alexnet-fashion.json in\n"
          "                      $VKALEX_MODEL_DIR, else in ../share/vkalex/model beside this program)\n"
          "  --help              this text\n"
          "\n"
          "Exit status: 0 on success, 1 on any error.\n");
}

/* Prints the call's status and vkalex's message for it, and says whether it failed. */
static int failed(vkalex_status s, const vkalex_context* ctx, const char* what) {
  char message[1024];
  if (s == VKALEX_OK) return 0;
  vkalex_last_error(ctx, message, sizeof message);
  fprintf(stderr, "embed-c: %s: %s: %s\n", what, vkalex_status_name(s), message);
  return 1;
}

/* The default model description: beside this program as an installed prefix lays it out. */
static void default_model(char* path, size_t size) {
  const char* env = getenv("VKALEX_MODEL_DIR");
  char self[4096];
  ssize_t n;
  if (env && *env) {
    snprintf(path, size, "%s/alexnet-fashion.json", env);
    return;
  }
  n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    snprintf(path, size, "share/vkalex/model/alexnet-fashion.json");
    return;
  }
  self[n] = '\0';
  if (strrchr(self, '/')) *strrchr(self, '/') = '\0';
  if (snprintf(path, size, "%s/%s/alexnet-fashion.json", self, VKALEX_BIN_TO_MODEL_DIR) >= (int)size) {
    path[0] = '\0'; /* too long: vkalex_net_create then names the empty path */
  }
}

/* A buffer of the host's in host-visible, coherent memory, mapped. */
typedef struct host_buffer {
  VkBuffer buffer;
  VkDeviceMemory memory;
  void* mapped;
} host_buffer;

static int make_buffer(VkPhysicalDevice physical, VkDevice device, VkDeviceSize size, VkBufferUsageFlags usage,
                       host_buffer* b) {
  VkBufferCreateInfo bi = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  VkMemoryRequirements req;
  VkPhysicalDeviceMemoryProperties mp;
  VkMemoryAllocateInfo ai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  uint32_t type = 0;
  bi.size = size;
  bi.usage = usage;
  if (vkCreateBuffer(device, &bi, NULL, &b->buffer) != VK_SUCCESS) return 1;
  vkGetBufferMemoryRequirements(device, b->buffer, &req);
  vkGetPhysicalDeviceMemoryProperties(physical, &mp);
  while (type < mp.memoryTypeCount &&
         !((req.memoryTypeBits & (1u << type)) && (mp.memoryTypes[type].propertyFlags & want) == want))
    ++type;
  if (type == mp.memoryTypeCount) return 1;
  ai.allocationSize = req.size;
  ai.memoryTypeIndex = type;
  if (vkAllocateMemory(device, &ai, NULL, &b->memory) != VK_SUCCESS) return 1;
  if (vkBindBufferMemory(device, b->buffer, b->memory, 0) != VK_SUCCESS) return 1;
  return vkMapMemory(device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped) != VK_SUCCESS;
}

static void free_buffer(VkDevice device, host_buffer* b) {
  if (b->memory) vkFreeMemory(device, b->memory, NULL);
  if (b->buffer) vkDestroyBuffer(device, b->buffer, NULL);
}

int main(int argc, char** argv) {
  char model[4096];
  const char* image = NULL;
  int i, status = 1;
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t family = 0, count = 0, families = 0;
  vkalex_context* ctx = NULL;
  vkalex_net* net = NULL;
  unsigned char* pixels = NULL;
  const float* probabilities = NULL;
  host_buffer upload = {0}, input = {0}, readback = {0};
  VkCommandPool pool = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;

  default_model(model, sizeof model);
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--model") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "embed-c: --model needs a value\n");
        return 1;
      }
      snprintf(model, sizeof model, "%s", argv[++i]);
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      usage(stderr);
      fprintf(stderr, "embed-c: unknown option %s\n", argv[i]);
      return 1;
    } else if (image) {
      fprintf(stderr, "embed-c: one image only\n");
      return 1;
    } else {
      image = argv[i];
    }
  }
  if (!image) {
    usage(stderr);
    fprintf(stderr, "embed-c: no image given\n");
    return 1;
  }

  { /* The host's Vulkan objects. */
    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
    VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    VkPhysicalDevice devices[16];
    VkQueueFamilyProperties props[16];
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qi = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    VkDeviceCreateInfo di = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    app.apiVersion = VK_API_VERSION_1_1;
    ci.pApplicationInfo = &app;
    if (vkCreateInstance(&ci, NULL, &instance) != VK_SUCCESS) {
      fprintf(stderr, "embed-c: vkCreateInstance failed\n");
      return 1;
    }
    count = 16;
    if (vkEnumeratePhysicalDevices(instance, &count, devices) < 0 || count == 0) {
      fprintf(stderr, "embed-c: no Vulkan device\n");
      goto done;
    }
    physical = devices[0];
    families = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(physical, &families, props);
    while (family < families && !(props[family].queueFlags & VK_QUEUE_COMPUTE_BIT)) ++family;
    if (family == families) {
      fprintf(stderr, "embed-c: the device has no compute queue\n");
      goto done;
    }
    qi.queueFamilyIndex = family;
    qi.queueCount = 1;
    qi.pQueuePriorities = &priority;
    di.queueCreateInfoCount = 1;
    di.pQueueCreateInfos = &qi;
    if (vkCreateDevice(physical, &di, NULL, &device) != VK_SUCCESS) {
      fprintf(stderr, "embed-c: vkCreateDevice failed\n");
      goto done;
    }
    vkGetDeviceQueue(device, family, 0, &queue);
  }

  { /* vkalex on them. */
    vkalex_host_device host;
    vkalex_net_info info;
    vkalex_buffer_range in_range, probs;
    VkCommandPoolCreateInfo pi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VkFenceCreateInfo fi = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
    VkMemoryBarrier to_host = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    VkBufferCopy region;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    const VkBufferUsageFlags input_usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                           VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    size_t in_count, in_bytes, out_bytes;
    int w = 0, h = 0, n = 0;
    uint32_t k, c, best[5];
    char name[256], device_name[256];
    memset(&host, 0, sizeof host);
    host.instance = instance;
    host.physical_device = physical;
    host.device = device;
    host.queue_family = family;
    host.queue = queue;
    host.get_instance_proc_addr = (vkalex_void_function)vkGetInstanceProcAddr;
    if (failed(vkalex_context_create_host(&host, NULL, &ctx), NULL, "vkalex_context_create_host")) goto done;
    if (failed(vkalex_net_create(ctx, model, NULL, &net), ctx, "vkalex_net_create")) goto done;
    if (failed(vkalex_net_get_info(net, &info), ctx, "vkalex_net_get_info")) goto done;
    pixels = stbi_load(image, &w, &h, &n, 3);
    if (!pixels) {
      fprintf(stderr, "embed-c: %s: cannot decode: %s\n", image, stbi_failure_reason());
      goto done;
    }

    /* The host's buffers: upload (vkalex prepares the image into it), input (read in place by
     * the forward pass), read-back. */
    in_count = (size_t)info.channels * info.height * info.width;
    in_bytes = in_count * sizeof(float);
    out_bytes = info.classes * sizeof(float);
    if (make_buffer(physical, device, in_bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, &upload) ||
        make_buffer(physical, device, in_bytes, input_usage, &input) ||
        make_buffer(physical, device, out_bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT, &readback)) {
      fprintf(stderr, "embed-c: cannot make the host's buffers\n");
      goto done;
    }
    if (failed(vkalex_net_preprocess_rgb8(net, pixels, (size_t)w * (size_t)h * 3, (uint32_t)w, (uint32_t)h, 1,
                                          (float*)upload.mapped, in_count),
               ctx, "vkalex_net_preprocess_rgb8"))
      goto done;
    in_range.buffer = (uint64_t)(uintptr_t)input.buffer;
    in_range.offset = 0;
    in_range.size = in_bytes;
    if (failed(vkalex_net_set_input_buffer(net, &in_range, input_usage, 1), ctx, "vkalex_net_set_input_buffer")) goto done;
    if (failed(vkalex_net_output_buffers(net, NULL, &probs), ctx, "vkalex_net_output_buffers")) goto done;

    /* The host's command buffer: its copy in, vkalex's forward pass, its copy out. */
    pi.queueFamilyIndex = family;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    if (vkCreateCommandPool(device, &pi, NULL, &pool) != VK_SUCCESS) goto done;
    ai.commandPool = pool;
    if (vkAllocateCommandBuffers(device, &ai, &cmd) != VK_SUCCESS || vkCreateFence(device, &fi, NULL, &fence) != VK_SUCCESS)
      goto done;
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    if (vkBeginCommandBuffer(cmd, &bi) != VK_SUCCESS) goto done;
    region.srcOffset = 0;
    region.dstOffset = 0;
    region.size = in_bytes;
    vkCmdCopyBuffer(cmd, upload.buffer, input.buffer, 1, &region);
    if (failed(vkalex_net_record_forward(net, cmd), ctx, "vkalex_net_record_forward")) goto done;
    region.srcOffset = probs.offset;
    region.size = out_bytes;
    vkCmdCopyBuffer(cmd, (VkBuffer)(uintptr_t)probs.buffer, readback.buffer, 1, &region);
    to_host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, NULL, 0,
                         NULL);
    if (vkEndCommandBuffer(cmd) != VK_SUCCESS) goto done;
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    if (vkQueueSubmit(queue, 1, &si, fence) != VK_SUCCESS ||
        vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX) != VK_SUCCESS) {
      fprintf(stderr, "embed-c: the host's submission failed\n");
      goto done;
    }
    probabilities = (const float*)readback.mapped;

    if (failed(vkalex_context_device_name(ctx, device_name, sizeof device_name, NULL), ctx, "device name")) goto done;
    printf("%s (on the host's device \"%s\", through the C API):\n", image, device_name);
    for (k = 0; k < 5 && k < info.classes; ++k) { /* the top 5, largest first */
      best[k] = info.classes;
      for (c = 0; c < info.classes; ++c) {
        uint32_t j, taken = 0;
        for (j = 0; j < k; ++j) taken |= best[j] == c;
        if (!taken && (best[k] == info.classes || probabilities[c] > probabilities[best[k]])) best[k] = c;
      }
      if (failed(vkalex_net_class_name(net, best[k], name, sizeof name, NULL), ctx, "vkalex_net_class_name")) goto done;
      printf("  %-24s %.4f\n", name, probabilities[best[k]]);
    }
    status = 0;
  }

done:
  if (pixels) stbi_image_free(pixels);
  /* vkalex's objects first, then the host's own. */
  if (net && failed(vkalex_net_destroy(net), ctx, "vkalex_net_destroy")) status = 1;
  if (ctx && failed(vkalex_context_destroy(ctx), ctx, "vkalex_context_destroy")) status = 1;
  if (fence) vkDestroyFence(device, fence, NULL);
  if (pool) vkDestroyCommandPool(device, pool, NULL);
  free_buffer(device, &upload);
  free_buffer(device, &input);
  free_buffer(device, &readback);
  if (device) vkDestroyDevice(device, NULL);
  if (instance) vkDestroyInstance(instance, NULL);
  /* What was printed must have been written (a full disk, /dev/full: an error, not success). */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "embed-c: cannot write the standard output\n");
    status = 1;
  }
  return status;
}
