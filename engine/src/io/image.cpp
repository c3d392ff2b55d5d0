// Image decoding through Debian's stb (libstb), and the preprocessing of a model description.
#include "vkalex/image.hpp"

#include <stb_image.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "base/input_file.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

namespace {

// Binary PNM (P5 gray, P6 RGB) is checked before stb_image sees it: Debian's stb crashes on
// some truncated 16-bit ones (found by tests/fuzz), so only 8-bit PNM is read, and only when
// the file holds every pixel its header promises.
void check_pnm(const std::string& path, detail::InputFile& file) {
  char head[512];
  const ssize_t got = ::pread(file.fd(), head, sizeof head, 0);
  if (got < 2 || head[0] != 'P' || (head[1] != '5' && head[1] != '6')) return;
  size_t i = 2;
  uint64_t fields[3];  // width, height, maxval
  for (uint64_t& v : fields) {
    while (i < size_t(got) && (std::isspace(static_cast<unsigned char>(head[i])) || head[i] == '#')) {
      if (head[i] == '#') {
        while (i < size_t(got) && head[i] != '\n') ++i;
      } else {
        ++i;
      }
    }
    size_t digits = 0;
    v = 0;
    while (i < size_t(got) && std::isdigit(static_cast<unsigned char>(head[i])) && digits < 9) {
      v = v * 10 + uint64_t(head[i++] - '0');
      ++digits;
    }
    if (digits == 0 || (i < size_t(got) && std::isdigit(static_cast<unsigned char>(head[i])))) return;  // stb refuses
  }
  if (fields[2] > 255) {
    throw Error(path + ": a 16-bit PNM image (maxval " + std::to_string(fields[2]) + "); vkalex reads 8-bit PNM only");
  }
  const uint64_t need = i + 1 + fields[0] * fields[1] * (head[1] == '6' ? 3 : 1);  // one whitespace after maxval
  if (file.size() < need) {
    throw Error(path + ": a truncated PNM image: " + std::to_string(fields[0]) + "x" + std::to_string(fields[1]) +
                " pixels need " + std::to_string(need) + " bytes, the file has " + std::to_string(file.size()));
  }
}

}  // namespace

Image load_image(const std::string& path, uint32_t channels) {
  if (channels != 1 && channels != 3) throw Error("load_image: channels must be 1 or 3");
  detail::InputFile file(path, "image", kMaxImageFileBytes);
  check_pnm(path, file);
  FILE* f = file.release_to_stdio();
  int w = 0, h = 0, n = 0;
  // The header first: refuse absurd sizes before decoding allocates for them.
  if (!stbi_info_from_file(f, &w, &h, &n)) {
    std::fclose(f);
    throw Error(path + ": not an image vkalex can read (JPEG, PNG, BMP, TGA, GIF, PNM): " +
                stbi_failure_reason());
  }
  if (w <= 0 || h <= 0 || uint32_t(w) > kMaxImageSide || uint32_t(h) > kMaxImageSide ||
      uint64_t(w) * uint64_t(h) > kMaxImagePixels) {
    std::fclose(f);
    throw Error(path + ": image of " + std::to_string(w) + "x" + std::to_string(h) +
                " pixels is beyond the limit (" + std::to_string(kMaxImageSide) + " a side, " +
                std::to_string(kMaxImagePixels) + " in all)");
  }
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_file(f, &w, &h, &n, static_cast<int>(channels)), stbi_image_free);
  std::fclose(f);
  if (!data) throw Error(path + ": cannot decode: " + stbi_failure_reason());
  Image img;
  img.width = static_cast<uint32_t>(w);
  img.height = static_cast<uint32_t>(h);
  img.channels = channels;
  img.pixels.assign(data.get(), data.get() + uint64_t(w) * h * channels);
  return img;
}

