/*
 * Unit tests of src/core/options.c (string-keyed option setter, host
 * normalisation, environment) and of the small public helpers in client.c
 * (posthog_client_new argument errors, posthog_strerror,
 * posthog_drop_reason_name).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "options.h"

typedef struct {
    const char *key;
    const char *good[6];
    const char *bad[10];
} opt_case_t;

/* Every key documented in posthog.h, with accepted and rejected values. */
static const opt_case_t cases[] = {
    {"flush_at", {"1", "100", "100000"}, {"", "0", "-1", "abc", "10x", "100001", " 5", "1.5"}},
    {"flush_interval_ms", {"1", "5000", "86400000"}, {"", "0", "-5", "x", "86400001", "5s"}},
    {"max_queue_size", {"1", "262144", "67108864"}, {"", "0", "-1", "67108865", "1e6"}},
    {"max_queue_bytes", {"65536", "50331648", "17179869184"},
     {"", "65535", "-1", "17179869185", "32M", "99999999999999999999999"}},
    {"max_batch_bytes", {"1024", "5242880", "94371840"}, {"", "1023", "94371841", "-1", "x"}},
    {"max_event_bytes", {"256", "921600", "1000000"}, {"", "255", "1000001", "-1", "lots"}},
    {"gzip", {"1", "0", "true", "false"}, {"", "2", "-1", "maybe", "01", "1 "}},
    {"gzip_level", {"1", "5", "9"}, {"", "0", "10", "-1", "fast"}},
    {"request_timeout_ms", {"1", "10000", "3600000"}, {"", "0", "3600001", "-1", "1s"}},
    {"connect_timeout_ms", {"1", "5000", "3600000"}, {"", "0", "3600001", "-1", "x"}},
    {"max_retries", {"0", "3", "100"}, {"", "101", "-1", "three", "3.0"}},
    {"retry_backoff_ms", {"1", "100", "3600000"}, {"", "0", "3600001", "-100", "x"}},
    {"max_retry_wait_ms", {"1", "30000", "3600000"}, {"", "0", "3600001", "-1", "x"}},
    {"shutdown_timeout_ms", {"0", "5000", "3600000"}, {"", "3600001", "-1", "x"}},
    {"disabled", {"1", "0", "TRUE", "off"}, {"", "yes please", "-1", "2"}},
    {"historical_migration", {"1", "0", "yes", "no"}, {"", "y", "2"}},
    {"debug", {"1", "0", "on", "False"}, {"", "10", "verbose"}},
    {"api_key", {"phc_abc", "x"}, {"", "bad\xC3", "phc_x\r\nX-Evil: 1", "tab\there", "del\x7f"}},
    {"capture_mode", {"v1", "v0"}, {"", "V1", "v2", "legacy"}},
    {"compression", {"zstd", "gzip", "deflate", "br", "none"}, {"", "GZIP", "lz4", "identity"}},
    {"zstd_level", {"1", "3", "19"}, {"", "0", "20", "-1"}},
    {"brotli_level", {"0", "4", "11"}, {"", "12", "-1"}},
    {"disable_geoip", {"1", "0", "true"}, {"", "2"}},
    {"max_ai_event_bytes", {"256", "8388608"}, {"", "255", "33554433"}},
    {"sdk_name", {"posthog-python", "my_sdk.v2"}, {"", "a/b", "a b", "x\r\ny", "\xC3\xA9"}},
    {"sdk_version", {"1.2.3", "0.1.0-rc1"}, {"", "1/2", "1 2"}},
    {"host", {"https://us.i.posthog.com", "http://localhost:8000", "HTTPS://x.example/"},
     {"", "us.i.posthog.com", "ftp://x", "https://", "https:///x", "http:// x", "javascript:x",
      "https//x"}},
    {"default_distinct_id", {"anon", "caf\xC3\xA9"}, {"", "\xFF"}},
    {"super_properties", {"{}", "{\"a\":1}", " {\"$lib_x\":[1]} "},
     {"", "[]", "1", "\"s\"", "null", "{", "{\"a\":}", "{} {}"}},
    {"ca_bundle", {"/etc/ssl/certs/ca.pem"}, {""}},
};

