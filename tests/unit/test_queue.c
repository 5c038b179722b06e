/*
 * Unit tests of the lock-free MPSC byte ring (src/capture/queue.c): single-thread
 * reserve/commit/peek/pop, wrap-around with pad records, full by bytes and
 * by count, dead records, ordering behind an unpublished record, reset,
 * retention (consumed records kept until released; freeze), and a
 * multi-producer stress test meant to run under ThreadSanitizer.
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

static uint64_t rng_state = 0xDEADBEEFCAFEF00DULL;
static uint64_t xrand(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ck_assert records a checkpoint through a pipe on every pass: too slow in
 * hot loops, where this is used instead. */
#define REQUIRE(expr, ...)                                                                     \
    do {                                                                                       \
        if (!(expr)) ck_abort_msg(__VA_ARGS__);                                                \
    } while (0)

static size_t rounded(size_t n) { return ((n + 8 + 7) & ~(size_t)7) - 8; }

/* Reserves n bytes, fills them with `tag`, commits with flags. */
static void *put(ph_queue_t *q, size_t n, unsigned char tag, unsigned flags) {
    ph_qslot_t slot;
    uint64_t after = 0;
    void *p = posthog__queue_reserve(q, n, &slot, &after);
    if (!p) return NULL;
    memset(p, tag, n);
    posthog__queue_commit(q, &slot, flags);
    return p;
}

/* Peeks, checks length and content tag, pops. */
static void take(ph_queue_t *q, size_t n, unsigned char tag) {
    size_t len = 0;
    const unsigned char *p = posthog__queue_peek(q, &len);
    ck_assert_msg(p != NULL, "expected a record of %zu bytes tagged %u", n, tag);
    ck_assert_uint_eq(len, rounded(n));
    for (size_t i = 0; i < n; i++) REQUIRE(p[i] == tag, "byte %zu: %u != %u", i, p[i], tag);
    posthog__queue_pop(q);
}

START_TEST(basic_reserve_commit_peek_pop) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 4096, 1000), 0);
    ck_assert_uint_eq(q.cap, 4096);
    size_t len = 123;
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    ph_qslot_t slot;
    uint64_t after = 0;
    char *p = posthog__queue_reserve(&q, 10, &slot, &after);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(after, 1);
    ck_assert_uint_eq(ph_queue_count(&q), 1);
    ck_assert_uint_eq(slot.len, 24); /* header + 10 rounded up to 8 */
    ck_assert_uint_eq(ph_queue_head(&q), 24);
    memcpy(p, "0123456789", 10);
    /* reserved but not committed: invisible */
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    posthog__queue_commit(&q, &slot, 0);
    const char *r = posthog__queue_peek(&q, &len);
    ck_assert_ptr_eq(r, p);
    ck_assert_uint_eq(len, 16); /* the payload room, a multiple of 8 */
    ck_assert(memcmp(r, "0123456789", 10) == 0);
    /* peek is idempotent until pop */
    ck_assert_ptr_eq(posthog__queue_peek(&q, &len), p);
    posthog__queue_pop(&q);
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    ck_assert_uint_eq(ph_queue_tail(&q), 24);
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    /* zero-byte payloads are records too */
    ck_assert_ptr_nonnull(put(&q, 0, 0, 0));
    ck_assert_ptr_nonnull(posthog__queue_peek(&q, &len));
    ck_assert_uint_eq(len, 0);
    posthog__queue_pop(&q);
    /* FIFO of several */
    for (int i = 0; i < 20; i++) ck_assert_ptr_nonnull(put(&q, (size_t)(i * 7), (unsigned char)i, 0));
    ck_assert_uint_eq(ph_queue_count(&q), 20);
    for (int i = 0; i < 20; i++) take(&q, (size_t)(i * 7), (unsigned char)i);
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    posthog__queue_destroy(&q);
    posthog__queue_destroy(&q); /* second destroy is harmless */
}
END_TEST

START_TEST(budget_rounded_to_8) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1001, 10), 0);
    ck_assert_uint_eq(q.cap, 1008);
    posthog__queue_destroy(&q);
}
END_TEST

