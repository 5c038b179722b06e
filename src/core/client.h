/*
 * client: the posthog_client_t body, shared by client.c (the public API,
 * capture, stats, fork handling) and flusher.c (the background thread).
 *
 * Threads: any number of capturing threads (lock-free, they touch only the
 * queue, atomics and counters), one flusher thread, and callers of
 * flush/shutdown (they wait on `cv`).
 *
 * Lock order: registry_mu (client.c, for fork handling) before c->mu.
 * c->mu guards the fields marked [mu]; it is never held around I/O or
 * user callbacks.
 *
 * fork(): the prepare handler parks each flusher at the top of its loop
 * (fork_park / fl_parked, waiting on park_cv) before the process forks, so
 * the child never inherits a lock the flusher held inside the allocator,
 * libcurl, OpenSSL or zlib. The wait is bounded (PH_FORK_PARK_MS).
 */
#ifndef POSTHOG_CLIENT_H
#define POSTHOG_CLIENT_H

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "common.h"
#include "options.h"
#include "platform.h"
#include "queue.h"
#include "spool.h"

enum { PH_RUNNING = 0, PH_CLOSED = 1 };

/* Longest a fork() waits for a busy flusher to park (client.c). */
#define PH_FORK_PARK_MS 500

typedef struct ph_flusher ph_flusher_t;

typedef struct {
    char *key;    /* raw escaped key */
    size_t klen;
    char *member; /* "key":value */
    size_t mlen;
} ph_member_t;

struct posthog_client {
    posthog_options_t *o;
    ph_queue_t q;

    /* capture-side constants */
    ph_member_t *super;      /* super properties, one per member */
    size_t nsuper;
    char *super_inner;       /* all members joined */
    size_t super_inner_len;
    bool super_has_lib, super_has_lib_version, super_has_groups;
    bool super_has_lift;          /* a key capture v1 lifts (event.h PH_REC_LIFT) */
    uint32_t wake_threshold;      /* queued events that wake an idle flusher */
    uint32_t wake_threshold_busy; /* ... a flusher waiting on the network */

    /* state */
    PH_ALIGNED_CL _Atomic int state;      /* PH_RUNNING / PH_CLOSED */
    _Atomic int need_thread;              /* 1: start the flusher at next capture */
    /* 0: flusher awake; else it sleeps until this many events are queued */
    PH_ALIGNED_CL _Atomic uint32_t sleeping;
    ph_wake_t wake;                       /* what the flusher polls (platform.h) */

    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled when done_pos moves or the flusher exits */
    bool thread_running;      /* [mu] */
    pthread_t thread;         /* [mu] */
    pthread_cond_t park_cv;   /* fork_park / fl_parked changes, flusher exit */
    bool fork_park;           /* [mu] a fork is being prepared: park */
    bool fl_parked;           /* [mu] the flusher is parked */
    uint64_t done_pos;        /* [mu] queue positions below are resolved */
    uint64_t flush_target;    /* [mu] flushes waiting for this position */
    uint64_t wake_at;         /* [mu] lowest target a flush waiter waits for */
    uint32_t waiters;         /* [mu] threads in wait_done */
    uint32_t waiters_resolved; /* [mu] ... of them not waiting for the spool to drain
                                  (posthog_flush_resolved) */
    bool stop;                /* [mu] shutdown requested */
    int64_t stop_deadline;    /* [mu] monotonic ms */
    bool stopping, stopped;   /* [mu] shutdown in progress / done */
    ph_flusher_t *fl;         /* flusher-private; only the flusher thread touches it */

    /* disk spool (NULL without storage_path) */
    ph_spool_t *spool;
    ph_spool_file_t *incoming;   /* [mu] durable-capture files for the flusher */
    /* durable capture group commit */
    pthread_mutex_t dmu;
    pthread_cond_t dcv;
    char **dpend;                /* [dmu] events waiting for the next commit */
    size_t *dpend_len;           /* [dmu] */
    posthog_status_t **dstatus;  /* [dmu] where each waiter wants its result */
    size_t dpend_n, dpend_cap;   /* [dmu] */
    uint64_t dseq_next;          /* [dmu] sequence of the next event to join */
    uint64_t dseq_done;          /* [dmu] events with seq < this are committed */
    bool dcommitting;            /* [dmu] a leader is writing */
    /* crash handler: memory it may use, prepared in advance (crash_buf is
     * non-NULL while it is installed) */
    char *crash_buf;
    size_t crash_cap;
    uint64_t crash_part_bytes; /* largest file it writes */

