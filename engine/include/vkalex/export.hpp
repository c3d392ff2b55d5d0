// Which symbols the vkalex library exports. The engine is compiled with hidden visibility:
// everything declared between VKALEX_PUBLIC_BEGIN and VKALEX_PUBLIC_END (the public headers,
// include/vkalex) is exported from the shared library, nothing else is, and no symbol of what
// the engine uses inside (stb, nlohmann::json) reaches the program that links it.
#pragma once

// GCC's pragma does not reach function templates (their explicit instantiations in the
// library follow the -fvisibility flag), so each public one is marked VKALEX_API.
#if defined(__GNUC__) || defined(__clang__)
#define VKALEX_API __attribute__((visibility("default")))
#define VKALEX_PUBLIC_BEGIN _Pragma("GCC visibility push(default)")
#define VKALEX_PUBLIC_END _Pragma("GCC visibility pop")
#else
#define VKALEX_API
#define VKALEX_PUBLIC_BEGIN
#define VKALEX_PUBLIC_END
#endif
