// Test runner: Catch2 with a listener that fails the run when the validation layer reported
// anything that no test claimed.
#define CATCH_CONFIG_RUNNER
#include "common.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <sys/wait.h>

namespace test {

namespace {
std::unique_ptr<vkalex::Context> g_context;
bool g_unclaimed_messages = false;
}  // namespace

vkalex::ContextOptions options() {
  vkalex::ContextOptions o;
  o.validation = true;
  o.pipeline_cache = false;
  o.tuning_file = false;
  return o;
}

vkalex::Context& gpu() {
  if (!g_context) g_context = std::make_unique<vkalex::Context>(options());
  return *g_context;
}

uint64_t seed() {
  static const uint64_t s = []() -> uint64_t {
    if (const char* env = std::getenv("VKALEX_TEST_SEED")) return std::strtoull(env, nullptr, 10);
    return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  }();
  return s;
}

void require_no_validation_messages(vkalex::Context& ctx) {
  const auto messages = ctx.take_validation_messages();
  for (const auto& m : messages) UNSCOPED_INFO("validation: " << m);
  REQUIRE(messages.empty());
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/vkalex-test-XXXXXX";
  const char* made = ::mkdtemp(tmpl);
  if (!made) throw std::runtime_error("cannot make a temporary folder");
  path = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

ScopedEnv::ScopedEnv(const char* n, const char* v) : name(n) {
  if (const char* was = std::getenv(n)) old = was;
  ::setenv(n, v, 1);
}

ScopedEnv::~ScopedEnv() {
  if (old) {
    ::setenv(name.c_str(), old->c_str(), 1);
  } else {
    ::unsetenv(name.c_str());
  }
}

std::pair<int, std::string> run_command(const std::string& command, bool with_stderr) {
  FILE* p = ::popen((command + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

struct ValidationListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (!g_context) return;
    for (const auto& m : g_context->take_validation_messages()) {
      std::fprintf(stderr, "validation message during \"%s\": %s\n", stats.testInfo.name.c_str(), m.c_str());
      g_unclaimed_messages = true;
    }
  }
};
CATCH_REGISTER_LISTENER(ValidationListener)

}  // namespace test

int main(int argc, char** argv) {
  // A developer's tuning file must not change which kernels the tests (and the samples they
  // run) take; the tests of the tuning file turn it back on for their scope.
  ::setenv("VKALEX_TUNING", "0", 1);
  const int result = Catch::Session().run(argc, argv);
  test::g_context.reset();
  if (test::g_unclaimed_messages) {
    std::fprintf(stderr, "FAILED: the validation layer reported messages (above)\n");
    return result ? result : 1;
  }
  return result;
}
