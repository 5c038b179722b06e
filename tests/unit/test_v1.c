/*
 * Unit tests of capture v1 (capture-api.md, "Capture v1"):
 *  - posthog__event_convert (src/capture/event.c): every $ property v1 lifts
 *    out of the properties, the reverse v1 -> v0 conversion, round trips,
 *    byte-for-byte values and invalid inputs;
 *  - v1 request bodies (src/delivery/batch.c) through every codec, decoded
 *    both by the library and independently (zlib / libzstd) so the body is
 *    a standard stream; set_tail, subset (partial retry) and split;
 *  - the results map (src/delivery/proto_v1.c) and v1's status table;
 *  - a uuid repeated in the open v1 batch (posthog__builder_add returns 1).
 * Outputs are parsed with cJSON.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <brotli/decode.h>

#if defined(__has_include)
#if __has_include(<zstd.h>)
#include <zstd.h>
#define TEST_HAVE_ZSTD_H 1
#endif
#endif

#include "batch.h"
#include "codec.h"
#include "event.h"
#include "json.h"
#include "protocol.h"
#include "util.h"

#define UUID_FMT "01890a5d-ac96-774b-bcce-b302099a80%02d"
#define UUID_FMT_UP "01890A5D-AC96-774B-BCCE-B302099A80%02d"
#define TS "2026-01-01T00:00:00.000Z"

/* ------------------------------------------------------------ helpers */

/* Converts text to protocol p; returns the NUL-terminated output (malloc()ed)
 * or NULL when posthog__event_convert returned -1. */
static char *conv(ph_proto_t p, const char *text) {
    ph_buf_t b;
    posthog__buf_init(&b, 1 << 20);
    int rc = posthog__event_convert(p, text, strlen(text), &b);
    char *s = NULL;
    if (rc == 0) {
        s = malloc(b.len + 1);
        memcpy(s, b.data, b.len);
        s[b.len] = '\0';
    } else {
        ck_assert_int_eq(rc, -1);
    }
    posthog__buf_free(&b);
    return s;
}

static cJSON *parse_ok(const char *s) {
    ck_assert_ptr_nonnull(s);
    cJSON *j = cJSON_Parse(s);
    ck_assert_msg(j != NULL, "not JSON: %.400s", s);
    return j;
}

/* The object has exactly these keys (each once). */
static void keys_are(const cJSON *o, const char *const *keys, int n, const char *what) {
    ck_assert_msg(cJSON_IsObject(o), "%s is not an object", what);
    ck_assert_msg(cJSON_GetArraySize(o) == n, "%s has %d members, want %d", what,
                  cJSON_GetArraySize(o), n);
    for (int i = 0; i < n; i++) {
        int hits = 0;
        for (const cJSON *c = o->child; c; c = c->next)
            if (c->string && !strcmp(c->string, keys[i])) hits++;
        ck_assert_msg(hits == 1, "%s: key %s appears %d times", what, keys[i], hits);
    }
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", k);
    return v->valuestring;
}

static void is_bool(const cJSON *o, const char *k, bool want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsBool(v), "%s is not a boolean", k);
    ck_assert_msg(cJSON_IsTrue(v) == want, "%s is %d, want %d", k, cJSON_IsTrue(v), want);
}

static bool has(const cJSON *o, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(o, k) != NULL;
}

/* A v0 event text with a known uuid (index i) and the given properties
 * members and extra top-level members. */
static char *v0_text(int i, const char *props, const char *extra) {
    char *s = malloc(1024 + strlen(props) + strlen(extra));
    sprintf(s,
            "{\"uuid\":\"" UUID_FMT "\",\"event\":\"e%d\",\"distinct_id\":\"u\",\"timestamp\":\"" TS
            "\",\"properties\":{%s}%s%s}",
            i, i, props, *extra ? "," : "", extra);
    return s;
}

/* ------------------------------------------------------- conversion v0 -> v1 */

static const char *FULL_V0 =
    "{\"uuid\":\"01890a5d-ac96-774b-bcce-b302099a8001\",\"event\":\"signed \\\"up\\\" \\u00e9\","
    "\"distinct_id\":\"user-\\/1\",\"timestamp\":\"2026-01-01T12:34:56.789Z\","
    "\"properties\":{\"$session_id\":\"sess-1\",\"$window_id\":\"win-1\","
    "\"$process_person_profile\":false,\"$cookieless_mode\":true,\"$ignore_sent_at\":true,"
    "\"$product_tour_id\":\"tour-1\",\"$lib\":\"posthog-c\",\"$lib_version\":\"9.9.9\","
    "\"$groups\":{\"company\":\"acme\"},\"big\":12345678901234567890,\"dec\":1.50,"
    "\"exp\":1E+2,\"keep\":\"x\",\"nested\":{\"$session_id\":\"inner\"}},"
    "\"$set\":{\"plan\":\"pro\"},\"$set_once\":{\"first\":true}}";

START_TEST(convert_v1_lifts_every_property) {
    char *out = conv(PH_PROTO_V1, FULL_V0);
    cJSON *e = parse_ok(out);
    static const char *const top[] = {"uuid",       "event",     "distinct_id", "timestamp",
                                      "session_id", "window_id", "options",     "properties"};
    keys_are(e, top, 8, "v1 event");
    ck_assert_str_eq(str_of(e, "session_id"), "sess-1");
    ck_assert_str_eq(str_of(e, "window_id"), "win-1");
    cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "options");
    static const char *const okeys[] = {"process_person_profile", "cookieless_mode",
                                        "disable_skew_correction", "product_tour_id"};
    keys_are(o, okeys, 4, "options");
    is_bool(o, "process_person_profile", false);
    is_bool(o, "cookieless_mode", true);
    is_bool(o, "disable_skew_correction", true);
    ck_assert_str_eq(str_of(o, "product_tour_id"), "tour-1");
    cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
    static const char *const pkeys[] = {"$groups", "big",    "dec",  "exp",
                                        "keep",    "nested", "$set", "$set_once"};
    keys_are(p, pkeys, 8, "v1 properties");
    ck_assert_str_eq(str_of(cJSON_GetObjectItem(p, "$groups"), "company"), "acme");
    ck_assert_str_eq(str_of(cJSON_GetObjectItem(p, "$set"), "plan"), "pro");
    is_bool(cJSON_GetObjectItem(p, "$set_once"), "first", true);
    /* a nested $session_id is not a property of the event: untouched */
    ck_assert_str_eq(str_of(cJSON_GetObjectItem(p, "nested"), "$session_id"), "inner");
    /* values byte for byte */
    ck_assert_msg(strstr(out, "\"big\":12345678901234567890"), "%s", out);
    ck_assert_msg(strstr(out, "\"dec\":1.50"), "%s", out);
    ck_assert_msg(strstr(out, "\"exp\":1E+2"), "%s", out);
    ck_assert_msg(strstr(out, "\"event\":\"signed \\\"up\\\" \\u00e9\""), "%s", out);
    ck_assert_msg(strstr(out, "\"distinct_id\":\"user-\\/1\""), "%s", out);
    ck_assert_str_eq(str_of(e, "uuid"), "01890a5d-ac96-774b-bcce-b302099a8001");
    ck_assert_str_eq(str_of(e, "timestamp"), "2026-01-01T12:34:56.789Z");
    ck_assert_str_eq(str_of(e, "distinct_id"), "user-/1");
    ck_assert_str_eq(str_of(e, "event"), "signed \"up\" \xc3\xa9");
    /* uuid first (the batch's uuid lookup relies on it) */
    ck_assert(strncmp(out, "{\"uuid\":\"", 9) == 0);
    ck_assert_ptr_null(strstr(out, "$lib"));
    cJSON_Delete(e);
    free(out);
}
END_TEST

