// safetensors and images: round trips, and every kind of damaged file refused clearly.
#include <stb_image_write.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <functional>
#include <limits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common.hpp"

using namespace vkalex;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A safetensors file from a header (as JSON) and raw data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

}  // namespace

TEST_CASE("safetensors round trip", "[io][safetensors]") {
  test::TempDir dir;
  const std::string path = dir / "w.safetensors";
  std::map<std::string, HostTensor> tensors;
  tensors.emplace("a.weight", HostTensor(Shape{2, 3}, random_uniform(6, test::seed())));
  tensors.emplace("b", HostTensor(Shape{5}, random_uniform(5, test::seed() + 1)));
  tensors.emplace("scalar", HostTensor(Shape{}, {42.0f}));
  tensors.emplace("empty", HostTensor(Shape{0, 4}, {}));
  save_safetensors(path, tensors, {{"epoch", "3"}});
  const SafeTensors f(path);
  CHECK(f.entries().size() == 4);
  CHECK(f.metadata().at("epoch") == "3");
  for (const auto& [name, t] : tensors) {
    const HostTensor r = f.read(name);
    CHECK(r.shape == t.shape);
    CHECK(r.data == t.data);
  }
  // Data starts 8-byte aligned, as the format recommends.
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK((8 + n) % 8 == 0);
  // No temporary file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 1);
  CHECK_THROWS_WITH(save_safetensors((dir.path / "no/such/dir/w.safetensors").string(), tensors),
                    Catch::Contains("cannot write"));
}

TEST_CASE("safetensors F16 and BF16 are read as float", "[io][safetensors]") {
  test::TempDir dir;
  const std::string path = dir / "h.safetensors";
  // 1.0, -2.0, 65504 (largest half), a subnormal (2^-24), and bfloat16 1.5 and -0.25.
  const std::string data("\x00\x3c\x00\xc0\xff\x7b\x01\x00\xc0\x3f\x80\xbe", 12);
  write_file(path, safetensors_bytes(
                       R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}})",
                       data));
  const SafeTensors f(path);
  CHECK(f.read("h").data == std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)});
  CHECK(f.read("b").data == std::vector<float>{1.5f, -0.25f});
}

