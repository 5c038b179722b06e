/*
 * Integration: what a caller learns when events are not delivered (issue
 * 9): posthog_flush_ex's result and counts, the server's answer in the drop
 * report, and the default stderr log when no log callback is set (the
 * README example that exited 0 although every event failed).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support_client.h"

static posthog_client_t *client(ph_ingest_t *srv, it_drops_t *d, const char *const *opts)
{
    posthog_options_t *o = it_options(srv);
    it_set(o, "flush_interval_ms", "60000");
    it_set(o, "max_retries", "1");
    for (int i = 0; opts && opts[i]; i += 2)
        it_set(o, opts[i], opts[i + 1]);
    if (d)
        it_drops_attach(o, d);
    return it_client(o);
}

static void capture_n(posthog_client_t *c, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(posthog_capture(c, "u", "ev", NULL), POSTHOG_OK);
}

/* ------------------------------------------------------------ flush_ex */

START_TEST(test_flush_ex_reports_rejected_events)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_client_t *c = client(srv, d, NULL);
    it_faults(srv, "{\"script\":[{\"status\":400}]}");
    capture_n(c, 3);
    posthog_flush_result_t r;
    memset(&r, 0xff, sizeof r);
    ck_assert_int_eq(posthog_flush_ex(c, 10000, &r), POSTHOG_E_UNDELIVERED);
    ck_assert_uint_eq(r.dropped, 3);
    ck_assert_uint_eq(r.delivered, 0);
    ck_assert_uint_eq(r.spooled, 0);
    ck_assert_uint_eq(r.spool_pending, 0);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_REJECTED), 3);

    /* the next flush is judged on its own: everything delivered */
    capture_n(c, 2);
    memset(&r, 0xff, sizeof r);
    ck_assert_int_eq(posthog_flush_ex(c, 10000, &r), POSTHOG_OK);
    ck_assert_uint_eq(r.delivered, 2);
    ck_assert_uint_eq(r.dropped, 0);
    /* nothing to wait for: OK at once, zero counts; NULL out is fine */
    ck_assert_int_eq(posthog_flush_ex(c, 10000, &r), POSTHOG_OK);
    ck_assert_uint_eq(r.delivered + r.dropped + r.spooled, 0);
    ck_assert_int_eq(posthog_flush_ex(c, 10000, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush_ex(NULL, 0, &r), POSTHOG_E_INVALID_ARG);
    it_check_balance(c, 5, 0);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

START_TEST(test_flush_ex_retries_exhausted)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = client(srv, NULL, NULL);
    it_faults(srv, "{\"script\":[{\"status\":503},{\"status\":503}]}");
    capture_n(c, 2);
    posthog_flush_result_t r;
    ck_assert_int_eq(posthog_flush_ex(c, 15000, &r), POSTHOG_E_UNDELIVERED);
    ck_assert_uint_eq(r.dropped, 2);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* posthog_flush itself keeps its contract: OK once nothing is pending. */
START_TEST(test_flush_keeps_ok_for_existing_callers)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = client(srv, NULL, NULL);
    it_faults(srv, "{\"script\":[{\"status\":400}]}");
    capture_n(c, 1);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_uint_eq(it_stats(c).dropped[POSTHOG_DROP_REJECTED], 1);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ the server's answer */

START_TEST(test_rejection_carries_the_server_answer)
{
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_client_t *c = client(srv, d, NULL);
    it_faults(srv, "{\"script\":[{\"status\":401,\"body\":"
                   "\"{\\\"type\\\":\\\"authentication_error\\\",\\\"detail\\\":\\\"Project API "
                   "key invalid\\\"}\"}]}");
    capture_n(c, 1);
    ck_assert_int_eq(posthog_flush_ex(c, 10000, NULL), POSTHOG_E_UNDELIVERED);
    ck_assert_uint_eq(it_drops_reports(d), 1);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_int_eq(x.http_status, 401);
    ck_assert_msg(x.message && strstr(x.message, "HTTP 401") &&
                      strstr(x.message, "Project API key invalid"),
                  "message: %s", x.message);
    it_drop_clear(&x);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* ------------------------------------------------------------ stderr by default */

/* The README's scenario: no log callback, every event rejected. Before,
 * nothing at all was printed. */
START_TEST(test_failures_reach_stderr_without_callback)
{
    unsetenv("POSTHOG_LOG_LEVEL");
    ph_ingest_t *srv = it_server(NULL);
    char path[] = "/tmp/ph_report_stderr_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    posthog_client_t *c = client(srv, NULL, NULL);
    it_faults(srv, "{\"script\":[{\"status\":400}]}");
    capture_n(c, 2);
    posthog_status_t st = posthog_flush_ex(c, 10000, NULL);
    posthog_client_free(c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char out[4096];
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    ck_assert_int_eq(st, POSTHOG_E_UNDELIVERED);
    ck_assert_msg(strstr(out, "libposthog: error: server rejected the batch: HTTP 400") != NULL,
                  "stderr: '%s'", out);
    it_stop(srv);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("report");
    TCase *t = tcase_create("report");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_flush_ex_reports_rejected_events);
    tcase_add_test(t, test_flush_ex_retries_exhausted);
    tcase_add_test(t, test_flush_keeps_ok_for_existing_callers);
    tcase_add_test(t, test_rejection_carries_the_server_answer);
    tcase_add_test(t, test_failures_reach_stderr_without_callback);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return it_run_suite(suite()); }
