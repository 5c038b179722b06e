/*
 * Integration: data fidelity. What the application captured reaches the
 * server as it was written, or is refused at capture with a message that
 * says why:
 *  - one nesting limit (POSTHOG_MAX_JSON_DEPTH) for every way in (JSON text,
 *    builders, before_send) and every way out (requests, the spool);
 *  - keys compare by decoded value ("pl\u0061n" is "plan");
 *  - before_send replacements keep numbers exactly as written and pass the
 *    same checks as capture; the replacement belongs to the library.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_client.h"

/* ------------------------------------------------------------ helpers */

/* {"k":{"k":...{"k":1}...}} with `levels` objects, malloc'ed. */
static char *nested_object(int levels) {
    size_t n = (size_t)levels * 6 + 8;
    char *s = malloc(n), *o = s;
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < levels; i++) {
        memcpy(o, i + 1 < levels ? "{\"k\":" : "{\"k\":1", i + 1 < levels ? 5 : 6);
        o += i + 1 < levels ? 5 : 6;
    }
    for (int i = 0; i < levels; i++) *o++ = '}';
    *o = '\0';
    return s;
}

/* How many members of obj have the key `key`. */
static int members_named(const cJSON *obj, const char *key) {
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, obj) if (m->string && !strcmp(m->string, key)) n++;
    return n;
}

static const cJSON *props_of(const cJSON *ev) {
    return cJSON_GetObjectItemCaseSensitive(ev, "properties");
}

/* The first drop report of `reason`, copied (it_drop_clear it), or fails. */
static it_drop_t drop_of(it_drops_t *d, int reason) {
    for (size_t i = 0; i < it_drops_reports(d); i++) {
        it_drop_t x = it_drops_get(d, i);
        if (x.reason == reason) return x;
        it_drop_clear(&x);
    }
    ck_abort_msg("no drop report with reason %d", reason);
    it_drop_t none;
    memset(&none, 0, sizeof none);
    return none;
}

static const char *const modes[] = {"v0", "v1"};

/* ------------------------------------------------------------ keys */

/* A key written with escapes overrides the super property it decodes to:
 * the server gets one "plan", the user's. */
START_TEST(test_escaped_key_overrides_super) {
    const char *mode = modes[_i];
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", mode);
    it_set(o, "super_properties", "{\"plan\":\"free\",\"tier\":1}");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture_json(c, "u", "escaped",
                                          "{\"pl\\u0061n\":\"pro\",\"\\u0024lib\":\"mine\"}"),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 1);
    const cJSON *p = props_of(cJSON_GetArrayItem(events, 0));
    ck_assert_msg(members_named(p, "plan") == 1, "%s: %d members \"plan\"", mode,
                  members_named(p, "plan"));
    ck_assert_str_eq(it_prop_str(cJSON_GetArrayItem(events, 0), "plan"), "pro");
    ck_assert_int_eq(members_named(p, "tier"), 1);
    /* "\u0024lib" is the user's $lib: v0 adds no second one; v1 sends $lib
     * in its header, never in the properties */
    if (!strcmp(mode, "v0")) {
        ck_assert_int_eq(members_named(p, "$lib"), 1);
        ck_assert_str_eq(it_prop_str(cJSON_GetArrayItem(events, 0), "$lib"), "mine");
    } else {
        ck_assert_int_eq(members_named(p, "$lib"), 0);
    }
    cJSON_Delete(events);
    it_check_balance(c, 1, 0);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* Super properties are sent as written: numbers exactly, keys with their
 * escapes still overridden by the plain key they decode to. */