TEST_CASE("damaged safetensors files are refused naming the problem", "[io][safetensors][errors]") {
  test::TempDir dir;
  const std::string path = dir / "bad.safetensors";
  const std::string ok_header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto refuse = [&](const std::string& bytes, const std::string& what) {
    write_file(path, bytes);
    CHECK_THROWS_WITH(SafeTensors(path), Catch::Contains(path) && Catch::Contains(what));
  };
  write_file(path, safetensors_bytes(ok_header, floats({1, 2})));
  CHECK(SafeTensors(path).read("w").data == std::vector<float>{1, 2});

  SECTION("truncated data") { refuse(safetensors_bytes(ok_header, floats({1})), "run past the data"); }
  SECTION("truncated in the length") { refuse(std::string("\x10\x00\x00", 3), "too short"); }
  SECTION("header length past the end") {
    std::string b = safetensors_bytes(ok_header, floats({1, 2}));
    b[0] = '\xff';
    b[1] = '\xff';
    refuse(b, "runs past the end of the file");
  }
  SECTION("absurd header length") {
    std::string b = safetensors_bytes(ok_header, floats({1, 2}));
    for (int i = 0; i < 8; ++i) b[i] = '\xff';
    refuse(b, "past the end");
  }
  SECTION("header not JSON") { refuse(safetensors_bytes("{not json", ""), "not valid JSON"); }
  SECTION("overlapping offsets") {
    refuse(safetensors_bytes(
               R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               floats({1, 2, 3})),
           "overlap");
  }
  SECTION("offsets out of range") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", floats({1, 2})),
           "tensor \"w\"");
  }
  SECTION("reversed offsets") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", floats({1, 2})),
           "reversed");
  }
  SECTION("unknown dtype") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", floats({1, 2})),
           "unknown dtype \"F31\"");
  }
  SECTION("shape that does not match the byte range") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", floats({1, 2})),
           "needs 12 bytes");
  }
  SECTION("negative dimension") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", floats({1, 2})),
           "bad dimension");
  }
  SECTION("a tensor named twice") {
    refuse(safetensors_bytes(
               R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               floats({1, 2})),
           "names \"w\" twice");
  }
  SECTION("a field named twice") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"shape":[1],"data_offsets":[0,8]}})", floats({1, 2})),
           "names \"shape\" twice");
  }
  SECTION("missing field") {
    refuse(safetensors_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", floats({1, 2})), "missing shape");
  }
  SECTION("not a file") {
    CHECK_THROWS_WITH(SafeTensors(dir.path.string()), Catch::Contains("not a regular file"));
    CHECK_THROWS_WITH(SafeTensors(dir / "absent"), Catch::Contains("cannot open"));
  }
  SECTION("a dtype vkalex does not read") {
    write_file(path, safetensors_bytes(R"({"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", floats({1, 2})));
    CHECK_THROWS_WITH(SafeTensors(path).read("w"), Catch::Contains("I32"));
    CHECK_THROWS_WITH(SafeTensors(path).read("v"), Catch::Contains("no tensor \"v\""));
  }
}

TEST_CASE("weights that do not fit the model are refused naming the tensor", "[io][safetensors][net]") {
  Context& ctx = test::gpu();
  const ModelDesc m = parse_model(R"({
    "name": "small", "input": {"channels": 1, "height": 4, "width": 4},
    "preprocess": {"resize": 4, "mean": [0], "std": [1]}, "classes": 3,
    "layers": [{"type": "flatten"}, {"name": "fc", "type": "linear", "out_features": 3, "weight": "fc.w", "bias": "fc.b"},
               {"type": "softmax"}]})",
                                  "small", ".");
  test::TempDir dir;
  const std::string path = dir / "w.safetensors";
  Net net(ctx, m);
  auto params = random_parameters(m, test::seed());
  save_safetensors(path, params);
  CHECK(net.load_weights(SafeTensors(path)).empty());
  CHECK(net.parameters().at("fc.w").data == params.at("fc.w").data);

  auto extra = params;
  extra.emplace("unused", HostTensor(Shape{1}, {0}));
  save_safetensors(path, extra);
  CHECK(net.load_weights(SafeTensors(path)) == std::vector<std::string>{"unused"});

  auto missing = params;
  missing.erase("fc.b");
  save_safetensors(path, missing);
  CHECK_THROWS_WITH(net.load_weights(SafeTensors(path)), Catch::Contains("\"fc.b\"") && Catch::Contains("missing"));

  auto wrong = params;
  wrong.at("fc.w") = HostTensor(Shape{3, 15}, std::vector<float>(45));
  save_safetensors(path, wrong);
  CHECK_THROWS_WITH(net.load_weights(SafeTensors(path)), Catch::Contains("\"fc.w\" has shape [3, 15]") && Catch::Contains("[3, 16]"));
  // Nothing was loaded from the refused files.
  CHECK(net.parameters().at("fc.w").data == params.at("fc.w").data);
  test::require_no_validation_messages(ctx);
}

TEST_CASE("images decode, gray becomes RGB, exact sizes pass unchanged", "[io][image]") {
  test::TempDir dir;
  const uint32_t W = 7, H = 5;
  std::vector<uint8_t> rgb(W * H * 3), gray(W * H);
  for (uint32_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 37 + 11);
  for (uint32_t i = 0; i < gray.size(); ++i) gray[i] = uint8_t(i * 13);
  REQUIRE(stbi_write_png((dir / "rgb.png").c_str(), W, H, 3, rgb.data(), W * 3));
  REQUIRE(stbi_write_png((dir / "gray.png").c_str(), W, H, 1, gray.data(), W));
  REQUIRE(stbi_write_jpg((dir / "rgb.jpg").c_str(), W, H, 3, rgb.data(), 100));
  std::vector<uint8_t> rgba(W * H * 4, 200);
  REQUIRE(stbi_write_png((dir / "rgba.png").c_str(), W, H, 4, rgba.data(), W * 4));

  const Image png = load_image(dir / "rgb.png", 3);
  CHECK(png.width == W);
  CHECK(png.height == H);
  CHECK(png.pixels == rgb);
  const Image g = load_image(dir / "gray.png", 3);
  for (uint32_t i = 0; i < W * H; ++i) {
    REQUIRE(g.pixels[3 * i] == gray[i]);
    REQUIRE(g.pixels[3 * i + 1] == gray[i]);
    REQUIRE(g.pixels[3 * i + 2] == gray[i]);
  }
  CHECK(load_image(dir / "gray.png", 1).pixels == gray);
  CHECK(load_image(dir / "rgba.png", 3).pixels == std::vector<uint8_t>(W * H * 3, 200));
  const Image jpg = load_image(dir / "rgb.jpg", 3);
  CHECK(jpg.width == W);
  CHECK(jpg.height == H);

  // An image already of the input size: no resize, no crop; exactly (v/255 - mean) / std.
  Preprocess p;
  p.mean = {0.5f, 0.25f, 0.0f};
  p.std = {0.5f, 2.0f, 1.0f};
  const Image sq = load_image(dir / "rgb.png", 3);
  const HostTensor x = preprocess_image(sq, p, 3, H, W);
  for (uint32_t c = 0; c < 3; ++c)
    for (uint32_t i = 0; i < W * H; ++i) {
      REQUIRE(x.data[c * W * H + i] == (rgb[i * 3 + c] / 255.0f - p.mean[c]) / p.std[c]);
    }
  p.bgr = true;
  const HostTensor xb = preprocess_image(sq, p, 3, H, W);
  CHECK(xb.data[0] == (rgb[2] / 255.0f - p.mean[0]) / p.std[0]);
}

