// Command-line helpers the samples share: each failure prints "<program>: <why>" on stderr
// and exits with status 1.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <new>
#include <string>
#include <system_error>

namespace vkalex_samples {

// Where set, how a failing program ends instead of exit(): in an MPI job (World in mpi.hpp),
// MPI_Abort, which ends every process of the job rather than leave them waiting for this one.
inline void (*&abort_hook())(int) {
  static void (*hook)(int) = nullptr;
  return hook;
}

// Ends the program with `status` after a failure (see abort_hook).
[[noreturn]] inline void fail_exit(int status) {
  if (abort_hook()) abort_hook()(status);
  std::exit(status);
}

[[noreturn]] inline void die(const char* program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program, message.c_str());
  fail_exit(1);
}

// Makes a failed write of the standard output (a full disk, /dev/full) the program's failure:
// at exit, however the program ends, stdout is flushed and checked, and an error is reported
// as "<program>: cannot write the standard output: <why>" with exit status 1. Call first in main.
inline void check_stdout_at_exit(const char* program) {
  static const char* name = nullptr;
  if (name) return;
  name = program;
  std::atexit([] {
    errno = 0;
    const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout);
    if (!failed) return;
    const int e = errno;
    std::fprintf(stderr, "%s: cannot write the standard output: %s\n", name, e ? std::strerror(e) : "write error");
    std::_Exit(1);
  });
}

// What went wrong, for the user: the exception's message, and for a failed allocation what ran
// out (a bare "std::bad_alloc" says nothing).
inline std::string describe(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) {
    return "out of host memory: the images, the batch or the model need more than this machine can give";
  }
  return e.what();
}

// With the validation layer on (VKALEX_VALIDATION=1 or an option), the run fails where the
// layer reported anything: each message on stderr, exit status 1. Called where a sample
// would return success, so that the tests running the samples as programs see the layer too.
template <typename Context>
void fail_on_validation_messages(const char* program, Context& context) {
  const auto messages = context.take_validation_messages();
  if (messages.empty()) return;
  for (const auto& m : messages) std::fprintf(stderr, "%s: validation: %s\n", program, m.c_str());
  std::fprintf(stderr, "%s: the validation layer reported %zu message(s)\n", program, messages.size());
  fail_exit(1);
}

// A finite number in [lo, hi] (the whole string must be the number).
inline double parse_number(const char* program, const std::string& flag, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  // Decimal only: strtod would also take hexadecimal ("0x10" as 16), "inf" and "nan".
  const bool decimal = v.find_first_not_of("0123456789+-.eE") == std::string::npos;
  if (v.empty() || !decimal || *end || !std::isfinite(d) || d < lo || d > hi) {
    die(program, flag + " needs a number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got \"" + v + "\"");
  }
  return d;
}

// A whole number in [lo, hi] (no sign, no trailing characters).
inline unsigned long long parse_count(const char* program, const std::string& flag, const std::string& v,
                                      unsigned long long lo, unsigned long long hi) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long d = std::strtoull(v.c_str(), &end, 10);
  // ERANGE: beyond 2^64 - 1, which strtoull would clamp to the largest value without a word.
  if (v.empty() || *end || v[0] == '-' || v[0] == '+' || errno == ERANGE || d < lo || d > hi) {
    die(program, flag + " needs a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got \"" + v + "\"");
  }
  return d;
}

// The folder of the model descriptions, class names and shipped weights: $VKALEX_MODEL_DIR
// where set, else the one an installed prefix and the build tree both have beside this
// program's folder (VKALEX_BIN_TO_MODEL_DIR, "../share/vkalex/model"). Never a path of the
// source tree: an installed program must not depend on where it was built.
inline std::string model_dir() {
  if (const char* env = std::getenv("VKALEX_MODEL_DIR"); env && *env) return env;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "share/vkalex/model";  // no /proc: relative to the working directory
  return (self.parent_path() / VKALEX_BIN_TO_MODEL_DIR).lexically_normal().string();
}

}  // namespace vkalex_samples
