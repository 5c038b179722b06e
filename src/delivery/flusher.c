/*
 * flusher: the background thread of a client. It drains the queue into
 * the batch builder as fast as records arrive ("drain fast"), seals batches
 * by size, count, age or flush request, and sends them one at a time
 * through the http module ("send at leisure"), retrying in order.
 *
 * With a spool (storage_path): a batch whose retries run out goes to disk
 * and the link is marked down; while it is down, sealed batches go
 * straight to disk and one probe (the oldest spooled batch, no retries)
 * is sent with growing intervals; the first answer of the server brings the
 * link back and spooled files are replayed oldest first, alternating with
 * live batches. With durability=always every batch is written to disk when
 * sealed and removed once the server confirmed it (a 2xx with the
 * protocol's confirmation body; a 3xx or a portal's 2xx page is retried);
 * the parts of a split or partially retried batch get their own files
 * first. At the shutdown deadline what is left goes to disk.
 *
 * Invariants:
 *  - Queue batches are resolved (sent, dropped or spooled) in queue order,
 *    so the position up to which everything is resolved only grows.
 *  - The flusher holds c->mu only to exchange control fields; never
 *    around I/O, compression or user callbacks.
 *  - Sealed batches waiting to be sent are bounded by `pending_max` bytes:
 *    past it the flusher stops draining, the queue fills, and captures
 *    are dropped (counted) instead of memory growing.
 *  - A batch with a file: the file's events are counted in spool_pending
 *    until the batch is delivered or dropped (then the file is removed).
 *  - With the crash handler the queue retains drained records (queue.h):
 *    the ring lets go of them only up to the position below which every
 *    batch is resolved (finish) or safe in a spool file (release_durable),
 *    so a crash can still save every event not yet confirmed. When the
 *    ring is seven eighths full, the flusher writes the oldest batches to
 *    the spool (relieve) until it is three quarters full, so that an
 *    in-flight or retrying batch does not starve the producers of ring
 *    space.
 *
 * Network down (posthog_set_network_state): no request starts, no probe,
 * no replay; sealed batches go to disk as when the link is down (without
 * a spool they wait in memory, up to pending_max); a request in flight
 * that fails meanwhile does not count as an attempt. Every "up" ends the
 * waits on the network (backoff, Retry-After, the probe interval).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "batch.h"
#include "client.h"
#include "event.h"
#include "http.h"
#include "protocol.h"
#include "retry.h"
#include "util.h"

#define DRAIN_CHUNK 2048
#define SPIN_WAIT_MS 1
#define PROBE_FIRST_MS 1000
#define PROBE_MAX_MS 60000
#define ADOPT_EVERY_MS 60000
#define PREFAULT_AHEAD ((uint64_t)4 << 20)
#define RELIEVE_RETRY_MS 1000
#define DEFER_FIRST_MS 1000
#define DEFER_MAX_MS 60000

struct ph_flusher {
    ph_builder_t bld[2];   /* [0] analytics, [1] $ai_* events (their own endpoint) */
    uint64_t first_pos[2]; /* queue position of the first event in bld[i]'s open batch */
    ph_http_t http;
    ph_proto_ctx_t ctx;
    char *url[2];          /* the protocol's endpoints on the host: [0] analytics, [1] AI */
    char sdk_name[65], sdk_version[65];
    ph_batch_t *ready, *ready_tail; /* sealed, in order */
    size_t ready_bytes;
    size_t pending_max;
    uint32_t max_batch_events;
    bool link_down;
    int64_t probe_at;      /* monotonic ms */
    int64_t probe_wait;
    bool replay_turn;      /* alternate replays with live batches */
    int64_t next_adopt;    /* monotonic ms */
    int64_t relieve_at;    /* monotonic ms: no ring relief before (it failed) */
    /* a spool file that failed to load, set aside so newer ones go on */
    ph_spool_file_t *deferred;
    int64_t deferred_until; /* monotonic ms: load it again then */
    int64_t defer_wait;     /* ms, doubles on every failure of it */
    int64_t replay_at;      /* monotonic ms: no replay before (a second file failed) */
    uint64_t net_up_seen;   /* c->net_up_seq when last acted on */
};

/* The application says the network is down (posthog_set_network_state). */
static bool net_down(posthog_client_t *c) {
    return atomic_load_explicit(&c->net_down, memory_order_seq_cst) != 0;
}

/* ---------------------------------------------------------------- helpers */

static void ready_push_back(ph_flusher_t *f, ph_batch_t *b) {
    b->next = NULL;
    if (f->ready_tail) f->ready_tail->next = b;
    else f->ready = b;
    f->ready_tail = b;
    f->ready_bytes += b->body.cap;
}

static void ready_push_front(ph_flusher_t *f, ph_batch_t *b) {
    b->next = f->ready;
    f->ready = b;
    if (!f->ready_tail) f->ready_tail = b;
    f->ready_bytes += b->body.cap;
}

static ph_batch_t *ready_pop(ph_flusher_t *f) {
    ph_batch_t *b = f->ready;
    if (!b) return NULL;
    f->ready = b->next;
    if (!f->ready) f->ready_tail = NULL;
    f->ready_bytes -= b->body.cap;
    b->next = NULL;
    return b;
}

/* The batch's disk copy is no longer needed (delivered or dropped). */
static void forget_file(posthog_client_t *c, ph_batch_t *b) {
    if (!b->file) return;
    posthog__spool_remove(c->spool, b->file);
    b->file = NULL;
    posthog__spool_pending_add(c, -(int64_t)b->count);
}

/* Frees a resolved batch and moves the resolved queue position (batches
 * resolve in queue order: everything before end_pos is resolved now). */
static void finish(posthog_client_t *c, ph_batch_t *b) {
    uint64_t end = b->end_pos;
    posthog__batch_free(b);
    if (end) posthog__queue_release(&c->q, end);
    posthog__outcome_resolved(c, end);
}

