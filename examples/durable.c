/*
 * durable: events that survive network outages, restarts and crashes.
 *
 * With storage_path, what cannot be delivered (retries exhausted, endpoint
 * down, left at shutdown) is kept in that directory and delivered by the
 * next client that opens it; posthog_capture_durable returns only once its
 * event is fsync'ed there. Run it twice against a server that is down the
 * first time, then up: the second run delivers the first run's events.
 *
 *   ./durable http://127.0.0.1:8000 /var/lib/myapp/posthog-spool
 *   ./durable http://127.0.0.1:8000 /var/lib/myapp/posthog-spool offline
 *
 * "offline": the application knows the device has no network (its OS said
 * so) and tells the client with posthog_set_network_state: no request is
 * tried, no retry used up, the events go to disk, and the next run (or a
 * posthog_set_network_state(c, POSTHOG_NETWORK_UP) once the OS reports the
 * network back) delivers them at once.
 *
 * Exit status: 0 when every event was delivered or is safe on disk.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <posthog/posthog.h>

static void on_log(posthog_log_level_t level, const char *message, void *user_data) {
    (void)user_data;
    if (level >= POSTHOG_LOG_INFO) fprintf(stderr, "posthog: %s\n", message);
}

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "offline"))) {
        fprintf(stderr, "usage: %s HOST_URL SPOOL_DIR [offline]\n", argv[0]);
        return 2;
    }
    posthog_options_t *o = posthog_options_new();
    const char *opts[][2] = {
        {"api_key", "phc_example"},   {"host", argv[1]},      {"storage_path", argv[2]},
        {"durability", "failures"},   {"crash_handler", "1"}, {"max_retries", "1"},
        {"shutdown_timeout_ms", "2000"},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        posthog_status_t st = posthog_options_set(o, opts[i][0], opts[i][1]);
        if (st != POSTHOG_OK) {
            fprintf(stderr, "option %s: %s\n", opts[i][0], posthog_strerror(st));
            posthog_options_free(o);
            return 1;
        }
    }
    posthog_options_set_log(o, on_log, NULL);
    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err); /* takes o */
    if (!c) {
        fprintf(stderr, "posthog_client_new: %s\n", err);
        return 1;
    }
    if (argc == 4) posthog_set_network_state(c, POSTHOG_NETWORK_DOWN);

    /* a purchase must never be lost: this returns once it is on disk */
    posthog_status_t st =
        posthog_capture_durable(c, "user-42", "purchase", "{\"amount\":19.99,\"currency\":\"EUR\"}");
    printf("durable capture: %s\n", posthog_strerror(st));
    /* ordinary events: queued in memory, spooled only if they cannot be sent */
    for (int i = 0; i < 10; i++) posthog_capture_json(c, "user-42", "page_view", "{\"page\":\"/\"}");

    /* every event delivered, or at least safe on disk: returns at once
     * while the endpoint is down, the events spooled (what the bindings'
     * sync_mode waits for) */
    posthog_status_t rs = posthog_flush_resolved(c, 30000);
    printf("flush (delivered or on disk): %s\n", posthog_strerror(rs));
    posthog_status_t fs = posthog_flush(c, 3000); /* times out while the endpoint is down */
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    printf("flush: %s; captured %" PRIu64 ", sent %" PRIu64 " (%" PRIu64 " replayed from disk), "
           "on disk %" PRIu64 " events / %" PRIu64 " bytes, dropped %" PRIu64 "\n",
           posthog_strerror(fs), s.captured, s.sent, s.replayed, s.spool_pending, s.spool_bytes,
           s.dropped_total);
    /* what is still undelivered at the deadline goes to the spool, not away */
    posthog_status_t ss = posthog_shutdown(c, -1);
    printf("shutdown: %s\n", posthog_strerror(ss));
    posthog_client_free(c);
    return st == POSTHOG_OK && ss == POSTHOG_OK ? 0 : 1;
}
