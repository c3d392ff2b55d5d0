// Shared by every kernel. Workgroup size is specialization constant 0 (chosen per device by
// the host); grids may span x, y and z because one dimension holds at most 65535 groups.
//
// NaN and infinities: the kernels try to carry a NaN through (ReLU and max pooling test for
// it, the fused ReLUs compare with < 0), but no kernel asks for SignedZeroInfNanPreserve, so
// an implementation may assume there are none and drop one. Nothing relies on it: the host
// refuses non-finite weights, checkpoints and inputs before a run, checks the network's
// outputs after one, and checks the parameters before a checkpoint is written.
#ifndef VKALEX_COMMON_GLSL
#define VKALEX_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : require  // [[unroll]]
#include "storage.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

uint linear_group_id() {
  return (gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y) * gl_NumWorkGroups.x +
         gl_WorkGroupID.x;
}

// One invocation per output element: its flat index.
uint global_index() {
  return linear_group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
}

#endif
