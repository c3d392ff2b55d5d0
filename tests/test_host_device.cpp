// A Context on a Vulkan device the test creates itself, the way a game or tool would: through
// the Vulkan loader it links directly (tests/CMakeLists.txt links Vulkan::Vulkan).
#include <vulkan/vulkan.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <numeric>
#include <thread>
#include <string>
#include <vector>

#include "common.hpp"
#include "vkalex/host_vulkan.hpp"
#include "vkalex/vkalex.h"

using namespace vkalex;

namespace {

VKAPI_ATTR VkBool32 VKAPI_CALL collect(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                       VkDebugUtilsMessageTypeFlagsEXT,
                                       const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
  if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)
    static_cast<std::vector<std::string>*>(user)->push_back(data->pMessage ? data->pMessage : "?");
  return VK_FALSE;
}

bool has_layer(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceLayerProperties(&n, nullptr);
  std::vector<VkLayerProperties> layers(n);
  vkEnumerateInstanceLayerProperties(&n, layers.data());
  for (const auto& l : layers)
    if (std::strcmp(l.layerName, name) == 0) return true;
  return false;
}

// What a host owns: an instance with the validation layer (when installed) reporting into
// `messages`, the device the engine would choose by default, a compute queue.
struct Host {
  std::vector<std::string> messages;
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t family = 0;
  bool storage16_supported = false;

  explicit Host(bool enable_storage16) {
    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ci.pApplicationInfo = &app;
    const char* layer = "VK_LAYER_KHRONOS_validation";
    const char* ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    const bool validation = has_layer(layer);
    // Synchronization validation too: a barrier missing between the host's commands and the
    // engine's in one command buffer is reported.
    const VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    features.enabledValidationFeatureCount = 1;
    features.pEnabledValidationFeatures = &sync;
    if (validation) {
      ci.pNext = &features;
      ci.enabledLayerCount = 1;
      ci.ppEnabledLayerNames = &layer;
      ci.enabledExtensionCount = 1;
      ci.ppEnabledExtensionNames = &ext;
    }
    REQUIRE(vkCreateInstance(&ci, nullptr, &instance) == VK_SUCCESS);
    if (validation) {
      VkDebugUtilsMessengerCreateInfoEXT mi{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
      mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
      mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT;  // not the loader's notices
      mi.pfnUserCallback = collect;
      mi.pUserData = &messages;
      auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT"));
      REQUIRE(create(instance, &mi, nullptr, &messenger) == VK_SUCCESS);
    }
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(instance, &n, nullptr);
    std::vector<VkPhysicalDevice> all(n);
    vkEnumeratePhysicalDevices(instance, &n, all.data());
    physical = all.at(select_device(list_devices(), ""));

    uint32_t families = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(physical, &families, nullptr);
    std::vector<VkQueueFamilyProperties> props(families);
    vkGetPhysicalDeviceQueueFamilyProperties(physical, &families, props.data());
    while (family < families && !(props[family].queueFlags & VK_QUEUE_COMPUTE_BIT)) ++family;
    REQUIRE(family < families);

    VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &s16;
    vkGetPhysicalDeviceFeatures2(physical, &f2);
    storage16_supported = s16.storageBuffer16BitAccess == VK_TRUE;
    s16.storageBuffer16BitAccess = enable_storage16 && storage16_supported ? VK_TRUE : VK_FALSE;
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qi.queueFamilyIndex = family;
    qi.queueCount = 1;
    qi.pQueuePriorities = &priority;
    VkPhysicalDevice16BitStorageFeatures enabled{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    enabled.storageBuffer16BitAccess = s16.storageBuffer16BitAccess;
    VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    di.pNext = &enabled;
    di.queueCreateInfoCount = 1;
    di.pQueueCreateInfos = &qi;
    REQUIRE(vkCreateDevice(physical, &di, nullptr, &device) == VK_SUCCESS);
    vkGetDeviceQueue(device, family, 0, &queue);
  }

  HostDevice describe() const {
    HostDevice h;
    h.instance = instance;
    h.physical_device = physical;
    h.device = device;
    h.queue_family = family;
    h.queue = queue;
    h.get_instance_proc_addr = vkGetInstanceProcAddr;
    return h;
  }

  // The same for the C API.
  vkalex_host_device describe_c() const {
    vkalex_host_device h{};
    h.instance = instance;
    h.physical_device = physical;
    h.device = device;
    h.queue_family = family;
    h.queue = queue;
    h.get_instance_proc_addr = reinterpret_cast<vkalex_void_function>(vkGetInstanceProcAddr);
    return h;
  }

  // The host's own use of its device after the engine is gone.
  void use_device() {
    REQUIRE(vkDeviceWaitIdle(device) == VK_SUCCESS);
    VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = 1024;
    bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
    VkBuffer buffer = VK_NULL_HANDLE;
    REQUIRE(vkCreateBuffer(device, &bi, nullptr, &buffer) == VK_SUCCESS);
    vkDestroyBuffer(device, buffer, nullptr);
  }

  // Destroys the device and instance; the validation layer reports any object the engine
  // left on the device.
  void destroy() {
    if (device) vkDestroyDevice(device, nullptr);
    device = VK_NULL_HANDLE;
    if (messenger) {
      auto destroy_messenger = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
      destroy_messenger(instance, messenger, nullptr);
    }
    messenger = VK_NULL_HANDLE;
    if (instance) vkDestroyInstance(instance, nullptr);
    instance = VK_NULL_HANDLE;
  }
  ~Host() { destroy(); }
};

// The host's vkGetDeviceProcAddr, wrapped so that the engine's vkQueueSubmit calls are seen:
// each must come while the host's queue mutex is held (the engine took the host's lock).
std::mutex* g_queue_mutex = nullptr;
PFN_vkQueueSubmit g_real_submit = nullptr;
int g_submits = 0, g_unlocked_submits = 0;

VKAPI_ATTR VkResult VKAPI_CALL watched_submit(VkQueue q, uint32_t n, const VkSubmitInfo* info, VkFence fence) {
  ++g_submits;
  if (g_queue_mutex->try_lock()) {
    ++g_unlocked_submits;
    g_queue_mutex->unlock();
  }
  return g_real_submit(q, n, info, fence);
}

VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL watched_proc_addr(VkDevice device, const char* name) {
  if (std::strcmp(name, "vkQueueSubmit") == 0) {
    g_real_submit = reinterpret_cast<PFN_vkQueueSubmit>(vkGetDeviceProcAddr(device, name));
    return reinterpret_cast<PFN_vkVoidFunction>(watched_submit);
  }
  return vkGetDeviceProcAddr(device, name);
}

const char* const kSmall = R"({
  "name": "small", "input": {"channels": 3, "height": 19, "width": 19},
  "preprocess": {"resize": 19, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
  "classes": 6,
  "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1, "weight": "c1.w", "bias": "c1.b"},
    {"type": "relu"},
    {"type": "lrn", "size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2},
    {"type": "max_pool", "kernel": 3, "stride": 2},
    {"type": "flatten"},
    {"name": "f1", "type": "linear", "out_features": 6, "weight": "f1.w", "bias": "f1.b"},
    {"type": "softmax"}
  ]})";

}  // namespace

