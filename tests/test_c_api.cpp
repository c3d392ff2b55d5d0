// The C API (vkalex/vkalex.h) against the C++ engine it wraps: the same numbers bit for bit,
// and every error as a status code with a message, never an exception or a crash.
#include "vkalex/vkalex.h"

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "common.hpp"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

const std::string kModelDir = VKALEX_MODEL_DIR;
const std::string kFashion = kModelDir + "/alexnet-fashion.json";
const std::string kSamples = std::string(VKALEX_TEST_DATA_DIR) + "/../../samples/data";

std::string last_error(const vkalex_context* ctx) {
  char buf[1024];
  vkalex_last_error(ctx, buf, sizeof buf);
  return buf;
}

// A context of the C API with the test suite's options.
vkalex_context* make_context() {
  vkalex_context_options o{};
  o.validation = test::options().validation ? 1 : 0;
  vkalex_context* ctx = nullptr;
  REQUIRE(vkalex_context_create(&o, &ctx) == VKALEX_OK);
  REQUIRE(ctx != nullptr);
  return ctx;
}

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("vkalex-capi-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("the C API's forward and classify give the C++ engine's numbers bit for bit", "[capi]") {
  vkalex_context* ctx = make_context();
  vkalex_net* net = nullptr;
  REQUIRE(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_OK);
  vkalex_net_info info{};
  REQUIRE(vkalex_net_get_info(net, &info) == VKALEX_OK);
  CHECK(info.channels == 1);
  CHECK(info.height == 28);
  CHECK(info.classes == 10);
  char name[64];
  size_t length = 0;
  REQUIRE(vkalex_net_class_name(net, 9, name, sizeof name, &length) == VKALEX_OK);
  CHECK(std::string(name) == "Ankle boot");
  CHECK(length == 10);

  const ModelDesc m = load_model(kFashion);
  Context& cpp = test::gpu();
  Net ref(cpp, m);
  ref.load_weights(SafeTensors(m.weights_path));

  // Float forward, batch 3.
  const Shape s = m.input_shape(3);
  const auto x = random_uniform(s.numel(), test::seed(), 2.0f);
  std::vector<float> logits(3 * 10), probs(3 * 10);
  REQUIRE(vkalex_forward(net, x.data(), x.size(), 3, logits.data(), probs.data(), probs.size()) == VKALEX_OK);
  const ForwardResult want = ref.forward(HostTensor(s, x));
  CHECK(logits == want.logits);
  CHECK(probs == want.probabilities);

  // RGB8 images, prepared as the description says: the same as load_image + preprocess_image.
  const std::vector<std::string> files = {kSamples + "/fashion-test-0000-ankle-boot.png",
                                          kSamples + "/fashion-test-0002-trouser.png"};
  std::vector<uint8_t> pixels;
  HostTensor batch(m.input_shape(2));
  uint32_t w = 0, h = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const Image rgb = load_image(files[i], 3);
    w = rgb.width, h = rgb.height;
    pixels.insert(pixels.end(), rgb.pixels.begin(), rgb.pixels.end());
    const HostTensor t = preprocess_image(load_image(files[i], 1), m.preprocess, 1, m.height, m.width);
    std::copy(t.data.begin(), t.data.end(), batch.data.begin() + i * t.data.size());
  }
  std::vector<float> got(2 * 10);
  REQUIRE(vkalex_classify_rgb8(net, pixels.data(), pixels.size(), w, h, 2, got.data(), got.size()) == VKALEX_OK);
  const ForwardResult want2 = ref.forward(batch);
  CHECK(got == want2.probabilities);
  // The shipped weights know these two.
  CHECK(std::max_element(got.begin(), got.begin() + 10) - got.begin() == 9);
  CHECK(std::max_element(got.begin() + 10, got.end()) - got.begin() - 10 == 1);

  CHECK(vkalex_net_destroy(net) == VKALEX_OK);
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
}

