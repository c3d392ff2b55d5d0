// Counter-based random numbers: the same on every machine and standard library.
#include "vkalex/random.hpp"

namespace vkalex {

std::vector<float> random_uniform(size_t count, uint64_t seed, float scale) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    // splitmix64 of (seed, i): independent of the standard library's distributions.
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + (i + 1) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double u = double(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
    out[i] = static_cast<float>((2.0 * u - 1.0) * scale);
  }
  return out;
}

}  // namespace vkalex
