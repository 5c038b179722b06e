#!/usr/bin/env bash
# Every test suite of libposthog, the way CI runs them (.ci/run).
#
#   ./tools/test.sh                 all stages
#   ./tools/test.sh gcc asan        only those stages
#   ./tools/test.sh --list          list the stages
#
# Stages (each builds what it needs; build trees are reused incrementally):
#   gcc         gcc, -DPOSTHOG_WERROR=ON, RelWithDebInfo, ctest     -> build-test/
#   asan        clang, ASan+UBSan, ctest                            -> build-asan/
#   tsan        clang, ThreadSanitizer, ctest                       -> build-tsan/
#   fallbacks   gcc, -Werror, -DPOSTHOG_FORCE_POSIX_FALLBACKS=ON: the platform
#               layer's POSIX fallbacks (a pipe, getentropy, realtime-clock
#               condition waits, POSIX spool locks, no /proc) instead of the
#               Linux primitives, as macOS and the BSDs build it; ctest
#               -> build-fallbacks/
#   nocurl      -DPOSTHOG_WITH_CURL=OFF: the library links no libcurl (ldd, nm), its
#               .pc / CMake package do not require it, and the transport-hook
#               tests and the install test pass in it (only those targets are
#               built) -> build-nocurl/
#   valgrind    memcheck of the demo and the unit tests (build-test), time-boxed;
#               runs when VALGRIND=1 or CI=true, else SKIP (VALGRIND=0 forces SKIP)
#   fuzz        libFuzzer on the spool reader (tools/fuzz.sh) for FUZZ_SECONDS [60]
#               -> build-fuzz/; new crashes land in tests/fuzz/corpus_spool/
#   compliance  PostHog's SDK compliance harness (tests/compliance/run.sh) against
#               build-test; SKIP when the harness cannot be installed
#   python      Python bindings suite (hook: bindings/python/run_tests.sh) and the
#               one-command install in a fresh venv (bindings/python/test_install.sh)
#   ruby        Ruby bindings suite (hook: bindings/ruby/run_tests.sh) and the
#               gem build + install in a fresh GEM_HOME (bindings/ruby/test_install.sh)
#   minimal     the builds that leave parts out (MINIMAL_CONFIGS below: no spool,
#               no crash handler): gcc -Werror, library + unit tests, ctest -R ^unit_
#               (suites that need a missing part are skipped by name at configure)
#               -> build-min-<name>/
#   cross       armhf and arm64 (Debian's cross gcc, multiarch -dev packages):
#               build, then unit + integration suites under qemu-user against
#               the host-built ingestion server (build-test); an ARMv6 build
#               (libatomic); s390x (big-endian, unpacked sysroot): the unit
#               suites. Installs what it needs (tools/setup.sh --cross).
#               -> build-cross-{armhf,arm64,armv6,s390x}/
# ctest runs include tests/install (install + pkg-config + find_package).
#
# Environment: JOBS [2] build parallelism, CTEST_JOBS [2], BUILD_PREFIX [build-]
# (build-test, build-asan, build-tsan), SKIP_SETUP=1 (do not run tools/setup.sh),
# CC_GCC [gcc], CC_CLANG [clang], CLANG_WERROR [ON] (-Werror in the clang builds),
# VALGRIND, VALGRIND_TESTS [^unit_], VALGRIND_TIMEOUT [240 s per test],
# VALGRIND_BUDGET [420 s for the stage], CI.
#
# Exit status: 0 when no stage FAILed (SKIP is fine), 1 otherwise. A summary
# table with per-stage status and time is printed at the end.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

JOBS=${JOBS:-2}
CTEST_JOBS=${CTEST_JOBS:-2}
BUILD_PREFIX=${BUILD_PREFIX:-build-}
CC_GCC=${CC_GCC:-gcc}
CC_CLANG=${CC_CLANG:-clang}
# Warnings are errors in every build (CLANG_WERROR=OFF relaxes the clang ones
# when trying a newer clang locally).
CLANG_WERROR=${CLANG_WERROR:-ON}
VALGRIND_TESTS=${VALGRIND_TESTS:-^unit_}  # ctest regex of the tests run under memcheck
VALGRIND_TIMEOUT=${VALGRIND_TIMEOUT:-240} # seconds per test
VALGRIND_BUDGET=${VALGRIND_BUDGET:-420}   # seconds for the whole stage
SKIP=77 # a stage function returns this to report SKIP

