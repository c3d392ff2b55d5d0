#version 450
#extension GL_GOOGLE_include_directive : require
// relu_backward.glsl reading its inputs through scalar texel buffers.
#define VKALEX_TEXEL
#include "relu_backward.glsl"