START_TEST(every_key_good_and_bad) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const opt_case_t *c = &cases[i];
        for (int g = 0; g < 4 && c->good[g]; g++) {
            posthog_options_t *o = posthog_options_new();
            ck_assert_msg(posthog_options_set(o, c->key, c->good[g]) == POSTHOG_OK,
                          "%s=%s rejected", c->key, c->good[g]);
            posthog_options_free(o);
        }
        for (int b = 0; b < 10 && c->bad[b]; b++) {
            posthog_options_t *o = posthog_options_new();
            posthog_options_t before = *o;
            ck_assert_msg(posthog_options_set(o, c->key, c->bad[b]) == POSTHOG_E_BAD_OPTION_VALUE,
                          "%s='%s' accepted", c->key, c->bad[b]);
            /* unchanged on error (pointers included: nothing was replaced) */
            ck_assert_msg(memcmp(&before, o, sizeof before) == 0, "%s='%s' changed the options",
                          c->key, c->bad[b]);
            posthog_options_free(o);
        }
        posthog_options_t *o = posthog_options_new();
        ck_assert_msg(posthog_options_set(o, c->key, NULL) == POSTHOG_E_BAD_OPTION_VALUE,
                      "%s=NULL accepted", c->key);
        posthog_options_free(o);
    }
}
END_TEST

