// Images from files, and their preprocessing into a network's input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vkalex/cpu.hpp"
#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// 8-bit pixels, rows top to bottom, `channels` interleaved (1 = gray, 3 = RGB).
struct Image {
  uint32_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Largest image accepted, checked from the file's header before any pixel is decoded.
constexpr uint64_t kMaxImagePixels = 100'000'000;
constexpr uint32_t kMaxImageSide = 32768;
// The longest side at most this many times the shorter (a panorama of 100:1 still passes).
constexpr uint32_t kMaxAspectRatio = 100;
// Largest image file read (only regular files are read).
constexpr uint64_t kMaxImageFileBytes = 256ull << 20;

// Decodes JPEG, PNG, BMP, TGA, GIF (first frame) or PNM into `channels` channels (1 or 3):
// gray is repeated into RGB, RGB is converted to gray by luma, alpha is dropped (as PIL's
// convert does). Throws Error naming the file for a missing, truncated or non-image file
// and for dimensions beyond the limits above.
Image load_image(const std::string& path, uint32_t channels);

// The image with `channels` channels (1 or 3), converted as load_image converts: gray repeated
// into RGB, RGB to gray by stb's integer luma ((77 R + 150 G + 29 B) >> 8). Throws Error for
// a channel count other than 1 and 3, or pixels that do not match the size.
Image convert_channels(const Image& image, uint32_t channels);

// How a model wants its input prepared (from its description).
struct Preprocess {
  uint32_t resize = 256;  // shorter side resized to this (bilinear) ...
  uint32_t crop = 224;    // ... then the centre crop of the input size
  std::vector<float> mean{0.485f, 0.456f, 0.406f};  // per channel, after scaling to [0, 1]
  std::vector<float> std{0.229f, 0.224f, 0.225f};
  bool bgr = false;       // channel order of the network's input
};

// Turns an image into a [1, channels, height, width] input (a batch of one): an image already exactly
// width x height is used as it is; otherwise its shorter side is resized to p.resize and the
// centre width x height cut out (only that window is computed, so the work and memory follow the
// network's input size, not the image's). Values are scaled to [0, 1], then (v - mean) / std.
// Throws Error for an image more than kMaxAspectRatio times as long as it is wide.
HostTensor preprocess_image(const Image& image, const Preprocess& p, uint32_t channels,
                            uint32_t height, uint32_t width);

// Bilinear resize (a triangle filter, widened when shrinking so that it antialiases).
Image resize_image(const Image& image, uint32_t width, uint32_t height);
// The window [x0, x0 + crop_width) x [y0, y0 + crop_height) of resize_image(image, width,
// height), pixel for pixel, computed without the rest of the resized image.
Image resize_crop_image(const Image& image, uint32_t width, uint32_t height, uint32_t x0, uint32_t y0,
                        uint32_t crop_width, uint32_t crop_height);

}  // namespace vkalex
VKALEX_PUBLIC_END
