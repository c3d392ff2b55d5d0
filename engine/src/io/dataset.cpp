// Datasets: IDX files (Fashion-MNIST), image folders, augmentation and batching.
#include "vkalex/dataset.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <future>
#include <random>

#include "base/input_file.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

namespace {

constexpr uint64_t kMaxIdxBytes = 512ull << 20;

std::vector<uint8_t> read_maybe_gz(const std::string& path) {
  detail::InputFile file(path, "IDX", kMaxIdxBytes);
  const int fd = file.release();
  gzFile f = gzdopen(fd, "rb");  // reads plain files too
  if (!f) {
    ::close(fd);
    throw Error(path + ": cannot open");
  }
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) {
    out.insert(out.end(), buf, buf + n);
    if (out.size() > kMaxIdxBytes) {
      gzclose(f);
      throw Error(path + ": larger than " + std::to_string(kMaxIdxBytes >> 20) + " MiB decompressed");
    }
  }
  int err = 0;
  const char* msg = gzerror(f, &err);
  const bool failed = n < 0 || (err != Z_OK && err != Z_STREAM_END);
  const std::string why = failed ? msg : "";
  gzclose(f);
  if (failed) throw Error(path + ": truncated or corrupt gzip data (" + why + ")");
  return out;
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Checks an IDX header of unsigned bytes with `rank` dimensions; returns the dimensions.
std::vector<uint32_t> idx_dims(const std::string& path, const std::vector<uint8_t>& bytes, uint8_t rank) {
  if (bytes.size() < 4 + 4u * rank) throw Error(path + ": too short for an IDX header");
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08) {
    throw Error(path + ": not an IDX file of unsigned bytes (bad magic number)");
  }
  if (bytes[3] != rank) {
    throw Error(path + ": has " + std::to_string(bytes[3]) + " dimensions, expected " + std::to_string(rank));
  }
  std::vector<uint32_t> dims;
  uint64_t count = 1;
  for (uint8_t i = 0; i < rank; ++i) {
    dims.push_back(be32(&bytes[4 + 4 * i]));
    count *= dims.back();
  }
  const uint64_t expected = 4 + 4ull * rank + count;
  if (bytes.size() != expected) {
    throw Error(path + ": holds " + std::to_string(bytes.size()) + " bytes, its header promises " +
                std::to_string(expected) + (bytes.size() < expected ? " (truncated)" : " (trailing data)"));
  }
  return dims;
}

class IdxDataset : public Dataset {
 public:
  IdxDataset(const std::string& images_path, const std::string& labels_path, std::vector<std::string> names)
      : names_(std::move(names)) {
    images_ = read_maybe_gz(images_path);
    const auto d = idx_dims(images_path, images_, 3);
    labels_ = read_maybe_gz(labels_path);
    const auto l = idx_dims(labels_path, labels_, 1);
    if (d[0] != l[0]) {
      throw Error(labels_path + ": holds " + std::to_string(l[0]) + " labels for " + std::to_string(d[0]) +
                  " images in " + images_path);
    }
    if (d[1] == 0 || d[2] == 0) throw Error(images_path + ": images of zero size");
    count_ = d[0];
    height_ = d[1];
    width_ = d[2];
    for (uint32_t i = 0; i < count_; ++i) {
      if (labels_[8 + i] >= names_.size()) {
        throw Error(labels_path + ": label " + std::to_string(labels_[8 + i]) + " of item " + std::to_string(i) +
                    " is out of range (" + std::to_string(names_.size()) + " classes)");
      }
    }
  }
  size_t size() const override { return count_; }
  uint32_t channels() const override { return 1; }
  uint32_t classes() const override { return static_cast<uint32_t>(names_.size()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  Image image(size_t i) const override {
    Image img{width_, height_, 1, {}};
    const uint8_t* p = &images_[16 + i * uint64_t(width_) * height_];
    img.pixels.assign(p, p + uint64_t(width_) * height_);
    return img;
  }
  uint32_t label(size_t i) const override { return labels_[8 + i]; }

 private:
  std::vector<std::string> names_;
  std::vector<uint8_t> images_, labels_;
  uint32_t count_ = 0, height_ = 0, width_ = 0;
};

class FolderDataset : public Dataset {
 public:
  FolderDataset(const std::string& root, uint32_t channels, uint32_t size) : channels_(channels), size_(size) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(root)) throw Error(root + ": not a folder of class folders");
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory()) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    if (dirs.empty()) throw Error(root + ": holds no class folders (expected root/CLASS_NAME/*.jpg)");
    static const std::vector<std::string> exts{".jpg", ".jpeg", ".png", ".bmp", ".tga", ".gif", ".ppm", ".pgm", ".pnm"};
    for (const auto& d : dirs) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(d)) {
        std::string ext = e.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (e.is_regular_file() && std::find(exts.begin(), exts.end(), ext) != exts.end()) files.push_back(e.path().string());
      }
      if (files.empty()) throw Error(d.string() + ": class folder holds no images");
      std::sort(files.begin(), files.end());
      for (auto& f : files) items_.emplace_back(std::move(f), uint32_t(names_.size()));
      names_.push_back(d.filename().string());
    }
  }
  size_t size() const override { return items_.size(); }
  uint32_t channels() const override { return channels_; }
  uint32_t classes() const override { return static_cast<uint32_t>(names_.size()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  Image image(size_t i) const override {
    const Image img = load_image(items_[i].first, channels_);
    if (img.width == size_ && img.height == size_) return img;
    const double scale = double(size_) / std::min(img.width, img.height);
    const uint32_t w = std::max(size_, uint32_t(std::lround(img.width * scale)));
    const uint32_t h = std::max(size_, uint32_t(std::lround(img.height * scale)));
    const Image r = resize_image(img, w, h);
    Image out{size_, size_, channels_, {}};
    const uint32_t x0 = (w - size_) / 2, y0 = (h - size_) / 2;
    for (uint32_t y = 0; y < size_; ++y) {
      const uint8_t* row = &r.pixels[(uint64_t(y0 + y) * w + x0) * channels_];
      out.pixels.insert(out.pixels.end(), row, row + uint64_t(size_) * channels_);
    }
    return out;
  }
  uint32_t label(size_t i) const override { return items_[i].second; }

 private:
  uint32_t channels_, size_;
  std::vector<std::string> names_;
  std::vector<std::pair<std::string, uint32_t>> items_;
};

// A 64-bit mix for deriving independent random streams from counters.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::unique_ptr<Dataset> load_idx(const std::string& images_path, const std::string& labels_path,
                                  std::vector<std::string> class_names) {
  return std::make_unique<IdxDataset>(images_path, labels_path, std::move(class_names));
}

