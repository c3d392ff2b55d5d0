#version 450
#extension GL_GOOGLE_include_directive : require
// Training-mode dropout, and its backward pass (the same mask applied to dy):
// y[i] = x[i] / (1 - p) where dropout_hash(seed, step, index(i)) >= threshold, else 0. The
// index is the element's in the whole tensor the mask is drawn for: x may be a slice of each
// image's elements (row_len of them, at `first` in rows of row_stride: a layer split over two
// devices) or a shard of the images (`first`: data parallelism).
// seed and step come from the step-parameters buffer, so a replay draws a new mask.
#include "common.glsl"
#include "dropout.glsl"
#include "step_params.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 2) readonly buffer S { StepParams step_params; };

layout(push_constant) uniform Params {
  uint count;
  uint threshold;   // dropout_threshold(p)
  float scale;      // 1 / (1 - p)
  uint index_base;  // this dispatch's first element within x
  uint first;       // the index of x's first element
  uint row_len;     // x's elements per image
  uint row_stride;  // the whole tensor's elements per image
} p;

void main() {
  const uint i = global_index();
  if (i >= p.count) return;
  const uint local = p.index_base + i;
  const uint index = p.first + (local / p.row_len) * p.row_stride + local % p.row_len;
  const bool keep = dropout_hash(step_params.seed, step_params.step, index) >= p.threshold;
  y[i] = keep ? x[i] * p.scale : 0.0;
}