START_TEST(uncommitted_blocks_order) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 4096, 100), 0);
    ph_qslot_t a, b, c;
    uint64_t after;
    char *pa = posthog__queue_reserve(&q, 8, &a, &after);
    char *pb = posthog__queue_reserve(&q, 8, &b, &after);
    char *pc = posthog__queue_reserve(&q, 8, &c, &after);
    ck_assert_uint_eq(after, 3);
    memcpy(pa, "AAAAAAAA", 8);
    memcpy(pb, "BBBBBBBB", 8);
    memcpy(pc, "CCCCCCCC", 8);
    posthog__queue_commit(&q, &c, 0);
    posthog__queue_commit(&q, &b, 0);
    size_t len;
    /* B and C are published, A is not: nothing may be returned */
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    posthog__queue_commit(&q, &a, 0);
    const char *r = posthog__queue_peek(&q, &len);
    ck_assert(r && r[0] == 'A');
    posthog__queue_pop(&q);
    r = posthog__queue_peek(&q, &len);
    ck_assert(r && r[0] == 'B');
    posthog__queue_pop(&q);
    r = posthog__queue_peek(&q, &len);
    ck_assert(r && r[0] == 'C');
    posthog__queue_pop(&q);
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    posthog__queue_destroy(&q);
}
END_TEST

START_TEST(dead_records_skipped) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 4096, 100), 0);
    ck_assert_ptr_nonnull(put(&q, 16, 1, PH_Q_DEAD));
    ck_assert_ptr_nonnull(put(&q, 16, 2, 0));
    ck_assert_ptr_nonnull(put(&q, 40, 3, PH_Q_DEAD));
    ck_assert_ptr_nonnull(put(&q, 40, 4, PH_Q_DEAD));
    ck_assert_ptr_nonnull(put(&q, 24, 5, 0));
    ck_assert_ptr_nonnull(put(&q, 24, 6, PH_Q_DEAD));
    ck_assert_uint_eq(ph_queue_count(&q), 6);
    take(&q, 16, 2);
    ck_assert_uint_eq(ph_queue_count(&q), 4); /* dead #1 and #2 consumed */
    take(&q, 24, 5);
    size_t len;
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    ck_assert_uint_eq(ph_queue_tail(&q), ph_queue_head(&q));
    /* a ring of only dead records empties entirely */
    for (int i = 0; i < 50; i++) ck_assert_ptr_nonnull(put(&q, 8, 9, PH_Q_DEAD));
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    posthog__queue_destroy(&q);
}
END_TEST

START_TEST(full_by_bytes) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1024, 100000), 0);
    /* 56-byte payloads take 64 bytes: exactly 16 fit */
    for (int i = 0; i < 16; i++) {
        ph_qslot_t s;
        uint64_t after = 0;
        void *p = posthog__queue_reserve(&q, 56, &s, &after);
        ck_assert_msg(p != NULL, "record %d should fit", i);
        ck_assert_uint_eq(after, (uint64_t)i + 1);
        memset(p, i, 56);
        posthog__queue_commit(&q, &s, 0);
    }
    ph_qslot_t s;
    uint64_t after = 0;
    ck_assert_ptr_null(posthog__queue_reserve(&q, 56, &s, &after));
    ck_assert_ptr_null(posthog__queue_reserve(&q, 0, &s, &after));
    ck_assert_uint_eq(ph_queue_count(&q), 16); /* failures do not leak count */
    ck_assert_uint_eq(ph_queue_head(&q), 1024);
    /* freeing one record makes room for exactly one again */
    take(&q, 56, 0);
    ck_assert_ptr_nonnull(put(&q, 56, 16, 0));
    ck_assert_ptr_null(put(&q, 1, 99, 0));
    for (int i = 1; i <= 16; i++) take(&q, 56, (unsigned char)i);
    size_t len;
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    /* one record may take at most half the ring */
    ck_assert_ptr_null(posthog__queue_reserve(&q, 512 - 8 + 1, &s, &after));
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    ck_assert_ptr_nonnull(put(&q, 512 - 8, 7, 0));
    take(&q, 504, 7);
    posthog__queue_destroy(&q);
}
END_TEST

