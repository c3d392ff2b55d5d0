// samples/train: trains a model description with the paper's SGD on Fashion-MNIST or a folder
// of images, evaluates every epoch, and keeps crash-safe checkpoints it can resume from.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/mpi.hpp"
#include "vkalex/vkalex.hpp"

namespace fs = std::filesystem;

namespace {

void usage(FILE* out) {
  std::fprintf(out,
      "usage: train --model FILE.json --data fashion-mnist|DIR [options]\n"
      "       train --model FILE.json --data fashion-mnist|DIR --eval-only --weights FILE\n"
      "       mpirun -n N train ...   (data parallel over N processes, see below)\n"
      "\n"
      "Trains the model with SGD (momentum, weight decay) on the GPU. Each step (forward with\n"
      "dropout, loss, backward, update) is recorded once and replayed. After every epoch the\n"
      "test split is evaluated, metrics.csv and loss.svg are written, and a checkpoint is saved\n"
      "atomically; --resume continues from one with the same result as a run never stopped.\n"
      "\n"
      "  --data fashion-mnist  Debian's dataset-fashion-mnist (train 60,000 / test 10,000)\n"
      "  --data DIR           DIR/train/CLASS/*.jpg and DIR/test/CLASS/*.jpg (classes sorted)\n"
      "  --epochs N           epochs to train in all (default 10)\n"
      "  --batch B            batch size (default 128)\n"
      "  --lr X               learning rate (default 0.01)\n"
      "  --momentum X         (default 0.9)\n"
      "  --weight-decay X     (default 0.0005)\n"
      "  --lr-steps E1,E2     divide the learning rate by 10 at these epochs (default none)\n"
      "  --patience N         divide it by 10 when the test loss has not improved for N epochs\n"
      "                       (default 2; 0 turns it off)\n"
      "  --init paper|he      paper: N(0, 0.01), biases from the description; he: N(0, 2/fan_in)\n"
      "                       (default paper)\n"
      "  --augment pad:N,flip,lighting:X  random crops after padding N pixels, horizontal\n"
      "                       flips, PCA colour lighting (RGB); default none\n"
      "  --limit N            train on the first N images only (quick runs)\n"
      "  --test-limit N       evaluate on the first N test images only\n"
      "  --stop-after K       stop after K steps in all, as if interrupted (for testing --resume)\n"
      "  --seed S             seed of initialisation, order, augmentation and dropout (default 1)\n"
      "  --device N|NAME      device index or part of its name\n"
      "  --out DIR            where metrics.csv, loss.svg, checkpoint.safetensors and\n"
      "                       weights.safetensors go (default runs/MODEL_NAME)\n"
      "  --checkpoint-every K also checkpoint every K steps (default: each epoch only)\n"
      "  --resume FILE        continue from a checkpoint\n"
      "  --eval-only          evaluate --weights on the test split and exit\n"
      "  --weights FILE       weights for --eval-only\n"
      "  --bucket-kib K       MPI runs: gradients are summed in buckets of at least K KiB,\n"
      "                       each as soon as the backward pass has made it (default 4096)\n"
      "  --help               this text\n"
      "\n"
      "Started by mpirun (Open MPI) with N processes, every process trains on its shard of\n"
      "each batch of --batch images (the global batch: the results do not depend on N) and\n"
      "the gradients are summed over the processes while the backward pass goes on; all\n"
      "apply the same update. Every process reads --data itself; rank 0 alone writes the\n"
      "output folder, and a run resumes from its checkpoint with another N. An error in any\n"
      "process ends them all.\n"
      "\n"
      "Exit status: 0 on success, 1 on any error.\n");
}

// "train", or "train (rank R of N)" in an MPI run: the prefix of every message.
std::string program = "train";

[[noreturn]] void die(const std::string& message) { vkalex_samples::die(program.c_str(), message); }

// One run per output directory: an exclusive lock on OUT/.train.lock, held until the process
// ends (the kernel releases it however the run ends), holding the owner's pid for the message.
void lock_output_directory(const std::string& out) {
  const std::string path = out + "/.train.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) die(path + ": cannot open the output directory's lock: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char owner[32] = {0};
    const ssize_t n = ::pread(fd, owner, sizeof owner - 1, 0);
    const std::string pid = n > 0 ? std::string(owner, size_t(n)) : std::string("unknown");
    die(out + " is in use by another train run (pid " + pid + "); give another --out, or wait for it to end");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    die(path + ": cannot write the output directory's lock: " + std::strerror(errno));
  }
  // fd stays open (and locked) until the process ends.
}

