/*
 * report: public strings (status, drop reasons), logging, drop reports and
 * the spool counters: the narrow "outcome" interface through which the
 * flusher, the spool and the capture path report what became of events.
 * Any thread; no lock is held while user callbacks run.
 */
#include "client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
    case POSTHOG_E_NO_STORAGE: return "durable capture needs the storage_path option";
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

void posthog__log(posthog_client_t *c, posthog_log_level_t lvl, const char *fmt, ...) {
    if (!c->o->log_fn || (lvl == POSTHOG_LOG_DEBUG && !c->o->debug)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ph_cb_frame_t fr;
    ph_cb_enter(&fr, c);
    c->o->log_fn(lvl, msg, c->o->log_ud);
    ph_cb_leave(&fr);
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

void posthog__wake(posthog_client_t *c) {
    uint64_t one = 1;
    ssize_t w = write(c->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, the flusher will wake */
}

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
