#!/usr/bin/env bash
# What a user who installs vkalex gets, checked from outside the tree:
#   check_install.sh SOURCE_DIR BUILD_DIR WORK_DIR
# Installs BUILD_DIR (the tests' own build: static library) and a shared build made here,
# each into a prefix under WORK_DIR. For each prefix: the files are there; a separate project
# (tests/install) builds with find_package(vkalex) and with pkg-config and classifies an image
# correctly; the installed classify, from a copy of the prefix moved elsewhere, finds its
# model files by itself. For the shared library also: its SONAME, and that it exports the
# public API only (no Vulkan, stb or nlohmann symbol, nothing outside namespace vkalex); for
# the static one, that it defines no global vk* symbol. The consumer calls the Vulkan loader
# itself too, as a host does; a second consumer, in C99, uses the C API only (vkalex/vkalex.h).
set -euo pipefail
src=$(cd "$1" && pwd) build=$(cd "$2" && pwd) work=$3
rm -rf "$work" && mkdir -p "$work" && work=$(cd "$work" && pwd)
jobs=$(nproc)
image=$src/samples/data/fashion-test-0000-ankle-boot.png
expected="Ankle boot"
fail() { echo "check_install: $*" >&2; exit 1; }

check_prefix() {
  local kind=$1 prefix=$2 libdir=$3
  echo "== $kind: $prefix"
  for f in include/vkalex/vkalex.hpp include/vkalex/export.hpp "$libdir"/cmake/vkalex/vkalex-config.cmake \
           "$libdir"/cmake/vkalex/vkalex-config-version.cmake "$libdir"/pkgconfig/vkalex.pc \
           share/vkalex/model/alexnet-fashion.json share/vkalex/model/alexnet-fashion.safetensors \
           share/vkalex/model/fashion_classes.txt bin/vkalex-classify bin/vkalex-train bin/vkalex-bench bin/vkalex-info \
           include/vkalex/vkalex.h include/vkalex/host_vulkan.hpp bin/vkalex-embed bin/vkalex-embed-c; do
    [ -e "$prefix/$f" ] || fail "$kind: $f is not installed"
  done
  if grep -rl '#include "\(vk\|ops\|net\|io\|cpu\|base\|check\)/' "$prefix/include"; then
    fail "$kind: an installed header includes an engine-internal one"
  fi

  # find_package
  cmake -S "$src/tests/install" -B "$work/consumer-$kind" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$work/consumer-$kind" >/dev/null
  local model_dir
  model_dir=$(cat "$work/consumer-$kind/model_dir.txt")
  [ "$model_dir" = "$prefix/share/vkalex/model" ] || fail "$kind: VKALEX_MODEL_DIR is $model_dir"
  "$work/consumer-$kind/consumer" "$model_dir" "$image" "$expected"
  "$work/consumer-$kind/consumer_c" "$model_dir" "$image" "$expected"

  # pkg-config (a static library needs its own dependencies listed: --static)
  local static=()
  [ "$kind" = static ] && static=(--static)
  local flags
  flags=$(PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" pkg-config --cflags --libs "${static[@]}" vkalex)
  # shellcheck disable=SC2086
  g++ -std=c++20 -O1 "$src/tests/install/consumer.cpp" -o "$work/consumer-pc-$kind" $flags -lvulkan
  local pc_model_dir
  pc_model_dir=$(PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" pkg-config --variable=modeldir vkalex)
  LD_LIBRARY_PATH="$prefix/$libdir" "$work/consumer-pc-$kind" "$pc_model_dir" "$image" "$expected"
  # The C API from C99, linked by the C compiler driver with pkg-config's flags alone.
  # shellcheck disable=SC2086
  gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O1 -I/usr/include/stb "$src/tests/install/consumer_c.c" \
    -o "$work/consumer-c-pc-$kind" $flags -lstb
  LD_LIBRARY_PATH="$prefix/$libdir" "$work/consumer-c-pc-$kind" "$pc_model_dir" "$image" "$expected"

  # The README's two examples, compiled as its "Embedding" section says.
  readme_example classify.cpp > "$work/readme-$kind.cpp"
  readme_example classify.c > "$work/readme-$kind.c"
  # shellcheck disable=SC2086
  g++ -std=c++20 "$work/readme-$kind.cpp" -o "$work/readme-cpp-$kind" $flags
  # shellcheck disable=SC2086
  gcc -std=c99 -Wall -Wextra -Wpedantic -Werror "$work/readme-$kind.c" -o "$work/readme-c-$kind" -I/usr/include/stb \
    $flags -lstb
  for exe in "$work/readme-cpp-$kind" "$work/readme-c-$kind"; do
    out=$(LD_LIBRARY_PATH="$prefix/$libdir" "$exe" "$pc_model_dir/alexnet-fashion.json" "$image")
    echo "$out" | grep -q "^$expected 0\.99" || fail "$kind: the README's example $exe said: $out"
  done

  # The prefix moved elsewhere: classify finds its library and models beside itself, and no
  # installed program names the source or build tree.
  local moved=$work/moved-$kind
  cp -a "$prefix" "$moved"
  for p in "$moved"/bin/vkalex-*; do
    if grep -qF -e "$src/model" -e "$build" "$p"; then fail "$kind: $p names the source or build tree"; fi
  done
  out=$("$moved/bin/vkalex-classify" --top 1 "$image")
  echo "$out" | grep -q "$expected" || fail "$kind: the moved vkalex-classify said: $out"
  for p in vkalex-embed vkalex-embed-c; do
    out=$("$moved/bin/$p" "$image")
    echo "$out" | sed -n 2p | grep -q "$expected" || fail "$kind: the moved $p said: $out"
  done
  VKALEX_MODEL_DIR=/nonexistent "$moved/bin/vkalex-classify" "$image" >/dev/null 2>"$work/err.txt" &&
    fail "$kind: classify with VKALEX_MODEL_DIR=/nonexistent succeeded"
  grep -q "/nonexistent/alexnet-fashion.json" "$work/err.txt" || fail "$kind: unclear error: $(cat "$work/err.txt")"
  echo "$kind: ok"
}

# The code block after "<!-- example: NAME" in the README.
readme_example() {
  local code
  code=$(awk -v tag="<!-- example: $1 " 'index($0, tag) == 1 {found = 1; next}
    found && /^```/ {if (inside) exit; inside = 1; next}
    inside {print}' "$src/README.md")
  [ -n "$code" ] || fail "the README has no example $1"
  printf '%s\n' "$code"
}

libdir_of() { grep -m1 '^CMAKE_INSTALL_LIBDIR:' "$1/CMakeCache.txt" | cut -d= -f2; }

# The static library of the tests' build.
cmake --install "$build" --prefix "$work/prefix-static" >/dev/null
libdir=$(libdir_of "$build")
# The static archive defines no Vulkan or volk symbol a host's own could collide with.
if nm -g --defined-only "$work/prefix-static/$libdir/libvkalex.a" 2>/dev/null | grep -E ' (vk[A-Z]|volk)' > "$work/leaks.txt"; then
  fail "static: libvkalex.a defines $(head -3 "$work/leaks.txt")"
fi
check_prefix static "$work/prefix-static" "$libdir"

# A shared build of the same sources.
cmake -S "$src" -B "$work/build-shared" -DBUILD_SHARED_LIBS=ON -DVKALEX_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build-shared" -j"$jobs" >/dev/null
cmake --install "$work/build-shared" --prefix "$work/prefix-shared" >/dev/null
libdir=$(libdir_of "$work/build-shared")
lib=$work/prefix-shared/$libdir/libvkalex.so
[ -L "$lib" ] || fail "shared: $lib is missing"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libvkalex.so.0.1 ] || fail "shared: SONAME is '$soname', not libvkalex.so.0.1"
# Every defined dynamic symbol is vkalex's (or the typeinfo and templates of its types).
# (type A: the version node VKALEX_0.1 of vkalex.map)
# (names carry their version: vkalex_version@@VKALEX_0.1)
nm -D --defined-only --demangle "$lib" | awk '$2 != "A"' | cut -d' ' -f3- | sed 's/@@*VKALEX_[0-9.]*$//' > "$work/exports.txt"
[ -s "$work/exports.txt" ] || fail "shared: exports nothing"
if grep -E '^(vk[A-Z]|volk|stbi|stb_)|nlohmann' "$work/exports.txt" > "$work/leaks.txt"; then
  fail "shared: exports symbols that are not vkalex's: $(head -5 "$work/leaks.txt")"
fi
if grep -vE 'vkalex::|^vkalex_[a-z0-9_]+$' "$work/exports.txt" > "$work/foreign.txt"; then
  fail "shared: exports symbols outside namespace vkalex and the C API: $(head -5 "$work/foreign.txt")"
fi
# Every function vkalex.h declares is exported.
for f in $(grep -oE 'VKALEX_C_API [^(]*\(' "$src/engine/include/vkalex/vkalex.h" | grep -oE 'vkalex_[a-z0-9_]+ ?\(' | tr -d ' ('); do
  grep -qx "$f" "$work/exports.txt" || fail "shared: the C API's $f is not exported"
done
echo "shared: $(wc -l < "$work/exports.txt") symbols exported: namespace vkalex and the C API ($(grep -c '^vkalex_' "$work/exports.txt") functions)"
check_prefix shared "$work/prefix-shared" "$libdir"
echo "check_install: all passed"
