// The C API (vkalex/vkalex.h): handles with a registry of live ones, one lock per context, the
// last error per context (or per thread where there is no context), no exception let out.
//
// A handle is the address of an object the registry owns through a shared_ptr; each call takes
// a reference for its duration. A destroy removes the handle and marks the object dead at once
// (under the registry's lock), then takes the context's lock, so it waits for a call already
// running about it, and releases the engine's object before it returns; a call that was waiting
// for the lock finds the object dead and refuses it. Lock order: a context's lock, then the
// registry's.
#include "vkalex/vkalex.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include "vkalex/error.hpp"
#include "vkalex/host_vulkan.hpp"
#include "vkalex/image.hpp"
#include "vkalex/net.hpp"
#include "vkalex/onnx.hpp"
#include "vkalex/safetensors.hpp"
#include "vkalex/trainer.hpp"

// `dead` (under the registry's lock): destroyed; the engine's object is released, or about to be.
struct vkalex_context : std::enable_shared_from_this<vkalex_context> {
  std::optional<vkalex::Context> context;
  std::mutex lock;  // serialises every call about this context, its nets and trainers
  std::mutex error_lock;
  std::string last_error;
  bool dead = false;
  size_t nets = 0;  // live nets made on it (under the registry's lock)
};

struct vkalex_net : std::enable_shared_from_this<vkalex_net> {
  std::shared_ptr<vkalex_context> owner;
  std::optional<vkalex::Net> net;
  std::vector<std::string> labels;  // loaded on first vkalex_net_class_name
  bool dead = false;
  size_t trainers = 0;  // live trainers made for it (under the registry's lock)
};

struct vkalex_trainer {
  std::shared_ptr<vkalex_net> net;
  std::optional<vkalex::Trainer> trainer;
  bool dead = false;
};

