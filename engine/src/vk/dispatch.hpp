// Internal: what an op in engine/src/ops/ hands the recorder to record one dispatch.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "vkalex/recorder.hpp"

namespace vkalex::detail {

enum class Use { Read, Write, ReadWrite, Unused };

// How a binding reaches the shader: a storage buffer, or a uniform texel buffer (samplerBuffer
// or usamplerBuffer) of one of these texel formats.
enum class Texel { None, RGBA32F, R32F, R32UI };

// One binding: a byte range of a tensor, as a storage buffer or a texel buffer. Bindings are numbered in order.
// An Unused binding only fills a slot the shader declares but this dispatch does not touch.
struct Binding {
  const Tensor* tensor = nullptr;
  Use use = Use::Read;
  uint64_t offset = 0;  // bytes from the tensor's start; must keep the device's alignment
  uint64_t size = 0;    // bytes; 0 means to the tensor's end
  // A uniform texel buffer instead of a storage buffer: offset a multiple of
  // minTexelBufferOffsetAlignment, size of whole texels (a partial last texel is left out)
  // within maxTexelBufferElements.
  Texel texel = Texel::None;
};

struct Dispatch {
  const char* shader = nullptr;  // name of shaders/NAME.comp
  const char* label = nullptr;   // op name for timings
  std::vector<uint32_t> specialization;  // constant_id i = specialization[i]
  std::vector<Binding> bindings;
  const void* push = nullptr;    // push constants, laid out as the shader declares them
  uint32_t push_bytes = 0;
  std::array<uint32_t, 3> groups{1, 1, 1};
};

// Records `d` into the recording in progress, with the barrier its bindings need.
// Throws Error when a binding is out of the device's limits. Skips empty grids.
void record_dispatch(Recorder& rec, const Dispatch& d);

// The device the recorder records for (its limits decide workgroup and binding sizes).
const DeviceInfo& recorder_device(const Recorder& rec);

// A device tensor that lives as long as the recording in progress (an op's workspace, such as
// the partial sums of a split reduction). Contents undefined.
Tensor recorder_scratch(Recorder& rec, const Shape& shape, DType dtype = DType::F32);

// A workgroup grid holding `workgroups` groups within the device's per-dimension limits
// (x first, then y, then z). The shader rebuilds the linear id with linear_group_id().
std::array<uint32_t, 3> grid_for(const DeviceInfo& device, uint64_t workgroups);

}  // namespace vkalex::detail
