// samples/classify end to end: random weights, a small bundled image, JSON checked.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common.hpp"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

const std::string kModel = std::string(VKALEX_MODEL_DIR) + "/alexnet-torchvision.json";
const std::string kImage = std::string(VKALEX_TEST_DATA_DIR) + "/small.png";

std::pair<int, std::string> run(const std::string& args, bool with_stderr = false) {
  return test::run_command(std::string(VKALEX_CLASSIFY_EXE) + " " + args, with_stderr);
}

struct Weights {
  std::string path;
  Weights() {
    char tmpl[] = "/tmp/vkalex-classify-XXXXXX";
    path = std::string(::mkdtemp(tmpl)) + "/w.safetensors";
    save_safetensors(path, random_parameters(load_model(kModel), test::seed()));
  }
  ~Weights() { fs::remove_all(fs::path(path).parent_path()); }
};

}  // namespace

TEST_CASE("classify: JSON with all 1000 classes whose probabilities sum to 1", "[classify]") {
  Weights w;
  const auto [status, out] = run("--model " + kModel + " --weights " + w.path + " --top 1000 --json " + kImage + " " + kImage);
  INFO(out.substr(0, 2000));
  REQUIRE(status == 0);
  const auto j = nlohmann::json::parse(out);
  REQUIRE(j["images"].size() == 2);
  CHECK(j["batch"] == 2);
  CHECK(j["model"] == "alexnet-torchvision");
  CHECK(!j["device"]["name"].get<std::string>().empty());
  CHECK(j["timings_ms"]["wall_forward"].get<double>() > 0);
  for (const auto& image : j["images"]) {
    const auto& top = image["top"];
    REQUIRE(top.size() == 1000);
    double sum = 0, prev = 2;
    std::vector<bool> seen(1000);
    for (const auto& e : top) {
      const double p = e["probability"].get<double>();
      sum += p;
      CHECK(p <= prev);  // sorted, most probable first
      prev = p;
      CHECK(std::isfinite(e["logit"].get<double>()));
      seen.at(e["index"].get<size_t>()) = true;
      CHECK(!e["label"].get<std::string>().empty());
    }
    CHECK(std::count(seen.begin(), seen.end(), true) == 1000);
    CHECK(std::fabs(sum - 1.0) <= 1e-4);
  }
  // The same image twice in a batch gives the same answer.
  CHECK(j["images"][0]["top"][0] == j["images"][1]["top"][0]);
}

TEST_CASE("classify: top K in text and JSON, and --check agrees with the CPU reference", "[classify]") {
  Weights w;
  const auto [status, out] = run("--model " + kModel + " --weights " + w.path + " --top 3 --json --check " + kImage);
  INFO(out);
  REQUIRE(status == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["images"][0]["top"].size() == 3);
  CHECK(j["check"]["relative_l2"].get<double>() <= 1e-4);
  const auto [tstatus, text] = run("--model " + kModel + " --weights " + w.path + " --top 2 " + kImage);
  INFO(text);
  CHECK(tstatus == 0);
  CHECK_THAT(text, Catch::Contains(" 1. ") && Catch::Contains(" 2. ") && !Catch::Contains(" 3. "));
  CHECK_THAT(text, Catch::Contains("ms on the GPU"));
}

