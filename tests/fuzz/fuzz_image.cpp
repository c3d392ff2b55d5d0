// libFuzzer target: an image file decoded (stb_image, after vkalex's header checks) in RGB
// and gray, then prepared as a network input (resize of the shorter side, centre crop).
#include "fuzz_input.hpp"
#include "vkalex/error.hpp"
#include "vkalex/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
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