static void drop_batch(posthog_client_t *c, ph_batch_t *b, posthog_drop_reason_t r,
                       int http_status, const char *msg) {
    char *events = c->o->drop_fn ? posthog__batch_events_json(b) : NULL;
    posthog__report_drop(c, r, b->count, http_status, msg, events, NULL, NULL);
    free(events);
    forget_file(c, b);
    finish(c, b);
}

/* Appends the batch's events to the spool's segment; NULL on failure
 * (logged). `fresh`: its events were not on disk before (counted as
 * spooled). `sync`: fsynced before it returns (durability=always, and the
 * parts of a batch that was on disk); otherwise within
 * spool_fsync_interval_ms. */
static ph_spool_file_t *write_file(posthog_client_t *c, ph_batch_t *b, bool fresh, bool sync) {
    char *raw;
    const char **ev;
    size_t *len;
    if (posthog__batch_texts(b, &raw, &ev, &len)) return NULL;
    ph_spool_loss_t loss = {0};
    ph_spool_file_t *file = posthog__spool_append(c->spool, ev, len, b->count, sync, &loss);
    int err = errno;
    free(raw);
    free(ev);
    free(len);
    posthog__report_spool_loss(c, &loss);
    if (!file) {
        posthog__log(c, POSTHOG_LOG_ERROR, "spool write of %u events failed: %s", b->count,
                     strerror(err));
        return NULL;
    }
    if (fresh) ph_counter_add(&c->spooled, b->count);
    posthog__spool_pending_add(c, (int64_t)b->count);
    return file;
}

/*
 * `part` holds events of `from` (a half after a 413, the events a v1 answer
 * asked to retry). When `from` has a disk copy, the part gets its own before
 * that copy is removed (forget_file(from) afterwards), so durability=always
 * and replayed files lose nothing to a kill -9 in between. Should the write
 * fail, the part lives in memory only, as without a spool (logged).
 */
static void carry_file(posthog_client_t *c, const ph_batch_t *from, ph_batch_t *part) {
    if (!from->file || part->file) return;
    if (!(part->file = write_file(c, part, false, true)))
        posthog__log(c, POSTHOG_LOG_WARN,
                     "%u spooled events are kept in memory only until delivered", part->count);
}

/* Moves a batch to disk for later (its file if it has one). true when
 * done: the batch is freed and its queue position resolved. */
static bool spool_batch(posthog_client_t *c, ph_batch_t *b) {
    if (!c->spool) return false;
    if (!b->file && !(b->file = write_file(c, b, true, false))) return false;
    posthog__spool_park(c->spool, b->file);
    b->file = NULL;
    finish(c, b);
    return true;
}

/* The unresolved batches in queue order: the one in flight, then the
 * ready list. */
static ph_batch_t *first_unresolved(ph_flusher_t *f) {
    return f->http.busy && f->http.batch ? f->http.batch : f->ready;
}
static ph_batch_t *next_unresolved(ph_flusher_t *f, ph_batch_t *b) {
    return f->http.busy && b == f->http.batch ? f->ready : b->next;
}

/* With retention: the ring lets go of the records of the oldest batches
 * that are on disk (a file each), up to the first one that is not. A
 * replay batch holds no ring space. */
static void release_durable(posthog_client_t *c, ph_flusher_t *f) {
    if (!c->q.retain) return;
    uint64_t pos = 0;
    for (ph_batch_t *b = first_unresolved(f); b; b = next_unresolved(f, b)) {
        if (b->replay) continue;
        if (!b->file) break;
        pos = PH_MAX(pos, b->end_pos);
    }
    if (pos) posthog__queue_release(&c->q, pos);
}

static void seal(posthog_client_t *c, ph_flusher_t *f);

/* With retention, when the ring is seven eighths full (queued plus held
 * records): the oldest unresolved batches (then the open ones, sealed)
 * are written to the spool, as with durability=always (the file is
 * removed on delivery), until it is three quarters full, so the ring can
 * let go of them and the producers keep their room. Only what is needed:
 * every file costs a write and two fsyncs. A write failure waits
 * RELIEVE_RETRY_MS. */
static void relieve(posthog_client_t *c, ph_flusher_t *f, int64_t now) {
    if (!c->q.retain || !c->spool || now < f->relieve_at) return;
    ph_queue_t *q = &c->q;
    if (ph_queue_head(q) - ph_queue_rel(q) <= q->cap / 8 * 7) return;
    for (int pass = 0; pass < 2; pass++) {
        if (pass) seal(c, f); /* what is left is in the open batches */
        for (ph_batch_t *b = first_unresolved(f); b; b = next_unresolved(f, b)) {
            if (ph_queue_head(q) - ph_queue_rel(q) <= q->cap / 4 * 3) return;
            if (b->replay || b->file) continue;
            if (!(b->file = write_file(c, b, true, false))) {
                f->relieve_at = now + RELIEVE_RETRY_MS;
                posthog__log(c, POSTHOG_LOG_WARN,
                             "drained events hold %llu bytes of the queue and could not be "
                             "spooled",
                             (unsigned long long)(ph_queue_tail(q) - ph_queue_rel(q)));
                return;
            }
            release_durable(c, f);
        }
    }
}