TEST_CASE("a Context on the host's Vulkan device runs a net as one of its own does, and leaves the device to the host",
          "[context][host]") {
  Host host(false);
  const ModelDesc m = parse_model(kSmall, "small", ".");
  const auto params = random_parameters(m, test::seed());
  const Shape s = m.input_shape(3);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 1, 2.0f));

  int locks = 0, unlocks = 0;
  std::mutex queue_mutex;
  HostDevice h = host.describe();
  h.lock_queue = [&] { queue_mutex.lock(); ++locks; };
  h.unlock_queue = [&] { ++unlocks; queue_mutex.unlock(); };
  h.get_device_proc_addr = watched_proc_addr;
  g_queue_mutex = &queue_mutex;
  g_submits = g_unlocked_submits = 0;
  ForwardResult on_host;
  {
    Context ctx(h, test::options());
    CHECK(ctx.device().name == test::gpu().device().name);
    Net net(ctx, m);
    net.set_parameters(params);
    on_host = net.forward(x);
    on_host = net.forward(x);  // replayed
    const Tensor t = ctx.tensor({5});
    ctx.upload(t, std::vector<float>{1, 2, 3, 4, 5});
    CHECK(ctx.download(t) == std::vector<float>{1, 2, 3, 4, 5});
  }
  // Every submit of the engine (through the host's functions) came inside the host's lock, and
  // every lock was released.
  CHECK(g_submits > 0);
  CHECK(g_unlocked_submits == 0);
  CHECK(locks >= g_submits);
  CHECK(locks == unlocks);

  Context own(test::options());
  Net net(own, m);
  net.set_parameters(params);
  const ForwardResult on_own = net.forward(x);
  // The same kernels on the same driver: the same numbers, bit for bit.
  CHECK(on_host.logits == on_own.logits);
  CHECK(on_host.probabilities == on_own.probabilities);
  test::require_no_validation_messages(own);

  host.use_device();
  host.destroy();
  for (const auto& msg : host.messages) UNSCOPED_INFO("host's validation layer: " << msg);
  CHECK(host.messages.empty());
}