/* Each lift alone, so one missing lift cannot hide behind another. */
START_TEST(convert_v1_each_lift_alone) {
    static const struct {
        const char *prop, *where, *key, *val;
    } cases[] = {
        {"\"$session_id\":\"s\"", "top", "session_id", "\"s\""},
        {"\"$window_id\":\"w\"", "top", "window_id", "\"w\""},
        {"\"$process_person_profile\":true", "options", "process_person_profile", "true"},
        {"\"$process_person_profile\":false", "options", "process_person_profile", "false"},
        {"\"$cookieless_mode\":false", "options", "cookieless_mode", "false"},
        {"\"$ignore_sent_at\":false", "options", "disable_skew_correction", "false"},
        {"\"$product_tour_id\":\"t\"", "options", "product_tour_id", "\"t\""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char props[256];
        snprintf(props, sizeof props, "\"a\":1,%s,\"z\":2", cases[k].prop);
        char *in = v0_text(1, props, "");
        char *out = conv(PH_PROTO_V1, in);
        cJSON *e = parse_ok(out);
        cJSON *where = !strcmp(cases[k].where, "top")
                           ? e
                           : cJSON_GetObjectItemCaseSensitive(e, "options");
        cJSON *v = cJSON_GetObjectItemCaseSensitive(where, cases[k].key);
        ck_assert_msg(v != NULL, "%s not lifted: %s", cases[k].prop, out);
        char *vs = cJSON_PrintUnformatted(v);
        ck_assert_str_eq(vs, cases[k].val);
        free(vs);
        cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
        static const char *const pkeys[] = {"a", "z"};
        keys_are(p, pkeys, 2, cases[k].prop);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e, "options")),
                         strcmp(cases[k].where, "top") ? 1 : 0);
        cJSON_Delete(e);
        free(out);
        free(in);
    }
}
END_TEST

START_TEST(convert_v1_wrong_types_stay) {
    const char *props =
        "\"$session_id\":123,\"$window_id\":null,\"$process_person_profile\":\"false\","
        "\"$cookieless_mode\":1,\"$ignore_sent_at\":\"yes\",\"$product_tour_id\":42";
    char *in = v0_text(2, props, "");
    char *out = conv(PH_PROTO_V1, in);
    cJSON *e = parse_ok(out);
    static const char *const top[] = {"uuid", "event", "distinct_id", "timestamp", "options",
                                      "properties"};
    keys_are(e, top, 6, "v1 event (nothing lifted)");
    ck_assert_msg(strstr(out, "\"options\":{}"), "%s", out);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
    static const char *const pkeys[] = {"$session_id",     "$window_id",     "$process_person_profile",
                                        "$cookieless_mode", "$ignore_sent_at", "$product_tour_id"};
    keys_are(p, pkeys, 6, "properties keep non-liftable values");
    ck_assert_msg(strstr(out, "\"properties\":{" ), "%s", out);
    ck_assert_msg(strstr(out, props), "values not copied as they were: %s", out);
    cJSON_Delete(e);
    free(out);
    free(in);
}
END_TEST

START_TEST(convert_v1_empty_options_and_props) {
    /* empty properties */
    char *in = v0_text(3, "", "");
    char *out = conv(PH_PROTO_V1, in);
    cJSON *e = parse_ok(out);
    static const char *const top[] = {"uuid", "event", "distinct_id", "timestamp", "options",
                                      "properties"};
    keys_are(e, top, 6, "minimal v1 event");
    ck_assert_msg(strstr(out, "\"options\":{}"), "%s", out);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e, "properties")), 0);
    cJSON_Delete(e);
    free(out);
    free(in);
    /* only $lib members: properties become {} */
    in = v0_text(3, "\"$lib\":\"posthog-c\",\"$lib_version\":\"0.1.0\"", "");
    out = conv(PH_PROTO_V1, in);
    e = parse_ok(out);
    keys_are(e, top, 6, "v1 event without $lib");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e, "properties")), 0);
    cJSON_Delete(e);
    free(out);
    free(in);
    /* only lifted members and a top-level $set: the $set is the first property */
    in = v0_text(3, "\"$session_id\":\"s\",\"$lib\":\"posthog-c\"", "\"$set\":{\"a\":1}");
    out = conv(PH_PROTO_V1, in);
    e = parse_ok(out);
    cJSON *p = cJSON_GetObjectItem(e, "properties");
    static const char *const pk[] = {"$set"};
    keys_are(p, pk, 1, "properties with $set only");
    ck_assert_str_eq(str_of(e, "session_id"), "s");
    cJSON_Delete(e);
    free(out);
    free(in);
}
END_TEST

/* $set inside the properties already: the top-level copy does not duplicate it. */
START_TEST(convert_v1_set_not_duplicated) {
    char *in = v0_text(4, "\"$set\":{\"in\":1}", "\"$set\":{\"top\":1},\"$set_once\":{\"o\":1}");
    char *out = conv(PH_PROTO_V1, in);
    cJSON *e = parse_ok(out);
    cJSON *p = cJSON_GetObjectItem(e, "properties");
    static const char *const pk[] = {"$set", "$set_once"};
    keys_are(p, pk, 2, "properties");
    ck_assert(!has(e, "$set") && !has(e, "$set_once"));
    cJSON_Delete(e);
    free(out);
    free(in);
}
END_TEST

