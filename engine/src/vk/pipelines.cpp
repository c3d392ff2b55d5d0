// Compute pipelines from the embedded SPIR-V, built once per specialization, and the
// driver's pipeline cache kept on disk per device.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/atomic_file.hpp"
#include "vk/spirv_reflect.hpp"
#include "vk/device.hpp"
#include "vkalex/error.hpp"
#include "vkalex/tuning.hpp"

namespace vkalex::detail {

namespace {

struct EmbeddedShader {
  const char* name;
  const uint32_t* code;
  size_t words;
};
#include "embedded_shaders.inc"

}  // namespace

bool embedded_shader_exists(const std::string& name) {
  for (const auto& s : kEmbeddedShaders)
    if (name == s.name) return true;
  return false;
}

namespace {

const EmbeddedShader& find_shader(const std::string& name) {
  for (const auto& s : kEmbeddedShaders)
    if (name == s.name) return s;
  throw Error("no embedded shader named \"" + name + "\" (the build compiles shaders/*.comp)");
}

// The host side of an op writes its push constants as a C++ struct of 32-bit members, binds
// its buffers and sets specialization constants by position: each must match the shader
// exactly, or the kernel reads garbage without any error from the driver.
void check_interface(const PipelineKey& key, const ShaderInterface& s) {
  auto mismatch = [&](const std::string& what) {
    return Error("shader " + key.shader + " and its op disagree: " + what);
  };
  if (s.push_bytes != key.push_constant_bytes) {
    throw mismatch("the shader's push constants take " + std::to_string(s.push_bytes) + " bytes, the op gives " +
                   std::to_string(key.push_constant_bytes));
  }
  for (size_t m = 0; m < s.push_members.size(); ++m) {
    if (s.push_members[m].offset != 4 * m) {
      throw mismatch("push-constant member " + std::to_string(m) + " is at byte " +
                     std::to_string(s.push_members[m].offset) + ", the op's struct has it at " + std::to_string(4 * m));
    }
  }
  if (s.bindings != key.bindings) {
    throw mismatch("the shader declares " + std::to_string(s.bindings) + " bindings, the op binds " +
                   std::to_string(key.bindings));
  }
  if (s.texel_bindings != key.texel_bindings) {
    throw mismatch("the shader's texel-buffer bindings (mask " + std::to_string(s.texel_bindings) +
                   ") differ from the op's (mask " + std::to_string(key.texel_bindings) + ")");
  }
  if (s.spec_constants != key.specialization.size()) {
    throw mismatch("the shader declares " + std::to_string(s.spec_constants) +
                   " specialization constants, the op sets " + std::to_string(key.specialization.size()));
  }
}

// Our file wraps the driver's blob: magic, version, blob size and CRC-32, then the blob.
constexpr char kMagic[8] = {'V', 'K', 'A', 'L', 'E', 'X', 'P', 'C'};
struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t crc;
  uint64_t size;
};
constexpr uint32_t kFileVersion = 1;

}  // namespace

std::string cache_dir(const ContextOptions& options) {
  if (!options.pipeline_cache_dir.empty()) return options.pipeline_cache_dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/vkalex";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/vkalex";
  return {};
}

std::string device_file(const std::string& dir, const char* prefix, const DeviceInfo& info, const char* extension) {
  char driver[16];
  std::snprintf(driver, sizeof driver, "-%08x", info.driver_version);
  return dir + "/" + prefix + "-" + uuid_hex(info.uuid) + driver + extension;
}

void PipelineStore::init(DeviceImpl* device, const ContextOptions& options) {
  device_ = device;
  if (options.pipeline_cache) {
    const std::string dir = cache_dir(options);
    if (dir.empty()) {
      status_ = kNoCacheDir;
    } else {
      path_ = device_file(dir, "pipelines", device->info, ".bin");
    }
  } else {
    status_ = "off";
  }
  load();
}

void PipelineStore::load() {
  auto& d = *device_;
  std::vector<char> blob;
  std::error_code ec;
  const auto kind = path_.empty() ? std::filesystem::file_status{} : std::filesystem::status(path_, ec);
  if (std::filesystem::exists(kind) && !std::filesystem::is_regular_file(kind)) {
    status_ = "ignored: not a regular file";  // a FIFO or device there is never opened
  } else if (!path_.empty()) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
      status_ = "no cache file yet";
    } else {
      FileHeader h{};
      in.read(reinterpret_cast<char*>(&h), sizeof h);
      const VkDeviceSize max_size = 512ull << 20;
      if (!in || std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.version != kFileVersion ||
          h.size > max_size) {
        status_ = "ignored: not a vkalex pipeline cache";
      } else {
        blob.resize(h.size);
        in.read(blob.data(), static_cast<std::streamsize>(h.size));
        const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(blob.data()),
                                static_cast<uInt>(blob.size()));
        if (!in || in.peek() != EOF || crc != h.crc) {
          status_ = "ignored: truncated or corrupt";
          blob.clear();
        } else {
          // The driver's own header must name this very device and driver build.
          VkPipelineCacheHeaderVersionOne vh{};
          VkPhysicalDeviceProperties props{};
          d.vki.vkGetPhysicalDeviceProperties(d.physical, &props);
          if (blob.size() < sizeof vh) {
            status_ = "ignored: too short";
            blob.clear();
          } else {
            std::memcpy(&vh, blob.data(), sizeof vh);
            if (vh.headerVersion != VK_PIPELINE_CACHE_HEADER_VERSION_ONE ||
                vh.vendorID != props.vendorID || vh.deviceID != props.deviceID ||
                std::memcmp(vh.pipelineCacheUUID, props.pipelineCacheUUID, VK_UUID_SIZE) != 0) {
              status_ = "ignored: made by another device or driver";
              blob.clear();
            } else {
              status_ = "loaded";
            }
          }
        }
      }
    }
  }
  VkPipelineCacheCreateInfo info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  info.initialDataSize = blob.size();
  info.pInitialData = blob.empty() ? nullptr : blob.data();
  if (d.vk.vkCreatePipelineCache(d.device, &info, nullptr, &cache_) != VK_SUCCESS) {
    info.initialDataSize = 0;
    info.pInitialData = nullptr;
    status_ = "ignored: the driver refused it";
    vk_check(d.vk.vkCreatePipelineCache(d.device, &info, nullptr, &cache_), "vkCreatePipelineCache");
  }
}