START_TEST(full_by_count) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1 << 16, 3), 0);
    ck_assert_ptr_nonnull(put(&q, 8, 1, 0));
    ck_assert_ptr_nonnull(put(&q, 8, 2, 0));
    ck_assert_ptr_nonnull(put(&q, 8, 3, 0));
    ck_assert_ptr_null(put(&q, 8, 4, 0));
    ck_assert_ptr_null(put(&q, 8, 4, 0));
    ck_assert_uint_eq(ph_queue_count(&q), 3);
    take(&q, 8, 1);
    ck_assert_ptr_nonnull(put(&q, 8, 4, 0));
    ck_assert_ptr_null(put(&q, 8, 5, 0));
    /* dead records count until consumed */
    take(&q, 8, 2);
    ck_assert_ptr_nonnull(put(&q, 8, 5, PH_Q_DEAD));
    ck_assert_ptr_null(put(&q, 8, 6, 0));
    take(&q, 8, 3);
    take(&q, 8, 4); /* skips the dead one behind it only on the next peek */
    size_t len;
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    ck_assert_ptr_nonnull(put(&q, 8, 6, 0));
    posthog__queue_destroy(&q);
}
END_TEST

START_TEST(wrap_with_pad) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1024, 1000), 0);
    /* three 256-byte records, consumed: head = tail = 768 */
    for (int i = 0; i < 3; i++) ck_assert_ptr_nonnull(put(&q, 248, (unsigned char)i, 0));
    for (int i = 0; i < 3; i++) take(&q, 248, (unsigned char)i);
    ck_assert_uint_eq(ph_queue_tail(&q), 768);
    /* a 512-byte record does not fit in the last 256: pad, then at 0 */
    void *p = put(&q, 504, 0xAB, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_eq(p, q.buf + 8);
    ck_assert_uint_eq(ph_queue_head(&q), 768 + 256 + 512);
    ck_assert_uint_eq(ph_queue_count(&q), 1); /* pads are not counted */
    size_t len;
    const void *r = posthog__queue_peek(&q, &len);
    ck_assert_ptr_eq(r, p); /* the pad was skipped */
    ck_assert_uint_eq(ph_queue_tail(&q), 1024);
    take(&q, 504, 0xAB);
    ck_assert_uint_eq(ph_queue_tail(&q), 1536);
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));

    /* a reservation that would need a pad it has no room for fails and
     * leaves head unchanged */
    posthog__queue_destroy(&q);
    ck_assert_int_eq(posthog__queue_init(&q, 1024, 1000), 0);
    for (int i = 0; i < 3; i++) ck_assert_ptr_nonnull(put(&q, 248, (unsigned char)i, 0));
    take(&q, 248, 0); /* tail 256, head 768 */
    ck_assert_ptr_null(put(&q, 504, 9, 0)); /* 768+256+512-256 > 1024 */
    ck_assert_uint_eq(ph_queue_head(&q), 768);
    ck_assert_uint_eq(ph_queue_count(&q), 2);
    ck_assert_ptr_nonnull(put(&q, 248, 3, 0)); /* fits exactly at the end, no pad */
    ck_assert_uint_eq(ph_queue_head(&q), 1024);
    ck_assert_ptr_nonnull(put(&q, 248, 4, 0)); /* wraps to 0, where record 0 was */
    ck_assert_ptr_null(put(&q, 8, 5, 0));
    for (int i = 1; i <= 4; i++) take(&q, 248, (unsigned char)i);
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    posthog__queue_destroy(&q);
}
END_TEST