static void seal_one(posthog_client_t *c, ph_flusher_t *f, ph_builder_t *bl) {
    uint32_t n = ph_builder_count(bl);
    if (!n) return;
    ph_batch_t *b = posthog__builder_seal(bl);
    if (!b) {
        /* out of memory while compressing: the events are lost, counted */
        ph_batch_t *cur = bl->cur;
        bl->cur = NULL;
        posthog__report_drop(c, POSTHOG_DROP_RETRIES_EXHAUSTED, n, 0,
                             "out of memory while sealing a batch", NULL, NULL, NULL);
        posthog__batch_free(cur);
        posthog__codec_reset(&bl->codec);
        posthog__outcome_resolved(c, ph_queue_tail(&c->q));
        return;
    }
    /* it completes the queue up to the other open batch's first event */
    b->end_pos = ph_queue_tail(&c->q);
    for (int i = 0; i < 2; i++)
        if (ph_builder_count(&f->bld[i])) b->end_pos = PH_MIN(b->end_pos, f->first_pos[i]);
    /* under a memory_budget the compressor exists only while a batch is open */
    if (c->o->memory_budget) posthog__codec_release(&bl->codec);
    if (c->spool && c->o->durability_always) b->file = write_file(c, b, true, true);
    ready_push_back(f, b);
    release_durable(c, f);
}

/* Seals both open batches. The analytics one first: batches are resolved
 * in queue order, and each seal claims every queue position drained so far. */
static void seal(posthog_client_t *c, ph_flusher_t *f) {
    seal_one(c, f, &f->bld[0]);
    seal_one(c, f, &f->bld[1]);
}

static uint32_t open_count(const ph_flusher_t *f) {
    return ph_builder_count(&f->bld[0]) + ph_builder_count(&f->bld[1]);
}

/* Monotonic ms of the oldest event in an open batch (INT64_MAX: none). */
static int64_t open_since(const ph_flusher_t *f) {
    int64_t t = INT64_MAX;
    for (int i = 0; i < 2; i++)
        if (ph_builder_count(&f->bld[i])) t = PH_MIN(t, f->bld[i].opened_mono);
    return t;
}

/* Moves up to `max` records from the queue into batches. Returns how many.
 * now_wall/now_mono: the clocks read together (posthog__builder_add). */
static size_t drain(posthog_client_t *c, ph_flusher_t *f, size_t max, int64_t now_wall,
                    int64_t now_mono) {
    size_t n = 0;
    while (n < max && f->ready_bytes < f->pending_max) {
        size_t len;
        const ph_rec_t *r = posthog__queue_peek(&c->q, &len);
        if (!r) break;
        ph_builder_t *bl = &f->bld[(r->flags & PH_REC_AI) ? 1 : 0];
        size_t jl = ph_rec_json_len_proto(r, bl->proto);
        if (!posthog__builder_fits(bl, jl) || ph_builder_count(bl) >= f->max_batch_events ||
            (c->o->memory_budget && ph_builder_count(&f->bld[bl == &f->bld[0]])))
            seal(c, f); /* under a memory_budget: one open batch (one compressor) at a time */
        int ai = bl == &f->bld[1];
        if (!ph_builder_count(bl)) f->first_pos[ai] = ph_queue_tail(&c->q);
        int rc = posthog__builder_add(bl, r, now_wall, now_mono);
        if (rc == 1) { /* the caller reused a uuid: a batch may hold it once */
            seal(c, f);
            f->first_pos[ai] = ph_queue_tail(&c->q);
            rc = posthog__builder_add(bl, r, now_wall, now_mono);
        }
        if (rc) {
            posthog__report_drop(c, POSTHOG_DROP_TOO_LARGE, 1, 0,
                                 "out of memory adding an event to a batch", NULL, NULL, NULL);
        }
        posthog__queue_pop(&c->q);
        n++;
        if (ph_builder_count(bl) >= f->max_batch_events) seal(c, f);
    }
    return n;
}

/* ---------------------------------------------------------------- replay */

typedef struct {
    ph_builder_t *b;
    int failed;
    uint32_t bad; /* records that are not events (counted corrupt) */
} replay_ctx_t;

static int replay_add(const char *json, size_t len, void *ud) {
    replay_ctx_t *rc = ud;
    /* a file holds one batch: AI events go back to the AI endpoint */
    if (!rc->b->cur && memmem(json, len, "\"event\":\"$ai_", 13)) rc->b->ai = true;
    int r = posthog__builder_add_text(rc->b, json, len);
    if (r == -1) rc->failed = 1;
    else if (r) rc->bad++;
    return rc->failed;
}

/* Largest file replayed as one batch: a batch's events (max_batch_bytes,
 * twice for the other protocol's shape) plus a record header each. A
 * larger one (a durable group commit, another client's settings) is split
 * into parts first. */
static uint64_t replay_max_bytes(const posthog_options_t *o) {
    return 2 * o->max_batch_bytes + (uint64_t)PH_SPOOL_REC_HDR * o->max_batch_size + PH_SPOOL_HDR;
}

/* A file that could not be loaded (read error, out of memory, cannot be
 * split): set aside with a growing wait, so that it is not re-read in a
 * loop and newer files are not stuck behind it. Only one is set aside;
 * with one already, replays pause instead (false: stop loading). */
static bool defer_file(posthog_client_t *c, ph_flusher_t *f, ph_spool_file_t *file, int64_t now) {
    if (!f->deferred) {
        f->defer_wait = f->defer_wait ? PH_MIN(f->defer_wait * 2, DEFER_MAX_MS) : DEFER_FIRST_MS;
        f->deferred = file;
        f->deferred_until = now + f->defer_wait;
        posthog__log(c, POSTHOG_LOG_WARN, "spool file %s could not be loaded: retried in %lld ms",
                     file->path, (long long)f->defer_wait);
        return true;
    }
    posthog__spool_park(c->spool, file);
    f->replay_at = now + DEFER_FIRST_MS;
    return false;
}

/* The set-aside file goes back in line (oldest first). */
static void undefer(posthog_client_t *c, ph_flusher_t *f) {
    if (!f->deferred) return;
    posthog__spool_park(c->spool, f->deferred);
    f->deferred = NULL;
}