Image convert_channels(const Image& image, uint32_t channels) {
  if ((channels != 1 && channels != 3) || (image.channels != 1 && image.channels != 3)) {
    throw Error("convert_channels: images have 1 or 3 channels, not " + std::to_string(image.channels) + " -> " +
                std::to_string(channels));
  }
  const uint64_t n = uint64_t(image.width) * image.height;
  if (image.pixels.size() != n * image.channels) {
    throw Error("convert_channels: " + std::to_string(image.pixels.size()) + " bytes are not " + std::to_string(image.width) +
                "x" + std::to_string(image.height) + "x" + std::to_string(image.channels));
  }
  if (channels == image.channels) return image;
  Image out{image.width, image.height, channels, std::vector<uint8_t>(n * channels)};
  const uint8_t* p = image.pixels.data();
  for (uint64_t i = 0; i < n; ++i) {
    if (channels == 1) {
      out.pixels[i] = uint8_t((p[3 * i] * 77 + p[3 * i + 1] * 150 + p[3 * i + 2] * 29) >> 8);
    } else {
      out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = p[i];
    }
  }
  return out;
}

namespace {

// Weights of a triangle (bilinear) filter from `in` samples to `out`. When shrinking, the
// filter widens by the shrink factor so every input pixel contributes (antialiasing, as
// PIL's bilinear resize does); when enlarging, it is plain linear interpolation.
struct Taps {
  std::vector<uint32_t> first;   // per output sample: first input index
  std::vector<uint32_t> count;   // and how many
  std::vector<float> weights;    // count weights per output, at offset given by start
  std::vector<size_t> start;
};

// The taps of outputs [begin, begin + count) of a resize from `in` to `out` samples.
Taps triangle_taps(uint32_t in, uint32_t out, uint32_t begin, uint32_t count) {
  Taps t;
  const double scale = double(out) / in;
  const double support = scale < 1 ? 1 / scale : 1;
  for (uint32_t o = begin; o < begin + count; ++o) {
    const double center = (o + 0.5) / scale;  // in input pixel coordinates (edges at integers)
    const int64_t lo = std::max<int64_t>(0, int64_t(std::floor(center - support)));
    const int64_t hi = std::min<int64_t>(in - 1, int64_t(std::ceil(center + support)));
    t.start.push_back(t.weights.size());
    double sum = 0;
    std::vector<double> w;
    for (int64_t i = lo; i <= hi; ++i) {
      const double d = std::fabs((i + 0.5 - center) / support);
      w.push_back(d < 1 ? 1 - d : 0);
      sum += w.back();
    }
    if (sum <= 0) {  // cannot happen with the ranges above; keep the nearest pixel regardless
      w.assign(w.size(), 0);
      w[std::min<size_t>(w.size() - 1, size_t(center - lo))] = 1;
      sum = 1;
    }
    t.first.push_back(uint32_t(lo));
    t.count.push_back(uint32_t(w.size()));
    for (double v : w) t.weights.push_back(float(v / sum));
  }
  return t;
}

}  // namespace

Image resize_image(const Image& image, uint32_t width, uint32_t height) {
  return resize_crop_image(image, width, height, 0, 0, width, height);
}