/* Random single-threaded operations against a FIFO model, many laps. */
START_TEST(random_vs_model) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 4096, 40), 0);
    enum { MAXM = 1024 };
    struct {
        size_t n;
        unsigned seq;
        bool dead;
    } model[MAXM];
    size_t mh = 0, mt = 0; /* model ring indexes */
    unsigned seq = 0;
    uint64_t fails = 0, consumed = 0;
    for (int op = 0; op < 200000; op++) {
        if (xrand() % 100 < 55) {
            size_t n = 4 + (size_t)(xrand() % 300);
            ph_qslot_t s;
            uint64_t after;
            unsigned char *p = posthog__queue_reserve(&q, n, &s, &after);
            if (!p) {
                fails++;
                continue;
            }
            REQUIRE(after == ph_queue_count(&q), "count_after");
            bool dead = xrand() % 10 == 0;
            memcpy(p, &seq, 4);
            for (size_t i = 4; i < n; i++) p[i] = (unsigned char)(seq + i);
            posthog__queue_commit(&q, &s, dead ? PH_Q_DEAD : 0);
            model[mh % MAXM].n = n;
            model[mh % MAXM].seq = seq;
            model[mh % MAXM].dead = dead;
            mh++;
            seq++;
        } else {
            size_t len;
            const unsigned char *p = posthog__queue_peek(&q, &len);
            while (mt < mh && model[mt % MAXM].dead) mt++;
            if (mt == mh) {
                REQUIRE(p == NULL, "op %d: record in an empty model", op);
                REQUIRE(ph_queue_count(&q) == 0, "op %d: count", op);
                continue;
            }
            REQUIRE(p != NULL, "op %d: missing record", op);
            size_t n = model[mt % MAXM].n;
            unsigned sq;
            memcpy(&sq, p, 4);
            REQUIRE(sq == model[mt % MAXM].seq, "op %d: seq %u want %u", op, sq,
                    model[mt % MAXM].seq);
            REQUIRE(len == rounded(n), "op %d: len", op);
            for (size_t i = 4; i < n; i++)
                REQUIRE(p[i] == (unsigned char)(sq + i), "op %d: byte %zu", op, i);
            posthog__queue_pop(&q);
            mt++;
            consumed++;
        }
    }
    ck_assert_uint_gt(fails, 100);     /* the ring did get full */
    ck_assert_uint_gt(consumed, 50000);
    ck_assert_uint_gt(ph_queue_head(&q), 100 * 4096); /* many laps */
    posthog__queue_destroy(&q);
}
END_TEST

START_TEST(reset_forgets_everything) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 2048, 100), 0);
    for (int i = 0; i < 5; i++) ck_assert_ptr_nonnull(put(&q, 100, (unsigned char)i, 0));
    take(&q, 100, 0);
    ph_qslot_t s;
    uint64_t after;
    ck_assert_ptr_nonnull(posthog__queue_reserve(&q, 100, &s, &after)); /* left uncommitted */
    char *buf = q.buf;
    posthog__queue_reset(&q);
    ck_assert_ptr_eq(q.buf, buf); /* same mapping address, fresh pages */
    ck_assert_uint_eq(ph_queue_head(&q), 0);
    ck_assert_uint_eq(ph_queue_tail(&q), 0);
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    size_t len;
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    for (size_t i = 0; i < q.cap; i++) REQUIRE(q.buf[i] == 0, "byte %zu not zero", i);
    /* full capacity available again */
    for (int i = 0; i < 16; i++) ck_assert_ptr_nonnull(put(&q, 120, (unsigned char)(10 + i), 0));
    ck_assert_ptr_null(put(&q, 1, 0, 0));
    for (int i = 0; i < 16; i++) take(&q, 120, (unsigned char)(10 + i));
    posthog__queue_destroy(&q);
}
END_TEST

/* ------------------------------------------------------------ stress */

enum { PRODUCERS = 4, PER_PRODUCER = 200000 };

typedef struct {
    uint32_t producer, seq, len, dead;
} stamp_t;

static ph_queue_t g_q;
static _Atomic int g_producers_done;
static uint64_t g_failed[PRODUCERS], g_dead[PRODUCERS];

static unsigned char fill_byte(uint32_t p, uint32_t seq, size_t i) {
    return (unsigned char)(p * 31 + seq * 7 + i);
}

static void *producer(void *arg) {
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint64_t r = 0x1234567ULL * (id + 1);
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t n = sizeof(stamp_t) + (size_t)(r % 240);
        ph_qslot_t s;
        uint64_t after;
        unsigned char *p = posthog__queue_reserve(&g_q, n, &s, &after);
        if (!p) {
            g_failed[id]++;
            sched_yield(); /* let the consumer drain (2-core CI machines) */
            continue;
        }
        stamp_t st = {id, seq, (uint32_t)n, (r >> 40) % 50 == 0};
        memcpy(p, &st, sizeof st);
        for (size_t i = sizeof st; i < n; i++) p[i] = fill_byte(id, seq, i);
        posthog__queue_commit(&g_q, &s, st.dead ? PH_Q_DEAD : 0);
        if (st.dead) g_dead[id]++;
    }
    atomic_fetch_add(&g_producers_done, 1);
    return NULL;
}

