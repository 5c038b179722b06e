#!/usr/bin/env bash
# The install test (ctest: install_package). Installs a built libposthog
# tree into a temporary prefix and uses it the way a downstream project
# would, never touching the source tree's headers or build outputs:
#   1. cmake --install BUILD --prefix WORK/prefix; the expected files exist
#   2. the installed .so exports only posthog_* symbols, and exactly the
#      functions include/posthog/posthog.h declares with POSTHOG_API
#   3. examples/basic.c built with `pkg-config --cflags --libs libposthog`
#      (shared) and `pkg-config --static` (libposthog.a + private deps)
#   4. examples/basic.c built by a CMake project with find_package(posthog)
#      against posthog::posthog and posthog::posthog_static
#   5. every binary runs `basic --disabled` (no network) and must exit 0;
#      shared ones must load the installed libposthog.so
#
# Usage: run.sh --source-dir DIR --build-dir DIR --work-dir DIR [--cc CC]
#               [--cmake CMAKE] [--config CFG] [--sanitize LIST]
set -euo pipefail

src= build= work= cc=${CC:-cc} cmake_bin=cmake config= sanitize=
while (($#)); do
  case $1 in
    --source-dir) src=$2 ;;
    --build-dir) build=$2 ;;
    --work-dir) work=$2 ;;
    --cc) cc=$2 ;;
    --cmake) cmake_bin=$2 ;;
    --config) config=$2 ;;
    --sanitize) sanitize=$2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $src && -n $build && -n $work ]] || { echo "run.sh: need --source-dir --build-dir --work-dir" >&2; exit 2; }

failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"

# Sanitized builds: the installed library needs the sanitizer runtime, so
# the consumers are compiled and linked with the same flags.
san_flags=()
if [[ -n $sanitize ]]; then
  san_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)
fi
cflags=(-std=c11 -Wall -Wextra -Werror "${san_flags[@]}")

