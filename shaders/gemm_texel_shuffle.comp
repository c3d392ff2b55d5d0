#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_shuffle : require
// gemm_texel.comp whose lanes share A's loads through subgroupShuffle (gemm.glsl, SUB): the
// host takes it where the device offers subgroup shuffles in compute shaders.
#define GEMM_SHUFFLE
#include "gemm_texel.glsl"