TEST_CASE("resizing and centre crop", "[io][image]") {
  Image flat{40, 30, 3, std::vector<uint8_t>(40 * 30 * 3, 90)};
  const Image small = resize_image(flat, 13, 7);
  CHECK(small.pixels == std::vector<uint8_t>(13 * 7 * 3, 90));
  // A 2x2 checkerboard shrunk by 2 averages to grey (the filter antialiases).
  Image board{8, 8, 1, {}};
  for (uint32_t y = 0; y < 8; ++y)
    for (uint32_t x = 0; x < 8; ++x) board.pixels.push_back((x + y) % 2 ? 255 : 0);
  for (uint8_t v : resize_image(board, 4, 4).pixels) {
    CHECK(v >= 120);
    CHECK(v <= 135);
  }
  // Shorter side to `resize`, then the centre: a left-dark, right-bright image keeps its middle.
  Image wide{64, 16, 1, {}};
  for (uint32_t y = 0; y < 16; ++y)
    for (uint32_t x = 0; x < 64; ++x) wide.pixels.push_back(x < 32 ? 0 : 255);
  Preprocess p;
  p.resize = 8;
  p.mean = {0};
  p.std = {1};
  const HostTensor t = preprocess_image(wide, p, 1, 8, 8);  // 64x16 -> 32x8, crop x 12..20
  CHECK(t.data[0] == 0.0f);
  CHECK(t.data[7] == 1.0f);
}