ALL_STAGES=(gcc asan tsan fallbacks nocurl valgrind fuzz compliance python ruby minimal cross)

# The minimal builds of the `minimal` stage, "name:cmake args" (one word per
# arg); add one line per option that leaves something out.
MINIMAL_CONFIGS=(
  "nospool:-DPOSTHOG_WITH_SPOOL=OFF"
  "nocrash:-DPOSTHOG_WITH_CRASH_HANDLER=OFF"
)

# ------------------------------------------------------------------ helpers

say() { printf '\n=== %s\n' "$*"; }

# configure_build DIR CC [cmake args...]: configure (once) and build DIR.
# A tree configured with another compiler or generator is wiped first.
configure_build() {
  local dir=$1 cc=$2
  shift 2
  local cc_path gen=()
  cc_path=$(command -v "$cc") || { echo "compiler $cc not found"; return 1; }
  if [[ -f $dir/CMakeCache.txt ]]; then
    local old
    old=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt")
    if [[ $(realpath "$old" 2>/dev/null) != $(realpath "$cc_path") ]]; then
      echo "$dir was configured with $old; starting it afresh"
      rm -rf "$dir"
    fi
  fi
  if [[ ! -f $dir/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
    gen=(-G Ninja)
  fi
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_C_COMPILER="$cc_path" \
    -DPOSTHOG_BUILD_TESTS=ON -DPOSTHOG_BUILD_EXAMPLES=ON -DPOSTHOG_BUILD_TOOLS=ON "$@" >/dev/null
  # shellcheck disable=SC2086  # CB_TARGETS: a list of targets (empty: all)
  cmake --build "$dir" -j "$JOBS" ${CB_TARGETS:+--target $CB_TARGETS}
}

run_ctest() { # DIR [ctest args...]
  local dir=$1
  shift
  (cd "$dir" && ctest --output-on-failure -j "$CTEST_JOBS" "$@")
}

# ------------------------------------------------------------------ stages
# Each stage_* runs in a subshell with `set -e`; it returns 0 (PASS),
# $SKIP (SKIP) or anything else (FAIL).

stage_gcc() {
  configure_build "${BUILD_PREFIX}test" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE=
  run_ctest "${BUILD_PREFIX}test"
}

stage_asan() {
  configure_build "${BUILD_PREFIX}asan" "$CC_CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR="$CLANG_WERROR" -DPOSTHOG_SANITIZE=address,undefined
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest "${BUILD_PREFIX}asan"
}

# The code macOS and the BSDs get, built and tested on Linux: every PH_HAVE_*
# of cmake/PosthogPlatform.cmake off. The configure summary must say so.
stage_fallbacks() {
  local dir="${BUILD_PREFIX}fallbacks"
  configure_build "$dir" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE= -DPOSTHOG_FORCE_POSIX_FALLBACKS=ON
  grep -q '^POSTHOG_FORCE_POSIX_FALLBACKS:BOOL=ON' "$dir/CMakeCache.txt" ||
    { echo "fallbacks: $dir is not configured with POSTHOG_FORCE_POSIX_FALLBACKS=ON"; return 1; }
  run_ctest "$dir"
}

# Some kernels (vm.mmap_rnd_bits > 28) break the TSan runtime of older
# clangs ("unexpected memory mapping"); running without ASLR fixes that.
tsan_wrapper() {
  local probe_dir
  probe_dir=$(mktemp -d)
  printf '#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); return pthread_join(t, 0); }\n' \
    >"$probe_dir/p.c"
  if "$CC_CLANG" -fsanitize=thread "$probe_dir/p.c" -o "$probe_dir/p" 2>/dev/null &&
     ! "$probe_dir/p" >/dev/null 2>&1 && setarch "$(uname -m)" -R "$probe_dir/p" >/dev/null 2>&1; then
    echo "setarch $(uname -m) -R"
  fi
  rm -rf "$probe_dir"
}

stage_tsan() {
  configure_build "${BUILD_PREFIX}tsan" "$CC_CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR="$CLANG_WERROR" -DPOSTHOG_SANITIZE=thread
  local wrap
  wrap=$(tsan_wrapper)
  [[ -z $wrap ]] || echo "TSan needs ASLR off on this kernel: running ctest under '$wrap'"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
  # shellcheck disable=SC2086  # $wrap is a command prefix
  (cd "${BUILD_PREFIX}tsan" && $wrap ctest --output-on-failure -j "$CTEST_JOBS")
}

# A library without libcurl: every request through the transport hook. Only
# the library, the hook tests and the broker example are built (the test
# programs and the ingestion harness still use libcurl themselves).
stage_nocurl() {
  local dir="${BUILD_PREFIX}nocurl" cc_path gen=()
  cc_path=$(command -v "$CC_GCC") || { echo "compiler $CC_GCC not found"; return 1; }
  if [[ ! -f $dir/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_C_COMPILER="$cc_path" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE= -DPOSTHOG_WITH_CURL=OFF -DPOSTHOG_BUILD_TESTS=ON \
    -DPOSTHOG_BUILD_EXAMPLES=ON -DPOSTHOG_BUILD_TOOLS=ON -DPOSTHOG_BUILD_BENCH=OFF >/dev/null
  cmake --build "$dir" -j "$JOBS" --target posthog posthog_static unit_test_retry \
    integration_test_transport integration_test_transport_example
  local so="$dir/libposthog.so"
  if ldd "$so" | grep -i curl; then echo "FAIL: $so links libcurl"; return 1; fi
  if nm -D --undefined-only "$so" | grep -i ' curl_'; then echo "FAIL: $so calls libcurl"; return 1; fi
  if nm "$dir/libposthog.a" 2>/dev/null | grep -i ' U curl_'; then echo "FAIL: libposthog.a calls libcurl"; return 1; fi
  if grep -n curl "$dir/libposthog.pc"; then echo "FAIL: libposthog.pc requires libcurl"; return 1; fi
  if grep -n 'POSTHOG_CURL libcurl' "$dir/posthogConfig.cmake" | grep -v '^.*if(OFF)'; then
    grep -q 'if(OFF)' "$dir/posthogConfig.cmake" || { echo "FAIL: the CMake package requires libcurl"; return 1; }
  fi
  echo "no libcurl in $so (ldd, nm), libposthog.pc or the CMake package"
  # install_package: pkg-config (shared, --static) and find_package consumers
  # of the installed library work without libcurl on the system's link line
  run_ctest "$dir" -R '^(unit_test_retry|integration_test_transport|integration_test_transport_example|install_package)$'
}

valgrind_wanted() {
  [[ ${VALGRIND:-} == 1 ]] && return 0
  [[ ${VALGRIND:-} == 0 ]] && return 1
  [[ ${CI:-} == true || ${CI:-} == 1 ]]
}

stage_valgrind() {
  if ! valgrind_wanted; then
    echo "valgrind: off (VALGRIND=1 or CI=true turns it on)"
    return $SKIP
  fi
  command -v valgrind >/dev/null || { echo "valgrind not installed"; return 1; }
  local dir="${BUILD_PREFIX}test"
  configure_build "$dir" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTHOG_WERROR=ON \
    -DPOSTHOG_SANITIZE=
  local vg=(valgrind -q --error-exitcode=99 --child-silent-after-fork=yes --leak-check=full --show-leak-kinds=definite,indirect
            --errors-for-leak-kinds=definite,indirect --num-callers=30)
  local out="$dir/valgrind" failed=0 name
  rm -rf "$out"
  mkdir -p "$out"

  # The demo exercises the whole pipeline (capture, flusher, gzip, curl).
  if valgrind_demo "$dir" "${vg[@]}"; then echo "valgrind: demo ok"; else echo "valgrind: demo FAILED"; failed=1; fi

  # Unit tests: one process each (CK_FORK=no), CTEST_JOBS at a time, within
  # a time box: valgrind slows multi-threaded spinning code enormously.
  local tests deadline=$((SECONDS + VALGRIND_BUDGET))
  tests=$(cd "$dir" && ctest -N -R "$VALGRIND_TESTS" | sed -n 's/^ *Test *#[0-9]*: *//p')
  for name in $tests; do
    while (($(jobs -rp | wc -l) >= CTEST_JOBS)); do wait -n || true; done
    local left=$((deadline - SECONDS))
    if ((left < 10)); then
      echo "valgrind: $name not run: VALGRIND_BUDGET=${VALGRIND_BUDGET}s used up"
      echo budget >"$out/$name.status"
      continue
    fi
    ((left < VALGRIND_TIMEOUT)) || left=$VALGRIND_TIMEOUT
    valgrind_one "$dir" "$name" "$left" "${vg[@]}" &
  done
  wait

  local n_ok=0 n_timeout=0 n_budget=0 n_fail=0
  for name in $tests; do
    case $(cat "$out/$name.status" 2>/dev/null) in
      ok) n_ok=$((n_ok + 1)) ;;
      timeout) n_timeout=$((n_timeout + 1)) ;;
      budget) n_budget=$((n_budget + 1)) ;;
      *) n_fail=$((n_fail + 1)); failed=1 ;;
    esac
  done
  echo "valgrind: unit tests: $n_ok clean, $n_fail failed, $n_timeout stopped at the time limit" \
       "(clean so far), $n_budget not run (budget)"
  return $failed
}

