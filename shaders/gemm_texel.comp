#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// gemm.comp reading its vec4 operands through texel buffers (gemm_texel.glsl).
#include "gemm_texel.glsl"