TEST_CASE("a host device that lacks what the engine needs, or a missing handle, is refused by name",
          "[context][host][errors]") {
  Host host(false);
  HostDevice h = host.describe();
  SECTION("missing handles and functions") {
    HostDevice bad = h;
    bad.device = VK_NULL_HANDLE;
    CHECK_THROWS_WITH(Context(bad, test::options()), Catch::Contains("device is not given"));
    bad = h;
    bad.get_instance_proc_addr = nullptr;
    CHECK_THROWS_WITH(Context(bad, test::options()), Catch::Contains("get_instance_proc_addr is not given"));
    bad = h;
    bad.lock_queue = [] {};
    CHECK_THROWS_WITH(Context(bad, test::options()), Catch::Contains("lock_queue and unlock_queue go together"));
  }
  SECTION("a queue family out of range") {
    h.queue_family = 1000;
    CHECK_THROWS_WITH(Context(h, test::options()), Catch::Contains("queue_family 1000 is out of range"));
  }
  SECTION("16-bit storage: only where the host enabled it, and only where the device has it") {
    if (host.storage16_supported) {
      // Not enabled by the host: an fp16 net is refused as on a device without it.
      Context ctx(h, test::options());
      CHECK_FALSE(ctx.device().storage_buffer_16bit);
      const ModelDesc m = parse_model(kSmall, "small", ".");
      CHECK_THROWS_WITH(Net(ctx, m, {.storage = DType::F16}), Catch::Contains("16-bit"));
    } else {
      h.storage_buffer_16bit = true;
      CHECK_THROWS_WITH(Context(h, test::options()), Catch::Contains("does not support 16-bit storage buffers"));
    }
  }
  host.destroy();
  for (const auto& msg : host.messages) UNSCOPED_INFO("host's validation layer: " << msg);
  CHECK(host.messages.empty());
}

TEST_CASE("an fp16 net runs on a host device that enabled 16-bit storage", "[context][host]") {
  Host host(true);
  if (!host.storage16_supported) {
    SUCCEED("this device has no 16-bit storage buffers (the refusal is tested above)");
    return;
  }
  HostDevice h = host.describe();
  h.storage_buffer_16bit = true;
  const ModelDesc m = parse_model(kSmall, "small", ".");
  const Shape s = m.input_shape(2);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 2, 2.0f));
  {
    Context ctx(h, test::options());
    Net net(ctx, m, {.storage = DType::F16});
    net.set_parameters(random_parameters(m, test::seed()));
    const ForwardResult r = net.forward(x);
    const ForwardResult want = net.forward_cpu(x);
    double num = 0, den = 0;
    for (size_t i = 0; i < r.probabilities.size(); ++i) {
      num += (r.probabilities[i] - want.probabilities[i]) * (r.probabilities[i] - want.probabilities[i]);
      den += want.probabilities[i] * want.probabilities[i];
    }
    CHECK(std::sqrt(num / den) <= 1e-2);
  }
  host.destroy();
  CHECK(host.messages.empty());
}

namespace {

// A buffer of the host's own in host-visible memory, mapped.
struct HostOwnedBuffer {
  VkDevice device = VK_NULL_HANDLE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  void* mapped = nullptr;
  VkBufferUsageFlags usage = 0;
  VkDeviceSize size = 0;

