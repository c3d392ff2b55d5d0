// The body of gemm_texel.comp and gemm_texel_shuffle.comp: gemm.glsl with its vec4 loads
// through uniform texel buffers (RGBA32F) instead of storage buffers. On CPU drivers such as
// lavapipe a storage-buffer load is a loop over the lanes, a texel fetch one gather; on
// drivers whose texel buffers are small (SwiftShader: 65,536 texels) the registry does not
// choose it. A texel view of 16-bit floats converts by its format.
#include "storage.glsl"
layout(set = 0, binding = 1) uniform samplerBuffer a4;
layout(set = 0, binding = 3) uniform samplerBuffer b4;
#define LOAD_A4(i) texelFetch(a4, int(i))
#define LOAD_B4(i) texelFetch(b4, int(i))
#include "gemm.glsl"
