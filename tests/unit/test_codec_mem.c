/*
 * codec memory limits (issue 13): a compressor given a limit
 * (posthog__codec_limit) allocates at most that much for its state, the
 * stream it makes decodes to the input, and posthog__codec_release frees
 * every byte. Allocations are counted through posthog_set_allocator,
 * installed in main before anything else.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define HDR 16
static _Atomic int64_t cur, peak;

static void note(int64_t d) {
    int64_t now = atomic_fetch_add(&cur, d) + d;
    int64_t p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {
    }
}
/* (malloc): the system's, past common.h's macros */
static void *c_malloc(size_t n) {
    char *p = (malloc)(n + HDR);
    if (!p) return NULL;
    *(size_t *)p = n;
    note((int64_t)n);
    return p + HDR;
}
static void c_free(void *q) {
    if (!q) return;
    char *p = (char *)q - HDR;
    note(-(int64_t) * (size_t *)p);
    (free)(p);
}
static void *c_realloc(void *q, size_t n) {
    if (!q) return c_malloc(n);
    char *p = (char *)q - HDR;
    size_t old = *(size_t *)p;
    char *r = (realloc)(p, n + HDR);
    if (!r) return NULL;
    *(size_t *)r = n;
    note((int64_t)n - (int64_t)old);
    return r + HDR;
}

/* JSON-like text that compresses as events do */
static char *text(size_t n) {
    char *t = (malloc)(n + 1);
    size_t w = 0;
    for (unsigned i = 0; w < n; i++) {
        char ev[160];
        int k = snprintf(ev, sizeof ev,
                         "{\"event\":\"page_viewed\",\"distinct_id\":\"user-%u\",\"properties\":"
                         "{\"n\":%u,\"plan\":\"pro\"}},",
                         i % 977, i * 2654435761u);
        for (int j = 0; j < k && w < n; j++) t[w++] = ev[j];
    }
    t[n] = '\0';
    return t;
}

static void check_limit(ph_codec_kind_t kind, int level, size_t mem, size_t n) {
    char *in = text(n);
    ph_codec_t c;
    ck_assert_int_eq(posthog__codec_init(&c, kind, level, false), 0);
    posthog__codec_limit(&c, mem);
    ph_buf_t out;
    posthog__buf_init(&out, SIZE_MAX / 2);
    ck_assert_int_eq(posthog__buf_reserve(&out, n + 65536), 0); /* the caller's, not counted */
    int64_t base = atomic_load(&cur);
    atomic_store(&peak, base);
    /* in chunks (streaming) and then the end */
    for (size_t off = 0; off < n; off += 4096)
        ck_assert_int_eq(
            posthog__codec_write(&c, &out, in + off, PH_MIN(4096, n - off), PH_CODEC_MORE), 0);
    ck_assert_int_eq(posthog__codec_write(&c, &out, NULL, 0, PH_CODEC_END), 0);
    int64_t used = atomic_load(&peak) - base;
    ck_assert_msg(used <= (int64_t)mem, "%s level %d limit %zu: %lld bytes",
                  posthog__codec_name(kind), level, mem, (long long)used);
    posthog__codec_release(&c);
    ck_assert_int_eq(atomic_load(&cur), base);
    char *back = (malloc)(n + 1);
    ck_assert_int_eq(posthog__codec_decode(kind, false, out.data, out.len, back, n), 0);
    ck_assert_int_eq(memcmp(back, in, n), 0);
    /* released, it works again (a new stream) */
    out.len = 0;
    ck_assert_int_eq(posthog__codec_write(&c, &out, in, n, PH_CODEC_END), 0);
    ck_assert_int_eq(posthog__codec_decode(kind, false, out.data, out.len, back, n), 0);
    ck_assert_int_eq(memcmp(back, in, n), 0);
    posthog__codec_free(&c);
    posthog__buf_free(&out);
    (free)(back);
    (free)(in);
}

START_TEST(zlib_within_limits) {
    static const size_t mems[] = {16384, 24576, 49152, 98304, 262144, 393216};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
        check_limit(PH_CODEC_GZIP, 1, mems[i], 200000);
        check_limit(PH_CODEC_DEFLATE, 6, mems[i], 200000);
    }
}
END_TEST

START_TEST(zlib_params_follow_the_limit) {
    int w, m;
    posthog__codec_zlib_params(0, &w, &m);
    ck_assert(w == 15 && m == 8);
    posthog__codec_zlib_params(49152, &w, &m); /* 3/16 of 256 KiB */
    ck_assert_int_eq(w, 12);
    ck_assert_int_eq(m, 5);
    posthog__codec_zlib_params(1, &w, &m); /* below the least: the least */
    ck_assert(w == 9 && m == 2);
}
END_TEST

START_TEST(zstd_within_limits) {
    if (!posthog__codec_available(PH_CODEC_ZSTD)) return;
    size_t least = posthog__codec_min_mem(PH_CODEC_ZSTD, 1);
    ck_assert_uint_gt(least, 16384);
    static const size_t mems[] = {49152, 98304, 262144, 1048576};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
        check_limit(PH_CODEC_ZSTD, 1, PH_MAX(mems[i], least), 200000);
        check_limit(PH_CODEC_ZSTD, 3, PH_MAX(mems[i], posthog__codec_min_mem(PH_CODEC_ZSTD, 3)),
                    200000);
    }
}
END_TEST

/* No state before the first write: an idle client holds none. */
START_TEST(state_is_lazy) {
    static const ph_codec_kind_t kinds[] = {PH_CODEC_GZIP, PH_CODEC_DEFLATE, PH_CODEC_ZSTD};
    for (int k = 0; k < 3; k++) {
        if (!posthog__codec_available(kinds[k])) continue;
        int64_t base = atomic_load(&cur);
        ph_codec_t c;
        ck_assert_int_eq(posthog__codec_init(&c, kinds[k], 1, false), 0);
        posthog__codec_reset(&c);
        ck_assert_int_eq(atomic_load(&cur), base);
        posthog__codec_free(&c);
    }
}
END_TEST

int main(void) {
    if (posthog_set_allocator(c_malloc, c_realloc, c_free) != POSTHOG_OK) return EXIT_FAILURE;
    Suite *s = suite_create("codec_mem");
    TCase *t = tcase_create("codec_mem");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, state_is_lazy);
    tcase_add_test(t, zlib_params_follow_the_limit);
    tcase_add_test(t, zlib_within_limits);
    tcase_add_test(t, zstd_within_limits);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