double parse_number(const std::string& flag, const std::string& v, double lo, double hi) {
  return vkalex_samples::parse_number("train", flag, v, lo, hi);
}

uint64_t parse_count(const std::string& flag, const std::string& v, uint64_t lo, uint64_t hi) {
  return vkalex_samples::parse_count("train", flag, v, lo, hi);
}

struct Options {
  std::string model, data, out, resume, weights;
  std::optional<std::string> device;
  uint32_t epochs = 10, batch = 128, patience = 2;
  uint64_t seed = 1, limit = 0, test_limit = 0, checkpoint_every = 0, stop_after = 0, bucket_kib = 4096;
  float lr = 0.01f, momentum = 0.9f, weight_decay = 5e-4f;
  std::vector<uint32_t> lr_steps;
  vkalex::Init init = vkalex::Init::Paper;
  vkalex::Augment augment;
  bool eval_only = false;
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
    } else if (a == "--model") o.model = value();
    else if (a == "--data") o.data = value();
    else if (a == "--out") o.out = value();
    else if (a == "--resume") o.resume = value();
    else if (a == "--weights") o.weights = value();
    else if (a == "--device") o.device = value();
    else if (a == "--epochs") o.epochs = uint32_t(parse_count(a, value(), 1, 100000));
    else if (a == "--batch") o.batch = uint32_t(parse_count(a, value(), 1, 65536));
    else if (a == "--patience") o.patience = uint32_t(parse_count(a, value(), 0, 100000));
    else if (a == "--seed") o.seed = parse_count(a, value(), 0, UINT32_MAX);
    else if (a == "--limit") o.limit = parse_count(a, value(), 1, UINT32_MAX);
    else if (a == "--test-limit") o.test_limit = parse_count(a, value(), 1, UINT32_MAX);
    else if (a == "--stop-after") o.stop_after = parse_count(a, value(), 1, UINT64_MAX >> 1);
    else if (a == "--checkpoint-every") o.checkpoint_every = parse_count(a, value(), 1, UINT32_MAX);
    else if (a == "--bucket-kib") o.bucket_kib = parse_count(a, value(), 1, 1 << 22);
    else if (a == "--lr") o.lr = float(parse_number(a, value(), 0, 100));
    else if (a == "--momentum") o.momentum = float(parse_number(a, value(), 0, 1));
    else if (a == "--weight-decay") o.weight_decay = float(parse_number(a, value(), 0, 1));
    else if (a == "--eval-only") o.eval_only = true;
    else if (a == "--init") {
      const std::string v = value();
      if (v == "paper") o.init = vkalex::Init::Paper;
      else if (v == "he") o.init = vkalex::Init::He;
      else die("--init takes \"paper\" or \"he\", got \"" + v + "\"");
    } else if (a == "--lr-steps") {
      const std::string v = value();
      if (v.empty() || v.back() == ',') die("--lr-steps needs a comma-separated list of epochs, got \"" + v + "\"");
      std::stringstream ss(v);
      std::string e;
      while (std::getline(ss, e, ',')) o.lr_steps.push_back(uint32_t(parse_count(a, e, 1, 100000)));
    } else if (a == "--augment") {
      const std::string v = value();
      if (v.empty() || v.back() == ',') die("--augment takes pad:N, flip and lighting:X, got \"" + v + "\"");
      std::stringstream ss(v);
      std::string e;
      while (std::getline(ss, e, ',')) {
        if (e == "flip") o.augment.flip = true;
        else if (e.rfind("pad:", 0) == 0) o.augment.pad = uint32_t(parse_count(a, e.substr(4), 0, 64));
        else if (e.rfind("lighting:", 0) == 0) o.augment.lighting = float(parse_number(a, e.substr(9), 0, 10));
        else die("--augment takes pad:N, flip and lighting:X, got \"" + e + "\"");
      }
    } else die("unknown option \"" + a + "\" (see --help)");
  }
  if (o.model.empty()) die("--model is required (see --help)");
  if (o.data.empty()) die("--data is required (see --help)");
  if (o.eval_only && o.weights.empty()) die("--eval-only needs --weights FILE");
  if (!o.eval_only && !o.weights.empty()) die("--weights goes with --eval-only (use --resume to continue training)");
  return o;
}