namespace {

using vkalex::Error;

// Which handles are live. A handle is checked here before it is used at all.
struct Registry {
  std::mutex mutex;
  std::map<const vkalex_context*, std::shared_ptr<vkalex_context>> contexts;
  std::map<const vkalex_net*, std::shared_ptr<vkalex_net>> nets;
  std::map<const vkalex_trainer*, std::shared_ptr<vkalex_trainer>> trainers;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: calls may come while statics are torn down
  return *r;
}

thread_local std::string t_last_error;

// A failure with its status and message, thrown inside a call and turned into its status.
struct Failure {
  vkalex_status status;
  std::string message;
};

[[noreturn]] void fail(vkalex_status status, std::string message) { throw Failure{status, std::move(message)}; }

void require(bool ok, const std::string& message) {
  if (!ok) fail(VKALEX_ERROR_INVALID_ARGUMENT, message);
}

// `call: message` into `slot`; where memory runs out, a short message that needs none.
void store(std::string& slot, const char* call, const std::string& message) noexcept {
  try {
    slot = std::string(call) + ": " + message;
  } catch (...) {
    slot.clear();  // keeps the capacity, at least that of a short string
    try {
      slot = "out of memory";
    } catch (...) {
    }
  }
}

void set_error(vkalex_context* ctx, const char* call, const std::string& message) noexcept {
  if (ctx) {
    try {
      std::lock_guard lock(ctx->error_lock);
      store(ctx->last_error, call, message);
      return;
    } catch (...) {  // the lock failed: the thread's error, then
    }
  }
  store(t_last_error, call, message);
}

// Runs `body` and maps what it throws to a status; the message goes to `ctx`'s last error (or
// the thread's, where ctx is null). `engine_status` is the status of a vkalex::Error: what the
// engine refused in this call (a file for the loaders, the device for context creation).
template <typename F>
vkalex_status guarded(vkalex_context* ctx, const char* call, vkalex_status engine_status, F&& body) noexcept {
  try {
    body();
    return VKALEX_OK;
  } catch (const Failure& f) {
    // A handle that died while the call ran: its context's error can no longer be read.
    set_error(f.status == VKALEX_ERROR_INVALID_HANDLE ? nullptr : ctx, call, f.message);
    return f.status;
  } catch (const Error& e) {
    set_error(ctx, call, e.what());
    const std::string& r = e.vk_result();
    return r == "VK_ERROR_OUT_OF_DEVICE_MEMORY" || r == "VK_ERROR_OUT_OF_HOST_MEMORY" ? VKALEX_ERROR_OUT_OF_MEMORY
           : !r.empty()                                                             ? VKALEX_ERROR_DEVICE
                                                                                    : engine_status;
  } catch (const std::bad_alloc&) {
    set_error(ctx, call, "out of host memory");
    return VKALEX_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_error(ctx, call, e.what());
    return VKALEX_ERROR_FAILED;
  } catch (...) {
    set_error(ctx, call, "an unknown failure");
    return VKALEX_ERROR_FAILED;
  }
}

vkalex_context* context_of(vkalex_context& c) { return &c; }
vkalex_context* context_of(vkalex_net& n) { return n.owner.get(); }
vkalex_context* context_of(vkalex_trainer& t) { return t.net->owner.get(); }

auto& map_of(const vkalex_context*) { return registry().contexts; }
auto& map_of(const vkalex_net*) { return registry().nets; }
auto& map_of(const vkalex_trainer*) { return registry().trainers; }

std::string not_live(const void* handle, const char* what) {
  return std::string(what) + (handle ? " is not a live handle (destroyed, or never created)" : " is null");
}

// The live object behind `handle` (the registry's lock held), or null with the thread's last
// error saying which argument is not live.
template <typename T>
std::shared_ptr<T> find_live(const T* handle, const char* call, const char* what) {
  auto& map = map_of(handle);
  auto it = handle ? map.find(handle) : map.end();
  if (it != map.end()) return it->second;
  set_error(nullptr, call, not_live(handle, what));
  return nullptr;
}

// Runs `body` under the lock of `handle`'s context when the handle is live (before and after
// the lock is taken); else returns VKALEX_ERROR_INVALID_HANDLE.
template <typename T, typename F>
vkalex_status with_handle(T* handle, const char* call, const char* what, vkalex_status engine_status,
                          F&& body) noexcept {
  try {
    std::shared_ptr<T> keep;  // outlives the lock below: the object is not freed under it
    {
      std::lock_guard lock(registry().mutex);
      keep = find_live(handle, call, what);
    }
    if (!keep) return VKALEX_ERROR_INVALID_HANDLE;
    vkalex_context* ctx = context_of(*keep);
    std::lock_guard lock(ctx->lock);
    {
      std::lock_guard rlock(registry().mutex);
      if (keep->dead) {
        set_error(nullptr, call, std::string(what) + " was destroyed by another thread while this call waited");
        return VKALEX_ERROR_INVALID_HANDLE;
      }
    }
    return guarded(ctx, call, engine_status, [&] { body(*keep); });
  } catch (...) {  // a lock that could not be taken, or memory for a message
    set_error(nullptr, call, "out of host memory, or a lock could not be taken");
    return VKALEX_ERROR_FAILED;
  }
}

// Registers a child (a net of `parent`, or a trainer of it) unless `parent` died while the
// call that made the child ran (the registry's lock held).
template <typename P>
void require_live_parent(const P& parent, const char* what) {
  if (parent.dead) fail(VKALEX_ERROR_INVALID_HANDLE, std::string(what) + " was destroyed by another thread during this call");
}

// Destroys a live handle: under the registry's lock, `check` may refuse (returning a status
// other than VKALEX_OK, with the context's error set) before the handle is removed and marked
// dead; then, under its context's lock, `release` frees the engine's object.
template <typename T, typename Check, typename Release>
vkalex_status destroy_handle(T* handle, const char* call, const char* what, Check&& check, Release&& release) noexcept {
  try {
    std::shared_ptr<T> gone;
    {
      std::lock_guard lock(registry().mutex);
      gone = find_live(handle, call, what);
      if (!gone) return VKALEX_ERROR_INVALID_HANDLE;
      if (const vkalex_status s = check(*gone); s != VKALEX_OK) return s;
      map_of(handle).erase(handle);
      gone->dead = true;
    }
    vkalex_context* ctx = context_of(*gone);
    const std::shared_ptr<vkalex_context> owner = ctx->shared_from_this();  // outlives the lock
    std::lock_guard lock(ctx->lock);  // after a call about it still running on another thread
    release(*gone);
    return VKALEX_OK;
  } catch (...) {
    set_error(nullptr, call, "a lock could not be taken");
    return VKALEX_ERROR_FAILED;
  }
}

// VkBuffer to and from the C API's integer: a pointer on 64-bit platforms, uint64_t on 32-bit
// (the C-style cast is the conversion that exists in both cases).
VkBuffer to_vk_buffer(uint64_t v) { return (VkBuffer)v; }  // NOLINT(google-readability-casting)
uint64_t from_vk_buffer(VkBuffer b) { return (uint64_t)b; }  // NOLINT(google-readability-casting)

// `count` RGB8 images checked and prepared as the model's description says, as one batch.
vkalex::HostTensor prepare_rgb8(const vkalex::ModelDesc& m, const uint8_t* pixels, size_t pixels_size, uint32_t width,
                                uint32_t height, uint32_t count) {
  require(pixels != nullptr, "pixels is null");
  require(count > 0, "count is 0");
  require(width > 0 && height > 0 && width <= vkalex::kMaxImageSide && height <= vkalex::kMaxImageSide &&
              uint64_t(width) * height <= vkalex::kMaxImagePixels,
          "an image of " + std::to_string(width) + "x" + std::to_string(height) + " pixels is beyond the limit (" +
              std::to_string(vkalex::kMaxImageSide) + " a side, " + std::to_string(vkalex::kMaxImagePixels) +
              " in all)");
  const uint64_t image_bytes = uint64_t(width) * height * 3;
  require(count <= UINT64_MAX / image_bytes && pixels_size == image_bytes * count,
          "pixels_size " + std::to_string(pixels_size) + " is not count * width * height * 3 = " + std::to_string(count) +
              " * " + std::to_string(width) + " * " + std::to_string(height) + " * 3");
  const uint64_t per_image = uint64_t(m.channels) * m.height * m.width;
  vkalex::HostTensor batch(m.input_shape(count));
  for (uint32_t i = 0; i < count; ++i) {
    vkalex::Image img{width, height, 3, std::vector<uint8_t>(pixels + i * image_bytes, pixels + (i + 1) * image_bytes)};
    const vkalex::HostTensor x =
        vkalex::preprocess_image(vkalex::convert_channels(img, m.channels), m.preprocess, m.channels, m.height, m.width);
    std::copy(x.data.begin(), x.data.end(), batch.data.begin() + i * per_image);
  }
  return batch;
}

// Refuses the first value of a caller's float array that is NaN or infinite, by its index.
void require_finite_input(const float* values, size_t count, const char* what) {
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) {
      fail(VKALEX_ERROR_INVALID_ARGUMENT, std::string(what) + "[" + std::to_string(i) + "] is " +
                                              (std::isnan(values[i]) ? "NaN" : "infinite"));
    }
  }
}