/* Converting a v1 text to v1 again changes nothing (subset and split rely on it). */
START_TEST(convert_v1_idempotent) {
    char *a = conv(PH_PROTO_V1, FULL_V0);
    ck_assert_ptr_nonnull(a);
    char *b = conv(PH_PROTO_V1, a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(b, a);
    free(a);
    free(b);
}
END_TEST

/* ------------------------------------------------------- conversion v1 -> v0 */

START_TEST(convert_v0_from_v1) {
    const char *v1 =
        "{\"uuid\":\"01890a5d-ac96-774b-bcce-b302099a8005\",\"event\":\"e\",\"distinct_id\":\"u\","
        "\"timestamp\":\"" TS "\",\"session_id\":\"s\",\"window_id\":\"w\","
        "\"options\":{\"process_person_profile\":false,\"cookieless_mode\":true,"
        "\"disable_skew_correction\":true,\"product_tour_id\":\"t\"},"
        "\"properties\":{\"k\":1.50,\"$set\":{\"a\":1},\"$groups\":{\"g\":\"x\"}}}";
    char *out = conv(PH_PROTO_V0, v1);
    cJSON *e = parse_ok(out);
    static const char *const top[] = {"uuid", "event", "distinct_id", "timestamp", "properties"};
    keys_are(e, top, 5, "v0 event");
    cJSON *p = cJSON_GetObjectItem(e, "properties");
    static const char *const pk[] = {"k",          "$set",          "$groups",
                                     "$session_id", "$window_id",    "$process_person_profile",
                                     "$cookieless_mode", "$ignore_sent_at", "$product_tour_id",
                                     "$lib",       "$lib_version"};
    keys_are(p, pk, 11, "v0 properties");
    ck_assert_str_eq(str_of(p, "$session_id"), "s");
    ck_assert_str_eq(str_of(p, "$window_id"), "w");
    is_bool(p, "$process_person_profile", false);
    is_bool(p, "$cookieless_mode", true);
    is_bool(p, "$ignore_sent_at", true);
    ck_assert_str_eq(str_of(p, "$product_tour_id"), "t");
    ck_assert_str_eq(str_of(p, "$lib"), "posthog-c");
    ck_assert_str_eq(str_of(p, "$lib_version"), POSTHOG_VERSION_STRING);
    ck_assert_msg(strstr(out, "\"k\":1.50"), "%s", out);
    ck_assert_str_eq(str_of(e, "uuid"), "01890a5d-ac96-774b-bcce-b302099a8005");
    ck_assert_str_eq(str_of(e, "timestamp"), TS);
    cJSON_Delete(e);
    free(out);
    /* v1 with empty options and properties: v0 properties are just $lib */
    const char *bare = "{\"uuid\":\"01890a5d-ac96-774b-bcce-b302099a8006\",\"event\":\"e\","
                       "\"distinct_id\":\"u\",\"timestamp\":\"" TS
                       "\",\"options\":{},\"properties\":{}}";
    out = conv(PH_PROTO_V0, bare);
    e = parse_ok(out);
    keys_are(e, top, 5, "bare v0 event");
    static const char *const lk[] = {"$lib", "$lib_version"};
    keys_are(cJSON_GetObjectItem(e, "properties"), lk, 2, "bare v0 properties");
    cJSON_Delete(e);
    free(out);
}
END_TEST

START_TEST(convert_v0_keeps_present_lib) {
    char *in = v0_text(7, "\"$lib\":\"posthog-python\",\"$lib_version\":\"7.0\",\"x\":1", "");
    char *out = conv(PH_PROTO_V0, in);
    cJSON *e = parse_ok(out);
    cJSON *p = cJSON_GetObjectItem(e, "properties");
    static const char *const pk[] = {"$lib", "$lib_version", "x"};
    keys_are(p, pk, 3, "properties");
    ck_assert_str_eq(str_of(p, "$lib"), "posthog-python");
    ck_assert_str_eq(str_of(p, "$lib_version"), "7.0");
    cJSON_Delete(e);
    free(out);
    free(in);
    /* only $lib present: $lib_version is added */
    in = v0_text(7, "\"$lib\":\"mine\"", "");
    out = conv(PH_PROTO_V0, in);
    e = parse_ok(out);
    p = cJSON_GetObjectItem(e, "properties");
    static const char *const pk2[] = {"$lib", "$lib_version"};
    keys_are(p, pk2, 2, "properties");
    ck_assert_str_eq(str_of(p, "$lib"), "mine");
    ck_assert_str_eq(str_of(p, "$lib_version"), POSTHOG_VERSION_STRING);
    cJSON_Delete(e);
    free(out);
    free(in);
    /* only $lib_version present: $lib is added */
    in = v0_text(7, "\"$lib_version\":\"3\"", "");
    out = conv(PH_PROTO_V0, in);
    e = parse_ok(out);
    p = cJSON_GetObjectItem(e, "properties");
    keys_are(p, pk2, 2, "properties");
    ck_assert_str_eq(str_of(p, "$lib"), "posthog-c");
    ck_assert_str_eq(str_of(p, "$lib_version"), "3");
    cJSON_Delete(e);
    free(out);
    free(in);
}
END_TEST

/* v0 -> v1 -> v0 keeps every property with its value; $set / $set_once
 * come back (inside the properties, where v0 also accepts them). */
START_TEST(convert_roundtrip_v0_v1_v0) {
    char *v1 = conv(PH_PROTO_V1, FULL_V0);
    char *v0 = conv(PH_PROTO_V0, v1);
    cJSON *orig = parse_ok(FULL_V0), *back = parse_ok(v0);
    const char *ids[] = {"uuid", "event", "distinct_id", "timestamp"};
    for (int i = 0; i < 4; i++) ck_assert_str_eq(str_of(back, ids[i]), str_of(orig, ids[i]));
    cJSON *po = cJSON_GetObjectItem(orig, "properties"), *pb = cJSON_GetObjectItem(back, "properties");
    for (cJSON *c = po->child; c; c = c->next) {
        if (!strcmp(c->string, "$lib_version")) continue; /* see below */
        cJSON *v = cJSON_GetObjectItemCaseSensitive(pb, c->string);
        ck_assert_msg(v != NULL, "property %s lost: %s", c->string, v0);
        ck_assert_msg(cJSON_Compare(c, v, 1), "property %s changed: %s", c->string, v0);
    }
    /* v1 has no $lib: the v0 text gets this library's */
    ck_assert_str_eq(str_of(pb, "$lib_version"), POSTHOG_VERSION_STRING);
    for (const char *k = "$set"; k; k = strcmp(k, "$set") ? NULL : "$set_once") {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(back, k);
        if (!v) v = cJSON_GetObjectItemCaseSensitive(pb, k);
        ck_assert_msg(v && cJSON_Compare(v, cJSON_GetObjectItem(orig, k), 1), "%s lost: %s", k, v0);
    }
    ck_assert_msg(strstr(v0, "12345678901234567890") && strstr(v0, "1.50") && strstr(v0, "1E+2"),
                  "numbers re-printed: %s", v0);
    ck_assert(!has(back, "options") && !has(back, "session_id") && !has(back, "window_id"));
    cJSON_Delete(orig);
    cJSON_Delete(back);
    free(v1);
    free(v0);
}
END_TEST

START_TEST(convert_invalid) {
    const char *bad[] = {
        "",
        "[]",
        "\"x\"",
        "42",
        "{",
        "{\"uuid\":\"x\",}",
        "<html><body>hi</body></html>",
        /* missing uuid */
        "{\"event\":\"e\",\"distinct_id\":\"u\",\"timestamp\":\"" TS "\",\"properties\":{}}",
        /* missing event / distinct_id / timestamp */
        "{\"uuid\":\"" "01890a5d-ac96-774b-bcce-b302099a8000" "\",\"distinct_id\":\"u\",\"timestamp\":\"" TS
        "\",\"properties\":{}}",
        "{\"uuid\":\"" "01890a5d-ac96-774b-bcce-b302099a8000" "\",\"event\":\"e\",\"timestamp\":\"" TS
        "\",\"properties\":{}}",
        "{\"uuid\":\"" "01890a5d-ac96-774b-bcce-b302099a8000" "\",\"event\":\"e\",\"distinct_id\":\"u\","
        "\"properties\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int p = 0; p < 2; p++) {
            ph_buf_t b;
            posthog__buf_init(&b, 1 << 20);
            int rc = posthog__event_convert((ph_proto_t)p, bad[i], strlen(bad[i]), &b);
            ck_assert_msg(rc == -1, "proto %d accepted %s", p, bad[i]);
            posthog__buf_free(&b);
        }
    /* out too small: -1 */
    ph_buf_t b;
    posthog__buf_init(&b, 40);
    ck_assert_int_eq(posthog__event_convert(PH_PROTO_V1, FULL_V0, strlen(FULL_V0), &b), -1);
    posthog__buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------ v1 bodies */

static const ph_codec_kind_t CODECS[] = {PH_CODEC_NONE, PH_CODEC_GZIP, PH_CODEC_DEFLATE,
                                         PH_CODEC_ZSTD, PH_CODEC_BROTLI};
#define NCODECS 5

static int level_for(ph_codec_kind_t k) { return k == PH_CODEC_ZSTD ? 3 : 6; }

/* Decodes the body with zlib or libzstd directly (not through the library). */
static char *decode_independent(const ph_batch_t *bt, size_t *out_len) {
    const unsigned char *d = (const unsigned char *)bt->body.data;
    size_t n = bt->body.len;
    size_t cap = bt->raw_len + 64;
    char *out = malloc(cap + 1);
    size_t len = 0;
    switch (bt->codec) {
    case PH_CODEC_NONE:
        ck_assert_uint_le(n, cap);
        memcpy(out, d, n);
        len = n;
        break;
    case PH_CODEC_GZIP:
    case PH_CODEC_DEFLATE: {
        if (bt->codec == PH_CODEC_GZIP) {
            ck_assert(n >= 18 && d[0] == 0x1f && d[1] == 0x8b);
        } else {
            ck_assert(n >= 6 && (d[0] & 0x0f) == 8 && ((d[0] << 8) | d[1]) % 31 == 0);
        }
        z_stream z;
        memset(&z, 0, sizeof z);
        ck_assert_int_eq(inflateInit2(&z, bt->codec == PH_CODEC_GZIP ? 31 : 15), Z_OK);
        z.next_in = (Bytef *)d;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        int rc = inflate(&z, Z_FINISH);
        ck_assert_msg(rc == Z_STREAM_END, "inflate (%s): %d %s", posthog__codec_name(bt->codec),
                      rc, z.msg ? z.msg : "");
        ck_assert_msg(z.avail_in == 0, "%u bytes after the stream", z.avail_in);
        len = cap - z.avail_out;
        inflateEnd(&z);
        break;
    }
    case PH_CODEC_ZSTD: {
#ifdef TEST_HAVE_ZSTD_H
        ck_assert(n >= 4 && d[0] == 0x28 && d[1] == 0xb5 && d[2] == 0x2f && d[3] == 0xfd);
        ck_assert_uint_eq(ZSTD_findFrameCompressedSize(d, n), n); /* one frame, nothing after */
        size_t r = ZSTD_decompress(out, cap, d, n);
        ck_assert_msg(!ZSTD_isError(r), "ZSTD_decompress: %s", ZSTD_getErrorName(r));
        len = r;
#else
        ck_abort_msg("zstd.h not available to the test");
#endif
        break;
    }
    case PH_CODEC_BROTLI: {
        size_t got = cap;
        ck_assert(BrotliDecoderDecompress(n, d, &got, (uint8_t *)out) ==
                  BROTLI_DECODER_RESULT_SUCCESS);
        len = got;
        break;
    }
    }
    out[len] = '\0';
    if (out_len) *out_len = len;
    return out;
}

static bool rfc3339_ms(const char *s) {
    /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(s) != sizeof pat - 1) return false;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i]) return false;
    return true;
}

