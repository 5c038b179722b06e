/*
 * Integration tests of error tracking: posthog_capture_exception from a known
 * function sends a $exception whose frames, resolved against the test
 * binary's symbols with addr2line (as PostHog symbolicates from uploaded
 * debug files), name that function and its caller, and whose $debug_images
 * carry the build ids readelf reads from the loaded files; the _ex variant
 * with a caller-supplied $exception_list, levels, fingerprint, handled;
 * bad arguments refused and counted.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_client.h"

/* The function addr2line names for a frame. */
static void resolve(const cJSON *frame, int caller, char *fn, size_t cap) {
    ck_assert_int_eq(it_frame_function(frame, caller, fn, cap), 0);
}

static ph_ingest_t *g_srv;
static posthog_client_t *g_c;

__attribute__((noinline)) static posthog_status_t the_known_failing_function(int depth) {
    posthog_status_t st = posthog_capture_exception(g_c, "user-1", "ValueError",
                                                    "the value was out of range",
                                                    "{\"order\":42}");
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays */
    return depth ? st : st;
}

__attribute__((noinline)) static posthog_status_t its_caller(void) {
    posthog_status_t st = the_known_failing_function(1);
    __asm__ volatile("" ::: "memory");
    return st;
}

static const cJSON *only_exception(ph_ingest_t *srv, cJSON **events) {
    *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(*events), 1);
    const cJSON *e = cJSON_GetArrayItem(*events, 0);
    ck_assert_str_eq(it_str(e, "event"), "$exception");
    return e;
}

START_TEST(test_native_stack_resolves_to_the_function)
{
    g_srv = it_server(NULL);
    g_c = it_client(it_options(g_srv));
    ck_assert_int_eq(its_caller(), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(g_c, 10000), POSTHOG_OK);
    cJSON *events;
    const cJSON *e = only_exception(g_srv, &events);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(p, "order")->valueint, 42);
    ck_assert_str_eq(it_str(p, "$exception_level"), "error");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "$exception_list");
    ck_assert_int_eq(cJSON_GetArraySize(list), 1);
    const cJSON *ex = cJSON_GetArrayItem(list, 0);
    ck_assert_str_eq(it_str(ex, "type"), "ValueError");
    ck_assert_str_eq(it_str(ex, "value"), "the value was out of range");
    const cJSON *mech = cJSON_GetObjectItemCaseSensitive(ex, "mechanism");
    ck_assert_str_eq(it_str(mech, "type"), "generic");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mech, "handled")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(mech, "synthetic")));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(ex, "stacktrace");
    ck_assert_str_eq(it_str(st, "type"), "raw");
    const cJSON *frames = cJSON_GetObjectItemCaseSensitive(st, "frames");
    int n = cJSON_GetArraySize(frames);
    ck_assert_int_ge(n, 3);
    /* the last frame is the one that raised: the known function, then its caller */
    const cJSON *last = cJSON_GetArrayItem(frames, n - 1), *prev = cJSON_GetArrayItem(frames, n - 2);
    ck_assert_str_eq(it_str(last, "platform"), "native");
    char fn[256];
    resolve(last, 1, fn, sizeof fn);
    ck_assert_msg(strstr(fn, "the_known_failing_function") != NULL, "last frame resolves to %s", fn);
    resolve(prev, 1, fn, sizeof fn);
    ck_assert_msg(strstr(fn, "its_caller") != NULL, "previous frame resolves to %s", fn);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, "in_app")));

    /* $debug_images: the images the frames point into, build ids as readelf reads them */
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(p, "$debug_images");
    ck_assert_int_ge(cJSON_GetArraySize(images), 1);
    int found_self = 0;
    const cJSON *img;
    cJSON_ArrayForEach(img, images) {
        ck_assert_str_eq(it_str(img, "type"), "elf");
        const char *file = it_str(img, "code_file");
        if (!cJSON_GetObjectItemCaseSensitive(img, "code_id")) continue; /* no build id */
        char cmd[1024], line[256];
        snprintf(cmd, sizeof cmd, "readelf -n '%s' | awk '/Build ID/{print $3}'", file);
        ck_assert_int_eq(it_run_line(cmd, line, sizeof line), 0);
        ck_assert_str_eq(it_str(img, "code_id"), line);
        /* debug_id: the first 16 bytes, the first three fields byte-swapped */
        const char *d = it_str(img, "debug_id");
        ck_assert_int_eq((int)strlen(d), 36);
        char exp[40];
        snprintf(exp, sizeof exp, "%c%c%c%c%c%c%c%c-", line[6], line[7], line[4], line[5], line[2],
                 line[3], line[0], line[1]);
        ck_assert_msg(!strncmp(d, exp, 9), "debug_id %s for build id %s", d, line);
        if (!strcmp(file, it_str(last, "module"))) found_self = 1;
        ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(img, "image_size"));
    }
    ck_assert_msg(found_self, "no debug image for %s", it_str(last, "module"));
    cJSON_Delete(events);
    posthog_client_free(g_c);
    it_stop(g_srv);
}
END_TEST

