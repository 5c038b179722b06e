/*
 * Integration tests of posthog_set_network_state against the local
 * ingestion server: while the application says the network is down no
 * request reaches the server and no attempt is used up, events wait (in
 * memory, or on disk with a spool) and are delivered exactly once when it
 * says "up", at once, also when a batch was waiting out a long
 * Retry-After; the stats show it ("network_down", "network_down_periods").
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support_spool.h"

#define WHO "net"

static posthog_options_t *opts(ph_ingest_t *srv, const char *dir) {
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "50");
    it_set(o, "flush_at", "5");
    if (dir) it_set(o, "storage_path", dir);
    return o;
}

static void capture_seqs(posthog_client_t *c, long from, long n) {
    for (long i = from; i < from + n; i++) ck_assert_int_eq(it_cap_seq(c, "net_event", WHO, i), POSTHOG_OK);
}

static uint64_t stat(posthog_client_t *c, const char *name) {
    uint64_t v = posthog_get_stat(c, name);
    ck_assert_uint_ne(v, UINT64_MAX);
    return v;
}

/* down -> captures: nothing reaches the server, no attempt, nothing lost;
 * up -> delivered at once, exactly once. */
START_TEST(test_down_holds_up_delivers)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = opts(srv, NULL);
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    ck_assert_uint_eq(stat(c, "network_down"), 0);
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_DOWN), POSTHOG_OK);
    ck_assert_uint_eq(stat(c, "network_down"), 1);
    ck_assert_uint_eq(stat(c, "network_down_periods"), 1);
    capture_seqs(c, 0, 40);
    /* a flush cannot finish while down: the events stay queued */
    ck_assert_int_eq(posthog_flush(c, 400), POSTHOG_E_TIMEOUT);
    it_sleep_ms(200); /* several flush intervals and retry backoffs (20 ms) */
    ck_assert_int_eq(it_summary_num(srv, "requests"), 0);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.requests, 0);
    ck_assert_uint_eq(s.retries, 0);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(it_drops_total(d), 0);

    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_UP), POSTHOG_OK);
    ck_assert_uint_eq(stat(c, "network_down"), 0);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_assert_exactly_once(srv, WHO, 40);
    s = it_stats(c);
    ck_assert_uint_eq(s.sent, 40);
    ck_assert_uint_eq(s.retries, 0); /* nothing failed: every request was a first attempt */
    ck_assert_uint_eq(stat(c, "network_down_periods"), 1);
    it_check_balance(c, 40, 0);
    posthog_client_free(c);
    ck_assert_uint_eq(it_drops_total(d), 0);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* A batch waiting out Retry-After: 30 (max_retry_wait_ms allows it) is
 * sent at once when the network comes back, not 30 s later. */
START_TEST(test_up_skips_retry_after)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = opts(srv, NULL);
    it_set(o, "max_retry_wait_ms", "600000");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"status\":503,\"retry_after\":\"30\"}]}");
    capture_seqs(c, 0, 5);
    ck_assert_int_eq(it_wait_requests(srv, 1, 10000), 0);
    it_sleep_ms(100); /* the answer is in: the batch waits for its retry */
    ck_assert_int_eq(it_summary_num(srv, "requests"), 1);
    /* the device loses the network and gets it back */
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_DOWN), POSTHOG_OK);
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_UP), POSTHOG_OK);
    /* the flush's 10 s are a third of the Retry-After: it did not wait for it */
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 2);
    it_assert_exactly_once(srv, WHO, 5);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 5);
    ck_assert_uint_eq(s.retries, 1);
    it_check_balance(c, 5, 0);

    /* "up" without a "down" before (a network change) skips it too */
    it_faults(srv, "{\"script\":[{\"status\":429,\"retry_after\":\"30\"}]}");
    capture_seqs(c, 5, 5);
    ck_assert_int_eq(it_wait_requests(srv, 3, 10000), 0);
    it_sleep_ms(100);
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_UP), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_assert_exactly_once(srv, WHO, 10);
    ck_assert_uint_eq(stat(c, "network_down_periods"), 1);
    it_check_balance(c, 10, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* A request in flight when the network goes down fails (it hangs until
 * request_timeout_ms): with max_retries=0 that would drop the batch; while
 * down it is not counted, and "up" tries again. */
START_TEST(test_failure_while_down_is_not_an_attempt)
{
    int port;
    int lfd = it_blackhole(&port);
    char *hole = it_url_of_port(port);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", hole);
    it_set(o, "flush_interval_ms", "50");
    it_set(o, "max_retries", "0");
    it_set(o, "request_timeout_ms", "1500");
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    capture_seqs(c, 0, 3);
    ck_assert_int_eq(it_wait_stat_ge(c, "requests", 1, 10000), 0);
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_DOWN), POSTHOG_OK);
    it_sleep_ms(2500); /* the request timed out meanwhile */
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(it_drops_total(d), 0);
    ck_assert_uint_eq(s.sent, 0);
    /* up: a second attempt, which max_retries=0 would not allow had the
     * first one counted */
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_UP), POSTHOG_OK);
    ck_assert_int_eq(it_wait_stat_ge(c, "requests", 2, 10000), 0);
    ck_assert_int_eq(posthog_shutdown(c, 100), POSTHOG_E_TIMEOUT);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SHUTDOWN) +
                          it_drops_events(d, POSTHOG_DROP_RETRIES_EXHAUSTED),
                      3);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_drops_free(d);
    free(hole);
    close(lfd);
}
END_TEST