void PipelineStore::save() {
  std::lock_guard lock(mutex_);
  if (!dirty_ || path_.empty() || !cache_) return;
  auto& d = *device_;
  size_t size = 0;
  vk_check(d.vk.vkGetPipelineCacheData(d.device, cache_, &size, nullptr), "vkGetPipelineCacheData");
  std::vector<char> blob(size);
  vk_check(d.vk.vkGetPipelineCacheData(d.device, cache_, &size, blob.data()),
           "vkGetPipelineCacheData");
  blob.resize(size);

  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFileVersion;
  h.size = blob.size();
  h.crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(blob.data()), static_cast<uInt>(blob.size())));

  // Written whole to a temporary file, then renamed over the old one: a reader never sees
  // half a cache, and a crash leaves the old one in place.
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  AtomicFile file(path_);
  file.write(&h, sizeof h);
  file.write(blob.data(), blob.size());
  file.commit();
  dirty_ = false;
}

void PipelineStore::destroy() {
  if (!device_) return;  // never initialised: the Context failed before it got here
  auto& d = *device_;
  for (auto& [key, p] : pipelines_) {
    d.vk.vkDestroyPipeline(d.device, p->pipeline, nullptr);
    d.vk.vkDestroyPipelineLayout(d.device, p->layout, nullptr);
    d.vk.vkDestroyDescriptorSetLayout(d.device, p->set_layout, nullptr);
  }
  pipelines_.clear();
  if (cache_) d.vk.vkDestroyPipelineCache(d.device, cache_, nullptr);
  cache_ = VK_NULL_HANDLE;
}

const Pipeline& PipelineStore::get(const PipelineKey& key) {
  std::lock_guard lock(mutex_);
  if (auto it = pipelines_.find(key); it != pipelines_.end()) return *it->second;

  auto& d = *device_;
  const EmbeddedShader& shader = find_shader(key.shader);
  if (key.push_constant_bytes > d.limits.maxPushConstantsSize) {
    throw Error("shader " + key.shader + " needs " + std::to_string(key.push_constant_bytes) +
                " bytes of push constants; the device allows " +
                std::to_string(d.limits.maxPushConstantsSize));
  }
  check_interface(key, reflect_shader(key.shader, shader.code, shader.words));
  auto p = std::make_unique<Pipeline>();
  p->bindings = key.bindings;
  p->push_constant_bytes = key.push_constant_bytes;

  std::vector<VkDescriptorSetLayoutBinding> bindings(key.bindings);
  for (uint32_t i = 0; i < key.bindings; ++i) {
    const bool texel = (key.texel_bindings >> i) & 1u;
    bindings[i] = {i, texel ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                   VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  }
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = key.bindings;
  set_info.pBindings = bindings.data();
  vk_check(d.vk.vkCreateDescriptorSetLayout(d.device, &set_info, nullptr, &p->set_layout),
           "vkCreateDescriptorSetLayout");

  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, key.push_constant_bytes};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &p->set_layout;
  layout_info.pushConstantRangeCount = key.push_constant_bytes ? 1 : 0;
  layout_info.pPushConstantRanges = &range;
  VkResult r = d.vk.vkCreatePipelineLayout(d.device, &layout_info, nullptr, &p->layout);

  VkShaderModule module = VK_NULL_HANDLE;
  if (r == VK_SUCCESS) {
    VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    module_info.codeSize = shader.words * sizeof(uint32_t);
    module_info.pCode = shader.code;
    r = d.vk.vkCreateShaderModule(d.device, &module_info, nullptr, &module);
  }
  if (r == VK_SUCCESS) {
    std::vector<VkSpecializationMapEntry> entries(key.specialization.size());
    for (uint32_t i = 0; i < entries.size(); ++i) entries[i] = {i, i * 4u, 4};
    VkSpecializationInfo spec{static_cast<uint32_t>(entries.size()), entries.data(),
                              key.specialization.size() * 4, key.specialization.data()};
    VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    info.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
    info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    info.stage.module = module;
    info.stage.pName = "main";
    info.stage.pSpecializationInfo = entries.empty() ? nullptr : &spec;
    info.layout = p->layout;
    r = d.vk.vkCreateComputePipelines(d.device, cache_, 1, &info, nullptr, &p->pipeline);
    d.vk.vkDestroyShaderModule(d.device, module, nullptr);
  }
  if (r != VK_SUCCESS) {
    if (p->layout) d.vk.vkDestroyPipelineLayout(d.device, p->layout, nullptr);
    d.vk.vkDestroyDescriptorSetLayout(d.device, p->set_layout, nullptr);
    vk_check(r, ("creating the pipeline of shader " + key.shader).c_str());
  }
  dirty_ = true;
  return *pipelines_.emplace(key, std::move(p)).first->second;
}

}  // namespace vkalex::detail
