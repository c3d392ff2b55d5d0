// samples/classify: classifies images with a model description and its weights, as one batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "vkalex/vkalex.hpp"

namespace {

const std::string kDefaultModel = vkalex_samples::model_dir() + "/alexnet-fashion.json";

void usage(FILE* out) {
  std::fprintf(out,
      "usage: classify [options] IMAGE...\n"
      "\n"
      "Classifies the images (JPEG, PNG, BMP, TGA, GIF, PNM) as one batch on a Vulkan device\n"
      "and prints the top K classes of each with their probabilities, and the GPU time.\n"
      "\n"
      "  --model FILE.json     model description (default: %s;\n"
      "                        the folder is $VKALEX_MODEL_DIR where set)\n"
      "  --model FILE.onnx     an ONNX model (its weights inside; see README, \"ONNX models\")\n"
      "  --preprocess FILE     with an ONNX model: its preprocessing, {\"preprocess\": {...as\n"
      "                        in a description...}, \"labels\": FILE} (default: FILE.onnx.json\n"
      "                        where it exists, else [0, 1] pixels, mean 0, std 1)\n"
      "  --mean A,B,C  --std A,B,C  --resize N  --bgr\n"
      "                        with an ONNX model: override those of the preprocessing\n"
      "  --weights FILE        safetensors weights (default: the description's \"weights\")\n"
      "  --labels FILE         class names, one per line (default: the description's \"labels\")\n"
      "  --device N|NAME       device index or part of its name (default: $VKALEX_DEVICE, else\n"
      "                        discrete GPU > integrated GPU > CPU)\n"
      "  --top K               classes shown per image (default 5, at most the model's classes)\n"
      "  --json                print one JSON document: per image the top K entries with class\n"
      "                        index, label, probability and logit, plus device and timings\n"
      "  --check               also run the CPU reference and print the largest differences\n"
      "                        of the logits\n"
      "  --fp16                keep weights and activations as 16-bit floats on the device\n"
      "                        (half the memory; arithmetic stays fp32; needs 16-bit storage\n"
      "                        buffers). With --check, compared with the fp32 reference\n"
      "  --list-devices        list the Vulkan devices and exit\n"
      "  --help                this text\n"
      "\n"
      "An image of exactly the model's input size is used as it is; any other is resized\n"
      "(shorter side to the description's resize size, bilinear) and centre-cropped.\n"
      "Exit status: 0 on success, 1 on any error (bad argument, file, image or device).\n",
      kDefaultModel.c_str());
}

[[noreturn]] void die(const std::string& message) { vkalex_samples::die("classify", message); }

bool is_onnx(const std::string& path) { return vkalex::is_onnx_path(path); }

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Options {
  std::string model = kDefaultModel, weights, labels, preprocess;
  std::vector<float> mean, std;
  uint32_t resize = 0;
  bool bgr = false;
  std::optional<std::string> device;
  uint32_t top = 5;
  bool json = false, check = false, list_devices = false, fp16 = false;
  std::vector<std::string> images;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value (see --help)");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--model") {
      o.model = value();
    } else if (a == "--preprocess") {
      o.preprocess = value();
    } else if (a == "--mean" || a == "--std") {
      std::vector<float>& list = a == "--mean" ? o.mean : o.std;
      const std::string v = value();
      size_t start = 0;
      while (true) {
        const size_t comma = v.find(',', start);
        const std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        list.push_back(static_cast<float>(vkalex_samples::parse_number("classify", a, item, a == "--std" ? 1e-6 : -1e6, 1e6)));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (a == "--resize") {
      o.resize = static_cast<uint32_t>(vkalex_samples::parse_count("classify", a, value(), 1, 100000));
    } else if (a == "--bgr") {
      o.bgr = true;
    } else if (a == "--weights") {
      o.weights = value();
    } else if (a == "--labels") {
      o.labels = value();
    } else if (a == "--device") {
      o.device = value();
    } else if (a == "--top") {
      o.top = static_cast<uint32_t>(vkalex_samples::parse_count("classify", a, value(), 1, 1000000));
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--check") {
      o.check = true;
    } else if (a == "--fp16") {
      o.fp16 = true;
    } else if (a == "--list-devices") {
      o.list_devices = true;
    } else if (a.size() > 1 && a[0] == '-') {
      die("unknown option \"" + a + "\" (see --help)");
    } else {
      o.images.push_back(a);
    }
  }
  if (!o.list_devices && o.images.empty()) die("no image given (see --help)");
  const bool onnx_flags = !o.preprocess.empty() || !o.mean.empty() || !o.std.empty() || o.resize || o.bgr;
  if (onnx_flags && !is_onnx(o.model)) {
    die("--preprocess, --mean, --std, --resize and --bgr are for ONNX models (a description has its own \"preprocess\")");
  }
  if (!o.weights.empty() && is_onnx(o.model)) die("an ONNX model carries its weights: --weights is for descriptions");
  return o;
}

// An ONNX model with the preprocessing of its sidecar and the flags, or the default with a note.
vkalex::OnnxModel load_onnx_model(const Options& o) {
  vkalex::OnnxModel m = vkalex::load_onnx(o.model);
  vkalex::ModelDesc& d = m.model;
  if (d.channels != 1 && d.channels != 3) {
    die(o.model + ": its input has " + std::to_string(d.channels) + " channels; images give 1 (gray) or 3 (RGB)");
  }
  std::string sidecar = o.preprocess;
  if (sidecar.empty() && std::filesystem::exists(o.model + ".json")) sidecar = o.model + ".json";
  if (!sidecar.empty()) {
    vkalex::load_preprocess_sidecar(sidecar, d);
  } else if (o.mean.empty() && o.std.empty()) {
    std::fprintf(stderr,
                 "classify: note: %s carries no preprocessing and there is no %s.json: pixels are scaled to [0, 1] "
                 "with mean 0 and std 1 (give --preprocess FILE.json or --mean and --std)\n",
                 o.model.c_str(), o.model.c_str());
  }
  auto channels = [&](const char* flag, const std::vector<float>& v) {
    if (!v.empty() && v.size() != d.channels) {
      die(std::string(flag) + " needs " + std::to_string(d.channels) + " values (one per channel), got " + std::to_string(v.size()));
    }
  };
  channels("--mean", o.mean);
  channels("--std", o.std);
  if (!o.mean.empty()) d.preprocess.mean = o.mean;
  if (!o.std.empty()) d.preprocess.std = o.std;
  if (o.resize) {
    if (o.resize < d.preprocess.crop) die("--resize " + std::to_string(o.resize) + " is less than the crop " + std::to_string(d.preprocess.crop));
    d.preprocess.resize = o.resize;
  }
  if (o.bgr) {
    if (d.channels != 3) die("--bgr needs a 3-channel model");
    d.preprocess.bgr = true;
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  vkalex_samples::check_stdout_at_exit("classify");
  const Options opt = parse(argc, argv);
  try {
    if (opt.list_devices) {
      for (const auto& d : vkalex::list_devices()) {
        std::printf("%u: %s (%s, %s, Vulkan %s)\n", d.index, d.name.c_str(), vkalex::device_type_name(d.type),
                    d.driver_name.c_str(), d.api_version_string.c_str());
      }
      return 0;
    }
    // Everything from files is read and checked before the GPU is touched.
    std::optional<vkalex::OnnxModel> onnx;
    if (is_onnx(opt.model)) onnx = load_onnx_model(opt);
    const vkalex::ModelDesc model = onnx ? onnx->model : vkalex::load_model(opt.model);
    if (opt.top > model.classes) {
      die("--top " + std::to_string(opt.top) + " is more than the model's " + std::to_string(model.classes) + " classes");
    }
    std::vector<std::string> labels;
    const std::string labels_path = opt.labels.empty() ? model.labels_path : opt.labels;
    if (!labels_path.empty()) {
      labels = vkalex::load_labels(labels_path, model.classes);
    } else {
      for (uint32_t c = 0; c < model.classes; ++c) labels.push_back("class " + std::to_string(c));
    }
    std::optional<vkalex::SafeTensors> weights;
    std::string weights_path = opt.weights.empty() ? model.weights_path : opt.weights;
    if (onnx) {
      weights_path = opt.model;
    } else {
      if (weights_path.empty()) die(opt.model + " names no weights; pass --weights FILE.safetensors");
      if (!std::filesystem::exists(weights_path)) {
        std::string hint;
        if (opt.weights.empty() && model.name == "alexnet-torchvision") {
          hint = "; write them with model/export_torchvision.py (see README) or pass --weights";
        } else if (opt.weights.empty()) {
          hint = "; train them with train --model " + opt.model + " (see README) or pass --weights";
        }
        die("weights " + weights_path + " not found" + hint);
      }
      weights.emplace(weights_path);
    }

    const auto t_pre = std::chrono::steady_clock::now();
    const uint32_t n = static_cast<uint32_t>(opt.images.size());
    vkalex::HostTensor input(model.input_shape(n));
    const uint64_t per_image = input.data.size() / n;
    for (uint32_t i = 0; i < n; ++i) {
      const vkalex::Image img = vkalex::load_image(opt.images[i], model.channels);
      const vkalex::HostTensor x = vkalex::preprocess_image(img, model.preprocess, model.channels, model.height, model.width);
      std::copy(x.data.begin(), x.data.end(), input.data.begin() + i * per_image);
    }
    const double preprocess_ms = ms_since(t_pre);

    vkalex::ContextOptions copt;
    copt.device = opt.device;
    vkalex::Context ctx(copt);
    vkalex::Net net(ctx, model, vkalex::NetOptions{opt.fp16 ? vkalex::DType::F16 : vkalex::DType::F32});
    // The weights: the ONNX model's initializers, or the safetensors file's.
    auto load = [&](vkalex::Net& into) {
      if (onnx) return into.set_parameters(onnx->parameters);
      for (const auto& name : into.load_weights(*weights)) {
        if (&into == &net) {
          std::fprintf(stderr, "classify: note: %s holds tensor \"%s\", which %s does not use\n", weights_path.c_str(),
                       name.c_str(), model.name.c_str());
        }
      }
    };
    load(net);
    net.prepare(n);  // recording and pipeline creation are not part of the forward time
    const auto t_fwd = std::chrono::steady_clock::now();
    const vkalex::ForwardResult r = net.forward(input);
    vkalex::require_finite(r);
    const double wall_ms = ms_since(t_fwd);

    double max_abs = 0, max_ref = 0, rel_l2 = 0, cpu_ms = 0;
    if (opt.check) {
      const auto t_cpu = std::chrono::steady_clock::now();
      // With fp16 storage the reference keeps the file's weights unrounded: the difference is
      // all that fp16 storage changes.
      std::optional<vkalex::Net> full;
      if (opt.fp16) {
        full.emplace(ctx, model);
        load(*full);
      }
      const vkalex::ForwardResult ref = (full ? *full : net).forward_cpu(input);
      cpu_ms = ms_since(t_cpu);
      for (size_t i = 0; i < ref.logits.size(); ++i) {
        const double d = std::fabs(double(r.logits[i]) - ref.logits[i]);
        max_abs = std::isnan(d) ? INFINITY : std::max(max_abs, d);
        max_ref = std::max(max_ref, std::fabs(double(ref.logits[i])));
      }
      rel_l2 = vkalex::relative_l2(r.logits, ref.logits);
    }

    // Top K of each image, by probability (ties by class index).
    std::vector<std::vector<uint32_t>> tops(n);
    for (uint32_t i = 0; i < n; ++i) {
      std::vector<uint32_t> idx(model.classes);
      std::iota(idx.begin(), idx.end(), 0u);
      const float* p = &r.probabilities[uint64_t(i) * model.classes];
      std::partial_sort(idx.begin(), idx.begin() + opt.top, idx.end(),
                        [&](uint32_t a, uint32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      idx.resize(opt.top);
      tops[i] = std::move(idx);
    }

    if (opt.json) {
      nlohmann::json j;
      j["model"] = model.name;
      if (onnx) j["onnx"] = {{"opset", onnx->opset}, {"output", onnx->output_is_softmax ? "softmax" : "logits"}};
      j["weights"] = weights_path;
      j["device"] = {{"index", ctx.device().index}, {"name", ctx.device().name},
                     {"driver", ctx.device().driver_name + " " + ctx.device().driver_info}};
      j["batch"] = n;
      j["storage"] = opt.fp16 ? "f16" : "f32";
      j["timings_ms"] = {{"preprocess", preprocess_ms}, {"gpu_forward", r.gpu_ms}, {"wall_forward", wall_ms}};
      if (opt.check) {
        j["check"] = {{"cpu_forward_ms", cpu_ms}, {"max_abs_diff", max_abs},
                      {"max_abs_diff_over_max_logit", max_ref > 0 ? max_abs / max_ref : 0.0},
                      {"relative_l2", rel_l2}};
      }
      j["images"] = nlohmann::json::array();
      for (uint32_t i = 0; i < n; ++i) {
        nlohmann::json top = nlohmann::json::array();
        for (uint32_t c : tops[i]) {
          const uint64_t k = uint64_t(i) * model.classes + c;
          top.push_back({{"index", c}, {"label", labels[c]}, {"probability", r.probabilities[k]}, {"logit", r.logits[k]}});
        }
        j["images"].push_back({{"file", opt.images[i]}, {"top", top}});
      }
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("device %u: %s\nmodel: %s, weights %s%s%s\n", ctx.device().index, ctx.device().name.c_str(),
                  model.name.c_str(), weights_path.c_str(), opt.fp16 ? " (fp16 storage)" : "",
                  !onnx ? "" : onnx->output_is_softmax ? " (ONNX)" : " (ONNX; its output is logits: probabilities from an added softmax)");
      for (uint32_t i = 0; i < n; ++i) {
        std::printf("\n%s\n", opt.images[i].c_str());
        for (size_t rank = 0; rank < tops[i].size(); ++rank) {
          const uint32_t c = tops[i][rank];
          std::printf("  %2zu. %7.4f  %s (%u)\n", rank + 1, r.probabilities[uint64_t(i) * model.classes + c],
                      labels[c].c_str(), c);
        }
      }
      std::printf("\nforward pass of %u image(s): %.2f ms on the GPU, %.2f ms wall; preprocessing %.1f ms\n", n,
                  r.gpu_ms, wall_ms, preprocess_ms);
      if (opt.check) {
        std::printf("CPU reference (%.0f ms): logits differ by at most %.3g (%.3g of the largest logit), relative L2 %.3g\n",
                    cpu_ms, max_abs, max_ref > 0 ? max_abs / max_ref : 0.0, rel_l2);
      }
    }
    vkalex_samples::fail_on_validation_messages("classify", ctx);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify: %s\n", vkalex_samples::describe(e).c_str());
    return 1;
  }
}
