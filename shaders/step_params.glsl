// Per-step values (step number, dropout seed, learning rate...) live in a small buffer that
// the host rewrites before each replay, so a recorded training step never needs re-recording.
#ifndef VKALEX_STEP_PARAMS_GLSL
#define VKALEX_STEP_PARAMS_GLSL

struct StepParams {
  uint step;
  uint seed;
  float lr;
  float momentum;
  float weight_decay;
  uint pad0, pad1, pad2;
};

#endif