START_TEST(values_land_in_fields) {
    posthog_options_t *o = posthog_options_new();
    /* defaults as documented */
    ck_assert_uint_eq(o->flush_at, 100);
    ck_assert_uint_eq(o->flush_interval_ms, 5000);
    ck_assert_uint_eq(o->max_queue_size, 262144);
    ck_assert_uint_eq(o->max_queue_bytes, 50331648);
    ck_assert_uint_eq(o->max_batch_bytes, 5242880);
    ck_assert_uint_eq(o->max_event_bytes, 921600);
    /* compression: zstd when built with it, else gzip, until capture_mode decides */
    ck_assert_int_eq(o->compression,
                     posthog__codec_available(PH_CODEC_ZSTD) ? PH_CODEC_ZSTD : PH_CODEC_GZIP);
    ck_assert(!o->compression_set);
    ck_assert_int_eq(o->gzip_level, 1);
    ck_assert_uint_eq(o->request_timeout_ms, 10000);
    ck_assert_uint_eq(o->connect_timeout_ms, 5000);
    ck_assert_uint_eq(o->max_retries, 3);
    ck_assert_uint_eq(o->retry_backoff_ms, 100);
    ck_assert_uint_eq(o->max_retry_wait_ms, 30000);
    ck_assert_uint_eq(o->shutdown_timeout_ms, 5000);
    ck_assert(!o->disabled && !o->historical_migration && !o->debug);
    ck_assert_str_eq(o->host, "https://us.i.posthog.com");
    ck_assert_ptr_null(o->api_key);

    ck_assert_int_eq(posthog_options_set(o, "flush_at", "7"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "max_queue_bytes", "17179869184"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "max_event_bytes", "1000"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "gzip", "false"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "gzip_level", "9"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "max_retries", "0"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "historical_migration", "true"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "api_key", "phc_1"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "api_key", "phc_2"), POSTHOG_OK); /* replaced */
    ck_assert_int_eq(posthog_options_set(o, "default_distinct_id", "anon"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "super_properties", "{\"a\":1}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "ca_bundle", "/x.pem"), POSTHOG_OK);
    ck_assert_uint_eq(o->flush_at, 7);
    ck_assert_uint_eq(o->max_queue_bytes, (uint64_t)16 << 30); /* 64-bit field, no truncation */
    ck_assert_uint_eq(o->max_event_bytes, 1000);
    ck_assert_int_eq(o->compression, PH_CODEC_NONE); /* gzip=0 */
    ck_assert(o->compression_set);
    ck_assert_int_eq(o->gzip_level, 9);
    ck_assert_uint_eq(o->max_retries, 0);
    ck_assert(o->historical_migration);
    ck_assert_str_eq(o->api_key, "phc_2");
    ck_assert(o->api_key_set);
    ck_assert_str_eq(o->default_distinct_id, "anon");
    ck_assert_str_eq(o->super_properties, "{\"a\":1}");
    ck_assert_str_eq(o->ca_bundle, "/x.pem");
    /* a bad value keeps the good one */
    ck_assert_int_eq(posthog_options_set(o, "flush_at", "0"), POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_uint_eq(o->flush_at, 7);
    ck_assert_int_eq(posthog_options_set(o, "gzip", "nope"), POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_int_eq(o->compression, PH_CODEC_NONE);
    ck_assert_int_eq(posthog_options_set(o, "api_key", ""), POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_str_eq(o->api_key, "phc_2");
    posthog_options_free(o);
    posthog_options_free(NULL);
}
END_TEST

START_TEST(unknown_key_and_null_args) {
    posthog_options_t *o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "flush_atx", "1"), POSTHOG_E_UNKNOWN_OPTION);
    ck_assert_int_eq(posthog_options_set(o, "", "1"), POSTHOG_E_UNKNOWN_OPTION);
    ck_assert_int_eq(posthog_options_set(o, "FLUSH_AT", "1"), POSTHOG_E_UNKNOWN_OPTION);
    ck_assert_int_eq(posthog_options_set(o, "api-key", "x"), POSTHOG_E_UNKNOWN_OPTION);
    ck_assert_int_eq(posthog_options_set(o, NULL, "1"), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_options_set(NULL, "flush_at", "1"), POSTHOG_E_INVALID_ARG);
    posthog_options_set_log(NULL, NULL, NULL);
    posthog_options_set_on_drop(NULL, NULL, NULL);
    posthog_options_set_before_send(NULL, NULL, NULL);
    posthog_options_free(o);
}
END_TEST

START_TEST(host_normalisation) {
    static const struct {
        const char *in, *out;
    } t[] = {
        {"https://app.posthog.com", "https://us.i.posthog.com"},
        {"https://app.posthog.com/", "https://us.i.posthog.com"},
        {"https://app.posthog.com///", "https://us.i.posthog.com"},
        {"https://us.posthog.com", "https://us.i.posthog.com"},
        {"https://eu.posthog.com", "https://eu.i.posthog.com"},
        {"https://eu.posthog.com/", "https://eu.i.posthog.com"},
        {"HTTPS://EU.POSTHOG.COM", "https://eu.i.posthog.com"},
        {"https://us.i.posthog.com", "https://us.i.posthog.com"},
        {"https://eu.i.posthog.com/", "https://eu.i.posthog.com"},
        {"http://localhost:8000/", "http://localhost:8000"},
        {"https://ph.example.com/base/", "https://ph.example.com/base"},
        {"https://app.posthog.com.evil.example", "https://app.posthog.com.evil.example"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *h = posthog__normalize_host(t[i].in);
        ck_assert_msg(h && strcmp(h, t[i].out) == 0, "%s -> %s, want %s", t[i].in, h, t[i].out);
        free(h);
        posthog_options_t *o = posthog_options_new();
        ck_assert_int_eq(posthog_options_set(o, "host", t[i].in), POSTHOG_OK);
        ck_assert_str_eq(o->host, t[i].out);
        ck_assert(o->host_set);
        posthog_options_free(o);
    }
}
END_TEST

START_TEST(env_applies_only_when_unset) {
    setenv("POSTHOG_API_KEY", "phc_env", 1);
    setenv("POSTHOG_HOST", "https://eu.posthog.com/", 1);
    posthog_options_t *o = posthog_options_new();
    posthog__options_apply_env(o);
    ck_assert_str_eq(o->api_key, "phc_env");
    ck_assert_str_eq(o->host, "https://eu.i.posthog.com");
    posthog_options_free(o);

    o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "api_key", "phc_opt"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "host", "http://127.0.0.1:1"), POSTHOG_OK);
    posthog__options_apply_env(o);
    ck_assert_str_eq(o->api_key, "phc_opt");
    ck_assert_str_eq(o->host, "http://127.0.0.1:1");
    posthog_options_free(o);

    /* an invalid env host is ignored; an empty env key is ignored */
    setenv("POSTHOG_HOST", "not a url", 1);
    setenv("POSTHOG_API_KEY", "", 1);
    o = posthog_options_new();
    posthog__options_apply_env(o);
    ck_assert_ptr_null(o->api_key);
    ck_assert_str_eq(o->host, "https://us.i.posthog.com");
    posthog_options_free(o);
    unsetenv("POSTHOG_API_KEY");
    unsetenv("POSTHOG_HOST");
    o = posthog_options_new();
    posthog__options_apply_env(o);
    ck_assert_ptr_null(o->api_key);
    ck_assert_str_eq(o->host, "https://us.i.posthog.com");
    posthog_options_free(o);
}
END_TEST

START_TEST(client_new_errors) {
    unsetenv("POSTHOG_API_KEY");
    unsetenv("POSTHOG_HOST");
    char err[256];
    /* no api key */
    err[0] = '\0';
    ck_assert_ptr_null(posthog_client_new(posthog_options_new(), err, sizeof err));
    ck_assert_msg(strstr(err, "api_key") != NULL, "message: '%s'", err);
    ck_assert_ptr_null(posthog_client_new(NULL, err, sizeof err)); /* NULL: defaults, no key */
    ck_assert_ptr_null(posthog_client_new(NULL, NULL, 0));         /* no errbuf is fine */
    /* a tiny errbuf is truncated and NUL-terminated */
    char small[8];
    memset(small, 'x', sizeof small);
    ck_assert_ptr_null(posthog_client_new(NULL, small, sizeof small));
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    /* max_event_bytes over a quarter of max_queue_bytes */
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "max_queue_bytes", "65536");
    posthog_options_set(o, "max_event_bytes", "16385");
    err[0] = '\0';
    ck_assert_ptr_null(posthog_client_new(o, err, sizeof err)); /* o is owned and freed */
    ck_assert_msg(strstr(err, "max_event_bytes") != NULL, "message: '%s'", err);
    /* an explicit max_ai_event_bytes over the quarter too (the default adapts) */
    o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "max_queue_bytes", "65536");
    ck_assert_int_eq(posthog_options_set(o, "max_ai_event_bytes", "16385"), POSTHOG_OK);
    err[0] = '\0';
    ck_assert_ptr_null(posthog_client_new(o, err, sizeof err));
    ck_assert_msg(strstr(err, "max_ai_event_bytes") != NULL, "message: '%s'", err);
    /* exactly a quarter is fine: a disabled client starts no thread and sends nothing */
    o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "max_queue_bytes", "65536");
    posthog_options_set(o, "max_event_bytes", "16384");
    posthog_options_set(o, "disabled", "1");
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    posthog_client_free(c);
    posthog_client_free(NULL);
    /* the env key counts as a key */
    setenv("POSTHOG_API_KEY", "phc_env", 1);
    o = posthog_options_new();
    posthog_options_set(o, "disabled", "1");
    c = posthog_client_new(o, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    posthog_client_free(c);
    unsetenv("POSTHOG_API_KEY");
}
END_TEST

