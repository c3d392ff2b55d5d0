// Reproducible random numbers for tests, checks and initialisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// Uniform values in [-scale, scale) from a counter-based generator: the same on every machine.
std::vector<float> random_uniform(size_t count, uint64_t seed, float scale = 1.0f);

}  // namespace vkalex
VKALEX_PUBLIC_END