/* The oldest spooled file as a batch (NULL when none is left). */
static ph_batch_t *load_replay(posthog_client_t *c, ph_flusher_t *f) {
    int64_t now = posthog__mono_ms();
    if (now < f->replay_at) return NULL;
    ph_spool_file_t *file;
    while ((file = posthog__spool_take(c->spool))) {
        if (file->bytes > replay_max_bytes(c->o)) {
            ph_spool_loss_t loss = {0};
            uint64_t bytes = file->bytes;
            uint32_t promised = file->count;
            /* on success the file is gone (deleted, freed) */
            long good = posthog__spool_split(c->spool, file, c->o->max_batch_bytes, &loss);
            if (good < 0) {
                posthog__report_spool_loss(c, &loss);
                if (defer_file(c, f, file, now)) continue;
                return NULL;
            }
            posthog__log(c, POSTHOG_LOG_INFO, "spool file of %llu bytes split into parts",
                         (unsigned long long)bytes);
            /* the parts hold the intact events; the rest is counted corrupt */
            posthog__spool_pending_add(c, (int64_t)good - (int64_t)promised);
            posthog__report_spool_loss(c, &loss);
            continue; /* its parts are parked: the oldest is taken next */
        }
        ph_builder_t tmp;
        if (posthog__builder_init_like(&tmp, &f->bld[0])) {
            posthog__spool_park(c->spool, file); /* out of memory: a later turn */
            f->replay_at = now + DEFER_FIRST_MS;
            return NULL;
        }
        tmp.max_raw = UINT64_MAX;
        replay_ctx_t rc = {&tmp, 0, 0};
        ph_spool_loss_t loss = {0};
        long good = posthog__spool_read(file, replay_add, &rc, &loss);
        if (good > 0 && rc.bad) {
            loss.corrupt += rc.bad;
            good -= (long)PH_MIN((uint32_t)good, rc.bad);
        }
        ph_batch_t *b = (good > 0 && !rc.failed) ? posthog__builder_seal(&tmp) : NULL;
        posthog__builder_free(&tmp);
        /* out of memory (reading or sealing) or unreadable now: later,
         * newer files first */
        if (rc.failed || good < 0 || (good > 0 && !b)) {
            posthog__batch_free(b);
            if (defer_file(c, f, file, now)) continue;
            return NULL;
        }
        if (!f->deferred) f->defer_wait = 0; /* nothing set aside: start over */
        /* events the file promised but did not hold intact are lost */
        if (file->count > (uint32_t)good)
            posthog__spool_pending_add(c, -(int64_t)(file->count - (uint32_t)good));
        posthog__report_spool_loss(c, &loss);
        if (!b) { /* nothing intact in it */
            posthog__spool_remove(c->spool, file);
            continue;
        }
        file->count = (uint32_t)good;
        b->file = file;
        b->replay = true;
        b->end_pos = 0;
        return b;
    }
    return NULL;
}

static void adopt(posthog_client_t *c, ph_flusher_t *f, int64_t now) {
    f->next_adopt = now + ADOPT_EVERY_MS;
    if (!c->spool) return;
    ph_spool_loss_t loss = {0};
    uint64_t n = posthog__spool_adopt(c->spool, &loss);
    if (n) {
        posthog__spool_pending_add(c, (int64_t)n);
        posthog__log(c, POSTHOG_LOG_INFO, "found %llu spooled events to deliver",
                     (unsigned long long)n);
    }
    posthog__report_spool_scan(c);
    posthog__report_spool_loss(c, &loss);
}

/* ---------------------------------------------------------------- sending */

static void count_attempt(posthog_client_t *c, ph_batch_t *b) {
    ph_counter_add(&c->requests, 1);
    if (b->attempts > 0) ph_counter_add(&c->retries, 1);
    ph_counter_add(&c->bytes_raw, b->raw_len + (b->proto == PH_PROTO_V0 ? 39 : 0));
    ph_counter_add(&c->bytes_sent, b->body.len);
}

/* The request of one attempt: the protocol's body, endpoint and headers
 * (after Content-Type and the codec's Content-Encoding), through the
 * transport. */
static int start_request(ph_flusher_t *f, ph_batch_t *b) {
    const ph_protocol_t *p = ph_protocol(b->proto);
    ph_headers_t h = {.n = 0};
    const char *enc = posthog__codec_encoding(b->codec);
    if (posthog__batch_set_tail(b, posthog__now_ms()) ||
        posthog__headers_add(&h, "Content-Type: application/json") ||
        (enc && posthog__headers_add(&h, "Content-Encoding: %s", enc)) ||
        p->attempt_headers(b, &f->ctx, &h))
        return -1;
    const char *lines[PH_MAX_HEADERS];
    for (int i = 0; i < h.n; i++) lines[i] = h.line[i];
    return posthog__http_start(&f->http, f->url[b->ai], lines, h.n, b);
}

static void start(posthog_client_t *c, ph_flusher_t *f, ph_batch_t *b) {
    if (start_request(f, b)) {
        if (!spool_batch(c, b))
            drop_batch(c, b, POSTHOG_DROP_RETRIES_EXHAUSTED, 0, "could not start the request");
        return;
    }
    count_attempt(c, b);
    b->attempts++;
}

static void link_down(posthog_client_t *c, ph_flusher_t *f, int64_t now) {
    if (!f->link_down) {
        posthog__log(c, POSTHOG_LOG_WARN,
                     "endpoint unreachable: spooling new batches, probing until it is back");
        f->probe_wait = PROBE_FIRST_MS;
    } else {
        f->probe_wait = PH_MIN(f->probe_wait * 2, PROBE_MAX_MS);
    }
    f->link_down = true;
    f->probe_at = now + f->probe_wait;
}

/* Ready batches go to disk, oldest first (without a spool they stay). */
static void spool_ready(posthog_client_t *c, ph_flusher_t *f) {
    while (f->ready) {
        ph_batch_t *b = ready_pop(f);
        if (!spool_batch(c, b)) {
            ready_push_front(f, b);
            break;
        }
    }
}