# valgrind_one DIR TEST LIMIT valgrind-command...: writes DIR/valgrind/TEST.status
# (ok | timeout | fail). A timeout is not a failure: memcheck found nothing
# up to that point. Tests may scale their loops down when PH_UNDER_VALGRIND=1.
valgrind_one() {
  local dir=$1 name=$2 limit=$3 t t0=$SECONDS rc=0
  shift 3
  local log="$dir/valgrind/$name.log" status="$dir/valgrind/$name.status"
  t=$(find "$dir/tests" -maxdepth 2 -type f -name "$name" -perm -u+x | head -n1)
  if [[ -z $t ]]; then
    echo "valgrind: no binary for $name"
    echo fail >"$status"
    return 1
  fi
  # timeout runs the test in its own process group: on SIGTERM Check kills
  # its whole process group, which must not include this script.
  PH_UNDER_VALGRIND=1 CK_FORK=no CK_DEFAULT_TIMEOUT=3600 timeout -k 10 "$limit" \
    "$@" "$t" >"$log" 2>&1 || rc=$?
  case $rc in
    0) echo ok >"$status"; echo "valgrind: $name clean ($((SECONDS - t0))s)" ;;
    124) echo timeout >"$status"
         echo "valgrind: $name stopped after ${limit}s, no memcheck error until then (scale it down under PH_UNDER_VALGRIND=1)" ;;
    99) echo fail >"$status"; echo "valgrind: $name MEMCHECK ERRORS; $log:"; tail -n 80 "$log" ;;
    *) echo fail >"$status"; echo "valgrind: $name FAILED (exit $rc); $log:"; tail -n 80 "$log" ;;
  esac
}