typedef struct {
    uint64_t consumed[PRODUCERS];
    int64_t last_seq[PRODUCERS];
    char err[200];
} consumer_result_t;

static void *consumer(void *arg) {
    consumer_result_t *res = arg;
    for (int i = 0; i < PRODUCERS; i++) res->last_seq[i] = -1;
    for (;;) {
        size_t len;
        const unsigned char *p = posthog__queue_peek(&g_q, &len);
        if (!p) {
            if (atomic_load(&g_producers_done) == PRODUCERS) {
                /* all producers finished: one last look, then stop */
                p = posthog__queue_peek(&g_q, &len);
                if (!p) break;
            } else {
                sched_yield();
                continue;
            }
        }
        stamp_t st;
        memcpy(&st, p, sizeof st);
        if (st.producer >= PRODUCERS || st.len > len || st.dead) {
            snprintf(res->err, sizeof res->err, "bad record: producer %u len %u/%zu dead %u",
                     st.producer, st.len, len, st.dead);
            return NULL;
        }
        if ((int64_t)st.seq <= res->last_seq[st.producer]) {
            snprintf(res->err, sizeof res->err, "producer %u: seq %u after %lld", st.producer,
                     st.seq, (long long)res->last_seq[st.producer]);
            return NULL;
        }
        for (size_t i = sizeof st; i < st.len; i++) {
            if (p[i] != fill_byte(st.producer, st.seq, i)) {
                snprintf(res->err, sizeof res->err, "producer %u seq %u: byte %zu corrupt",
                         st.producer, st.seq, i);
                return NULL;
            }
        }
        res->last_seq[st.producer] = st.seq;
        res->consumed[st.producer]++;
        posthog__queue_pop(&g_q);
    }
    return NULL;
}

START_TEST(multi_producer_stress) {
    ck_assert_int_eq(posthog__queue_init(&g_q, 64 * 1024, 600), 0);
    atomic_store(&g_producers_done, 0);
    memset(g_failed, 0, sizeof g_failed);
    memset(g_dead, 0, sizeof g_dead);
    static consumer_result_t res;
    memset(&res, 0, sizeof res);
    pthread_t c, p[PRODUCERS];
    ck_assert_int_eq(pthread_create(&c, NULL, consumer, &res), 0);
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_create(&p[i], NULL, producer, (void *)i), 0);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    pthread_join(c, NULL);
    ck_assert_msg(res.err[0] == '\0', "%s", res.err);
    uint64_t total_consumed = 0, total_failed = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_msg(res.consumed[i] + g_failed[i] + g_dead[i] == PER_PRODUCER,
                      "producer %d: consumed %llu + failed %llu + dead %llu != %d", i,
                      (unsigned long long)res.consumed[i], (unsigned long long)g_failed[i],
                      (unsigned long long)g_dead[i], PER_PRODUCER);
        total_consumed += res.consumed[i];
        total_failed += g_failed[i];
    }
    ck_assert_uint_gt(total_consumed, PER_PRODUCER / 10);
    ck_assert_uint_eq(ph_queue_count(&g_q), 0);
    ck_assert_uint_eq(ph_queue_head(&g_q), ph_queue_tail(&g_q));
    size_t len;
    ck_assert_ptr_null(posthog__queue_peek(&g_q, &len));
    if (getenv("PH_TEST_VERBOSE"))
        fprintf(stderr, "stress: consumed %llu failed %llu of %d\n",
                (unsigned long long)total_consumed, (unsigned long long)total_failed,
                PRODUCERS * PER_PRODUCER);
    posthog__queue_destroy(&g_q);
}
END_TEST

/* With retention a consumed record keeps its bytes and its ring space
 * until released; the count frees at once (it counts queued records). */
