/*
 * memory_budget and posthog_set_allocator (issue 13). One process-wide
 * counting allocator is installed in main, before any posthog_ call; every
 * test measures the library's heap from its own baseline. The server
 * harness's cJSON calls go through it too (cJSON's hooks are global), so
 * they are made only outside the measured stretches.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_client.h"
#include "support_spool.h"

#include "count_alloc.h"

static const char props[] = "{\"$current_url\":\"https://example.com/pricing\",\"plan\":\"pro\","
                            "\"seats\":12,\"trial\":false,\"$browser\":\"Firefox\"}";

START_TEST(test_allocator_called_first_only) {
    /* main installed it before anything was allocated; once the library
     * allocated, it is fixed */
    posthog_options_free(posthog_options_new());
    ck_assert_int_eq(posthog_set_allocator(ca_malloc, ca_realloc, ca_free), POSTHOG_OK);
    ck_assert_int_eq(posthog_set_allocator(NULL, NULL, NULL), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_set_allocator(ca_malloc, NULL, ca_free), POSTHOG_E_INVALID_ARG);
}
END_TEST

/* The hook sees the library's allocations, zlib's and zstd's included, and
 * every one is freed: a client at defaults with gzip holds zlib's whole
 * deflate state (~268 KB) at its peak, and nothing after it is freed. */
static void sees_everything(const char *codec, int64_t least) {
    ph_ingest_t *srv = it_server(NULL);
    int64_t base = ca_measure_start();
    int64_t frees = atomic_load(&ca_nfree), allocs = atomic_load(&ca_nalloc);
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v1");
    it_set(o, "compression", codec);
    posthog_client_t *c = it_client(o);
    for (int i = 0; i < 500; i++)
        ck_assert_int_eq(posthog_capture_json(c, "u1", "ev", props), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    it_check_balance(c, 500, 0);
    posthog_client_free(c);
    int64_t pk = atomic_load(&ca_peak) - base;
    ck_assert_msg(pk >= least, "%s: peak %lld < %lld: the compressor bypassed the hook", codec,
                  (long long)pk, (long long)least);
    ck_assert_msg(atomic_load(&ca_cur) == base, "%s: %lld bytes not freed", codec,
                  (long long)(atomic_load(&ca_cur) - base));
    ck_assert_int_eq(atomic_load(&ca_nalloc) - allocs, atomic_load(&ca_nfree) - frees);
    ck_assert_int_eq(it_summary_num(srv, "events"), 500);
    it_stop(srv);
}

START_TEST(test_hook_sees_zlib) { sees_everything("gzip", 256 * 1024); }
END_TEST

START_TEST(test_hook_sees_zstd) { sees_everything("zstd", 256 * 1024); }
END_TEST

/* Idle: the compressor is made at the first batch, not at creation. */
START_TEST(test_idle_heap_small) {
    ph_ingest_t *srv = it_server(NULL);
    static const char *const codecs[] = {"gzip", "zstd"};
    for (int k = 0; k < 2; k++) {
        int64_t base = ca_measure_start();
        posthog_options_t *o = it_options(srv);
        it_set(o, "capture_mode", "v1");
        it_set(o, "compression", codecs[k]);
        posthog_client_t *c = it_client(o);
        ck_assert_int_eq(posthog_flush(c, 5000), POSTHOG_OK); /* the flusher has run */
        int64_t idle = atomic_load(&ca_cur) - base;
        ck_assert_msg(idle <= 48 * 1024, "%s: idle heap %lld > 48 KiB", codecs[k],
                      (long long)idle);
        posthog_client_free(c);
    }
    it_stop(srv);
}
END_TEST

/* A flood of 10k events flat out under memory_budget: the heap's peak plus
 * the ring stay within the budget, what did not fit is refused and counted
 * (queue_full), the rest is delivered, and everything is freed. */
static void flood(const char *budget, const char *codec) {
    ph_ingest_t *srv = it_server(NULL);
    int64_t base = ca_measure_start();
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v1"); /* zstd by default, as in applications */
    it_set(o, "memory_budget", budget);
    if (codec) it_set(o, "compression", codec);
    posthog_client_t *c = it_client(o);
    uint64_t b = strtoull(budget, NULL, 10), ring = posthog_get_stat(c, "queue_capacity_bytes");
    ck_assert_uint_eq(posthog_get_stat(c, "memory_budget"), b);
    ck_assert_uint_eq(ring, b / 2);
    uint64_t ok = 0, full = 0;
    for (int i = 0; i < 10000; i++) {
        posthog_status_t st = posthog_capture_json(c, "u1", "flood", props);
        if (st == POSTHOG_OK) ok++;
        else {
            ck_assert_int_eq(st, POSTHOG_E_QUEUE_FULL);
            full++;
        }
    }
    ck_assert_int_eq(posthog_flush(c, 60000), POSTHOG_OK);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_QUEUE_FULL], full);
    it_check_balance(c, ok, full);
    ck_assert_uint_eq(s.sent, ok);
    posthog_client_free(c);
    int64_t pk = atomic_load(&ca_peak) - base;
    ck_assert_msg((uint64_t)pk + ring <= b, "budget %llu: heap peak %lld + ring %llu above it",
                  (unsigned long long)b, (long long)pk, (unsigned long long)ring);
    ck_assert_int_eq(atomic_load(&ca_cur), base);
    ck_assert_int_eq(it_summary_num(srv, "events"), (long long)ok);
    ck_assert_int_eq(it_summary_num(srv, "unique_uuids"), (long long)ok);
    it_stop(srv);
}