valgrind_demo() { # DIR valgrind-command...
  local dir=$1
  shift
  local tmp pid rc=0
  tmp=$(mktemp -d)
  "$dir/tools/posthog-ingest-server" --port-file "$tmp/port" --quiet >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do [[ -s $tmp/port ]] && break; sleep 0.05; done
  if [[ -s $tmp/port ]]; then
    "$@" "$dir/examples/demo" "http://127.0.0.1:$(cat "$tmp/port")" >"$dir/valgrind/demo.log" 2>&1 || rc=$?
  else
    rc=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
  ((rc == 0)) || tail -n 60 "$dir/valgrind/demo.log"
  return $rc
}

stage_compliance() {
  local dir="${BUILD_PREFIX}test"
  configure_build "$dir" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTHOG_WERROR=ON \
    -DPOSTHOG_SANITIZE=
  [[ -x tests/compliance/run.sh || -f tests/compliance/run.sh ]] || { echo "no tests/compliance/run.sh"; return $SKIP; }
  local log="$dir/compliance.log" rc=0
  bash tests/compliance/run.sh "$dir" 2>&1 | tee "$log" || rc=$?
  ((rc == 0)) || return $rc
  if grep -q '^compliance: SKIP' "$log"; then return $SKIP; fi
  return 0
}