void copy_text(std::string_view text, char* buffer, size_t size, size_t* length) noexcept {
  if (length) *length = text.size();
  if (!buffer || size == 0) return;
  const size_t n = std::min(text.size(), size - 1);
  std::memcpy(buffer, text.data(), n);
  buffer[n] = '\0';
}

vkalex::ContextOptions cpp_options(const vkalex_context_options* o) {
  vkalex::ContextOptions options;
  if (!o) return options;
  if (o->device) options.device = std::string(o->device);
  options.validation = o->validation != 0;
  options.pipeline_cache = o->no_pipeline_cache == 0;
  return options;
}

// Registers a new context (made by `make`) and hands it out.
template <typename F>
vkalex_status create_context(const char* call, vkalex_context** out, F&& make) noexcept {
  if (!out) {
    set_error(nullptr, call, "out is null");
    return VKALEX_ERROR_INVALID_ARGUMENT;
  }
  *out = nullptr;
  return guarded(nullptr, call, VKALEX_ERROR_DEVICE, [&] {
    auto c = std::make_shared<vkalex_context>();
    make(*c);
    std::lock_guard lock(registry().mutex);
    registry().contexts.emplace(c.get(), c);
    *out = c.get();
  });
}

}  // namespace

extern "C" {

const char* vkalex_status_name(vkalex_status status) noexcept {
  switch (status) {
    case VKALEX_OK: return "VKALEX_OK";
    case VKALEX_ERROR_INVALID_ARGUMENT: return "VKALEX_ERROR_INVALID_ARGUMENT";
    case VKALEX_ERROR_INVALID_HANDLE: return "VKALEX_ERROR_INVALID_HANDLE";
    case VKALEX_ERROR_IN_USE: return "VKALEX_ERROR_IN_USE";
    case VKALEX_ERROR_FILE: return "VKALEX_ERROR_FILE";
    case VKALEX_ERROR_DEVICE: return "VKALEX_ERROR_DEVICE";
    case VKALEX_ERROR_OUT_OF_MEMORY: return "VKALEX_ERROR_OUT_OF_MEMORY";
    case VKALEX_ERROR_FAILED: return "VKALEX_ERROR_FAILED";
  }
  return "unknown status";
}

const char* vkalex_version(void) noexcept { return VKALEX_VERSION_STRING; }

size_t vkalex_last_error(const vkalex_context* context, char* buffer, size_t size) noexcept {
  try {
    std::string message;
    if (!context) {
      message = t_last_error;
    } else {
      std::shared_ptr<vkalex_context> c;
      {
        std::lock_guard lock(registry().mutex);
        auto it = registry().contexts.find(context);
        if (it != registry().contexts.end()) c = it->second;
      }
      if (!c) {
        message = "vkalex_last_error: the context is not a live handle (destroyed, or never created)";
      } else {
        std::lock_guard elock(c->error_lock);
        message = c->last_error;
      }
    }
    size_t length = 0;
    copy_text(message, buffer, size, &length);
    return length;
  } catch (...) {  // no memory for the copy, or a lock that failed
    static const char kMessage[] = "vkalex_last_error: out of host memory";
    copy_text(kMessage, buffer, size, nullptr);
    return sizeof kMessage - 1;
  }
}

vkalex_status vkalex_context_create(const vkalex_context_options* options, vkalex_context** out) noexcept {
  return create_context("vkalex_context_create", out,
                        [&](vkalex_context& c) { c.context.emplace(cpp_options(options)); });
}

vkalex_status vkalex_context_create_host(const vkalex_host_device* host, const vkalex_context_options* options,
                                         vkalex_context** out) noexcept {
  return create_context("vkalex_context_create_host", out, [&](vkalex_context& c) {
    require(host != nullptr, "host is null");
    require(host->instance && host->physical_device && host->device && host->queue && host->get_instance_proc_addr,
            "host->instance, physical_device, device, queue and get_instance_proc_addr must all be given "
            "(one is not given)");
    vkalex::HostDevice h;
    h.instance = static_cast<VkInstance>(host->instance);
    h.physical_device = static_cast<VkPhysicalDevice>(host->physical_device);
    h.device = static_cast<VkDevice>(host->device);
    h.queue_family = host->queue_family;
    h.queue = static_cast<VkQueue>(host->queue);
    h.get_instance_proc_addr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(host->get_instance_proc_addr);
    h.get_device_proc_addr = reinterpret_cast<PFN_vkGetDeviceProcAddr>(host->get_device_proc_addr);
    h.storage_buffer_16bit = host->storage_buffer_16bit != 0;
    require((host->lock_queue == nullptr) == (host->unlock_queue == nullptr),
            "lock_queue and unlock_queue go together: give both or neither");
    if (host->lock_queue) {
      auto lock = host->lock_queue, unlock = host->unlock_queue;
      void* user = host->user;
      h.lock_queue = [lock, user] { lock(user); };
      h.unlock_queue = [unlock, user] { unlock(user); };
    }
    c.context.emplace(h, cpp_options(options));
  });
}

vkalex_status vkalex_context_destroy(vkalex_context* context) noexcept {
  const char* call = "vkalex_context_destroy";
  return destroy_handle(
      context, call, "the context",
      [&](vkalex_context& c) {
        if (!c.nets) return VKALEX_OK;
        set_error(&c, call, std::to_string(c.nets) + " net(s) made on this context still live: destroy them first");
        return VKALEX_ERROR_IN_USE;
      },
      [](vkalex_context& c) { c.context.reset(); });
}

vkalex_status vkalex_context_device_name(vkalex_context* context, char* buffer, size_t size, size_t* length) noexcept {
  return with_handle(context, "vkalex_context_device_name", "the context", VKALEX_ERROR_FAILED,
                     [&](vkalex_context& c) {
                       require(buffer || size == 0, "buffer is null but size is not 0");
                       copy_text(c.context->device().name, buffer, size, length);
                     });
}

vkalex_status vkalex_net_create(vkalex_context* context, const char* model_path, const char* weights_path,
                                vkalex_net** out) noexcept {
  if (out) *out = nullptr;
  return with_handle(context, "vkalex_net_create", "the context", VKALEX_ERROR_FILE, [&](vkalex_context& c) {
    require(out != nullptr, "out is null");
    require(model_path != nullptr, "model_path is null");
    auto n = std::make_shared<vkalex_net>();
    n->owner = c.shared_from_this();
    const std::string path = model_path;
    if (vkalex::is_onnx_path(path)) {
      // An ONNX model carries its weights; its preprocessing comes from FILE.onnx.json, as for
      // classify, where that exists.
      require(weights_path == nullptr, "weights_path must be null for an ONNX model (its initializers are the weights)");
      vkalex::OnnxModel onnx = vkalex::load_onnx(path);
      if (std::filesystem::exists(path + ".json")) vkalex::load_preprocess_sidecar(path + ".json", onnx.model);
      n->net.emplace(*c.context, onnx.model);
      n->net->set_parameters(onnx.parameters);
    } else {
      const vkalex::ModelDesc model = vkalex::load_model(path);
      const std::string weights = weights_path ? std::string(weights_path) : model.weights_path;
      if (weights.empty()) {
        fail(VKALEX_ERROR_FILE, path + " names no weights file, and weights_path is null");
      }
      const vkalex::SafeTensors file(weights);
      n->net.emplace(*c.context, model);
      n->net->load_weights(file);
    }
    std::lock_guard lock(registry().mutex);
    require_live_parent(c, "the context");
    registry().nets.emplace(n.get(), n);
    ++c.nets;
    *out = n.get();
  });
}

vkalex_status vkalex_net_destroy(vkalex_net* net) noexcept {
  const char* call = "vkalex_net_destroy";
  return destroy_handle(
      net, call, "the net",
      [&](vkalex_net& n) {
        if (n.trainers) {
          set_error(n.owner.get(), call,
                    std::to_string(n.trainers) + " trainer(s) made for this net still live: destroy them first");
          return VKALEX_ERROR_IN_USE;
        }
        --n.owner->nets;
        return VKALEX_OK;
      },
      [](vkalex_net& n) { n.net.reset(); });
}

vkalex_status vkalex_net_get_info(vkalex_net* net, vkalex_net_info* out) noexcept {
  return with_handle(net, "vkalex_net_get_info", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(out != nullptr, "out is null");
    const auto& m = n.net->model();
    *out = {m.channels, m.height, m.width, m.classes};
  });
}