// Items first to first + n - 1 of a dataset (as many as it has).
class Slice : public vkalex::Dataset {
 public:
  Slice(const vkalex::Dataset& d, size_t first, size_t n)
      : d_(d), first_(std::min(first, d.size())), n_(std::min(n, d.size() - first_)) {}
  Slice(std::unique_ptr<vkalex::Dataset> owned, size_t n) : Slice(*owned, 0, n) { owned_ = std::move(owned); }
  size_t size() const override { return n_; }
  uint32_t channels() const override { return d_.channels(); }
  uint32_t classes() const override { return d_.classes(); }
  const std::vector<std::string>& class_names() const override { return d_.class_names(); }
  vkalex::Image image(size_t i) const override { return d_.image(first_ + i); }
  uint32_t label(size_t i) const override { return d_.label(first_ + i); }

 private:
  std::unique_ptr<vkalex::Dataset> owned_;
  const vkalex::Dataset& d_;
  size_t first_, n_;
};

struct EpochMetrics {
  uint32_t epoch = 0;
  uint64_t step = 0;
  double lr = 0, train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, images_per_s = 0, seconds = 0;
};

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch}, {"step", m.step}, {"lr", m.lr}, {"train_loss", m.train_loss},
          {"train_acc", m.train_acc}, {"test_loss", m.test_loss}, {"test_acc", m.test_acc},
          {"images_per_s", m.images_per_s}, {"seconds", m.seconds}};
}
// Fields of a checkpoint's training state, each checked for its type and range: a damaged or
// hand-edited checkpoint is refused by name, never resumed with a negative step or rate.
struct StateFields {
  const nlohmann::json& j;
  std::string where;  // "FILE: checkpoint state" (and the history entry)

  [[noreturn]] void bad(const char* key, const std::string& want) const {
    const auto it = j.find(key);
    die(where + ": \"" + key + "\" " + want + (it == j.end() ? ", but it is missing" : ", not " + it->dump()));
  }
  uint64_t count(const char* key, uint64_t hi) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned() || it->get<uint64_t>() > hi) {
      bad(key, "must be a whole number from 0 to " + std::to_string(hi));
    }
    return it->get<uint64_t>();
  }
  // A finite number in [lo, hi]; above `lo` strictly where `open_low`.
  double number(const char* key, double lo, double hi, bool open_low = false) const {
    const auto it = j.find(key);
    const double d = it != j.end() && it->is_number() ? it->get<double>() : NAN;
    if (!(open_low ? d > lo : d >= lo) || !(d <= hi)) {
      bad(key, std::string("must be a number ") + (open_low ? "above " : "from ") + std::to_string(lo) + " to " +
                   std::to_string(hi));
    }
    return d;
  }
};

EpochMetrics from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) die(where + ": must be an object, not " + j.dump());
  const StateFields f{j, where};
  EpochMetrics m;
  m.epoch = uint32_t(f.count("epoch", 100000));
  m.step = f.count("step", UINT32_MAX);
  m.lr = f.number("lr", 0, 100, true);
  m.train_loss = f.number("train_loss", 0, 1e30);
  m.train_acc = f.number("train_acc", 0, 1);
  m.test_loss = f.number("test_loss", 0, 1e30);
  m.test_acc = f.number("test_acc", 0, 1);
  m.images_per_s = f.number("images_per_s", 0, 1e30);
  m.seconds = f.number("seconds", 0, 1e30);
  return m;
}