TEST_CASE("the C API's training step and checkpoints match the C++ trainer bit for bit", "[capi][train]") {
  const fs::path dir = temp_dir("train");
  const ModelDesc m = load_model(kFashion);
  const uint32_t batch = 4;
  const Shape s = m.input_shape(batch);
  const auto x = random_uniform(s.numel(), test::seed(), 1.0f);
  const std::vector<uint32_t> labels{1, 7, 3, 9};
  vkalex_step_params p{0.01f, 0.9f, 5e-4f, 0, 11};
  StepParams sp;
  sp.lr = p.lr, sp.momentum = p.momentum, sp.weight_decay = p.weight_decay, sp.seed = p.seed;

  Net ref(test::gpu(), m);
  ref.set_parameters(initial_parameters(m, Init::He, 5));
  Trainer ref_trainer(ref, batch);
  std::vector<StepStats> want;
  for (uint32_t step = 0; step < 3; ++step) {
    sp.step = step;
    want.push_back(ref_trainer.step(HostTensor(s, x), labels, sp));
  }

  vkalex_context* ctx = make_context();
  vkalex_net* net = nullptr;
  REQUIRE(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_OK);
  REQUIRE(vkalex_net_initialize(net, 1, 5) == VKALEX_OK);
  vkalex_trainer* trainer = nullptr;
  REQUIRE(vkalex_trainer_create(net, batch, &trainer) == VKALEX_OK);
  vkalex_step_stats st{};
  for (uint32_t step = 0; step < 2; ++step) {
    p.step = step;
    REQUIRE(vkalex_train_step(trainer, x.data(), x.size(), labels.data(), labels.size(), &p, &st) == VKALEX_OK);
    CHECK(st.loss == want[step].loss);
    CHECK(st.correct == want[step].correct);
    CHECK(st.batch == batch);
  }
  const std::string ck = (dir / "ck.safetensors").string();
  REQUIRE(vkalex_checkpoint_save(trainer, ck.c_str()) == VKALEX_OK);
  CHECK(vkalex_trainer_destroy(trainer) == VKALEX_OK);
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);

  // A fresh net and trainer from the checkpoint continue as the uninterrupted run.
  REQUIRE(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_OK);
  REQUIRE(vkalex_trainer_create(net, batch, &trainer) == VKALEX_OK);
  REQUIRE(vkalex_checkpoint_load(trainer, ck.c_str()) == VKALEX_OK);
  p.step = 2;
  REQUIRE(vkalex_train_step(trainer, x.data(), x.size(), labels.data(), labels.size(), &p, &st) == VKALEX_OK);
  CHECK(st.loss == want[2].loss);
  const std::string weights = (dir / "w.safetensors").string();
  REQUIRE(vkalex_net_save_weights(net, weights.c_str()) == VKALEX_OK);
  const auto ref_params = ref.parameters();
  const SafeTensors saved(weights);
  for (const auto& [name, t] : ref_params) {
    INFO(name);
    CHECK(saved.read(name).data == t.data);
  }
  CHECK(vkalex_trainer_destroy(trainer) == VKALEX_OK);
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
  fs::remove_all(dir);
}