/* posthog_set_network_state(UP): what waits on the network goes now. */
static void network_up(ph_flusher_t *f, int64_t now) {
    for (ph_batch_t *b = f->ready; b; b = b->next)
        if (b->not_before_ms > now) b->not_before_ms = now;
    if (f->link_down) {
        f->probe_at = now;
        f->probe_wait = PROBE_FIRST_MS / 2; /* a failure waits PROBE_FIRST_MS again */
    }
}

static void try_send(posthog_client_t *c, ph_flusher_t *f, int64_t now) {
    if (f->deferred && now >= f->deferred_until) undefer(c, f);
    if (f->http.busy) return;
    if (net_down(c)) { /* as when the link is down, without probing */
        spool_ready(c, f);
        return;
    }
    if (f->link_down) {
        /* don't hammer a dead link: ready batches go to disk */
        spool_ready(c, f);
        if (now < f->probe_at) return;
        ph_batch_t *b = load_replay(c, f);
        if (!b) b = ready_pop(f);
        if (!b) {
            f->link_down = false; /* nothing to probe with */
            return;
        }
        b->probe = true;
        start(c, f, b);
        return;
    }
    bool live = f->ready && f->ready->not_before_ms <= now;
    bool replay = c->spool && posthog__spool_idle_events(c->spool) > 0;
    ph_batch_t *b = NULL;
    if (replay && (!live || f->replay_turn)) {
        b = load_replay(c, f);
        f->replay_turn = false;
    }
    if (!b && live) {
        b = ready_pop(f);
        f->replay_turn = true;
    }
    if (b) start(c, f, b);
}

static void delivered(posthog_client_t *c, ph_flusher_t *f, ph_batch_t *b, uint32_t n,
                      long status) {
    ph_counter_add(&c->sent, n);
    if (b->replay) ph_counter_add(&c->replayed, n);
    if (b->probe && f->link_down) {
        posthog__log(c, POSTHOG_LOG_INFO, "endpoint reachable again: replaying the spool");
        f->link_down = false;
    }
    posthog__log(c, POSTHOG_LOG_DEBUG, "sent %u events (HTTP %ld)", n, status);
}

/* The server refused these events of b for good (v1 "drop"): one report
 * per distinct details text, with those events. */
static void report_server_drops(posthog_client_t *c, ph_batch_t *b, const ph_results_t *r) {
    char *raw = c->o->drop_fn ? posthog__batch_inflate(b, NULL) : NULL;
    bool *done = calloc(b->count, sizeof *done);
    for (uint32_t i = 0; i < b->count; i++) {
        if (r->outcome[i] != PH_EV_DROP || (done && done[i])) continue;
        const char *d = r->details[i] ? r->details[i] : "";
        uint32_t n = 0;
        ph_buf_t ev;
        posthog__buf_init(&ev, (size_t)1 << 30);
        bool ok = raw && ph_buf_putc(&ev, '[') == 0;
        for (uint32_t j = i; j < b->count; j++) {
            if (r->outcome[j] != PH_EV_DROP || (done && done[j])) continue;
            if (strcmp(r->details[j] ? r->details[j] : "", d)) continue;
            if (!done && j != i) continue; /* out of memory: one report per event */
            if (done) done[j] = true;
            n++;
            if (ok) {
                size_t s0 = b->offsets[j];
                size_t e0 = j + 1 < b->count ? b->offsets[j + 1] - 1 : b->events_end;
                ok = (n > 1 ? ph_buf_putc(&ev, ',') : 0) == 0 &&
                     posthog__buf_append(&ev, raw + s0, e0 - s0) == 0;
            }
        }
        ok = ok && ph_buf_putc(&ev, ']') == 0 && ph_buf_putc(&ev, 0) == 0;
        char msg[320];
        snprintf(msg, sizeof msg, "the server dropped the event: %.256s", *d ? d : "no details");
        posthog__log(c, POSTHOG_LOG_WARN, "%s (%u events)", msg, n);
        posthog__report_drop(c, POSTHOG_DROP_SERVER_DROPPED, n, 200, msg, ok ? ev.data : NULL,
                             NULL, NULL);
        posthog__buf_free(&ev);
    }
    free(done);
    free(raw);
}

/* A v1 2xx: per-event results. Returns true when b was consumed; false when
 * the answer was no results map (then retried like a transient failure). */
static bool on_results(posthog_client_t *c, ph_flusher_t *f, ph_http_result_t *res) {
    ph_batch_t *b = res->batch;
    ph_results_t r;
    const ph_protocol_t *p = ph_protocol(b->proto);
    int rc = p->parse_results(b, res->status, res->body, res->body_len, &r);
    if (rc == -1) {
        snprintf(res->error, sizeof res->error,
                 "HTTP %ld without %s (a proxy or captive portal answered?)", res->status,
                 p->confirmation);
        return false;
    }
    if (rc) { /* out of memory reading the answer: not knowing, resend */
        snprintf(res->error, sizeof res->error, "out of memory reading the results of HTTP %ld",
                 res->status);
        return false;
    }
    if (r.delivered) delivered(c, f, b, r.delivered, res->status);
    if (b->probe) f->link_down = false; /* the server answered */
    if (r.drop) report_server_drops(c, b, &r);
    ph_batch_t *again = NULL;
    if (r.retry) {
        bool *keep = calloc(b->count, sizeof *keep);
        for (uint32_t i = 0; keep && i < b->count; i++) keep[i] = r.outcome[i] == PH_EV_RETRY;
        again = keep ? posthog__batch_subset(&f->bld[b->ai], b, keep) : NULL;
        free(keep);
        if (!again) {
            posthog__report_drop(c, POSTHOG_DROP_RETRIES_EXHAUSTED, r.retry, (int)res->status,
                                 "out of memory building a partial retry", NULL, NULL, NULL);
        }
    }
    uint32_t count = b->count;
    posthog__v1_results_free(&r, count);
    if (again) carry_file(c, b, again);
    forget_file(c, b);
    if (!again) {
        finish(c, b);
        return true;
    }
    again->probe = false;
    b->end_pos = 0; /* the retry batch resolves the queue position */
    posthog__batch_free(b);
    res->batch = again;
    snprintf(res->error, sizeof res->error, "HTTP %ld: %u of %u events to retry", res->status,
             again->count, count);
    return false;
}