vkalex_status vkalex_net_class_name(vkalex_net* net, uint32_t index, char* buffer, size_t size, size_t* length) noexcept {
  return with_handle(net, "vkalex_net_class_name", "the net", VKALEX_ERROR_FILE, [&](vkalex_net& n) {
    require(buffer || size == 0, "buffer is null but size is not 0");
    const auto& m = n.net->model();
    require(index < m.classes, "class " + std::to_string(index) + " is out of range (the model has " +
                                   std::to_string(m.classes) + ")");
    if (m.labels_path.empty()) fail(VKALEX_ERROR_FAILED, "model " + m.name + " names no labels file");
    if (n.labels.empty()) n.labels = vkalex::load_labels(m.labels_path, m.classes);
    copy_text(n.labels[index], buffer, size, length);
  });
}

vkalex_status vkalex_classify_rgb8(vkalex_net* net, const uint8_t* pixels, size_t pixels_size, uint32_t width,
                                   uint32_t height, uint32_t count, float* probabilities,
                                   size_t probabilities_count) noexcept {
  return with_handle(net, "vkalex_classify_rgb8", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    const auto& m = n.net->model();
    require(probabilities != nullptr, "probabilities is null");
    require(probabilities_count == uint64_t(count) * m.classes,
            "probabilities_count " + std::to_string(probabilities_count) + " is not count * classes = " +
                std::to_string(uint64_t(count) * m.classes));
    const vkalex::ForwardResult r = n.net->forward(prepare_rgb8(m, pixels, pixels_size, width, height, count));
    vkalex::require_finite(r);
    std::copy(r.probabilities.begin(), r.probabilities.end(), probabilities);
  });
}

