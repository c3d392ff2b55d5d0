// Internal: JSON from outside, with a key given twice in one object refused (a JSON parser
// would silently keep one of the two values, and a reader could not tell which was meant).
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace vkalex::detail {

// Parses [begin, end); throws nlohmann::json::exception on malformed JSON. `duplicate` gets the
// first key given twice in one object (empty where none is); the caller refuses it by name.
inline nlohmann::json parse_json_unique_keys(const char* begin, const char* end, std::string& duplicate) {
  std::vector<std::set<std::string>> keys;  // the keys of each object open at this point
  duplicate.clear();
  auto watch = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys.emplace_back();
    if (event == E::object_end && !keys.empty()) keys.pop_back();
    if (event == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  return nlohmann::json::parse(begin, end, watch);
}

}  // namespace vkalex::detail
