/*
 * before_send: inspect, edit or drop every event before it is queued.
 *
 * The callback strips the "email" property from every event (the rest of
 * the event stays byte for byte as captured, numbers included) and drops
 * the events named "debug_ping". It never allocates or frees anything: the
 * replacement belongs to the library, and the callback only says what to
 * do with the event (KEEP, REPLACE or DROP).
 *
 *   POSTHOG_API_KEY=phc_... ./before_send          send to PostHog (POSTHOG_HOST or US cloud)
 *   ./before_send http://127.0.0.1:8000            send to a local ingestion server
 *
 * Exit status: 0 when the edited event was sent and the other one dropped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <posthog/posthog.h>

/* Runs on the capturing thread, inside posthog_capture*: keep it short. */
static posthog_before_send_result_t strip_email(const char *event_json,
                                                posthog_replacement_t *replacement,
                                                void *user_data) {
    (void)user_data;
    /* a real application would parse event_json; the name is enough here */
    if (strstr(event_json, "\"event\":\"debug_ping\"")) return POSTHOG_BEFORE_SEND_DROP;
    if (!strstr(event_json, "\"email\"")) return POSTHOG_BEFORE_SEND_KEEP;
    /* the replacement starts as the event; removing a property edits it */
    posthog_status_t st = posthog_replacement_remove_property(replacement, "email");
    if (st != POSTHOG_OK) {
        fprintf(stderr, "before_send: %s\n", posthog_strerror(st));
        return POSTHOG_BEFORE_SEND_DROP; /* never send what we could not clean */
    }
    return POSTHOG_BEFORE_SEND_REPLACE;
}

static void on_log(posthog_log_level_t level, const char *message, void *user_data) {
    (void)user_data;
    if (level >= POSTHOG_LOG_WARN) fprintf(stderr, "posthog: %s\n", message);
}

int main(int argc, char **argv) {
    const char *local_host = argc > 1 ? argv[1] : NULL;
    posthog_options_t *o = posthog_options_new();
    if (!o) return 1;
    posthog_options_set_log(o, on_log, NULL);
    posthog_options_set_before_send(o, strip_email, NULL);
    if (local_host && (posthog_options_set(o, "host", local_host) != POSTHOG_OK ||
                       (!getenv("POSTHOG_API_KEY") &&
                        posthog_options_set(o, "api_key", "phc_before_send_example") !=
                            POSTHOG_OK))) {
        fprintf(stderr, "bad host %s\n", local_host);
        posthog_options_free(o);
        return 1;
    }
    char err[256];
    posthog_client_t *client = posthog_client_new(o, err, sizeof err); /* takes `o` */
    if (!client) {
        fprintf(stderr, "posthog_client_new: %s\n", err);
        return 1;
    }

    int failed = 0;
    posthog_status_t st = posthog_capture_json(
        client, "user-42", "signed_up",
        "{\"email\":\"ada@example.com\",\"plan\":\"pro\",\"account_id\":9007199254740993}");
    if (st != POSTHOG_OK) {
        fprintf(stderr, "capture signed_up: %s\n", posthog_strerror(st));
        failed = 1;
    }
    st = posthog_capture_json(client, "user-42", "debug_ping", NULL);
    if (st != POSTHOG_E_DROPPED) { /* before_send dropped it, as it should */
        fprintf(stderr, "capture debug_ping: %s\n", posthog_strerror(st));
        failed = 1;
    }
    st = posthog_flush(client, 10000);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "flush: %s\n", posthog_strerror(st));
        failed = 1;
    }
    posthog_stats_t s;
    if (posthog_get_stats(client, &s) == POSTHOG_OK) {
        printf("captured=%" PRIu64 " sent=%" PRIu64 " dropped by before_send=%" PRIu64 "\n",
               s.captured, s.sent, s.dropped[POSTHOG_DROP_BEFORE_SEND]);
        if (s.sent != 1 || s.dropped[POSTHOG_DROP_BEFORE_SEND] != 1 || s.dropped_total != 1)
            failed = 1;
    }
    posthog_client_free(client);
    return failed;
}
