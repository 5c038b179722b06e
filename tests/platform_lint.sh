#!/usr/bin/env bash
# lint_platform: OS-specific code lives in the platform layer
# (src/core/platform.c, see platform.h) or behind a configure-time PH_HAVE_*
# guard. Fails, naming file and line, when src/ uses a Linux-only header or
# call outside both, so that the library keeps building on macOS and the
# BSDs (which CI cannot run; `tools/test.sh fallbacks` runs the fallbacks).
#
#   tests/platform_lint.sh [SRC_DIR]     (default: the repository's src/)
set -uo pipefail
src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../src" && pwd)}

# Linux-only (or not on macOS) headers and identifiers.
pattern='#[[:space:]]*include[[:space:]]*<(sys/eventfd\.h|sys/random\.h|sys/epoll\.h|sys/inotify\.h|sys/signalfd\.h|sys/timerfd\.h|sys/prctl\.h|sys/sysinfo\.h|sys/sendfile\.h|linux/[^>]*|malloc\.h|ucontext\.h|link\.h|elf\.h|execinfo\.h)>'
pattern+='|(^|[^A-Za-z0-9_])(eventfd|getrandom|pipe2|accept4|epoll_[a-z_]+|inotify_[a-z_]+|gettid|prctl|memfd_create|getauxval|sched_getcpu|pthread_setname_np|pthread_getattr_np|pthread_condattr_setclock|dl_iterate_phdr|malloc_usable_size|mremap|sync_file_range|fallocate)[[:space:]]*\('
pattern+='|(^|[^A-Za-z0-9_])(F_OFD_[A-Z]+|MADV_[A-Z_]+|EFD_[A-Z]+|SOCK_CLOEXEC|SOCK_NONBLOCK|O_PATH|O_TMPFILE|MAP_POPULATE|MAP_NORESERVE|CLOCK_BOOTTIME|CLOCK_MONOTONIC_RAW|REG_[RE]IP)([^A-Za-z0-9_]|$)'
pattern+='|"/proc/'

bad=0
while IFS= read -r -d '' f; do
  case $f in */core/platform.c) continue ;; esac
  # awk: drop comments, track #if nesting; a line is guarded when an
  # enclosing #if/#ifdef/#elif names a PH_HAVE_* macro or the compiler's
  # own library (__GLIBC__: glibc is Linux's, execinfo.h with it).
  out=$(awk -v pat="$pattern" '
    function guarded(   i) { for (i = 1; i <= depth; i++) if (g[i]) return 1; return 0 }
    {
      line = $0
      if (incomment) { if (line ~ /\*\//) { sub(/.*\*\//, "", line); incomment = 0 } else next }
      gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", line)
      if (line ~ /\/\*/) { sub(/\/\*.*/, "", line); incomment = 1 }
      sub(/\/\/.*/, "", line)
      if (line ~ /^[[:space:]]*#[[:space:]]*if/) { depth++; g[depth] = (line ~ /PH_HAVE_|__GLIBC__/) ; next }
      if (line ~ /^[[:space:]]*#[[:space:]]*elif/) { g[depth] = g[depth] || (line ~ /PH_HAVE_|__GLIBC__/); next }
      if (line ~ /^[[:space:]]*#[[:space:]]*endif/) { if (depth) depth--; next }
      if (line ~ pat && !guarded()) printf "%s:%d: %s\n", FILENAME, FNR, $0
    }' "$f")
  if [[ -n $out ]]; then
    echo "$out"
    bad=1
  fi
done < <(find "$src" -name '*.[ch]' -print0 | sort -z)

if ((bad)); then
  echo "lint_platform: OS-specific code outside src/core/platform.c and PH_HAVE_* guards (see platform.h)"
  exit 1
fi
echo "lint_platform: OK ($(find "$src" -name '*.[ch]' | wc -l) files)"
