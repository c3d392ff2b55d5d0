// The element type of the float tensors a kernel reads and writes in storage buffers: float,
// or float16_t where the build compiles the kernel a second time with VKALEX_F16 (its
// NAME_f16 twin, for nets with fp16 storage; VK_KHR_16bit_storage). Arithmetic stays fp32 in
// both: a kernel converts on load, float(x[i]) or vec4(x4[i]), and on store, VALUE(v).
#ifndef VKALEX_STORAGE_GLSL
#define VKALEX_STORAGE_GLSL

#ifdef VKALEX_F16
#extension GL_EXT_shader_16bit_storage : require
#define VALUE float16_t
#define VALUE4 f16vec4
#else
#define VALUE float
#define VALUE4 vec4
#endif

#endif
