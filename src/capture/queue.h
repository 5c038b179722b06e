/*
 * queue: a lock-free bounded multi-producer / single-consumer byte ring.
 *
 * Producers reserve a contiguous record with one CAS on `head`, write it,
 * then publish it by storing its header word with release order. The
 * consumer (the flusher) reads records in order at `tail`, waits for a
 * header that is still 0 (reserved, not yet published), and zeroes every
 * byte it consumes before moving `tail` on, so the ring is all zeroes
 * ahead of the producers and a 0 header always means "not published".
 *
 * Record layout: an 8-byte header word (len << 32 | flags), then payload;
 * len counts the header and is a multiple of 8. A record that would cross
 * the end of the ring is preceded by a PAD record filling the end.
 *
 * Bounds: at most `budget` bytes in use (head - rel) and at most
 * `max_count` records not yet consumed. A full ring fails the reservation:
 * never blocks. Memory: an anonymous mapping, touched only as the ring is
 * used.
 *
 * Retention (`retain`, set before the consumer starts; the crash handler
 * needs it): consuming a record only moves `tail`; its bytes stay in the
 * ring, intact, until the consumer releases them (posthog__queue_release)
 * once whatever it made of them is safe (delivered, dropped or on disk).
 * So [rel, tail) holds consumed but unconfirmed records, [tail, head) the
 * queued ones, and a crash handler can save both (from `keep`). Without
 * retention, rel == tail: consuming frees the bytes at once.
 *
 * Freeze (the crash handler): posthog__queue_freeze stops every later
 * release from zeroing bytes, so records at or after `keep` stay intact
 * while the handler reads them, even with the consumer still running.
 */
#ifndef POSTHOG_QUEUE_H
#define POSTHOG_QUEUE_H

#include "common.h"

enum { PH_Q_COMMIT = 1, PH_Q_PAD = 2, PH_Q_DEAD = 4 };

typedef struct {
    char *buf;
    size_t cap;       /* bytes mapped, multiple of 8 */
    uint32_t max_count;
    /* producers: reservation cursor */
    PH_ALIGNED_CL _Atomic uint64_t head;
    /* consumer: everything before tail is consumed */
    PH_ALIGNED_CL _Atomic uint64_t tail;
    /* consumer: everything before rel is released and zeroed (producers'
     * limit); == tail without retention */
    PH_ALIGNED_CL _Atomic uint64_t rel;
    /* consumer: records before keep are confirmed (rel <= keep <= tail);
     * stored before the bytes are zeroed, read by the crash handler */
    _Atomic uint64_t keep;
    _Atomic int frozen;  /* the crash handler runs: release zeroes nothing */
    bool retain;         /* constant once the consumer runs */
    /* records reserved and not yet consumed */
    PH_ALIGNED_CL _Atomic uint64_t count;
    char pad_[PH_CACHELINE - sizeof(uint64_t)];
    uint64_t populated; /* consumer only: bytes from the start already faulted in */
} ph_queue_t;

typedef struct {
    char *hdr;   /* the record's header word */
    uint64_t len;
} ph_qslot_t;

/* 0 ok, -1 out of memory. */
int posthog__queue_init(ph_queue_t *q, size_t budget, uint32_t max_count);
void posthog__queue_destroy(ph_queue_t *q);
/* In a forked child: forget every record (fresh zero pages), keep the size. */
void posthog__queue_reset(ph_queue_t *q);

/*
 * Reserves room for `n` payload bytes. Returns the payload pointer, or
 * NULL when the ring is full (bytes or count). *count_after receives the
 * number of records in the ring including this one.
 */
void *posthog__queue_reserve(ph_queue_t *q, size_t n, ph_qslot_t *slot, uint64_t *count_after);
/* Publishes a reserved record; `flags` PH_Q_DEAD marks it to be skipped. */
void posthog__queue_commit(ph_queue_t *q, ph_qslot_t *slot, unsigned flags);

/*
 * Consumer only. Returns the next published record's payload and length,
 * skipping pads and dead records; NULL when the next record is not yet
 * published or the ring is empty.
 */
const void *posthog__queue_peek(ph_queue_t *q, size_t *len);
/* Consumer only: consumes the record returned by the last peek (frees it
 * unless the queue retains records). */
void posthog__queue_pop(ph_queue_t *q);
/* Consumer only: with retention, frees the consumed records before `pos`
 * (pos <= tail; a lower pos than already released is a no-op). */
void posthog__queue_release(ph_queue_t *q, uint64_t pos);
/* Async-signal-safe, any thread: no release zeroes bytes from now on. The
 * records from ph_queue_keep() to the head stay readable. */
static inline void posthog__queue_freeze(ph_queue_t *q) {
    /* seq_cst: Dekker with the consumer's seq_cst store of keep then load
     * of frozen in posthog__queue_release */
    atomic_store_explicit(&q->frozen, 1, memory_order_seq_cst);
}
/* Consumer only: faults in the pages up to `ahead` bytes past the head
 * during the first lap, so producers do not take the page faults (a
 * first-touch fault costs a capture ~1.5 us). A no-op once every page
 * has been used once, or where the kernel lacks MADV_POPULATE_WRITE. */
void posthog__queue_prefault(ph_queue_t *q, uint64_t ahead);

static inline uint64_t ph_queue_head(ph_queue_t *q) {
    return atomic_load_explicit(&q->head, memory_order_seq_cst);
}
static inline uint64_t ph_queue_tail(ph_queue_t *q) {
    return atomic_load_explicit(&q->tail, memory_order_acquire);
}
/* Consumed records before this position are released (the producers' limit). */
static inline uint64_t ph_queue_rel(ph_queue_t *q) {
    return atomic_load_explicit(&q->rel, memory_order_acquire);
}
static inline uint64_t ph_queue_keep(ph_queue_t *q) {
    return atomic_load_explicit(&q->keep, memory_order_seq_cst);
}
static inline uint64_t ph_queue_count(ph_queue_t *q) {
    return atomic_load_explicit(&q->count, memory_order_relaxed);
}

#endif