START_TEST(test_budget_256k_zstd) { flood("262144", NULL); }
END_TEST
START_TEST(test_budget_256k_gzip) { flood("262144", "gzip"); }
END_TEST
START_TEST(test_budget_128k) { flood("131072", NULL); }
END_TEST

/* A small budget at a slow rate delivers everything: the caller waits for
 * room (posthog_flush) when the queue is full, and every event arrives once. */
START_TEST(test_small_budget_slow_rate_delivers_all) {
    ph_ingest_t *srv = it_server(NULL);
    int64_t base = ca_measure_start();
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v1");
    it_set(o, "memory_budget", "131072");
    posthog_client_t *c = it_client(o);
    uint64_t ring = posthog_get_stat(c, "queue_capacity_bytes");
    uint64_t refused = 0;
    for (int i = 0; i < 3000; i++) {
        posthog_status_t st;
        while ((st = posthog_capture_json(c, "u1", "slow", props)) == POSTHOG_E_QUEUE_FULL) {
            refused++;
            ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
        }
        ck_assert_int_eq(st, POSTHOG_OK);
    }
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    it_check_balance(c, 3000, refused);
    posthog_client_free(c);
    ck_assert_int_le(atomic_load(&ca_peak) - base + (int64_t)ring, 131072);
    ck_assert_int_eq(it_summary_num(srv, "events"), 3000);
    ck_assert_int_eq(it_summary_num(srv, "unique_uuids"), 3000);
    it_stop(srv);
}
END_TEST

START_TEST(test_budget_options_checked) {
    posthog_options_t *o = posthog_options_new();
    char err[512];
    ck_assert_int_eq(posthog_options_set_ex(o, "memory_budget", "100000", err, sizeof err),
                     POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_ptr_nonnull(strstr(err, "131072"));
    it_set(o, "api_key", "phc_test");
    it_set(o, "memory_budget", "262144");
    it_set(o, "max_event_bytes", "100000");
    ck_assert_ptr_null(posthog_client_new(o, err, sizeof err));
    ck_assert_msg(strstr(err, "max_event_bytes") && strstr(err, "8192"), "%s", err);
    o = posthog_options_new();
    it_set(o, "api_key", "phc_test");
    it_set(o, "memory_budget", "262144");
    it_set(o, "max_queue_bytes", "1000000");
    ck_assert_ptr_null(posthog_client_new(o, err, sizeof err));
    ck_assert_msg(strstr(err, "max_queue_bytes"), "%s", err);
    o = posthog_options_new();
    it_set(o, "api_key", "phc_test");
    it_set(o, "capture_mode", "v1");
    it_set(o, "memory_budget", "131072");
    it_set(o, "compression", "zstd");
    ck_assert_ptr_null(posthog_client_new(o, err, sizeof err));
    ck_assert_msg(strstr(err, "zstd") && strstr(err, "at least"), "%s", err);
}
END_TEST

/* `ulimit -v 60000`: with a small budget a client is created and delivers
 * (in a forked child; the address-space limit would break sanitizers). */
START_TEST(test_small_address_space) {
    if (IT_SANITIZER) return;
    ph_ingest_t *srv = it_server(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl = {60000 * 1024L, 60000 * 1024L};
        if (setrlimit(RLIMIT_AS, &rl)) _exit(10);
        posthog_options_t *o = posthog_options_new();
        posthog_options_set(o, "api_key", "phc_test");
        posthog_options_set(o, "host", ph_ingest_url(srv));
        posthog_options_set(o, "memory_budget", "262144");
        char err[256];
        posthog_client_t *c = posthog_client_new(o, err, sizeof err);
        if (!c) {
            fprintf(stderr, "client_new under ulimit -v 60000: %s\n", err);
            _exit(11);
        }
        for (int i = 0; i < 100; i++)
            if (posthog_capture_json(c, "u1", "limited", props) != POSTHOG_OK) _exit(12);
        int rc = posthog_flush(c, 20000) == POSTHOG_OK ? 0 : 13;
        posthog_client_free(c);
        _exit(rc);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    ck_assert_int_eq(it_summary_num(srv, "events"), 100);
    it_stop(srv);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("memory");
    TCase *t = tcase_create("memory");
    tcase_set_timeout(t, 240);
    /* first: before any test started a thread (the child inherits mappings) */
    tcase_add_test(t, test_small_address_space);
    tcase_add_test(t, test_allocator_called_first_only);
    tcase_add_test(t, test_budget_options_checked);
    tcase_add_test(t, test_idle_heap_small);
    tcase_add_test(t, test_hook_sees_zlib);
    tcase_add_test(t, test_hook_sees_zstd);
    tcase_add_test(t, test_budget_256k_zstd);
    tcase_add_test(t, test_budget_256k_gzip);
    tcase_add_test(t, test_budget_128k);
    tcase_add_test(t, test_small_budget_slow_rate_delivers_all);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    if (posthog_set_allocator(ca_malloc, ca_realloc, ca_free) != POSTHOG_OK) return 1;
    return it_run_suite(suite());
}