    /* stats */
    ph_counter_t captured, sent, requests, retries, bytes_raw, bytes_sent;
    ph_counter_t spooled, replayed;
    PH_ALIGNED_CL _Atomic int64_t spool_pending; /* events in files we own */
    ph_counter_t dropped[POSTHOG_DROP_REASON_COUNT];
    ph_counter_t delivery_dropped; /* of those, the delivery side's (posthog_flush) */
    /* posthog_set_network_state: 1 while the application says the network
     * is down (the flusher sends nothing); every "up" bumps net_up_seq, and
     * the flusher skips the waits on the network when it sees it move */
    _Atomic int net_down;
    _Atomic uint64_t net_up_seq;
    ph_counter_t net_down_periods; /* up -> down transitions */
    /* stderr logging without a callback: at most PH_STDERR_PER_S lines a
     * second, the rest counted and reported in the next second's first line */
    _Atomic int64_t log_window_s;
    _Atomic uint32_t log_in_window;
    _Atomic uint64_t log_suppressed;

    /* errors/crash_report.c: the application's crash context */
    _Atomic(void *) crash_ctx;
    /* feature flags (flags/api.c): created at the first flags call */
    _Atomic(struct ph_flags_client *) flags;

    struct posthog_client *next; /* registry */
};

/* Nothing of this client's waits on disk (flush's second condition). */
static inline bool posthog__spool_settled(posthog_client_t *c) {
    return atomic_load_explicit(&c->spool_pending, memory_order_relaxed) <= 0;
}

/*
 * The outcome interface (report.c): how delivery, the spool and capture
 * report what became of events. Nothing below core/ calls into client.c;
 * these and posthog__flusher_start are the only links.
 */
/* Queue positions below `pos` are resolved (delivered, dropped or spooled):
 * moves done_pos and wakes the flush waiters whose condition now holds. */
void posthog__outcome_resolved(posthog_client_t *c, uint64_t pos);
/* Wakes flush waiters when their condition may hold (c->mu held). Only
 * then: a broadcast per batch would cost the waiting thread a futex round
 * trip per batch. */
void posthog__wake_waiters_locked(posthog_client_t *c);

/* A forked child starts its flusher at its first capture or flush. */
void posthog__start_thread_slow(posthog_client_t *c);
static inline void posthog__maybe_start_thread(posthog_client_t *c) {
    /* relaxed: a hint; the decision is re-checked under c->mu */
    if (PH_UNLIKELY(atomic_load_explicit(&c->need_thread, memory_order_relaxed)))
        posthog__start_thread_slow(c);
}

/* Starts the flusher thread (c->mu held by the caller). 0 ok. */
int posthog__flusher_start(posthog_client_t *c);
/* Spool accounting helpers (any thread). */
void posthog__spool_pending_add(posthog_client_t *c, int64_t n);
/* Reports spool losses as drops. */
void posthog__report_spool_loss(posthog_client_t *c, const ph_spool_loss_t *l);
/* Logs (ERROR) the spool directory listings that failed since the last
 * call: files in it may have been missed (stat "spool_scan_errors"). */
void posthog__report_spool_scan(posthog_client_t *c);
/* Hands a file written by a durable capture to the flusher. */
void posthog__spool_incoming(posthog_client_t *c, ph_spool_file_t *f);
/* Crash handler (crash.c). */
#ifndef POSTHOG_NO_CRASH_HANDLER
int posthog__crash_install(posthog_client_t *c);
void posthog__crash_uninstall(posthog_client_t *c);
/* The calling thread gets an alternate signal stack if it has none (once
 * per thread), so that a stack overflow can still run the crash handler. */
extern _Thread_local bool posthog__crash_thread_ready;
void posthog__crash_thread_slow(void);
static inline void posthog__crash_thread_prepare(posthog_client_t *c) {
    if (PH_UNLIKELY(c->crash_buf != NULL) && PH_UNLIKELY(!posthog__crash_thread_ready))
        posthog__crash_thread_slow();
}
#else
/* Built without it (-DPOSTHOG_WITH_CRASH_HANDLER=OFF): crash_handler=1 is
 * refused when set (options.c), so nothing is ever installed. */
