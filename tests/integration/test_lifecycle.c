/*
 * Integration: flush, shutdown and free semantics (posthog.h), deadlines
 * against slow and hanging servers, several clients in one process, and
 * the stats invariant captured + capture-time drops == sent + dropped.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_client.h"

static posthog_client_t *client(ph_ingest_t *srv, it_drops_t *d, const char *const *opts)
{
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "60000");
    for (int i = 0; opts && opts[i]; i += 2)
        it_set(o, opts[i], opts[i + 1]);
    if (d)
        it_drops_attach(o, d);
    return it_client(o);
}

static void capture_n(posthog_client_t *c, const char *name, int n, char (*uuids)[37])
{
    for (int i = 0; i < n; i++) {
        char props[64];
        snprintf(props, sizeof props, "{\"seq\":%d}", i);
        ck_assert_int_eq(posthog_capture_ex(c, "u", name, props, 0, NULL, NULL, NULL, NULL,
                                            uuids ? uuids[i] : NULL),
                         POSTHOG_OK);
    }
}

/* ------------------------------------------------------------ flush */

START_TEST(test_flush_ok_once_delivered)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = client(srv, NULL, NULL);
    capture_n(c, "e", 30, NULL);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    /* no waiting: delivered means the server has them now */
    ck_assert_int_eq(it_summary_num(srv, "events"), 30);
    ck_assert_uint_eq(it_stats(c).sent, 30);
    ck_assert_uint_eq(it_stats(c).queue_depth, 0);
    capture_n(c, "f", 5, NULL);
    ck_assert_int_eq(posthog_flush(c, -1), POSTHOG_OK); /* wait for ever */
    ck_assert_int_eq(it_summary_num(srv, "events"), 35);
    it_check_balance(c, 35, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

typedef struct flusher_arg {
    posthog_client_t *c;
    ph_ingest_t *srv;
    pthread_mutex_t *harness_mu;
    int id, missing, flush_status;
} flusher_arg_t;

static void *capture_then_flush(void *p)
{
    flusher_arg_t *a = p;
    char uuids[100][37];
    char name[32];
    snprintf(name, sizeof name, "thread-%d", a->id);
    for (int i = 0; i < 100; i++)
        if (posthog_capture_ex(a->c, "u", name, NULL, 0, NULL, NULL, NULL, NULL, uuids[i]) !=
            POSTHOG_OK)
            uuids[i][0] = '\0';
    a->flush_status = posthog_flush(a->c, 20000);
    pthread_mutex_lock(a->harness_mu);
    cJSON *events = ph_ingest_events(a->srv);
    pthread_mutex_unlock(a->harness_mu);
    a->missing = events ? 0 : 100;
    for (int i = 0; events && i < 100; i++)
        if (!uuids[i][0] || !it_find_event_by_uuid(events, uuids[i]))
            a->missing++;
    cJSON_Delete(events);
    return NULL;
}

/* flush from several threads at once: each returns once its own events are in. */
START_TEST(test_concurrent_flushes)
{
    ph_ingest_t *srv = it_server(NULL);
    static const char *const opts[] = {"flush_at", "20", NULL};
    posthog_client_t *c = client(srv, NULL, opts);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[4];
    flusher_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (flusher_arg_t){c, srv, &mu, i, -1, -1};
        ck_assert_int_eq(pthread_create(&th[i], NULL, capture_then_flush, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].flush_status, POSTHOG_OK);
        ck_assert_msg(args[i].missing == 0, "thread %d: %d events not delivered after its flush",
                      i, args[i].missing);
    }
    ck_assert_int_eq(it_summary_num(srv, "events"), 400);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    it_check_balance(c, 400, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_flush_timeout_slow_server)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = client(srv, NULL, NULL);
    it_faults(srv, "{\"script\":[{\"delay_ms\":5000}]}");
    capture_n(c, "slow", 2, NULL);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_flush(c, 200), POSTHOG_E_TIMEOUT);
    int64_t took = it_mono_ms() - t0;
    ck_assert_int_ge(took, 190);
    ck_assert_msg(took < 4000, "flush(200 ms) returned after %lld ms", (long long)took);
    ck_assert_int_eq(posthog_flush(c, 0), POSTHOG_E_TIMEOUT); /* still in flight */
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).sent, 2);
    it_check_balance(c, 2, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

START_TEST(test_shutdown_delivers_everything)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_client_t *c = client(srv, d, NULL);
    char uuids[50][37];
    capture_n(c, "bye", 50, uuids);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "events"), 50);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 50);
    ck_assert_uint_eq(s.dropped_total, 0);
    ck_assert_uint_eq(it_drops_reports(d), 0);
    it_check_balance(c, 50, 0);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

