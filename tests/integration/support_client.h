/*
 * support_client: shared helpers of the integration tests.
 *
 *  - it_server / it_options / it_client: a local ingestion server and a
 *    client pointed at it (api_key "phc_test", fast retries).
 *  - it_drops_t: a thread-safe collector of drop-callback reports.
 *  - it_requests / it_req_*: the requests the server recorded, parsed.
 *  - it_check_balance: the stats invariant of posthog.h when idle.
 *
 * Helpers that cannot go on fail the current Check test (ck_assert), so
 * they must only be called from the test's own process.
 */
#ifndef IT_SUPPORT_CLIENT_H
#define IT_SUPPORT_CLIENT_H

#include <check.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <posthog/posthog.h>

#include "ingest_harness.h"

#define IT_API_KEY "phc_test"

/* 1 under ThreadSanitizer, which cannot follow a child that starts threads
 * after a multi-threaded fork ("dup thread with used id", exit 66): tests
 * whose forked child starts a thread skip that part under it. */
#if defined(__SANITIZE_THREAD__)
#define IT_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IT_UNDER_TSAN 1
#endif
#endif
#ifndef IT_UNDER_TSAN
#define IT_UNDER_TSAN 0
#endif
/* 1 under AddressSanitizer, whose SEGV handler (chained after the crash
 * handler) reports and exits with status 1 instead of dying of the signal. */
#if defined(__SANITIZE_ADDRESS__)
#define IT_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IT_UNDER_ASAN 1
#endif
#endif
#ifndef IT_UNDER_ASAN
#define IT_UNDER_ASAN 0
#endif

/* ------------------------------------------------------------ server */

/* Starts a server (extra_args as ph_ingest_start, may be NULL); fails the test on error. */
ph_ingest_t *it_server(const char *const *extra_args);
/* Stops a server from it_server (NULL: no-op). Servers a failed test left running are
 * stopped at exit. */
void it_stop(ph_ingest_t *s);
/* Sets the fault script / limits (JSON text); fails the test on error. */
void it_faults(ph_ingest_t *s, const char *json);
/* A numeric member of GET /_control/summary (e.g. "requests", "events"); -1 on error. */
long long it_summary_num(ph_ingest_t *s, const char *member);
/* The "requests" array; never NULL (fails the test). Caller frees. */
cJSON *it_requests(ph_ingest_t *s);
/* The accepted "events" array; never NULL (fails the test). Caller frees. */
cJSON *it_events(ph_ingest_t *s);
/* Waits until the server has seen at least n ingest requests. 0 or -1 on timeout. */
int it_wait_requests(ph_ingest_t *s, int n, int timeout_ms);

/* A TCP port on 127.0.0.1 where nothing listens (bound then closed). */
int it_closed_port(void);

/* ------------------------------------------------------------ client */

/* Options: api_key, host = the server, retry_backoff_ms 20. s may be NULL (no host set). */
posthog_options_t *it_options(ph_ingest_t *s);
/* posthog_options_set that fails the test unless it returns POSTHOG_OK. */
void it_set(posthog_options_t *o, const char *key, const char *value);
void it_set_int(posthog_options_t *o, const char *key, long long value);
/* posthog_client_new that fails the test on NULL. Takes ownership of o. */
posthog_client_t *it_client(posthog_options_t *o);
posthog_stats_t it_stats(const posthog_client_t *c);

/*
 * The stats invariant when the pipeline is idle: `n_ok` capture calls
 * returned POSTHOG_OK and `n_failed` returned an error (capture-time drops).
 * Asserts captured == n_ok, dropped_total == sum(dropped[]) and
 * captured + n_failed == sent + dropped_total.
 */
void it_check_balance(const posthog_client_t *c, uint64_t n_ok, uint64_t n_failed);

/* Runs a suite (takes ownership); EXIT_SUCCESS when every test passed. */
int it_run_suite(Suite *s);

/* Runs a shell command; its first output line into out. 0 when it exited 0. */
int it_run_line(const char *cmd, char *out, size_t cap);
/* The function addr2line names for a native $exception frame ({module,
 * image_addr, instruction_addr}), resolved against the module's file as
 * PostHog symbolicates; caller: the address is a return address (looked up
 * one byte back). 0 ok, -1 when the frame lacks those or the tools fail. */
int it_frame_function(const cJSON *frame, int caller, char *fn, size_t cap);

/* ------------------------------------------------------------ drops */

typedef struct it_drop {
    int reason, status, http_status;
    uint32_t count;
    char *message, *events_json, *event, *distinct_id; /* copies, may be NULL */
} it_drop_t;

typedef struct it_drops {
    pthread_mutex_t mu;
    it_drop_t *items;
    size_t n, cap;
    uint64_t events[POSTHOG_DROP_REASON_COUNT]; /* sum of counts by reason */
    uint64_t total;
} it_drops_t;

it_drops_t *it_drops_new(void);
void it_drops_free(it_drops_t *d);
/* Installs the collector as the drop callback of o. */
void it_drops_attach(posthog_options_t *o, it_drops_t *d);
/* Thread-safe reads. */
size_t it_drops_reports(it_drops_t *d);
uint64_t it_drops_events(it_drops_t *d, int reason);
uint64_t it_drops_total(it_drops_t *d);
/* A copy of report i (caller calls it_drop_clear). Fails the test if out of range. */
it_drop_t it_drops_get(it_drops_t *d, size_t i);
void it_drop_clear(it_drop_t *x);

/* ------------------------------------------------------------ requests */

/* The parsed body of a recorded request (NULL when not JSON). Borrowed. */
const cJSON *it_req_body(const cJSON *req);
/* body.batch (NULL if absent). Borrowed. */
const cJSON *it_req_batch(const cJSON *req);
int it_req_nevents(const cJSON *req);
/* A header's value (lower-case name) or NULL. Borrowed. */
const char *it_req_header(const cJSON *req, const char *name);
int it_req_status(const cJSON *req);
/* A string member of an object, or NULL. Borrowed. */
const char *it_str(const cJSON *obj, const char *name);
/* A string member of obj.properties, or NULL. */
const char *it_prop_str(const cJSON *event, const char *name);

/* Finds the (first) event with obj.properties.<key> == value among an array. */
const cJSON *it_find_event_by_prop(const cJSON *events, const char *key, const char *value);
/* Finds the first event with uuid == uuid. */
const cJSON *it_find_event_by_uuid(const cJSON *events, const char *uuid);

/* ------------------------------------------------------------ formats and time */

/* 1 when s is a canonical lower-case v7 UUID (8-4-4-4-12, version 7, variant 10). */
int it_is_uuid_v7(const char *s);
/* 1 when s is exactly YYYY-MM-DDTHH:MM:SS.mmmZ. */
int it_is_iso_utc_ms(const char *s);
/* Unix ms of such a string, or INT64_MIN when it does not parse. */
int64_t it_iso_ms(const char *s);
/* Clocks in milliseconds. */
int64_t it_mono_ms(void);
int64_t it_wall_ms(void);
void it_sleep_ms(int ms);

/* A malloc()ed string of n copies of ch. */
char *it_repeat(char ch, size_t n);

#endif