START_TEST(strerror_and_drop_names) {
    const char *seen[POSTHOG_E_NO_STORAGE + 1];
    for (int s = POSTHOG_OK; s <= POSTHOG_E_NO_STORAGE; s++) {
        const char *m = posthog_strerror((posthog_status_t)s);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_gt(strlen(m), 1);
        for (int k = 0; k < s; k++) ck_assert_msg(strcmp(seen[k], m) != 0, "%d and %d share '%s'", k, s, m);
        seen[s] = m;
    }
    ck_assert_ptr_nonnull(posthog_strerror((posthog_status_t)999));
    ck_assert_ptr_nonnull(posthog_strerror((posthog_status_t)-1));
    static const char *names[] = {"queue_full",  "invalid",  "too_large",    "rejected",
                                  "retries_exhausted", "before_send", "shutdown",
                                  "storage_full", "expired", "corrupt", "server_dropped"};
    ck_assert_int_eq(POSTHOG_DROP_REASON_COUNT, 11);
    ck_assert_int_le(POSTHOG_DROP_REASON_COUNT, POSTHOG_DROP_REASON_SLOTS);
    for (int r = 0; r < POSTHOG_DROP_REASON_COUNT; r++)
        ck_assert_str_eq(posthog_drop_reason_name((posthog_drop_reason_t)r), names[r]);
    ck_assert_str_eq(posthog_drop_reason_name(POSTHOG_DROP_REASON_COUNT), "unknown");
    ck_assert_str_eq(posthog_drop_reason_name((posthog_drop_reason_t)-1), "unknown");
    ck_assert_str_eq(posthog_version(), POSTHOG_VERSION_STRING);
}
END_TEST

