/*
 * examples/transport_publish and examples/transport_broker together: the
 * publisher's transport hook sends every batch as a frame on a unix socket,
 * the broker relays it to the local ingestion server and returns the
 * answer. Every event arrives exactly once, also when the server first
 * answers 503 and 429 (the answers travel back through the broker and the
 * library retries as over HTTP).
 */
#include <check.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_client.h"
#include "support_spool.h"

extern char **environ;

#ifndef PH_EXAMPLE_BROKER
#define PH_EXAMPLE_BROKER ""
#define PH_EXAMPLE_PUBLISH ""
#endif

/* argv run directly, or under PH_EXAMPLE_RUNNER (the cross stage's
 * emulator command, space-separated, e.g. "qemu-arm -L /"). */
static pid_t spawn(char *const argv[]) {
    char *runner = getenv("PH_EXAMPLE_RUNNER") ? strdup(getenv("PH_EXAMPLE_RUNNER")) : NULL;
    char *full[16];
    int n = 0;
    for (char *save = NULL, *w = runner ? strtok_r(runner, " ", &save) : NULL; w && n < 8;
         w = strtok_r(NULL, " ", &save))
        full[n++] = w;
    for (int i = 0; argv[i] && n < 15; i++) full[n++] = argv[i];
    full[n] = NULL;
    pid_t pid;
    ck_assert_int_eq(posix_spawnp(&pid, full[0], NULL, NULL, full, environ), 0);
    free(runner);
    return pid;
}

static int wait_exit(pid_t pid) {
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(every_event_once_through_the_broker) {
    if (getenv("PH_UNDER_EMULATOR") && !getenv("PH_EXAMPLE_RUNNER")) {
        printf("SKIP every_event_once_through_the_broker: under an emulator the example programs "
               "need its runner (PH_EXAMPLE_RUNNER, set by tests/CMakeLists.txt for cross builds)\n");
        return;
    }
    ph_ingest_t *s = it_server(NULL);
    if (_i) it_faults(s, "{\"script\":[{\"status\":503},{\"status\":429,\"retry_after\":\"1\"}]}");
    char *dir = it_tmp_dir("ph-broker");
    char sock[512];
    snprintf(sock, sizeof sock, "%s/broker.sock", dir);
    char upstream[128];
    snprintf(upstream, sizeof upstream, "%s", ph_ingest_url(s));
    char *bargv[] = {PH_EXAMPLE_BROKER, sock, upstream, NULL};
    pid_t broker = spawn(bargv);
    struct stat st;
    for (int i = 0; i < 500 && stat(sock, &st); i++) it_sleep_ms(10);
    ck_assert_msg(stat(sock, &st) == 0, "the broker did not listen on %s", sock);
    const char *who = _i ? "broker-faults" : "broker";
    char *pargv[] = {PH_EXAMPLE_PUBLISH, sock, "2500", (char *)who, NULL};
    ck_assert_int_eq(wait_exit(spawn(pargv)), 0);
    kill(broker, SIGTERM);
    ck_assert_int_eq(wait_exit(broker), 0);
    it_assert_exactly_once(s, who, 2500);
    ck_assert_int_eq(it_summary_num(s, "duplicate_uuids"), 0);
    if (_i) ck_assert_int_ge(it_summary_num(s, "requests"), 3);
    it_stop(s);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void) {
    if (!*PH_EXAMPLE_BROKER) {
        fprintf(stderr, "examples not built: skipped\n");
        return 77;
    }
    Suite *s = suite_create("transport_example");
    TCase *t = tcase_create("transport_example");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, every_event_once_through_the_broker, 0, 2);
    suite_add_tcase(s, t);
    return it_run_suite(s);
}