/* Parses and checks a sealed v1 batch's body: envelope and the events'
 * uuids (index list), all in v1 shape. Returns the parsed body. */
static cJSON *check_v1_body(const ph_batch_t *bt, bool hist, const int *idx, int count) {
    ck_assert_int_eq(bt->proto, PH_PROTO_V1);
    ck_assert_uint_eq(bt->count, (uint32_t)count);
    size_t n = 0;
    char *raw = posthog__batch_inflate(bt, &n);
    ck_assert_ptr_nonnull(raw);
    ck_assert_uint_eq(n, bt->raw_len);
    size_t n2 = 0;
    char *ind = decode_independent(bt, &n2);
    ck_assert_uint_eq(n2, n);
    ck_assert_msg(memcmp(ind, raw, n) == 0, "independent decode differs (%s)",
                  posthog__codec_name(bt->codec));
    free(ind);
    cJSON *j = parse_ok(raw);
    if (hist) {
        static const char *const k[] = {"created_at", "historical_migration", "batch"};
        keys_are(j, k, 3, "v1 body");
        is_bool(j, "historical_migration", true);
    } else {
        static const char *const k[] = {"created_at", "batch"};
        keys_are(j, k, 2, "v1 body");
    }
    const char *ca = str_of(j, "created_at");
    ck_assert_msg(rfc3339_ms(ca), "created_at %s", ca);
    char want[PH_ISO8601_LEN + 1];
    posthog__iso8601_ms(want, bt->created_ms);
    want[PH_ISO8601_LEN] = '\0';
    ck_assert_str_eq(ca, want);
    ck_assert(strncmp(raw, "{\"created_at\":\"", 15) == 0);
    cJSON *arr = cJSON_GetObjectItem(j, "batch");
    ck_assert(cJSON_IsArray(arr));
    ck_assert_int_eq(cJSON_GetArraySize(arr), count);
    for (int i = 0; i < count; i++) {
        cJSON *e = cJSON_GetArrayItem(arr, i);
        char u[64];
        snprintf(u, sizeof u, UUID_FMT, idx[i]);
        ck_assert_str_eq(str_of(e, "uuid"), u);
        ck_assert(cJSON_IsObject(cJSON_GetObjectItem(e, "options")));
        cJSON *p = cJSON_GetObjectItem(e, "properties");
        ck_assert(cJSON_IsObject(p));
        ck_assert(!has(p, "$lib") && !has(p, "$lib_version") && !has(p, "$session_id"));
        ck_assert(!has(e, "$set"));
        /* offsets and the uuid lookup agree with the text */
        const char *bu = posthog__batch_event_uuid(bt, raw, (uint32_t)i);
        ck_assert_ptr_nonnull(bu);
        ck_assert(strncmp(bu, u, 36) == 0);
    }
    free(raw);
    return j;
}

/* Texts of the events with index i: v0-shaped, with things to lift. */
static char *ev_text(int i) {
    char props[256];
    snprintf(props, sizeof props,
             "\"i\":%d,\"$session_id\":\"s%d\",\"$lib\":\"posthog-c\",\"$lib_version\":\"0.1.0\","
             "\"$process_person_profile\":%s",
             i, i, i % 2 ? "true" : "false");
    return v0_text(i, props, i % 3 == 0 ? "\"$set\":{\"n\":1}" : "");
}

static ph_batch_t *build_v1(ph_builder_t *b, const int *idx, int count) {
    for (int k = 0; k < count; k++) {
        char *t = ev_text(idx[k]);
        ck_assert_int_eq(posthog__builder_add_text(b, t, strlen(t)), 0);
        free(t);
    }
    ck_assert_uint_eq(ph_builder_count(b), (uint32_t)count);
    ph_batch_t *bt = posthog__builder_seal(b);
    ck_assert_ptr_nonnull(bt);
    ck_assert_uint_eq(ph_builder_count(b), 0);
    return bt;
}

static bool codec_skip(ph_codec_kind_t k) {
    if (posthog__codec_available(k)) return false;
    ck_assert(k == PH_CODEC_ZSTD || k == PH_CODEC_BROTLI); /* the optional ones */
    return true;
}

static void v1_body_codec(bool hist) {
    static const int idx[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (int c = 0; c < NCODECS; c++) {
        if (codec_skip(CODECS[c])) continue;
        ph_builder_t b;
        ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, CODECS[c], level_for(CODECS[c]),
                                               "phc_x", hist, false, 5 << 20),
                         0);
        ck_assert_ptr_null(posthog__builder_seal(&b));
        int64_t before = posthog__now_ms();
        ph_batch_t *bt = build_v1(&b, idx, 12);
        int64_t after = posthog__now_ms();
        ck_assert_int_eq(bt->codec, CODECS[c]);
        ck_assert(bt->created_ms >= before && bt->created_ms <= after);
        ck_assert_uint_eq(strlen(bt->request_id), 36);
        uint8_t u[16];
        ck_assert_int_eq(posthog__uuid_parse(bt->request_id, 36, u), 0);
        ck_assert_uint_eq(bt->attempts, 0);
        ck_assert_uint_eq(bt->prefix_len, bt->body.len);
        cJSON *j = check_v1_body(bt, hist, idx, 12);
        /* the events in v1 shape, every lift done */
        cJSON *arr = cJSON_GetObjectItem(j, "batch");
        for (int i = 0; i < 12; i++) {
            cJSON *e = cJSON_GetArrayItem(arr, i);
            char s[16];
            snprintf(s, sizeof s, "s%d", i);
            ck_assert_str_eq(str_of(e, "session_id"), s);
            is_bool(cJSON_GetObjectItem(e, "options"), "process_person_profile", i % 2);
            cJSON *p = cJSON_GetObjectItem(e, "properties");
            ck_assert_int_eq(cJSON_GetObjectItem(p, "i")->valueint, i);
            ck_assert_int_eq(has(p, "$set"), i % 3 == 0);
            ck_assert(!has(p, "$process_person_profile"));
        }
        cJSON_Delete(j);
        /* set_tail never changes a v1 body */
        size_t len = bt->body.len;
        char *copy = malloc(len);
        memcpy(copy, bt->body.data, len);
        ck_assert_int_eq(posthog__batch_set_tail(bt, 1700000000000LL), 0);
        ck_assert_uint_eq(bt->body.len, len);
        ck_assert(memcmp(bt->body.data, copy, len) == 0);
        ck_assert_int_eq(posthog__batch_set_tail(bt, 1800000000000LL), 0);
        ck_assert_uint_eq(bt->body.len, len);
        ck_assert(memcmp(bt->body.data, copy, len) == 0);
        free(copy);
        /* events_json gives the batch array */
        char *ej = posthog__batch_events_json(bt);
        cJSON *ja = parse_ok(ej);
        ck_assert_int_eq(cJSON_GetArraySize(ja), 12);
        cJSON_Delete(ja);
        free(ej);
        posthog__batch_free(bt);
        /* the builder is reusable: a second batch, fresh stream */
        static const int idx2[] = {20, 21};
        bt = build_v1(&b, idx2, 2);
        cJSON_Delete(check_v1_body(bt, hist, idx2, 2));
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}