START_TEST(test_super_properties_keep_numbers) {
    const char *mode = modes[_i];
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", it_closed_port());
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", host);
    it_set(o, "capture_mode", mode);
    it_set(o, "max_retries", "0");
    it_set(o, "super_properties",
           "{\"big\":9007199254740993, \"ratio\":0.1000000000000000055511151231257827,"
           "\"t\\u0069er\":\"gold\",\"nested\":{\"n\":1E+2}}");
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture_json(c, "u", "e", "{\"tier\":\"platinum\"}"), POSTHOG_OK);
    posthog_flush(c, 5000);
    it_drop_t x = drop_of(d, POSTHOG_DROP_RETRIES_EXHAUSTED);
    ck_assert_ptr_nonnull(x.events_json);
    static const char *const want[] = {"\"big\":9007199254740993",
                                       "\"ratio\":0.1000000000000000055511151231257827",
                                       "\"nested\":{\"n\":1E+2}", "\"tier\":\"platinum\""};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(x.events_json, want[i]), "%s: %s not in %s", mode, want[i],
                      x.events_json);
    ck_assert_msg(!strstr(x.events_json, "gold"), "%s: %s", mode, x.events_json);
    it_drop_clear(&x);
    posthog_client_free(c);
    it_drops_free(d);
}
END_TEST

/* ------------------------------------------------------------ nesting */

/* Too deep is refused at capture with the limit in the message; at the
 * limit the event is delivered. */
START_TEST(test_depth_refused_at_capture) {
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", modes[_i]);
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);
    char *ok = nested_object(POSTHOG_MAX_JSON_DEPTH);
    char *deep = nested_object(POSTHOG_MAX_JSON_DEPTH + 1);
    ck_assert_int_eq(posthog_capture_json(c, "u", "at_limit", ok), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_ex(c, "u", "set_at_limit", NULL, 0, NULL, NULL, ok, ok, NULL),
                     POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "too_deep", deep), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog_capture_ex(c, "u", "set_too_deep", NULL, 0, NULL, NULL, deep, NULL,
                                        NULL),
                     POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_INVALID), 2);
    it_drop_t x = it_drops_get(d, 0);
    ck_assert_str_eq(x.event, "too_deep");
    ck_assert_msg(strstr(x.message, "properties_json") && strstr(x.message, "64 levels"),
                  "message: %s", x.message);
    it_drop_clear(&x);
    x = it_drops_get(d, 1);
    ck_assert_msg(strstr(x.message, "set_json") && strstr(x.message, "64 levels"), "message: %s",
                  x.message);
    it_drop_clear(&x);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    cJSON_Delete(events);
    it_check_balance(c, 2, 2);
    free(ok);
    free(deep);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

/* Builders nested 300 deep: the builder refuses past the limit, so the one
 * deep event cannot make the server refuse the batch of 100 it travels in
 * (v0 refuses a whole batch; the local server, like PostHog, has a limit). */
START_TEST(test_builder_depth_keeps_batch) {
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", "v0");
    it_set(o, "flush_at", "100");
    it_set(o, "flush_interval_ms", "60000");
    posthog_client_t *c = it_client(o);
    posthog_props_t *b = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_int(b, "leaf", 1), POSTHOG_OK);
    int levels = 1, refused = 0;
    for (int i = 0; i < 300; i++) {
        posthog_props_t *parent = posthog_props_new();
        posthog_status_t st = posthog_props_set_props(parent, "k", b);
        if (st == POSTHOG_OK) {
            posthog_props_free(b);
            b = parent;
            levels++;
        } else {
            ck_assert_int_eq(st, POSTHOG_E_INVALID_JSON);
            refused++;
            posthog_props_free(parent);
        }
    }
    ck_assert_int_eq(levels, POSTHOG_MAX_JSON_DEPTH);
    ck_assert_int_eq(refused, 300 - (POSTHOG_MAX_JSON_DEPTH - 1));
    /* a JSON value nested deeper than a member may be is refused too */
    char *deep = nested_object(POSTHOG_MAX_JSON_DEPTH);
    posthog_props_t *q = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_json(q, "j", deep), POSTHOG_E_INVALID_JSON);
    ck_assert_uint_eq(posthog_props_count(q), 0);
    deep[strlen(deep) - 1] = '\0';
    memmove(deep, deep + 5, strlen(deep + 5) + 1); /* one level less */
    ck_assert_int_eq(posthog_props_set_json(q, "j", deep), POSTHOG_OK);
    free(deep);
    for (int i = 0; i < 98; i++)
        ck_assert_int_eq(posthog_capture(c, "u", "plain", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "u", "deep_builder", b), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "u", "deep_json", q), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "events"), 100);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 100);
    ck_assert_uint_eq(s.dropped_total, 0);
    posthog_props_free(b);
    posthog_props_free(q);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

