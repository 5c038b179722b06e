/*
 * Unit tests of src/core/options.c (string-keyed option setter, host
 * normalisation, environment) and of the small public helpers in client.c
 * (posthog_client_new argument errors, posthog_strerror,
 * posthog_drop_reason_name).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

#include "codec.h"
#include "options.h"

/* max_queue_bytes' upper bound: 16 GiB, or half the address space on a
 * 32-bit build (a memory size must fit a size_t). */
#if SIZE_MAX > 0xFFFFFFFFu
#define QB_MAX "17179869184"
#define QB_OVER "17179869185"
#else
#define QB_MAX "2147483647"
#define QB_OVER "2147483648"
#endif

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
    {"max_queue_bytes", {"65536", "50331648", QB_MAX},
     {"", "65535", "-1", QB_OVER, "17179869185", "32M", "99999999999999999999999"}},
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
    {"host", {"https://us.i.posthog.com", "http://localhost:8000", "HTTPS://x.example/",
              "us.i.posthog.com", "localhost:8000", "[::1]:8000/base"},
     {"", "ftp://x", "https://", "https:///x", "http:// x", "javascript:x", "https//x",
      "eu.posthog.com:http", "[::1", "-"}},
    {"log_level", {"debug", "info", "warn", "error", "none", "WARNING"},
     {"", "verbose", "3", "warn "}},
    {"durability", {"failures", "always"}, {"", "sometimes"}},
    {"storage_path", {"/tmp/x"}, {""}},
    {"default_distinct_id", {"anon", "caf\xC3\xA9"}, {"", "\xFF"}},
    {"super_properties", {"{}", "{\"a\":1}", " {\"$lib_x\":[1]} "},
     {"", "[]", "1", "\"s\"", "null", "{", "{\"a\":}", "{} {}"}},
    {"ca_bundle", {"/etc/ssl/certs/ca.pem"}, {""}},
};

START_TEST(every_key_good_and_bad) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const opt_case_t *c = &cases[i];
        for (int g = 0; g < 6 && c->good[g]; g++) {
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
    ck_assert_int_eq(posthog_options_set(o, "max_queue_bytes", QB_MAX), POSTHOG_OK);
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
    ck_assert_uint_eq(o->max_queue_bytes, strtoull(QB_MAX, NULL, 10)); /* no truncation */
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
        /* a bare host name is https://, never refused for the default host */
        {"us.posthog.com", "https://us.i.posthog.com"},
        {"eu.posthog.com", "https://eu.i.posthog.com"},
        {"eu.i.posthog.com/", "https://eu.i.posthog.com"},
        {"ph.example.com:8443/base/", "https://ph.example.com:8443/base"},
        {"localhost:8000", "https://localhost:8000"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strstr(t[i].in, "://")) {
            char *h = posthog__normalize_host(t[i].in);
            ck_assert_msg(h && strcmp(h, t[i].out) == 0, "%s -> %s, want %s", t[i].in, h,
                          t[i].out);
            free(h);
        }
        posthog_options_t *o = posthog_options_new();
        ck_assert_int_eq(posthog_options_set(o, "host", t[i].in), POSTHOG_OK);
        ck_assert_str_eq(o->host, t[i].out);
        ck_assert(o->host_set);
        posthog_options_free(o);
    }
}
END_TEST

static int apply_env(posthog_options_t *o, char *err, size_t errlen) {
    char warn[256];
    return posthog__options_apply_env(o, err, errlen, warn, sizeof warn);
}