static inline int posthog__crash_install(posthog_client_t *c) {
    (void)c;
    return -1;
}
static inline void posthog__crash_uninstall(posthog_client_t *c) { (void)c; }
static inline void posthog__crash_thread_prepare(posthog_client_t *c) { (void)c; }
#endif

/* Wakes the flusher (platform.h: posthog__wake_signal). */
void posthog__wake(posthog_client_t *c);
/* flags/api.c: the client's flags state at free, shutdown and in a forked child */
void posthog__flags_client_free(posthog_client_t *c);
void posthog__flags_shutdown(posthog_client_t *c);
void posthog__flags_fork_child(posthog_client_t *c);
void posthog__flags_client_start(posthog_client_t *c);
/* errors/crash_report.c: the crash report of a fatal signal, written from
 * the crash handler; sent by the next client on the storage_path */
#ifndef POSTHOG_NO_CRASH_HANDLER
void posthog__crash_report_prepare(void);
void posthog__crash_report_write(posthog_client_t *c, int sig, const siginfo_t *info, const void *uctx);
#endif
void posthog__crash_reports_send(posthog_client_t *c);
void posthog__crash_ctx_free(posthog_client_t *c);
/* The properties text with the snapshot's $feature/<key> and
 * $active_feature_flags appended (the given ones win); malloc'd, NULL when
 * properties_json is not an object or out of memory. */
char *posthog__flags_event_props(const struct posthog_flags *f, const char *properties_json);
/* "flags_..." counters for posthog_get_stat; UINT64_MAX for an unknown name */
uint64_t posthog__flags_stat(const posthog_client_t *c, const char *name);
/* Counts a drop and reports it through the callback. Any thread, no lock held. */
void posthog__report_drop(posthog_client_t *c, posthog_drop_reason_t r, uint32_t count,
                          int http_status, const char *msg, const char *events_json,
                          const char *event, const char *distinct_id);
/* The same with the exact status the caller returned. */
void posthog__report_drop_st(posthog_client_t *c, posthog_drop_reason_t r, posthog_status_t st,
                             uint32_t count, int http_status, const char *msg,
                             const char *events_json, const char *event, const char *distinct_id);
/* A capture-time drop: counted, reported, and its status returned (report.c). */
posthog_status_t posthog__drop_at_capture(posthog_client_t *c, posthog_drop_reason_t r,
                                          posthog_status_t st, const char *event,
                                          const char *did);
/* Writes one record to the spool through the group commit (durable.c). */
struct ph_rec;
posthog_status_t posthog__durable_commit(posthog_client_t *c, const struct ph_rec *img,
                                         const char *event, const char *did);

/* fork.c: the registry of live clients and the atfork handlers. */
void posthog__fork_init(void);
void posthog__registry_add(posthog_client_t *c);
void posthog__registry_remove(posthog_client_t *c);
/* (Re)initialises cv and park_cv for timed waits on the monotonic clock (fork.c). */
void posthog__init_conds(posthog_client_t *c);
/* A posthog__mono_ms deadline as a timespec for timed waits on those (client.c). */
struct timespec posthog__abs_deadline(int64_t mono_deadline_ms);

/*
 * User callbacks (log, drop, before_send) run inside a callback frame: a
 * per-thread stack of the clients whose callbacks are running. flush,
 * shutdown and free refuse to run for a client whose callback is on the
 * calling thread's stack: on the flusher thread they would wait for the
 * thread itself (or free the client under it), on a capturing thread they
 * would block or free a capture in progress.
 */
typedef struct ph_cb_frame {
    const posthog_client_t *c;
    struct ph_cb_frame *prev;
} ph_cb_frame_t;
extern _Thread_local ph_cb_frame_t *posthog__cb_top;
static inline void ph_cb_enter(ph_cb_frame_t *f, const posthog_client_t *c) {
    f->c = c;
    f->prev = posthog__cb_top;
    posthog__cb_top = f;
}
static inline void ph_cb_leave(ph_cb_frame_t *f) { posthog__cb_top = f->prev; }
/* A callback of c runs on this thread (maybe under callbacks of others). */
bool posthog__in_callback(const posthog_client_t *c);

/* Logs through the user's callback (nothing without one). */
void posthog__log(posthog_client_t *c, posthog_log_level_t lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
