// Training: a whole step against the CPU reference, determinism, overfitting real data,
// checkpoint and resume, and data files refused clearly.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common.hpp"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

const std::string kModelDir = VKALEX_MODEL_DIR;

std::vector<uint32_t> labels_for(uint32_t n, uint32_t classes, uint64_t seed) {
  std::vector<uint32_t> l(n);
  const auto r = random_uniform(n, seed);
  for (uint32_t i = 0; i < n; ++i) l[i] = std::min(classes - 1, uint32_t((r[i] + 1) / 2 * classes));
  return l;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

std::vector<uint8_t> idx_header(uint8_t rank, std::vector<uint32_t> dims) {
  std::vector<uint8_t> h{0, 0, 8, rank};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) h.push_back(uint8_t(d >> s));
  }
  return h;
}

}  // namespace

namespace {

// One alexnet2012 training step (batch 2, dropout on, random weights and images from `seed`)
// on `trainer` against the CPU reference's step. Returns how many near ties the reference
// took from the GPU. Reuses the net and trainer: parameters and momentum are reset here.
size_t check_alexnet2012_step(const ModelDesc& m, Net& net, Trainer& trainer, uint64_t seed) {
  auto params = random_parameters(m, seed);
  net.set_parameters(params);
  std::map<std::string, HostTensor> zero;
  for (const auto& [name, t] : params) zero.emplace(name, HostTensor(t.shape));
  trainer.set_momentum(zero);
  const HostTensor x(m.input_shape(2), random_uniform(m.input_shape(2).numel(), seed + 1, 2.0f));
  const auto labels = labels_for(2, m.classes, seed + 2);
  StepParams sp;
  sp.step = 3;
  sp.seed = 77;
  sp.lr = 0.1f;  // large, so that the update is a large part of the new weights
  const StepStats gpu = trainer.step(x, labels, sp);

  auto cpu_params = params;
  auto cpu_momentum = zero;
  // Near ties of ReLU and max pool follow the GPU's decisions (see train_step_cpu): on most
  // seeds none, on some one of about a million decisions.
  size_t followed = 0;
  const ForwardRecord gpu_forward = trainer.last_forward();
  const StepStats cpu = train_step_cpu(m, cpu_params, cpu_momentum, x, labels, sp, &gpu_forward, &followed);
  INFO("seed " << seed << ", near ties that followed the GPU: " << followed);
  CHECK(followed <= 20);
  CHECK(gpu.loss == Approx(cpu.loss).epsilon(1e-5));
  CHECK(gpu.correct == cpu.correct);
  const auto got = net.parameters();
  const auto got_v = trainer.momentum();
  for (const auto& [name, want] : cpu_params) {
    INFO(name);
    CHECK(relative_l2(got.at(name).data, want.data) <= 1e-4);
    // The updates themselves (the momentum after one step), not just the weights they moved.
    CHECK(relative_l2(got_v.at(name).data, cpu_momentum.at(name).data) <= 1e-4);
  }
  return followed;
}

}  // namespace

TEST_CASE("one alexnet2012 training step, batch 2, matches the CPU reference", "[train][alexnet]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet2012.json");
  Net net(ctx, m);
  Trainer trainer(ctx, net, 2);
  check_alexnet2012_step(m, net, trainer, test::seed());
  test::require_no_validation_messages(ctx);
}

