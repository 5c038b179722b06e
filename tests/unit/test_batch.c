/*
 * Unit tests of the request-body builder (src/delivery/batch.c) and the event
 * expansion it uses (src/capture/event.c): bodies with and without gzip are
 * decoded with zlib (gzip wrapper, so CRC32 and ISIZE are verified) and
 * parsed with cJSON; per-attempt tails, events_json, split, large batches
 * and builder_fits.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "batch.h"

/* The v0 builder these tests were written for. */
static int v0_builder_init(ph_builder_t *b, const char *key, bool hist, bool gz, int level,
                           uint64_t max_raw) {
    return posthog__builder_init(b, PH_PROTO_V0, gz ? PH_CODEC_GZIP : PH_CODEC_NONE, level, key,
                                 hist, false, max_raw);
}
#include "event.h"
#include "util.h"

#define T0 1700000000123LL /* event timestamps */
#define MONO0 5000000LL /* the monotonic clock when events are added */

/* A queue record image built by hand: ph_rec_t + texts. */
static ph_rec_t *make_rec(int i, size_t props_pad) {
    char name[32], did[32], uuid[37];
    snprintf(name, sizeof name, "event_%d", i);
    snprintf(did, sizeof did, "user-%d", i % 7);
    char *props = malloc(props_pad + 64);
    int pn = snprintf(props, 64, "\"i\":%d,\"s\":\"", i);
    for (size_t k = 0; k < props_pad; k++) props[pn + (int)k] = (char)('a' + (i + (int)k) % 26);
    pn += (int)props_pad;
    props[pn++] = '"';
    props[pn] = '\0';
    const char *extra = (i % 3 == 0) ? "\"$set\":{\"plan\":\"pro\"}" : "";
    size_t nl = strlen(name), dl = strlen(did), pl = (size_t)pn, el = strlen(extra);
    ph_rec_t *r = malloc(sizeof *r + nl + dl + pl + el);
    memset(r, 0, sizeof *r);
    snprintf(uuid, sizeof uuid, "0193a1b2-c3d4-7e5f-8a9b-%012x", i);
    ck_assert_int_eq(posthog__uuid_parse(uuid, 36, r->uuid), 0);
    r->ts_ms = T0 + i;
    r->flags = 0; /* $lib members are covered by test_event_lib_flags */
    r->name_len = (uint32_t)nl;
    r->did_len = (uint32_t)dl;
    r->props_len = (uint32_t)pl;
    r->extra_len = (uint32_t)el;
    char *o = (char *)(r + 1);
    memcpy(o, name, nl);
    memcpy(o + nl, did, dl);
    memcpy(o + nl + dl, props, pl);
    memcpy(o + nl + dl + pl, extra, el);
    free(props);
    return r;
}

static size_t rec_json_len(const ph_rec_t *r) {
    return ph_rec_json_len(r);
}

/* Decodes a request body: gunzip with the gzip wrapper (checks CRC32 and
 * ISIZE) or copies raw text. Returns NUL-terminated malloc()ed text. */
static char *decode_body(const ph_batch_t *bt, size_t *out_len) {
    if (!(bt->codec == PH_CODEC_GZIP)) {
        char *t = malloc(bt->body.len + 1);
        memcpy(t, bt->body.data, bt->body.len);
        t[bt->body.len] = '\0';
        if (out_len) *out_len = bt->body.len;
        return t;
    }
    ck_assert_uint_ge(bt->body.len, 18);
    ck_assert_int_eq((unsigned char)bt->body.data[0], 0x1f);
    ck_assert_int_eq((unsigned char)bt->body.data[1], 0x8b);
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    z.next_in = (Bytef *)bt->body.data;
    z.avail_in = (uInt)bt->body.len;
    int rc;
    do {
        if (cap - len < 4096) out = realloc(out, cap *= 2);
        z.next_out = (Bytef *)out + len;
        z.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - 1 - z.avail_out;
        ck_assert_msg(rc == Z_OK || rc == Z_STREAM_END, "inflate: %d %s", rc,
                      z.msg ? z.msg : "");
    } while (rc != Z_STREAM_END);
    ck_assert_msg(z.avail_in == 0, "%u bytes after the gzip member", z.avail_in);
    inflateEnd(&z);
    out[len] = '\0';
    if (out_len) *out_len = len;
    return out;
}