Image resize_crop_image(const Image& image, uint32_t width, uint32_t height, uint32_t x0, uint32_t y0,
                        uint32_t crop_width, uint32_t crop_height) {
  if (width == 0 || height == 0 || image.width == 0 || image.height == 0 || crop_width == 0 || crop_height == 0) {
    throw Error("resize_image: sizes must be at least 1");
  }
  if (x0 > width || crop_width > width - x0 || y0 > height || crop_height > height - y0) {
    throw Error("resize_crop_image: the window lies outside the resized image");
  }
  const uint32_t C = image.channels;
  // Only the window's taps: the work and memory follow the window, not the resized image.
  const Taps tx = triangle_taps(image.width, width, x0, crop_width);
  const Taps ty = triangle_taps(image.height, height, y0, crop_height);
  // The input rows the window reads; the horizontal pass runs on those alone.
  const uint32_t row0 = ty.first.front();
  const uint32_t rows = ty.first.back() + ty.count.back() - row0;
  // Horizontal pass into floats, then vertical pass with rounding to 8 bits.
  std::vector<float> mid(uint64_t(crop_width) * rows * C);
  for (uint32_t r = 0; r < rows; ++r) {
    const uint64_t y = row0 + r;
    for (uint32_t x = 0; x < crop_width; ++x)
      for (uint32_t c = 0; c < C; ++c) {
        float acc = 0;
        for (uint32_t k = 0; k < tx.count[x]; ++k) {
          acc += tx.weights[tx.start[x] + k] * image.pixels[(y * image.width + tx.first[x] + k) * C + c];
        }
        mid[(uint64_t(r) * crop_width + x) * C + c] = acc;
      }
  }
  Image out;
  out.width = crop_width;
  out.height = crop_height;
  out.channels = C;
  out.pixels.resize(uint64_t(crop_width) * crop_height * C);
  for (uint32_t y = 0; y < crop_height; ++y)
    for (uint32_t x = 0; x < crop_width; ++x)
      for (uint32_t c = 0; c < C; ++c) {
        float acc = 0;
        for (uint32_t k = 0; k < ty.count[y]; ++k) {
          acc += ty.weights[ty.start[y] + k] * mid[(uint64_t(ty.first[y] - row0 + k) * crop_width + x) * C + c];
        }
        out.pixels[(uint64_t(y) * crop_width + x) * C + c] = uint8_t(std::clamp(std::lround(acc), 0l, 255l));
      }
  return out;
}

HostTensor preprocess_image(const Image& image, const Preprocess& p, uint32_t channels,
                            uint32_t height, uint32_t width) {
  if (image.channels != channels) {
    throw Error("preprocess_image: image has " + std::to_string(image.channels) +
                " channels, the network takes " + std::to_string(channels));
  }
  if (p.mean.size() != channels || p.std.size() != channels) {
    throw Error("preprocess_image: mean and std need one value per channel");
  }
  if (image.width == 0 || image.height == 0 || image.pixels.size() != uint64_t(image.width) * image.height * channels) {
    throw Error("preprocess_image: " + std::to_string(image.pixels.size()) + " bytes are not a " +
                std::to_string(image.width) + "x" + std::to_string(image.height) + " image");
  }
  const uint32_t long_side = std::max(image.width, image.height), short_side = std::min(image.width, image.height);
  if (long_side > uint64_t(kMaxAspectRatio) * short_side) {
    throw Error("an image of " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                " pixels is more than " + std::to_string(kMaxAspectRatio) +
                " times as long as it is wide: its centre crop would be meaningless");
  }
  const Image* src = &image;
  Image cropped;
  if (image.width != width || image.height != height) {
    // Shorter side to p.resize (never below the crop), the other keeping the aspect ratio; the
    // centre crop is resized alone (the same pixels as resizing all, then cropping).
    const uint32_t target = std::max({p.resize, width, height});
    const double scale = double(target) / short_side;
    const uint32_t rw = std::max<uint32_t>(width, uint32_t(std::lround(image.width * scale)));
    const uint32_t rh = std::max<uint32_t>(height, uint32_t(std::lround(image.height * scale)));
    cropped = resize_crop_image(image, rw, rh, (rw - width) / 2, (rh - height) / 2, width, height);
    src = &cropped;
  }
  HostTensor t(Shape{1, channels, height, width});
  for (uint32_t c = 0; c < channels; ++c) {
    const uint32_t from = p.bgr && channels == 3 ? 2 - c : c;
    for (uint32_t y = 0; y < height; ++y)
      for (uint32_t x = 0; x < width; ++x) {
        const uint8_t v = src->pixels[((uint64_t(y) * src->width) + x) * channels + from];
        t.data[(uint64_t(c) * height + y) * width + x] = (v / 255.0f - p.mean[c]) / p.std[c];
      }
  }
  return t;
}

}  // namespace vkalex
