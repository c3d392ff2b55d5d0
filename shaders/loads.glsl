// Read-only inputs that a kernel's texel variant reads through uniform texel buffers (R32F or
// R32UI views; on lavapipe a texel fetch is one gather where a storage-buffer load is a loop
// over the lanes) and its storage-buffer variant through storage buffers. The including
// shader defines VKALEX_TEXEL for the texel variant, then declares each input with
// INPUT_F(binding, name) or INPUT_U(binding, name) and reads it with LOAD_F(name, i) or
// LOAD_U(name, i). Float inputs are VALUE (storage.glsl) in storage buffers; a texel view
// of 16-bit floats converts by its format.
#ifndef VKALEX_LOADS_GLSL
#define VKALEX_LOADS_GLSL

#include "storage.glsl"

#ifdef VKALEX_TEXEL
#define INPUT_F(b, name) layout(set = 0, binding = b) uniform samplerBuffer name
#define INPUT_U(b, name) layout(set = 0, binding = b) uniform usamplerBuffer name
#define LOAD_F(name, i) texelFetch(name, int(i)).x
#define LOAD_U(name, i) texelFetch(name, int(i)).x
#else
#define INPUT_F(b, name) layout(std430, set = 0, binding = b) readonly buffer name##_block { VALUE name[]; }
#define INPUT_U(b, name) layout(std430, set = 0, binding = b) readonly buffer name##_block { uint name[]; }
#define LOAD_F(name, i) float(name[i])
#define LOAD_U(name, i) name[i]
#endif

#endif