START_TEST(retained_until_released) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1024, 100), 0);
    q.retain = true;
    unsigned char *p[8];
    for (int i = 0; i < 8; i++) ck_assert_ptr_nonnull(p[i] = put(&q, 120, (unsigned char)(1 + i), 0));
    ck_assert_ptr_null(put(&q, 1, 0, 0)); /* full: 8 * 128 */
    uint64_t mid = 0;
    for (int i = 0; i < 8; i++) {
        if (i == 3) mid = ph_queue_tail(&q);
        take(&q, 120, (unsigned char)(1 + i));
    }
    ck_assert_uint_eq(ph_queue_count(&q), 0);
    ck_assert_uint_eq(ph_queue_tail(&q), 1024);
    ck_assert_uint_eq(ph_queue_rel(&q), 0);
    size_t len;
    ck_assert_ptr_null(posthog__queue_peek(&q, &len));
    /* still full, every byte as written */
    ck_assert_ptr_null(put(&q, 1, 0, 0));
    for (int i = 0; i < 8; i++) REQUIRE(p[i][119] == 1 + i, "record %d changed", i);
    /* releasing the first three frees their room (and zeroes it) */
    posthog__queue_release(&q, mid);
    ck_assert_uint_eq(ph_queue_rel(&q), 3 * 128);
    ck_assert_uint_eq(ph_queue_keep(&q), 3 * 128);
    for (size_t i = 0; i < 3 * 128; i++) REQUIRE(q.buf[i] == 0, "byte %zu not zero", i);
    REQUIRE(p[3][0] == 4, "record 3 touched");
    for (int i = 0; i < 3; i++) ck_assert_ptr_nonnull(put(&q, 120, (unsigned char)(20 + i), 0));
    ck_assert_ptr_null(put(&q, 1, 0, 0));
    /* a lower position is a no-op; one past tail stops at tail */
    posthog__queue_release(&q, 128);
    ck_assert_uint_eq(ph_queue_rel(&q), 3 * 128);
    posthog__queue_release(&q, UINT64_MAX);
    ck_assert_uint_eq(ph_queue_rel(&q), 1024);
    for (int i = 0; i < 3; i++) take(&q, 120, (unsigned char)(20 + i));
    posthog__queue_destroy(&q);
}
END_TEST

/* Frozen (the crash handler runs): releases move keep but zero nothing
 * and free no room, so the handler reads intact records from keep on. */
START_TEST(freeze_keeps_bytes) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1024, 100), 0);
    q.retain = true;
    for (int i = 0; i < 4; i++) ck_assert_ptr_nonnull(put(&q, 120, (unsigned char)(1 + i), 0));
    for (int i = 0; i < 4; i++) take(&q, 120, (unsigned char)(1 + i));
    posthog__queue_freeze(&q);
    posthog__queue_release(&q, 2 * 128);
    ck_assert_uint_eq(ph_queue_keep(&q), 2 * 128);
    ck_assert_uint_eq(ph_queue_rel(&q), 0);
    REQUIRE((unsigned char)q.buf[8] == 1, "released bytes zeroed while frozen");
    posthog__queue_destroy(&q);
}
END_TEST

/* Without retention consuming frees at once (rel follows tail). */
START_TEST(no_retention_frees_on_pop) {
    ph_queue_t q;
    ck_assert_int_eq(posthog__queue_init(&q, 1024, 100), 0);
    for (int i = 0; i < 8; i++) ck_assert_ptr_nonnull(put(&q, 120, (unsigned char)(1 + i), 0));
    take(&q, 120, 1);
    ck_assert_uint_eq(ph_queue_rel(&q), 128);
    ck_assert_ptr_nonnull(put(&q, 120, 9, 0));
    posthog__queue_release(&q, 0); /* a no-op */
    posthog__queue_destroy(&q);
}
END_TEST

static Suite *queue_suite(void) {
    Suite *s = suite_create("queue");
    TCase *t = tcase_create("single");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, basic_reserve_commit_peek_pop);
    tcase_add_test(t, budget_rounded_to_8);
    tcase_add_test(t, uncommitted_blocks_order);
    tcase_add_test(t, dead_records_skipped);
    tcase_add_test(t, full_by_bytes);
    tcase_add_test(t, full_by_count);
    tcase_add_test(t, wrap_with_pad);
    tcase_add_test(t, random_vs_model);
    tcase_add_test(t, reset_forgets_everything);
    tcase_add_test(t, retained_until_released);
    tcase_add_test(t, freeze_keeps_bytes);
    tcase_add_test(t, no_retention_frees_on_pop);
    suite_add_tcase(s, t);
    t = tcase_create("stress");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, multi_producer_stress);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
