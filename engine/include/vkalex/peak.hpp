// What the device can do at best, measured with the engine's own kernels: the yardstick
// bench holds each layer against.
#pragma once

#include <cstdint>

#include "vkalex/context.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

struct PeakFigures {
  double fma_scalar_gflops = 0;  // fp32 fused multiply-adds on scalars, 2 FLOP each
  double fma_vec4_gflops = 0;    // the same on vec4 operands (the figure layers are held against)
  double copy_gbps = 0;          // a buffer copied: bytes read plus bytes written per second
};

// Runs each kernel until one dispatch takes at least 20 ms and keeps the best of `repeats`
// timings (GPU timestamps): a peak measured low would flatter every share of it. Each FMA
// invocation runs 12 independent chains, enough to hide a multiply-add's latency. Takes a few
// seconds; throws Error when the device has no timestamps.
PeakFigures measure_peak(Context& ctx, uint32_t repeats = 5);

}  // namespace vkalex
VKALEX_PUBLIC_END