  HostOwnedBuffer(const Host& host, VkDeviceSize bytes, VkBufferUsageFlags usage_flags)
      : device(host.device), usage(usage_flags), size(bytes) {
    VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = bytes;
    bi.usage = usage;
    REQUIRE(vkCreateBuffer(device, &bi, nullptr, &buffer) == VK_SUCCESS);
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, buffer, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(host.physical, &mp);
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = 0;
    while (type < mp.memoryTypeCount &&
           !((req.memoryTypeBits & (1u << type)) && (mp.memoryTypes[type].propertyFlags & want) == want))
      ++type;
    REQUIRE(type < mp.memoryTypeCount);
    VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = type;
    REQUIRE(vkAllocateMemory(device, &ai, nullptr, &memory) == VK_SUCCESS);
    REQUIRE(vkBindBufferMemory(device, buffer, memory, 0) == VK_SUCCESS);
    REQUIRE(vkMapMemory(device, memory, 0, VK_WHOLE_SIZE, 0, &mapped) == VK_SUCCESS);
  }
  HostOwnedBuffer(const HostOwnedBuffer&) = delete;
  ~HostOwnedBuffer() {
    if (memory) vkFreeMemory(device, memory, nullptr);
    if (buffer) vkDestroyBuffer(device, buffer, nullptr);
  }
  float* floats(VkDeviceSize byte_offset = 0) const {
    return reinterpret_cast<float*>(static_cast<char*>(mapped) + byte_offset);
  }
};

// The host's command pool, one command buffer and a fence.
struct HostCommands {
  VkDevice device;
  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  explicit HostCommands(const Host& host) : device(host.device) {
    VkCommandPoolCreateInfo pi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pi.queueFamilyIndex = host.family;
    REQUIRE(vkCreateCommandPool(device, &pi, nullptr, &pool) == VK_SUCCESS);
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    REQUIRE(vkAllocateCommandBuffers(device, &ai, &cmd) == VK_SUCCESS);
    VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    REQUIRE(vkCreateFence(device, &fi, nullptr, &fence) == VK_SUCCESS);
  }
  void begin() {
    REQUIRE(vkResetCommandBuffer(cmd, 0) == VK_SUCCESS);
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    REQUIRE(vkBeginCommandBuffer(cmd, &bi) == VK_SUCCESS);
  }
  // Ends, submits on `queue` and waits on the fence.
  void submit_and_wait(VkQueue queue) {
    REQUIRE(vkEndCommandBuffer(cmd) == VK_SUCCESS);
    REQUIRE(vkResetFences(device, 1, &fence) == VK_SUCCESS);
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    REQUIRE(vkQueueSubmit(queue, 1, &si, fence) == VK_SUCCESS);
    REQUIRE(vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS);
  }
  ~HostCommands() {
    vkDestroyFence(device, fence, nullptr);
    vkDestroyCommandPool(device, pool, nullptr);
  }
};

constexpr VkBufferUsageFlags kAllUsage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                         VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

}  // namespace

TEST_CASE("a Net and a Trainer share their device: the Context and the Net may go first", "[context][host][lifetime]") {
  const ModelDesc m = parse_model(kSmall, "small", ".");
  const auto params = random_parameters(m, test::seed());
  const Shape s = m.input_shape(4);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 1, 2.0f));
  const std::vector<uint32_t> labels{0, 5, 2, 3};
  StepParams sp;
  sp.seed = 3;

  // Reference: everything alive throughout.
  Context ref_ctx(test::options());
  Net ref_net(ref_ctx, m);
  ref_net.set_parameters(params);
  const ForwardResult want = ref_net.forward(x);
  Trainer ref_trainer(ref_ctx, ref_net, 4);
  const StepStats want_step = ref_trainer.step(x, labels, sp);
  const auto want_params = ref_net.parameters();

  std::unique_ptr<Net> net;
  {
    Context ctx(test::options());
    net = std::make_unique<Net>(ctx, m);
    net->set_parameters(params);
  }  // the Context handle is gone; the Net's device is not
  CHECK(net->forward(x).probabilities == want.probabilities);

  // A moved Context: the new handle works, the moved-from one is refused by name.
  Context a(test::options());
  Context b = std::move(a);
  CHECK_THROWS_WITH(Net(a, m), Catch::Contains("moved from"));
  CHECK_THROWS_WITH(a.tensor({4}), Catch::Contains("moved from"));
  Net other(b, m);
  // A Trainer on a device other than its net's is refused.
  CHECK_THROWS_WITH(Trainer(b, *net, 4), Catch::Contains("not the device"));

  // The Trainer outlives its Net: the step still updates the parameters it shared with it.
  Net moved = std::move(*net);
  net.reset();
  Trainer trainer(moved, 4);
  const Tensor conv_weight = moved.parameter_tensor("c1.w");
  Context device = moved.context().share();
  CHECK_THROWS_WITH(b.download(conv_weight), Catch::Contains("another device"));
  { Net gone = std::move(moved); }
  const StepStats got = trainer.step(x, labels, sp);
  CHECK(got.loss == want_step.loss);
  CHECK(got.correct == want_step.correct);
  CHECK(device.download(conv_weight) == want_params.at("c1.w").data);
  test::require_no_validation_messages(ref_ctx);
}