TEST_CASE("classify: bad input gives a clear message and exit status 1", "[classify][errors]") {
  Weights w;
  const std::string base = "--model " + kModel + " --weights " + w.path + " ";
  auto refuse = [&](const std::string& args, const std::string& what) {
    const auto [status, out] = run(args, true);
    INFO(args << "\n" << out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains(what));
  };
  refuse(base + "/nonexistent.png", "/nonexistent.png: cannot open");
  refuse(base + kModel, "not an image");
  refuse(base + "--top 0 " + kImage, "--top needs");
  refuse(base + "--top 1001 " + kImage, "more than the model's 1000 classes");
  refuse(base, "no image given");
  refuse(base + "--frobnicate " + kImage, "unknown option");
  refuse("--model " + kModel + " --weights /nonexistent.safetensors " + kImage, "not found");
  refuse("--model /nonexistent.json " + kImage, "cannot open the model description");
  refuse("--model " + kModel + " --weights " + kModel + " " + kImage, "alexnet-torchvision.json: ");
  refuse(base + "--device nosuchgpu " + kImage, "no device name contains \"nosuchgpu\"");
  refuse(base + "--labels " + kImage + " " + kImage, "class names");
  {  // A NaN in the weights: refused when loaded, naming the tensor and the element.
    std::string bytes;
    {
      std::ifstream in(w.path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = header << 8 | uint8_t(bytes[i]);
    const uint32_t nan_bits = 0x7fc00000u;
    std::memcpy(&bytes[8 + header + 4 * 5], &nan_bits, 4);  // the sixth value of the first tensor
    const std::string bad = fs::path(w.path).parent_path() / "nan.safetensors";
    std::ofstream(bad, std::ios::binary) << bytes;
    const SafeTensors file(w.path);
    const auto first = std::find_if(file.entries().begin(), file.entries().end(),
                                    [](const SafeTensors::Entry& e) { return e.begin == 0; });
    REQUIRE(first != file.entries().end());
    REQUIRE(first->shape.rank() >= 1);
    REQUIRE(first->shape[first->shape.rank() - 1] > 5);
    std::string element = "5]";  // [0, ..., 0, 5]
    for (size_t k = 1; k < first->shape.rank(); ++k) element = "0, " + element;
    refuse("--model " + kModel + " --weights " + bad + " " + kImage,
           "tensor \"" + first->name + "\" holds NaN at element [" + element);
  }
  const auto [status, help] = run("--help");
  CHECK(status == 0);
  CHECK_THAT(help, Catch::Contains("--weights") && Catch::Contains("--check") && Catch::Contains("--list-devices"));
}

TEST_CASE("classify: the shipped Fashion-MNIST model names the class of every bundled sample image",
          "[classify][shipped]") {
  // The README's main command: the default model (alexnet-fashion with its shipped weights) on
  // samples/data/*.png, each file named after its true class ("...-ankle-boot.png").
  const fs::path dir = fs::path(VKALEX_MODEL_DIR).parent_path() / "samples" / "data";
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".png") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 5);
  // Also with fp16 storage, where the device has it: the same classes, the logits within 1e-2
  // of the fp32 reference on the unrounded weights.
  const bool fp16 = GENERATE(false, true);
  if (fp16 && !test::gpu().device().storage_buffer_16bit) return;
  std::string args = fp16 ? "--top 3 --json --fp16 --check" : "--top 3 --json";
  for (const auto& f : files) args += " " + f;
  const auto [status, out] = run(args, true);
  INFO(out.substr(0, 3000));
  REQUIRE(status == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["model"] == "alexnet-fashion");
  CHECK(j["storage"] == (fp16 ? "f16" : "f32"));
  if (fp16) CHECK(j["check"]["relative_l2"].get<double>() <= 1e-2);
  REQUIRE(j["images"].size() == files.size());
  // "Ankle boot" -> "ankle-boot", "T-shirt/top" -> "t-shirt-top".
  auto slug = [](const std::string& s) {
    std::string o;
    for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) ? char(std::tolower(static_cast<unsigned char>(c))) : '-';
    return o;
  };
  for (const auto& image : j["images"]) {
    const std::string stem = fs::path(image["file"].get<std::string>()).stem().string();
    const std::string label = slug(image["top"][0]["label"].get<std::string>());
    // The class is the part of the name after "fashion-test-NNNN-"; it must start the label.
    const std::string want = stem.substr(stem.find('-', std::string("fashion-test-").size()) + 1);
    INFO(stem << " classified as " << label);
    CHECK(label.rfind(want, 0) == 0);
    CHECK(image["top"].size() == 3);
  }
}

TEST_CASE("every sample fails, saying so, when its standard output cannot be written (/dev/full)", "[cli][errors]") {
  const std::string image = std::string(VKALEX_TEST_DATA_DIR) + "/../../samples/data/fashion-test-0000-ankle-boot.png";
  const std::vector<std::pair<std::string, std::string>> commands = {
      {VKALEX_CLASSIFY_EXE, image},
      {VKALEX_CLASSIFY_EXE, "--json " + image},
      {VKALEX_INFO_EXE, "--list-only"},
      {VKALEX_TRAIN_EXE, "--help"},
      {VKALEX_BENCH_EXE, "--help"},
      {VKALEX_EMBED_EXE, image},
      {VKALEX_EMBED_C_EXE, image},
  };
  for (const auto& [exe, args] : commands) {
    // Standard error still goes to the pipe; standard output to a device that is always full.
    const auto [status, out] = test::run_command("{ " + exe + " " + args + " >/dev/full; }", true);
    INFO(exe << " " << args << "\n" << out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains("cannot write the standard output"));
  }
}
