// Training data: Fashion-MNIST (IDX files) and folders of images, with the paper's
// augmentation, shuffled by seed and batched on a worker thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vkalex/cpu.hpp"
#include "vkalex/image.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// A labelled set of images, all of one size, decoded in memory (IDX) or on demand (folder).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  virtual uint32_t channels() const = 0;
  virtual uint32_t classes() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  // The image (8-bit, channels() channels) and label of item i.
  virtual Image image(size_t i) const = 0;
  virtual uint32_t label(size_t i) const = 0;
};

// Reads an IDX image file and its label file (gzip-compressed or plain). Every header field
// is checked: magic numbers, dimensions, counts equal, file sizes exact, labels < 10.
std::unique_ptr<Dataset> load_idx(const std::string& images_path, const std::string& labels_path,
                                  std::vector<std::string> class_names);

// Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), or
// from `dir`: split "train" (60,000 images) or "test" (10,000).
std::unique_ptr<Dataset> load_fashion_mnist(const std::string& split, const std::string& dir = "");

// root/CLASS_NAME/*.{jpg,jpeg,png,bmp,tga,gif,ppm,pgm} with classes sorted by name; images are
// decoded when asked for, to `channels` channels, and resized (shorter side) and centre-
// cropped to `size` x `size`. Throws Error for a missing root, no class folders, or an empty one.
std::unique_ptr<Dataset> load_image_folder(const std::string& root, uint32_t channels, uint32_t size);

struct Augment {
  uint32_t pad = 0;          // random crops: pad by this many pixels (zero), crop back at random
  bool flip = false;         // random horizontal flips
  float lighting = 0.0f;     // PCA colour lighting std (RGB only; the paper's 0.1)
};

// Batches of a dataset in a seeded order. Batch b of epoch e depends only on (seed, e, b), so a
// run that resumes at any step sees the same data as one that never stopped. The next batch
// is prepared on a worker thread while the caller uses the current one.
class BatchLoader {
 public:
  // `shuffle` false keeps the dataset's order (evaluation); the last partial batch is dropped
  // when drop_last, else kept (smaller).
  BatchLoader(const Dataset& data, uint32_t batch, bool shuffle, bool drop_last, Augment augment,
              const Preprocess& preprocess, uint32_t height, uint32_t width, uint64_t seed);
  ~BatchLoader();

  size_t batches_per_epoch() const;
  // Data parallelism: from now on get() returns only images first to first + count - 1 of each
  // batch (the shard of one worker), in the same order and with the same augmentation as in
  // the whole batch, so that the workers' shards together are the batch one worker would get.
  // Throws Error where the range does not lie within a batch.
  void shard(uint32_t first, uint32_t count);
  struct Batch {
    HostTensor images;  // [n, C, H, W], preprocessed
    std::vector<uint32_t> labels;
  };
  // Batch `index` of `epoch`; prefetches the following one.
  Batch get(uint32_t epoch, size_t index);

 private:
  Batch make(uint32_t epoch, size_t index) const;
  struct Prefetch;
  const Dataset& data_;
  uint32_t batch_;
  bool shuffle_, drop_last_;
  Augment augment_;
  Preprocess preprocess_;
  uint32_t height_, width_;
  uint64_t seed_;
  uint32_t shard_first_ = 0, shard_count_ = 0;  // 0: the whole batch
  std::unique_ptr<Prefetch> prefetch_;
};

}  // namespace vkalex
VKALEX_PUBLIC_END
