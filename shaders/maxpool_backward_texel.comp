#version 450
#extension GL_GOOGLE_include_directive : require
// maxpool_backward.glsl reading its inputs through scalar texel buffers.
#define VKALEX_TEXEL
#include "maxpool_backward.glsl"
