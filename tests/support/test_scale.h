/*
 * Iteration counts for randomised and exhaustive tests: full size normally,
 * 1/20 under valgrind (tools/test.sh sets PH_UNDER_VALGRIND=1), where every
 * instruction is ~50x slower. The same code paths run either way.
 */
#ifndef PH_TEST_SCALE_H
#define PH_TEST_SCALE_H

#include <stdlib.h>

static inline long ph_test_scale(long n) {
    const char *v = getenv("PH_UNDER_VALGRIND");
    if (!v || !*v || *v == '0') return n;
    return n / 20 > 0 ? n / 20 : 1;
}

#endif
