/*
 * Unit tests of src/core/util.c: UUID v7 generation, formatting and parsing,
 * ISO-8601 formatting (against gmtime_r) and parsing, and the PRNG's
 * reseed in a forked child.
 */
#include <check.h>
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "test_scale.h"

static uint64_t rng_state = 0x853C49E6748FEA9BULL;
static uint64_t xrand(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ------------------------------------------------------------ UUID */

static void check_uuid_text(const char *s, int64_t ms) {
    ck_assert_uint_eq(strlen(s), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            ck_assert_msg(s[i] == '-', "%s: no dash at %d", s, i);
            continue;
        }
        ck_assert_msg((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'),
                      "%s: char %d not lowercase hex", s, i);
    }
    ck_assert_msg(s[14] == '7', "%s: version nibble", s);
    ck_assert_msg(strchr("89ab", s[19]) != NULL, "%s: variant", s);
    /* first 48 bits: the timestamp */
    char hex[13];
    memcpy(hex, s, 8);
    memcpy(hex + 8, s + 9, 4);
    hex[12] = '\0';
    ck_assert_msg(strtoull(hex, NULL, 16) == (unsigned long long)ms, "%s: ts %s != %lld", s, hex,
                  (long long)ms);
}

/* Every byte value at every position formats as its two lower-case hex
 * digits, dashes at 8-4-4-4-12. */
START_TEST(uuid_format_every_byte) {
    for (int v = 0; v < 256; v++) {
        for (int pos = 0; pos < 16; pos++) {
            uint8_t u[16] = {0};
            u[pos] = (uint8_t)v;
            char s[37], want[37];
            posthog__uuid_format(s, u);
            s[36] = '\0';
            char hex[33];
            for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", u[i]);
            snprintf(want, sizeof want, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
                     hex + 16, hex + 20);
            ck_assert_str_eq(s, want);
        }
    }
}
END_TEST

START_TEST(uuid_v7_format_and_timestamp) {
    const int64_t times[] = {0, 1, 1700000000123, 0xFFFFFFFFFFFF, 4102444800000,
                             posthog__now_ms()};
    for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
        for (int k = 0; k < 200; k++) {
            uint8_t u[16];
            char s[37];
            posthog__uuid_v7(u, times[t]);
            ck_assert_int_eq(u[6] >> 4, 7);
            ck_assert_int_eq(u[8] >> 6, 2);
            posthog__uuid_format(s, u);
            s[36] = '\0';
            check_uuid_text(s, times[t]);
            /* parse inverts format */
            uint8_t back[16];
            ck_assert_int_eq(posthog__uuid_parse(s, 36, back), 0);
            ck_assert(memcmp(back, u, 16) == 0);
        }
    }
}
END_TEST

START_TEST(uuid_random_bits_vary) {
    /* Every one of the 74 random bits takes both values across 2000 UUIDs. */
    uint8_t or_[16] = {0}, and_[16];
    memset(and_, 0xFF, sizeof and_);
    for (int k = 0; k < 2000; k++) {
        uint8_t u[16];
        posthog__uuid_v7(u, 42);
        for (int i = 0; i < 16; i++) {
            or_[i] |= u[i];
            and_[i] &= u[i];
        }
    }
    ck_assert_int_eq(or_[6] ^ and_[6], 0x0F);
    ck_assert_int_eq(or_[7] ^ and_[7], 0xFF);
    ck_assert_int_eq(or_[8] ^ and_[8], 0x3F);
    for (int i = 9; i < 16; i++) ck_assert_int_eq(or_[i] ^ and_[i], 0xFF);
}
END_TEST

static int cmp16(const void *a, const void *b) { return memcmp(a, b, 16); }

static void assert_all_distinct(uint8_t (*u)[16], size_t n) {
    qsort(u, n, 16, cmp16);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(memcmp(u[i - 1], u[i], 16) != 0, "duplicate uuid at %zu", i);
}

START_TEST(uuid_unique_1m) {
    const size_t N = (size_t)ph_test_scale(1000000);
    uint8_t(*u)[16] = malloc(N * 16);
    ck_assert_ptr_nonnull(u);
    /* one fixed millisecond: uniqueness must come from the random bits */
    for (size_t i = 0; i < N; i++) posthog__uuid_v7(u[i], 1700000000000);
    assert_all_distinct(u, N);
    free(u);
}
END_TEST

enum { TH = 4, PER_TH = 100000 };
static uint8_t (*g_thread_uuids)[16];

static void *uuid_thread(void *arg) {
    size_t base = (size_t)(uintptr_t)arg * PER_TH;
    for (size_t i = 0; i < PER_TH; i++) posthog__uuid_v7(g_thread_uuids[base + i], 1700000000000);
    return NULL;
}

START_TEST(uuid_unique_across_threads) {
    g_thread_uuids = malloc((size_t)TH * PER_TH * 16);
    pthread_t t[TH];
    for (uintptr_t i = 0; i < TH; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, uuid_thread, (void *)i), 0);
    for (int i = 0; i < TH; i++) pthread_join(t[i], NULL);
    assert_all_distinct(g_thread_uuids, (size_t)TH * PER_TH);
    free(g_thread_uuids);
}
END_TEST

