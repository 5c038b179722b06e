/*
 * Regression runner of the spool fuzzer's corpus: every file in
 * tests/fuzz/corpus_spool (seeds, and crashes that tools/fuzz.sh saved)
 * goes through posthog__spool_parse, byte-exact (a heap copy of exactly
 * its size, so ASan sees any overread), and through the file path
 * (adopt + take + read) in a temp directory. The corpus is found relative
 * to this source file (__FILE__), so no CMake change is needed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

static char corpus_dir[4096];

static void find_corpus(void) {
    /* __FILE__ is .../tests/unit/test_spool_corpus.c; the corpus is .../tests/fuzz/corpus_spool */
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    if (!slash) {
        snprintf(corpus_dir, sizeof corpus_dir, "../fuzz/corpus_spool");
        return;
    }
    snprintf(corpus_dir, sizeof corpus_dir, "%.*s/../fuzz/corpus_spool", (int)(slash - f), f);
}

typedef struct {
    const unsigned char *lo, *hi;
    long n;
} ctx_t;

static int on_event(const char *json, size_t len, void *ud) {
    ctx_t *c = ud;
    if (c->lo) {
        ck_assert((const unsigned char *)json >= c->lo);
        ck_assert((const unsigned char *)json + len <= c->hi);
    }
    ck_assert_uint_ge(len, 2);
    ck_assert_int_eq(json[0], '{');
    c->n++;
    return 0;
}

/* Entries of dir named ph-* (spool files). */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += !strncmp(e->d_name, "ph-", 3);
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    *n = (size_t)st.st_size;
    unsigned char *b = malloc(*n ? *n : 1);
    ck_assert_ptr_nonnull(b);
    size_t got = 0;
    while (got < *n) {
        ssize_t r = read(fd, b + got, *n - got);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
    close(fd);
    return b;
}

/* Known outcomes of the hand-made seeds (tests/fuzz/make_corpus.c). */
static const struct {
    const char *name;
    long events;
    long corrupt; /* -1: not checked */
} expected[] = {
    {"valid-empty", 0, 0},     {"valid-one", 1, 0},        {"valid-three", 3, 0},
    {"valid-unicode", 1, 0},   {"bad-crc", 0, 1},          {"bad-record-magic", 0, 1},
    {"huge-length", 0, 1},     {"bad-version", 0, 1},      {"count-too-high", 1, 8},
    {"truncated-record", 0, 1}, {"truncated-header", 0, 1}, {"trailing-garbage", 1, 1},
    {"zeros", 0, 1},
    /* segments (version 2): batches, done markers */
    {"seg-valid-three-batches-one-done", 6, 0}, {"seg-valid-two-batches", 2, 0},
    {"seg-torn-tail", 9, 1},                    {"seg-bad-batch-crc", 3, 3},
    {"seg-bad-batch-count", 3, 3},              {"seg-bad-done", 9, 0},
};

START_TEST(corpus_replays) {
    find_corpus();
    DIR *d = opendir(corpus_dir);
    ck_assert_msg(d != NULL, "corpus not found at %s", corpus_dir);
    char tmpl[] = "/tmp/ph-corpus-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    struct dirent *e;
    int files = 0, known = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", corpus_dir, e->d_name);
        struct stat st;
        if (stat(p, &st) || !S_ISREG(st.st_mode)) continue;
        size_t n;
        unsigned char *b = slurp(p, &n);
        ctx_t c = {b, b + n, 0};
        ph_spool_loss_t loss = {0};
        long got = posthog__spool_parse(b, n, on_event, &c, &loss);
        ck_assert_msg(got >= 0 && got == c.n, "%s: parse returned %ld for %ld events", e->d_name,
                      got, c.n);
        for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
            if (strcmp(expected[i].name, e->d_name)) continue;
            known++;
            ck_assert_msg(got == expected[i].events, "%s: %ld events, expected %ld", e->d_name,
                          got, expected[i].events);
            if (expected[i].corrupt >= 0)
                ck_assert_msg(loss.corrupt == (uint32_t)expected[i].corrupt,
                              "%s: corrupt %u, expected %ld", e->d_name, loss.corrupt,
                              expected[i].corrupt);
        }
        /* the file path gives the same events */
        char q[256];
        snprintf(q, sizeof q, "%s/ph-0000000000001-1-000001.spool", tmpl);
        FILE *f = fopen(q, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(b, 1, n, f), n);
        fclose(f);
        ph_spool_t s;
        ck_assert_int_eq(posthog__spool_open(&s, tmpl, UINT64_C(1) << 40, 0, NULL, 0), 0);
        ph_spool_loss_t l2 = {0};
        posthog__spool_adopt(&s, &l2);
        /* a one-batch file is one unit; a segment one per pending batch */
        ph_spool_file_t *sf;
        long units = 0, read = 0;
        while ((sf = posthog__spool_take(&s))) {
            ctx_t c2 = {0};
            long r = posthog__spool_read(sf, on_event, &c2, &l2);
            ck_assert_int_ge(r, 0);
            read += r;
            units++;
            posthog__spool_remove(&s, sf);
        }
        ck_assert_msg(read == got, "%s: %ld events through the file path, %ld parsed", e->d_name,
                      read, got);
        if (n < 6 || b[4] != PH_SPOOL_VERSION_SEG) ck_assert_int_le(units, 1);
        ck_assert_int_eq(count_files(tmpl), 0); /* delivered: nothing left */
        posthog__spool_close(&s);
        unlink(q);
        free(b);
        files++;
    }
    closedir(d);
    rmdir(tmpl);
    ck_assert_int_ge(files, 1);
    ck_assert_int_eq(known, (int)(sizeof expected / sizeof expected[0]));
}
END_TEST

int main(void) {
    Suite *s = suite_create("spool_corpus");
    TCase *tc = tcase_create("corpus");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, corpus_replays);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