// Not in the suite (minutes per ten seeds): the same step over many seeds in one process,
// $VKALEX_SEED_COUNT of them (default 200) from the run's seed on; prints one line per seed.
TEST_CASE("many seeds of the alexnet2012 training step", "[.many-seeds]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet2012.json");
  Net net(ctx, m);
  Trainer trainer(ctx, net, 2);
  const char* env = std::getenv("VKALEX_SEED_COUNT");
  const uint64_t count = env ? std::strtoull(env, nullptr, 10) : 200;
  size_t with_ties = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t seed = test::seed() + i * 1000;  // the step uses seed, seed + 1, seed + 2
    const size_t followed = check_alexnet2012_step(m, net, trainer, seed);
    with_ties += followed > 0;
    std::printf("seed %llu: %zu near ties followed\n", static_cast<unsigned long long>(seed), followed);
    std::fflush(stdout);
  }
  std::printf("%llu seeds, %zu with near ties\n", static_cast<unsigned long long>(count), with_ties);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("the same seed gives bit-identical weights after 20 steps", "[train]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  const auto data = load_fashion_mnist("train");
  BatchLoader loader(*data, 8, true, true, Augment{2, true, 0}, m.preprocess, m.height, m.width, 5);
  std::vector<std::map<std::string, HostTensor>> results;
  for (int run = 0; run < 2; ++run) {
    Net net(ctx, m);
    net.set_parameters(initial_parameters(m, Init::He, 5));
    Trainer trainer(ctx, net, 8);
    for (uint32_t step = 0; step < 20; ++step) {
      const auto b = loader.get(0, step);
      StepParams sp;
      sp.step = step;
      sp.seed = 5;
      trainer.step(b.images, b.labels, sp);
    }
    // Recorded once, replayed per step.
    CHECK(trainer.record_count() == 1);
    CHECK(trainer.submit_count() == 20);
    results.push_back(net.parameters());
  }
  for (const auto& [name, t] : results[0]) {
    INFO(name);
    CHECK(std::memcmp(t.data.data(), results[1].at(name).data.data(), t.data.size() * 4) == 0);
  }
  CHECK(results[0].at("conv1.weight").data != initial_parameters(m, Init::He, 5).at("conv1.weight").data);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("overfitting 16 Fashion-MNIST images drops the loss tenfold", "[train][fashion]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  const auto data = load_fashion_mnist("train");
  BatchLoader loader(*data, 16, false, true, Augment{}, m.preprocess, m.height, m.width, 0);
  const auto batch = loader.get(0, 0);
  Net net(ctx, m);
  net.set_parameters(initial_parameters(m, Init::He, test::seed()));
  Trainer trainer(ctx, net, 16);
  StepParams sp;
  sp.seed = 1;
  sp.lr = 0.01f;
  double first = 0, last = 0;
  uint32_t steps = 0;
  for (; steps < 150; ++steps) {
    sp.step = steps;
    const double loss = trainer.step(batch.images, batch.labels, sp).loss;
    if (steps == 0) first = loss;
    last = loss;
    if (last <= first / 10) break;
  }
  INFO("loss " << first << " -> " << last << " after " << steps + 1 << " steps, seed " << test::seed());
  CHECK(last <= first / 10);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("a training step refuses labels out of range and wrong shapes", "[train][errors]") {
  Context& ctx = test::gpu();
  const ModelDesc m = load_model(kModelDir + "/alexnet-fashion.json");
  Net net(ctx, m);
  Trainer trainer(ctx, net, 2);
  const HostTensor x(m.input_shape(2));
  CHECK_THROWS_WITH(trainer.step(x, {3, 10}, StepParams{}), Catch::Contains("label 10 of image 1 is out of range"));
  CHECK_THROWS_WITH(trainer.step(x, {3}, StepParams{}), Catch::Contains("1 labels for a batch of 2"));
  CHECK_THROWS_WITH(trainer.step(HostTensor(m.input_shape(3)), {1, 2, 3}, StepParams{}), Catch::Contains("[3, 1, 28, 28]"));
  test::require_no_validation_messages(ctx);
}

TEST_CASE("Fashion-MNIST loads with its header checked", "[data]") {
  const auto train = load_fashion_mnist("train");
  const auto test_set = load_fashion_mnist("test");
  CHECK(train->size() == 60000);
  CHECK(test_set->size() == 10000);
  CHECK(train->classes() == 10);
  const Image img = train->image(0);
  CHECK(img.width == 28);
  CHECK(img.height == 28);
  std::vector<size_t> per_class(10);
  for (size_t i = 0; i < test_set->size(); ++i) ++per_class.at(test_set->label(i));
  for (size_t c : per_class) CHECK(c == 1000);
  CHECK_THROWS_WITH(load_fashion_mnist("validation"), Catch::Contains("\"validation\""));
}

TEST_CASE("damaged IDX files, wrong label counts and bad folders are refused clearly", "[data][errors]") {
  test::TempDir dir;
  const std::string images = dir / "images.gz", labels = dir / "labels.gz";
  std::vector<uint8_t> im = idx_header(3, {4, 2, 2}), lb = idx_header(1, {4});
  im.resize(im.size() + 16, 7);
  lb.insert(lb.end(), {0, 1, 2, 3});
  write_gz(images, im);
  write_gz(labels, lb);
  const std::vector<std::string> names{"a", "b", "c", "d"};
  CHECK(load_idx(images, labels, names)->size() == 4);

  SECTION("truncated images") {
    auto cut = im;
    cut.resize(cut.size() - 3);
    write_gz(images, cut);
    CHECK_THROWS_WITH(load_idx(images, labels, names), Catch::Contains("images.gz") && Catch::Contains("truncated"));
  }
  SECTION("bad magic") {
    auto bad = im;
    bad[2] = 0x0d;  // floats, not bytes
    write_gz(images, bad);
    CHECK_THROWS_WITH(load_idx(images, labels, names), Catch::Contains("bad magic"));
  }
  SECTION("wrong rank") {
    write_gz(labels, idx_header(2, {4, 1}));
    CHECK_THROWS_WITH(load_idx(images, labels, names), Catch::Contains("labels.gz") && Catch::Contains("2 dimensions"));
  }
  SECTION("wrong label count") {
    auto three = idx_header(1, {3});
    three.insert(three.end(), {0, 1, 2});
    write_gz(labels, three);
    CHECK_THROWS_WITH(load_idx(images, labels, names), Catch::Contains("3 labels for 4 images"));
  }
  SECTION("label out of range") {
    auto high = lb;
    high.back() = 9;
    write_gz(labels, high);
    CHECK_THROWS_WITH(load_idx(images, labels, names), Catch::Contains("label 9 of item 3 is out of range"));
  }
  SECTION("corrupt gzip") {
    std::ofstream(images, std::ios::binary) << std::string("\x1f\x8b\x08\x00garbage that is not deflate", 30);
    CHECK_THROWS_WITH(load_idx(images, labels, names), Catch::Contains("images.gz"));
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(load_idx(dir / "none.gz", labels, names), Catch::Contains("none.gz: cannot open the IDX: No such file"));
  }
  SECTION("image folders") {
    fs::create_directories(dir.path / "root/cat");
    fs::create_directories(dir.path / "root/dog");
    CHECK_THROWS_WITH(load_image_folder(dir / "root", 3, 8), Catch::Contains("cat: class folder holds no images"));
    CHECK_THROWS_WITH(load_image_folder(dir / "nothing", 3, 8), Catch::Contains("not a folder"));
    fs::create_directories(dir.path / "flat");
    CHECK_THROWS_WITH(load_image_folder(dir / "flat", 3, 8), Catch::Contains("no class folders"));
    fs::copy_file(VKALEX_TEST_DATA_DIR "/small.png", dir.path / "root/cat/a.png");
    fs::copy_file(VKALEX_TEST_DATA_DIR "/small.png", dir.path / "root/dog/b.PNG");
    const auto folder = load_image_folder(dir / "root", 3, 8);
    CHECK(folder->size() == 2);
    CHECK(folder->class_names() == std::vector<std::string>{"cat", "dog"});
    CHECK(folder->label(1) == 1);
    CHECK(folder->image(0).width == 8);
  }
}

TEST_CASE("batches depend only on seed, epoch and index, and augment as asked", "[data]") {
  const auto data = load_fashion_mnist("test");
  Preprocess p;
  p.mean = {0};
  p.std = {1};
  BatchLoader a(*data, 4, true, true, Augment{2, true, 0}, p, 28, 28, 9);
  BatchLoader b(*data, 4, true, true, Augment{2, true, 0}, p, 28, 28, 9);
  const auto b3 = a.get(1, 3);
  a.get(0, 0);
  CHECK(b.get(1, 3).images.data == b3.images.data);  // asked out of order, the same batch
  CHECK(a.get(1, 3).labels == b3.labels);
  CHECK(a.get(2, 3).labels != b3.labels);  // another epoch, another order
  // No augmentation and no shuffle: exactly the dataset's pixels / 255.
  BatchLoader plain(*data, 2, false, false, Augment{}, p, 28, 28, 0);
  const auto first = plain.get(0, 0);
  const Image img = data->image(0);
  for (size_t i = 0; i < 28 * 28; ++i) REQUIRE(first.images.data[i] == img.pixels[i] / 255.0f);
  CHECK(first.labels[0] == data->label(0));
  CHECK(plain.batches_per_epoch() == 5000);
}

TEST_CASE("shards of a batch are its images, in order, augmented as in the whole batch", "[data]") {
  const auto data = load_fashion_mnist("test");
  Preprocess p;
  p.mean = {0.3f};
  p.std = {0.5f};
  BatchLoader whole(*data, 7, true, true, Augment{2, true, 0}, p, 28, 28, 4);
  const uint64_t image = 28 * 28;
  for (const auto& [first, count] : {std::pair<uint32_t, uint32_t>{0, 3}, {3, 4}, {6, 1}, {0, 7}}) {
    BatchLoader shard(*data, 7, true, true, Augment{2, true, 0}, p, 28, 28, 4);
    shard.shard(first, count);
    for (auto [epoch, index] : {std::pair<uint32_t, size_t>{0, 0}, {0, 1}, {2, 5}}) {
      INFO("shard " << first << "+" << count << ", epoch " << epoch << " batch " << index);
      const auto all = whole.get(epoch, index);
      const auto part = shard.get(epoch, index);
      REQUIRE(part.images.shape == Shape{count, 1, 28, 28});
      CHECK(std::vector<float>(all.images.data.begin() + first * image, all.images.data.begin() + (first + count) * image) ==
            part.images.data);
      CHECK(std::vector<uint32_t>(all.labels.begin() + first, all.labels.begin() + first + count) == part.labels);
    }
  }
  BatchLoader bad(*data, 7, true, true, Augment{}, p, 28, 28, 4);
  CHECK_THROWS_WITH(bad.shard(5, 3), Catch::Contains("images 5 to 7 are not within a batch of 7"));
  CHECK_THROWS_WITH(bad.shard(0, 0), Catch::Contains("a shard of no images"));
}

TEST_CASE("train: checkpoint and resume equal an uninterrupted run", "[train][cli]") {
  test::TempDir dir;
  const std::string common = std::string(VKALEX_TRAIN_EXE) + " --model " + kModelDir +
                             "/alexnet-fashion.json --data fashion-mnist --limit 48 --test-limit 32 --batch 16 "
                             "--epochs 2 --seed 3 --augment pad:2,flip --checkpoint-every 1 --out ";
  const auto [s1, o1] = test::run_command(common + (dir / "whole"));
  INFO(o1);
  REQUIRE(s1 == 0);
  // Interrupted in the middle of the second epoch, then resumed.
  const auto [s2, o2] = test::run_command(common + (dir / "parts") + " --stop-after 4");
  INFO(o2);
  REQUIRE(s2 == 0);
  CHECK(!fs::exists(dir.path / "parts/weights.safetensors"));
  const auto [s3, o3] = test::run_command(common + (dir / "parts") + " --resume " + (dir / "parts/checkpoint.safetensors"));
  INFO(o3);
  REQUIRE(s3 == 0);
  const SafeTensors whole(dir / "whole/weights.safetensors"), parts(dir / "parts/weights.safetensors");
  for (const auto& e : whole.entries()) {
    INFO(e.name);
    CHECK(whole.read(e.name).data == parts.read(e.name).data);
  }
  // The same rows, but for the timing columns (images per second, seconds).
  auto rows_of = [](const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> rows;
    std::string line;
    while (std::getline(in, line)) {
      size_t cut = 0;
      for (int i = 0; i < 7; ++i) cut = line.find(',', cut) + 1;
      rows.push_back(line.substr(0, cut));
    }
    return rows;
  };
  const auto whole_rows = rows_of(dir / "whole/metrics.csv");
  CHECK(whole_rows == rows_of(dir / "parts/metrics.csv"));
  REQUIRE(!whole_rows.empty());
  CHECK(whole_rows[0].rfind("epoch,step,lr,train_loss", 0) == 0);
  const size_t rows = whole_rows.size() - 1;
  CHECK(rows == 2);
  CHECK(fs::file_size(dir.path / "whole/loss.svg") > 500);
  // A checkpoint of another run configuration is refused.
  const auto [s4, o4] = test::run_command(common + (dir / "other") + " --seed 4 --resume " + (dir / "parts/checkpoint.safetensors"));
  CHECK(s4 == 1);
  CHECK_THAT(o4, Catch::Contains("another --seed"));
  // --eval-only re-evaluates saved weights.
  const auto [s5, o5] = test::run_command(std::string(VKALEX_TRAIN_EXE) + " --model " + kModelDir +
                                          "/alexnet-fashion.json --data fashion-mnist --test-limit 32 --eval-only --weights " +
                                          (dir / "whole/weights.safetensors"));
  INFO(o5);
  CHECK(s5 == 0);
  CHECK_THAT(o5, Catch::Contains("accuracy") && Catch::Contains("32 test images"));
}

TEST_CASE("train: bad arguments give a clear message and exit status 1", "[train][cli][errors]") {
  const std::string exe = VKALEX_TRAIN_EXE;
  const std::string model = " --model " + kModelDir + "/alexnet-fashion.json";
  for (const auto& [args, what] : std::vector<std::pair<std::string, std::string>>{
           {"--data fashion-mnist", "--model is required"},
           {model, "--data is required"},
           {model + " --data fashion-mnist --batch 0", "--batch needs"},
           {model + " --data fashion-mnist --lr -1", "--lr needs"},
           {model + " --data fashion-mnist --eval-only", "--eval-only needs --weights"},
           {model + " --data fashion-mnist --init xavier", "--init takes"},
           {model + " --data fashion-mnist --augment rotate", "--augment takes"},
           {model + " --data /nonexistent", "/nonexistent/train: not a folder"},
           {" --model " + kModelDir + "/alexnet2012.json --data fashion-mnist", "Fashion-MNIST is 1x28x28"},
           {model + " --data fashion-mnist --resume /nonexistent.safetensors", "/nonexistent.safetensors"},
           {model + " --data fashion-mnist --frobnicate", "unknown option"}}) {
    const auto [status, out] = test::run_command(exe + " " + args);
    INFO(args << "\n" << out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains(what));
  }
}

TEST_CASE("train: a run that diverges stops with an error and keeps its last good checkpoint", "[train][cli][errors]") {
  test::TempDir dir;
  // A learning rate of 100 with momentum 0.99 turns the loss to NaN within a few steps.
  const auto [status, out] = test::run_command(std::string(VKALEX_TRAIN_EXE) + " --model " + kModelDir +
                                               "/alexnet-fashion.json --data fashion-mnist --limit 256 --test-limit 16 "
                                               "--batch 16 --epochs 2 --lr 100 --momentum 0.99 --checkpoint-every 1 --out " +
                                               (dir / "run"));
  INFO(out);
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("became nan") || Catch::Contains("training diverged"));
  CHECK(!fs::exists(dir.path / "run/weights.safetensors"));
  // The checkpoint left behind is whole, and every value in it finite (reading checks).
  REQUIRE(fs::exists(dir.path / "run/checkpoint.safetensors"));
  const SafeTensors ck(dir / "run/checkpoint.safetensors");
  for (const auto& e : ck.entries()) CHECK_NOTHROW(ck.read(e.name));
}

TEST_CASE("train: a second run on the same --out is refused by name while the first holds it", "[train][cli][errors]") {
  test::TempDir dir;
  const std::string out = dir / "run";
  fs::create_directories(out);
  const std::string sentinel = out + "/checkpoint.safetensors";
  std::ofstream(sentinel) << "the first run's checkpoint";
  // The first run: this process, holding the directory's lock as train does.
  const int fd = ::open((out + "/.train.lock").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  const std::string pid = std::to_string(::getpid());
  REQUIRE(::pwrite(fd, pid.data(), pid.size(), 0) == ssize_t(pid.size()));
  const std::string command = std::string(VKALEX_TRAIN_EXE) + " --model " + kModelDir +
                              "/alexnet-fashion.json --data fashion-mnist --limit 16 --test-limit 16 --batch 16 "
                              "--epochs 1 --out " + out;
  const auto [status, text] = test::run_command(command);
  INFO(text);
  CHECK(status == 1);
  CHECK_THAT(text, Catch::Contains(out + " is in use by another train run (pid " + pid + ")"));
  std::ifstream in(sentinel);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "the first run's checkpoint");
  CHECK(!fs::exists(out + "/weights.safetensors"));
  // Once the first run has ended, the directory is free again.
  ::close(fd);
  const auto [after, text2] = test::run_command(command);
  INFO(text2);
  CHECK(after == 0);
  CHECK(fs::exists(out + "/weights.safetensors"));
}

TEST_CASE("train: --stop-after writes the checkpoint it names, and a checkpoint's training state is checked field by field",
          "[train][cli][errors]") {
  test::TempDir dir;
  const std::string common = std::string(VKALEX_TRAIN_EXE) + " --model " + kModelDir +
                             "/alexnet-fashion.json --data fashion-mnist --limit 48 --test-limit 16 --batch 16 "
                             "--epochs 2 --out " + (dir / "run");
  // No --checkpoint-every: the stop itself writes the checkpoint of step 2.
  const auto [stopped, text] = test::run_command(common + " --stop-after 2");
  INFO(text);
  REQUIRE(stopped == 0);
  const std::string ck = dir / "run/checkpoint.safetensors";
  REQUIRE(fs::exists(ck));
  std::map<std::string, HostTensor> tensors;
  std::map<std::string, std::string> meta;
  {
    const SafeTensors f(ck);
    for (const auto& e : f.entries()) tensors.emplace(e.name, f.read(e.name));
    meta = f.metadata();
  }
  const nlohmann::json state = nlohmann::json::parse(meta.at("state"));
  CHECK(state.at("step") == 2);
  const auto [resumed, text2] = test::run_command(common + " --resume " + ck);
  INFO(text2);
  CHECK(resumed == 0);
  // Damaged states: each refused by the field's name.
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"lr", -5}, {"lr", "fast"}, {"step", -1}, {"step", 1000000}, {"bad_epochs", 0.5},
           {"epoch_correct", -1}, {"seconds", 1e300}, {"history", "none"}, {"best_test_loss", -1}}) {
    nlohmann::json bad = state;
    bad[key] = value;
    std::map<std::string, std::string> m = meta;
    m["state"] = bad.dump();
    const std::string path = dir / "bad.safetensors";
    save_safetensors(path, tensors, m);
    const auto [status, out] = test::run_command(common + "-bad --resume " + path);
    INFO(key << " = " << value.dump() << "\n" << out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains("checkpoint state: \"" + key + "\""));
  }
  nlohmann::json no_lr = state;
  no_lr.erase("lr");
  meta["state"] = no_lr.dump();
  save_safetensors(dir / "bad.safetensors", tensors, meta);
  const auto [status, out] = test::run_command(common + "-bad --resume " + (dir / "bad.safetensors"));
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("\"lr\" must be a number above") && Catch::Contains("missing"));
}

TEST_CASE("a seed beyond 2^64 - 1 is refused, not clamped", "[cli][errors]") {
  const auto [bench, out] = test::run_command(std::string(VKALEX_BENCH_EXE) + " --seed 18446744073709551616");
  INFO(out);
  CHECK(bench == 1);
  CHECK_THAT(out, Catch::Contains("--seed needs a whole number"));
  const auto [info, out2] = test::run_command(std::string(VKALEX_INFO_EXE) + " --seed 99999999999999999999");
  INFO(out2);
  CHECK(info == 2);
  CHECK_THAT(out2, Catch::Contains("--seed needs a whole number"));
}
