#version 450
#extension GL_GOOGLE_include_directive : require
// The paper's SGD: v = momentum v - weight_decay lr w - lr g; w = w + v. lr, momentum and
// weight_decay come from the step-parameters buffer.
#include "common.glsl"
#include "step_params.glsl"

layout(std430, set = 0, binding = 0) buffer Wt { float w[]; };
layout(std430, set = 0, binding = 1) buffer V { float v[]; };
layout(std430, set = 0, binding = 2) readonly buffer G { float g[]; };
layout(std430, set = 0, binding = 3) readonly buffer S { StepParams step_params; };

layout(push_constant) uniform Params { uint count; } p;

void main() {
  const uint i = global_index();
  if (i >= p.count) return;
  const float lr = step_params.lr;
  const float nv = step_params.momentum * v[i] - step_params.weight_decay * lr * w[i] - lr * g[i];
  v[i] = nv;
  w[i] = w[i] + nv;
}