/* With a spool: while down the batches go to disk (as in an outage), no
 * request; up replays them at once, exactly once. */
START_TEST(test_down_spools_up_replays)
{
    ph_ingest_t *srv = it_server(NULL);
    char *dir = it_tmp_dir("ph-net-it-");
    posthog_client_t *c = it_client(opts(srv, dir));
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_DOWN), POSTHOG_OK);
    capture_seqs(c, 0, 20);
    /* resolved = on disk */
    ck_assert_int_eq(posthog_flush_resolved(c, 10000), POSTHOG_OK);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.spooled, 20);
    ck_assert_uint_eq(s.spool_pending, 20);
    ck_assert_uint_eq(s.requests, 0);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 0);
    ck_assert_int_ge(it_count_files(dir, "ph-", ".spool"), 1);
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_UP), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    it_assert_exactly_once(srv, WHO, 20);
    s = it_stats(c);
    ck_assert_uint_eq(s.replayed, 20);
    ck_assert_uint_eq(s.spool_pending, 0);
    ck_assert_uint_eq(s.retries, 0);
    it_check_balance(c, 20, 0);
    posthog_client_free(c);
    ck_assert_int_eq(it_count_files(dir, "ph-", ".spool"), 0);
    it_rm_rf(dir);
    free(dir);
    it_stop(srv);
}
END_TEST

/* A shutdown while down with a spool writes everything to disk (no
 * request), and the next client delivers it once the network is up. */
START_TEST(test_shutdown_while_down_spools)
{
    ph_ingest_t *srv = it_server(NULL);
    char *dir = it_tmp_dir("ph-net-it-");
    posthog_client_t *c = it_client(opts(srv, dir));
    ck_assert_int_eq(posthog_set_network_state(c, POSTHOG_NETWORK_DOWN), POSTHOG_OK);
    capture_seqs(c, 0, 12);
    ck_assert_int_eq(posthog_shutdown(c, 30000), POSTHOG_OK);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.spooled, 12);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(s.requests, 0);
    posthog_client_free(c);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 0);
    posthog_client_t *c2 = it_client(opts(srv, dir));
    ck_assert_int_eq(posthog_flush(c2, 10000), POSTHOG_OK);
    it_assert_exactly_once(srv, WHO, 12);
    posthog_client_free(c2);
    it_rm_rf(dir);
    free(dir);
    it_stop(srv);
}
END_TEST

START_TEST(test_state_arguments_and_periods)
{
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", "http://127.0.0.1:9");
    it_errlog_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    posthog_options_set_log(o, it_errlog_fn, &log);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_set_network_state(NULL, POSTHOG_NETWORK_DOWN), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_set_network_state(c, (posthog_network_state_t)7), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(log.errors, 1);
    ck_assert_msg(strstr(log.last, "state 7") && strstr(log.last, "POSTHOG_NETWORK_UP (0)") &&
                      strstr(log.last, "POSTHOG_NETWORK_DOWN (1)"),
                  "%s", log.last);
    ck_assert_uint_eq(stat(c, "network_down"), 0);
    /* periods count transitions: down, down, up, up, down = 2 */
    posthog_network_state_t seq[] = {POSTHOG_NETWORK_DOWN, POSTHOG_NETWORK_DOWN, POSTHOG_NETWORK_UP,
                                     POSTHOG_NETWORK_UP, POSTHOG_NETWORK_DOWN};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        ck_assert_int_eq(posthog_set_network_state(c, seq[i]), POSTHOG_OK);
    ck_assert_uint_eq(stat(c, "network_down_periods"), 2);
    ck_assert_uint_eq(stat(c, "network_down"), 1);
    posthog_client_free(c);

    /* a disabled client takes it too */
    posthog_options_t *od = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(od, "disabled", "1"), POSTHOG_OK);
    posthog_client_t *cd = it_client(od);
    ck_assert_int_eq(posthog_set_network_state(cd, POSTHOG_NETWORK_DOWN), POSTHOG_OK);
    ck_assert_uint_eq(stat(cd, "network_down"), 1);
    posthog_client_free(cd);
}
END_TEST

static Suite *network_suite(void) {
    Suite *s = suite_create("network");
    TCase *t = tcase_create("network");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_down_holds_up_delivers);
    tcase_add_test(t, test_up_skips_retry_after);
    tcase_add_test(t, test_failure_while_down_is_not_an_attempt);
    tcase_add_test(t, test_down_spools_up_replays);
    tcase_add_test(t, test_shutdown_while_down_spools);
    tcase_add_test(t, test_state_arguments_and_periods);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return it_run_suite(network_suite()); }