std::unique_ptr<Dataset> load_fashion_mnist(const std::string& split, const std::string& dir) {
  const std::string d = dir.empty() ? "/usr/share/datasets/fashion-mnist" : dir;
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "test") prefix = "t10k";
  else throw Error("Fashion-MNIST has splits \"train\" and \"test\", not \"" + split + "\"");
  if (!std::filesystem::is_directory(d)) {
    throw Error(d + ": Fashion-MNIST not found (Debian: apt-get install dataset-fashion-mnist)");
  }
  return load_idx(d + "/" + prefix + "-images-idx3-ubyte.gz", d + "/" + prefix + "-labels-idx1-ubyte.gz",
                  {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"});
}

std::unique_ptr<Dataset> load_image_folder(const std::string& root, uint32_t channels, uint32_t size) {
  return std::make_unique<FolderDataset>(root, channels, size);
}

struct BatchLoader::Prefetch {
  uint32_t epoch = 0;
  size_t index = 0;
  std::future<Batch> batch;
};

BatchLoader::BatchLoader(const Dataset& data, uint32_t batch, bool shuffle, bool drop_last, Augment augment,
                         const Preprocess& preprocess, uint32_t height, uint32_t width, uint64_t seed)
    : data_(data), batch_(batch), shuffle_(shuffle), drop_last_(drop_last), augment_(augment),
      preprocess_(preprocess), height_(height), width_(width), seed_(seed) {
  if (batch == 0) throw Error("batch size must be at least 1");
  if (data.size() == 0) throw Error("the dataset is empty");
  if (drop_last && data.size() < batch) {
    throw Error("the dataset holds " + std::to_string(data.size()) + " images, fewer than one batch of " +
                std::to_string(batch));
  }
  if (preprocess.mean.size() != data.channels()) {
    throw Error("the model takes " + std::to_string(preprocess.mean.size()) + " channels, the data has " +
                std::to_string(data.channels()));
  }
}

BatchLoader::~BatchLoader() {
  if (prefetch_ && prefetch_->batch.valid()) prefetch_->batch.wait();
}

size_t BatchLoader::batches_per_epoch() const {
  return drop_last_ ? data_.size() / batch_ : (data_.size() + batch_ - 1) / batch_;
}

void BatchLoader::shard(uint32_t first, uint32_t count) {
  if (count == 0) throw Error("BatchLoader: a shard of no images");
  if (uint64_t(first) + count > batch_) {
    throw Error("BatchLoader: images " + std::to_string(first) + " to " + std::to_string(uint64_t(first) + count - 1) +
                " are not within a batch of " + std::to_string(batch_));
  }
  if (prefetch_ && prefetch_->batch.valid()) prefetch_->batch.wait();
  prefetch_.reset();
  shard_first_ = first;
  shard_count_ = count;
}

BatchLoader::Batch BatchLoader::get(uint32_t epoch, size_t index) {
  Batch b;
  if (prefetch_ && prefetch_->epoch == epoch && prefetch_->index == index) {
    b = prefetch_->batch.get();
  } else {
    if (prefetch_ && prefetch_->batch.valid()) prefetch_->batch.wait();
    b = make(epoch, index);
  }
  uint32_t next_epoch = epoch;
  size_t next = index + 1;
  if (next >= batches_per_epoch()) next_epoch = epoch + 1, next = 0;
  prefetch_ = std::make_unique<Prefetch>();
  prefetch_->epoch = next_epoch;
  prefetch_->index = next;
  prefetch_->batch = std::async(std::launch::async, [this, next_epoch, next] { return make(next_epoch, next); });
  return b;
}

BatchLoader::Batch BatchLoader::make(uint32_t epoch, size_t index) const {
  const size_t n_items = data_.size();
  // The epoch's order: a seeded Fisher-Yates shuffle (the same on every run).
  std::vector<uint32_t> order(n_items);
  for (size_t i = 0; i < n_items; ++i) order[i] = uint32_t(i);
  if (shuffle_) {
    std::mt19937_64 rng(mix64(seed_ ^ mix64(epoch + 1)));
    for (size_t i = n_items - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);
  }
  const size_t batch_first = index * batch_;
  const size_t batch_count = std::min<size_t>(batch_, n_items - std::min(batch_first, n_items));
  if (batch_count == 0) throw Error("batch " + std::to_string(index) + " is past the end of the epoch");
  // This worker's shard of the batch (all of it without shard()).
  const size_t first = batch_first + std::min<size_t>(shard_first_, batch_count);
  const size_t count = std::min<size_t>(shard_count_ ? shard_count_ : batch_count, batch_first + batch_count - first);
  if (count == 0) throw Error("batch " + std::to_string(index) + " has no images for this shard");
  const uint32_t C = data_.channels();
  Batch b;
  b.images = HostTensor(Shape{uint32_t(count), C, height_, width_});
  b.labels.resize(count);
  const uint64_t plane = uint64_t(height_) * width_;
  for (size_t j = 0; j < count; ++j) {
    const uint32_t item = order[first + j];
    Image img = data_.image(item);
    b.labels[j] = data_.label(item);
    if (img.width != width_ || img.height != height_) {
      throw Error("dataset image " + std::to_string(item) + " is " + std::to_string(img.width) + "x" +
                  std::to_string(img.height) + ", the model takes " + std::to_string(width_) + "x" + std::to_string(height_));
    }
    // Each image's augmentation draws from its own stream: (seed, epoch, item).
    std::mt19937_64 rng(mix64(seed_ ^ mix64((uint64_t(epoch) << 32) ^ item ^ 0x5bd1e995ull)));
    const uint32_t pad = augment_.pad;
    const uint32_t ox = pad ? uint32_t(rng() % (2 * pad + 1)) : 0, oy = pad ? uint32_t(rng() % (2 * pad + 1)) : 0;
    const bool flip = augment_.flip && (rng() & 1);
    float light[3] = {0, 0, 0};
    if (augment_.lighting > 0 && C == 3) {
      // The paper's PCA lighting, with the eigenvectors and eigenvalues of ImageNet's RGB
      // covariance (pixels in [0, 1]).
      static const float eigval[3] = {0.2175f, 0.0188f, 0.0045f};
      static const float eigvec[3][3] = {{-0.5675f, 0.7192f, 0.4009f}, {-0.5808f, -0.0045f, -0.8140f}, {-0.5836f, -0.6948f, 0.4203f}};
      std::normal_distribution<float> normal(0.0f, augment_.lighting);
      float alpha[3];
      for (float& a : alpha) a = normal(rng);
      for (int c = 0; c < 3; ++c)
        for (int k = 0; k < 3; ++k) light[c] += eigvec[c][k] * alpha[k] * eigval[k];
    }
    for (uint32_t c = 0; c < C; ++c) {
      const uint32_t from = preprocess_.bgr && C == 3 ? 2 - c : c;
      float* out = &b.images.data[(j * C + c) * plane];
      for (uint32_t y = 0; y < height_; ++y)
        for (uint32_t x = 0; x < width_; ++x) {
          // Position in the zero-padded image, crop offset (ox, oy), mirrored when flipping.
          const int64_t sx = int64_t(flip ? width_ - 1 - x : x) + ox - pad, sy = int64_t(y) + oy - pad;
          float v = 0;
          if (sx >= 0 && sy >= 0 && sx < img.width && sy < img.height) v = img.pixels[(uint64_t(sy) * img.width + sx) * C + from] / 255.0f;
          out[uint64_t(y) * width_ + x] = (v + light[from] - preprocess_.mean[c]) / preprocess_.std[c];
        }
    }
  }
  return b;
}

}  // namespace vkalex