// Writes `text` to `path` atomically: never a half-written metrics file.
void write_text(const std::string& path, const std::string& text) {
  try {
    vkalex::write_file_atomically(path, text);
  } catch (const vkalex::Error& e) {
    die(e.what());
  }
}

void write_metrics(const std::string& dir, const std::vector<EpochMetrics>& history) {
  std::ostringstream csv;
  csv << "epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,seconds\n";
  for (const auto& m : history) {
    char line[256];
    std::snprintf(line, sizeof line, "%u,%llu,%.6g,%.6f,%.6f,%.6f,%.6f,%.1f,%.1f\n", m.epoch,
                  (unsigned long long)m.step, m.lr, m.train_loss, m.train_acc, m.test_loss, m.test_acc,
                  m.images_per_s, m.seconds);
    csv << line;
  }
  write_text(dir + "/metrics.csv", csv.str());

  // loss.svg: train and test loss (left axis) and test accuracy (right axis) per epoch.
  const double W = 640, H = 360, L = 60, R = 60, T = 30, B = 40;
  double max_loss = 1e-6;
  for (const auto& m : history) max_loss = std::max({max_loss, m.train_loss, m.test_loss});
  const double max_epoch = std::max<double>(1, history.empty() ? 1 : history.back().epoch);
  auto px = [&](double e) { return L + (W - L - R) * e / max_epoch; };
  auto py_loss = [&](double v) { return T + (H - T - B) * (1 - v / max_loss); };
  auto py_acc = [&](double a) { return T + (H - T - B) * (1 - a); };
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  svg << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  svg << "<line x1=\"" << W - R << "\" y1=\"" << T << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  svg << "<text x=\"" << W / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">epoch (1 to " << max_epoch << ")</text>\n";
  svg << "<text x=\"" << L - 6 << "\" y=\"" << T + 4 << "\" text-anchor=\"end\">" << std::fixed << std::setprecision(2) << max_loss << "</text>\n";
  svg << "<text x=\"" << L - 6 << "\" y=\"" << H - B << "\" text-anchor=\"end\">0</text>\n";
  svg << "<text x=\"" << W - R + 6 << "\" y=\"" << T + 4 << "\">100%</text>\n";
  svg << "<text x=\"" << W - R + 6 << "\" y=\"" << H - B << "\">0%</text>\n";
  auto line = [&](const char* color, const char* label, int row, auto value, auto y) {
    svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const auto& m : history) svg << px(m.epoch) << "," << y(value(m)) << " ";
    svg << "\"/>\n<text x=\"" << L + 10 << "\" y=\"" << T + 14 * row << "\" fill=\"" << color << "\">" << label << "</text>\n";
  };
  line("#1f77b4", "train loss", 1, [](const EpochMetrics& m) { return m.train_loss; }, py_loss);
  line("#ff7f0e", "test loss", 2, [](const EpochMetrics& m) { return m.test_loss; }, py_loss);
  line("#2ca02c", "test accuracy (right axis)", 3, [](const EpochMetrics& m) { return m.test_acc; }, py_acc);
  svg << "</svg>\n";
  write_text(dir + "/loss.svg", svg.str());
}

struct Eval {
  double loss = 0, accuracy = 0;
};