START_TEST(env_applies_only_when_unset) {
    char err[512];
    setenv("POSTHOG_API_KEY", "phc_env", 1);
    setenv("POSTHOG_HOST", "https://eu.posthog.com/", 1);
    posthog_options_t *o = posthog_options_new();
    ck_assert_int_eq(apply_env(o, err, sizeof err), 0);
    ck_assert_str_eq(o->api_key, "phc_env");
    ck_assert_str_eq(o->host, "https://eu.i.posthog.com");
    posthog_options_free(o);

    o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "api_key", "phc_opt"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "host", "http://127.0.0.1:1"), POSTHOG_OK);
    ck_assert_int_eq(apply_env(o, err, sizeof err), 0);
    ck_assert_str_eq(o->api_key, "phc_opt");
    ck_assert_str_eq(o->host, "http://127.0.0.1:1");
    posthog_options_free(o);

    /* a bare env host is https:// like the option */
    setenv("POSTHOG_HOST", "eu.posthog.com", 1);
    o = posthog_options_new();
    ck_assert_int_eq(apply_env(o, err, sizeof err), 0);
    ck_assert_str_eq(o->host, "https://eu.i.posthog.com");
    posthog_options_free(o);

    /* empty variables are unset */
    setenv("POSTHOG_HOST", "", 1);
    setenv("POSTHOG_API_KEY", "", 1);
    o = posthog_options_new();
    ck_assert_int_eq(apply_env(o, err, sizeof err), 0);
    ck_assert_ptr_null(o->api_key);
    ck_assert_str_eq(o->host, "https://us.i.posthog.com");
    posthog_options_free(o);
    unsetenv("POSTHOG_API_KEY");
    unsetenv("POSTHOG_HOST");
    o = posthog_options_new();
    ck_assert_int_eq(apply_env(o, err, sizeof err), 0);
    ck_assert_ptr_null(o->api_key);
    ck_assert_str_eq(o->host, "https://us.i.posthog.com");
    posthog_options_free(o);
}
END_TEST

/* Issue 9: a malformed POSTHOG_HOST sent an EU customer's events to the
 * default US host, and a malformed POSTHOG_API_KEY was used unchecked. */
START_TEST(env_malformed_key_or_host_fails_client) {
    char err[512];
    posthog_options_t *o;
    static const char *const bad_hosts[] = {"not a url", "ftp://eu.posthog.com", "https://",
                                            "eu posthog com"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        setenv("POSTHOG_HOST", bad_hosts[i], 1);
        o = posthog_options_new();
        ck_assert_int_eq(posthog_options_set(o, "api_key", "phc_test"), POSTHOG_OK);
        err[0] = '\0';
        posthog_client_t *c = posthog_client_new(o, err, sizeof err);
        ck_assert_msg(c == NULL, "POSTHOG_HOST=%s accepted (host %s)", bad_hosts[i],
                      c ? c->o->host : "");
        ck_assert_msg(strstr(err, "POSTHOG_HOST") && strstr(err, "https://"), "message: %s", err);
    }
    unsetenv("POSTHOG_HOST");

    static const char *const bad_keys[] = {"phc_secretvalue1234\n", "phc_secret\tvalue5678",
                                           "phc_secretvalue\xC3"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        setenv("POSTHOG_API_KEY", bad_keys[i], 1);
        o = posthog_options_new();
        err[0] = '\0';
        ck_assert_msg(posthog_client_new(o, err, sizeof err) == NULL, "key %zu accepted", i);
        ck_assert_msg(strstr(err, "POSTHOG_API_KEY") != NULL, "message: %s", err);
        ck_assert_msg(strstr(err, "secret") == NULL, "key not masked: %s", err);
    }
    unsetenv("POSTHOG_API_KEY");
}
END_TEST

/* A memory size larger than a size_t can hold (5.7 GB on a 32-bit build)
 * is refused with the bound it exceeds, never truncated (it became 512
 * bytes on armhf); a 64-bit build takes it. The spool's disk size is not
 * memory: 5.7 GB is fine everywhere. */
START_TEST(memory_sizes_fit_size_t) {
    static const char *const keys[] = {"max_queue_bytes"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        posthog_options_t *o = posthog_options_new();
        uint64_t before = o->max_queue_bytes;
        char err[256] = "";
        posthog_status_t st = posthog_options_set_ex(o, keys[k], "5700000000", err, sizeof err);
        if (SIZE_MAX > 0xFFFFFFFFu) {
            ck_assert_int_eq(st, POSTHOG_OK);
            ck_assert_uint_eq(o->max_queue_bytes, 5700000000ull);
        } else {
            ck_assert_int_eq(st, POSTHOG_E_BAD_OPTION_VALUE);
            ck_assert_uint_eq(o->max_queue_bytes, before);
            ck_assert_msg(strstr(err, keys[k]) && strstr(err, "5700000000") &&
                              strstr(err, "65536 to 2147483647") && strstr(err, "32-bit"),
                          "message: %s", err);
        }
        posthog_options_free(o);
    }
    posthog_options_t *o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "max_storage_bytes", "5700000000"), POSTHOG_OK);
    ck_assert_uint_eq(o->max_storage_bytes, 5700000000ull);
    posthog_options_free(o);
}
END_TEST