# Hooks for the bindings suites. Contract: bindings/<lang>/run_tests.sh runs
# with LIBPOSTHOG_BUILD_DIR set to the absolute path of a built tree
# (build-test: libposthog.so, tools/posthog-ingest-server); exit 0 pass,
# 77 skip, anything else fail.
stage_python() {
  local runner=bindings/python/run_tests.sh
  [[ -f $runner ]] || { echo "no $runner yet"; return $SKIP; }
  configure_build "${BUILD_PREFIX}test" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE=
  LIBPOSTHOG_BUILD_DIR="$repo/${BUILD_PREFIX}test" bash "$runner"
  # the one-command install (builds the C library itself) in a fresh virtualenv
  bash bindings/python/test_install.sh
}

stage_ruby() {
  local runner=bindings/ruby/run_tests.sh
  [[ -f $runner ]] || { echo "no $runner yet"; return $SKIP; }
  configure_build "${BUILD_PREFIX}test" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE=
  LIBPOSTHOG_BUILD_DIR="$repo/${BUILD_PREFIX}test" bash "$runner"
  # the one-command install (builds the C library itself) in a fresh GEM_HOME
  bash bindings/ruby/test_install.sh
}

# Cheap: no tools, examples or integration suites; each build only needs the
# library and the unit tests.
stage_minimal() {
  local cfg name args rc=0
  for cfg in "${MINIMAL_CONFIGS[@]}"; do
    name=${cfg%%:*}
    read -r -a args <<<"${cfg#*:}"
    say "minimal build '$name': ${args[*]}"
    configure_build "${BUILD_PREFIX}min-$name" "$CC_GCC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE= -DPOSTHOG_BUILD_TOOLS=OFF \
      -DPOSTHOG_BUILD_EXAMPLES=OFF -DPOSTHOG_BUILD_BENCH=OFF "${args[@]}" || { rc=1; continue; }
    run_ctest "${BUILD_PREFIX}min-$name" -R '^unit_' || rc=1
  done
  return $rc
}

stage_fuzz() {
  command -v "$CC_CLANG" >/dev/null 2>&1 || { echo "no $CC_CLANG"; return $SKIP; }
  FUZZ_BUILD="${BUILD_PREFIX}fuzz" CC_CLANG="$CC_CLANG" JOBS="$JOBS" tools/fuzz.sh "${FUZZ_SECONDS:-60}"
}

# Cross builds under qemu-user. Tests that cannot run there, each for qemu's
# reason or because it is a host-only test (name|reason):
CROSS_SKIP=(
  "integration_test_fork|forks a process whose flusher thread runs: qemu-user 7.2 crashes in such a child (qemu_plugin_vcpu_init_hook / cpu_exec assertions)"
  "integration_test_crash_report|its crashing children are forked from a multi-threaded process (qemu-user crashes, as above), and qemu reports their signals itself"
  "install_package|installs the package and builds and runs its consumers natively: a host test"
  "ingest_server|tests the local ingestion server, a host tool (the cross tests use the host's)"
  "integration_test_stress|a multi-threaded load test: 10x slower under emulation, and qemu's TCG on x86 orders memory like x86, so it shows nothing ARM-specific; the host stages run it"
)
# s390x runs the unit suites only (no ingestion server: integration tests
# are armhf/arm64's).
CROSS_S390X_TESTS=${CROSS_S390X_TESTS:-^unit_}
CROSS_CACHE=${POSTHOG_CROSS_CACHE:-/var/cache/libposthog-cross}
CROSS_TIMEOUT=${CROSS_TIMEOUT:-600} # seconds per test under qemu