vkalex_status vkalex_net_preprocess_rgb8(vkalex_net* net, const uint8_t* pixels, size_t pixels_size, uint32_t width,
                                         uint32_t height, uint32_t count, float* input, size_t input_count) noexcept {
  return with_handle(net, "vkalex_net_preprocess_rgb8", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    const auto& m = n.net->model();
    require(input != nullptr, "input is null");
    const uint64_t want = m.input_shape(count).numel();
    require(input_count == want, "input_count " + std::to_string(input_count) + " is not count * channels * height * width = " +
                                     std::to_string(want));
    const vkalex::HostTensor x = prepare_rgb8(m, pixels, pixels_size, width, height, count);
    std::copy(x.data.begin(), x.data.end(), input);
  });
}

vkalex_status vkalex_forward(vkalex_net* net, const float* input, size_t input_count, uint32_t batch, float* logits,
                             float* probabilities, size_t output_count) noexcept {
  return with_handle(net, "vkalex_forward", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    const auto& m = n.net->model();
    require(input != nullptr, "input is null");
    require(logits || probabilities, "logits and probabilities are both null");
    require(batch > 0, "batch is 0");
    const vkalex::Shape shape = m.input_shape(batch);
    require(input_count == shape.numel(), "input_count " + std::to_string(input_count) + " is not the " +
                                              std::to_string(shape.numel()) + " values of " + shape.str());
    require(output_count == uint64_t(batch) * m.classes,
            "output_count " + std::to_string(output_count) + " is not batch * classes = " +
                std::to_string(uint64_t(batch) * m.classes));
    require_finite_input(input, input_count, "input");
    const vkalex::ForwardResult r = n.net->forward(vkalex::HostTensor(shape, std::vector<float>(input, input + input_count)));
    vkalex::require_finite(r);
    if (logits) std::copy(r.logits.begin(), r.logits.end(), logits);
    if (probabilities) std::copy(r.probabilities.begin(), r.probabilities.end(), probabilities);
  });
}