START_TEST(test_caller_supplied_exception_list)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(it_options(srv));
    const char *list =
        "[{\"type\":\"KeyError\",\"value\":\"'x'\",\"mechanism\":{\"type\":\"generic\",\"handled\":"
        "false,\"synthetic\":false},\"stacktrace\":{\"type\":\"raw\",\"frames\":[{\"platform\":"
        "\"python\",\"filename\":\"app.py\",\"function\":\"main\",\"lineno\":3,\"in_app\":true}]}}]";
    posthog_exception_options_t o = {.exception_list_json = list, .level = "fatal",
                                     .fingerprint = "fp-1", .timestamp_ms = 1764000000000LL,
                                     .uuid = "01890a5d-ac96-774b-bcce-b302099a8001"};
    char u[37];
    ck_assert_int_eq(posthog_capture_exception_ex(c, "u2", NULL, NULL, NULL, &o, u), POSTHOG_OK);
    ck_assert_str_eq(u, "01890a5d-ac96-774b-bcce-b302099a8001");
    /* refused, each with a reason */
    posthog_exception_options_t badlevel = {.level = "panic"};
    ck_assert_int_eq(posthog_capture_exception_ex(c, "u", "T", "m", NULL, &badlevel, NULL),
                     POSTHOG_E_INVALID_ARG);
    posthog_exception_options_t badlist = {.exception_list_json = "{\"type\":\"x\"}"};
    ck_assert_int_eq(posthog_capture_exception_ex(c, "u", NULL, NULL, NULL, &badlist, NULL),
                     POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog_capture_exception(c, "u", NULL, "no type", NULL), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_capture_exception(c, "u", "T", "m", "[1]"), POSTHOG_E_INVALID_JSON);
    ck_assert_uint_eq(posthog_get_stat(c, "dropped_invalid"), 4);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *events;
    const cJSON *e = only_exception(srv, &events);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
    ck_assert_str_eq(it_str(p, "$exception_level"), "fatal");
    ck_assert_str_eq(it_str(p, "$exception_fingerprint"), "fp-1");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p, "$debug_images"));
    const cJSON *f0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "$exception_list"), 0),
                "stacktrace"),
            "frames"),
        0);
    ck_assert_str_eq(it_str(f0, "filename"), "app.py");
    ck_assert_str_eq(it_str(e, "uuid"), "01890a5d-ac96-774b-bcce-b302099a8001");
    cJSON_Delete(events);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

/* The event text before_send sees: what goes on the wire. */
static char g_event_text[8192];

static posthog_before_send_result_t keep_text(const char *event_json, posthog_replacement_t *replacement,
                                              void *ud) {
    (void)replacement;
    (void)ud;
    snprintf(g_event_text, sizeof g_event_text, "%s", event_json);
    return POSTHOG_BEFORE_SEND_KEEP;
}

static int occurrences(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* properties_json naming $exception_list / $exception_level /
 * $exception_fingerprint (posthog-python lets a caller's properties replace
 * the SDK's): each key once in the event, the caller's value. They were
 * appended twice (duplicate keys: which one a JSON parser keeps is its own
 * choice). */
START_TEST(test_callers_exception_properties_win_once)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *opt = it_options(srv);
    posthog_options_set_before_send(opt, keep_text, NULL);
    posthog_client_t *c = it_client(opt);
    posthog_exception_options_t o = {
        .exception_list_json = "[{\"type\":\"FromOptions\",\"value\":\"v\"}]",
        .level = "error", .fingerprint = "fp-options"};
    const char *props = "{\"$exception_level\":\"warning\",\"$exception_fingerprint\":\"fp-caller\","
                        "\"$exception_list\":[{\"type\":\"FromProperties\",\"value\":\"w\"}],"
                        "\"k\":1}";
    ck_assert_int_eq(posthog_capture_exception_ex(c, "u", NULL, NULL, props, &o, NULL), POSTHOG_OK);
    ck_assert_int_eq(occurrences(g_event_text, "\"$exception_level\""), 1);
    ck_assert_int_eq(occurrences(g_event_text, "\"$exception_list\""), 1);
    ck_assert_int_eq(occurrences(g_event_text, "\"$exception_fingerprint\""), 1);
    /* and the native path: the caller's level, its own list */
    ck_assert_int_eq(posthog_capture_exception(c, "u", "T", "m", "{\"$exception_level\":\"info\"}"),
                     POSTHOG_OK);
    ck_assert_int_eq(occurrences(g_event_text, "\"$exception_level\""), 1);
    ck_assert_int_eq(occurrences(g_event_text, "\"$exception_list\""), 1);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, 0), "properties");
    ck_assert_str_eq(it_str(p, "$exception_level"), "warning");
    ck_assert_str_eq(it_str(p, "$exception_fingerprint"), "fp-caller");
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "k")), 1);
    ck_assert_str_eq(it_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "$exception_list"), 0),
                            "type"),
                     "FromProperties");
    p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, 1), "properties");
    ck_assert_str_eq(it_str(p, "$exception_level"), "info");
    ck_assert_str_eq(it_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "$exception_list"), 0),
                            "type"),
                     "T");
    cJSON_Delete(events);
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("errors");
    TCase *t = tcase_create("exception");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_native_stack_resolves_to_the_function);
    tcase_add_test(t, test_caller_supplied_exception_list);
    tcase_add_test(t, test_callers_exception_properties_win_once);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return it_run_suite(suite()); }