// The test split's mean loss and accuracy; in an MPI run each process evaluates its share of
// the images and the sums are added up.
Eval evaluate(vkalex::Net& net, const vkalex::Dataset& all, uint32_t batch, const vkalex::ModelDesc& m,
              const vkalex_samples::World& world) {
  const size_t n = all.size(), ranks = size_t(world.size()), r = size_t(world.rank());
  const Slice test(all, n * r / ranks, n * (r + 1) / ranks - n * r / ranks);
  double sums[2] = {0, 0};  // loss, correct
  if (test.size()) {
    vkalex::BatchLoader loader(test, std::min<uint32_t>(batch, uint32_t(test.size())), false, false, {}, m.preprocess,
                               m.height, m.width, 0);
    for (size_t b = 0; b < loader.batches_per_epoch(); ++b) {
      const auto batch_data = loader.get(0, b);
      const auto out = net.forward(batch_data.images);
      for (uint32_t i = 0; i < out.batch; ++i) {
        const float* p = &out.probabilities[uint64_t(i) * out.classes];
        const uint32_t label = batch_data.labels[i];
        sums[0] -= std::log(std::max(p[label], 1e-30f));
        sums[1] += uint32_t(std::max_element(p, p + out.classes) - p) == label;
      }
    }
  }
  world.sum(sums);
  return {sums[0] / double(n), sums[1] / double(n)};
}

// A hash of the net's parameters: in an MPI run every process must hold the same.
uint64_t parameter_hash(const vkalex::Net& net) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& [name, t] : net.parameters()) {
    for (char c : name) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
    for (float v : t.data) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      h = (h ^ bits) * 0x100000001b3ull;
    }
  }
  return h;
}