START_TEST(v1_body_every_codec) { v1_body_codec(false); }
END_TEST
START_TEST(v1_body_historical) { v1_body_codec(true); }
END_TEST

/* A v1-shaped text into a v1 batch comes out byte-identical. */
START_TEST(v1_body_v1_text_as_is) {
    char *v1 = conv(PH_PROTO_V1, FULL_V0);
    ph_builder_t b;
    ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, PH_CODEC_NONE, 0, "phc_x", false,
                                           false, 5 << 20),
                     0);
    ck_assert_int_eq(posthog__builder_add_text(&b, v1, strlen(v1)), 0);
    ck_assert_int_eq(posthog__builder_add_text(&b, "[1]", 3), -2);
    ck_assert_int_eq(posthog__builder_add_text(&b, "{\"event\":\"e\"}", 13), -2);
    ck_assert_uint_eq(ph_builder_count(&b), 1);
    ph_batch_t *bt = posthog__builder_seal(&b);
    char *raw = posthog__batch_inflate(bt, NULL);
    ck_assert_msg(strstr(raw, v1) != NULL, "%s", raw);
    cJSON_Delete(parse_ok(raw));
    free(raw);
    free(v1);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
}
END_TEST

START_TEST(v1_subset_keeps_identity) {
    static const int idx[] = {0, 1, 2, 3, 4, 5, 6};
    static const bool keep[] = {true, false, true, false, false, true, true};
    static const int kept[] = {0, 2, 5, 6};
    for (int hist = 0; hist < 2; hist++)
        for (int c = 0; c < NCODECS; c++) {
            if (codec_skip(CODECS[c])) continue;
            ph_builder_t b;
            ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, CODECS[c],
                                                   level_for(CODECS[c]), "phc_x", hist, false,
                                                   5 << 20),
                             0);
            ph_batch_t *bt = build_v1(&b, idx, 7);
            bt->attempts = 3;
            bt->end_pos = 4242;
            int64_t created = bt->created_ms;
            ph_batch_t *sub = posthog__batch_subset(&b, bt, keep);
            ck_assert_ptr_nonnull(sub);
            ck_assert_int_eq(sub->created_ms, created);
            ck_assert_str_eq(sub->request_id, bt->request_id);
            ck_assert_uint_eq(sub->attempts, 3);
            ck_assert_uint_eq(sub->end_pos, 4242);
            ck_assert_int_eq(sub->codec, CODECS[c]);
            cJSON *j = check_v1_body(sub, hist, kept, 4);
            cJSON_Delete(j);
            /* the events are byte-identical to the original's */
            char *r1, *r2;
            const char **e1, **e2;
            size_t *l1, *l2;
            ck_assert_int_eq(posthog__batch_texts(bt, &r1, &e1, &l1), 0);
            ck_assert_int_eq(posthog__batch_texts(sub, &r2, &e2, &l2), 0);
            for (int k = 0; k < 4; k++) {
                ck_assert_uint_eq(l2[k], l1[kept[k]]);
                ck_assert(memcmp(e2[k], e1[kept[k]], l2[k]) == 0);
            }
            free(r1), free(e1), free(l1), free(r2), free(e2), free(l2);
            /* the original is untouched */
            cJSON_Delete(check_v1_body(bt, hist, idx, 7));
            /* a subset of the subset: still the same identity */
            static const bool keep2[] = {false, true, false, false};
            static const int kept2[] = {2};
            ph_batch_t *sub2 = posthog__batch_subset(&b, sub, keep2);
            ck_assert_ptr_nonnull(sub2);
            ck_assert_str_eq(sub2->request_id, bt->request_id);
            ck_assert_int_eq(sub2->created_ms, created);
            cJSON_Delete(check_v1_body(sub2, hist, kept2, 1));
            posthog__batch_free(sub2);
            posthog__batch_free(sub);
            posthog__batch_free(bt);
            posthog__builder_free(&b);
        }
}
END_TEST

/* The created_at text in a subset's body is the original's. */
START_TEST(v1_subset_same_created_at_text) {
    static const int idx[] = {0, 1, 2};
    static const bool keep[] = {false, true, true};
    ph_builder_t b;
    ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, PH_CODEC_GZIP, 6, "phc_x", false,
                                           false, 5 << 20),
                     0);
    ph_batch_t *bt = build_v1(&b, idx, 3);
    /* make the subset's "now" differ from created_at */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ph_batch_t *sub = posthog__batch_subset(&b, bt, keep);
    ck_assert_ptr_nonnull(sub);
    char *a = posthog__batch_inflate(bt, NULL), *s = posthog__batch_inflate(sub, NULL);
    cJSON *ja = parse_ok(a), *js = parse_ok(s);
    ck_assert_str_eq(str_of(js, "created_at"), str_of(ja, "created_at"));
    ck_assert(strncmp(a, s, 15 + 24) == 0);
    cJSON_Delete(ja);
    cJSON_Delete(js);
    free(a);
    free(s);
    posthog__batch_free(sub);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
}
END_TEST

START_TEST(v1_split_halves) {
    static const int idx[] = {10, 11, 12, 13, 14, 15, 16};
    for (int c = 0; c < NCODECS; c++) {
        if (codec_skip(CODECS[c])) continue;
        ph_builder_t b;
        ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, CODECS[c], level_for(CODECS[c]),
                                               "phc_x", true, false, 5 << 20),
                         0);
        ph_batch_t *bt = build_v1(&b, idx, 7);
        bt->end_pos = 777;
        size_t len = bt->body.len;
        char *copy = malloc(len);
        memcpy(copy, bt->body.data, len);
        ph_batch_t *f = NULL, *s = NULL;
        ck_assert_int_eq(posthog__batch_split(&b, bt, &f, &s), 0);
        ck_assert(f && s);
        ck_assert_uint_eq(f->end_pos, 0);
        ck_assert_uint_eq(s->end_pos, 777);
        ck_assert_int_eq(f->codec, CODECS[c]);
        ck_assert_int_eq(s->codec, CODECS[c]);
        cJSON_Delete(check_v1_body(f, true, idx, 3));
        cJSON_Delete(check_v1_body(s, true, idx + 3, 4));
        /* bt untouched */
        ck_assert_uint_eq(bt->body.len, len);
        ck_assert(memcmp(bt->body.data, copy, len) == 0);
        ck_assert_uint_eq(bt->count, 7);
        free(copy);
        /* a half of one event cannot be split */
        ph_batch_t *f2 = NULL, *s2 = NULL;
        ph_batch_t *one = NULL;
        ck_assert_int_eq(posthog__batch_split(&b, f, &f2, &s2), 0);
        ck_assert_uint_eq(f2->count, 1);
        ck_assert_uint_eq(s2->count, 2);
        one = f2;
        ph_batch_t *x = (ph_batch_t *)1, *y = (ph_batch_t *)1;
        ck_assert_int_eq(posthog__batch_split(&b, one, &x, &y), -1);
        ck_assert(x == NULL && y == NULL);
        posthog__batch_free(f2);
        posthog__batch_free(s2);
        posthog__batch_free(f);
        posthog__batch_free(s);
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

