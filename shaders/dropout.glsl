// Dropout's keep decision, identical to vkalex::dropout_hash in engine/src/cpu/forward.cpp.
#ifndef VKALEX_DROPOUT_GLSL
#define VKALEX_DROPOUT_GLSL

uint lowbias32(uint x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

uint dropout_hash(uint seed, uint step, uint index) {
  return lowbias32(lowbias32(lowbias32(seed) ^ step) ^ index);
}

#endif
