#version 450
#extension GL_GOOGLE_include_directive : require
// lrn_forward.glsl reading its inputs through scalar texel buffers.
#define VKALEX_TEXEL
#include "lrn_forward.glsl"
