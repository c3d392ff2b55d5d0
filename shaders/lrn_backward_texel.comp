#version 450
#extension GL_GOOGLE_include_directive : require
// lrn_backward.glsl reading dy and x through R32F texel buffers.
#define VKALEX_TEXEL
#include "lrn_backward.glsl"
