/*
 * report: public strings (status, drop reasons), logging, drop reports and
 * the spool counters: the narrow "outcome" interface through which the
 * flusher, the spool and the capture path report what became of events.
 * Any thread; no lock is held while user callbacks run.
 */
#include "client.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- misc API */

const char *posthog_version(void) { return POSTHOG_VERSION_STRING; }

void *posthog_malloc(size_t n) { return malloc(n ? n : 1); }

void posthog_free(void *p) { free(p); }

const char *posthog_strerror(posthog_status_t s) {
    switch (s) {
    case POSTHOG_OK: return "ok";
    case POSTHOG_E_INVALID_ARG: return "invalid argument";
    case POSTHOG_E_INVALID_EVENT: return "invalid event: empty event name or distinct_id";
    case POSTHOG_E_INVALID_UTF8: return "string is not valid UTF-8";
    case POSTHOG_E_INVALID_JSON: return "properties are not a valid JSON object";
    case POSTHOG_E_TOO_LARGE: return "event larger than max_event_bytes";
    case POSTHOG_E_QUEUE_FULL: return "queue full: event dropped";
    case POSTHOG_E_SHUTDOWN: return "client is shut down";
    case POSTHOG_E_TIMEOUT: return "timed out";
    case POSTHOG_E_NOMEM: return "out of memory";
    case POSTHOG_E_UNKNOWN_OPTION: return "unknown option";
    case POSTHOG_E_BAD_OPTION_VALUE: return "invalid option value";
    case POSTHOG_E_NO_API_KEY: return "no api_key set (option api_key or POSTHOG_API_KEY)";
    case POSTHOG_E_DISABLED: return "client is disabled";
    case POSTHOG_E_DROPPED: return "event dropped by before_send";
    case POSTHOG_E_THREAD: return "could not start the flusher thread";
    case POSTHOG_E_HTTP: return "HTTP delivery failed";
    case POSTHOG_E_STORAGE: return "the spool directory could not be written";
#ifdef POSTHOG_NO_SPOOL
    case POSTHOG_E_NO_STORAGE:
        return "durable capture needs the disk spool, which this build does not have (configured "
               "with -DPOSTHOG_WITH_SPOOL=OFF)";
#else
    case POSTHOG_E_NO_STORAGE: return "durable capture needs the storage_path option";
#endif
    case POSTHOG_E_UNDELIVERED:
        return "flushed, but events were dropped instead of delivered (see the drop callback)";
    case POSTHOG_E_INTERNAL: return "internal error";
    case POSTHOG_E_IN_CALLBACK:
        return "not allowed inside a log, drop or before_send callback of the same client "
               "(flush, shutdown and free must be called from outside its callbacks)";
    }
    return "unknown status";
}

static const char *const drop_names[POSTHOG_DROP_REASON_COUNT] = {
    "queue_full", "invalid",      "too_large", "rejected", "retries_exhausted",
    "before_send", "shutdown",    "storage_full", "expired", "corrupt", "server_dropped"};

const char *posthog_drop_reason_name(posthog_drop_reason_t r) {
    return (unsigned)r < POSTHOG_DROP_REASON_COUNT ? drop_names[r] : "unknown";
}

static const posthog_status_t drop_status[POSTHOG_DROP_REASON_COUNT] = {
    POSTHOG_E_QUEUE_FULL, POSTHOG_E_INVALID_EVENT, POSTHOG_E_TOO_LARGE, POSTHOG_E_HTTP,
    POSTHOG_E_HTTP,       POSTHOG_E_DROPPED,       POSTHOG_E_SHUTDOWN,  POSTHOG_E_STORAGE,
    POSTHOG_E_STORAGE,    POSTHOG_E_STORAGE,       POSTHOG_E_HTTP};

/* The least severe level logged: log_level when set; else debug with
 * debug=1, info for a callback (as before log_level), warn for stderr. */
static int min_level(const posthog_options_t *o) {
    if (o->log_level_set) return o->log_level;
    if (o->debug) return POSTHOG_LOG_DEBUG;
    return o->log_fn ? POSTHOG_LOG_INFO : POSTHOG_LOG_WARN;
}

/* Lines a second a client writes to stderr at most: a failure repeated for
 * every event must not flood the application's stderr nor slow it down. */
#define PH_STDERR_PER_S 10

/* Whether this line may go to stderr now (approximate under races: a bound,
 * not an exact quota). */
static bool stderr_allow(posthog_client_t *c) {
    int64_t now = posthog__mono_ms() / 1000;
    int64_t w = atomic_load(&c->log_window_s);
    if (now != w && atomic_compare_exchange_strong(&c->log_window_s, &w, now)) {
        atomic_store(&c->log_in_window, 0);
        uint64_t n = atomic_exchange(&c->log_suppressed, 0);
        if (n) {
            char line[128];
            snprintf(line, sizeof line, "libposthog: warning: %llu more messages suppressed\n",
                     (unsigned long long)n);
            fputs(line, stderr);
        }
    }
    if (atomic_fetch_add(&c->log_in_window, 1) < PH_STDERR_PER_S) return true;
    atomic_fetch_add(&c->log_suppressed, 1);
    return false;
}

