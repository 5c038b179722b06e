/*
 * flags/remote: remote evaluation through POST {host}/flags/?v=2
 * (docs/capture-api.md "Feature flags", flags.md section 1).
 *
 * Runs on the caller's thread: one request, plus one retry (by default) on
 * a transport failure, 502 or 504, after 300 ms (doubling for more
 * retries). Each attempt is bounded by feature_flags_request_timeout_ms.
 * Both answer shapes are read: v2 ({"flags": {key: {enabled, variant,
 * reason, metadata, failed}}}) and v1 ({"featureFlags", "featureFlagPayloads"}).
 */
#ifndef POSTHOG_FLAGS_REMOTE_H
#define POSTHOG_FLAGS_REMOTE_H

#include "common.h"
#include "options.h"
#include "request.h"

/* One flag's evaluated value, remote or local. */
typedef struct {
    char *key;
    bool enabled;
    char *variant;       /* NULL: a boolean flag (or disabled) */
    char *payload;       /* the payload as JSON text, NULL when none */
    char *reason;        /* description, e.g. "Matched condition set 1"; NULL unknown */
    int64_t id;          /* -1: unknown */
    int64_t version;     /* -1: unknown */
    int has_experiment;  /* -1 unknown, 0, 1 */
    bool locally_evaluated;
    bool borrowed;       /* key/variant/payload/reason are not this entry's to free
                          * (a snapshot's local results: one block per snapshot) */
} ph_flag_eval_t;

/* $feature_flag_error values (flags.md 2.2), joined with ',' when several. */
enum {
    PH_FERR_ERRORS_WHILE_COMPUTING = 1 << 0,
    PH_FERR_FLAG_MISSING = 1 << 1,
    PH_FERR_QUOTA_LIMITED = 1 << 2,
    PH_FERR_TIMEOUT = 1 << 3,
    PH_FERR_CONNECTION = 1 << 4,
    PH_FERR_UNKNOWN = 1 << 5,
    PH_FERR_API = 1 << 6,          /* api_error_<status> */
    PH_FERR_EVALUATION_FAILED = 1 << 7,
};

typedef struct {
    ph_flag_eval_t *flags;
    size_t n;
    unsigned errors;              /* PH_FERR_* for the whole answer */
    long api_status;              /* with PH_FERR_API */
    char **failed;                /* keys the server marked failed */
    size_t nfailed;
    char *request_id;             /* NULL when none */
    int64_t evaluated_at;         /* ms; -1 when none */
    bool minimal_events;          /* minimalFlagCalledEvents */
    int requests;                 /* HTTP attempts made */
    char detail[320];             /* what went wrong, for the log */
} ph_flags_answer_t;

typedef struct {
    const char *distinct_id;
    const char *groups_json;            /* object text or NULL */
    const char *person_properties_json; /* object text or NULL */
    const char *group_properties_json;  /* object text or NULL */
    const char *const *flag_keys;       /* NULL-terminated, NULL: all */
    const char *device_id;              /* NULL: none */
    bool disable_geoip;
} ph_flags_query_t;

/*
 * Asks the server. Always fills *out (free with posthog__flags_answer_free);
 * failures are in out->errors. Returns 0 when an answer was read, -1 when
 * none (transport, status or body): out->errors then says why.
 */
int posthog__flags_remote(ph_req_pool_t *pool, const posthog_options_t *o, const ph_flags_query_t *q,
                          ph_flags_answer_t *out);
/* Reads an answer body (either shape) into out; 0 ok, -1 not a flags answer.
 * Exposed for the unit tests. */
int posthog__flags_parse_answer(const char *body, size_t len, ph_flags_answer_t *out);
void posthog__flags_answer_free(ph_flags_answer_t *a);
void posthog__flag_eval_free(ph_flag_eval_t *v);
/* "errors_while_computing_flags,timeout" into buf ("" when none). */
void posthog__flags_error_string(unsigned errors, long api_status, char *buf, size_t cap);

#endif
