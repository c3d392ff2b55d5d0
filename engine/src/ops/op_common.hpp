// Internal helpers the host side of every op shares.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "vk/dispatch.hpp"
#include "vkalex/ops.hpp"

namespace vkalex::detail {

// Throws Error "<op>: <name> ..." unless t is allocated, of `dtype`, and shaped `expected`.
void check_tensor(const char* op, const char* name, const Tensor& t, const Shape& expected,
                  DType dtype = DType::F32);
// The element type of float tensor `x` (F32, or F16 where the forward kernels have f16
// twins); throws Error "<op>: input must be f32 or f16" otherwise.
DType float_type(const char* op, const Tensor& x);
// Throws unless `out` shares no memory with `in`.
void check_no_alias(const char* op, const Tensor& in, const Tensor& out);

// Workgroup size of the one-invocation-per-element kernels on this device.
uint32_t elementwise_workgroup(const DeviceInfo& device);

// Grid of `threads` invocations in workgroups of `workgroup`.
std::array<uint32_t, 3> grid_for_threads(const DeviceInfo& device, uint64_t threads, uint32_t workgroup);

// Register tile of the convolution kernels: each invocation computes `channels` channels of
// `pixels` neighbouring pixels in a row. Chosen from the channels per group and the row width
// so that few invocations compute past the end of a row or group.
struct ConvTile {
  uint32_t channels, pixels;
};
ConvTile conv_tile(uint32_t channels_per_group, uint32_t row_width);
// The same for the wide kernels (conv2d_forward_wide.glsl, conv2d_backward_data_wide.glsl): up
// to 8 pixels, the widest that wastes at most a sixth of the row, of 8 channels on CPU drivers
// and 4 on GPUs. On lavapipe, with the tile's loops unrolled, 8 x 8 ran the forward and input
// gradient convolutions of alexnet-fashion about 1.35x faster than 4 x 8 (without the unroll
// hints every tile past about 32 accumulators ran two to four times slower); on SwiftShader
// the two were equal. On GPUs 4 x 8 keeps the registers per invocation lower (not measured).
ConvTile wide_conv_tile(const DeviceInfo& device, uint32_t channels_per_group, uint32_t row_width);

// Splits items [0, n) (images of a batch, rows of a matrix) into ranges whose slices fit one
// binding: each slice of items * bytes_per_item[i] stays within maxStorageBufferRange and
// starts at a multiple of minStorageBufferOffsetAlignment. Usually one range.
// With max_items, no range holds more than that many items.
std::vector<std::pair<uint32_t, uint32_t>> item_ranges(const DeviceInfo& device, const char* op,
                                                       uint32_t n,
                                                       std::initializer_list<uint64_t> bytes_per_item,
                                                       uint32_t max_items = UINT32_MAX);

// Throws Error when a kernel would run more than loop_budget(device) loop iterations in one
// invocation: a count that comes from the model's shapes (channels, features, classes),
// which no split of the batch can reduce. `what` says which loop.
void check_trip_count(const DeviceInfo& device, const char* op, uint64_t iterations, const char* what);

// The shader of the kernel variant `op` runs with (see ops::choose_kernel).
const char* kernel_shader(const DeviceInfo& device, const char* op, const Shape& x, const Shape& w, uint32_t stride = 1);

// Whether the device's scalar (4-byte) texel buffers are as large as its storage-buffer
// bindings, at the same offsets: then a kernel may read any binding through one.
bool scalar_texels_cover_bindings(const DeviceInfo& device);

// Texel::R32F for a kernel variant whose shader reads its inputs through texel buffers (its
// name ends in "_texel"), else Texel::None.
Texel texel_loads(const char* shader);

// Records y[i] = sum over s < slices of part[s * y.numel() + i] (sum_slices.comp).
void record_sum_slices(Recorder& rec, const char* label, const Tensor& part, uint32_t slices, const Tensor& y);

}  // namespace vkalex::detail
