#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d_backward_data_wide.glsl reading dy and the weights through scalar texel buffers.
#define VKALEX_TEXEL
#include "conv2d_backward_data_wide.glsl"
