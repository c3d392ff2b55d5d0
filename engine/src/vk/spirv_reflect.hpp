// Internal: what a compute shader's SPIR-V declares about its interface, read from the
// module itself, so that the host side of each op is checked against its shader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vkalex::detail {

struct ShaderInterface {
  // The push-constant block's members in declaration order: byte offset and size of each.
  struct Member {
    uint32_t offset = 0, size = 0;
  };
  std::vector<Member> push_members;
  uint32_t push_bytes = 0;       // end of the last member (0: no push constants)
  uint32_t bindings = 0;         // highest descriptor binding + 1 (set 0)
  uint32_t texel_bindings = 0;   // bit i: binding i is a uniform texel buffer (samplerBuffer)
  uint32_t spec_constants = 0;   // highest specialization constant id + 1
};

// Reads `words` of SPIR-V. Throws Error naming `name` when the module is malformed or its
// push-constant block has a member that is not a 32-bit scalar (the engine's convention).
ShaderInterface reflect_shader(const std::string& name, const uint32_t* code, size_t words);

}  // namespace vkalex::detail