/* ------------------------------------------------------------ results map */

static ph_batch_t *known_batch(ph_builder_t *b, int n, ph_codec_kind_t codec) {
    ck_assert_int_eq(posthog__builder_init(b, PH_PROTO_V1, codec, level_for(codec), "phc_x", false,
                                           false, 5 << 20),
                     0);
    for (int i = 0; i < n; i++) {
        char t[256];
        snprintf(t, sizeof t,
                 "{\"uuid\":\"" UUID_FMT "\",\"event\":\"e\",\"distinct_id\":\"u\",\"timestamp\":"
                 "\"" TS "\",\"properties\":{}}",
                 i);
        ck_assert_int_eq(posthog__builder_add_text(b, t, strlen(t)), 0);
    }
    ph_batch_t *bt = posthog__builder_seal(b);
    ck_assert_ptr_nonnull(bt);
    ck_assert_uint_eq(bt->count, (uint32_t)n);
    return bt;
}

/* Appends ,"<uuid i>":<entry> (upper or lower case). */
static void res_add(char *body, size_t cap, int i, bool upper, const char *entry) {
    size_t l = strlen(body);
    char u[64];
    snprintf(u, sizeof u, upper ? UUID_FMT_UP : UUID_FMT, i);
    snprintf(body + l, cap - l, "%s\"%s\":%s", body[l - 1] == '{' ? "" : ",", u, entry);
}