static cJSON *decode_json(const ph_batch_t *bt) {
    char *t = decode_body(bt, NULL);
    cJSON *j = cJSON_Parse(t);
    ck_assert_msg(j != NULL, "body is not JSON: %.300s", t);
    free(t);
    return j;
}

static void check_event(const cJSON *e, int i) {
    char want[64];
    ck_assert(cJSON_IsObject(e));
    snprintf(want, sizeof want, "event_%d", i);
    ck_assert_str_eq(cJSON_GetObjectItem(e, "event")->valuestring, want);
    snprintf(want, sizeof want, "user-%d", i % 7);
    ck_assert_str_eq(cJSON_GetObjectItem(e, "distinct_id")->valuestring, want);
    snprintf(want, sizeof want, "0193a1b2-c3d4-7e5f-8a9b-%012x", i);
    ck_assert_str_eq(cJSON_GetObjectItem(e, "uuid")->valuestring, want);
    char ts[PH_ISO8601_LEN + 1];
    posthog__iso8601_ms(ts, T0 + i);
    ts[PH_ISO8601_LEN] = '\0';
    ck_assert_str_eq(cJSON_GetObjectItem(e, "timestamp")->valuestring, ts);
    cJSON *p = cJSON_GetObjectItem(e, "properties");
    ck_assert(cJSON_IsObject(p));
    ck_assert(cJSON_GetObjectItem(p, "i")->valuedouble == i);
    cJSON *set = cJSON_GetObjectItem(e, "$set");
    if (i % 3 == 0)
        ck_assert(set && !strcmp(cJSON_GetObjectItem(set, "plan")->valuestring, "pro"));
    else
        ck_assert_ptr_null(set);
}

/* Checks the whole body: envelope, events first..first+count-1, sent_at. */
static void check_body(const ph_batch_t *bt, const char *api_key, bool hist, int first, int count,
                       int64_t sent_ms) {
    cJSON *j = decode_json(bt);
    ck_assert_int_eq(cJSON_GetArraySize(j), 4);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "api_key")->valuestring, api_key);
    cJSON *h = cJSON_GetObjectItem(j, "historical_migration");
    ck_assert(cJSON_IsBool(h) && cJSON_IsTrue(h) == hist);
    char ts[PH_ISO8601_LEN + 1];
    posthog__iso8601_ms(ts, sent_ms);
    ts[PH_ISO8601_LEN] = '\0';
    ck_assert_str_eq(cJSON_GetObjectItem(j, "sent_at")->valuestring, ts);
    cJSON *b = cJSON_GetObjectItem(j, "batch");
    ck_assert(cJSON_IsArray(b));
    ck_assert_int_eq(cJSON_GetArraySize(b), count);
    for (int k = 0; k < count; k++) check_event(cJSON_GetArrayItem(b, k), first + k);
    cJSON_Delete(j);
}

static ph_batch_t *build(ph_builder_t *b, int first, int n, size_t pad, int64_t now) {
    for (int i = first; i < first + n; i++) {
        ph_rec_t *r = make_rec(i, pad);
        ck_assert_int_eq(posthog__builder_add(b, r, now, MONO0), 0);
        free(r);
    }
    ck_assert_uint_eq(ph_builder_count(b), (uint32_t)n);
    return posthog__builder_seal(b);
}

START_TEST(event_write_matches_len) {
    for (int i = 0; i < 50; i++) {
        ph_rec_t *r = make_rec(i, (size_t)i * 3);
        size_t n = rec_json_len(r);
        char *buf = malloc(n + 16);
        memset(buf, 0x5A, n + 16);
        char *end = posthog__event_write(buf, r);
        ck_assert_uint_eq((size_t)(end - buf), n);
        ck_assert_int_eq((unsigned char)buf[n], 0x5A);
        buf[n] = '\0';
        cJSON *e = cJSON_Parse(buf);
        ck_assert_msg(e != NULL, "%s", buf);
        check_event(e, i);
        /* fixed member order */
        ck_assert(strncmp(buf, "{\"uuid\":\"", 9) == 0);
        cJSON_Delete(e);
        ph_buf_t b;
        posthog__buf_init(&b, 1 << 20);
        ck_assert_int_eq(posthog__event_format(&b, r), 0);
        ck_assert_str_eq(b.data, buf);
        posthog__buf_free(&b);
        posthog__buf_init(&b, n - 1); /* one byte short */
        ck_assert_int_eq(posthog__event_format(&b, r), -1);
        posthog__buf_free(&b);
        free(buf);
        free(r);
    }
}
END_TEST

