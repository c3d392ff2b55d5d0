#include "vk/spirv_reflect.hpp"

#include <algorithm>
#include <map>

#include "vkalex/error.hpp"

namespace vkalex::detail {

namespace {
// Opcodes, decorations and storage classes of the SPIR-V specification (section 3).
enum : uint32_t {
  kOpTypeInt = 21,
  kOpTypeFloat = 22,
  kOpTypeStruct = 30,
  kOpTypePointer = 32,
  kOpVariable = 59,
  kOpDecorate = 71,
  kOpMemberDecorate = 72,
  kDecorationSpecId = 1,
  kDecorationBinding = 33,
  kDecorationOffset = 35,
  kStorageClassPushConstant = 9,
  kStorageClassUniformConstant = 0,
  kMagic = 0x07230203,
};
}  // namespace

ShaderInterface reflect_shader(const std::string& name, const uint32_t* code, size_t words) {
  auto bad = [&](const std::string& why) { return Error("shader " + name + ": " + why); };
  if (words < 5 || code[0] != kMagic) throw bad("not SPIR-V");
  std::map<uint32_t, uint32_t> scalar_bits;                 // int/float type id -> width
  std::map<uint32_t, std::vector<uint32_t>> struct_members;  // struct id -> member type ids
  std::map<uint32_t, uint32_t> pointee;                     // push-constant pointer id -> type
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> member_offset;
  uint32_t push_pointer = 0;
  std::map<uint32_t, uint32_t> binding_of;  // variable id -> binding
  std::vector<uint32_t> uniform_constants;  // variables of images and samplers
  ShaderInterface out;
  for (size_t i = 5; i < words;) {
    const uint32_t count = code[i] >> 16, op = code[i] & 0xffff;
    if (count == 0 || i + count > words) throw bad("truncated instruction");
    const uint32_t* w = code + i;
    switch (op) {
      case kOpTypeInt:
      case kOpTypeFloat:
        if (count >= 3) scalar_bits[w[1]] = w[2];
        break;
      case kOpTypeStruct:
        struct_members[w[1]] = std::vector<uint32_t>(w + 2, w + count);
        break;
      case kOpTypePointer:
        if (count >= 4 && w[2] == kStorageClassPushConstant) pointee[w[1]] = w[3];
        break;
      case kOpVariable:
        if (count >= 4 && w[3] == kStorageClassPushConstant) push_pointer = w[1];
        if (count >= 4 && w[3] == kStorageClassUniformConstant) uniform_constants.push_back(w[2]);
        break;
      case kOpDecorate:
        if (count >= 4 && w[2] == kDecorationBinding) {
          out.bindings = std::max(out.bindings, w[3] + 1);
          binding_of[w[1]] = w[3];
        }
        if (count >= 4 && w[2] == kDecorationSpecId) out.spec_constants = std::max(out.spec_constants, w[3] + 1);
        break;
      case kOpMemberDecorate:
        if (count >= 5 && w[3] == kDecorationOffset) member_offset[{w[1], w[2]}] = w[4];
        break;
      default:
        break;
    }
    i += count;
  }
  for (uint32_t v : uniform_constants) {
    const auto b = binding_of.find(v);
    if (b == binding_of.end()) continue;
    if (b->second >= 32) throw bad("a texel buffer at binding " + std::to_string(b->second) + " (the engine allows 0..31)");
    out.texel_bindings |= 1u << b->second;
  }
  if (push_pointer == 0) return out;
  const auto block = pointee.find(push_pointer);
  if (block == pointee.end()) throw bad("push-constant variable without its pointer type");
  const auto members = struct_members.find(block->second);
  if (members == struct_members.end()) throw bad("push-constant block is not a struct");
  for (uint32_t m = 0; m < members->second.size(); ++m) {
    const auto bits = scalar_bits.find(members->second[m]);
    const auto offset = member_offset.find({block->second, m});
    if (bits == scalar_bits.end() || bits->second != 32 || offset == member_offset.end()) {
      throw bad("push-constant member " + std::to_string(m) + " is not a 32-bit scalar with an offset");
    }
    out.push_members.push_back({offset->second, 4});
    out.push_bytes = std::max(out.push_bytes, offset->second + 4);
  }
  return out;
}

}  // namespace vkalex::detail
