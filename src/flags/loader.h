/*
 * flags/loader: keeps the flag definitions for local evaluation
 * (flags.md 3.1): GET {host}/flags/definitions?token=<project key>&send_cohorts
 * with Authorization: Bearer <secret_key>, in a background thread of its
 * own, every poll_interval_ms (+-10% jitter), with If-None-Match.
 *
 *   200  the body goes to install(); its ETag is kept (cleared when none)
 *   304  nothing changes (a new ETag is adopted)
 *   401  the key is refused: definitions and ETag cleared, logged (ERROR)
 *   402  quota limited: definitions and ETag cleared, logged (WARN)
 *   403, 429, 5xx, network errors: the last definitions stay, logged (WARN)
 *
 * With storage_path, the last good definitions and their ETag are kept in
 * <storage_path>/flag_definitions (CRC-32, written to a temporary file and
 * renamed): a restarted process installs them at once, and its first poll
 * is a cheap 304 when nothing changed.
 *
 * Threads: the loader thread is the only one that fetches and installs;
 * callers wait (posthog__loader_wait) or ask for a poll now
 * (posthog__loader_reload) through the loader's mutex and condition
 * variable, never on the network. A forked child keeps the parent's
 * definitions and starts its own loader thread at its first flags call.
 */
#ifndef POSTHOG_FLAGS_LOADER_H
#define POSTHOG_FLAGS_LOADER_H

#include "common.h"
#include "options.h"
#include "request.h"

typedef struct ph_loader ph_loader_t;

typedef struct {
    /* Compiles and publishes definitions; 0 ok, else err says why (the
     * previous definitions stay). */
    int (*install)(void *ud, const char *json, size_t len, char *err, size_t errlen);
    /* Removes the definitions (401, 402). */
    void (*clear)(void *ud);
    /* Logs one message. */
    void (*log)(void *ud, int level, const char *msg);
    void *ud;
} ph_loader_sink_t;

typedef struct {
    uint64_t fetches;       /* requests made */
    uint64_t loads;         /* 200s installed */
    uint64_t not_modified;  /* 304s */
    uint64_t failures;      /* everything else */
    int64_t loaded_at_ms;   /* wall clock of the last install or 304; -1 never */
    long last_status;       /* 0: transport error or none yet */
} ph_loader_stats_t;

/* Starts the loader (thread included). NULL when out of memory or the
 * thread cannot start (err says which). */
ph_loader_t *posthog__loader_start(const posthog_options_t *o, ph_req_pool_t *pool,
                                   const ph_loader_sink_t *sink, char *err, size_t errlen);
/* Stops the thread (waits at most for one request's timeout) and frees. */
void posthog__loader_stop(ph_loader_t *l);
/* Waits until definitions were installed once (from disk or the network)
 * or the first fetch failed: 0 when installed, -1 on timeout or failure.
 * timeout_ms < 0 waits for ever. */
int posthog__loader_wait(ph_loader_t *l, int timeout_ms);
/* Asks for a poll now and waits (up to timeout_ms) until it is done: 0 when
 * a poll completed, -1 on timeout. */
int posthog__loader_reload(ph_loader_t *l, int timeout_ms);
void posthog__loader_stats(ph_loader_t *l, ph_loader_stats_t *out);
/* In a forked child: the parent's thread does not exist here; restart it. */
void posthog__loader_fork_child(ph_loader_t *l);

#endif