/* posthog_get_stat: every name the header documents resolves; others do not. */
START_TEST(get_stat_names) {
    posthog_options_t *o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "disabled", "1"), POSTHOG_OK);
    posthog_client_t *c = posthog_client_new(o, NULL, 0);
    ck_assert_ptr_nonnull(c);
    /* one drop of each of two reasons, so sums are not trivially 0 */
    ck_assert_int_eq(posthog_capture(c, "u", "", NULL), POSTHOG_E_INVALID_EVENT);
    ck_assert_int_eq(posthog_capture_durable(c, "u", "e", NULL), POSTHOG_E_NO_STORAGE);
    static const char *names[] = {"captured",    "sent",          "requests",   "retries",
                                  "bytes_raw",   "bytes_sent",    "queue_depth", "queue_bytes",
                                  "spooled",     "replayed",      "spool_bytes", "spool_pending",
                                  "dropped_total", "evicted",     "corrupt_skipped"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(posthog_get_stat(c, names[i]) != UINT64_MAX, "%s", names[i]);
    char buf[64];
    for (int r = 0; r < POSTHOG_DROP_REASON_COUNT; r++) {
        snprintf(buf, sizeof buf, "dropped_%s", posthog_drop_reason_name((posthog_drop_reason_t)r));
        ck_assert_msg(posthog_get_stat(c, buf) != UINT64_MAX, "%s", buf);
    }
    ck_assert_uint_eq(posthog_get_stat(c, "dropped_invalid"), 1);
    ck_assert_uint_eq(posthog_get_stat(c, "dropped_storage_full"), 1);
    ck_assert_uint_eq(posthog_get_stat(c, "evicted"),
                      posthog_get_stat(c, "dropped_storage_full") +
                          posthog_get_stat(c, "dropped_expired"));
    ck_assert_uint_eq(posthog_get_stat(c, "dropped_total"), 2);
    ck_assert_uint_eq(posthog_get_stat(c, "no_such_stat"), UINT64_MAX);
    ck_assert_uint_eq(posthog_get_stat(c, "dropped_nope"), UINT64_MAX);
    ck_assert_uint_eq(posthog_get_stat(c, NULL), UINT64_MAX);
    ck_assert_uint_eq(posthog_get_stat(NULL, "sent"), UINT64_MAX);
    posthog_client_free(c);
}
END_TEST

static Suite *options_suite(void) {
    Suite *s = suite_create("options");
    TCase *t = tcase_create("options");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, every_key_good_and_bad);
    tcase_add_test(t, values_land_in_fields);
    tcase_add_test(t, get_stat_names);
    tcase_add_test(t, unknown_key_and_null_args);
    tcase_add_test(t, host_normalisation);
    tcase_add_test(t, env_applies_only_when_unset);
    tcase_add_test(t, client_new_errors);
    tcase_add_test(t, strerror_and_drop_names);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(options_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
