#!/bin/sh
# Every allocation of the library goes through src/core/alloc.c, so that
# posthog_set_allocator sees all of it: no other object file may call the
# system allocator. Arguments: the library's object files (or one
# ;-separated list of them).
# Allowed exceptions ("object:symbol"), each with its reason:
#   spool.c.o:free  frees what realpath(dir, NULL) allocated with the system malloc
allowed="spool.c.o:free"
syms='malloc|calloc|realloc|reallocarray|free|strdup|strndup|aligned_alloc|posix_memalign|memalign|valloc|pvalloc'
command -v nm >/dev/null || { echo "SKIP: no nm"; exit 77; }
bad=0
n=0
# ctest passes the objects as one ;-separated argument
IFS=';'
set -- $*
unset IFS
for o in "$@"; do
    b=$(basename "$o")
    n=$((n + 1))
    [ "$b" = alloc.c.o ] && continue
    for s in $(nm -u "$o" | awk '{print $2}' | sed 's/@.*//' | grep -xE "$syms"); do
        case " $allowed " in *" $b:$s "*) continue ;; esac
        echo "FAIL: $b calls the system's $s (use the library's allocator: core/alloc.h)"
        bad=1
    done
done
[ "$n" -gt 10 ] || { echo "FAIL: only $n object files given"; exit 1; }
[ $bad = 0 ] && echo "ok: $n object files, every allocation through core/alloc.c"
exit $bad