TEST_CASE("the C API refuses null pointers, wrong sizes, dead handles and bad files with a status and a message",
          "[capi][errors]") {
  const fs::path dir = temp_dir("errors");
  CHECK(std::string(vkalex_status_name(VKALEX_ERROR_IN_USE)) == "VKALEX_ERROR_IN_USE");
  CHECK(std::string(vkalex_status_name(static_cast<vkalex_status>(99))) == "unknown status");
  CHECK(std::string(vkalex_version()).find('.') != std::string::npos);

  // No context: the thread's last error.
  CHECK(vkalex_context_create(nullptr, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(nullptr), Catch::Contains("out is null"));
  vkalex_context_options bad{};
  bad.device = "no such device anywhere";
  vkalex_context* none = reinterpret_cast<vkalex_context*>(0x1);
  CHECK(vkalex_context_create(&bad, &none) == VKALEX_ERROR_DEVICE);
  CHECK(none == nullptr);
  CHECK_THAT(last_error(nullptr), Catch::Contains("no such device anywhere"));
  CHECK(vkalex_context_create_host(nullptr, nullptr, &none) == VKALEX_ERROR_INVALID_ARGUMENT);
  vkalex_host_device host{};
  CHECK(vkalex_context_create_host(&host, nullptr, &none) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(nullptr), Catch::Contains("not given"));
  host.lock_queue = [](void*) {};  // a lock without its unlock
  host.instance = host.physical_device = host.device = host.queue = reinterpret_cast<void*>(0x1);
  host.get_instance_proc_addr = reinterpret_cast<vkalex_void_function>(0x1);
  CHECK(vkalex_context_create_host(&host, nullptr, &none) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(nullptr), Catch::Contains("go together"));
  CHECK(vkalex_net_get_info(nullptr, nullptr) == VKALEX_ERROR_INVALID_HANDLE);
  CHECK_THAT(last_error(nullptr), Catch::Contains("the net is null"));

  vkalex_context* ctx = make_context();
  vkalex_net* net = nullptr;
  // Bad files.
  CHECK(vkalex_net_create(ctx, (dir / "missing.json").c_str(), nullptr, &net) == VKALEX_ERROR_FILE);
  CHECK(net == nullptr);
  CHECK_THAT(last_error(ctx), Catch::Contains("missing.json"));
  const std::string junk = (dir / "junk.safetensors").string();
  std::ofstream(junk) << "not a safetensors file at all";
  CHECK(vkalex_net_create(ctx, kFashion.c_str(), junk.c_str(), &net) == VKALEX_ERROR_FILE);
  CHECK_THAT(last_error(ctx), Catch::Contains("junk.safetensors"));
  CHECK(vkalex_net_create(ctx, nullptr, nullptr, &net) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_net_create(ctx, kFashion.c_str(), nullptr, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("out is null"));

  REQUIRE(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_OK);
  // Inside the host's frame: nothing to record or read before an input, and the input checked.
  CHECK(vkalex_net_record_forward(net, reinterpret_cast<void*>(0x1)) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("no input yet"));
  vkalex_buffer_range range{};
  CHECK(vkalex_net_output_buffers(net, &range, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_net_output_buffers(net, nullptr, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_net_record_forward(net, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("command_buffer is null"));
  CHECK(vkalex_net_set_input_buffer(net, &range, 0, 1) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("VK_NULL_HANDLE"));
  range = {0x1234, 4, 28 * 28 * 4};
  CHECK(vkalex_net_set_input_buffer(net, &range, 0, 1) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("minStorageBufferOffsetAlignment"));
  range = {0x1234, 0, 28 * 28 * 4 - 1};
  CHECK(vkalex_net_set_input_buffer(net, &range, 0, 1) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_net_set_input_buffer(net, nullptr, 0, 1) == VKALEX_ERROR_INVALID_ARGUMENT);
  float few[10];
  CHECK(vkalex_net_read_output(net, few, nullptr, 10) == VKALEX_ERROR_INVALID_ARGUMENT);
  std::vector<uint8_t> rgb(3 * 28 * 28);
  CHECK(vkalex_net_preprocess_rgb8(net, rgb.data(), rgb.size(), 28, 28, 1, few, 10) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("input_count 10"));
  // Wrong sizes and null pointers.
  std::vector<float> x(2 * 28 * 28), out(20);
  CHECK(vkalex_forward(net, x.data(), x.size() - 1, 2, nullptr, out.data(), out.size()) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("input_count"));
  CHECK(vkalex_forward(net, x.data(), x.size(), 2, nullptr, out.data(), 19) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("output_count 19"));
  CHECK(vkalex_forward(net, nullptr, x.size(), 2, nullptr, out.data(), out.size()) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_forward(net, x.data(), x.size(), 2, nullptr, nullptr, out.size()) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_forward(net, x.data(), 0, 0, nullptr, out.data(), 0) == VKALEX_ERROR_INVALID_ARGUMENT);
  std::vector<uint8_t> px(3 * 28 * 28);
  CHECK(vkalex_classify_rgb8(net, px.data(), px.size(), 28, 28, 2, out.data(), out.size()) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("pixels_size"));
  CHECK(vkalex_classify_rgb8(net, px.data(), px.size(), 28, 28, 1, out.data(), out.size()) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("probabilities_count"));
  CHECK(vkalex_classify_rgb8(net, px.data(), px.size(), 100000, 28, 1, out.data(), 10) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("beyond the limit"));
  CHECK(vkalex_net_class_name(net, 10, nullptr, 0, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK(vkalex_net_initialize(net, 7, 1) == VKALEX_ERROR_INVALID_ARGUMENT);

  vkalex_trainer* trainer = nullptr;
  CHECK(vkalex_trainer_create(net, 0, &trainer) == VKALEX_ERROR_INVALID_ARGUMENT);
  REQUIRE(vkalex_trainer_create(net, 2, &trainer) == VKALEX_OK);
  const uint32_t labels[2] = {1, 10};
  vkalex_step_params p{0.01f, 0.9f, 0, 0, 0};
  CHECK(vkalex_train_step(trainer, x.data(), x.size(), labels, 2, &p, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("label 10 of image 1"));
  CHECK(vkalex_train_step(trainer, x.data(), x.size(), labels, 1, &p, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  p.lr = -5;
  const uint32_t ok_labels[2] = {1, 2};
  CHECK(vkalex_train_step(trainer, x.data(), x.size(), ok_labels, 2, &p, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(last_error(ctx), Catch::Contains("lr must be positive"));
  CHECK(vkalex_train_step(trainer, x.data(), x.size(), ok_labels, 2, nullptr, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);
  // Checkpoints: missing, not a checkpoint, another model's.
  CHECK(vkalex_checkpoint_load(trainer, (dir / "none.safetensors").c_str()) == VKALEX_ERROR_FILE);
  CHECK(vkalex_checkpoint_load(trainer, (kModelDir + "/alexnet-fashion.safetensors").c_str()) == VKALEX_ERROR_FILE);
  CHECK_THAT(last_error(ctx), Catch::Contains("not a vkalex checkpoint"));
  save_safetensors((dir / "other.safetensors").string(), {}, {{"format", "vkalex checkpoint 1"}, {"model", "lenet"}});
  CHECK(vkalex_checkpoint_load(trainer, (dir / "other.safetensors").c_str()) == VKALEX_ERROR_FILE);
  CHECK_THAT(last_error(ctx), Catch::Contains("checkpoint of lenet"));
  CHECK(vkalex_checkpoint_save(trainer, (dir / "no/such/dir/ck.safetensors").c_str()) == VKALEX_ERROR_FILE);
  CHECK(vkalex_checkpoint_save(trainer, nullptr) == VKALEX_ERROR_INVALID_ARGUMENT);

  // Non-finite input values are refused by index; the outputs are left untouched.
  {
    std::vector<float> nan_x = x;
    nan_x[7] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> untouched(out.size(), -1.0f);
    CHECK(vkalex_forward(net, nan_x.data(), nan_x.size(), 2, nullptr, untouched.data(), untouched.size()) ==
          VKALEX_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(last_error(ctx), Catch::Contains("input[7] is NaN"));
    CHECK(untouched == std::vector<float>(out.size(), -1.0f));
  }
  // In use: a context with a live net, a net with a live trainer.
  CHECK(vkalex_context_destroy(ctx) == VKALEX_ERROR_IN_USE);
  CHECK_THAT(last_error(ctx), Catch::Contains("1 net(s)"));
  CHECK(vkalex_net_destroy(net) == VKALEX_ERROR_IN_USE);
  CHECK(vkalex_trainer_destroy(trainer) == VKALEX_OK);
  CHECK(vkalex_trainer_destroy(trainer) == VKALEX_ERROR_INVALID_HANDLE);
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);
  // Destroyed handles.
  CHECK(vkalex_forward(net, x.data(), x.size(), 2, nullptr, out.data(), out.size()) == VKALEX_ERROR_INVALID_HANDLE);
  CHECK_THAT(last_error(nullptr), Catch::Contains("not a live handle"));
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
  CHECK(vkalex_context_destroy(ctx) == VKALEX_ERROR_INVALID_HANDLE);
  CHECK(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_ERROR_INVALID_HANDLE);
  CHECK_THAT(last_error(ctx), Catch::Contains("not a live handle"));
  // Buffers: cut to size, NUL-terminated, full length returned.
  char small[8];
  const size_t full = vkalex_last_error(nullptr, small, sizeof small);
  CHECK(full > 7);
  CHECK(std::strlen(small) == 7);
  CHECK(vkalex_last_error(nullptr, nullptr, 0) == full);
  fs::remove_all(dir);
}

TEST_CASE("the C API serialises calls on one context from many threads", "[capi][threads]") {
  vkalex_context* ctx = make_context();
  vkalex_net* net = nullptr;
  REQUIRE(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_OK);
  const uint64_t n = 28 * 28;
  std::vector<std::vector<float>> inputs, want;
  for (int i = 0; i < 2; ++i) {
    inputs.push_back(random_uniform(n, test::seed() + i, 1.0f));
    want.emplace_back(10);
    REQUIRE(vkalex_forward(net, inputs[i].data(), n, 1, nullptr, want[i].data(), 10) == VKALEX_OK);
  }
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out(10);
      for (int k = 0; k < 6; ++k) {
        if (vkalex_forward(net, inputs[t].data(), n, 1, nullptr, out.data(), 10) != VKALEX_OK) ++failed;
        else if (out != want[t]) ++wrong;
        // The other thread's errors on the same context do not disturb this one's calls.
        if (vkalex_forward(net, inputs[t].data(), n - 1, 1, nullptr, out.data(), 10) != VKALEX_ERROR_INVALID_ARGUMENT) ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
}

TEST_CASE("the C API reports a batch beyond the device memory as VKALEX_ERROR_OUT_OF_MEMORY, naming what fits",
          "[capi][errors][memory]") {
  const test::ScopedEnv limit("VKALEX_MEMORY_LIMIT", "8");
  vkalex_context* ctx = make_context();
  vkalex_net* net = nullptr;
  REQUIRE(vkalex_net_create(ctx, kFashion.c_str(), nullptr, &net) == VKALEX_OK);
  const uint32_t batch = 400;
  std::vector<float> x(size_t(batch) * 28 * 28, 0.5f), probs(size_t(batch) * 10);
  CHECK(vkalex_forward(net, x.data(), x.size(), batch, nullptr, probs.data(), probs.size()) ==
        VKALEX_ERROR_OUT_OF_MEMORY);
  CHECK_THAT(last_error(ctx), Catch::Contains("batch 400 needs") && Catch::Contains("at most batch"));
  // The net still works at a batch that fits.
  CHECK(vkalex_forward(net, x.data(), 28 * 28 * 4, 4, nullptr, probs.data(), 40) == VKALEX_OK);
  CHECK(vkalex_net_destroy(net) == VKALEX_OK);
  CHECK(vkalex_context_destroy(ctx) == VKALEX_OK);
}
