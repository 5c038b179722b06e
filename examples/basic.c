/*
 * basic: the smallest complete use of libposthog.
 *
 * Creates a client, captures one event with typed properties, flushes,
 * prints the counters and shuts down, checking every status code.
 *
 *   POSTHOG_API_KEY=phc_... ./basic                send to PostHog (POSTHOG_HOST or US cloud)
 *   ./basic http://127.0.0.1:8000                  send to a local ingestion server
 *   ./basic --disabled                             no network at all: disabled=1
 *
 * Exit status: 0 when every call succeeded and nothing was dropped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <posthog/posthog.h>

/* Runs on the flusher thread (or the capturing thread): keep it short. */
static void on_log(posthog_log_level_t level, const char *message, void *user_data) {
    (void)user_data;
    if (level >= POSTHOG_LOG_WARN) fprintf(stderr, "posthog: %s\n", message);
}

static int set_option(posthog_options_t *o, const char *key, const char *value) {
    char why[256];
    posthog_status_t st = posthog_options_set_ex(o, key, value, why, sizeof why);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "%s\n", why); /* names the key, the value and what is allowed */
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int disabled = argc > 1 && strcmp(argv[1], "--disabled") == 0;
    const char *local_host = argc > 1 && !disabled ? argv[1] : NULL;

    posthog_options_t *o = posthog_options_new();
    if (!o) return 1;
    posthog_options_set_log(o, on_log, NULL);
    int bad = 0;
    if (disabled) bad |= set_option(o, "disabled", "1");
    if (local_host) {
        /* A local server accepts any non-empty key. */
        bad |= set_option(o, "host", local_host);
        if (!getenv("POSTHOG_API_KEY")) bad |= set_option(o, "api_key", "phc_basic_example");
    }
    if (bad) {
        posthog_options_free(o);
        return 1;
    }

    char err[256];
    posthog_client_t *client = posthog_client_new(o, err, sizeof err); /* takes `o` */
    if (!client) {
        fprintf(stderr, "posthog_client_new: %s\n", err);
        return 1;
    }

    /* Typed properties: the builder copies everything, free it when done. */
    posthog_props_t *props = posthog_props_new();
    if (!props) {
        posthog_client_free(client);
        return 1;
    }
    posthog_status_t st = POSTHOG_OK;
    if (st == POSTHOG_OK) st = posthog_props_set_string(props, "plan", "pro");
    if (st == POSTHOG_OK) st = posthog_props_set_int(props, "seats", 12);
    if (st == POSTHOG_OK) st = posthog_props_set_double(props, "mrr", 499.5);
    if (st == POSTHOG_OK) st = posthog_props_set_bool(props, "trial", 0);
    if (st == POSTHOG_OK) st = posthog_props_set_json(props, "tags", "[\"b2b\",\"eu\"]");
    if (st != POSTHOG_OK) fprintf(stderr, "properties: %s\n", posthog_strerror(st));

    int failed = st != POSTHOG_OK;
    st = posthog_capture(client, "user-42", "subscription_started", props);
    posthog_props_free(props);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "capture: %s\n", posthog_strerror(st));
        failed = 1;
    }

    /* Blocks until everything captured so far is delivered or dropped, and
     * says which: POSTHOG_E_UNDELIVERED when events were dropped meanwhile. */
    posthog_flush_result_t fr;
    st = posthog_flush_ex(client, 10000, &fr);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "flush: %s (%" PRIu64 " delivered, %" PRIu64 " dropped)\n",
                posthog_strerror(st), fr.delivered, fr.dropped);
        failed = 1;
    }

    posthog_stats_t s;
    if (posthog_get_stats(client, &s) == POSTHOG_OK) {
        printf("libposthog %s%s: captured=%" PRIu64 " sent=%" PRIu64 " requests=%" PRIu64
               " dropped=%" PRIu64 "\n",
               posthog_version(), disabled ? " (disabled)" : "", s.captured, s.sent, s.requests,
               s.dropped_total);
        for (int r = 0; r < POSTHOG_DROP_REASON_COUNT; r++)
            if (s.dropped[r])
                printf("  dropped %s: %" PRIu64 "\n",
                       posthog_drop_reason_name((posthog_drop_reason_t)r), s.dropped[r]);
        if (s.dropped_total) failed = 1;
    }

    st = posthog_shutdown(client, 5000);
    if (st != POSTHOG_OK) {
        fprintf(stderr, "shutdown: %s\n", posthog_strerror(st));
        failed = 1;
    }
    posthog_client_free(client);
    return failed ? 1 : 0;
}