START_TEST(uuid_parse_table) {
    static const char *good[] = {
        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "0193a1B2-c3D4-7e5F-8A9b-0c1D2e3F4a5B", "550e8400-e29b-41d4-a716-446655440000",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint8_t u[16];
        ck_assert_msg(posthog__uuid_parse(good[i], strlen(good[i]), u) == 0, "%s", good[i]);
        char s[37], lower[37];
        posthog__uuid_format(s, u);
        s[36] = '\0';
        for (int k = 0; k < 37; k++) lower[k] = (char)tolower((unsigned char)good[i][k]);
        ck_assert_str_eq(s, lower);
    }
    uint8_t u[16];
    ck_assert_int_eq(posthog__uuid_parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 36, u), 0);
    ck_assert_int_eq(u[0], 0x01);
    ck_assert_int_eq(u[15], 0x5b);
    static const char *bad[] = {
        "",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",   /* 35 */
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb", /* 37 */
        "0193a1b2c3d47e5f8a9b0c1d2e3f4a5b",      /* no dashes */
        "0193a1b2-c3d47-e5f-8a9b-0c1d2e3f4a5b",  /* dash moved */
        "0193a1b2_c3d4_7e5f_8a9b_0c1d2e3f4a5b",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",  /* non-hex */
        "g193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5 ",
        " 193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "{193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5}",
        "0193a1b2-c3d4-7e5f-8a9b--c1d2e3f4a5b",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a-b",
        "0193a1b2-+3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "urn:uuid:0193a1b2-c3d4-7e5f-8a9b-0c1d2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(posthog__uuid_parse(bad[i], strlen(bad[i]), u) == -1, "accepted '%s'",
                      bad[i]);
    /* the length is what counts, not a NUL */
    ck_assert_int_eq(posthog__uuid_parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bXYZ", 36, u), 0);
    ck_assert_int_eq(posthog__uuid_parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 35, u), -1);
}
END_TEST

/* ------------------------------------------------------------ ISO-8601 */

static void ref_iso(char out[96], int64_t ms) {
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msr = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
    snprintf(out, 96, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msr);
}

static void check_iso(int64_t ms) {
    char got[PH_ISO8601_LEN + 1], want[96];
    posthog__iso8601_ms(got, ms);
    got[PH_ISO8601_LEN] = '\0';
    ref_iso(want, ms);
    ck_assert_msg(strcmp(got, want) == 0, "%lld: got %s want %s", (long long)ms, got, want);
    int64_t back = -1;
    ck_assert_msg(posthog__iso8601_parse(got, PH_ISO8601_LEN, &back) == 0, "parse %s", got);
    ck_assert_msg(back == ms, "%s parsed to %lld, want %lld", got, (long long)back, (long long)ms);
}

START_TEST(iso8601_vs_gmtime) {
    const int64_t fixed[] = {
        0, 1, 999, 1000, 86399999, 86400000,
        68255999999,   /* 1972-02-29T23:59:59.999 */
        68256000000,   /* 1972-03-01 */
        951782400000,  /* 2000-02-29 (leap: divisible by 400) */
        951868800000,  /* 2000-03-01 */
        1709164800123, /* 2024-02-29T00:00:00.123 */
        1735689599999, /* 2024-12-31T23:59:59.999 */
        4107456000000, /* 2100-02-28 */
        4107542400000, /* 2100-03-01 (2100 is not leap) */
        4102444799999, /* 2099-12-31T23:59:59.999 */
        4133980799999, /* 2100-12-31T23:59:59.999 */
        -1, -1000, -1001, -86400000, -86400001,
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) check_iso(fixed[i]);
    for (long i = 0, n = ph_test_scale(200000); i < n; i++) {
        int64_t ms = (int64_t)(xrand() % 4133980800000ULL); /* 1970 .. end of 2100 */
        check_iso(ms);
    }
    /* runs of milliseconds inside one second and across seconds, minutes,
     * days and years, also before 1970 and alternating between two
     * seconds (the formatter keeps the last second's text per thread) */
    const int64_t starts[] = {0, -2000, 1735689598000, 68255998500, 1700000000000};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        for (int64_t ms = starts[i]; ms < starts[i] + 2600; ms += 7) check_iso(ms);
    for (int k = 0; k < 100; k++) {
        check_iso(1735689599000 + k);
        check_iso(1735689600000 + k); /* the next year */
        check_iso(-1000 + k);
        check_iso(k);
    }
    /* every day boundary of 1970..2100, plus/minus one ms */
    for (int64_t day = 0; day < 47847; day++) {
        check_iso(day * 86400000);
        check_iso(day * 86400000 + 86399999);
    }
}
END_TEST