cross_ctest() { # DIR REGEX-OR-EMPTY
  local dir=$1 include=$2 skip_re="" entry name
  for entry in "${CROSS_SKIP[@]}"; do
    name=${entry%%|*}
    echo "cross: SKIP $name ($dir): ${entry#*|}"
    skip_re+="${skip_re:+|}^$name\$"
  done
  local args=(-E "$skip_re")
  [[ -z $include ]] || args+=(-R "$include")
  # CK_FORK=no: Check's per-test fork is a fork of a threaded process too.
  (cd "$dir" && PH_UNDER_EMULATOR=1 CK_FORK=no CK_DEFAULT_TIMEOUT=$CROSS_TIMEOUT \
     ctest --output-on-failure -j "$CTEST_JOBS" --timeout "$CROSS_TIMEOUT" "${args[@]}")
}

stage_cross() {
  if [[ ${SKIP_SETUP:-0} != 1 ]]; then tools/setup.sh --cross; fi
  local t
  for t in arm-linux-gnueabihf-gcc aarch64-linux-gnu-gcc s390x-linux-gnu-gcc qemu-arm qemu-aarch64 qemu-s390x; do
    command -v "$t" >/dev/null || { echo "cross: $t missing (tools/setup.sh --cross installs it)"; return 1; }
  done
  # The ingestion server the tests spawn: the host's (build-test, as the
  # gcc stage configures it; only the server is built here).
  CB_TARGETS=posthog-ingest-server configure_build "${BUILD_PREFIX}test" "$CC_GCC" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE=
  local server="$repo/${BUILD_PREFIX}test/tools/posthog-ingest-server" arch t0 failed=0 times=""
  for arch in armhf arm64; do
    t0=$SECONDS
    say "cross: $arch"
    configure_build "${BUILD_PREFIX}cross-$arch" "$(cross_cc "$arch")" \
      -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-$arch.cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE= -DPOSTHOG_BUILD_BENCH=OFF \
      -DPOSTHOG_TEST_INGEST_SERVER="$server" || { failed=1; continue; }
    cross_ctest "${BUILD_PREFIX}cross-$arch" "" || failed=1
    times+=" $arch $((SECONDS - t0))s"
  done

  # ARMv6 (Raspberry Pi 1/Zero class): 64-bit atomics are libatomic calls.
  # The build must find that at configure time, link it and name it in
  # libposthog.pc; a static consumer linked through pkg-config then runs.
  t0=$SECONDS
  say "cross: armv6 (libatomic)"
  cross_armv6 || failed=1
  times+=" armv6 $((SECONDS - t0))s"

  # s390x: big-endian, from an unpacked sysroot.
  t0=$SECONDS
  say "cross: s390x (big-endian)"
  local root
  if root=$(tools/cross-sysroot.sh s390x "$CROSS_CACHE/s390x" libc6-dev libcurl4-openssl-dev \
              libcjson-dev zlib1g-dev check libsubunit-dev libzstd-dev libbrotli-dev) &&
     configure_build "${BUILD_PREFIX}cross-s390x" s390x-linux-gnu-gcc \
       -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-s390x.cmake" -DPOSTHOG_CROSS_SYSROOT="$root" \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE= \
       -DPOSTHOG_BUILD_BENCH=OFF -DPOSTHOG_BUILD_TOOLS=OFF -DPOSTHOG_BUILD_EXAMPLES=OFF; then
    cross_ctest "${BUILD_PREFIX}cross-s390x" "$CROSS_S390X_TESTS" || failed=1
  else
    failed=1
  fi
  times+=" s390x $((SECONDS - t0))s"
  echo "cross: times:$times"
  return $failed
}

cross_cc() { # ARCH
  case $1 in
    armhf|armv6) echo arm-linux-gnueabihf-gcc ;;
    arm64) echo aarch64-linux-gnu-gcc ;;
    s390x) echo s390x-linux-gnu-gcc ;;
  esac
}

