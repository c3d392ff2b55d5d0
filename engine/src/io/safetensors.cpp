// safetensors: memory-mapped reading with every header field checked, and atomic writing.
#include "vkalex/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "base/atomic_file.hpp"
#include "base/input_file.hpp"
#include "base/json_strict.hpp"
#include "vkalex/error.hpp"

namespace vkalex {

namespace {

// Header lengths beyond this are refused before anything is allocated for them.
constexpr uint64_t kMaxHeader = 100ull << 20;

uint32_t dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, uint32_t> sizes{
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1},
      {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

}  // namespace

float bfloat16_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

SafeTensors::SafeTensors(const std::string& path) : path_(path) {
  auto fail = [&](const std::string& why) -> Error { return Error(path + ": " + why); };
  detail::InputFile file(path, "safetensors", kMaxSafetensorsBytes);
  const uint64_t size = file.size();
  if (size < 8) throw fail("too short for a safetensors file (" + std::to_string(size) + " bytes)");
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd(), 0);
  if (map == MAP_FAILED) throw fail(std::string("cannot map: ") + std::strerror(errno));
  map_ = map;
  map_size_ = size;
  try {
    const auto* bytes = static_cast<const uint8_t*>(map);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
    if (header_len > size - 8) {
      throw fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
                 std::to_string(size) + " bytes)");
    }
    if (header_len > kMaxHeader) throw fail("header length " + std::to_string(header_len) + " is absurd");
    const uint64_t data_size = size - 8 - header_len;
    data_ = bytes + 8 + header_len;

    // A key given twice in one object (two entries for one tensor, say) is refused.
    std::string duplicate;
    nlohmann::json header;
    try {
      const char* text = reinterpret_cast<const char*>(bytes) + 8;
      header = detail::parse_json_unique_keys(text, text + header_len, duplicate);
    } catch (const nlohmann::json::exception& e) {
      throw fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) throw fail("header names \"" + duplicate + "\" twice in one object");
    if (!header.is_object()) throw fail("header is not a JSON object");
    for (const auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        if (!value.is_object()) throw fail("__metadata__ is not an object");
        for (const auto& [k, v] : value.items()) {
          if (!v.is_string()) throw fail("__metadata__ value of \"" + k + "\" is not a string");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      const std::string& tensor = name;  // (clang 14 cannot capture a structured binding)
      auto bad = [&](const std::string& why) { return fail("tensor \"" + tensor + "\": " + why); };
      if (!value.is_object()) throw bad("entry is not an object");
      if (!value.contains("dtype") || !value["dtype"].is_string()) throw bad("missing dtype");
      if (!value.contains("shape") || !value["shape"].is_array()) throw bad("missing shape");
      if (!value.contains("data_offsets") || !value["data_offsets"].is_array() ||
          value["data_offsets"].size() != 2) {
        throw bad("missing data_offsets [begin, end]");
      }
      Entry e;
      e.name = name;
      e.dtype = value["dtype"].get<std::string>();
      const uint32_t esize = dtype_bytes(e.dtype);
      if (esize == 0) throw bad("unknown dtype \"" + e.dtype + "\"");
      std::vector<uint32_t> dims;
      uint64_t numel = 1;
      for (const auto& d : value["shape"]) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > UINT32_MAX) throw bad("shape holds a bad dimension");
        dims.push_back(d.get<uint32_t>());
        numel *= dims.back();
        if (numel > (uint64_t(1) << 40)) throw bad("shape is absurdly large");
      }
      e.shape = Shape(std::move(dims));
      for (const auto& o : value["data_offsets"])
        if (!o.is_number_unsigned()) throw bad("data_offsets are not unsigned integers");
      e.begin = value["data_offsets"][0].get<uint64_t>();
      e.end = value["data_offsets"][1].get<uint64_t>();
      if (e.begin > e.end) throw bad("data_offsets are reversed");
      if (e.end > data_size) {
        throw bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                  ") run past the data (" + std::to_string(data_size) + " bytes)");
      }
      if (e.end - e.begin != numel * esize) {
        throw bad("shape " + e.shape.str() + " of " + e.dtype + " needs " + std::to_string(numel * esize) +
                  " bytes, data_offsets give " + std::to_string(e.end - e.begin));
      }
      entries_.push_back(std::move(e));
    }
    std::vector<const Entry*> by_offset;
    for (const auto& e : entries_) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      if (by_offset[i]->begin < by_offset[i - 1]->end) {
        throw fail("tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name + "\" overlap");
      }
    }
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafeTensors::~SafeTensors() {
  if (map_) ::munmap(map_, map_size_);
}

