// Shared by the tests: the GPU context (validation layer on) and the run's random seed.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "vkalex/vkalex.hpp"

namespace test {

// Options every test Context uses: validation on, no pipeline cache and no tuning file from the
// user's home. (main() also sets VKALEX_TUNING=0, so that the samples the tests run ignore the
// user's tuning file too.)
vkalex::ContextOptions options();
// One Context for the whole test process.
vkalex::Context& gpu();
// Seed of this run: $VKALEX_TEST_SEED if set, else fresh. Printed with every failure.
uint64_t seed();
// Fails the current test with the messages, if the validation layer reported any.
void require_no_validation_messages(vkalex::Context& ctx);

// A fresh folder under /tmp, removed with everything in it at the end of the scope.
struct TempDir {
  std::filesystem::path path;
  TempDir();
  ~TempDir();
  std::string operator/(const char* name) const { return (path / name).string(); }
};

// Sets an environment variable for the scope; the previous value (or its absence) returns after.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const char* n, const char* v);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

// Runs a shell command; returns its exit status and its standard output (and standard error
// when with_stderr).
std::pair<int, std::string> run_command(const std::string& command, bool with_stderr = true);

}  // namespace test

// Asserts a GPU-vs-reference check within `tol` and prints everything needed to rerun it.
#define REQUIRE_CHECK(result, tol)                                                         \
  do {                                                                                     \
    const vkalex::CheckResult& r_ = (result);                                              \
    INFO(r_.op << " " << r_.case_name << ": rel L2 " << r_.rel_l2 << ", max abs "         \
               << r_.max_abs << ", seed " << r_.seed                                      \
               << " (rerun with VKALEX_TEST_SEED=" << test::seed() << ")");                \
    CHECK(r_.exact_match);                                                                 \
    REQUIRE(r_.rel_l2 <= (tol));                                                           \
  } while (0)

namespace test {
// Every result of a multi-output check (dx, dw, db; weights and momentum) within `tol`.
inline void require_all(const std::vector<vkalex::CheckResult>& results, double tol = 1e-5) {
  for (const auto& r : results) REQUIRE_CHECK(r, tol);
}
}  // namespace test