vkalex_status vkalex_net_set_input_buffer(vkalex_net* net, const vkalex_buffer_range* input, uint32_t usage,
                                          uint32_t batch) noexcept {
  return with_handle(net, "vkalex_net_set_input_buffer", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(input != nullptr, "input is null");
    require(input->buffer != 0, "input->buffer is VK_NULL_HANDLE");
    require(batch > 0, "batch is 0");
    const vkalex::HostBuffer b{to_vk_buffer(input->buffer), input->offset, input->size, usage};
    try {
      n.net->set_input(vkalex::wrap_buffer(n.net->context(), b, n.net->model().input_shape(batch)));
    } catch (const Error& e) {
      if (!e.vk_result().empty()) throw;  // the device's failure, not the argument's
      fail(VKALEX_ERROR_INVALID_ARGUMENT, e.what());
    }
  });
}

vkalex_status vkalex_net_record_forward(vkalex_net* net, void* command_buffer) noexcept {
  return with_handle(net, "vkalex_net_record_forward", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(command_buffer != nullptr, "command_buffer is null");
    require(n.net->batch() != 0, "the net has no input yet: vkalex_net_set_input_buffer first");
    vkalex::record_commands(n.net->host_recording(), static_cast<VkCommandBuffer>(command_buffer));
  });
}