std::string format_time(double seconds) {
  const long s = long(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  vkalex_samples::check_stdout_at_exit("train");
  const Options opt = parse(argc, argv);
  const vkalex_samples::World world(&argc, &argv, "train");
  if (world.distributed()) program = "train (" + world.where() + ")";
  const bool lead = world.rank() == 0;  // the process that prints and writes
  try {
    const vkalex::ModelDesc model = vkalex::load_model(opt.model);
    std::unique_ptr<vkalex::Dataset> train_data, test_data;
    if (opt.data == "fashion-mnist") {
      if (model.channels != 1 || model.height != 28 || model.width != 28) {
        die(opt.model + " takes " + std::to_string(model.channels) + "x" + std::to_string(model.height) + "x" +
            std::to_string(model.width) + " inputs; Fashion-MNIST is 1x28x28");
      }
      train_data = vkalex::load_fashion_mnist("train");
      test_data = vkalex::load_fashion_mnist("test");
    } else {
      if (model.height != model.width) die("image folders need a square input size");
      train_data = vkalex::load_image_folder(opt.data + "/train", model.channels, model.height);
      test_data = vkalex::load_image_folder(opt.data + "/test", model.channels, model.height);
      if (train_data->class_names() != test_data->class_names()) {
        die(opt.data + ": train and test hold different class folders");
      }
    }
    if (train_data->classes() != model.classes) {
      die("the data has " + std::to_string(train_data->classes()) + " classes, " + opt.model + " has " +
          std::to_string(model.classes));
    }

    if (opt.test_limit) test_data = std::make_unique<Slice>(std::move(test_data), opt.test_limit);

    vkalex::ContextOptions copt;
    copt.device = opt.device ? opt.device : vkalex_samples::device_for_rank(world);
    vkalex::Context ctx(copt);
    if (const std::string w = vkalex_samples::binding_warning(world, ctx.device()); !w.empty() && lead) {
      std::fprintf(stderr, "%s: warning: %s\n", program.c_str(), w.c_str());
    }
    vkalex::Net net(ctx, model);

    if (opt.eval_only) {
      net.load_weights(vkalex::SafeTensors(opt.weights));
      const auto t0 = std::chrono::steady_clock::now();
      const Eval e = evaluate(net, *test_data, opt.batch, model, world);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (lead) std::printf("%s on %zu test images (%s): accuracy %.2f%% (%llu correct), mean loss %.4f, %.1f s on %s\n",
                  opt.weights.c_str(), test_data->size(), opt.data.c_str(), 100 * e.accuracy,
                  (unsigned long long)std::llround(e.accuracy * test_data->size()), e.loss, s, ctx.device().name.c_str());
      vkalex_samples::fail_on_validation_messages(program.c_str(), ctx);
      return 0;
    }

    const std::string out = opt.out.empty() ? "runs/" + model.name : opt.out;
    if (lead) {
      fs::create_directories(out);
      lock_output_directory(out);
    }
    const Slice limited(*train_data, 0, opt.limit ? opt.limit : train_data->size());
    vkalex::BatchLoader loader(limited, opt.batch, true, true, opt.augment, model.preprocess, model.height,
                               model.width, opt.seed);
    const size_t steps_per_epoch = loader.batches_per_epoch();
    // An MPI run: this process's shard of every batch of --batch images.
    const uint32_t ranks = uint32_t(world.size()), rank = uint32_t(world.rank());
    if (opt.batch < ranks) {
      die("a batch of " + std::to_string(opt.batch) + " images cannot be shared by " + std::to_string(ranks) +
          " processes (--batch is the global batch)");
    }
    const uint32_t first_image = uint32_t(uint64_t(opt.batch) * rank / ranks);
    const uint32_t local_batch = uint32_t(uint64_t(opt.batch) * (rank + 1) / ranks) - first_image;
    if (world.distributed()) loader.shard(first_image, local_batch);

    // State that a checkpoint holds besides the tensors.
    uint64_t step = 0;
    float lr = opt.lr;
    double best_test_loss = INFINITY;
    uint32_t bad_epochs = 0;
    std::vector<EpochMetrics> history;
    double epoch_loss = 0, epoch_correct = 0, seconds_before = 0;

    vkalex::TrainerOptions topt;
    if (world.distributed()) {
      topt.global_batch = opt.batch;
      topt.first_image = first_image;
      topt.bucket_bytes = opt.bucket_kib << 10;
    }
    vkalex::Trainer trainer(net, local_batch, topt);
    vkalex_samples::MpiReducer reducer(world);
    if (!opt.resume.empty()) {
      // Rank 0 reads the checkpoint, checking the file, the model and every tensor before
      // loading any (vkalex::load_checkpoint); the others get its tensors and state below.
      std::string state_text;
      if (lead) {
        const auto meta = vkalex::load_checkpoint(opt.resume, net, trainer);
        auto it = meta.find("state");
        if (it == meta.end()) die(opt.resume + ": a checkpoint without train's \"state\" (not written by train)");
        state_text = it->second;
      }
      world.broadcast(state_text);
      const nlohmann::json state = nlohmann::json::parse(state_text, nullptr, /*allow_exceptions=*/false);
      if (!state.is_object()) die(opt.resume + ": the checkpoint's training state is not a JSON object");
      const StateFields f{state, opt.resume + ": checkpoint state"};
      if (f.count("seed", UINT32_MAX) != opt.seed || f.count("batch", 65536) != opt.batch ||
          f.count("limit", UINT32_MAX) != opt.limit) {
        die(opt.resume + " was made with another --seed, --batch or --limit; resuming needs the same");
      }
      step = f.count("step", uint64_t(opt.epochs) * steps_per_epoch);
      lr = float(f.number("lr", 0, 100, true));
      const auto best = state.find("best_test_loss");
      best_test_loss = best != state.end() && best->is_null() ? INFINITY : f.number("best_test_loss", 0, 1e30);
      bad_epochs = uint32_t(f.count("bad_epochs", 100000));
      epoch_loss = f.number("epoch_loss", 0, 1e30);
      epoch_correct = f.number("epoch_correct", 0, double(steps_per_epoch) * opt.batch);
      seconds_before = f.number("seconds", 0, 1e30);
      const auto h = state.find("history");
      if (h == state.end() || !h->is_array() || h->size() > opt.epochs) {
        f.bad("history", "must be a list of at most --epochs (" + std::to_string(opt.epochs) + ") epochs");
      }
      for (size_t i = 0; i < h->size(); ++i) {
        history.push_back(from_json((*h)[i], opt.resume + ": checkpoint state history[" + std::to_string(i) + "]"));
      }
      if (lead) {
        std::fprintf(stderr, "train: resuming %s at step %llu (epoch %llu)%s\n", opt.resume.c_str(),
                     (unsigned long long)step, (unsigned long long)(step / steps_per_epoch + 1),
                     world.distributed() ? (" on " + std::to_string(ranks) + " processes").c_str() : "");
      }
    } else {
      net.set_parameters(vkalex::initial_parameters(model, opt.init, opt.seed));
    }
    if (world.distributed()) {
      // Every process starts from rank 0's parameters and momentum (the same tensors in the
      // same order everywhere: std::map sorts them by name).
      auto params = net.parameters();
      auto momentum = trainer.momentum();
      for (auto* tensors : {&params, &momentum}) {
        for (auto& [name, t] : *tensors) world.broadcast(t.data);
      }
      if (!lead) {
        net.set_parameters(params);
        trainer.set_momentum(momentum);
      }
    }

    // Training that diverged stops here, before a file is written: the last checkpoint written
    // stays as it was (a NaN that a fused ReLU hides from the loss still reaches the weights).
    auto require_finite_parameters = [&] {
      try {
        for (const auto& [name, t] : net.parameters()) vkalex::require_finite(t, name, "after step " + std::to_string(step));
      } catch (const vkalex::Error& e) {
        die(std::string(e.what()) + ": training diverged (try a smaller --lr); nothing written now, the last checkpoint in " +
            out + " (if any) is kept");
      }
    };
    // An MPI run: every process applied the same updates, so all hold the same parameters
    // (checked, with everyone, before anything is written).
    auto require_same_parameters = [&] {
      if (world.distributed() && !world.same_everywhere(parameter_hash(net))) {
        die("the processes' parameters differ after step " + std::to_string(step) +
            " (the all-reduce gave them different sums); nothing written now");
      }
    };
    auto save_checkpoint = [&](double seconds) {
      require_same_parameters();
      if (!lead) return;
      require_finite_parameters();
      nlohmann::json hist = nlohmann::json::array();
      for (const auto& m : history) hist.push_back(to_json(m));
      const nlohmann::json state = {{"step", step}, {"lr", lr}, {"seed", opt.seed}, {"batch", opt.batch},
                                    {"limit", opt.limit},
                                    {"best_test_loss", std::isfinite(best_test_loss) ? nlohmann::json(best_test_loss) : nlohmann::json()},
                                    {"bad_epochs", bad_epochs}, {"epoch_loss", epoch_loss},
                                    {"epoch_correct", epoch_correct}, {"seconds", seconds}, {"history", hist},
                                    {"processes", ranks}};
      vkalex::save_checkpoint(out + "/checkpoint.safetensors", net, trainer, {{"state", state.dump()}});
    };

    const bool tty = ::isatty(STDERR_FILENO);
    const uint64_t total_steps = uint64_t(opt.epochs) * steps_per_epoch;
    const auto t_start = std::chrono::steady_clock::now();
    auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };
    const uint64_t first_step = step;
    auto t_epoch = std::chrono::steady_clock::now();
    uint64_t epoch_images = 0;
    while (step < total_steps) {
      if (opt.stop_after && step >= opt.stop_after) {
        save_checkpoint(elapsed());  // the checkpoint named below is this very step's
        if (lead) std::printf("stopped after step %llu as asked (--stop-after); resume from %s/checkpoint.safetensors\n",
                    (unsigned long long)step, out.c_str());
        vkalex_samples::fail_on_validation_messages(program.c_str(), ctx);
        return 0;
      }
      const uint32_t epoch = uint32_t(step / steps_per_epoch);  // 0-based
      const size_t index = step % steps_per_epoch;
      if (index == 0 || step == first_step) {
        t_epoch = std::chrono::steady_clock::now();
        epoch_images = 0;
      }
      if (index == 0) epoch_loss = epoch_correct = 0;
      const auto b = loader.get(epoch, index);
      vkalex::StepParams sp;
      sp.step = uint32_t(step);
      sp.seed = uint32_t(opt.seed);
      sp.lr = lr;
      sp.momentum = opt.momentum;
      sp.weight_decay = opt.weight_decay;
      const vkalex::StepStats st = trainer.step(b.images, b.labels, sp, world.distributed() ? &reducer : nullptr);
      // The global batch's loss and correct count (every process's shard, added up).
      double sums[2] = {st.loss * st.batch, double(st.correct)};
      world.sum(sums);
      const double loss = world.distributed() ? sums[0] / opt.batch : st.loss;
      if (!std::isfinite(loss)) die("the loss became " + std::to_string(loss) + " at step " + std::to_string(step) + "; try a smaller --lr");
      epoch_loss += loss;
      epoch_correct += sums[1];
      epoch_images += opt.batch;
      ++step;
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      const double ips = epoch_images / std::max(dt, 1e-9);
      const size_t done = index + 1;
      const double eta = (total_steps - step) * double(opt.batch) / std::max(ips, 1e-9);
      if (lead && (tty || done % 50 == 0 || done == steps_per_epoch)) {
        std::fprintf(stderr, "%sepoch %u/%u step %zu/%zu loss %.4f acc %.2f%% lr %.3g %.1f img/s ETA %s%s",
                     tty ? "\r" : "", epoch + 1, opt.epochs, done, steps_per_epoch, epoch_loss / done,
                     100.0 * epoch_correct / (double(done) * opt.batch), lr, ips, format_time(eta).c_str(),
                     tty ? "   " : "\n");
      }
      if (opt.checkpoint_every && step % opt.checkpoint_every == 0 && done != steps_per_epoch) save_checkpoint(elapsed());
      if (done == steps_per_epoch) {
        if (lead && tty) std::fprintf(stderr, "\n");
        const Eval e = evaluate(net, *test_data, opt.batch, model, world);
        EpochMetrics m;
        m.epoch = epoch + 1;
        m.step = step;
        m.lr = lr;
        m.train_loss = epoch_loss / steps_per_epoch;
        m.train_acc = epoch_correct / (double(steps_per_epoch) * opt.batch);
        m.test_loss = e.loss;
        m.test_acc = e.accuracy;
        m.images_per_s = ips;
        m.seconds = elapsed();
        history.push_back(m);
        if (lead) {
          std::fprintf(stderr, "epoch %u: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%% (%s)\n", m.epoch,
                       m.train_loss, 100 * m.train_acc, m.test_loss, 100 * m.test_acc, format_time(m.seconds).c_str());
        }
        // Learning-rate schedule: fixed steps, then divide on a plateau of the test loss.
        if (e.loss < best_test_loss) {
          best_test_loss = e.loss;
          bad_epochs = 0;
        } else if (opt.patience && ++bad_epochs >= opt.patience) {
          lr /= 10;
          bad_epochs = 0;
          if (lead) std::fprintf(stderr, "test loss has not improved for %u epochs: learning rate now %.3g\n", opt.patience, lr);
        }
        if (std::find(opt.lr_steps.begin(), opt.lr_steps.end(), m.epoch) != opt.lr_steps.end()) {
          lr /= 10;
          if (lead) std::fprintf(stderr, "epoch %u: learning rate now %.3g\n", m.epoch, lr);
        }
        if (lead) write_metrics(out, history);
        save_checkpoint(m.seconds);
      }
    }
    require_same_parameters();
    if (lead) {
      require_finite_parameters();
      vkalex::save_safetensors(out + "/weights.safetensors", net.parameters(), {{"model", model.name}});
      std::printf("trained %s for %u epochs (%llu steps) in %s; weights in %s/weights.safetensors\n", model.name.c_str(),
                  opt.epochs, (unsigned long long)step, format_time(elapsed()).c_str(), out.c_str());
      if (!history.empty()) {
        std::printf("final test accuracy %.2f%%, test loss %.4f\n", 100 * history.back().test_acc, history.back().test_loss);
      }
    }
    vkalex_samples::fail_on_validation_messages(program.c_str(), ctx);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\n%s: %s\n", program.c_str(), vkalex_samples::describe(e).c_str());
    vkalex_samples::fail_exit(1);
  }
}