static char *tmp_dir(void) {
    char *t = strdup("/tmp/ph-fidelity-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t));
    return t;
}

static void rm_rf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

/* Events at the nesting limit that wait in the spool are replayed, not
 * counted corrupt: the spool reads whole events, which hold the user's
 * values two levels down. */
START_TEST(test_depth_at_limit_survives_spool) {
    const char *mode = modes[_i];
    char *dir = tmp_dir();
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", it_closed_port());
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", host);
    it_set(o, "capture_mode", mode);
    it_set(o, "storage_path", dir);
    it_set(o, "max_retries", "0");
    posthog_client_t *c = it_client(o);
    char *ok = nested_object(POSTHOG_MAX_JSON_DEPTH);
    ck_assert_int_eq(posthog_capture_json(c, "u", "deep_props", ok), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_ex(c, "u", "deep_set", NULL, 0, NULL, ok, ok, ok, NULL),
                     POSTHOG_OK);
    posthog_shutdown(c, 5000);
    ck_assert_uint_eq(it_stats(c).spool_pending, 2);
    posthog_client_free(c);

    ph_ingest_t *srv = it_server(NULL);
    o = it_options(srv);
    it_set(o, "capture_mode", mode);
    it_set(o, "storage_path", dir);
    c = it_client(o);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    posthog_stats_t s = it_stats(c);
    ck_assert_msg(s.dropped[POSTHOG_DROP_CORRUPT] == 0, "%s: %llu counted corrupt", mode,
                  (unsigned long long)s.dropped[POSTHOG_DROP_CORRUPT]);
    ck_assert_uint_eq(s.replayed, 2);
    ck_assert_int_eq(it_summary_num(srv, "events"), 2);
    free(ok);
    posthog_client_free(c);
    it_stop(srv);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------ before_send */

typedef struct {
    posthog_status_t set_status; /* of the last posthog_replacement_set */
    int calls;
} bs_t;

static const char *const exact_event =
    "{\"event\":\"exact\",\"distinct_id\":9007199254740993,\"properties\":{"
    "\"big\":9007199254740993,\"precise\":0.1000000000000000055511151231257827,"
    "\"neg0\":-0.0,\"exp\":1E+2,\"many\":123456789012345678901234567890,"
    "\"nested\":{\"a\":[1.50,-7e-3]}},"
    "\"$set\":{\"n\":18446744073709551616}}";

static posthog_before_send_result_t bs_numbers(const char *event_json,
                                               posthog_replacement_t *rep, void *ud) {
    bs_t *st = ud;
    st->calls++;
    if (strstr(event_json, "\"event\":\"exact\"")) {
        st->set_status = posthog_replacement_set(rep, exact_event);
    } else if (strstr(event_json, "\"event\":\"huge\"")) {
        st->set_status = posthog_replacement_set(
            rep, "{\"event\":\"huge\",\"distinct_id\":\"u\",\"properties\":{\"x\":1e400}}");
    } else if (strstr(event_json, "\"event\":\"long_digits\"")) {
        char big[700] = "{\"event\":\"long_digits\",\"distinct_id\":\"u\",\"properties\":{\"x\":";
        size_t n = strlen(big);
        memset(big + n, '9', 400); /* a 400-digit integer: beyond a double */
        memcpy(big + n + 400, "}}", 3);
        st->set_status = posthog_replacement_set(rep, big);
    }
    return POSTHOG_BEFORE_SEND_REPLACE;
}

/* Replacements keep every number as written, and numbers PostHog cannot
 * store are refused at capture with a message, never sent as null. The
 * text checked is what the library sends (the drop report's events_json of
 * a request that could not be delivered). */
START_TEST(test_before_send_keeps_numbers) {
    const char *mode = modes[_i];
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", it_closed_port());
    it_drops_t *d = it_drops_new();
    bs_t st = {POSTHOG_OK, 0};
    posthog_options_t *o = it_options(NULL);
    it_set(o, "host", host);
    it_set(o, "capture_mode", mode);
    it_set(o, "max_retries", "0");
    it_drops_attach(o, d);
    posthog_options_set_before_send(o, bs_numbers, &st);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, "u", "huge", NULL), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(st.set_status, POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog_capture(c, "u", "long_digits", NULL), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog_capture(c, "u", "exact", NULL), POSTHOG_OK);
    ck_assert_int_eq(st.set_status, POSTHOG_OK);
    posthog_flush(c, 5000);
    ck_assert_uint_eq(it_drops_events(d, POSTHOG_DROP_INVALID), 2);
    it_drop_t x = drop_of(d, POSTHOG_DROP_INVALID);
    ck_assert_str_eq(x.event, "huge");
    ck_assert_msg(strstr(x.message, "range of a double"), "message: %s", x.message);
    it_drop_clear(&x);
    x = drop_of(d, POSTHOG_DROP_RETRIES_EXHAUSTED);
    ck_assert_ptr_nonnull(x.events_json);
    static const char *const want[] = {
        "\"distinct_id\":\"9007199254740993\"", "\"big\":9007199254740993",
        "\"precise\":0.1000000000000000055511151231257827", "\"neg0\":-0.0", "\"exp\":1E+2",
        "\"many\":123456789012345678901234567890", "\"a\":[1.50,-7e-3]",
        "\"n\":18446744073709551616"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(x.events_json, want[i]), "%s: %s not in %s", mode, want[i],
                      x.events_json);
    it_drop_clear(&x);
    posthog_client_free(c);
    it_drops_free(d);
}
END_TEST

/* {"event":"deep","distinct_id":"u","properties":<levels nested objects>} */
static char *deep_event(int levels) {
    char *p = nested_object(levels);
    size_t n = strlen(p) + 64;
    char *e = malloc(n);
    ck_assert_ptr_nonnull(e);
    snprintf(e, n, "{\"event\":\"deep\",\"distinct_id\":\"u\",\"properties\":%s}", p);
    free(p);
    return e;
}

static posthog_before_send_result_t bs_depth(const char *event_json, posthog_replacement_t *rep,
                                             void *ud) {
    posthog_status_t *st = ud;
    /* properties at 65 levels: what $groups at the limit gives, accepted;
     * at 66 a property value nests 65 levels: refused */
    int levels = strstr(event_json, "\"event\":\"too_deep\"") ? POSTHOG_MAX_JSON_DEPTH + 2
                                                              : POSTHOG_MAX_JSON_DEPTH + 1;
    char *e = deep_event(levels);
    *st = posthog_replacement_set(rep, e);
    free(e);
    return POSTHOG_BEFORE_SEND_REPLACE;
}

/* The before_send path has the same nesting limit as capture. */
START_TEST(test_before_send_depth_limit) {
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    posthog_status_t st = POSTHOG_OK;
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", modes[_i]);
    it_drops_attach(o, d);
    posthog_options_set_before_send(o, bs_depth, &st);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture(c, "u", "at_limit", NULL), POSTHOG_OK);
    ck_assert_int_eq(st, POSTHOG_OK);
    ck_assert_int_eq(posthog_capture(c, "u", "too_deep", NULL), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(st, POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(it_summary_num(srv, "events"), 1);
    it_drop_t x = drop_of(d, POSTHOG_DROP_INVALID);
    ck_assert_msg(strstr(x.message, "at most 64 levels"), "message: %s", x.message);
    it_drop_clear(&x);
    it_check_balance(c, 1, 1);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

typedef struct {
    int calls;
    posthog_status_t st;
} strip_t;

/* Looks at the event, maybe edits it, and decides per event name. */
static posthog_before_send_result_t bs_verdicts(const char *event_json,
                                                posthog_replacement_t *rep, void *ud) {
    strip_t *s = ud;
    s->calls++;
    if (strstr(event_json, "\"event\":\"strip\"")) {
        s->st = posthog_replacement_remove_property(rep, "email");
        return POSTHOG_BEFORE_SEND_REPLACE;
    }
    if (strstr(event_json, "\"event\":\"changed_mind\"")) {
        /* edits, then keeps the original after all */
        posthog_replacement_set(rep, "{\"event\":\"other\",\"distinct_id\":\"x\"}");
        return POSTHOG_BEFORE_SEND_KEEP;
    }
    if (strstr(event_json, "\"event\":\"replace_nothing\"")) return POSTHOG_BEFORE_SEND_REPLACE;
    if (strstr(event_json, "\"event\":\"odd_verdict\"")) return (posthog_before_send_result_t)7;
    if (strstr(event_json, "\"event\":\"bad_replacement\"")) {
        s->st = posthog_replacement_set(rep, "{\"event\":\"\",\"distinct_id\":\"x\"}");
        return POSTHOG_BEFORE_SEND_REPLACE;
    }
    return POSTHOG_BEFORE_SEND_KEEP;
}

/* The replacement belongs to the library: a callback that looks at the
 * event and keeps it (edited or not), replaces without a replacement or
 * returns an unknown verdict never hands the library memory to free. */
START_TEST(test_before_send_replacement_owned_by_library) {
    ph_ingest_t *srv = it_server(NULL);
    it_drops_t *d = it_drops_new();
    strip_t s = {0, POSTHOG_OK};
    posthog_options_t *o = it_options(srv);
    it_set(o, "capture_mode", modes[_i]);
    it_drops_attach(o, d);
    posthog_options_set_before_send(o, bs_verdicts, &s);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_capture_json(c, "u", "strip",
                                          "{\"email\":\"a@b.c\",\"big\":9007199254740993,"
                                          "\"em\\u0061il\":\"again\",\"keep\":\"yes\"}"),
                     POSTHOG_OK);
    ck_assert_int_eq(s.st, POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "changed_mind", "{\"a\":1}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "replace_nothing", "{\"a\":2}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "odd_verdict", "{\"a\":3}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_json(c, "u", "bad_replacement", NULL),
                     POSTHOG_E_INVALID_EVENT);
    ck_assert_int_eq(s.st, POSTHOG_E_INVALID_EVENT);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(s.calls, 5);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 4);
    const cJSON *st = it_find_event_by_prop(events, "keep", "yes");
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(members_named(props_of(st), "email"), 0);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(props_of(st), "big")));
    static const char *const names[] = {"changed_mind", "replace_nothing", "odd_verdict"};
    for (int i = 0; i < 3; i++) {
        int found = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, events) if (!strcmp(it_str(e, "event"), names[i])) found++;
        ck_assert_msg(found == 1, "%s sent %d times", names[i], found);
    }
    cJSON_Delete(events);
    it_drop_t x = drop_of(d, POSTHOG_DROP_INVALID);
    ck_assert_str_eq(x.event, "bad_replacement");
    ck_assert_msg(strstr(x.message, "before_send") && strstr(x.message, "non-empty"),
                  "message: %s", x.message);
    it_drop_clear(&x);
    it_check_balance(c, 4, 1);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}
END_TEST

int main(void) {
    Suite *s = suite_create("fidelity");
    TCase *tc = tcase_create("fidelity");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_escaped_key_overrides_super, 0, 2);
    tcase_add_loop_test(tc, test_super_properties_keep_numbers, 0, 2);
    tcase_add_loop_test(tc, test_depth_refused_at_capture, 0, 2);
    tcase_add_test(tc, test_builder_depth_keeps_batch);
#ifndef POSTHOG_NO_SPOOL
    tcase_add_loop_test(tc, test_depth_at_limit_survives_spool, 0, 2);
#else
    (void)test_depth_at_limit_survives_spool; /* needs the disk spool */
#endif
    tcase_add_loop_test(tc, test_before_send_keeps_numbers, 0, 2);
    tcase_add_loop_test(tc, test_before_send_replacement_owned_by_library, 0, 2);
    tcase_add_loop_test(tc, test_before_send_depth_limit, 0, 2);
    suite_add_tcase(s, tc);
    return it_run_suite(s);
}
