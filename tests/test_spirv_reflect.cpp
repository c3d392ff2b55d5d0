// The SPIR-V reader behind the check that every op's push constants, bindings and
// specialization constants match its shader (an engine internal, tested directly).
#include "common.hpp"
#include "spirv/conv2d_forward.h"
#include "spirv/sum_slices.h"
#include "vk/spirv_reflect.hpp"

using vkalex::detail::reflect_shader;

TEST_CASE("the SPIR-V reader finds push constants, bindings and specialization constants", "[spirv]") {
  // conv2d_forward.comp: 15 uint push constants, bindings 0-3, constants 0-2 (workgroup, tiles).
  const auto conv = reflect_shader("conv2d_forward", conv2d_forward_spv, std::size(conv2d_forward_spv));
  CHECK(conv.push_bytes == 60);
  REQUIRE(conv.push_members.size() == 15);
  for (size_t m = 0; m < conv.push_members.size(); ++m) CHECK(conv.push_members[m].offset == 4 * m);
  CHECK(conv.bindings == 4);
  CHECK(conv.spec_constants == 3);
  // sum_slices.comp: S and L, two bindings, only the workgroup size.
  const auto sum = reflect_shader("sum_slices", sum_slices_spv, std::size(sum_slices_spv));
  CHECK(sum.push_bytes == 8);
  CHECK(sum.bindings == 2);
  CHECK(sum.spec_constants == 1);
}

TEST_CASE("the SPIR-V reader refuses what is not whole SPIR-V", "[spirv][errors]") {
  const uint32_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK_THROWS_WITH(reflect_shader("junk", junk, 8), Catch::Contains("junk") && Catch::Contains("not SPIR-V"));
  CHECK_THROWS_WITH(reflect_shader("short", sum_slices_spv, 3), Catch::Contains("not SPIR-V"));
  // Cut in the middle of an instruction.
  std::vector<uint32_t> cut(sum_slices_spv, sum_slices_spv + std::size(sum_slices_spv));
  size_t i = 5;
  while (i + (cut[i] >> 16) < cut.size() / 2) i += cut[i] >> 16;
  cut.resize(i + 1);
  if ((cut[i] >> 16) > 1) CHECK_THROWS_WITH(reflect_shader("cut", cut.data(), cut.size()), Catch::Contains("truncated"));
}