START_TEST(results_all_ok_fast_path) {
    for (int c = 0; c < NCODECS; c++) {
        if (codec_skip(CODECS[c])) continue;
        ph_builder_t b;
        ph_batch_t *bt = known_batch(&b, 5, CODECS[c]);
        char body[4096] = "{\"results\":{";
        for (int i = 0; i < 5; i++)
            res_add(body, sizeof body, i, true, i == 3 ? "{\"result\":\"warning\"}" : "{\"result\":\"ok\"}");
        strcat(body, "}}");
        ph_results_t r;
        memset(&r, 0x55, sizeof r);
        ck_assert_int_eq(posthog__v1_parse_results(bt, body, strlen(body), &r), 0);
        ck_assert_ptr_null(r.outcome);
        ck_assert_uint_eq(r.delivered, 5);
        ck_assert_uint_eq(r.retry, 0);
        ck_assert_uint_eq(r.drop, 0);
        posthog__v1_results_free(&r, bt->count);
        ck_assert_ptr_null(r.outcome);
        ck_assert_ptr_null(r.details);
        /* an empty map: every uuid absent, all delivered */
        const char *empty = "{\"results\":{}}";
        ck_assert_int_eq(posthog__v1_parse_results(bt, empty, strlen(empty), &r), 0);
        ck_assert_uint_eq(r.delivered, 5);
        ck_assert_uint_eq(r.retry + r.drop, 0);
        posthog__v1_results_free(&r, bt->count);
        /* surrounding whitespace and other members are fine */
        const char *ws = " {\"status\":\"ok\", \"results\" : { } }\n";
        ck_assert_int_eq(posthog__v1_parse_results(bt, ws, strlen(ws), &r), 0);
        ck_assert_uint_eq(r.delivered, 5);
        posthog__v1_results_free(&r, bt->count);
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

static void results_mixed(bool upper, ph_codec_kind_t codec) {
    ph_builder_t b;
    ph_batch_t *bt = known_batch(&b, 7, codec);
    char body[4096] = "{\"results\":{";
    /* 0 ok, 1 retry, 2 drop, 3 warning, 4 unknown result, 5 absent, 6 drop (no details) */
    res_add(body, sizeof body, 6, upper, "{\"result\":\"drop\"}");
    res_add(body, sizeof body, 2, upper,
            "{\"result\":\"drop\",\"details\":\"billing_limit_exceeded\"}");
    res_add(body, sizeof body, 0, upper, "{\"result\":\"ok\"}");
    res_add(body, sizeof body, 4, upper, "{\"result\":\"frobnicated\",\"details\":\"x\"}");
    res_add(body, sizeof body, 1, upper, "{\"result\":\"retry\",\"details\":\"not_persisted\"}");
    res_add(body, sizeof body, 3, upper, "{\"result\":\"warning\",\"details\":\"truncated\"}");
    /* a uuid that is not in the batch: ignored */
    res_add(body, sizeof body, 99, upper, "{\"result\":\"drop\",\"details\":\"nope\"}");
    strcat(body, "}}");
    ph_results_t r;
    ck_assert_int_eq(posthog__v1_parse_results(bt, body, strlen(body), &r), 0);
    ck_assert_ptr_nonnull(r.outcome);
    ck_assert_ptr_nonnull(r.details);
    static const uint8_t want[] = {PH_EV_DELIVERED, PH_EV_RETRY,     PH_EV_DROP,    PH_EV_DELIVERED,
                                   PH_EV_DELIVERED, PH_EV_DELIVERED, PH_EV_DROP};
    for (int i = 0; i < 7; i++)
        ck_assert_msg(r.outcome[i] == want[i], "event %d: outcome %d, want %d (%s)", i,
                      r.outcome[i], want[i], upper ? "upper" : "lower");
    ck_assert_uint_eq(r.delivered, 4);
    ck_assert_uint_eq(r.retry, 1);
    ck_assert_uint_eq(r.drop, 2);
    ck_assert_ptr_nonnull(r.details[1]);
    ck_assert_str_eq(r.details[1], "not_persisted");
    ck_assert_ptr_nonnull(r.details[2]);
    ck_assert_str_eq(r.details[2], "billing_limit_exceeded");
    ck_assert(r.details[6] == NULL || r.details[6][0] == '\0');
    for (int i = 0; i < 7; i++)
        if (want[i] == PH_EV_DELIVERED) ck_assert_ptr_null(r.details[i]);
    posthog__v1_results_free(&r, bt->count);
    ck_assert_ptr_null(r.outcome);
    ck_assert_ptr_null(r.details);
    ck_assert_uint_eq(r.delivered + r.retry + r.drop, 0);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
}

START_TEST(results_mixed_upper) {
    for (int c = 0; c < NCODECS; c++)
        if (!codec_skip(CODECS[c])) results_mixed(true, CODECS[c]);
}
END_TEST
START_TEST(results_mixed_lower) { results_mixed(false, PH_CODEC_NONE); }
END_TEST

/* Only retries, across a bigger batch (the lookup is a sorted search). */
START_TEST(results_many_retry) {
    ph_builder_t b;
    ph_batch_t *bt = known_batch(
        &b, 90, posthog__codec_available(PH_CODEC_ZSTD) ? PH_CODEC_ZSTD : PH_CODEC_DEFLATE);
    char *body = malloc(90 * 100 + 64);
    strcpy(body, "{\"results\":{");
    for (int i = 89; i >= 0; i--)
        res_add(body, 90 * 100 + 64, i, i % 2, i % 3 == 0 ? "{\"result\":\"retry\"}" : "{\"result\":\"ok\"}");
    strcat(body, "}}");
    ph_results_t r;
    ck_assert_int_eq(posthog__v1_parse_results(bt, body, strlen(body), &r), 0);
    ck_assert_uint_eq(r.retry, 30);
    ck_assert_uint_eq(r.delivered, 60);
    ck_assert_uint_eq(r.drop, 0);
    for (int i = 0; i < 90; i++)
        ck_assert_int_eq(r.outcome[i], i % 3 == 0 ? PH_EV_RETRY : PH_EV_DELIVERED);
    /* the retry subset the flusher would build */
    bool keep[90];
    for (int i = 0; i < 90; i++) keep[i] = r.outcome[i] == PH_EV_RETRY;
    ph_batch_t *sub = posthog__batch_subset(&b, bt, keep);
    ck_assert_ptr_nonnull(sub);
    ck_assert_uint_eq(sub->count, 30);
    ck_assert_str_eq(sub->request_id, bt->request_id);
    posthog__v1_results_free(&r, bt->count);
    posthog__batch_free(sub);
    free(body);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
}
END_TEST

START_TEST(results_malformed) {
    ph_builder_t b;
    ph_batch_t *bt = known_batch(&b, 3, PH_CODEC_GZIP);
    const char *bad[] = {
        "not json",
        "[]",
        "{}",
        "{\"results\":[]}",
        "{\"results\":null}",
        "{\"results\":\"ok\"}",
        "{\"status\":1}",
        "<html><head><title>Portal</title></head><body>login</body></html>",
        "{\"results\":{",
        "\"results\"",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ph_results_t r;
        memset(&r, 0x55, sizeof r);
        int rc = posthog__v1_parse_results(bt, bad[i], strlen(bad[i]), &r);
        ck_assert_msg(rc == -1, "accepted \"%s\" (rc %d)", bad[i], rc);
        ck_assert_ptr_null(r.outcome);
        ck_assert_uint_eq(r.delivered, 0);
        posthog__v1_results_free(&r, bt->count);
    }
    ph_results_t r;
    ck_assert_int_eq(posthog__v1_parse_results(bt, NULL, 0, &r), -1);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
}
END_TEST

/* ------------------------------------------------------------ status table */

START_TEST(classify_v1) {
    static const struct {
        long status;
        ph_outcome_t want;
    } t[] = {
        {200, PH_OUTCOME_OK},        {202, PH_OUTCOME_OK},        {204, PH_OUTCOME_OK},
        {400, PH_OUTCOME_TOO_LARGE}, {413, PH_OUTCOME_TOO_LARGE}, {404, PH_OUTCOME_RETRY},
        {401, PH_OUTCOME_REJECT},    {402, PH_OUTCOME_REJECT},    {403, PH_OUTCOME_REJECT},
        {415, PH_OUTCOME_REJECT},    {418, PH_OUTCOME_REJECT},    {408, PH_OUTCOME_RETRY},
        {429, PH_OUTCOME_RETRY},     {500, PH_OUTCOME_RETRY},     {502, PH_OUTCOME_RETRY},
        {503, PH_OUTCOME_RETRY},     {504, PH_OUTCOME_RETRY},     {0, PH_OUTCOME_RETRY},
        {301, PH_OUTCOME_RETRY},     {302, PH_OUTCOME_RETRY},     {307, PH_OUTCOME_RETRY},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(posthog__v1_classify(t[i].status) == t[i].want, "status %ld: %d, want %d",
                      t[i].status, posthog__v1_classify(t[i].status), t[i].want);
    /* v0 differs exactly on 400 and 404 */
    ck_assert_int_eq(posthog__classify(400), PH_OUTCOME_REJECT);
    ck_assert_int_eq(posthog__classify(404), PH_OUTCOME_REJECT);
}
END_TEST

/* ------------------------------------------------------------ repeated uuid */

static ph_rec_t *rec_with_uuid(int i) {
    const char *name = "ev", *did = "user", *props = "\"k\":1";
    size_t nl = strlen(name), dl = strlen(did), pl = strlen(props);
    ph_rec_t *r = malloc(sizeof *r + nl + dl + pl);
    memset(r, 0, sizeof *r);
    char u[64];
    snprintf(u, sizeof u, "01890a5d-ac96-774b-bcce-b3020%07d", i);
    ck_assert_int_eq(posthog__uuid_parse(u, 36, r->uuid), 0);
    r->ts_ms = 1767225600000LL + i;
    r->name_len = (uint32_t)nl;
    r->did_len = (uint32_t)dl;
    r->props_len = (uint32_t)pl;
    r->extra_len = 0;
    char *o = (char *)(r + 1);
    memcpy(o, name, nl);
    memcpy(o + nl, did, dl);
    memcpy(o + nl + dl, props, pl);
    return r;
}

START_TEST(builder_add_repeated_uuid) {
    const int64_t now = 1767225600000LL;
    ph_builder_t b;
    ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, PH_CODEC_NONE, 0, "phc_x", false,
                                           false, UINT64_MAX),
                     0);
    ph_rec_t *r0 = rec_with_uuid(0);
    ck_assert_int_eq(posthog__builder_add(&b, r0, now, 0), 0);
    ck_assert_int_eq(posthog__builder_add(&b, r0, now, 0), 1);
    ck_assert_uint_eq(ph_builder_count(&b), 1);
    /* past the first growth of the uuid list (128) */
    for (int i = 1; i < 300; i++) {
        ph_rec_t *r = rec_with_uuid(i);
        ck_assert_int_eq(posthog__builder_add(&b, r, now, 0), 0);
        free(r);
    }
    ck_assert_uint_eq(ph_builder_count(&b), 300);
    static const int again[] = {0, 1, 127, 128, 129, 255, 256, 299};
    for (size_t k = 0; k < sizeof again / sizeof again[0]; k++) {
        ph_rec_t *r = rec_with_uuid(again[k]);
        ck_assert_msg(posthog__builder_add(&b, r, now, 0) == 1, "uuid %d not seen", again[k]);
        free(r);
    }
    ck_assert_uint_eq(ph_builder_count(&b), 300);
    ph_batch_t *bt = posthog__builder_seal(&b);
    ck_assert_ptr_nonnull(bt);
    ck_assert_uint_eq(bt->count, 300);
    /* every uuid once in the body */
    char *raw = posthog__batch_inflate(bt, NULL);
    cJSON *j = parse_ok(raw);
    cJSON *arr = cJSON_GetObjectItem(j, "batch");
    ck_assert_int_eq(cJSON_GetArraySize(arr), 300);
    for (int i = 0; i < 300; i++) {
        char u[64];
        snprintf(u, sizeof u, "01890a5d-ac96-774b-bcce-b3020%07d", i);
        ck_assert_str_eq(str_of(cJSON_GetArrayItem(arr, i), "uuid"), u);
    }
    cJSON_Delete(j);
    free(raw);
    posthog__batch_free(bt);
    /* after sealing, the uuid may start the next batch */
    ck_assert_int_eq(posthog__builder_add(&b, r0, now, 0), 0);
    ck_assert_int_eq(posthog__builder_add(&b, r0, now, 0), 1);
    ph_rec_t *r5 = rec_with_uuid(5);
    ck_assert_int_eq(posthog__builder_add(&b, r5, now, 0), 0);
    ck_assert_uint_eq(ph_builder_count(&b), 2);
    free(r5);
    posthog__builder_free(&b);
    /* v0 has no such rule */
    ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V0, PH_CODEC_NONE, 0, "phc_x", false,
                                           false, UINT64_MAX),
                     0);
    ck_assert_int_eq(posthog__builder_add(&b, r0, now, 0), 0);
    ck_assert_int_eq(posthog__builder_add(&b, r0, now, 0), 0);
    ck_assert_uint_eq(ph_builder_count(&b), 2);
    posthog__builder_free(&b);
    free(r0);
}
END_TEST


/* ------------------------------------------------------------ records */

static ph_rec_t *rec_props(int i, const char *props, const char *extra, uint32_t flags) {
    const char *name = "ev", *did = "user";
    size_t nl = strlen(name), dl = strlen(did), pl = strlen(props), el = strlen(extra);
    ph_rec_t *r = malloc(sizeof *r + nl + dl + pl + el);
    memset(r, 0, sizeof *r);
    char u[64];
    snprintf(u, sizeof u, UUID_FMT, i);
    ck_assert_int_eq(posthog__uuid_parse(u, 36, r->uuid), 0);
    r->ts_ms = 1767225600000LL + i;
    r->flags = flags;
    r->name_len = (uint32_t)nl;
    r->did_len = (uint32_t)dl;
    r->props_len = (uint32_t)pl;
    r->extra_len = (uint32_t)el;
    char *o = (char *)(r + 1);
    memcpy(o, name, nl);
    memcpy(o + nl, did, dl);
    memcpy(o + nl + dl, props, pl);
    memcpy(o + nl + dl + pl, extra, el);
    return r;
}

