// libFuzzer target: a safetensors file (weights, checkpoints) opened, every tensor read.
#include "fuzz_input.hpp"
#include "vkalex/error.hpp"
#include "vkalex/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const vkalex_fuzz::MemoryFile file(data, size);
  try {
    const vkalex::SafeTensors st(file.path());
    for (const auto& e : st.entries()) {
      try {
        const vkalex::HostTensor t = st.read(e.name);
        if (t.data.size() != t.shape.numel()) __builtin_trap();  // read() must give what the shape says
      } catch (const vkalex::Error&) {
      }
    }
  } catch (const vkalex::Error&) {
  }
  return 0;
}
