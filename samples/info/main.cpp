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
               "       info --model FILE.onnx [--save-weights FILE.safetensors]\n"
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
               "  --model FILE.onnx  list an ONNX model's graph instead: every node, what vkalex\n"
               "                   lowers it into or why it cannot run it (no device is used)\n"
               "  --save-weights FILE.safetensors  with --model: write the model's parameters\n"
               "                   (its initializers in vkalex's layouts) as safetensors\n"
               "  --help           this text\n"
               "\n"
               "Exit status: 0 all PASS (with --model: every node can run), 1 some op FAILed (a\n"
               "node that cannot run, a file that is not a valid model), 2 bad usage or no usable\n"
               "device.\n",
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

std::string dims(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + (d[i] < 0 ? std::string("N") : std::to_string(d[i]));
  return s + "]";
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + (x.empty() ? std::string("-") : x);
  return s;
}

// info --model FILE.onnx: the graph, node by node, and whether vkalex runs it.
int describe_onnx(const std::string& path, const std::string& save_weights) {
  try {
    const vkalex::OnnxModel m = vkalex::inspect_onnx(path);
    std::printf("%s: ONNX IR version %lld, opset %lld%s%s\n", path.c_str(), static_cast<long long>(m.ir_version),
                static_cast<long long>(m.opset), m.producer.empty() ? "" : ", made by ", m.producer.c_str());
    std::printf("input  \"%s\" %s\n", m.input.c_str(), dims(m.input_dims).c_str());
    if (!m.output.empty()) std::printf("output \"%s\" %s\n", m.output.c_str(), dims(m.output_dims).c_str());
    size_t refused = 0, i = 0;
    if (!m.graph_refused.empty()) {
      ++refused;
      std::printf("the graph CANNOT RUN: %s\n", m.graph_refused.c_str());
    }
    std::printf("%zu nodes:\n", m.nodes.size());
    for (const auto& n : m.nodes) {
      std::printf("  %3zu %-12s %-20s (%s) -> (%s)\n", ++i, n.op_type.c_str(), n.name.c_str(), joined(n.inputs).c_str(),
                  joined(n.outputs).c_str());
      if (!n.refused.empty()) {
        ++refused;
        std::printf("      CANNOT RUN: %s\n", n.refused.c_str());
      } else if (!n.lowered.empty()) {
        std::printf("      -> %s\n", n.lowered.c_str());
      } else {
        std::printf("      (not looked at: after a node that cannot run)\n");
      }
    }
    if (refused) {
      std::printf("vkalex cannot run this model: %s\n", m.refusal().c_str());
      if (!save_weights.empty()) std::fprintf(stderr, "info: nothing written to %s\n", save_weights.c_str());
      return 1;
    }
    uint64_t values = 0;
    for (const auto& [name, t] : m.parameters) values += t.data.size();
    std::printf("every node runs: %zu layers, %zu parameter tensors (%.1f M values, %.1f MB as fp32), %u outputs per image%s\n",
                m.model.layers.size(), m.parameters.size(), values / 1e6, values * 4 / 1e6, m.model.classes,
                m.output_is_softmax ? " (the graph's softmax)" : " (logits; classify adds a softmax)");
    if (!save_weights.empty()) {
      vkalex::save_safetensors(save_weights, m.parameters, {{"source", path}});
      std::printf("wrote %s\n", save_weights.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "info: %s\n", vkalex_samples::describe(e).c_str());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  vkalex_samples::check_stdout_at_exit("info");
  vkalex::ContextOptions options;
  bool list_only = false;
  bool full = false;
  std::string onnx_model, save_weights;
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
    } else if (a == "--model") {
      onnx_model = value();
    } else if (a == "--save-weights") {
      save_weights = value();
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

  if (!save_weights.empty() && onnx_model.empty()) {
    std::fprintf(stderr, "info: --save-weights needs --model FILE.onnx\n");
    return 2;
  }
  if (!onnx_model.empty()) return describe_onnx(onnx_model, save_weights);

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
