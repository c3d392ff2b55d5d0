/* vkalex's C API: AlexNet-class networks on a Vulkan device, from C (C99 or later) or C++.
 *
 * Every function returns a vkalex_status; VKALEX_OK is 0. When a call fails, the reason is kept
 * as the last error of the context the call was about (vkalex_last_error), or, for calls that
 * have no valid context (a null or destroyed handle, a context that could not be made), as the
 * calling thread's last error (vkalex_last_error with a null context). No C++ exception leaves
 * the library. Every pointer and size is checked before use: a null pointer where one is
 * needed, or a count that does not match the sizes, is VKALEX_ERROR_INVALID_ARGUMENT. A float
 * input holding a NaN or an infinity is refused (VKALEX_ERROR_INVALID_ARGUMENT), and so is an
 * output that would hold one (VKALEX_ERROR_FAILED, the output arrays left untouched).
 *
 * Handles: a context (a Vulkan device: the engine's own, or the host's), nets made on a context,
 * trainers made for a net. A handle is live from its create call until its destroy call;
 * passing one that is not live (destroyed, or never made) is VKALEX_ERROR_INVALID_HANDLE (an
 * address reused by a later create is that new handle). A context cannot be destroyed while a
 * net made on it lives, nor a net while a trainer made for it lives (VKALEX_ERROR_IN_USE).
 *
 * Threads: every call may come from any thread. Calls about one context (its nets and trainers
 * included) are serialised by a lock of that context; different contexts run in parallel.
 */
#ifndef VKALEX_H
#define VKALEX_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define VKALEX_C_API __attribute__((visibility("default")))
#else
#define VKALEX_C_API
#endif

/* In C++ the functions are declared noexcept: none lets an exception out. */
#if defined(__cplusplus)
#define VKALEX_NOEXCEPT noexcept
#else
#define VKALEX_NOEXCEPT
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vkalex_status {
  VKALEX_OK = 0,
  VKALEX_ERROR_INVALID_ARGUMENT = 1, /* a null pointer, a wrong size or count, a value out of range */
  VKALEX_ERROR_INVALID_HANDLE = 2,   /* a context, net or trainer that is not live */
  VKALEX_ERROR_IN_USE = 3,           /* destroying a context or net that others still use */
  VKALEX_ERROR_FILE = 4,             /* a model, weights or checkpoint file missing, unreadable or malformed */
  VKALEX_ERROR_DEVICE = 5,           /* no usable Vulkan device, or a Vulkan call failed */
  VKALEX_ERROR_OUT_OF_MEMORY = 6,    /* host or device memory ran out */
  VKALEX_ERROR_FAILED = 7            /* the engine refused or failed otherwise: the message says why */
} vkalex_status;

typedef struct vkalex_context vkalex_context;
typedef struct vkalex_net vkalex_net;
typedef struct vkalex_trainer vkalex_trainer;

/* "VKALEX_OK", "VKALEX_ERROR_INVALID_ARGUMENT", ...; "unknown status" for other values. */
VKALEX_C_API const char* vkalex_status_name(vkalex_status status) VKALEX_NOEXCEPT;

/* The library's version, e.g. "0.1.0". */
VKALEX_C_API const char* vkalex_version(void) VKALEX_NOEXCEPT;

/* Copies the last error message of `context` (or, with a null context, of the calling thread's
 * calls that had no valid context) into `buffer`, cut to `size` - 1 bytes and NUL-terminated
 * (nothing is written where buffer is null or size is 0). Returns the message's full length
 * without the NUL: 0 where there is no error yet. A successful call does not clear it. */
VKALEX_C_API size_t vkalex_last_error(const vkalex_context* context, char* buffer, size_t size) VKALEX_NOEXCEPT;

/* Options for a context; all zero (or a null pointer) means the defaults. */
typedef struct vkalex_context_options {
  /* Device index or case-insensitive name substring; null: $VKALEX_DEVICE, else the
   * preference discrete GPU > integrated > virtual > CPU. Ignored on a host's device. */
  const char* device;
  int validation;        /* nonzero: enable VK_LAYER_KHRONOS_validation (own device only) */
  int no_pipeline_cache; /* nonzero: do not keep compiled pipelines on disk */
} vkalex_context_options;

/* A context on a Vulkan device of the engine's own (it creates the instance and device). */
VKALEX_C_API vkalex_status vkalex_context_create(const vkalex_context_options* options, vkalex_context** out) VKALEX_NOEXCEPT;

/* Generic function pointer, for the host's Vulkan functions below. */
typedef void (*vkalex_void_function)(void);

/* The host's Vulkan objects (see vkalex/host_vulkan.hpp, HostDevice, for the rules): the engine
 * uses them, creates and destroys none of them. Handles are given as pointers (VkInstance,
 * VkPhysicalDevice, VkDevice and VkQueue are pointers in every Vulkan ABI). */
