// samples/info: lists the Vulkan devices and checks every op on one of them against the CPU
// reference. How a user checks a new GPU or driver.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "../common/cli.hpp"
#include "vkalex/vkalex.hpp"

namespace {

constexpr double kTolerance = 1e-5;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: info [--device N|NAME] [--list-only] [--full] [--validation] [--seed S]\n"
               "\n"
               "Lists the Vulkan devices with their properties, then runs every vkalex op on\n"
               "the chosen device and compares it with the CPU reference: one line per op with\n"
               "its relative L2 error and PASS (at most %.0e; 1e-3 for the forward ops run again\n"
               "with fp16 storage, marked f16, where the device has 16-bit storage) or FAIL.\n"
               "\n"
               "  --device N|NAME  device index or case-insensitive part of its name\n"
               "                   (default: $VKALEX_DEVICE, else discrete > integrated > CPU)\n"
               "  --list-only      list the devices and stop\n"
               "  --full           also check every backward op at training batch sizes\n"
               "                   (alexnet2012 at 32, alexnet-fashion at 128; takes minutes)\n"
               "  --validation     enable VK_LAYER_KHRONOS_validation; its messages fail the check\n"
               "  --seed S         seed of the random inputs (default: from the clock)\n"
               "  --help           this text\n"
               "\n"
               "Exit status: 0 all PASS, 1 some op FAILed, 2 bad usage or no usable device.\n",
               kTolerance);
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MiB", bytes / 1048576.0);
  return buf;
}

void print_device(const vkalex::DeviceInfo& d) {
  std::printf("device %u: %s\n", d.index, d.name.c_str());
  std::printf("  vendor           %s (0x%04x), device id 0x%04x\n", d.vendor.c_str(), d.vendor_id, d.device_id);
  std::printf("  type             %s\n", vkalex::device_type_name(d.type));
  std::printf("  driver           %s %s (%s)\n", d.driver_name.empty() ? "(unnamed)" : d.driver_name.c_str(),
              d.driver_version_string.c_str(), d.driver_info.c_str());
  std::printf("  Vulkan           %s\n", d.api_version_string.c_str());
  for (size_t i = 0; i < d.heaps.size(); ++i) {
    std::printf("  memory heap %zu    %s%s\n", i, mib(d.heaps[i].size).c_str(),
                d.heaps[i].device_local ? " (device-local)" : "");
  }
  if (d.subgroup_size_control)
    std::printf("  subgroup size    %u (settable %u to %u)", d.subgroup_size, d.min_subgroup_size, d.max_subgroup_size);
  else
    std::printf("  subgroup size    %u", d.subgroup_size);
  std::printf("%s\n", d.subgroup_shuffle ? ", shuffles in compute shaders" : ", no subgroup shuffles");
  std::printf("  workgroups       up to %u invocations (%u x %u x %u), %u KiB shared memory\n",
              d.max_workgroup_invocations, d.max_workgroup_size[0], d.max_workgroup_size[1], d.max_workgroup_size[2],
              d.max_shared_memory / 1024);
  std::printf("  cooperative matrix %s\n", d.cooperative_matrix ? "yes" : "no");
  std::printf("  fp16 arithmetic  %s\n", d.shader_float16 ? "yes" : "no");
  std::printf("  16-bit storage   %s\n", d.storage_buffer_16bit ? "yes" : "no");
  std::printf("  timeline sems    %s\n", d.timeline_semaphore ? "yes (two-device nets)" : "no");
  if (d.timestamps)
    std::printf("  timestamps       yes (%.3g ns per tick)\n", d.timestamp_period_ns);
  else
    std::printf("  timestamps       no\n");
  std::printf("  max binding      %s, max allocation %s, push constants %u bytes, texel buffers %u elements\n",
              mib(d.max_storage_buffer_range).c_str(), mib(d.max_memory_allocation_size).c_str(),
              d.max_push_constants_size, d.max_texel_buffer_elements);
  if (d.max_loop_iterations)
    std::printf("  loop limit       %u iterations per invocation (kernels split their loops to stay below)\n",
                d.max_loop_iterations);
}

}  // namespace

int main(int argc, char** argv) {
  vkalex_samples::check_stdout_at_exit("info");
  vkalex::ContextOptions options;
  bool list_only = false;
  bool full = false;
  uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "info: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--device") {
      options.device = value();
    } else if (a == "--list-only") {
      list_only = true;
    } else if (a == "--full") {
      full = true;
    } else if (a == "--validation") {
      options.validation = true;
    } else if (a == "--seed") {
      const std::string v = value();
      char* end = nullptr;
      errno = 0;
      seed = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-' || v[0] == '+' || errno == ERANGE) {
        std::fprintf(stderr, "info: --seed needs a whole number from 0 to 2^64 - 1, got \"%s\"\n", v.c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr, "info: unknown argument \"%s\" (see --help)\n", a.c_str());
      return 2;
    }
  }

  try {
    const auto devices = vkalex::list_devices();
    if (devices.empty()) {
      // select_device explains what to install.
      vkalex::select_device(devices, "");
    }
    for (const auto& d : devices) print_device(d);
    if (list_only) return 0;

    vkalex::Context ctx(options);
    std::printf("\nself-check on device %u (%s), seed %llu, tolerance %.0e (relative L2; 1e-3 for f16)\n",
                ctx.device().index, ctx.device().name.c_str(), static_cast<unsigned long long>(seed),
                kTolerance);
    bool all_pass = true;
    vkalex::self_check(ctx, seed, full, [&](const vkalex::CheckResult& r) {
      const bool pass = r.passed();  // 1e-5; 1e-3 for ops with fp16 storage (f16)
      all_pass = all_pass && pass;
      std::printf("  %-8s %-55s rel L2 %.2e  max abs %.2e  %s%s\n", r.op.c_str(), r.case_name.c_str(),
                  r.rel_l2, r.max_abs, pass ? "PASS" : "FAIL",
                  r.exact_match ? "" : " (indices or aliasing differ)");
      std::fflush(stdout);
    });
    const auto messages = ctx.take_validation_messages();
    for (const auto& m : messages) std::printf("  validation: %s\n", m.c_str());
    if (!messages.empty()) all_pass = false;
    std::printf("%s\n", all_pass ? "all ops PASS" : "some ops FAIL");
    return all_pass ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "info: %s\n", vkalex_samples::describe(e).c_str());
    return 2;
  }
}
