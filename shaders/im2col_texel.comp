#version 450
#extension GL_GOOGLE_include_directive : require
// im2col.glsl reading x through a scalar texel buffer.
#define VKALEX_TEXEL
#include "im2col.glsl"