void posthog__log(posthog_client_t *c, posthog_log_level_t lvl, const char *fmt, ...) {
    if ((int)lvl < min_level(c->o)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->o->log_fn) {
        ph_cb_frame_t fr;
        ph_cb_enter(&fr, c);
        c->o->log_fn(lvl, msg, c->o->log_ud);
        ph_cb_leave(&fr);
        return;
    }
    /* no callback: an application that hears nothing when every event fails
     * is worse off than one that must silence a logger (log_level=none).
     * One fputs per line: stdio's lock keeps lines of threads apart. */
    if (!stderr_allow(c)) return;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[1100];
    snprintf(line, sizeof line, "libposthog: %s: %s\n", names[lvl & 3], msg);
    fputs(line, stderr);
}

void posthog__report_drop_st(posthog_client_t *c, posthog_drop_reason_t r, posthog_status_t st,
                             uint32_t count, int http_status, const char *msg,
                             const char *events_json, const char *event, const char *distinct_id) {
    ph_counter_add(&c->dropped[r], count);
    if (!c->o->drop_fn) return;
    posthog_drop_info_t info = {(int32_t)r, (int32_t)st, count,       http_status,
                                msg,        events_json, event,       distinct_id};
    ph_cb_frame_t fr;
    ph_cb_enter(&fr, c);
    c->o->drop_fn(&info, c->o->drop_ud);
    ph_cb_leave(&fr);
}

void posthog__report_drop(posthog_client_t *c, posthog_drop_reason_t r, uint32_t count,
                          int http_status, const char *msg, const char *events_json,
                          const char *event, const char *distinct_id) {
    /* every delivery-side drop comes through here (capture-time ones through
     * posthog__drop_at_capture): what posthog_flush compares */
    ph_counter_add(&c->delivery_dropped, count);
    posthog__report_drop_st(c, r, drop_status[r], count, http_status, msg, events_json, event,
                            distinct_id);
}

/* A capture-time drop: counted, reported, and its status returned. */
posthog_status_t posthog__drop_at_capture(posthog_client_t *c, posthog_drop_reason_t r,
                                        posthog_status_t st, const char *event,
                                        const char *did) {
    posthog__report_drop_st(c, r, st, 1, 0, posthog_strerror(st), NULL, event, did);
    return st;
}

posthog_status_t posthog_drop_event(posthog_client_t *c, posthog_drop_reason_t reason,
                                    const char *event, const char *distinct_id,
                                    const char *message) {
    if (!c || (reason != POSTHOG_DROP_INVALID && reason != POSTHOG_DROP_TOO_LARGE &&
               reason != POSTHOG_DROP_BEFORE_SEND))
        return POSTHOG_E_INVALID_ARG;
    posthog_status_t st = drop_status[reason];
    posthog__report_drop_st(c, reason, st, 1, 0, message ? message : posthog_strerror(st), NULL,
                            event, distinct_id);
    return st;
}

void posthog__spool_pending_add(posthog_client_t *c, int64_t n) {
    /* relaxed: a statistic; flush waits re-read it under c->mu after a broadcast */
    atomic_fetch_add_explicit(&c->spool_pending, n, memory_order_relaxed);
}

void posthog__report_spool_loss(posthog_client_t *c, const ph_spool_loss_t *l) {
    if (l->own_evicted) posthog__spool_pending_add(c, -(int64_t)l->own_evicted);
    if (l->evicted_size)
        posthog__report_drop(c, POSTHOG_DROP_STORAGE_FULL, l->evicted_size, 0,
                             "spool over max_storage_bytes: oldest events evicted", NULL, NULL,
                             NULL);
    if (l->evicted_age)
        posthog__report_drop(c, POSTHOG_DROP_EXPIRED, l->evicted_age, 0,
                             "spooled events older than max_storage_age_s discarded", NULL, NULL,
                             NULL);
    if (l->corrupt)
        posthog__report_drop(c, POSTHOG_DROP_CORRUPT, l->corrupt, 0,
                             "corrupt or torn records skipped in the spool", NULL, NULL, NULL);
}

void posthog__spool_incoming(posthog_client_t *c, ph_spool_file_t *f) {
    posthog__spool_park(c->spool, f);
    posthog__wake(c);
}

void posthog__wake(posthog_client_t *c) { posthog__wake_signal(&c->wake); }

void posthog__wake_waiters_locked(posthog_client_t *c) {
    if (c->waiters && c->done_pos >= c->wake_at &&
        (c->waiters_resolved || posthog__spool_settled(c))) {
        c->wake_at = UINT64_MAX; /* the woken re-register what they still need */
        pthread_cond_broadcast(&c->cv);
    }
}

void posthog__outcome_resolved(posthog_client_t *c, uint64_t pos) {
    pthread_mutex_lock(&c->mu);
    if (pos > c->done_pos) c->done_pos = pos;
    posthog__wake_waiters_locked(c);
    pthread_mutex_unlock(&c->mu);
}

void posthog__report_spool_scan(posthog_client_t *c) {
    int err;
    uint64_t total;
    if (c->spool && posthog__spool_scan_failures(c->spool, &err, &total))
        posthog__log(c, POSTHOG_LOG_ERROR,
                     "spool directory %s could not be listed: %s; spooled events in it may be "
                     "missed until a listing succeeds (%llu failed listings, stat "
                     "spool_scan_errors)",
                     c->spool->dir, strerror(err), (unsigned long long)total);
}