static void body_roundtrip(bool gzip, bool hist) {
    ph_builder_t b;
    ck_assert_int_eq(v0_builder_init(&b, "phc_key123", hist, gzip, 1, 5 << 20), 0);
    ck_assert_ptr_null(posthog__builder_seal(&b)); /* empty: nothing to seal */
    for (int n = 1; n <= 40; n += 13) {
        ph_batch_t *bt = build(&b, 0, n, 5, T0 + 5000);
        ck_assert_ptr_nonnull(bt);
        ck_assert_uint_eq(bt->count, (uint32_t)n);
        ck_assert_int_eq((bt->codec == PH_CODEC_GZIP), gzip);
        ck_assert_uint_eq(ph_builder_count(&b), 0);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0 + 10000), 0);
        check_body(bt, "phc_key123", hist, 0, n, T0 + 10000);
        posthog__batch_free(bt);
    }
    posthog__builder_free(&b);
}

START_TEST(body_gzip_on) { body_roundtrip(true, false); }
END_TEST
START_TEST(body_gzip_off) { body_roundtrip(false, false); }
END_TEST
START_TEST(body_historical) {
    body_roundtrip(true, true);
    body_roundtrip(false, true);
}
END_TEST

START_TEST(body_gzip_levels) {
    for (int level = 1; level <= 9; level++) {
        ph_builder_t b;
        ck_assert_int_eq(v0_builder_init(&b, "phc_key123", false, true, level, 5 << 20), 0);
        ph_batch_t *bt = build(&b, 0, 25, 40, T0);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0), 0);
        check_body(bt, "phc_key123", false, 0, 25, T0);
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

START_TEST(api_key_is_escaped) {
    const char *key = "phc_\"quoted\"\\back";
    for (int gz = 0; gz < 2; gz++) {
        ph_builder_t b;
        ck_assert_int_eq(v0_builder_init(&b, key, false, gz, 1, 5 << 20), 0);
        ph_batch_t *bt = build(&b, 0, 2, 0, T0);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0), 0);
        check_body(bt, key, false, 0, 2, T0);
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

START_TEST(two_tails_same_events) {
    for (int gz = 0; gz < 2; gz++) {
        ph_builder_t b;
        ck_assert_int_eq(v0_builder_init(&b, "phc_key123", false, gz, 1, 5 << 20), 0);
        ph_batch_t *bt = build(&b, 0, 30, 20, T0);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0 + 1), 0);
        size_t la;
        char *a = decode_body(bt, &la);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0 + 3600 * 1000 + 7), 0);
        size_t lb;
        char *bb = decode_body(bt, &lb);
        ck_assert_uint_eq(la, lb);
        cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(bb);
        ck_assert(ja && jb);
        ck_assert(cJSON_Compare(cJSON_GetObjectItem(ja, "batch"), cJSON_GetObjectItem(jb, "batch"),
                                1));
        ck_assert_str_ne(cJSON_GetObjectItem(ja, "sent_at")->valuestring,
                         cJSON_GetObjectItem(jb, "sent_at")->valuestring);
        /* byte-identical up to the sent_at value */
        const char *sa = strstr(a, "\"sent_at\":\"");
        ck_assert_ptr_nonnull(sa);
        ck_assert(memcmp(a, bb, (size_t)(sa - a) + 11) == 0);
        check_body(bt, "phc_key123", false, 0, 30, T0 + 3600 * 1000 + 7);
        /* and back to the first one */
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0 + 1), 0);
        char *c = decode_body(bt, NULL);
        ck_assert_str_eq(c, a);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        free(a);
        free(bb);
        free(c);
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