TEST_CASE("non-images, truncated and absurd images are refused", "[io][image][errors]") {
  test::TempDir dir;
  std::vector<uint8_t> rgb(16 * 16 * 3, 7);
  REQUIRE(stbi_write_png((dir / "ok.png").c_str(), 16, 16, 3, rgb.data(), 16 * 3));
  REQUIRE(stbi_write_jpg((dir / "ok.jpg").c_str(), 16, 16, 3, rgb.data(), 90));
  const std::string png = read_file(dir / "ok.png");
  write_file(dir / "text.png", "this is not an image at all\n");
  CHECK_THROWS_WITH(load_image(dir / "text.png", 3), Catch::Contains("text.png") && Catch::Contains("not an image"));
  write_file(dir / "cut.png", png.substr(0, png.size() / 2));
  CHECK_THROWS_WITH(load_image(dir / "cut.png", 3), Catch::Contains("cut.png"));
  const std::string jpg = read_file(dir / "ok.jpg");
  write_file(dir / "cut.jpg", jpg.substr(0, 40));
  CHECK_THROWS_WITH(load_image(dir / "cut.jpg", 3), Catch::Contains("cut.jpg"));
  // PNG headers claiming 12000 x 12000 and 40000 x 10 pixels: refused before any pixel is decoded.
  std::string huge = png;
  const char square[8] = {0, 0, 0x2e, (char)0xe0, 0, 0, 0x2e, (char)0xe0};
  huge.replace(16, 8, square, 8);
  write_file(dir / "huge.png", huge);
  CHECK_THROWS_WITH(load_image(dir / "huge.png", 3), Catch::Contains("12000x12000") && Catch::Contains("limit"));
  const char wide[8] = {0, 0, (char)0x9c, 0x40, 0, 0, 0, 10};
  huge.replace(16, 8, wide, 8);
  write_file(dir / "wide.png", huge);
  CHECK_THROWS_WITH(load_image(dir / "wide.png", 3), Catch::Contains("40000x10") && Catch::Contains("limit"));
  // PNM: 16-bit and truncated ones are refused before the decoder sees them (Debian's stb
  // crashes on some, found by tests/fuzz); a whole 8-bit one decodes.
  write_file(dir / "deep.pgm", "P5\n4 4\n65535\n" + std::string(32, '\x7f'));
  CHECK_THROWS_WITH(load_image(dir / "deep.pgm", 1), Catch::Contains("16-bit PNM") && Catch::Contains("maxval 65535"));
  write_file(dir / "cut.ppm", "P6\n# a comment\n889 889\n255\n" + std::string(100, '\x10'));
  CHECK_THROWS_WITH(load_image(dir / "cut.ppm", 3), Catch::Contains("truncated PNM") && Catch::Contains("need 2370990 bytes, the file has 127"));
  write_file(dir / "ok.ppm", "P6\n2 1\n255\n" + std::string("\x01\x02\x03\x04\x05\x06", 6));
  CHECK(load_image(dir / "ok.ppm", 3).pixels == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
  CHECK_THROWS_WITH(load_image(dir / "absent.png", 3), Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(load_image(dir.path.string(), 3), Catch::Contains(dir.path.string()));
}

TEST_CASE("every file reader takes regular files only, never blocks on a FIFO and checks the size before reading",
          "[io][errors][hardening]") {
  test::TempDir dir;
  const std::string fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string folder = dir.path.string();
  // A sparse file over each limit: its size is refused without reading a byte.
  auto sparse = [&](const char* name, uint64_t bytes) {
    const std::string p = dir / name;
    std::ofstream(p).close();
    fs::resize_file(p, bytes);
    return p;
  };
  const std::string big_model = sparse("big.json", kMaxModelFileBytes + 1);
  const std::string big_labels = sparse("big.txt", kMaxLabelsFileBytes + 1);
  const std::string big_image = sparse("big.png", kMaxImageFileBytes + 1);
  const std::string big_idx = sparse("big-idx", (512ull << 20) + 1);
  struct Case {
    std::string what, path;
    std::function<void(const std::string&)> read;
  };
  const std::vector<Case> readers = {
      {"model description", "", [](const std::string& p) { load_model(p); }},
      {"class names", "", [](const std::string& p) { load_labels(p, 10); }},
      {"safetensors", "", [](const std::string& p) { SafeTensors{p}; }},
      {"image", "", [](const std::string& p) { load_image(p, 3); }},
      {"IDX", "", [](const std::string& p) { load_idx(p, p, {"a", "b"}); }},
  };
  int refused = 0;
  for (const Case& c : readers) {
    for (const std::string& p : {fifo, std::string("/dev/zero"), folder}) {
      INFO(c.what << " from " << p);
      CHECK_THROWS_WITH(c.read(p), Catch::Contains(p) && Catch::Contains("not a regular file") &&
                                       Catch::Contains(c.what));
      ++refused;
    }
  }
  CHECK(refused == 15);
  CHECK_THROWS_WITH(load_model(big_model), Catch::Contains("over the model description limit"));
  CHECK_THROWS_WITH(load_labels(big_labels, 10), Catch::Contains("over the class names limit"));
  CHECK_THROWS_WITH(load_image(big_image, 3), Catch::Contains("over the image limit"));
  CHECK_THROWS_WITH(load_idx(big_idx, big_idx, {"a"}), Catch::Contains("over the IDX limit"));
}

TEST_CASE("a NaN or an infinity in weights, checkpoints and outputs is refused, naming the tensor and the element",
          "[io][safetensors][errors][hardening]") {
  test::TempDir dir;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // F32 with a NaN at [1, 0], F16 with -Inf at [2] (0xfc00), BF16 with +Inf (0x7f80).
  write_file(dir / "bad.safetensors",
             safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                               R"("h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},)"
                               R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[22,24]}})",
                               floats({1.0f, 2.0f, nan, 3.0f}) + std::string("\x00\x3c\x00\x3c\x00\xfc\x80\x7f", 8)));
  const SafeTensors f(dir / "bad.safetensors");
  CHECK_THROWS_WITH(f.read("a"), Catch::Contains("bad.safetensors: tensor \"a\" holds NaN at element [1, 0]"));
  CHECK_THROWS_WITH(f.read("h"), Catch::Contains("tensor \"h\" holds -Inf at element [2]"));
  CHECK_THROWS_WITH(f.read("b"), Catch::Contains("tensor \"b\" holds +Inf at element [0]"));

  // Writing one is refused before anything is written: the old file stays.
  const std::string path = dir / "w.safetensors";
  save_safetensors(path, {{"x", HostTensor(Shape{3}, {1, 2, 3})}});
  const std::string before = read_file(path);
  CHECK_THROWS_WITH(save_safetensors(path, {{"x", HostTensor(Shape{3}, {1, inf, 3})}}),
                    Catch::Contains("w.safetensors: not written: tensor \"x\" holds +Inf at element [1]"));
  CHECK(read_file(path) == before);
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
  CHECK(files == 2);  // bad.safetensors and w.safetensors: no temporary left

  // A network output holding NaN or an infinity is no classification.
  ForwardResult r;
  r.batch = 2;
  r.classes = 3;
  r.logits = {0, 1, 2, 3, 4, 5};
  r.probabilities = {0.2f, 0.3f, 0.5f, 0.1f, 0.1f, 0.8f};
  CHECK_NOTHROW(require_finite(r));
  r.probabilities[4] = nan;
  CHECK_THROWS_WITH(require_finite(r), Catch::Contains("image 1 holds NaN (probability of class 1)"));
  r.logits[2] = -inf;
  CHECK_THROWS_WITH(require_finite(r), Catch::Contains("image 0 holds an infinity (logit of class 2)"));
}