START_TEST(iso8601_parse_forms) {
    struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"2024-01-01T00:00:00Z", 1704067200000},
        {"2024-01-01T00:00:00.000Z", 1704067200000},
        {"2024-01-01t00:00:00z", 1704067200000},
        {"2024-01-01 00:00:00Z", 1704067200000},
        {"2024-01-01T00:00:00.1Z", 1704067200100},
        {"2024-01-01T00:00:00.12Z", 1704067200120},
        {"2024-01-01T00:00:00.123Z", 1704067200123},
        {"2024-01-01T00:00:00.123999Z", 1704067200123}, /* truncated to ms */
        {"2024-01-01T02:00:00+02:00", 1704067200000},
        {"2024-01-01T02:00:00+0200", 1704067200000},
        {"2023-12-31T18:30:00-05:30", 1704067200000},
        {"2023-12-31T18:30:00-0530", 1704067200000},
        {"2024-01-01T05:30:00.250+05:30", 1704067200250},
        {"2024-01-01T00:00:00+00:00", 1704067200000},
        {"2024-01-01T00:00:00-00:00", 1704067200000},
        {"1970-01-01T00:00:00Z", 0},
        {"2024-02-29T12:00:00Z", 1709208000000},
        {"2100-03-01T00:00:00Z", 4107542400000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -12345;
        ck_assert_msg(posthog__iso8601_parse(good[i].s, strlen(good[i].s), &ms) == 0, "%s",
                      good[i].s);
        ck_assert_msg(ms == good[i].ms, "%s: %lld want %lld", good[i].s, (long long)ms,
                      (long long)good[i].ms);
    }
    const char *bad[] = {
        "",
        "2024-01-01",
        "2024-01-01T00:00:00",      /* no zone */
        "2024-01-01T00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.123",
        "2024-01-01T00:00:00ZZ",
        "2024-01-01T00:00:00Z ",
        "2024-01-01T00:00:00+2:00",
        "2024-01-01T00:00:00+02:0",
        "2024-01-01T00:00:00+02",
        "2024-01-01T00:00:00+02:00x",
        "2024-01-01T00:00:00+0a:00",
        "2024-01-01X00:00:00Z",
        "2024/01/01T00:00:00Z",
        "2024-01-01T00-00-00Z",
        "20a4-01-01T00:00:00Z",
        "2024-01-01T00:00:00 Z",
        "+2024-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 777;
        ck_assert_msg(posthog__iso8601_parse(bad[i], strlen(bad[i]), &ms) == -1, "accepted '%s'",
                      bad[i]);
        ck_assert_int_eq(ms, 777); /* untouched on error */
    }
}
END_TEST

START_TEST(clocks) {
    int64_t w = posthog__now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ref = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ck_assert(ref - w >= 0 && ref - w < 1000);
    int64_t m1 = posthog__mono_ns(), m2 = posthog__mono_ns();
    ck_assert(m2 >= m1);
    ck_assert(posthog__mono_ms() >= m1 / 1000000);
}
END_TEST

/* ------------------------------------------------------------ fork */

static uint64_t child_value(bool reseed) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (reseed) posthog__rand_fork_child();
        uint64_t v = posthog__rand_u64();
        ssize_t w = write(fds[1], &v, sizeof v);
        _exit(w == sizeof v ? 0 : 1);
    }
    close(fds[1]);
    uint64_t v = 0;
    ck_assert_int_eq(read(fds[0], &v, sizeof v), (ssize_t)sizeof v);
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return v;
}

START_TEST(rand_reseeded_in_forked_child) {
    (void)posthog__rand_u64(); /* seed this thread's generator */
    /* Control: without the child handler the child repeats the parent's
     * stream exactly (which is why the handler exists). */
    uint64_t child = child_value(false);
    uint64_t parent = posthog__rand_u64();
    ck_assert_msg(child == parent, "control: child without reseed should repeat the parent");
    /* With posthog__rand_fork_child the child's next value differs. */
    for (int i = 0; i < 5; i++) {
        child = child_value(true);
        parent = posthog__rand_u64();
        ck_assert_msg(child != parent, "child repeated the parent's random value");
    }
    /* two children forked from the same state also differ from each other */
    uint64_t c1 = child_value(true), c2 = child_value(true);
    ck_assert(c1 != c2);
}
END_TEST

static void *rand_thread(void *arg) {
    *(uint64_t *)arg = posthog__rand_u64();
    return NULL;
}

START_TEST(rand_threads_have_own_streams) {
    uint64_t v[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, rand_thread, &v[i]);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++) ck_assert(v[i] != v[j]);
}
END_TEST

static Suite *util_suite(void) {
    Suite *s = suite_create("util");
    TCase *t = tcase_create("uuid");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, uuid_v7_format_and_timestamp);
    tcase_add_test(t, uuid_format_every_byte);
    tcase_add_test(t, uuid_random_bits_vary);
    tcase_add_test(t, uuid_unique_1m);
    tcase_add_test(t, uuid_unique_across_threads);
    tcase_add_test(t, uuid_parse_table);
    suite_add_tcase(s, t);
    t = tcase_create("time");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, iso8601_vs_gmtime);
    tcase_add_test(t, iso8601_parse_forms);
    tcase_add_test(t, clocks);
    suite_add_tcase(s, t);
    t = tcase_create("rand");
    tcase_add_test(t, rand_reseeded_in_forked_child);
    tcase_add_test(t, rand_threads_have_own_streams);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(util_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
