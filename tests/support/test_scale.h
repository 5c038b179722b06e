/*
 * Iteration counts for randomised and exhaustive tests: full size normally,
 * 1/20 under valgrind (tools/test.sh sets PH_UNDER_VALGRIND=1), where every
 * instruction is ~50x slower, 1/5 under qemu-user (PH_UNDER_EMULATOR=1). The same code paths run either way.
 */
#ifndef PH_TEST_SCALE_H
#define PH_TEST_SCALE_H

#include <stdlib.h>

static inline long ph_test_scale(long n) {
    const char *v = getenv("PH_UNDER_VALGRIND");
    if (!v || !*v || *v == '0') {
        /* qemu-user (tools/test.sh cross): ~5-10x slower, 1/5 */
        const char *q = getenv("PH_UNDER_EMULATOR");
        if (!q || !*q || *q == '0') return n;
        return n / 5 > 0 ? n / 5 : 1;
    }
    return n / 20 > 0 ? n / 20 : 1;
}

#endif