vkalex_status vkalex_net_output_buffers(vkalex_net* net, vkalex_buffer_range* logits,
                                        vkalex_buffer_range* probabilities) noexcept {
  return with_handle(net, "vkalex_net_output_buffers", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(logits || probabilities, "logits and probabilities are both null");
    require(n.net->batch() != 0, "the net has no input yet: vkalex_net_set_input_buffer first");
    auto range = [](const vkalex::Tensor& t) {
      const vkalex::HostBuffer b = vkalex::buffer_of(t);
      return vkalex_buffer_range{from_vk_buffer(b.buffer), b.offset, b.size};
    };
    if (logits) *logits = range(n.net->logits());
    if (probabilities) *probabilities = range(n.net->probabilities());
  });
}

vkalex_status vkalex_net_read_output(vkalex_net* net, float* logits, float* probabilities, size_t output_count) noexcept {
  return with_handle(net, "vkalex_net_read_output", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(logits || probabilities, "logits and probabilities are both null");
    require(n.net->batch() != 0, "the net has no input yet: vkalex_net_set_input_buffer first");
    const uint64_t want = uint64_t(n.net->batch()) * n.net->model().classes;
    require(output_count == want, "output_count " + std::to_string(output_count) + " is not batch * classes = " +
                                      std::to_string(want));
    const vkalex::ForwardResult r = n.net->read_output();
    vkalex::require_finite(r);
    if (logits) std::copy(r.logits.begin(), r.logits.end(), logits);
    if (probabilities) std::copy(r.probabilities.begin(), r.probabilities.end(), probabilities);
  });
}

vkalex_status vkalex_net_initialize(vkalex_net* net, int init, uint64_t seed) noexcept {
  return with_handle(net, "vkalex_net_initialize", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(init == 0 || init == 1, "init must be 0 (the paper's) or 1 (He), not " + std::to_string(init));
    n.net->set_parameters(vkalex::initial_parameters(n.net->model(), init ? vkalex::Init::He : vkalex::Init::Paper, seed));
  });
}

vkalex_status vkalex_net_save_weights(vkalex_net* net, const char* path) noexcept {
  return with_handle(net, "vkalex_net_save_weights", "the net", VKALEX_ERROR_FILE, [&](vkalex_net& n) {
    require(path != nullptr, "path is null");
    vkalex::save_safetensors(path, n.net->parameters(), {{"model", n.net->model().name}});
  });
}