START_TEST(test_shutdown_hanging_server_deadline)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    static const char *const opts[] = {"flush_interval_ms", "50", NULL};
    posthog_client_t *c = client(srv, d, opts);
    it_faults(srv, "{\"script\":[{\"delay_ms\":10000}]}");
    capture_n(c, "in-flight", 20, NULL);
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0); /* the request hangs */
    capture_n(c, "queued", 5, NULL);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_shutdown(c, 1000), POSTHOG_E_TIMEOUT);
    int64_t took = it_mono_ms() - t0;
    ck_assert_int_ge(took, 900);
    ck_assert_msg(took < 4000, "shutdown(1000) returned after %lld ms", (long long)took);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_SHUTDOWN], 25);
    ck_assert_uint_eq(s.queue_depth, 0);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SHUTDOWN), 25);
    ck_assert_uint_eq(it_drops_total(d), 25);
    it_check_balance(c, 25, 0);
    /* still a no-op afterwards */
    ck_assert_int_eq(posthog_shutdown(c, 1000), POSTHOG_OK);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* A batch waiting for its retry (Retry-After: 30) is abandoned at the deadline. */
START_TEST(test_shutdown_abandons_pending_retry)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    static const char *const opts[] = {"flush_interval_ms", "50", NULL};
    posthog_client_t *c = client(srv, d, opts);
    it_faults(srv, "{\"script\":[{\"status\":503,\"retry_after\":\"30\"}]}");
    capture_n(c, "waiting", 3, NULL);
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0);
    it_sleep_ms(100);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_shutdown(c, 500), POSTHOG_E_TIMEOUT);
    ck_assert_msg(it_mono_ms() - t0 < 4000, "shutdown waited for the retry");
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_SHUTDOWN], 3);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_SHUTDOWN), 3);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

START_TEST(test_shutdown_default_timeout_option)
{
    ph_ingest_t *srv = it_server(NULL);
    static const char *const opts[] = {"flush_interval_ms", "50", "shutdown_timeout_ms", "500",
                                       NULL};
    posthog_client_t *c = client(srv, NULL, opts);
    it_faults(srv, "{\"script\":[{\"delay_ms\":10000}]}");
    capture_n(c, "e", 3, NULL);
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_shutdown(c, -1), POSTHOG_E_TIMEOUT);
    int64_t took = it_mono_ms() - t0;
    ck_assert_int_ge(took, 400);
    ck_assert_msg(took < 4000, "shutdown(-1) with shutdown_timeout_ms=500 took %lld ms",
                  (long long)took);
    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_SHUTDOWN], 3);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_shutdown_twice)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = client(srv, NULL, NULL);
    capture_n(c, "e", 3, NULL);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    int64_t t0 = it_mono_ms();
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(posthog_shutdown(c, -1), POSTHOG_OK);
    ck_assert_msg(it_mono_ms() - t0 < 2000, "second shutdown did not return at once");
    ck_assert_int_eq(it_summary_num(srv, "events"), 3);
    it_check_balance(c, 3, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

START_TEST(test_capture_after_shutdown)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_client_t *c = client(srv, d, NULL);
    capture_n(c, "before", 2, NULL);
    ck_assert_int_eq(posthog_shutdown(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "u", "after", NULL), POSTHOG_E_SHUTDOWN);
    ck_assert_int_eq(posthog_capture_json(c, "u", "after", "{}"), POSTHOG_E_SHUTDOWN);
    ck_assert_int_eq(posthog_identify(c, "u", "{\"a\":1}", NULL), POSTHOG_E_SHUTDOWN);
    ck_assert_int_eq(posthog_capture_ex(c, "u", "after", NULL, 0, NULL, NULL, NULL, NULL, NULL),
                     POSTHOG_E_SHUTDOWN);
    posthog_status_t fs = posthog_flush(c, 1000);
    ck_assert_msg(fs == POSTHOG_OK || fs == POSTHOG_E_SHUTDOWN, "flush after shutdown: %s",
                  posthog_strerror(fs));
    it_sleep_ms(200);
    ck_assert_int_eq(it_summary_num(srv, "requests"), 1);
    ck_assert_int_eq(it_summary_num(srv, "events"), 2);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_SHUTDOWN], 4);
    ck_assert_uint_eq(it_drops_reports(d), 4);
    for (size_t i = 0; i < 4; i++) {
        it_drop_t x = it_drops_get(d, i);
        ck_assert_int_eq(x.reason, POSTHOG_DROP_SHUTDOWN);
        ck_assert_int_eq(x.status, POSTHOG_E_SHUTDOWN);
        ck_assert_uint_eq(x.count, 1);
        it_drop_clear(&x);
    }
    it_check_balance(c, 2, 4);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