namespace {

// An independent reference of the resize: every output pixel directly as a 2-D weighted sum
// over the whole input, in double, from the filter's definition (a triangle of half-width 1 in
// output pixels, so 1 / scale input pixels when shrinking; weights normalised per axis). The
// engine's two passes in float with clipped tap ranges must give the same pixel, but where the
// exact value lies within 1e-3 of a rounding boundary (either neighbour is then right).
std::vector<double> axis_weights(uint32_t in, uint32_t out, uint32_t o) {
  const double scale = double(out) / in, support = scale < 1 ? 1 / scale : 1;
  const double center = (o + 0.5) / scale;
  std::vector<double> w(in);
  double sum = 0;
  for (uint32_t i = 0; i < in; ++i) {
    w[i] = std::max(0.0, 1 - std::fabs(i + 0.5 - center) / support);
    sum += w[i];
  }
  for (double& v : w) v /= sum;
  return w;
}

double reference_pixel(const Image& img, uint32_t rw, uint32_t rh, uint32_t x, uint32_t y, uint32_t c) {
  const auto wx = axis_weights(img.width, rw, x), wy = axis_weights(img.height, rh, y);
  double acc = 0;
  for (uint32_t j = 0; j < img.height; ++j) {
    if (wy[j] == 0) continue;
    for (uint32_t i = 0; i < img.width; ++i) acc += wy[j] * wx[i] * img.pixels[(uint64_t(j) * img.width + i) * img.channels + c];
  }
  return std::clamp(acc, 0.0, 255.0);
}

bool same_pixel(uint8_t got, double exact) {
  const double frac = exact - std::floor(exact);
  if (std::fabs(frac - 0.5) < 1e-3) return got == uint8_t(std::floor(exact)) || got == uint8_t(std::ceil(exact));
  return got == uint8_t(std::lround(exact));
}

}  // namespace

