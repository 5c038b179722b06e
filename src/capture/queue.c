/*
 * queue: see queue.h for the design and invariants.
 * Memory orders: the consumer's zeroing of released bytes happens-before a
 * producer's writes to them through rel (release in pop / release, acquire
 * in reserve); a producer's payload writes happen-before the consumer reads
 * them through the header word (release in commit, acquire in peek).
 */
#include "queue.h"

#include <sys/mman.h>

#include "platform.h" /* PH_HAVE_MADV_POPULATE_WRITE */

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

#define HDR 8u

static inline _Atomic uint64_t *hdr_at(ph_queue_t *q, uint64_t pos) {
    return (_Atomic uint64_t *)(void *)(q->buf + pos % q->cap);
}

int posthog__queue_init(ph_queue_t *q, size_t budget, uint32_t max_count) {
    memset(q, 0, sizeof *q);
    q->cap = (budget + 7) & ~(size_t)7;
    q->max_count = max_count;
    void *m = mmap(NULL, q->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -1;
    q->buf = m;
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->rel, 0);
    atomic_init(&q->keep, 0);
    atomic_init(&q->frozen, 0);
    atomic_init(&q->count, 0);
    return 0;
}

void posthog__queue_destroy(ph_queue_t *q) {
    if (q->buf) munmap(q->buf, q->cap);
    q->buf = NULL;
}

void posthog__queue_reset(ph_queue_t *q) {
    /* Replace the pages with fresh zero pages: the parent's records vanish
     * from the child without being touched (or copied). */
    void *m = mmap(q->buf, q->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                   -1, 0);
    if (m == MAP_FAILED) memset(q->buf, 0, q->cap);
    atomic_store(&q->head, 0);
    atomic_store(&q->tail, 0);
    atomic_store(&q->rel, 0);
    atomic_store(&q->keep, 0);
    atomic_store(&q->frozen, 0);
    atomic_store(&q->count, 0);
    q->populated = 0;
}