SafeTensors::SafeTensors(SafeTensors&& o) noexcept
    : path_(std::move(o.path_)), entries_(std::move(o.entries_)), metadata_(std::move(o.metadata_)),
      data_(o.data_), map_(std::exchange(o.map_, nullptr)), map_size_(o.map_size_) {}

SafeTensors& SafeTensors::operator=(SafeTensors&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_size_);
    path_ = std::move(o.path_);
    entries_ = std::move(o.entries_);
    metadata_ = std::move(o.metadata_);
    data_ = o.data_;
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = o.map_size_;
  }
  return *this;
}

bool SafeTensors::contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.name == name; });
}

const SafeTensors::Entry& SafeTensors::entry(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return e;
  throw Error(path_ + ": no tensor \"" + name + "\"");
}

HostTensor SafeTensors::read(const std::string& name) const {
  const Entry& e = entry(name);
  HostTensor t(e.shape);
  const uint8_t* p = data_ + e.begin;
  const size_t n = t.data.size();
  // Little-endian on disk, as on every machine vkalex runs on.
  if (e.dtype == "F32") {
    if (n) std::memcpy(t.data.data(), p, n * 4);  // (an empty tensor has no data pointer)
  } else if (e.dtype == "F16" || e.dtype == "BF16") {
    const bool half = e.dtype == "F16";
    for (size_t i = 0; i < n; ++i) {
      const uint16_t v = uint16_t(p[2 * i] | p[2 * i + 1] << 8);
      t.data[i] = half ? half_to_float(v) : bfloat16_to_float(v);
    }
  } else {
    throw Error(path_ + ": tensor \"" + name + "\" is " + e.dtype + "; vkalex reads F32, F16 and BF16");
  }
  require_finite(t, name, path_);
  return t;
}

void require_finite(const HostTensor& tensor, const std::string& name, const std::string& where) {
  const auto& d = tensor.data;
  const auto bad = std::find_if(d.begin(), d.end(), [](float v) { return !std::isfinite(v); });
  if (bad == d.end()) return;
  uint64_t index = uint64_t(bad - d.begin());
  const Shape& s = tensor.shape;
  std::string at;
  if (s.rank() > 0 && s.numel() == d.size()) {
    std::vector<uint64_t> coords(s.rank());
    for (size_t k = s.rank(); k-- > 0;) {
      coords[k] = index % s[k];
      index /= s[k];
    }
    for (size_t k = 0; k < coords.size(); ++k) at += (k ? ", " : "") + std::to_string(coords[k]);
  } else {
    at = std::to_string(index);
  }
  throw Error(where + ": tensor \"" + name + "\" holds " + (std::isnan(*bad) ? "NaN" : *bad > 0 ? "+Inf" : "-Inf") +
              " at element [" + at + "]");
}

void save_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw Error("save_safetensors: \"__metadata__\" cannot name a tensor");
    if (t.data.size() != t.shape.numel()) {
      throw Error("save_safetensors: tensor \"" + name + "\" holds " + std::to_string(t.data.size()) +
                  " values for shape " + t.shape.str());
    }
    require_finite(t, name, path + ": not written");
    const uint64_t bytes = t.data.size() * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape.dims()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data starts 8-byte aligned (as the format recommends).
  while ((8 + text.size()) % 8) text += ' ';
  detail::AtomicFile file(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  file.write(len, 8);
  file.write(text.data(), text.size());
  for (const auto& [name, t] : tensors) file.write(t.data.data(), t.data.size() * 4);
  file.commit();
}

}  // namespace vkalex
