// compare_checkpoints A B TOL: every tensor of safetensors file A against B's of the same name
// (relative L2 error ||a - b|| / ||b||), one line each; exit status 1 where a tensor is missing,
// has another shape, or differs by more than TOL (0: bit for bit).
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>

#include "vkalex/vkalex.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: compare_checkpoints A.safetensors B.safetensors TOL\n");
    return 2;
  }
  try {
    const vkalex::SafeTensors a(argv[1]), b(argv[2]);
    const double tol = std::strtod(argv[3], nullptr);
    int bad = 0;
    double worst = 0;
    if (a.entries().size() != b.entries().size()) {
      std::printf("%s has %zu tensors, %s has %zu\n", argv[1], a.entries().size(), argv[2], b.entries().size());
      bad = 1;
    }
    for (const auto& entry : a.entries()) {
      const std::string& name = entry.name;
      if (!b.contains(name)) {
        std::printf("%s: missing from %s\n", name.c_str(), argv[2]);
        bad = 1;
        continue;
      }
      const vkalex::HostTensor ta = a.read(name), tb = b.read(name);
      if (ta.shape != tb.shape) {
        std::printf("%s: %s against %s\n", name.c_str(), ta.shape.str().c_str(), tb.shape.str().c_str());
        bad = 1;
        continue;
      }
      const bool same = std::memcmp(ta.data.data(), tb.data.data(), ta.data.size() * sizeof(float)) == 0;
      const double e = vkalex::relative_l2(ta.data, tb.data);
      worst = std::max(worst, e);
      const bool ok = tol == 0 ? same : e <= tol;
      std::printf("%-24s relative L2 %.3g%s%s\n", name.c_str(), e, same ? " (bit-identical)" : "", ok ? "" : "  FAIL");
      if (!ok) bad = 1;
    }
    std::printf("%s: worst relative L2 %.3g (tolerance %g)\n", bad ? "FAILED" : "ok", worst, tol);
    return bad;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_checkpoints: %s\n", e.what());
    return 2;
  }
}