START_TEST(events_json_and_inflate) {
    for (int gz = 0; gz < 2; gz++) {
        ph_builder_t b;
        ck_assert_int_eq(v0_builder_init(&b, "phc_key123", false, gz, 1, 5 << 20), 0);
        ph_batch_t *bt = build(&b, 0, 17, 10, T0);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0), 0);
        char *ej = posthog__batch_events_json(bt);
        ck_assert_ptr_nonnull(ej);
        cJSON *arr = cJSON_Parse(ej);
        ck_assert_msg(arr && cJSON_IsArray(arr), "%.200s", ej);
        ck_assert_int_eq(cJSON_GetArraySize(arr), 17);
        for (int i = 0; i < 17; i++) check_event(cJSON_GetArrayItem(arr, i), i);
        cJSON *body = decode_json(bt);
        ck_assert(cJSON_Compare(arr, cJSON_GetObjectItem(body, "batch"), 1));
        cJSON_Delete(body);
        cJSON_Delete(arr);
        free(ej);
        /* inflate gives the prefix without the tail */
        size_t n;
        char *raw = posthog__batch_inflate(bt, &n);
        ck_assert_ptr_nonnull(raw);
        ck_assert_uint_eq(n, bt->raw_len);
        ck_assert_uint_eq(strlen(raw), n);
        char *full = decode_body(bt, NULL);
        ck_assert(strncmp(full, raw, n) == 0);
        ck_assert_str_eq(full + n, "],\"sent_at\":\"2023-11-14T22:13:20.123Z\"}");
        /* offsets point at each event's '{' */
        for (uint32_t i = 0; i < bt->count; i++)
            ck_assert(strncmp(raw + bt->offsets[i], "{\"uuid\":", 8) == 0);
        free(full);
        free(raw);
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

static void split_check(bool gz, int n, size_t pad) {
    ph_builder_t b;
    ck_assert_int_eq(v0_builder_init(&b, "phc_split", true, gz, 1, UINT64_MAX), 0);
    ph_batch_t *bt = build(&b, 100, n, pad, T0);
    bt->end_pos = 123456;
    ck_assert_int_eq(posthog__batch_set_tail(bt, T0 + 50), 0);
    ph_batch_t *f = NULL, *s = NULL;
    ck_assert_int_eq(posthog__batch_split(&b, bt, &f, &s), 0);
    ck_assert(f && s);
    ck_assert_uint_eq(f->count, (uint32_t)n / 2);
    ck_assert_uint_eq(s->count, (uint32_t)(n - n / 2));
    ck_assert_uint_eq(f->end_pos, 0);
    ck_assert_uint_eq(s->end_pos, 123456);
    ck_assert_int_eq((f->codec == PH_CODEC_GZIP), gz);
    ck_assert_int_eq(posthog__batch_set_tail(f, T0 + 60), 0);
    ck_assert_int_eq(posthog__batch_set_tail(s, T0 + 70), 0);
    check_body(f, "phc_split", true, 100, n / 2, T0 + 60);
    check_body(s, "phc_split", true, 100 + n / 2, n - n / 2, T0 + 70);
    /* the original is untouched and still decodes */
    check_body(bt, "phc_split", true, 100, n, T0 + 50);
    /* halves split again */
    if (f->count >= 2) {
        ph_batch_t *ff, *fs;
        ck_assert_int_eq(posthog__batch_split(&b, f, &ff, &fs), 0);
        ck_assert_int_eq(posthog__batch_set_tail(ff, T0), 0);
        ck_assert_int_eq(posthog__batch_set_tail(fs, T0), 0);
        check_body(ff, "phc_split", true, 100, (int)f->count / 2, T0);
        check_body(fs, "phc_split", true, 100 + (int)f->count / 2,
                   (int)(f->count - f->count / 2), T0);
        ck_assert_uint_eq(fs->end_pos, 0);
        posthog__batch_free(ff);
        posthog__batch_free(fs);
    }
    posthog__batch_free(f);
    posthog__batch_free(s);
    posthog__batch_free(bt);
    posthog__builder_free(&b);
}

START_TEST(split_halves) {
    for (int gz = 0; gz < 2; gz++) {
        split_check(gz, 2, 0);
        split_check(gz, 3, 1);
        split_check(gz, 11, 30);
        split_check(gz, 64, 3);
        split_check(gz, 65, 3);
        split_check(gz, 129, 3);
    }
}
END_TEST