vkalex_status vkalex_trainer_create(vkalex_net* net, uint32_t batch, vkalex_trainer** out) noexcept {
  if (out) *out = nullptr;
  return with_handle(net, "vkalex_trainer_create", "the net", VKALEX_ERROR_FAILED, [&](vkalex_net& n) {
    require(out != nullptr, "out is null");
    require(batch > 0, "batch is 0");
    auto t = std::make_shared<vkalex_trainer>();
    t->net = n.shared_from_this();
    t->trainer.emplace(*n.net, batch);
    std::lock_guard lock(registry().mutex);
    require_live_parent(n, "the net");
    registry().trainers.emplace(t.get(), t);
    ++n.trainers;
    *out = t.get();
  });
}

vkalex_status vkalex_trainer_destroy(vkalex_trainer* trainer) noexcept {
  return destroy_handle(
      trainer, "vkalex_trainer_destroy", "the trainer",
      [](vkalex_trainer& t) {
        --t.net->trainers;
        return VKALEX_OK;
      },
      [](vkalex_trainer& t) { t.trainer.reset(); });
}

vkalex_status vkalex_train_step(vkalex_trainer* trainer, const float* images, size_t images_count,
                                const uint32_t* labels, size_t labels_count, const vkalex_step_params* params,
                                vkalex_step_stats* stats) noexcept {
  return with_handle(trainer, "vkalex_train_step", "the trainer", VKALEX_ERROR_FAILED, [&](vkalex_trainer& t) {
    const auto& m = t.net->net->model();
    const uint32_t batch = t.trainer->batch();
    require(images != nullptr, "images is null");
    require(labels != nullptr, "labels is null");
    require(params != nullptr, "params is null");
    const vkalex::Shape shape = m.input_shape(batch);
    require(images_count == shape.numel(), "images_count " + std::to_string(images_count) + " is not the " +
                                               std::to_string(shape.numel()) + " values of " + shape.str());
    require(labels_count == batch, "labels_count " + std::to_string(labels_count) + " is not the batch, " +
                                       std::to_string(batch));
    require(params->lr > 0 && params->lr < 1e6f, "lr must be positive (and finite)");
    require(params->momentum >= 0 && params->momentum < 1, "momentum must be in [0, 1)");
    require(params->weight_decay >= 0 && params->weight_decay < 1e6f, "weight_decay must be at least 0 (and finite)");
    vkalex::StepParams sp;
    sp.lr = params->lr;
    sp.momentum = params->momentum;
    sp.weight_decay = params->weight_decay;
    sp.step = params->step;
    sp.seed = params->seed;
    require_finite_input(images, images_count, "images");
    std::vector<uint32_t> l(labels, labels + labels_count);
    for (size_t i = 0; i < l.size(); ++i) {
      require(l[i] < m.classes, "label " + std::to_string(l[i]) + " of image " + std::to_string(i) +
                                    " is out of range (the model has " + std::to_string(m.classes) + " classes)");
    }
    const vkalex::StepStats r =
        t.trainer->step(vkalex::HostTensor(shape, std::vector<float>(images, images + images_count)), l, sp);
    if (stats) *stats = {r.loss, r.correct, r.batch};
  });
}

vkalex_status vkalex_checkpoint_save(vkalex_trainer* trainer, const char* path) noexcept {
  return with_handle(trainer, "vkalex_checkpoint_save", "the trainer", VKALEX_ERROR_FILE, [&](vkalex_trainer& t) {
    require(path != nullptr, "path is null");
    vkalex::save_checkpoint(path, *t.net->net, *t.trainer);
  });
}

vkalex_status vkalex_checkpoint_load(vkalex_trainer* trainer, const char* path) noexcept {
  return with_handle(trainer, "vkalex_checkpoint_load", "the trainer", VKALEX_ERROR_FILE, [&](vkalex_trainer& t) {
    require(path != nullptr, "path is null");
    vkalex::load_checkpoint(path, *t.net->net, *t.trainer);
  });
}

}  // extern "C"