void *posthog__queue_reserve(ph_queue_t *q, size_t n, ph_qslot_t *slot, uint64_t *count_after) {
    uint64_t need = (n + HDR + 7) & ~(uint64_t)7;
    if (need > q->cap / 2) return NULL;
    /* seq_cst: pairs with the flusher's seq_cst store of its sleeping flag
     * (Dekker: one of the two sees the other's write). */
    uint64_t c = atomic_fetch_add_explicit(&q->count, 1, memory_order_seq_cst) + 1;
    if (c > q->max_count) {
        atomic_fetch_sub_explicit(&q->count, 1, memory_order_relaxed);
        return NULL;
    }
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint64_t pad;
    for (;;) {
        /* acquire: pairs with the release store of rel in pop / release,
         * so the consumer's zeroing is visible before we write */
        uint64_t t = atomic_load_explicit(&q->rel, memory_order_acquire);
        uint64_t p = h % q->cap;
        pad = p + need > q->cap ? q->cap - p : 0;
        if (h + pad + need - t > q->cap) {
            atomic_fetch_sub_explicit(&q->count, 1, memory_order_relaxed);
            return NULL;
        }
        /* seq_cst: ordered against the shutdown's seq_cst store of the
         * client state (see client.c: a capture either lands before the
         * shutdown's snapshot of head or sees the client closed). */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + pad + need,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    if (pad) {
        /* release: pairs with the acquire load in peek */
        atomic_store_explicit(hdr_at(q, h), (pad << 32) | PH_Q_PAD | PH_Q_COMMIT,
                              memory_order_release);
        h += pad;
    }
    slot->hdr = q->buf + h % q->cap;
    slot->len = need;
    *count_after = c;
    return slot->hdr + HDR;
}

void posthog__queue_commit(ph_queue_t *q, ph_qslot_t *slot, unsigned flags) {
    (void)q;
    /* release: publishes the payload; pairs with the acquire load in peek */
    atomic_store_explicit((_Atomic uint64_t *)(void *)slot->hdr,
                          (slot->len << 32) | PH_Q_COMMIT | flags, memory_order_release);
}

static void zero_range(ph_queue_t *q, uint64_t from, uint64_t to) {
    if (to <= from) return;
    uint64_t p = from % q->cap, n = to - from;
    uint64_t first = PH_MIN(n, q->cap - p);
    memset(q->buf + p, 0, first);
    if (n > first) memset(q->buf, 0, n - first);
}

/* Consumes the record at t of len bytes: frees it at once, or (retention)
 * only moves tail. */
static void consume(ph_queue_t *q, uint64_t t, uint64_t len) {
    if (q->retain) {
        /* the bytes stay as they are until posthog__queue_release */
        atomic_store_explicit(&q->tail, t + len, memory_order_release);
        return;
    }
    memset(q->buf + t % q->cap, 0, len);
    atomic_store_explicit(&q->tail, t + len, memory_order_release);
    /* release: pairs with the acquire load of rel in reserve */
    atomic_store_explicit(&q->rel, t + len, memory_order_release);
}

void posthog__queue_release(ph_queue_t *q, uint64_t pos) {
    if (!q->retain) return;
    uint64_t r = atomic_load_explicit(&q->rel, memory_order_relaxed); /* own variable */
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (pos > t) pos = t;
    if (pos <= r) return;
    /* seq_cst, both: Dekker with posthog__queue_freeze. Either the crash
     * handler sees the new keep (and never reads the bytes zeroed below),
     * or we see frozen and zero nothing. */
    if (pos > atomic_load_explicit(&q->keep, memory_order_relaxed))
        atomic_store_explicit(&q->keep, pos, memory_order_seq_cst);
    if (atomic_load_explicit(&q->frozen, memory_order_seq_cst)) return;
    zero_range(q, r, pos);
    /* release: pairs with the acquire load of rel in reserve */
    atomic_store_explicit(&q->rel, pos, memory_order_release);
}

const void *posthog__queue_peek(ph_queue_t *q, size_t *len) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed); /* own variable */
        /* retained records fill the whole ring: the bytes at tail are the
         * oldest of them, not a new record (else they are zero or new) */
        if (q->retain && t - atomic_load_explicit(&q->rel, memory_order_relaxed) >= q->cap)
            return NULL;
        /* acquire: pairs with the release store in commit */
        uint64_t w = atomic_load_explicit(hdr_at(q, t), memory_order_acquire);
        if (w == 0) return NULL;
        uint64_t l = w >> 32;
        if (w & PH_Q_PAD) {
            consume(q, t, l);
            continue;
        }
        if (w & PH_Q_DEAD) {
            consume(q, t, l);
            atomic_fetch_sub_explicit(&q->count, 1, memory_order_relaxed);
            continue;
        }
        *len = l - HDR;
        return q->buf + t % q->cap + HDR;
    }
}

void posthog__queue_prefault(ph_queue_t *q, uint64_t ahead) {
    if (q->populated >= q->cap) return;
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h >= q->cap) { /* the producers have been everywhere already */
        q->populated = q->cap;
        return;
    }
    uint64_t want = PH_MIN(q->cap, h + ahead);
    const uint64_t page = 4096;
    want = PH_MIN(q->cap, (want + page - 1) & ~(page - 1));
    if (want <= q->populated) return;
#if PH_HAVE_MADV_POPULATE_WRITE
    /* populates without changing contents: safe while producers write */
    if (madvise(q->buf + q->populated, want - q->populated, MADV_POPULATE_WRITE) == 0) {
        q->populated = want;
        return;
    }
#endif
    q->populated = q->cap; /* unsupported: give up quietly */
}

void posthog__queue_pop(ph_queue_t *q) {
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(hdr_at(q, t), memory_order_relaxed);
    consume(q, t, w >> 32);
    atomic_fetch_sub_explicit(&q->count, 1, memory_order_relaxed);
}