START_TEST(split_single_fails) {
    ph_builder_t b;
    ck_assert_int_eq(v0_builder_init(&b, "phc_key123", false, true, 1, 5 << 20), 0);
    ph_batch_t *bt = build(&b, 0, 1, 0, T0);
    ph_batch_t *f = (ph_batch_t *)1, *s = (ph_batch_t *)1;
    ck_assert_int_eq(posthog__batch_split(&b, bt, &f, &s), -1);
    ck_assert_ptr_null(f);
    ck_assert_ptr_null(s);
    posthog__batch_free(bt);
    posthog__batch_free(NULL);
    posthog__builder_free(&b);
}
END_TEST

START_TEST(large_batches_cross_staging) {
    /* ~1.2 MB and ~250 KB of events: several 64 KiB staging flushes */
    for (int gz = 0; gz < 2; gz++) {
        size_t pads[] = {500, 5, 70000};
        int counts[] = {2300, 1500, 4};
        for (int k = 0; k < 3; k++) {
            ph_builder_t b;
            ck_assert_int_eq(v0_builder_init(&b, "phc_big", false, gz, 1, UINT64_MAX), 0);
            ph_batch_t *bt = build(&b, 0, counts[k], pads[k], T0);
            ck_assert_uint_gt(bt->raw_len, 64 * 1024);
            ck_assert_int_eq(posthog__batch_set_tail(bt, T0 + 9), 0);
            size_t len;
            char *t = decode_body(bt, &len);
            ck_assert_uint_eq(len, bt->raw_len + 39);
            free(t);
            check_body(bt, "phc_big", false, 0, counts[k], T0 + 9);
            if (gz) ck_assert_uint_lt(bt->body.len, bt->raw_len); /* it did compress */
            /* split relies on the offsets being right across drains */
            ph_batch_t *f, *s;
            ck_assert_int_eq(posthog__batch_split(&b, bt, &f, &s), 0);
            posthog__batch_set_tail(f, T0);
            posthog__batch_set_tail(s, T0);
            check_body(f, "phc_big", false, 0, counts[k] / 2, T0);
            check_body(s, "phc_big", false, counts[k] / 2, counts[k] - counts[k] / 2, T0);
            posthog__batch_free(f);
            posthog__batch_free(s);
            posthog__batch_free(bt);
            /* the builder is reusable after a big batch */
            bt = build(&b, 7, 3, 1, T0);
            posthog__batch_set_tail(bt, T0);
            check_body(bt, "phc_big", false, 7, 3, T0);
            posthog__batch_free(bt);
            posthog__builder_free(&b);
        }
    }
}
END_TEST

START_TEST(builder_fits_limit) {
    for (int gz = 0; gz < 2; gz++) {
        const uint64_t max_raw = 20000;
        ph_builder_t b;
        ck_assert_int_eq(v0_builder_init(&b, "phc_key123", false, gz, 1, max_raw), 0);
        /* an empty builder takes any event, even one over the limit */
        ck_assert(posthog__builder_fits(&b, 10 * max_raw));
        int n = 0;
        for (;;) {
            ph_rec_t *r = make_rec(n, 100);
            bool fits = posthog__builder_fits(&b, rec_json_len(r));
            if (!fits) {
                free(r);
                break;
            }
            ck_assert_int_eq(posthog__builder_add(&b, r, T0, MONO0), 0);
            free(r);
            n++;
            ck_assert_int_lt(n, 1000);
        }
        ck_assert_int_gt(n, 10);
        ph_batch_t *bt = posthog__builder_seal(&b);
        ck_assert_int_eq(posthog__batch_set_tail(bt, T0), 0);
        size_t len;
        char *t = decode_body(bt, &len);
        /* the whole request body, tail included, stays within max_raw ... */
        ck_assert_uint_le(len, max_raw);
        /* ... and one more event would have crossed it */
        ph_rec_t *r = make_rec(n, 100);
        ck_assert_uint_gt(len + 1 + rec_json_len(r), max_raw);
        free(r);
        free(t);
        check_body(bt, "phc_key123", false, 0, n, T0);
        posthog__batch_free(bt);
        /* a one-event oversize batch is still allowed */
        r = make_rec(0, 30000);
        ck_assert_int_eq(posthog__builder_add(&b, r, T0, MONO0), 0);
        free(r);
        ck_assert(!posthog__builder_fits(&b, 10)); /* nothing more fits behind it */
        bt = posthog__builder_seal(&b);
        ck_assert_ptr_nonnull(bt);
        ck_assert(posthog__builder_fits(&b, 10)); /* sealed: a new batch starts */
        posthog__batch_free(bt);
        posthog__builder_free(&b);
    }
}
END_TEST

