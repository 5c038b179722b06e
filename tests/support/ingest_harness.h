/*
 * ingest_harness: drive the local ingestion server (tools/ingest-server)
 * from Check tests.
 *
 *   ph_ingest_t *srv = ph_ingest_start(NULL);
 *   ... point the client at ph_ingest_url(srv), capture, flush ...
 *   ck_assert_int_eq(ph_ingest_wait_events(srv, 3, 5000), 0);
 *   cJSON *events = ph_ingest_events(srv);   // [ {...}, {...}, {...} ]
 *   cJSON_Delete(events);
 *   ph_ingest_stop(srv);
 *
 * Each ph_ingest_start() spawns its own server process on 127.0.0.1 with an
 * ephemeral port, so tests (and Check's forked test processes) never share
 * state. The server binary is PH_INGEST_SERVER_PATH (set by CMake), or the
 * PH_INGEST_SERVER environment variable when set. All functions talk to the
 * server's /_control API with libcurl, block until answered, and are
 * thread-compatible (one ph_ingest_t per thread, or external locking).
 * Returned cJSON trees are owned by the caller (cJSON_Delete).
 *
 * The same server speaks capture v0 (POST /batch/ ...) and capture v1
 * (POST /i/v1/analytics/events, /i/v1/ai/events); point the client at
 * ph_ingest_url() for either. Per-event v1 verdicts are fault-script steps:
 *   ph_ingest_set_faults(srv, "{\"script\":[{\"verdicts\":[{\"match\":{\"index\":0},"
 *                             "\"result\":\"retry\"}]}]}");
 * (tools/ingest-server/README.md, "Fault script").
 */
#ifndef PH_INGEST_HARNESS_H
#define PH_INGEST_HARNESS_H

#include <cjson/cJSON.h>

typedef struct ph_ingest ph_ingest_t;

/* Spawns the server with "--host 127.0.0.1 --port 0 --port-file <tmp>
 * --quiet" followed by extra_args (NULL-terminated array, borrowed; NULL
 * for none), e.g. {"--api-key", "phc_test", "--no-store", NULL}, and waits
 * (up to 10 s) until GET /_health answers. NULL on failure (the reason is
 * printed to stderr). */
ph_ingest_t *ph_ingest_start(const char *const *extra_args);

/* "http://127.0.0.1:PORT" (no trailing slash); valid until ph_ingest_stop. */
const char *ph_ingest_url(const ph_ingest_t *s);
int ph_ingest_port(const ph_ingest_t *s);

/* POST /_control/faults with the given JSON text (borrowed), for example
 * "{\"script\":[{\"status\":503},{\"status\":429,\"retry_after\":\"2\"}]}".
 * Replaces the fault script. 0 on success, -1 on error. */
int ph_ingest_set_faults(ph_ingest_t *s, const char *json);

/* The "requests" array of GET /_control/requests (every ingest request in
 * arrival order, each with "body" as parsed JSON). Caller frees. NULL on error. */
cJSON *ph_ingest_requests(ph_ingest_t *s);
/* The "events" array of GET /_control/events (accepted events in order). */
cJSON *ph_ingest_events(ph_ingest_t *s);
/* The GET /_control/summary object (requests, accepted_requests, events,
 * unique_uuids, duplicate_uuids, wire_bytes, body_bytes, gzip_requests,
 * status_counts{...}). Caller frees. NULL on error. */
cJSON *ph_ingest_summary(ph_ingest_t *s);

/* The GET /_control/faults object (remaining "script" steps and the limits).
 * Caller frees. NULL on error. */
cJSON *ph_ingest_faults(ph_ingest_t *s);

/* Waits until at least n ingest requests (any protocol, any outcome) have
 * been answered. 0 when reached, -1 on timeout or error. */
int ph_ingest_wait_requests(ph_ingest_t *s, int n, int timeout_ms);

/* Waits until at least n events have been accepted. 0 when reached,
 * -1 on timeout or error. Polls the summary every 20 ms. */
int ph_ingest_wait_events(ph_ingest_t *s, int n, int timeout_ms);

/* POST /_control/reset: clears records, counters, fault script and limits
 * set through the control API, and everything of the feature-flag endpoints
 * (records, scripts, default, definitions, ETag, secret key). 0 on success,
 * -1 on error. */
int ph_ingest_reset(ph_ingest_t *s);

/* Sends SIGTERM and waits (up to 5 s, then SIGKILL) for the process; frees s.
 * Returns the server's exit status (0 for a clean stop), -1 if it had to be
 * killed or failed. NULL is a no-op returning 0. */
int ph_ingest_stop(ph_ingest_t *s);

/* ---- feature flags (tools/ingest-server/README.md, "Feature flags") ----
 *
 *   ph_ingest_set_flags(srv, "{\"responses\":[{\"status\":502},"
 *                            "{\"body\":{\"featureFlags\":{\"beta\":true}}}]}");
 *   ... the client calls POST <url>/flags/?v=2 (502, then the flags) ...
 *   cJSON *reqs = ph_ingest_flags_requests(srv);  // 2 records, "body" parsed
 *
 * Requests to the flag endpoints are recorded apart from ingest requests
 * (they are not in ph_ingest_requests() or the summary). */

/* POST /_control/flags with the given JSON text (borrowed):
 * {"responses": [answer, ...], "default": answer}, each answer
 * {"status": 200..599, "body": <JSON, or a string sent as is>, "headers":
 * {"X-Name": "value"}, "delay_ms": 0..600000, "hang": true|false}. Answers
 * are consumed one per POST /flags request, then the default answers
 * (without one: 200 {"featureFlags":{},"featureFlagPayloads":{},
 * "errorsWhileComputingFlags":false}). A key left out keeps its setting.
 * 0 on success, -1 on error (invalid JSON text is refused with a 400 that
 * names the problem). */
int ph_ingest_set_flags(ph_ingest_t *s, const char *json);

/* The "requests" array of GET /_control/flags/requests: every request to
 * /flags or /flags/ in arrival order, each {"seq", "time_ms" (arrival, ms
 * since the epoch), "method", "path", "query", "headers" {lower-case name:
 * value}, "body" (parsed JSON, or null and "body_text" with the raw text),
 * "status" (0 for a hang), "delay_ms", "hang"}. Caller frees. NULL on error. */
cJSON *ph_ingest_flags_requests(ph_ingest_t *s);

/* POST /_control/flags/definitions with the given JSON text (borrowed):
 * {"body": <definitions JSON or string>, "etag": "W/\"abc\"" ("" none, null
 * automatic), "secret_key": "phs_..." (null: no check), "responses": [answer,
 * ...], "delay_ms": N}. GET /flags/definitions (also with a trailing slash,
 * and /api/feature_flag/local_evaluation[/]) then answers the scripted
 * answers first, then 400 without a "token" query parameter, 401 when the
 * secret key is set and "Authorization: Bearer <key>" does not carry it, 304
 * when If-None-Match holds the current ETag, else 200 with the body and the
 * ETag. Without a body: {"flags":[],"group_type_mapping":{},"cohorts":{}}.
 * A key left out keeps its setting. 0 on success, -1 on error. */
int ph_ingest_set_definitions(ph_ingest_t *s, const char *json);

/* The "requests" array of GET /_control/flags/definitions/requests, records
 * as ph_ingest_flags_requests(). Caller frees. NULL on error. */
cJSON *ph_ingest_definitions_requests(ph_ingest_t *s);

#endif