TEST_CASE("a Net records its forward pass into the host's command buffer, reading the host's buffer, between the host's commands",
          "[context][host]") {
  const ModelDesc m = parse_model(kSmall, "small", ".");
  const auto params = random_parameters(m, test::seed());
  const uint32_t batch = 3;
  const Shape s = m.input_shape(batch);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 1, 2.0f));
  const uint64_t in_bytes = s.numel() * 4, out_bytes = uint64_t(batch) * m.classes * 4;

  // The engine's own device, the engine's own buffers.
  Context own(test::options());
  Net own_net(own, m);
  own_net.set_parameters(params);
  const ForwardResult want = own_net.forward(x);

  Host host(false);
  {
    HostOwnedBuffer upload(host, in_bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
    // The input lives 256 bytes into a buffer of the host's; the host fills it with its own copy.
    HostOwnedBuffer input(host, 256 + in_bytes, kAllUsage);
    HostOwnedBuffer readback(host, 2 * out_bytes + 64, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    std::memcpy(upload.mapped, x.data.data(), in_bytes);
    std::memset(input.mapped, 0xff, 256 + in_bytes);  // NaN until the host's copy lands
    std::memset(readback.mapped, 0, readback.size);

    Context ctx(host.describe(), test::options());
    Net net(ctx, m);
    net.set_parameters(params);
    net.set_input(wrap_buffer(ctx, {input.buffer, 256, in_bytes, input.usage}, s));
    CHECK(net.batch() == batch);
    CHECK_THROWS_WITH(net.prepare(batch + 1), Catch::Contains("holds batch 3"));
    const HostBuffer logits = buffer_of(net.logits()), probs = buffer_of(net.probabilities());
    CHECK(logits.size == out_bytes);

    HostCommands hc(host);
    for (int frame = 0; frame < 2; ++frame) {  // the same recording, recorded into two frames
      hc.begin();
      const VkBufferCopy in{0, 256, in_bytes};
      vkCmdCopyBuffer(hc.cmd, upload.buffer, input.buffer, 1, &in);
      record_commands(net.host_recording(), hc.cmd);
      const VkBufferCopy out[2] = {{logits.offset, 0, out_bytes}, {probs.offset, out_bytes, out_bytes}};
      vkCmdCopyBuffer(hc.cmd, logits.buffer, readback.buffer, 1, &out[0]);
      vkCmdCopyBuffer(hc.cmd, probs.buffer, readback.buffer, 1, &out[1]);
      hc.submit_and_wait(host.queue);
      // What the host's own commands read after the engine's: bit for bit the engine-owned
      // device's result.
      const float* got = readback.floats();
      CHECK(std::memcmp(got, want.logits.data(), out_bytes) == 0);
      CHECK(std::memcmp(got + batch * m.classes, want.probabilities.data(), out_bytes) == 0);
      std::memset(readback.mapped, 0, readback.size);
    }
    const ForwardResult read = net.read_output();
    CHECK(read.probabilities == want.probabilities);
    // The engine's own submissions on the same host buffer, and forward() uploading into it.
    CHECK(net.run().probabilities == want.probabilities);
    // The host's copy into the input in a submission of its own, then the engine's: the
    // engine's submission opens with a barrier that makes the host's write visible.
    std::memset(input.mapped, 0xff, 256 + in_bytes);
    hc.begin();
    const VkBufferCopy refill{0, 256, in_bytes};
    vkCmdCopyBuffer(hc.cmd, upload.buffer, input.buffer, 1, &refill);
    hc.submit_and_wait(host.queue);
    CHECK(net.run().probabilities == want.probabilities);
    CHECK(net.run().probabilities == want.probabilities);
    std::memset(input.mapped, 0xff, 256 + in_bytes);
    CHECK(net.forward(x).logits == want.logits);

    // A buffer the host made without texel or transfer use is refused where that use comes.
    HostOwnedBuffer storage_only(host, in_bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
    const Tensor t = wrap_buffer(ctx, {storage_only.buffer, 0, in_bytes, storage_only.usage}, s);
    CHECK_THROWS_WITH(ctx.upload(t, x.data), Catch::Contains("VK_BUFFER_USAGE_TRANSFER_DST_BIT"));
    CHECK_THROWS_WITH(ctx.download(t), Catch::Contains("VK_BUFFER_USAGE_TRANSFER_SRC_BIT"));
    CHECK_THROWS_WITH(wrap_buffer(ctx, {input.buffer, 4, in_bytes, input.usage}, s),
                      Catch::Contains("minStorageBufferOffsetAlignment"));
    CHECK_THROWS_WITH(wrap_buffer(ctx, {input.buffer, 0, in_bytes - 4, input.usage}, s), Catch::Contains("needs " + std::to_string(in_bytes)));
    CHECK_THROWS_WITH(wrap_buffer(ctx, {VK_NULL_HANDLE, 0, in_bytes, input.usage}, s), Catch::Contains("VK_NULL_HANDLE"));
    CHECK_THROWS_WITH(net.set_input(wrap_buffer(ctx, {input.buffer, 0, in_bytes, input.usage}, Shape{batch, 3, 19, 18})),
                      Catch::Contains("is not [N, 3, 19, 19]"));
    CHECK_THROWS_WITH(net.set_input(wrap_buffer(own, {input.buffer, 0, in_bytes, input.usage}, s)),
                      Catch::Contains("another device"));
    CHECK_THROWS_WITH(record_commands(net.host_recording(), VK_NULL_HANDLE), Catch::Contains("VK_NULL_HANDLE"));
    // A buffer the pass cannot read (no storage or texel use) is refused when the pass is
    // recorded; the net keeps the input it had, recorded again.
    HostOwnedBuffer transfer_only(host, in_bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    CHECK_THROWS_WITH(net.set_input(wrap_buffer(ctx, {transfer_only.buffer, 0, in_bytes, transfer_only.usage}, s)),
                      Catch::Contains("_BUFFER_BIT"));
    CHECK(net.batch() == batch);
    CHECK(buffer_of(net.input()).buffer == input.buffer);
    CHECK(net.run().probabilities == want.probabilities);
    // An empty tensor: back to an input of the net's own, for any batch.
    net.set_input(Tensor());
    CHECK_THROWS_WITH(net.run(), Catch::Contains("needs an input"));
    CHECK(net.forward(x).probabilities == want.probabilities);
    CHECK(buffer_of(net.input()).buffer != input.buffer);

    // The host's device and queue are the host's again: its own work after vkalex's.
    hc.begin();
    vkCmdFillBuffer(hc.cmd, readback.buffer, 0, 64, 0x3f800000u);
    hc.submit_and_wait(host.queue);
    CHECK(readback.floats()[15] == 1.0f);
  }
  host.use_device();
  host.destroy();
  for (const auto& msg : host.messages) UNSCOPED_INFO("host's validation layer: " << msg);
  CHECK(host.messages.empty());
  test::require_no_validation_messages(own);
}

TEST_CASE("the host's queue lock keeps the engine's submits and another thread's apart", "[context][host][threads]") {
  Host host(false);
  const ModelDesc m = parse_model(kSmall, "small", ".");
  const auto params = random_parameters(m, test::seed());
  const Shape s = m.input_shape(2);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 1, 2.0f));
  std::mutex queue_mutex;
  HostDevice h = host.describe();
  h.lock_queue = [&] { queue_mutex.lock(); };
  h.unlock_queue = [&] { queue_mutex.unlock(); };
  h.get_device_proc_addr = watched_proc_addr;
  g_queue_mutex = &queue_mutex;
  g_submits = g_unlocked_submits = 0;
  {
    HostOwnedBuffer target(host, 4096, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    HostCommands hc(host);
    Context ctx(h, test::options());
    Net net(ctx, m);
    net.set_parameters(params);
    const ForwardResult want = net.forward(x);
    std::atomic<bool> stop{false};
    std::atomic<int> host_submits{0};
    // The host's render thread: its own submissions on the same queue, under its own lock.
    std::thread other([&] {
      hc.begin();
      vkCmdFillBuffer(hc.cmd, target.buffer, 0, 4096, 0x40000000u);
      REQUIRE(vkEndCommandBuffer(hc.cmd) == VK_SUCCESS);
      VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
      si.commandBufferCount = 1;
      si.pCommandBuffers = &hc.cmd;
      while (!stop) {
        REQUIRE(vkResetFences(host.device, 1, &hc.fence) == VK_SUCCESS);
        {
          std::lock_guard lock(queue_mutex);
          REQUIRE(vkQueueSubmit(host.queue, 1, &si, hc.fence) == VK_SUCCESS);
        }
        REQUIRE(vkWaitForFences(host.device, 1, &hc.fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS);
        ++host_submits;
      }
    });
    int same = 0;
    for (int i = 0; i < 8; ++i) same += net.forward(x).probabilities == want.probabilities;
    stop = true;
    other.join();
    CHECK(same == 8);
    CHECK(host_submits > 0);
    CHECK(target.floats()[1023] == 2.0f);
  }
  CHECK(g_submits > 0);
  CHECK(g_unlocked_submits == 0);
  host.destroy();
  for (const auto& msg : host.messages) UNSCOPED_INFO("host's validation layer: " << msg);
  CHECK(host.messages.empty());
}

TEST_CASE("embed and embed-c print the top 5 of the engine's own forward pass", "[host][cli]") {
  const ModelDesc m = load_model(std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json");
  const auto labels = load_labels(m.labels_path, m.classes);
  Net net(test::gpu(), m);
  net.load_weights(SafeTensors(m.weights_path));
  const std::string data = std::string(VKALEX_TEST_DATA_DIR) + "/../../samples/data/";
  for (const char* file : {"fashion-test-0004-shirt.png", "fashion-test-0013-dress.png"}) {
    const std::string image = data + file;
    const ForwardResult r = net.forward(preprocess_image(load_image(image, 1), m.preprocess, 1, m.height, m.width));
    std::vector<uint32_t> order(m.classes);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return r.probabilities[a] > r.probabilities[b]; });
    std::string want;
    char line[128];
    for (int i = 0; i < 5; ++i) {
      std::snprintf(line, sizeof line, "  %-24s %.4f\n", labels[order[i]].c_str(), r.probabilities[order[i]]);
      want += line;
    }
    for (const char* exe : {VKALEX_EMBED_EXE, VKALEX_EMBED_C_EXE}) {
      INFO(exe << " " << file);
      const auto [code, out] = test::run_command(std::string(exe) + " " + image, false);
      CHECK(code == 0);
      CHECK(out.substr(out.find('\n') + 1) == want);
    }
  }
  for (const char* exe : {VKALEX_EMBED_EXE, VKALEX_EMBED_C_EXE}) {
    INFO(exe);
    const auto missing = test::run_command(std::string(exe) + " /nonexistent.png");
    CHECK(missing.first == 1);
    CHECK_THAT(missing.second, Catch::Contains("/nonexistent.png"));
    const auto bad_flag = test::run_command(std::string(exe) + " --frobnicate x.png");
    CHECK(bad_flag.first == 1);
    CHECK_THAT(bad_flag.second, Catch::Contains("unknown option --frobnicate"));
    const auto help = test::run_command(std::string(exe) + " --help");
    CHECK(help.first == 0);
    CHECK_THAT(help.second, Catch::Contains("usage:"));
  }
}

namespace {

// Holds the first engine submit after `armed` inside the host's queue lock for a while, so that
// other threads can be made to wait for the call that submits.
struct SubmitGate {
  std::mutex m;
  std::condition_variable cv;
  bool armed = false, inside = false;

  static void lock(void* user) {
    auto& g = *static_cast<SubmitGate*>(user);
    std::unique_lock l(g.m);
    if (!g.armed) return;
    g.armed = false;
    g.inside = true;
    g.cv.notify_all();
    l.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  static void unlock(void*) {}
  void wait_inside() {
    std::unique_lock l(m);
    cv.wait(l, [&] { return inside; });
  }
};

}  // namespace

TEST_CASE("C API: a destroy while other threads' calls run or wait on the net waits for them, refuses the waiting one "
          "and frees the engine's objects before it returns",
          "[capi][host][threads]") {
  Host host(false);
  SubmitGate gate;
  vkalex_host_device h = host.describe_c();
  h.lock_queue = SubmitGate::lock;
  h.unlock_queue = SubmitGate::unlock;
  h.user = &gate;
  vkalex_context* ctx = nullptr;
  REQUIRE(vkalex_context_create_host(&h, nullptr, &ctx) == VKALEX_OK);
  vkalex_net* net = nullptr;
  const std::string model = std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json";
  REQUIRE(vkalex_net_create(ctx, model.c_str(), nullptr, &net) == VKALEX_OK);
  const std::vector<float> x = random_uniform(28 * 28, test::seed(), 1.0f);
  std::vector<float> probs(10);

  {
    std::lock_guard l(gate.m);
    gate.armed = true;
  }
  vkalex_status running = VKALEX_ERROR_FAILED, waiting = VKALEX_OK;
  std::string waiting_error;
  // The running call: inside the context's lock, held at its submit.
  std::thread a([&] { running = vkalex_forward(net, x.data(), x.size(), 1, nullptr, probs.data(), probs.size()); });
  gate.wait_inside();
  // The waiting call: the net was live when it began, and is destroyed before it gets the lock.
  std::thread c([&] {
    vkalex_net_info info{};
    waiting = vkalex_net_get_info(net, &info);
    char message[512];
    vkalex_last_error(nullptr, message, sizeof message);
    waiting_error = message;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);  // after the running call, whichever order
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
  // Nothing of the engine's is left on the host's device: its validation layer says so when
  // the host destroys the device, at once, while the other threads may still be returning.
  host.destroy();
  a.join();
  c.join();
  CHECK(running == VKALEX_OK);
  CHECK(waiting == VKALEX_ERROR_INVALID_HANDLE);
  CHECK_THAT(waiting_error, Catch::Contains("destroyed"));
  CHECK(vkalex_forward(net, x.data(), x.size(), 1, nullptr, probs.data(), probs.size()) == VKALEX_ERROR_INVALID_HANDLE);
  for (const auto& msg : host.messages) UNSCOPED_INFO("host's validation layer: " << msg);
  CHECK(host.messages.empty());
}

namespace {

// A device that is lost at the engine's Nth submit from now: vkQueueSubmit and every later
// vkWaitForFences answer VK_ERROR_DEVICE_LOST, as a driver does after a GPU hang or reset.
int g_submits_before_loss = -1;
bool g_lost = false;
PFN_vkQueueSubmit g_lossy_real_submit = nullptr;
PFN_vkWaitForFences g_lossy_real_wait = nullptr;

VKAPI_ATTR VkResult VKAPI_CALL lossy_submit(VkQueue q, uint32_t n, const VkSubmitInfo* info, VkFence fence) {
  if (g_submits_before_loss >= 0 && g_submits_before_loss-- == 0) g_lost = true;
  return g_lost ? VK_ERROR_DEVICE_LOST : g_lossy_real_submit(q, n, info, fence);
}
VKAPI_ATTR VkResult VKAPI_CALL lossy_wait(VkDevice d, uint32_t n, const VkFence* f, VkBool32 all, uint64_t timeout) {
  return g_lost ? VK_ERROR_DEVICE_LOST : g_lossy_real_wait(d, n, f, all, timeout);
}
VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL lossy_proc_addr(VkDevice device, const char* name) {
  if (std::strcmp(name, "vkQueueSubmit") == 0) {
    g_lossy_real_submit = reinterpret_cast<PFN_vkQueueSubmit>(vkGetDeviceProcAddr(device, name));
    return reinterpret_cast<PFN_vkVoidFunction>(lossy_submit);
  }
  if (std::strcmp(name, "vkWaitForFences") == 0) {
    g_lossy_real_wait = reinterpret_cast<PFN_vkWaitForFences>(vkGetDeviceProcAddr(device, name));
    return reinterpret_cast<PFN_vkVoidFunction>(lossy_wait);
  }
  return vkGetDeviceProcAddr(device, name);
}

}  // namespace

TEST_CASE("a lost device is a clear error from the engine and the C API, never a hang or a crash", "[host][errors][hardening]") {
  Host host(false);
  const ModelDesc m = parse_model(kSmall, "small", ".");
  const auto params = random_parameters(m, test::seed());
  const Shape s = m.input_shape(2);
  const HostTensor x(s, random_uniform(s.numel(), test::seed() + 1, 2.0f));
  HostDevice h = host.describe();
  h.get_device_proc_addr = lossy_proc_addr;
  g_lost = false;
  g_submits_before_loss = -1;
  {
    Context ctx(h, test::options());
    Net net(ctx, m);
    net.set_parameters(params);
    CHECK_NOTHROW(net.forward(x));
    g_submits_before_loss = 0;  // the next submit finds the device lost
    try {
      net.forward(x);
      FAIL("a forward pass on a lost device succeeded");
    } catch (const Error& e) {
      CHECK(e.vk_result() == "VK_ERROR_DEVICE_LOST");
      CHECK_THAT(e.what(), Catch::Contains("the device was lost") && Catch::Contains("make a new one"));
    }
    // Every later call fails the same way, promptly.
    CHECK_THROWS_WITH(net.forward(x), Catch::Contains("VK_ERROR_DEVICE_LOST"));
  }  // and the Context goes away without hanging
  // Through the C API: VKALEX_ERROR_DEVICE with the Vulkan result named.
  g_lost = false;
  g_submits_before_loss = -1;
  vkalex_host_device ch = host.describe_c();
  ch.get_device_proc_addr = reinterpret_cast<vkalex_void_function>(lossy_proc_addr);
  vkalex_context* cctx = nullptr;
  REQUIRE(vkalex_context_create_host(&ch, nullptr, &cctx) == VKALEX_OK);
  vkalex_net* cnet = nullptr;
  const std::string model = std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json";
  REQUIRE(vkalex_net_create(cctx, model.c_str(), nullptr, &cnet) == VKALEX_OK);
  std::vector<float> in(28 * 28, 0.5f), probs(10);
  g_submits_before_loss = 0;
  CHECK(vkalex_forward(cnet, in.data(), in.size(), 1, nullptr, probs.data(), probs.size()) == VKALEX_ERROR_DEVICE);
  char message[512];
  vkalex_last_error(cctx, message, sizeof message);
  CHECK_THAT(std::string(message), Catch::Contains("VK_ERROR_DEVICE_LOST"));
  CHECK(vkalex_net_destroy(cnet) == VKALEX_OK);
  CHECK(vkalex_context_destroy(cctx) == VKALEX_OK);
  g_lost = false;
  g_submits_before_loss = -1;
  host.use_device();  // the real device was never lost: the host goes on
}