typedef struct vkalex_host_device {
  void* instance;        /* VkInstance, created with apiVersion 1.1 or later */
  void* physical_device; /* VkPhysicalDevice */
  void* device;          /* VkDevice */
  uint32_t queue_family; /* a family with VK_QUEUE_COMPUTE_BIT */
  void* queue;           /* VkQueue of that family */
  vkalex_void_function get_instance_proc_addr; /* PFN_vkGetInstanceProcAddr, required */
  vkalex_void_function get_device_proc_addr;   /* PFN_vkGetDeviceProcAddr, or null */
  int storage_buffer_16bit; /* nonzero where the host enabled storageBuffer16BitAccess */
  /* Optional, both or neither: called around each of the engine's vkQueueSubmit calls where
   * other threads of the host submit to the same queue, and around the vkQueueWaitIdle with
   * which vkalex_context_destroy waits for the engine's work. */
  void (*lock_queue)(void* user);
  void (*unlock_queue)(void* user);
  void* user;
} vkalex_host_device;

/* A context on the host's device. */
VKALEX_C_API vkalex_status vkalex_context_create_host(const vkalex_host_device* host,
                                                      const vkalex_context_options* options, vkalex_context** out) VKALEX_NOEXCEPT;

/* Destroys a context: waits for a call about it still running on another thread, then for its
 * work on the device, and releases every object of the engine's before it returns (the host may
 * then destroy its own device). VKALEX_ERROR_IN_USE while a net made on it lives. */
VKALEX_C_API vkalex_status vkalex_context_destroy(vkalex_context* context) VKALEX_NOEXCEPT;

/* The device's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)", copied as vkalex_last_error does
 * (*length, where not null, receives its full length). */
VKALEX_C_API vkalex_status vkalex_context_device_name(vkalex_context* context, char* buffer, size_t size,
                                                      size_t* length) VKALEX_NOEXCEPT;

/* A network from a model description (a .json file, e.g. model/alexnet2012.json) with its
 * weights (safetensors): a null `weights_path` takes the description's own "weights" file.
 * Or from an ONNX model (a path ending in .onnx; `weights_path` must be null, the model's
 * initializers are its weights): preprocessing from FILE.onnx.json where that exists (see the
 * README, "ONNX models"), else pixels in [0, 1]. What the model cannot run fails with
 * VKALEX_ERROR_FILE and the node named in vkalex_last_error. */
VKALEX_C_API vkalex_status vkalex_net_create(vkalex_context* context, const char* model_path,
                                             const char* weights_path, vkalex_net** out) VKALEX_NOEXCEPT;

/* Destroys a net (after a call about it still running on another thread, released before it
 * returns; so for trainers). VKALEX_ERROR_IN_USE while a trainer made for it lives. */
VKALEX_C_API vkalex_status vkalex_net_destroy(vkalex_net* net) VKALEX_NOEXCEPT;

typedef struct vkalex_net_info {
  uint32_t channels, height, width; /* one image of the input */
  uint32_t classes;                 /* outputs per image */
} vkalex_net_info;

VKALEX_C_API vkalex_status vkalex_net_get_info(vkalex_net* net, vkalex_net_info* out) VKALEX_NOEXCEPT;

/* The name of class `index` from the description's "labels" file, copied as vkalex_last_error
 * does. VKALEX_ERROR_FAILED where the model has no labels file. */
VKALEX_C_API vkalex_status vkalex_net_class_name(vkalex_net* net, uint32_t index, char* buffer, size_t size,
                                                 size_t* length) VKALEX_NOEXCEPT;

/* Classifies `count` images of width x height RGB8 pixels (rows top to bottom, R G B
 * interleaved, images one after another: pixels_size == count * width * height * 3), each
 * prepared as the description says (shorter side resized, centre crop, normalised; a gray
 * model takes the luma), into `probabilities`: probabilities_count == count * classes values,
 * image-major. */
VKALEX_C_API vkalex_status vkalex_classify_rgb8(vkalex_net* net, const uint8_t* pixels, size_t pixels_size,
                                                uint32_t width, uint32_t height, uint32_t count,
                                                float* probabilities, size_t probabilities_count) VKALEX_NOEXCEPT;

/* Prepares `count` RGB8 images as vkalex_classify_rgb8 does, into the float input it would
 * run: `input` gets input_count == count * channels * height * width values. */
VKALEX_C_API vkalex_status vkalex_net_preprocess_rgb8(vkalex_net* net, const uint8_t* pixels, size_t pixels_size,
                                                      uint32_t width, uint32_t height, uint32_t count, float* input,
                                                      size_t input_count) VKALEX_NOEXCEPT;

/* The forward pass on a float tensor [batch, channels, height, width] (input_count values),
 * writing logits and/or probabilities ([batch, classes] each, output_count values; either
 * pointer may be null, not both). */
VKALEX_C_API vkalex_status vkalex_forward(vkalex_net* net, const float* input, size_t input_count, uint32_t batch,
                                          float* logits, float* probabilities, size_t output_count) VKALEX_NOEXCEPT;

