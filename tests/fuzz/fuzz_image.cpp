// libFuzzer target: an image file decoded (stb_image, after vkalex's header checks) in RGB
// and gray, then prepared as a network input (resize of the shorter side, centre crop).
#include <stb_image.h>

#include <algorithm>
#include <cstdint>

#include "fuzz_input.hpp"
#include "vkalex/error.hpp"
#include "vkalex/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Headers claiming more than 4 Mpixels are passed over: decoding garbage that large takes
  // seconds and reaches no code of vkalex's that a smaller one does not (the size limits
  // themselves are unit-tested), while it would cut the fuzzer to a few runs a second.
  int w = 0, h = 0, n = 0;
  if (stbi_info_from_memory(data, int(std::min<size_t>(size, INT32_MAX)), &w, &h, &n) &&
      uint64_t(w) * uint64_t(h) > (4u << 20)) {
    return 0;
  }
  const vkalex_fuzz::MemoryFile file(data, size);
  for (uint32_t channels : {3u, 1u}) {
    try {
      const vkalex::Image img = vkalex::load_image(file.path(), channels);
      if (img.pixels.size() != size_t(img.width) * img.height * channels) __builtin_trap();
      vkalex::Preprocess p;
      p.resize = 20;
      p.mean.assign(channels, 0.5f);
      p.std.assign(channels, 0.25f);
      const vkalex::HostTensor t = vkalex::preprocess_image(img, p, channels, 16, 16);
      if (t.data.size() != channels * 16u * 16u) __builtin_trap();
    } catch (const vkalex::Error&) {
    }
  }
  return 0;
}
