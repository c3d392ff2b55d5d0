#version 450
#extension GL_GOOGLE_include_directive : require
// bias_backward.glsl reading dy through a scalar texel buffer.
#define VKALEX_TEXEL
#include "bias_backward.glsl"