/* Inside the host's frame (see vkalex/host_vulkan.hpp for the rules and the barriers).
 * Vulkan handles are passed as integers: a VkBuffer as (uint64_t)(uintptr_t)buffer where
 * handles are pointers (64-bit), as itself where they are uint64_t (32-bit); a VkCommandBuffer
 * as a pointer. */
typedef struct vkalex_buffer_range {
  uint64_t buffer; /* VkBuffer */
  uint64_t offset; /* bytes */
  uint64_t size;   /* bytes */
} vkalex_buffer_range;

/* From now on the net reads its input, `batch` images of float32 [batch, channels, height,
 * width], in place from the host's buffer range (offset a multiple of the device's
 * minStorageBufferOffsetAlignment; `usage`: the VkBufferUsageFlags it was created with, at least
 * STORAGE_BUFFER | UNIFORM_TEXEL_BUFFER for the forward pass, TRANSFER_DST for vkalex_forward to
 * upload into it). vkalex_forward and vkalex_classify_rgb8 then need that batch. Every successful
 * call records the pass anew: a command buffer recorded with vkalex_net_record_forward before it
 * must not be submitted again. A failed call leaves the net's previous input in place. */
VKALEX_C_API vkalex_status vkalex_net_set_input_buffer(vkalex_net* net, const vkalex_buffer_range* input,
                                                       uint32_t usage, uint32_t batch) VKALEX_NOEXCEPT;

/* Records the forward pass (input buffer to outputs, with an opening and a closing barrier)
 * into the host's VkCommandBuffer, which is recording, outside a render pass, from a pool of
 * the context's queue family. The host submits it; the recording stays valid until the input
 * buffer or the batch changes or the net is destroyed. */
VKALEX_C_API vkalex_status vkalex_net_record_forward(vkalex_net* net, void* command_buffer) VKALEX_NOEXCEPT;

/* Where the outputs of the recorded pass are ([batch, classes] float32 each), for the host's
 * own commands to read. Either pointer may be null. */
VKALEX_C_API vkalex_status vkalex_net_output_buffers(vkalex_net* net, vkalex_buffer_range* logits,
                                                     vkalex_buffer_range* probabilities) VKALEX_NOEXCEPT;

/* Copies the outputs as the device holds them now (after the host's submission has finished)
 * into logits and/or probabilities (output_count == batch * classes each; either may be null). */
VKALEX_C_API vkalex_status vkalex_net_read_output(vkalex_net* net, float* logits, float* probabilities,
                                                  size_t output_count) VKALEX_NOEXCEPT;

/* Sets every parameter to a seeded initialisation: 0 = the paper's (weights N(0, 0.01),
 * biases 0 or the description's "init_bias"), 1 = He (N(0, 2 / fan_in), biases 0). */
VKALEX_C_API vkalex_status vkalex_net_initialize(vkalex_net* net, int init, uint64_t seed) VKALEX_NOEXCEPT;

/* Writes the net's parameters to a safetensors file (whole or not at all). */
VKALEX_C_API vkalex_status vkalex_net_save_weights(vkalex_net* net, const char* path) VKALEX_NOEXCEPT;

/* A trainer of `net` for batches of `batch` images: SGD with momentum and weight decay, one
 * recorded step replayed. The step updates the net's parameters in place. */
VKALEX_C_API vkalex_status vkalex_trainer_create(vkalex_net* net, uint32_t batch, vkalex_trainer** out) VKALEX_NOEXCEPT;
VKALEX_C_API vkalex_status vkalex_trainer_destroy(vkalex_trainer* trainer) VKALEX_NOEXCEPT;

typedef struct vkalex_step_params {
  float lr;           /* learning rate, > 0 */
  float momentum;     /* in [0, 1) */
  float weight_decay; /* >= 0 */
  uint32_t step;      /* step number: with `seed`, picks the dropout masks */
  uint32_t seed;
} vkalex_step_params;

typedef struct vkalex_step_stats {
  double loss;      /* mean cross-entropy of the batch */
  uint32_t correct; /* images whose label had the largest logit */
  uint32_t batch;
} vkalex_step_stats;

/* One training step on images [batch, channels, height, width] (images_count values) with
 * `labels` (labels_count == batch, each < classes). `stats` may be null. */
VKALEX_C_API vkalex_status vkalex_train_step(vkalex_trainer* trainer, const float* images, size_t images_count,
                                             const uint32_t* labels, size_t labels_count,
                                             const vkalex_step_params* params, vkalex_step_stats* stats) VKALEX_NOEXCEPT;

/* A checkpoint: the net's parameters and the trainer's momentum in one safetensors file
 * (written whole or not at all), which load checks against the model before changing anything. */
VKALEX_C_API vkalex_status vkalex_checkpoint_save(vkalex_trainer* trainer, const char* path) VKALEX_NOEXCEPT;
VKALEX_C_API vkalex_status vkalex_checkpoint_load(vkalex_trainer* trainer, const char* path) VKALEX_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* VKALEX_H */
