// The tuning file's format: JSON, one file per device UUID and driver version. It knows no op
// and no device API: op names, keys and variants are plain strings here.
#include "vkalex/tuning.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vkalex/error.hpp"
#include "vkalex/files.hpp"

namespace vkalex {

namespace {

constexpr const char* kSchema = "vkalex-tuning/1";
// Far more than any model has shapes: a bigger file is not ours.
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;

bool is_nonempty_string(const nlohmann::json& j, const char* field) {
  const auto it = j.find(field);
  return it != j.end() && it->is_string() && !it->get<std::string>().empty();
}

// The entries of `doc` for `device`, or an empty status-carrying result saying why not.
TuningFile entries_of(const nlohmann::json& doc, const DeviceInfo& device) {
  TuningFile out;
  if (!doc.is_object() || doc.value("schema", nlohmann::json()) != kSchema) {
    out.status = "ignored: not a vkalex tuning file (schema " + std::string(kSchema) + ")";
    return out;
  }
  if (doc.value("uuid", nlohmann::json()) != uuid_hex(device.uuid)) {
    out.status = "ignored: made for another device";
    return out;
  }
  const auto driver = doc.value("driver_version", nlohmann::json());
  if (!driver.is_number_unsigned() || driver.get<uint64_t>() != device.driver_version) {
    out.status = "ignored: made for another driver version";
    return out;
  }
  const auto list = doc.value("entries", nlohmann::json());
  if (!list.is_array()) {
    out.status = "ignored: no list of entries";
    return out;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& e = list[i];
    const bool ms_ok = !e.contains("ms") || (e["ms"].is_object() && std::all_of(e["ms"].begin(), e["ms"].end(),
                                                                                [](const auto& v) { return v.is_number(); }));
    if (!e.is_object() || !is_nonempty_string(e, "op") || !is_nonempty_string(e, "key") ||
        !is_nonempty_string(e, "variant") || !ms_ok || (e.contains("measured_on") && !e["measured_on"].is_string())) {
      out.status = "ignored: entry " + std::to_string(i) + " is damaged";
      out.entries.clear();
      return out;
    }
    TuningEntry t;
    t.op = e["op"];
    t.key = e["key"];
    t.variant = e["variant"];
    if (e.contains("ms")) t.ms = e["ms"].get<std::map<std::string, double>>();
    t.measured_on = e.value("measured_on", "");
    out.entries.push_back(std::move(t));
  }
  out.status = "loaded";
  return out;
}

}  // namespace

std::string uuid_hex(const std::array<uint8_t, 16>& uuid) {
  std::string s;
  char buf[3];
  for (uint8_t b : uuid) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    s += buf;
  }
  return s;
}

TuningFile read_tuning_file(const std::string& path, const DeviceInfo& device) {
  try {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return {{}, "no tuning file yet"};
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size > kMaxFileBytes) return {{}, "ignored: not a vkalex tuning file (size)"};
    std::ifstream in(path, std::ios::binary);
    if (!in) return {{}, "ignored: cannot be read"};
    std::stringstream text;
    text << in.rdbuf();
    const auto doc = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return {{}, "ignored: not JSON (damaged or truncated)"};
    return entries_of(doc, device);
  } catch (const std::exception& e) {
    return {{}, std::string("ignored: ") + e.what()};
  }
}

size_t save_tuning_file(const std::string& path, const DeviceInfo& device, const std::vector<TuningEntry>& entries) {
  // Ordered by (op, key) so that the file reads the same however it was built up.
  std::map<std::pair<std::string, std::string>, TuningEntry> merged;
  for (TuningEntry& e : read_tuning_file(path, device).entries) merged[{e.op, e.key}] = std::move(e);
  for (const TuningEntry& e : entries) merged[{e.op, e.key}] = e;

  // Written in the order a reader wants (ordered_json), times to 0.1 microsecond.
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& [where, e] : merged) {
    nlohmann::ordered_json j = {{"op", e.op}, {"key", e.key}, {"variant", e.variant}};
    if (!e.ms.empty()) {
      nlohmann::ordered_json ms = nlohmann::ordered_json::object();
      for (const auto& [variant, t] : e.ms) ms[variant] = std::round(t * 1e4) / 1e4;
      j["ms"] = std::move(ms);
    }
    if (!e.measured_on.empty()) j["measured_on"] = e.measured_on;
    list.push_back(std::move(j));
  }
  const nlohmann::ordered_json doc = {{"schema", kSchema},
                              {"device", device.name},
                              {"uuid", uuid_hex(device.uuid)},
                              {"driver_version", device.driver_version},
                              {"driver", device.driver_name + " " + device.driver_version_string},
                              {"entries", std::move(list)}};
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);  // a failure shows when writing
  write_file_atomically(path, doc.dump(2) + "\n");
  return merged.size();
}

}  // namespace vkalex
