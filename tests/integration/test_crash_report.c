/*
 * Crash reports: a child process with crash_handler=1 and a crash context
 * captures events while PostHog is unreachable, then dies of SIGSEGV (or
 * abort()) in a known function. The next client on the same storage_path
 * sends exactly one fatal $exception (mechanism signalhandler, handled
 * false) whose stack, resolved with addr2line, names the crashing function,
 * with the crash context's distinct_id and properties; the saved events are
 * delivered too; a third start sends nothing more.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_client.h"

static char g_dir[64];

/* Whether some frame of the stack resolves to `fn`. */
static int stack_names(const cJSON *frames, const char *fn) {
    const cJSON *f;
    int i = 0, n = cJSON_GetArraySize(frames);
    cJSON_ArrayForEach(f, frames) {
        char name[256];
        i++;
        if (it_frame_function(f, i != n, name, sizeof name) == 0 && strstr(name, fn)) return 1;
    }
    return 0;
}

__attribute__((noinline)) static void crash_by_null_write(volatile int *p) {
    *p = 42;
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void crash_by_abort(void) {
    abort();
}

/* Recurses until the stack is gone: the handler runs on its alternate stack. */
__attribute__((noinline)) static int crash_by_overflow(volatile char *prev, int depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    if (depth < 0) return frame[0]; /* never: the recursion stays a recursion */
    int r = crash_by_overflow(frame, depth + 1);
    __asm__ volatile("" ::: "memory");
    return r + frame[511];
}

static void child(const char *how) {
    posthog_options_t *o = it_options(NULL);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", it_closed_port());
    it_set(o, "host", host);
    it_set(o, "storage_path", g_dir);
    it_set(o, "crash_handler", "1");
    it_set(o, "flush_at", "1000");
    it_set(o, "log_level", "none");
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) _exit(3);
    if (posthog_set_crash_context(c, "crash-user", "{\"build\":\"1.2.3\"}") != POSTHOG_OK) _exit(4);
    for (int i = 0; i < 20; i++) posthog_capture(c, "crash-user", "before_crash", NULL);
    if (!strcmp(how, "segv")) crash_by_null_write(NULL);
    else if (!strcmp(how, "overflow")) crash_by_overflow(NULL, 0);
    else crash_by_abort();
    _exit(5);
}

static void crash_and_report(const char *how, int want_sig, const char *fn) {
    if (IT_UNDER_TSAN) return; /* the crashing child starts a flusher: see support_client.h */
    snprintf(g_dir, sizeof g_dir, "/tmp/ph_crashrep_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) child(how);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg((WIFSIGNALED(status) && WTERMSIG(status) == want_sig) ||
                      (IT_UNDER_ASAN && WIFEXITED(status) && WEXITSTATUS(status) == 1),
                  "child status %d", status);

    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = it_options(srv);
    it_set(o, "storage_path", g_dir);
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    cJSON *ev = it_events(srv);
    int exceptions = 0, before = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ev) {
        const char *name = it_str(e, "event");
        if (!strcmp(name, "before_crash")) before++;
        if (strcmp(name, "$exception")) continue;
        exceptions++;
        ck_assert_str_eq(it_str(e, "distinct_id"), "crash-user");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
        ck_assert_str_eq(it_str(p, "$exception_level"), "fatal");
        ck_assert_str_eq(it_str(p, "build"), "1.2.3");
        const cJSON *ex = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "$exception_list"), 0);
        ck_assert_str_eq(it_str(ex, "type"), want_sig == SIGSEGV ? "SIGSEGV" : "SIGABRT");
        const cJSON *mech = cJSON_GetObjectItemCaseSensitive(ex, "mechanism");
        ck_assert_str_eq(it_str(mech, "type"), "signalhandler");
        ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(mech, "handled")));
        const cJSON *frames =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ex, "stacktrace"), "frames");
        ck_assert_msg(stack_names(frames, fn), "no frame resolves to %s", fn);
        ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "$debug_images")), 1);
    }
    ck_assert_int_eq(exceptions, 1);
    ck_assert_int_eq(before, 20); /* every saved event too (test_crash.c: in depth) */
    cJSON_Delete(ev);
    posthog_client_free(c);

    /* reported once: a third start sends no $exception */
    ph_ingest_t *srv2 = it_server(NULL);
    o = it_options(srv2);
    it_set(o, "storage_path", g_dir);
    c = it_client(o);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    ck_assert_int_eq(cJSON_GetArraySize(ev = it_events(srv2)), 0);
    cJSON_Delete(ev);
    posthog_client_free(c);
    it_stop(srv2);
    it_stop(srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_segv_reported_once) { crash_and_report("segv", SIGSEGV, "crash_by_null_write"); }
END_TEST

START_TEST(test_abort_reported_once) { crash_and_report("abort", SIGABRT, "crash_by_abort"); }
END_TEST

START_TEST(test_stack_overflow_reported_once)
{
    if (IT_UNDER_ASAN) return; /* ASan reports the overflow itself, without our handler's stack */
    crash_and_report("overflow", SIGSEGV, "crash_by_overflow");
}
END_TEST

START_TEST(test_crash_context_checked)
{
    posthog_client_t *c = it_client(it_options(NULL));
    ck_assert_int_eq(posthog_set_crash_context(c, "u", "[1]"), POSTHOG_E_INVALID_JSON);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(posthog_set_crash_context(c, big, NULL), POSTHOG_E_TOO_LARGE);
    ck_assert_int_eq(posthog_set_crash_context(c, "u", "{\"a\":1}"), POSTHOG_OK);
    ck_assert_int_eq(posthog_set_crash_context(c, NULL, NULL), POSTHOG_OK);
    posthog_client_free(c);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("crash_report");
    TCase *t = tcase_create("crash");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_segv_reported_once);
    tcase_add_test(t, test_abort_reported_once);
    tcase_add_test(t, test_stack_overflow_reported_once);
    tcase_add_test(t, test_crash_context_checked);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return it_run_suite(suite()); }
