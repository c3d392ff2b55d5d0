// libFuzzer target: a model description parsed, its parameters listed and its plan lowered
// (shapes chained through every layer) for a batch of 2.
#include <string>

#include "vkalex/context.hpp"
#include "vkalex/error.hpp"
#include "vkalex/model.hpp"
#include "vkalex/plan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const vkalex::ModelDesc m =
        vkalex::parse_model(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json", "/nonexistent");
    (void)vkalex::parameter_shapes(m);
    (void)vkalex::lower(m, 2, vkalex::DeviceInfo{});
  } catch (const vkalex::Error&) {
  }
  return 0;
}