/* Option errors name the key, the value (masked when secret) and what is
 * allowed; an unknown key's value is never shown. */
START_TEST(option_error_messages) {
    static const struct {
        const char *key, *value;
        posthog_status_t st;
        const char *want[3]; /* substrings of the message */
    } t[] = {
        {"flush_at", "0", POSTHOG_E_BAD_OPTION_VALUE, {"flush_at", "\"0\"", "1 to 100000"}},
        {"max_queue_bytes", "32M", POSTHOG_E_BAD_OPTION_VALUE,
         {"max_queue_bytes", "\"32M\"", "65536 to " QB_MAX}},
        {"disabled", "maybe", POSTHOG_E_BAD_OPTION_VALUE, {"disabled", "\"maybe\"", "true/false"}},
        {"compression", "lz4", POSTHOG_E_BAD_OPTION_VALUE, {"compression", "\"lz4\"", "gzip"}},
        {"capture_mode", "v2", POSTHOG_E_BAD_OPTION_VALUE, {"capture_mode", "\"v2\"", "v0"}},
        {"log_level", "verbose", POSTHOG_E_BAD_OPTION_VALUE, {"log_level", "\"verbose\"", "none"}},
        {"host", "ftp://eu.posthog.com", POSTHOG_E_BAD_OPTION_VALUE,
         {"host", "ftp://eu.posthog.com", "https://"}},
        {"durability", "sometimes", POSTHOG_E_BAD_OPTION_VALUE, {"durability", "always", NULL}},
        {"super_properties", "[1]", POSTHOG_E_BAD_OPTION_VALUE, {"super_properties", "JSON object",
                                                                NULL}},
        {"flush_at", NULL, POSTHOG_E_BAD_OPTION_VALUE, {"flush_at", "NULL", NULL}},
        {"api_key", "phc_secretsecret\r\n", POSTHOG_E_BAD_OPTION_VALUE,
         {"api_key", "phc_****", "control character"}},
        {"api_key", "", POSTHOG_E_BAD_OPTION_VALUE, {"api_key", "empty", NULL}},
        {"flush_atx", "1", POSTHOG_E_UNKNOWN_OPTION, {"unknown option", "flush_atx", NULL}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        posthog_options_t *o = posthog_options_new();
        char err[512];
        memset(err, 'x', sizeof err);
        ck_assert_int_eq(posthog_options_set_ex(o, t[i].key, t[i].value, err, sizeof err), t[i].st);
        for (int w = 0; w < 3 && t[i].want[w]; w++)
            ck_assert_msg(strstr(err, t[i].want[w]) != NULL, "%s=%s: '%s' lacks '%s'", t[i].key,
                          t[i].value, err, t[i].want[w]);
        ck_assert_msg(strstr(err, "secretsecret") == NULL, "secret shown: %s", err);
        /* success clears the buffer */
        ck_assert_int_eq(posthog_options_set_ex(o, "flush_at", "5", err, sizeof err), POSTHOG_OK);
        ck_assert_str_eq(err, "");
        posthog_options_free(o);
    }
    /* a secret under a mistyped key is not echoed */
    posthog_options_t *o = posthog_options_new();
    char err[256];
    ck_assert_int_eq(posthog_options_set_ex(o, "apikey", "phc_topsecret", err, sizeof err),
                     POSTHOG_E_UNKNOWN_OPTION);
    ck_assert_msg(strstr(err, "apikey") && !strstr(err, "topsecret"), "%s", err);
    /* a tiny buffer is truncated and terminated; NULL/0 is fine */
    char small[6];
    ck_assert_int_eq(posthog_options_set_ex(o, "flush_at", "0", small, sizeof small),
                     POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(posthog_options_set_ex(o, "flush_at", "0", NULL, 0),
                     POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_int_eq(posthog_options_set_ex(NULL, "flush_at", "1", err, sizeof err),
                     POSTHOG_E_INVALID_ARG);
    ck_assert_uint_gt(strlen(err), 0);
    posthog_options_free(o);
}
END_TEST

/* A mistyped ca_bundle is found at client creation, not when every request fails. */
START_TEST(ca_bundle_checked_at_creation) {
    unsetenv("POSTHOG_API_KEY");
    unsetenv("POSTHOG_HOST");
    char err[512];
    const char *bad[] = {"/nonexistent/ca-bundle.pem", "/tmp"};
    for (size_t i = 0; i < 2; i++) {
        posthog_options_t *o = posthog_options_new();
        posthog_options_set(o, "api_key", "phc_test");
        ck_assert_int_eq(posthog_options_set(o, "ca_bundle", bad[i]), POSTHOG_OK);
        err[0] = '\0';
        posthog_client_t *c = posthog_client_new(o, err, sizeof err);
        if (c) posthog_client_free(c);
        ck_assert_msg(c == NULL, "ca_bundle=%s accepted", bad[i]);
        ck_assert_msg(strstr(err, "ca_bundle") && strstr(err, bad[i]) && strstr(err, "PEM"),
                      "message: %s", err);
    }
    /* a readable file passes (its content is curl's to judge) */
    char path[] = "/tmp/ph_ca_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "disabled", "1");
    posthog_options_set(o, "ca_bundle", path);
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    posthog_client_free(c);
    unlink(path);
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

/* ------------------------------------------------------------ logging */

typedef struct {
    char text[4096];
    int n;
} log_rec_t;

static void rec_log(posthog_log_level_t level, const char *msg, void *ud) {
    log_rec_t *r = ud;
    size_t len = strlen(r->text);
    snprintf(r->text + len, sizeof r->text - len, "%d:%s\n", (int)level, msg);
    r->n++;
}

/* Runs fn with stderr redirected to a file; returns what was written (static). */
static const char *with_stderr(void (*fn)(void *), void *arg) {
    static char out[8192];
    char path[] = "/tmp/ph_stderr_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return out;
}

/* A client that sends nowhere (nothing is captured), made and freed. */
static void tls_off_client(void *arg) {
    const char *const *kv = arg; /* extra key/value pairs, NULL-terminated */
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "host", "http://127.0.0.1:1");
    posthog_options_set(o, "tls_verify", "0");
    for (int i = 0; kv && kv[i]; i += 2) ck_assert_int_eq(posthog_options_set(o, kv[i], kv[i + 1]), 0);
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    posthog_client_free(c);
}

/* Issue 9: with no log callback nothing was ever printed, and tls_verify=0
 * was not mentioned at all. */
START_TEST(warnings_go_to_stderr_by_default) {
    unsetenv("POSTHOG_LOG_LEVEL");
    const char *out = with_stderr(tls_off_client, NULL);
    ck_assert_msg(strstr(out, "libposthog: warning: tls_verify=0") != NULL, "stderr: '%s'", out);

    /* log_level silences it: the option, and the environment */
    const char *const none[] = {"log_level", "none", NULL};
    out = with_stderr(tls_off_client, (void *)none);
    ck_assert_msg(out[0] == '\0', "stderr: '%s'", out);
    const char *const err_only[] = {"log_level", "error", NULL};
    out = with_stderr(tls_off_client, (void *)err_only);
    ck_assert_msg(out[0] == '\0', "stderr: '%s'", out);
    setenv("POSTHOG_LOG_LEVEL", "none", 1);
    out = with_stderr(tls_off_client, NULL);
    ck_assert_msg(out[0] == '\0', "stderr: '%s'", out);
    /* the option wins over the environment */
    const char *const warn[] = {"log_level", "warn", NULL};
    out = with_stderr(tls_off_client, (void *)warn);
    ck_assert_msg(strstr(out, "tls_verify=0") != NULL, "stderr: '%s'", out);
    /* a malformed POSTHOG_LOG_LEVEL is reported, not fatal */
    setenv("POSTHOG_LOG_LEVEL", "loud", 1);
    out = with_stderr(tls_off_client, NULL);
    ck_assert_msg(strstr(out, "POSTHOG_LOG_LEVEL=\"loud\"") != NULL, "stderr: '%s'", out);
    unsetenv("POSTHOG_LOG_LEVEL");
}
END_TEST

static void with_callback(void *arg) {
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "host", "http://127.0.0.1:1");
    posthog_options_set(o, "tls_verify", "0");
    posthog_options_set_log(o, rec_log, arg);
    posthog_client_t *c = posthog_client_new(o, NULL, 0);
    ck_assert_ptr_nonnull(c);
    posthog_client_free(c);
}

/* A callback replaces stderr and hears the tls_verify warning. */
START_TEST(log_callback_replaces_stderr) {
    unsetenv("POSTHOG_LOG_LEVEL");
    log_rec_t rec = {{0}, 0};
    const char *out = with_stderr(with_callback, &rec);
    ck_assert_msg(out[0] == '\0', "stderr: '%s'", out);
    ck_assert_msg(strstr(rec.text, "2:tls_verify=0") != NULL, "logged: '%s'", rec.text);
}
END_TEST

/* An error repeated for every event reaches stderr a bounded number of times. */
static void many_refusals(void *arg) {
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", "phc_test");
    posthog_options_set(o, "disabled", "1");
    posthog_client_t *c = posthog_client_new(o, NULL, 0);
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < 500; i++) posthog__log(c, POSTHOG_LOG_ERROR, "refusal %d", i);
    posthog_client_free(c);
    (void)arg;
}

START_TEST(stderr_is_rate_limited) {
    unsetenv("POSTHOG_LOG_LEVEL");
    const char *out = with_stderr(many_refusals, NULL);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    ck_assert_int_ge(lines, 1);
    /* at most two one-second windows' worth, plus a "suppressed" line */
    ck_assert_msg(lines <= 21, "%d lines", lines);
}
END_TEST

START_TEST(strerror_and_drop_names) {
    const char *seen[POSTHOG_E_UNDELIVERED + 1];
    for (int s = POSTHOG_OK; s <= POSTHOG_E_UNDELIVERED; s++) {
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

/* The parts a build may leave out (-DPOSTHOG_WITH_SPOOL=OFF,
 * -DPOSTHOG_WITH_CRASH_HANDLER=OFF) are refused with an error that names the
 * build option; in a build that has them they are accepted. */
START_TEST(build_option_gates) {
    char dir[] = "/tmp/ph-gates-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char err[512] = "";
    posthog_options_t *o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "api_key", "phc_test"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "host", "http://127.0.0.1:9"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "storage_path", dir), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "spool_fsync_interval_ms", "0"), POSTHOG_OK);
    ck_assert_int_eq(posthog_options_set(o, "spool_max_files", "1"), POSTHOG_E_BAD_OPTION_VALUE);
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
#ifdef POSTHOG_NO_SPOOL
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "storage_path") && strstr(err, "-DPOSTHOG_WITH_SPOOL=OFF"), "%s", err);
    o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "disabled", "1"), POSTHOG_OK);
    c = posthog_client_new(o, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(posthog_capture_durable(c, "u", "e", NULL), POSTHOG_E_NO_STORAGE);
    ck_assert_ptr_nonnull(strstr(posthog_strerror(POSTHOG_E_NO_STORAGE), "POSTHOG_WITH_SPOOL=OFF"));
#else
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(posthog_capture_durable(c, "u", "e", NULL), POSTHOG_OK);
#endif
    posthog_client_free(c);
    o = posthog_options_new();
    ck_assert_int_eq(posthog_options_set(o, "crash_handler", "0"), POSTHOG_OK);
    posthog_status_t st = posthog_options_set_ex(o, "crash_handler", "1", err, sizeof err);
#ifdef POSTHOG_NO_CRASH_HANDLER
    ck_assert_int_eq(st, POSTHOG_E_BAD_OPTION_VALUE);
    ck_assert_msg(strstr(err, "crash_handler") && strstr(err, "-DPOSTHOG_WITH_CRASH_HANDLER=OFF"),
                  "%s", err);
#else
    ck_assert_int_eq(st, POSTHOG_OK);
#endif
    posthog_options_free(o);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
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
    tcase_add_test(t, env_malformed_key_or_host_fails_client);
    tcase_add_test(t, option_error_messages);
    tcase_add_test(t, memory_sizes_fit_size_t);
    tcase_add_test(t, ca_bundle_checked_at_creation);
    tcase_add_test(t, warnings_go_to_stderr_by_default);
    tcase_add_test(t, log_callback_replaces_stderr);
    tcase_add_test(t, stderr_is_rate_limited);
    tcase_add_test(t, client_new_errors);
    tcase_add_test(t, build_option_gates);
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