START_TEST(test_free_without_shutdown_delivers)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = client(srv, NULL, NULL);
    char uuids[5][37];
    capture_n(c, "freed", 5, uuids);
    posthog_client_free(c);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(it_find_event_by_uuid(events, uuids[i]));
    cJSON_Delete(events);
    posthog_client_free(NULL); /* no-op */
    it_stop(srv);
}
END_TEST

START_TEST(test_free_hanging_server_bounded)
{
    ph_ingest_t *srv = it_server(NULL);
    static const char *const opts[] = {"flush_interval_ms", "50", "shutdown_timeout_ms", "500",
                                       NULL};
    posthog_client_t *c = client(srv, NULL, opts);
    it_faults(srv, "{\"script\":[{\"delay_ms\":10000}]}");
    capture_n(c, "e", 3, NULL);
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0);
    int64_t t0 = it_mono_ms();
    posthog_client_free(c);
    int64_t took = it_mono_ms() - t0;
    ck_assert_msg(took < 4000, "posthog_client_free took %lld ms", (long long)took);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ several clients */

START_TEST(test_two_clients_deliver_separately)
{
    ph_ingest_t *srv1 = it_server(NULL), *srv2 = it_server(NULL);
    posthog_options_t *oa = it_options(srv1), *ob = it_options(srv1), *oc = it_options(srv2);
    it_set(oa, "api_key", "phc_a");
    it_set(ob, "api_key", "phc_b");
    it_set(oc, "api_key", "phc_c");
    it_set(ob, "gzip", "0");
    posthog_client_t *a = it_client(oa), *b = it_client(ob), *cc = it_client(oc);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(posthog_capture(a, "ua", "from-a", NULL), POSTHOG_OK);
        ck_assert_int_eq(posthog_capture(b, "ub", "from-b", NULL), POSTHOG_OK);
        ck_assert_int_eq(posthog_capture(cc, "uc", "from-c", NULL), POSTHOG_OK);
    }
    ck_assert_int_eq(posthog_flush(a, 10000), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(b, 10000), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(cc, 10000), POSTHOG_OK);

    cJSON *reqs = it_requests(srv1);
    int na = 0, nb = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs) {
        const char *key = it_str(it_req_body(r), "api_key");
        ck_assert_ptr_nonnull(key);
        const char *want = strcmp(key, "phc_a") == 0 ? "from-a" : "from-b";
        ck_assert_msg(strcmp(key, "phc_a") == 0 || strcmp(key, "phc_b") == 0, "key %s", key);
        const cJSON *e;
        cJSON_ArrayForEach(e, it_req_batch(r)) {
            ck_assert_str_eq(it_str(e, "event"), want);
            if (want[5] == 'a')
                na++;
            else
                nb++;
        }
    }
    cJSON_Delete(reqs);
    ck_assert_int_eq(na, 10);
    ck_assert_int_eq(nb, 10);
    cJSON *ev2 = it_events(srv2);
    ck_assert_int_eq(cJSON_GetArraySize(ev2), 10);
    const cJSON *e;
    cJSON_ArrayForEach(e, ev2) ck_assert_str_eq(it_str(e, "event"), "from-c");
    cJSON_Delete(ev2);

    it_check_balance(a, 10, 0);
    it_check_balance(b, 10, 0);
    it_check_balance(cc, 10, 0);
    /* shutting one down leaves the others working */
    ck_assert_int_eq(posthog_shutdown(a, 5000), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(b, "ub", "from-b", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(b, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv1, "events"), 21);
    it_check_balance(b, 11, 0);
    posthog_client_free(a);
    posthog_client_free(b);
    posthog_client_free(cc);
    it_stop(srv1);
    it_stop(srv2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("integration_lifecycle");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_flush_ok_once_delivered);
    tcase_add_test(tc, test_concurrent_flushes);
    tcase_add_test(tc, test_flush_timeout_slow_server);
    tcase_add_test(tc, test_shutdown_delivers_everything);
    tcase_add_test(tc, test_shutdown_hanging_server_deadline);
    tcase_add_test(tc, test_shutdown_abandons_pending_retry);
    tcase_add_test(tc, test_shutdown_default_timeout_option);
    tcase_add_test(tc, test_shutdown_twice);
    tcase_add_test(tc, test_capture_after_shutdown);
    tcase_add_test(tc, test_free_without_shutdown_delivers);
    tcase_add_test(tc, test_free_hanging_server_bounded);
    tcase_add_test(tc, test_two_clients_deliver_separately);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
