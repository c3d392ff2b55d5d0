// IEEE binary16 conversions: weights files store F16, and nets with fp16 storage keep their
// tensors in it.
#include <cstring>

#include "vkalex/shape.hpp"

namespace vkalex {

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // infinity, or NaN (kept quiet, with the top of its payload)
    return uint16_t(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
  }
  // Rounds r, the result truncated, by the `shift` bits dropped from m: to nearest, ties to even.
  auto round = [](uint32_t r, uint32_t m, uint32_t shift) {
    const uint32_t rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return rest > half || (rest == half && (r & 1)) ? r + 1 : r;
  };
  if (ax < 0x38800000u) {                 // below 2^-14, the smallest normal half
    if (ax < 0x33000000u) return sign;    // at most 2^-25: rounds to zero
    const uint32_t e = ax >> 23;          // 102 .. 112
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;       // the value in units of 2^-24 is m >> shift
    return uint16_t(sign | round(m >> shift, m, shift));  // may carry into the smallest normal
  }
  // Rebias the exponent (127 -> 15); a carry out of the mantissa steps the exponent, and past
  // the largest finite half lands on infinity.
  const uint32_t r = round((ax - 0x38000000u) >> 13, ax, 13);
  return uint16_t(sign | (r >= 0x7c00 ? 0x7c00 : r));
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace vkalex