/* The fast v1 writer: exact length, v1 shape, extras inside the properties. */
START_TEST(rec_write_v1_len) {
    static const struct {
        const char *props, *extra;
    } c[] = {{"", ""}, {"\"k\":1", ""}, {"", "\"$set\":{\"a\":1}"}, {"\"k\":1", "\"$set\":{\"a\":1}"}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        ph_rec_t *r = rec_props((int)k, c[k].props, c[k].extra, PH_REC_LIB | PH_REC_LIBV);
        size_t n = ph_event_v1_len(r->name_len, r->did_len, r->props_len, r->extra_len);
        ck_assert_uint_le(n, ph_rec_json_len_proto(r, PH_PROTO_V1));
        char *buf = malloc(n + 16);
        memset(buf, 0x5A, n + 16);
        char *end = posthog__event_write_v1(buf, r);
        ck_assert_uint_eq((size_t)(end - buf), n);
        ck_assert_int_eq((unsigned char)buf[n], 0x5A);
        buf[n] = '\0';
        cJSON *e = parse_ok(buf);
        static const char *const top[] = {"uuid", "event", "distinct_id", "timestamp", "options",
                                          "properties"};
        keys_are(e, top, 6, buf);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e, "options")), 0);
        cJSON *p = cJSON_GetObjectItem(e, "properties");
        ck_assert(!has(p, "$lib") && !has(p, "$lib_version"));
        ck_assert_int_eq(has(p, "$set"), c[k].extra[0] != '\0');
        ck_assert_int_eq(has(p, "k"), c[k].props[0] != '\0');
        /* the same as converting the v0 text */
        ph_buf_t v0;
        posthog__buf_init(&v0, 1 << 20);
        ck_assert_int_eq(posthog__event_format(&v0, r), 0);
        ph_buf_t v1;
        posthog__buf_init(&v1, 1 << 20);
        ck_assert_int_eq(posthog__event_convert(PH_PROTO_V1, v0.data, v0.len, &v1), 0);
        ck_assert_uint_eq(v1.len, n);
        ck_assert(memcmp(v1.data, buf, n) == 0);
        posthog__buf_free(&v0);
        posthog__buf_free(&v1);
        cJSON_Delete(e);
        free(buf);
        free(r);
    }
}
END_TEST

/* A record with PH_REC_LIFT goes through the conversion in a v1 batch. */
START_TEST(rec_lift_in_v1_batch) {
    ph_builder_t b;
    ck_assert_int_eq(posthog__builder_init(&b, PH_PROTO_V1, PH_CODEC_GZIP, 6, "phc_x", false,
                                           false, UINT64_MAX),
                     0);
    ph_rec_t *r0 = rec_props(0, "\"$session_id\":\"s0\",\"$ignore_sent_at\":true,\"k\":1",
                             "\"$set_once\":{\"a\":1}", PH_REC_LIB | PH_REC_LIBV | PH_REC_LIFT);
    ph_rec_t *r1 = rec_props(1, "\"k\":2", "", PH_REC_LIB | PH_REC_LIBV);
    ck_assert_int_eq(posthog__builder_add(&b, r0, 1767225600000LL, 0), 0);
    ck_assert_int_eq(posthog__builder_add(&b, r1, 1767225600000LL, 0), 0);
    ph_batch_t *bt = posthog__builder_seal(&b);
    ck_assert_ptr_nonnull(bt);
    static const int idx[] = {0, 1};
    cJSON *j = check_v1_body(bt, false, idx, 2);
    cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "batch"), 0);
    ck_assert_str_eq(str_of(e0, "session_id"), "s0");
    is_bool(cJSON_GetObjectItem(e0, "options"), "disable_skew_correction", true);
    cJSON *p0 = cJSON_GetObjectItem(e0, "properties");
    static const char *const pk[] = {"k", "$set_once"};
    keys_are(p0, pk, 2, "lifted record's properties");
    cJSON_Delete(j);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
    free(r0);
    free(r1);
}
END_TEST

START_TEST(is_lift_key) {
    const char *yes[] = {"$session_id",     "$window_id",       "$process_person_profile",
                         "$cookieless_mode", "$ignore_sent_at", "$product_tour_id",
                         "$lib",            "$lib_version"};
    const char *no[] = {"session_id", "$session", "$lib_versions", "$li", "$set", "$groups",
                        "lib", "", "$"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(posthog__is_lift_key(yes[i], strlen(yes[i])), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(!posthog__is_lift_key(no[i], strlen(no[i])), "%s", no[i]);
}
END_TEST

/* No "properties" member at all: an empty object in either shape. */
START_TEST(convert_without_properties) {
    const char *in = "{\"uuid\":\"01890a5d-ac96-774b-bcce-b302099a8008\",\"event\":\"e\","
                     "\"distinct_id\":\"u\",\"timestamp\":\"" TS "\",\"$set\":{\"a\":1}}";
    char *out = conv(PH_PROTO_V1, in);
    cJSON *e = parse_ok(out);
    static const char *const top[] = {"uuid", "event", "distinct_id", "timestamp", "options",
                                      "properties"};
    keys_are(e, top, 6, "v1 event");
    static const char *const pk[] = {"$set"};
    keys_are(cJSON_GetObjectItem(e, "properties"), pk, 1, "v1 properties");
    cJSON_Delete(e);
    free(out);
    out = conv(PH_PROTO_V0, in);
    e = parse_ok(out);
    static const char *const top0[] = {"uuid", "event", "distinct_id", "timestamp", "properties",
                                       "$set"};
    keys_are(e, top0, 6, "v0 event");
    static const char *const lk[] = {"$lib", "$lib_version"};
    keys_are(cJSON_GetObjectItem(e, "properties"), lk, 2, "v0 properties");
    cJSON_Delete(e);
    free(out);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *v1_suite(void) {
    Suite *s = suite_create("v1");
    TCase *t = tcase_create("v1");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, convert_v1_lifts_every_property);
    tcase_add_test(t, convert_v1_each_lift_alone);
    tcase_add_test(t, convert_v1_wrong_types_stay);
    tcase_add_test(t, convert_v1_empty_options_and_props);
    tcase_add_test(t, convert_v1_set_not_duplicated);
    tcase_add_test(t, convert_v1_idempotent);
    tcase_add_test(t, convert_v0_from_v1);
    tcase_add_test(t, convert_v0_keeps_present_lib);
    tcase_add_test(t, convert_roundtrip_v0_v1_v0);
    tcase_add_test(t, convert_invalid);
    tcase_add_test(t, v1_body_every_codec);
    tcase_add_test(t, v1_body_historical);
    tcase_add_test(t, v1_body_v1_text_as_is);
    tcase_add_test(t, v1_subset_keeps_identity);
    tcase_add_test(t, v1_subset_same_created_at_text);
    tcase_add_test(t, v1_split_halves);
    tcase_add_test(t, results_all_ok_fast_path);
    tcase_add_test(t, results_mixed_upper);
    tcase_add_test(t, results_mixed_lower);
    tcase_add_test(t, results_many_retry);
    tcase_add_test(t, results_malformed);
    tcase_add_test(t, classify_v1);
    tcase_add_test(t, builder_add_repeated_uuid);
    tcase_add_test(t, rec_write_v1_len);
    tcase_add_test(t, rec_lift_in_v1_batch);
    tcase_add_test(t, is_lift_key);
    tcase_add_test(t, convert_without_properties);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(v1_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