TEST_CASE("resize and centre crop give every value of an independent direct 2-D reference", "[io][image][hardening]") {
  std::mt19937 rng(test::seed());
  // Shrinking, enlarging, mixed, odd sizes, both aspect ratios, gray and RGB.
  const std::vector<std::array<uint32_t, 3>> sizes = {
      {37, 23, 3}, {9, 14, 1}, {64, 16, 1}, {5, 5, 3}, {120, 41, 3}, {17, 90, 1}, {2, 3, 3}};
  size_t values = 0, boundary = 0;
  for (const auto& [w, h, ch] : sizes) {
    Image img{w, h, ch, std::vector<uint8_t>(uint64_t(w) * h * ch)};
    for (auto& v : img.pixels) v = uint8_t(rng() % 256);
    for (const auto& [rw, rh] : std::vector<std::pair<uint32_t, uint32_t>>{{11, 7}, {w * 2 + 1, h + 3}, {3, h * 2}}) {
      const Image got = resize_image(img, rw, rh);
      REQUIRE(got.width == rw);
      REQUIRE(got.height == rh);
      for (uint32_t y = 0; y < rh; ++y)
        for (uint32_t x = 0; x < rw; ++x)
          for (uint32_t c = 0; c < ch; ++c) {
            const double exact = reference_pixel(img, rw, rh, x, y, c);
            const uint8_t v = got.pixels[(uint64_t(y) * rw + x) * ch + c];
            INFO(w << "x" << h << " -> " << rw << "x" << rh << " at (" << x << ", " << y << ", " << c << "): " << int(v)
                   << " vs " << exact);
            REQUIRE(same_pixel(v, exact));
            ++values;
            boundary += std::fabs(exact - std::floor(exact) - 0.5) < 1e-3;
          }
      // A window of the resized image, computed alone: the same pixels.
      if (rw > 2 && rh > 2) {
        const Image window = resize_crop_image(img, rw, rh, 1, 1, rw - 2, rh - 2);
        for (uint32_t y = 0; y < rh - 2; ++y)
          for (uint32_t x = 0; x < rw - 2; ++x)
            for (uint32_t c = 0; c < ch; ++c)
              REQUIRE(window.pixels[(uint64_t(y) * (rw - 2) + x) * ch + c] ==
                      got.pixels[(uint64_t(y + 1) * rw + x + 1) * ch + c]);
      }
    }
    // The whole preprocessing: shorter side to `resize`, centre crop, normalised; every value.
    Preprocess p;
    p.resize = 12;
    p.mean = std::vector<float>(ch, 0.4f);
    p.std = std::vector<float>(ch, 0.3f);
    const uint32_t side = 10;
    const HostTensor t = preprocess_image(img, p, ch, side, side);
    const double scale = double(p.resize) / std::min(w, h);
    const uint32_t rw = std::max<uint32_t>(side, uint32_t(std::lround(w * scale)));
    const uint32_t rh = std::max<uint32_t>(side, uint32_t(std::lround(h * scale)));
    const uint32_t x0 = (rw - side) / 2, y0 = (rh - side) / 2;
    for (uint32_t c = 0; c < ch; ++c)
      for (uint32_t y = 0; y < side; ++y)
        for (uint32_t x = 0; x < side; ++x) {
          const double exact = reference_pixel(img, rw, rh, x0 + x, y0 + y, c);
          const float got = t.data[(uint64_t(c) * side + y) * side + x];
          // Back to the 8-bit pixel the engine normalised (exact in float for these values).
          const long pixel = std::lround((double(got) * p.std[c] + p.mean[c]) * 255.0);
          INFO(w << "x" << h << " preprocessed at (" << x << ", " << y << ", " << c << "): " << got << " vs " << exact);
          REQUIRE(pixel >= 0);
          REQUIRE(pixel <= 255);
          REQUIRE(same_pixel(uint8_t(pixel), exact));
          REQUIRE(got == (uint8_t(pixel) / 255.0f - p.mean[c]) / p.std[c]);
          ++values;
        }
  }
  CHECK(values > 10000);
  CHECK(boundary < values / 100);  // the tie rule is rare, not what makes the test pass
}

TEST_CASE("a long thin image is refused fast, and the preprocessing's work follows the input size", "[io][image][errors][hardening]") {
  // 32768x1: the resized image would be 8388608x256 (6.4 GB); refused for its aspect ratio.
  const Image thin{32768, 1, 3, std::vector<uint8_t>(32768 * 3, 100)};
  Preprocess p;
  p.resize = 256;
  CHECK_THROWS_WITH(preprocess_image(thin, p, 3, 224, 224), Catch::Contains("32768x1") && Catch::Contains("100 times"));
  // 30000x300 (100:1) passes, through a 22400x224 resize of which only 224x224 is computed.
  const Image wide{30000, 300, 3, std::vector<uint8_t>(30000ull * 300 * 3, 100)};
  const HostTensor t = preprocess_image(wide, p, 3, 224, 224);
  CHECK(t.shape == Shape{1, 3, 224, 224});
  for (uint32_t c = 0; c < 3; ++c)
    for (uint32_t i = 0; i < 224 * 224; ++i) REQUIRE(t.data[c * 224 * 224 + i] == (100 / 255.0f - p.mean[c]) / p.std[c]);
}
