/*
 * fork: the registry of live clients and the atfork handlers (see the
 * fork() note in client.h and posthog.h).
 */
#include "client.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* ---------------------------------------------------------------- registry, fork */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static posthog_client_t *registry;

/* Timed waits compute deadlines with posthog__abs_deadline (platform.h). */
void posthog__init_conds(posthog_client_t *c) {
    posthog__cond_init_mono(&c->cv);
    posthog__cond_init_mono(&c->park_cv);
}

/*
 * Before the fork, every flusher is parked at the top of its loop, where it
 * holds no lock of its own nor of the allocator, libcurl, OpenSSL or zlib:
 * a child would otherwise inherit such a lock held by a thread it does not
 * have, and deadlock on its first use (glibc's malloc is fork-safe;
 * sanitizer allocators, other mallocs and OpenSSL 3's global locks are
 * not). A flusher is between wake-ups almost always, so this costs two
 * context switches; one busy in a long user callback or fsync delays the
 * fork at most PH_FORK_PARK_MS, after which the fork goes ahead unparked.
 * A fork from the flusher thread itself (in a callback) parks nothing of
 * its own client.
 */
static void fork_prepare(void) {
    pthread_mutex_lock(&registry_mu);
    int64_t deadline = posthog__mono_ms() + PH_FORK_PARK_MS;
    for (posthog_client_t *c = registry; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        if (!c->thread_running || pthread_equal(c->thread, pthread_self())) continue;
        c->fork_park = true;
        posthog__wake(c);
        struct timespec ts = posthog__abs_deadline(deadline);
        while (c->thread_running && !c->fl_parked)
            if (pthread_cond_timedwait(&c->park_cv, &c->mu, &ts) == ETIMEDOUT) break;
    }
}

static void fork_parent(void) {
    for (posthog_client_t *c = registry; c; c = c->next) {
        c->fork_park = false;
        pthread_cond_broadcast(&c->park_cv);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

/*
 * In the child only this thread exists. The parent's queued events stay
 * the parent's: the child forgets them (fresh zero pages), abandons the
 * flusher state it inherited (its curl handles share the parent's
 * sockets, so they are never used nor cleaned up here) and starts its own
 * flusher at its first capture. Counters restart at zero.
 */
static void fork_child(void) {
    posthog__rand_fork_child();
    posthog__spool_fork_child(NULL);
    for (posthog_client_t *c = registry; c; c = c->next) {
        posthog__queue_reset(&c->q);
        c->fl = NULL;
        c->thread_running = false;
        c->done_pos = 0;
        c->flush_target = 0;
        c->wake_at = UINT64_MAX;
        c->waiters = 0;
        c->waiters_resolved = 0;
        c->fork_park = false;
        c->fl_parked = false;
        /* their waiters (flush callers, the parked flusher) are the parent's */
        posthog__init_conds(c);
        /* a primitive of its own: the inherited one is shared with the
         * parent, whose writes would wake this flusher and whose flusher
         * would swallow this one's signals (kept when no new one opens) */
        ph_wake_t w;
        if (posthog__wake_open(&w) == 0) {
            posthog__wake_close(&c->wake);
            c->wake = w;
        }
        atomic_store(&c->sleeping, 0);
        /* A shutdown in progress on another thread of the parent has no
         * thread here to finish it: the child has nothing of the parent's
         * to deliver, so it is done (else a shutdown or free in the child
         * would wait for ever for `stopped`). */
        if (c->stopping) c->stopped = true;
        bool alive = !c->stop && !c->stopped;
        atomic_store(&c->need_thread, alive && !c->o->disabled ? 1 : 0);
        ph_counter_t *cs[] = {&c->captured, &c->sent, &c->requests,
                              &c->retries,  &c->bytes_raw, &c->bytes_sent};
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) atomic_store(&cs[i]->v, 0);
        for (int i = 0; i < POSTHOG_DROP_REASON_COUNT; i++) atomic_store(&c->dropped[i].v, 0);
        atomic_store(&c->spooled.v, 0);
        atomic_store(&c->net_down_periods.v, 0); /* net_down stays: the device's state */
        atomic_store(&c->replayed.v, 0);
        atomic_store(&c->spool_pending, 0);
        /* durable capture: the parent's waiters do not exist here */
        pthread_mutex_init(&c->dmu, NULL);
        pthread_cond_init(&c->dcv, NULL);
        c->dpend_n = 0;
        c->dcommitting = false;
        c->dseq_next = c->dseq_done = 0;
        posthog__spool_fork_child(c->spool);
        posthog__flags_fork_child(c);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

static void atfork_init(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void posthog__fork_init(void) {
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    pthread_once(&atfork_once, atfork_init);
}

void posthog__registry_add(posthog_client_t *c) {
    pthread_mutex_lock(&registry_mu);
    c->next = registry;
    registry = c;
    pthread_mutex_unlock(&registry_mu);
}

void posthog__registry_remove(posthog_client_t *c) {
    pthread_mutex_lock(&registry_mu);
    for (posthog_client_t **p = &registry; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
}