/* ": <the server's answer>" for a refusal's message (printable, bounded: a
 * message travels to logs and drop callbacks), or "" without a body. */
static void body_excerpt(char *out, size_t n, const ph_http_result_t *res) {
    size_t o = 0, len = res->body ? res->body_len : 0;
    out[0] = '\0';
    if (!len || n < 8) return;
    out[o++] = ':';
    out[o++] = ' ';
    size_t i = 0;
    for (; i < len && o + 4 < n; i++) {
        unsigned char ch = (unsigned char)res->body[i];
        out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    if (i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void on_result(posthog_client_t *c, ph_flusher_t *f, ph_http_result_t *res) {
    ph_batch_t *b = res->batch;
    char msg[512], answer[320];
    int64_t now = posthog__mono_ms();
    const ph_protocol_t *p = ph_protocol(b->proto);
    bool v1 = b->proto == PH_PROTO_V1;
    ph_outcome_t oc = p->classify(res->status);
    if (p->parse_results && oc == PH_OUTCOME_OK) {
        if (on_results(c, f, res)) return;
        b = res->batch;
        oc = PH_OUTCOME_RETRY;
    }
    if (res->status >= 300 && res->status < 400)
        snprintf(res->error, sizeof res->error,
                 "HTTP %ld: a redirect, not the capture service's answer (a proxy or captive "
                 "portal?); check the host option",
                 res->status);
    if (v1 && res->status == 404)
        snprintf(res->error, sizeof res->error,
                 "HTTP 404 from %s: the host may not serve capture v1; set capture_mode=v0 "
                 "for a self-hosted instance or proxy that only serves /batch/",
                 b->ai ? "/i/v1/ai/events" : "/i/v1/analytics/events");
    switch (oc) {
    case PH_OUTCOME_OK:
        delivered(c, f, b, b->count, res->status);
        forget_file(c, b);
        finish(c, b);
        return;
    case PH_OUTCOME_REJECT:
        if (b->probe) f->link_down = false; /* the server answered: the link is up */
        body_excerpt(answer, sizeof answer, res);
        snprintf(msg, sizeof msg, "server rejected the batch: HTTP %ld%s", res->status, answer);
        posthog__log(c, POSTHOG_LOG_ERROR, "%s (%u events dropped)", msg, b->count);
        drop_batch(c, b, POSTHOG_DROP_REJECTED, (int)res->status, msg);
        return;
    case PH_OUTCOME_TOO_LARGE: {
        if (b->probe) f->link_down = false;
        ph_batch_t *a, *z;
        if (b->count > 1 && posthog__batch_split(&f->bld[b->ai], b, &a, &z) == 0) {
            posthog__log(c, POSTHOG_LOG_WARN, "HTTP %ld for %u events: splitting in halves",
                         res->status, b->count);
            carry_file(c, b, a);
            carry_file(c, b, z);
            forget_file(c, b);
            ready_push_front(f, z);
            ready_push_front(f, a);
            posthog__batch_free(b);
            return;
        }
        if (res->status == 413) {
            snprintf(msg, sizeof msg, "event too large for the server: HTTP 413");
            posthog__log(c, POSTHOG_LOG_ERROR, "%s (%u events dropped)", msg, b->count);
            drop_batch(c, b, POSTHOG_DROP_TOO_LARGE, 413, msg);
        } else {
            body_excerpt(answer, sizeof answer, res);
            snprintf(msg, sizeof msg, "server rejected the event: HTTP %ld%s", res->status, answer);
            posthog__log(c, POSTHOG_LOG_ERROR, "%s (%u events dropped)", msg, b->count);
            drop_batch(c, b, POSTHOG_DROP_REJECTED, (int)res->status, msg);
        }
        return;
    }
    case PH_OUTCOME_RETRY:
        break;
    }
    if (net_down(c)) {
        /* it failed after the application said the network is down: not
         * the endpoint's failure, and not an attempt; it waits for "up" */
        if (b->attempts) b->attempts--;
        b->probe = false;
        b->not_before_ms = now;
        posthog__log(c, POSTHOG_LOG_DEBUG, "%s while the network is down: not counted",
                     res->error);
        ready_push_front(f, b);
        return;
    }
    if (b->probe || b->attempts > c->o->max_retries) {
        b->probe = false;
        if (spool_batch(c, b)) {
            posthog__log(c, POSTHOG_LOG_WARN, "%s: batch kept on disk for later", res->error);
            link_down(c, f, now);
            return;
        }
        snprintf(msg, sizeof msg, "gave up after %u attempts: %s", b->attempts, res->error);
        posthog__log(c, POSTHOG_LOG_ERROR, "%s (%u events dropped)", msg, b->count);
        drop_batch(c, b, POSTHOG_DROP_RETRIES_EXHAUSTED, (int)res->status, msg);
        return;
    }
    int64_t wait = posthog__backoff_ms(b->attempts, c->o->retry_backoff_ms,
                                       c->o->max_retry_wait_ms, res->retry_after_ms);
    posthog__log(c, POSTHOG_LOG_WARN, "%s: retry %u of %u in %lld ms", res->error, b->attempts,
                 c->o->max_retries, (long long)wait);
    b->not_before_ms = now + wait;
    ready_push_front(f, b);
}

/* Seals the open batch; every batch waiting goes to disk or is dropped. */
static void abandon_batches(posthog_client_t *c, ph_flusher_t *f) {
    seal(c, f);
    ph_batch_t *b;
    while ((b = ready_pop(f))) {
        if (!spool_batch(c, b))
            drop_batch(c, b, POSTHOG_DROP_SHUTDOWN, 0, "not delivered before the shutdown deadline");
    }
}

/* Shutdown deadline: what is not delivered goes to disk, or is counted dropped. */
static void abandon_all(posthog_client_t *c, ph_flusher_t *f, uint64_t upto) {
    ph_batch_t *b = posthog__http_abort(&f->http);
    if (b) {
        b->probe = false;
        ready_push_front(f, b);
    }
    abandon_batches(c, f);
    /* Everything still queued below `upto`, waiting for late publishers
     * (a capture between reserve and commit finishes in microseconds):
     * batched for the spool, or only counted without one. */
    f->pending_max = SIZE_MAX;
    int64_t wall = posthog__now_ms(), mono = posthog__mono_ms();
    uint32_t lost = 0;
    while (ph_queue_tail(&c->q) < upto) {
        size_t len;
        if (c->spool) {
            if (!drain(c, f, DRAIN_CHUNK, wall, mono)) sched_yield();
        } else if (posthog__queue_peek(&c->q, &len)) {
            posthog__queue_pop(&c->q);
            lost++;
        } else {
            sched_yield();
        }
    }
    if (lost)
        posthog__report_drop(c, POSTHOG_DROP_SHUTDOWN, lost, 0,
                             "still queued at the shutdown deadline", NULL, NULL, NULL);
    abandon_batches(c, f);
    posthog__queue_release(&c->q, ph_queue_tail(&c->q));
    posthog__outcome_resolved(c, ph_queue_tail(&c->q));
}

/* ---------------------------------------------------------------- loop */

static void flusher_main(posthog_client_t *c, ph_flusher_t *f) {
    const posthog_options_t *o = c->o;
    /* client_new adopted what was on disk; look again every ADOPT_EVERY_MS */
    f->next_adopt = posthog__mono_ms() + ADOPT_EVERY_MS;
    for (;;) {
        int64_t now = posthog__mono_ms(), wall = posthog__now_ms();
        pthread_mutex_lock(&c->mu);
        if (PH_UNLIKELY(c->fork_park)) {
            /* a fork is being prepared (client.c fork_prepare): hold nothing
             * but c->mu, which the waiting cond releases, until it is done */
            c->fl_parked = true;
            pthread_cond_broadcast(&c->park_cv);
            while (c->fork_park) pthread_cond_wait(&c->park_cv, &c->mu);
            c->fl_parked = false;
            now = posthog__mono_ms();
            wall = posthog__now_ms();
        }
        bool stop = c->stop;
        int64_t deadline = c->stop_deadline;
        uint64_t target = c->flush_target, done = c->done_pos;
        pthread_mutex_unlock(&c->mu);
        bool flushing = stop || target > done;
        uint64_t up_seq = atomic_load_explicit(&c->net_up_seq, memory_order_seq_cst);
        bool down = net_down(c);
        if (up_seq != f->net_up_seen) {
            f->net_up_seen = up_seq;
            if (!down) network_up(f, now);
        }

        size_t drained = drain(c, f, DRAIN_CHUNK, wall, now);
        relieve(c, f, now);
        if (c->o->prefault) posthog__queue_prefault(&c->q, PREFAULT_AHEAD);
        uint64_t head = ph_queue_head(&c->q), tail = ph_queue_tail(&c->q);
        /* more: records are waiting and there is room to take them now */
        bool more = drained == DRAIN_CHUNK && f->ready_bytes < f->pending_max;
        bool queue_idle = !more && f->ready_bytes < f->pending_max;
        uint32_t n = open_count(f);
        if (n && queue_idle &&
            (flushing || now - open_since(f) >= (int64_t)o->flush_interval_ms ||
             (n >= o->flush_at && !f->http.busy && !f->ready)))
            seal(c, f);

        if (!f->link_down && now >= f->next_adopt) adopt(c, f, now);
        try_send(c, f, now);
        /* what was spooled lazily is fsynced at most every spool_fsync_interval_ms */
        int64_t sync_in = c->spool ? posthog__spool_tick(c->spool) : INT64_MAX;

        bool idle = !f->http.busy && !f->ready && !open_count(f);
        bool disk_idle =
            !c->spool || f->link_down || down || !posthog__spool_idle_events(c->spool);
        /* idle: every drained record is resolved */
        if (idle) posthog__queue_release(&c->q, tail);
        if (idle && head == tail) posthog__outcome_resolved(c, tail);
        if (stop && idle && disk_idle && tail >= head) break;
        /* network down with a spool: nothing to wait for, it all goes to disk */
        if (stop && (now >= deadline || (down && c->spool))) {
            abandon_all(c, f, head);
            break;
        }

        /* How long may we sleep? */
        int64_t wait = o->flush_interval_ms;
        if (more) wait = 0;
        if (open_count(f))
            wait = PH_MIN(wait, open_since(f) + (int64_t)o->flush_interval_ms - now);
        if (f->ready && !f->http.busy && !f->link_down && !down)
            wait = PH_MIN(wait, f->ready->not_before_ms - now);
        if (f->link_down && !f->http.busy && !down) wait = PH_MIN(wait, f->probe_at - now);
        if (!f->link_down && !f->http.busy && !disk_idle)
            wait = PH_MIN(wait, f->replay_at - now); /* replay next */
        if (f->deferred) wait = PH_MIN(wait, f->deferred_until - now);
        if (sync_in != INT64_MAX) wait = PH_MIN(wait, sync_in);
        if (stop) wait = PH_MIN(wait, deadline - now);
        if (flushing && head != tail) wait = PH_MIN(wait, SPIN_WAIT_MS); /* late publisher */
        if (wait < 0) wait = 0;
        if (wait > 0) {
            /* While a request is in flight, producers wake us less often:
             * draining in larger steps keeps their wake-up syscalls rare. */
            uint32_t th = c->wake_threshold_busy;
            if (!f->http.busy && !f->ready) {
                /* idle: wake when the open batch plus the queue reach flush_at */
                uint32_t open = open_count(f);
                th = open < c->wake_threshold ? c->wake_threshold - open : 1;
            }
            /* seq_cst: Dekker with the producers' seq_cst count increment
             * in queue_reserve; either they see us asleep or we see their
             * record count. */
            atomic_store_explicit(&c->sleeping, th, memory_order_seq_cst);
            if (atomic_load_explicit(&c->q.count, memory_order_seq_cst) >= th) wait = 0;
        }
        ph_http_result_t res;
        if (posthog__http_poll(&f->http, c->wake.rfd, (int)wait, &res)) on_result(c, f, &res);
        atomic_store_explicit(&c->sleeping, 0, memory_order_relaxed);
        posthog__wake_drain(&c->wake);
    }
}

static void flusher_free(ph_flusher_t *f);

static void *flusher_thread(void *arg) {
    posthog_client_t *c = arg;
    ph_flusher_t *f = c->fl;
    posthog__crash_thread_prepare(c);
    flusher_main(c, f);
    undefer(c, f); /* left on disk for a later process */
    flusher_free(f);
    pthread_mutex_lock(&c->mu);
    c->fl = NULL;
    c->thread_running = false;
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->park_cv); /* a fork waiting for us to park */
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* A token fit for a header: printable ASCII without blanks or '/', <= 64. */
static bool sdk_token(const char *v) {
    if (!v || !*v || strlen(v) > 64) return false;
    for (const char *p = v; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '/') return false;
    return true;
}

/* Who the server credits the events to in v1 (it sets $lib/$lib_version
 * from PostHog-Sdk-Info): sdk_name/sdk_version when set (the Python
 * binding), else a $lib/$lib_version super property (the Ruby binding), else
 * posthog-c. */
static void resolve_sdk(ph_flusher_t *f, const posthog_options_t *o) {
    snprintf(f->sdk_name, sizeof f->sdk_name, "posthog-c");
    snprintf(f->sdk_version, sizeof f->sdk_version, "%s", POSTHOG_VERSION_STRING);
    if (o->sdk_name) {
        snprintf(f->sdk_name, sizeof f->sdk_name, "%s", o->sdk_name);
        snprintf(f->sdk_version, sizeof f->sdk_version, "%s",
                 o->sdk_version ? o->sdk_version : "unknown");
        return;
    }
    cJSON *sp = o->super_properties ? cJSON_Parse(o->super_properties) : NULL;
    const cJSON *lib = cJSON_GetObjectItemCaseSensitive(sp, "$lib");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(sp, "$lib_version");
    if (cJSON_IsString(lib) && sdk_token(lib->valuestring)) {
        snprintf(f->sdk_name, sizeof f->sdk_name, "%s", lib->valuestring);
        snprintf(f->sdk_version, sizeof f->sdk_version, "%s",
                 cJSON_IsString(ver) && sdk_token(ver->valuestring) ? ver->valuestring : "unknown");
    }
    cJSON_Delete(sp);
}

static void flusher_free(ph_flusher_t *f) {
    posthog__builder_free(&f->bld[0]);
    posthog__builder_free(&f->bld[1]);
    posthog__http_free(&f->http);
    free(f->url[0]);
    free(f->url[1]);
    free(f);
}

int posthog__flusher_start(posthog_client_t *c) {
    ph_flusher_t *f = calloc(1, sizeof *f);
    if (!f) return -1;
    const posthog_options_t *o = c->o;
    f->max_batch_events = o->max_batch_size;
    f->pending_max = (size_t)o->pending_bytes; /* the budget's split: options.c */
    ph_proto_t proto = o->capture_v0 ? PH_PROTO_V0 : PH_PROTO_V1;
    const ph_protocol_t *p = ph_protocol(proto);
    resolve_sdk(f, o);
    f->ctx = (ph_proto_ctx_t){o->api_key, f->sdk_name, f->sdk_version};
    ph_codec_kind_t codec = (ph_codec_kind_t)o->compression;
    int level = (int)(codec == PH_CODEC_ZSTD     ? o->zstd_level
                      : codec == PH_CODEC_BROTLI ? o->brotli_level
                                                 : o->gzip_level);
    bool ok = true;
    for (int ai = 0; ai < 2 && ok; ai++) {
        size_t n = strlen(o->host) + strlen(p->path[ai]) + 1;
        ok = (f->url[ai] = malloc(n)) != NULL;
        if (ok) snprintf(f->url[ai], n, "%s%s", o->host, p->path[ai]);
    }
    for (int ai = 0; ai < 2; ai++)
        ok = ok && posthog__builder_init(&f->bld[ai], proto, codec, level, o->api_key,
                                         o->historical_migration, ai, o->max_batch_bytes) == 0;
    for (int ai = 0; ai < 2 && ok; ai++) posthog__codec_limit(&f->bld[ai].codec, o->codec_bytes);
    /* the hook transport signals completions on the write end (a pipe's
     * differs from the end the flusher polls) */
    if (!ok || posthog__http_init(&f->http, o, c->wake.wfd, c)) {
        flusher_free(f);
        return -1;
    }
    f->net_up_seen = atomic_load(&c->net_up_seq);
    c->fl = f;
    pthread_attr_t at;
    int arc = pthread_attr_init(&at);
    /* an explicit stack: the default (RLIMIT_STACK, often 8 MiB) reserves
     * more address space than a small device may give (ulimit -v) */
    if (!arc) arc = pthread_attr_setstacksize(&at, o->thread_stack_size);
    if (arc || pthread_create(&c->thread, &at, flusher_thread, c)) {
        if (!arc) pthread_attr_destroy(&at);
        flusher_free(f);
        c->fl = NULL;
        return -1;
    }
    pthread_attr_destroy(&at);
    c->thread_running = true;
    return 0;
}