cross_armv6() {
  local dir="${BUILD_PREFIX}cross-armv6" pc
  CB_TARGETS="posthog posthog_static" configure_build "$dir" arm-linux-gnueabihf-gcc \
    -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-armhf.cmake" -DCMAKE_BUILD_TYPE=MinSizeRel \
    -DCMAKE_C_FLAGS="-march=armv6+fp -marm" -DPOSTHOG_WERROR=ON -DPOSTHOG_SANITIZE= \
    -DPOSTHOG_BUILD_TESTS=OFF -DPOSTHOG_BUILD_BENCH=OFF -DPOSTHOG_BUILD_TOOLS=OFF \
    -DPOSTHOG_BUILD_EXAMPLES=OFF
  grep -q '^POSTHOG_ATOMIC64_LIBATOMIC:INTERNAL=1' "$dir/CMakeCache.txt" ||
    { echo "armv6: libatomic was not detected as needed"; return 1; }
  pc="$dir/libposthog.pc"
  grep -q '^Libs.private:.*-latomic' "$pc" || { echo "armv6: $pc lacks -latomic"; return 1; }
  arm-linux-gnueabihf-readelf -d "$dir/libposthog.so" | grep -q 'NEEDED.*libatomic' ||
    { echo "armv6: libposthog.so does not link libatomic"; return 1; }
  # A consumer of the static library: with the .pc's Libs.private it links
  # and runs under qemu (--disabled: no server); without them it must not
  # link (__atomic_* undefined), or this check proves nothing.
  local inst="$dir/inst" deps private
  rm -rf "$inst"
  cmake --install "$dir" --prefix "$inst" >/dev/null
  private=$(sed -n 's/^Libs.private: //p' "$inst/lib/pkgconfig/libposthog.pc")
  deps=$(PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig \
         pkg-config --libs libcurl libcjson zlib libzstd libbrotlienc libbrotlidec) || return 1
  local cc=(arm-linux-gnueabihf-gcc -march=armv6+fp -marm -I"$inst/include" examples/basic.c
            -L"$inst/lib" -Wl,-Bstatic -lposthog -Wl,-Bdynamic)
  # shellcheck disable=SC2086  # pkg-config's words
  if "${cc[@]}" $deps -pthread -lm -o "$dir/basic-no-private" >"$dir/no-private.log" 2>&1; then
    echo "armv6: a consumer linked without -latomic: the check below would prove nothing"; return 1
  fi
  grep -q '__atomic_' "$dir/no-private.log" || { cat "$dir/no-private.log"; return 1; }
  # shellcheck disable=SC2086
  "${cc[@]}" $deps $private -o "$dir/basic-static" || { echo "armv6: static consumer did not link"; return 1; }
  qemu-arm -L / "$dir/basic-static" --disabled || { echo "armv6: consumer failed under qemu"; return 1; }
  echo "armv6: 64-bit atomics through libatomic: detected, linked (NEEDED), in Libs.private; a static consumer links and runs"
}

# ------------------------------------------------------------------ driver

if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${ALL_STAGES[@]}"
  exit 0
fi
stages=("$@")
((${#stages[@]})) || stages=("${ALL_STAGES[@]}")
for s in "${stages[@]}"; do
  declare -F "stage_$s" >/dev/null || { echo "unknown stage '$s' (see --list)" >&2; exit 2; }
done

t_start=$SECONDS
results=()
any_fail=0

if [[ ${SKIP_SETUP:-0} != 1 ]]; then
  say "setup"
  t0=$SECONDS
  if tools/setup.sh </dev/null; then
    results+=("setup|PASS|$((SECONDS - t0))")
  else
    results+=("setup|FAIL|$((SECONDS - t0))")
    any_fail=1
  fi
fi
echo "$(gcc --version | head -n1); $(clang --version 2>/dev/null | head -n1); $(cmake --version | head -n1)"

for s in "${stages[@]}"; do
  say "stage $s"
  t0=$SECONDS
  (set -e; "stage_$s") </dev/null
  rc=$?
  dt=$((SECONDS - t0))
  case $rc in
    0) st=PASS ;;
    "$SKIP") st=SKIP ;;
    *) st=FAIL; any_fail=1 ;;
  esac
  echo "--- stage $s: $st (${dt}s)"
  results+=("$s|$st|$dt")
done

say "summary"
printf '%-12s %-5s %6s\n' stage status time
for r in "${results[@]}"; do
  IFS='|' read -r name st dt <<<"$r"
  printf '%-12s %-5s %5ss\n' "$name" "$st" "$dt"
done
printf '%-12s %-5s %5ss\n' total "$( ((any_fail)) && echo FAIL || echo PASS)" "$((SECONDS - t_start))"
exit "$any_fail"