START_TEST(opened_ms_is_oldest) {
    ph_builder_t b;
    ck_assert_int_eq(v0_builder_init(&b, "phc_key123", false, true, 1, 5 << 20), 0);
    ph_rec_t *r = make_rec(0, 0); /* ts_ms = T0, captured then */
    /* drained 5 s after its capture: the batch is 5 s old on the monotonic clock */
    ck_assert_int_eq(posthog__builder_add(&b, r, T0 + 5000, MONO0), 0);
    ck_assert_int_eq(b.opened_mono, MONO0 - 5000);
    ck_assert_int_eq(posthog__builder_add(&b, r, T0 + 9000, MONO0 + 4000), 0); /* not fresh */
    ck_assert_int_eq(b.opened_mono, MONO0 - 5000);
    posthog__batch_free(posthog__builder_seal(&b));
    /* a wall clock that went backwards: now is older than the capture, age 0 */
    ck_assert_int_eq(posthog__builder_add(&b, r, T0 - 3600000, MONO0 + 100), 0);
    ck_assert_int_eq(b.opened_mono, MONO0 + 100);
    posthog__batch_free(posthog__builder_seal(&b));
    /* an explicit (historical) timestamp says nothing about capture time */
    r->ts_ms = T0 - 86400000;
    r->flags |= PH_REC_TS_EXPLICIT;
    ck_assert_int_eq(posthog__builder_add(&b, r, T0 + 7000, MONO0 + 200), 0);
    ck_assert_int_eq(b.opened_mono, MONO0 + 200);
    free(r);
    posthog__builder_free(&b); /* frees the open batch too */
}
END_TEST

/* The flusher adds $lib / $lib_version from record flags, with correct commas. */
START_TEST(event_lib_flags) {
    static const uint32_t variants[] = {PH_REC_LIB, PH_REC_LIBV, PH_REC_LIB | PH_REC_LIBV};
    for (int pad = 0; pad < 2; pad++) {
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            ph_rec_t *r = make_rec(3, 4);
            if (!pad) r->props_len = 0; /* empty user properties */
            r->extra_len = 0;           /* properties only, to count members */
            r->flags = variants[v];
            size_t n = ph_rec_json_len(r);
            char *buf = malloc(n + 1);
            char *end = posthog__event_write(buf, r);
            ck_assert_uint_eq((size_t)(end - buf), n);
            buf[n] = '\0';
            cJSON *e = cJSON_Parse(buf);
            ck_assert_msg(e != NULL, "%s", buf);
            cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
            cJSON *lib = cJSON_GetObjectItemCaseSensitive(p, "$lib");
            cJSON *libv = cJSON_GetObjectItemCaseSensitive(p, "$lib_version");
            ck_assert_int_eq(lib != NULL, (variants[v] & PH_REC_LIB) != 0);
            ck_assert_int_eq(libv != NULL, (variants[v] & PH_REC_LIBV) != 0);
            if (lib) ck_assert_str_eq(lib->valuestring, "posthog-c");
            if (libv) ck_assert_str_eq(libv->valuestring, POSTHOG_VERSION_STRING);
            ck_assert_int_eq(cJSON_GetArraySize(p), (pad ? 2 : 0) + (lib != NULL) + (libv != NULL));
            cJSON_Delete(e);
            free(buf);
            free(r);
        }
    }
}
END_TEST

static Suite *batch_suite(void) {
    Suite *s = suite_create("batch");
    TCase *t = tcase_create("batch");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, event_write_matches_len);
    tcase_add_test(t, body_gzip_on);
    tcase_add_test(t, body_gzip_off);
    tcase_add_test(t, body_historical);
    tcase_add_test(t, body_gzip_levels);
    tcase_add_test(t, api_key_is_escaped);
    tcase_add_test(t, two_tails_same_events);
    tcase_add_test(t, events_json_and_inflate);
    tcase_add_test(t, split_halves);
    tcase_add_test(t, split_single_fails);
    tcase_add_test(t, large_batches_cross_staging);
    tcase_add_test(t, builder_fits_limit);
    tcase_add_test(t, opened_ms_is_oldest);
    tcase_add_test(t, event_lib_flags);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(batch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
