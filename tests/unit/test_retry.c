/*
 * Unit tests of src/delivery/retry.c: the response table of the ingestion contract,
 * the backoff (growth, jitter, cap, Retry-After) and Retry-After parsing; and
 * which v0 2xx bodies confirm a batch (proto_v0.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "retry.h"
#include "util.h"

START_TEST(classify_contract_table) {
    static const struct {
        long status;
        ph_outcome_t want;
    } t[] = {
        {200, PH_OUTCOME_OK},        {201, PH_OUTCOME_OK},        {204, PH_OUTCOME_OK},
        {299, PH_OUTCOME_OK},        {400, PH_OUTCOME_REJECT},    {401, PH_OUTCOME_REJECT},
        {403, PH_OUTCOME_REJECT},    {404, PH_OUTCOME_REJECT},    {405, PH_OUTCOME_REJECT},
        {422, PH_OUTCOME_REJECT},    {413, PH_OUTCOME_TOO_LARGE}, {408, PH_OUTCOME_RETRY},
        {429, PH_OUTCOME_RETRY},     {500, PH_OUTCOME_RETRY},     {502, PH_OUTCOME_RETRY},
        {503, PH_OUTCOME_RETRY},     {504, PH_OUTCOME_RETRY},     {0, PH_OUTCOME_RETRY},
        {507, PH_OUTCOME_RETRY},     {599, PH_OUTCOME_RETRY},     {501, PH_OUTCOME_REJECT},
        {505, PH_OUTCOME_REJECT},    {100, PH_OUTCOME_REJECT},    {600, PH_OUTCOME_REJECT},
        {999, PH_OUTCOME_REJECT},
        /* a redirect is a proxy's or captive portal's answer, not a refusal */
        {300, PH_OUTCOME_RETRY},     {301, PH_OUTCOME_RETRY},     {302, PH_OUTCOME_RETRY},
        {303, PH_OUTCOME_RETRY},     {307, PH_OUTCOME_RETRY},     {308, PH_OUTCOME_RETRY},
        {399, PH_OUTCOME_RETRY},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(posthog__classify(t[i].status) == t[i].want, "status %ld: got %d want %d",
                      t[i].status, posthog__classify(t[i].status), t[i].want);
}
END_TEST

/* Only the capture service's own answer confirms a v0 batch: a captive
 * portal's or proxy's 2xx page does not. */
