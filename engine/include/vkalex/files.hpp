// Writing files so that a crash or a full disk never leaves half of one.
#pragma once

#include <string>
#include <string_view>

#include "vkalex/export.hpp"

VKALEX_PUBLIC_BEGIN
namespace vkalex {

// Writes `contents` to a temporary file beside `path`, flushes it to disk and renames it over
// `path`: readers see the old file or the whole new one. On failure the temporary file is
// removed, any old file is left as it was, and Error names the path and the reason.
void write_file_atomically(const std::string& path, std::string_view contents);

}  // namespace vkalex
VKALEX_PUBLIC_END