# ------------------------------------------------------------------ 1 install
step "cmake --install into $prefix"
"$cmake_bin" --install "$build" --prefix "$prefix" ${config:+--config "$config"} >"$work/install.log"
pc=$(find "$prefix" -name libposthog.pc -path '*/pkgconfig/*' | head -n1)
[[ -n $pc ]] || { cat "$work/install.log"; echo "FAIL: no libposthog.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
for f in "$prefix/include/posthog/posthog.h" "$libdir/libposthog.a" "$libdir/libposthog.so" \
         "$libdir/cmake/posthog/posthogConfig.cmake" \
         "$libdir/cmake/posthog/posthogConfigVersion.cmake"; do
  if [[ -e $f ]]; then ok "installed ${f#"$prefix"/}"; else fail "missing ${f#"$prefix"/}"; fi
done
soname=$(objdump -p "$libdir/libposthog.so" | awk '$1 == "SONAME" {print $2}')
if [[ -n $soname && -e $libdir/$soname ]]; then ok "SONAME $soname installed"; else fail "SONAME '$soname' not installed"; fi

# ------------------------------------------------------------------ 2 exports
step "exported symbols of the installed libposthog.so"
# Defined dynamic symbols; sanitizer runtimes and linker markers are not ours.
nm -D --defined-only "$libdir/libposthog.so" | awk '{print $NF}' | sed 's/@.*//' |
  grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$|^_*(asan|ubsan|tsan|sanitizer|lsan)_' |
  sort -u >"$work/exported.txt"
# Functions the header declares: "POSTHOG_API <type> *?posthog_name(".
tr '\n' ' ' <"$prefix/include/posthog/posthog.h" |
  grep -oE 'POSTHOG_API[^;(]*\(' | grep -oE 'posthog_[A-Za-z0-9_]+ *\($' | tr -d ' (' |
  sort -u >"$work/declared.txt"
bad=$(grep -Ev '^posthog_[a-z0-9]' "$work/exported.txt" || true)
if [[ -n $bad ]]; then fail "non-public symbols exported: $(echo "$bad" | tr '\n' ' ')"; else ok "only posthog_* exported ($(wc -l <"$work/exported.txt") symbols)"; fi
internal=$(grep -E '^posthog__' "$work/exported.txt" || true)
[[ -z $internal ]] || fail "internal posthog__* symbols exported: $(echo "$internal" | tr '\n' ' ')"
missing=$(comm -13 "$work/exported.txt" "$work/declared.txt")
extra=$(comm -23 "$work/exported.txt" "$work/declared.txt")
if [[ -n $missing ]]; then fail "declared in posthog.h but not exported: $(echo "$missing" | tr '\n' ' ')"; else ok "all $(wc -l <"$work/declared.txt") declared functions exported"; fi
[[ -z $extra ]] || fail "exported but not declared in posthog.h: $(echo "$extra" | tr '\n' ' ')"

# ------------------------------------------------------------------ helpers
example="$src/examples/basic.c"
run_basic() { # name binary [env...]
  local name=$1 bin=$2
  shift 2
  local out
  if out=$(env "$@" "$bin" --disabled 2>&1) && grep -q '(disabled)' <<<"$out"; then
    ok "$name runs: $out"
  else
    fail "$name: exit or output wrong: $out"
  fi
}
uses_installed_so() { # name binary [env...]: the shared lib must come from $libdir
  local name=$1 bin=$2
  shift 2
  local line
  line=$(env "$@" ldd "$bin" | grep 'libposthog\.so' || true)
  if [[ $line == *"$libdir/"* ]]; then ok "$name loads ${line##*=> }"; else fail "$name: libposthog.so not from the prefix: '${line:-not linked}'"; fi
}
no_shared_posthog() {
  local name=$1 bin=$2
  if ldd "$bin" | grep -q 'libposthog\.so'; then fail "$name links libposthog.so dynamically"; else ok "$name has libposthog linked in statically"; fi
}

# ------------------------------------------------------------------ 3 pkg-config
step "pkg-config (PKG_CONFIG_PATH=$libdir/pkgconfig)"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkgc=(pkg-config)
pc_prefix=$(pkg-config --variable=prefix libposthog)
# The .pc finds its prefix relative to its own location (${pcfiledir}), so
# it must point at wherever `cmake --install --prefix` put it.
if [[ $(realpath -m "$pc_prefix") != $(realpath -m "$prefix") ]]; then
  fail "installed libposthog.pc has prefix=$pc_prefix, not $prefix (not relocatable)"
fi
modversion=$("${pkgc[@]}" --modversion libposthog)
ok "libposthog $modversion"
read -ra pc_cflags <<<"$("${pkgc[@]}" --cflags libposthog)"
read -ra pc_libs <<<"$("${pkgc[@]}" --libs libposthog)"
read -ra pc_static <<<"$("${pkgc[@]}" --static --libs libposthog)"
echo "cflags: ${pc_cflags[*]}"
echo "libs: ${pc_libs[*]}"
echo "static libs: ${pc_static[*]}"

if "$cc" "${cflags[@]}" "${pc_cflags[@]}" "$example" -o "$work/basic_pc_shared" "${pc_libs[@]}" \
     >"$work/pc_shared.log" 2>&1; then
  ok "built basic with pkg-config --libs"
  uses_installed_so basic_pc_shared "$work/basic_pc_shared" LD_LIBRARY_PATH="$libdir"
  run_basic basic_pc_shared "$work/basic_pc_shared" LD_LIBRARY_PATH="$libdir"
else
  cat "$work/pc_shared.log"; fail "build with pkg-config --libs"
fi

# --static: link libposthog.a explicitly (a bare -lposthog prefers the .so)
# and rely on pkg-config for every private dependency.
static_libs=()
for f in "${pc_static[@]}"; do
  if [[ $f == -lposthog ]]; then static_libs+=("$libdir/libposthog.a"); else static_libs+=("$f"); fi
done
if "$cc" "${cflags[@]}" "${pc_cflags[@]}" "$example" -o "$work/basic_pc_static" "${static_libs[@]}" \
     >"$work/pc_static.log" 2>&1; then
  ok "built basic with pkg-config --static --libs"
  no_shared_posthog basic_pc_static "$work/basic_pc_static"
  run_basic basic_pc_static "$work/basic_pc_static"
else
  cat "$work/pc_static.log"; fail "build with pkg-config --static --libs"
fi
unset PKG_CONFIG_PATH

# ------------------------------------------------------------------ 4 find_package
step "find_package(posthog) from $prefix"
consumer_build="$work/consumer-build"
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
if "$cmake_bin" -S "$src/tests/install/consumer" -B "$consumer_build" "${gen[@]}" \
     -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
     -DCMAKE_C_FLAGS="${cflags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}" \
     -DPOSTHOG_EXAMPLE_SRC="$example" >"$work/consumer-configure.log" 2>&1 &&
   "$cmake_bin" --build "$consumer_build" >"$work/consumer-build.log" 2>&1; then
  found=$(sed -n 's/^-- posthog_DIR=//p' "$work/consumer-configure.log")
  if [[ $found == "$prefix"/* ]]; then ok "find_package used $found"; else fail "find_package found '$found', not the prefix"; fi
  if grep -q '^-- CURL_LIBRARIES=consumer-own-curl$' "$work/consumer-configure.log"; then
    ok "find_package(posthog) left the consumer's CURL_LIBRARIES alone"
  else
    fail "find_package(posthog) changed the consumer's CURL_LIBRARIES: $(grep '^-- CURL_LIBRARIES=' "$work/consumer-configure.log")"
  fi
  uses_installed_so basic_cmake_shared "$consumer_build/basic_cmake_shared"
  run_basic basic_cmake_shared "$consumer_build/basic_cmake_shared"
  no_shared_posthog basic_cmake_static "$consumer_build/basic_cmake_static"
  run_basic basic_cmake_static "$consumer_build/basic_cmake_static"
else
  cat "$work/consumer-configure.log" "$work/consumer-build.log" 2>/dev/null | tail -n 40
  fail "find_package consumer project did not configure/build"
fi

# ------------------------------------------------------------------ 5 QUIET, missing module
step "find_package(posthog QUIET) with a dependency's .pc missing"
quiet_src="$work/quiet-consumer"
mkdir -p "$quiet_src"
cat >"$quiet_src/CMakeLists.txt" <<'CMK'
cmake_minimum_required(VERSION 3.16)
project(posthog_quiet LANGUAGES C)
find_package(posthog QUIET CONFIG)
message(STATUS "posthog_FOUND=${posthog_FOUND}")
CMK
# pkg-config finds no module at all: libcurl's .pc is "missing"
if PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= "$cmake_bin" -S "$quiet_src" -B "$work/quiet-build" \
     -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON >"$work/quiet.log" 2>&1; then
  if grep -q '^-- posthog_FOUND=0$' "$work/quiet.log"; then
    ok "configure went on with posthog_FOUND=0"
  else
    fail "find_package(posthog QUIET) without libcurl.pc: $(grep posthog_FOUND "$work/quiet.log")"
  fi
else
  tail -n 20 "$work/quiet.log"; fail "find_package(posthog QUIET) aborted the consumer's configure"
fi

# ------------------------------------------------------------------ 6 subproject
step "add_subdirectory(libposthog): no tests, tools or benchmarks"
sub_src="$work/sub-consumer"
mkdir -p "$sub_src"
cat >"$sub_src/CMakeLists.txt" <<CMK
cmake_minimum_required(VERSION 3.16)
project(posthog_sub LANGUAGES C)
add_subdirectory("$src" libposthog)
message(STATUS "tests=\${POSTHOG_BUILD_TESTS} tools=\${POSTHOG_BUILD_TOOLS} bench=\${POSTHOG_BUILD_BENCH} examples=\${POSTHOG_BUILD_EXAMPLES}")
if(TARGET unit_test_queue OR TARGET posthog-ingest-server)
  message(FATAL_ERROR "test or tool targets were defined")
endif()
CMK
if "$cmake_bin" -S "$sub_src" -B "$work/sub-build" -DCMAKE_C_COMPILER="$cc" >"$work/sub.log" 2>&1 &&
   grep -q '^-- tests=OFF tools=OFF bench=OFF examples=OFF$' "$work/sub.log"; then
  ok "as a subproject nothing but the library is configured"
else
  tail -n 20 "$work/sub.log"; fail "add_subdirectory configured tests/tools/bench or failed"
fi

echo
if ((failures)); then
  echo "install test: $failures check(s) FAILED"
  exit 1
fi
echo "install test: all checks passed"