START_TEST(v0_confirmation_body) {
    static const struct {
        long status;
        const char *body;
        bool want;
    } t[] = {
        {200, "{\"status\": 1}", true},
        {200, "{\"status\":1}", true},
        {201, " {\n \"status\" : 1 }\n", true},
        {200, "{\"status\":1,\"quota_limited\":[\"events\"]}", true},
        {204, "", true},
        {204, "{\"status\": 1}", false}, /* a 204 has no body */
        {200, "", false},
        {200, "<html><body>Sign in to the Wi-Fi</body></html>", false},
        {200, "{\"status\": 0}", false},
        {200, "{\"status\": \"1\"}", false},
        {200, "{\"status\": 10}", false},
        {200, "{\"status\": 1", false},
        {200, "{}", false},
        {200, "[1]", false},
        {200, "{\"ok\": 1}", false},
        {200, "{\"results\": {}}", false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(posthog__v0_confirmed(t[i].status, t[i].body, strlen(t[i].body)) == t[i].want,
                      "HTTP %ld %s: want %d", t[i].status, t[i].body, t[i].want);
    ck_assert(!posthog__v0_confirmed(200, NULL, 0));
}
END_TEST

START_TEST(backoff_growth_and_jitter) {
    const uint32_t base = 100, cap = 30000;
    for (uint32_t retry = 1; retry <= 8; retry++) {
        double lo = (double)base * (double)(1u << (retry - 1));
        int64_t mn = INT64_MAX, mx = 0;
        for (int k = 0; k < 3000; k++) {
            int64_t d = posthog__backoff_ms(retry, base, cap, -1);
            ck_assert_msg(d >= (int64_t)lo && (double)d <= lo * 1.25,
                          "retry %u: %lld outside [%.0f, %.0f]", retry, (long long)d, lo,
                          lo * 1.25);
            if (d < mn) mn = d;
            if (d > mx) mx = d;
        }
        /* jitter is real: the spread covers most of the 25% band */
        ck_assert_msg((double)(mx - mn) > lo * 0.2, "retry %u: spread %lld", retry,
                      (long long)(mx - mn));
    }
    /* first retry at least the base (the contract's 100 ms) */
    for (int k = 0; k < 1000; k++) ck_assert_int_ge(posthog__backoff_ms(1, 100, cap, -1), 100);
    /* retry 0 is treated as the first */
    for (int k = 0; k < 100; k++) {
        int64_t d = posthog__backoff_ms(0, 100, cap, -1);
        ck_assert(d >= 100 && d <= 125);
    }
}
END_TEST

START_TEST(backoff_cap) {
    for (uint32_t retry = 1; retry <= 200; retry++)
        for (int k = 0; k < 50; k++) {
            int64_t d = posthog__backoff_ms(retry, 100, 1000, -1);
            ck_assert_int_le(d, 1000);
            if (retry >= 5) ck_assert_int_ge(d, 1000 * 8 / 10); /* at or near the cap */
        }
    /* huge retry counts do not overflow */
    ck_assert_int_eq(posthog__backoff_ms(UINT32_MAX, 100, 30000, -1), 30000);
    ck_assert_int_le(posthog__backoff_ms(64, UINT32_MAX, UINT32_MAX, -1), UINT32_MAX);
    ck_assert_int_gt(posthog__backoff_ms(64, UINT32_MAX, UINT32_MAX, -1), 0);
}
END_TEST

START_TEST(backoff_retry_after) {
    /* Retry-After raises the wait ... */
    for (int k = 0; k < 200; k++) ck_assert_int_eq(posthog__backoff_ms(1, 100, 30000, 5000), 5000);
    /* ... never lowers it ... */
    for (int k = 0; k < 200; k++) {
        int64_t d = posthog__backoff_ms(3, 100, 30000, 10);
        ck_assert(d >= 400 && d <= 500);
    }
    int64_t d0 = posthog__backoff_ms(1, 100, 30000, 0);
    ck_assert(d0 >= 100 && d0 <= 125);
    /* ... and is capped */
    ck_assert_int_eq(posthog__backoff_ms(1, 100, 30000, 120000), 30000);
    ck_assert_int_eq(posthog__backoff_ms(1, 100, 30000, INT64_MAX), 30000);
    ck_assert_int_eq(posthog__backoff_ms(2, 100, 2000, 86400000), 2000);
}
END_TEST

START_TEST(parse_retry_after_forms) {
    const int64_t now = 1445412480000LL; /* Wed, 21 Oct 2015 07:28:00 GMT */
    ck_assert_int_eq(posthog__parse_retry_after("0", now), 0);
    ck_assert_int_eq(posthog__parse_retry_after("1", now), 1000);
    ck_assert_int_eq(posthog__parse_retry_after("120", now), 120000);
    ck_assert_int_eq(posthog__parse_retry_after("  7 ", now), 7000);
    ck_assert_int_eq(posthog__parse_retry_after("7\r\n", now), 7000);
    /* capped at a day */
    ck_assert_int_eq(posthog__parse_retry_after("999999999", now), 86400000);
    /* HTTP-date forms */
    ck_assert_int_eq(posthog__parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
    ck_assert_int_eq(posthog__parse_retry_after("Wed, 21 Oct 2015 08:28:00 GMT", now), 3600000);
    ck_assert_int_eq(posthog__parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now), 10000);
    ck_assert_int_eq(posthog__parse_retry_after("Wed Oct 21 07:28:05 2015", now), 5000);
    /* a date in the past means no wait */
    ck_assert_int_eq(posthog__parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now), 0);
    /* absent or garbage */
    ck_assert_int_eq(posthog__parse_retry_after(NULL, now), -1);
    ck_assert_int_eq(posthog__parse_retry_after("", now), -1);
    ck_assert_int_eq(posthog__parse_retry_after("   ", now), -1);
    ck_assert_int_eq(posthog__parse_retry_after("soon", now), -1);
    ck_assert_int_eq(posthog__parse_retry_after("12abc", now), -1);
    ck_assert_int_eq(posthog__parse_retry_after("-5", now), -1);
    ck_assert_int_eq(posthog__parse_retry_after("5 5", now), -1);
}
END_TEST

/* HTTP-dates are parsed by the library, not curl_getdate (whose time_t is
 * 32 bits in Debian 12's armhf libcurl while ours is 64): the three forms of
 * RFC 7231 7.1.1.1, dates past 2038, and what is not a date. */
START_TEST(http_date_forms) {
    const int64_t now_s = 1445412480; /* 2015-10-21 */
    int64_t t = 0;
    ck_assert_int_eq(posthog__parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, 784111777);
    ck_assert_int_eq(posthog__parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, 784111777);
    ck_assert_int_eq(posthog__parse_http_date("Sun Nov  6 08:49:37 1994", now_s, &t), 0);
    ck_assert_int_eq(t, 784111777);
    ck_assert_int_eq(posthog__parse_http_date("Sun Nov 16 08:49:37 1994", now_s, &t), 0);
    ck_assert_int_eq(t, 784111777 + 10 * 86400);
    /* past 2^31 seconds: a 32-bit time_t cannot hold these */
    ck_assert_int_eq(posthog__parse_http_date("Tue, 19 Jan 2038 03:14:08 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, 2147483648LL);
    ck_assert_int_eq(posthog__parse_http_date("Thu, 29 Feb 2052 12:00:00 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, 2592820800LL);
    ck_assert_int_eq(posthog__parse_http_date("Sun, 07 Feb 2106 06:28:16 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, 4294967296LL);
    /* RFC 850 years: more than 50 years ahead is the past century */
    ck_assert_int_eq(posthog__parse_http_date("Thursday, 01-Jan-65 00:00:00 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, 2997993600LL); /* 2065 */
    ck_assert_int_eq(posthog__parse_http_date("Saturday, 01-Jan-66 00:00:00 GMT", now_s, &t), 0);
    ck_assert_int_eq(t, -126230400LL); /* 1966 */
    /* names in any case, surrounding blanks */
    ck_assert_int_eq(posthog__parse_http_date("  sun, 06 nov 1994 08:49:37 gmt\r\n", now_s, &t), 0);
    ck_assert_int_eq(t, 784111777);
    static const char *const bad[] = {
        "", "Sun, 06 Nov 1994 08:49:37",           /* no zone */
        "Sun, 06 Nov 1994 08:49:37 GMT x",         /* trailing text */
        "Sun, 31 Nov 1994 08:49:37 GMT",           /* no 31 November */
        "Tue, 29 Feb 2100 00:00:00 GMT",           /* 2100 is not a leap year */
        "Sun, 06 Nov 1994 24:00:00 GMT",           /* hour */
        "Sun, 6 Nov 1994 08:49:37 GMT",            /* one-digit day */
        "Sun, 06 Nox 1994 08:49:37 GMT",           /* month */
        "Sunday, 06 Nov 1994 08:49:37 GMT",        /* long name, short form */
        "Sun, 06-Nov-94 08:49:37 GMT",             /* short name, RFC 850 form */
        "Sun Nov  6 08:49:37",                     /* asctime without year */
        "Xyz, 06 Nov 1994 08:49:37 GMT", "1994-11-06T08:49:37Z", "Sun, 06 Nov 19"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(posthog__parse_http_date(bad[i], now_s, &t) == -1, "accepted '%s'", bad[i]);
    /* Retry-After with a date after 2038 waits the right time */
    const int64_t now = 2147483000000LL;
    ck_assert_int_eq(posthog__parse_retry_after("Tue, 19 Jan 2038 03:14:08 GMT", now), 648000);
}
END_TEST

static Suite *retry_suite(void) {
    Suite *s = suite_create("retry");
    TCase *t = tcase_create("retry");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, classify_contract_table);
    tcase_add_test(t, v0_confirmation_body);
    tcase_add_test(t, backoff_growth_and_jitter);
    tcase_add_test(t, backoff_cap);
    tcase_add_test(t, backoff_retry_after);
    tcase_add_test(t, parse_retry_after_forms);
    tcase_add_test(t, http_date_forms);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(retry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
