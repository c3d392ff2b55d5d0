// libFuzzer target: a pair of IDX files (images, labels), plain or gzip. The input is the
// images file's length (4 bytes, little-endian), the images file, then the labels file.
#include <cstring>
#include <vector>

#include "fuzz_input.hpp"
#include "vkalex/dataset.hpp"
#include "vkalex/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t first = 0;
  std::memcpy(&first, data, 4);
  data += 4;
  size -= 4;
  if (first > size) first = uint32_t(size);
  const vkalex_fuzz::MemoryFile images(data, first), labels(data + first, size - first);
  try {
    const auto ds = vkalex::load_idx(images.path(), labels.path(), std::vector<std::string>(10, "class"));
    for (size_t i = 0; i < ds->size() && i < 4; ++i) {
      const vkalex::Image img = ds->image(i);
      if (img.pixels.size() != size_t(img.width) * img.height * img.channels) __builtin_trap();
      if (ds->label(i) >= ds->classes()) __builtin_trap();
    }
  } catch (const vkalex::Error&) {
  }
  return 0;
}
