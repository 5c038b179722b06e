/*
 * SHA-1 after FIPS 180-4 section 6.1. Two compression functions with the
 * same results: a portable one (fully unrolled rounds, the 80-word schedule
 * kept in a 16-word ring) and, on x86-64/i386 CPUs that have them, the SHA
 * extensions (SHA-NI), chosen once at run time (CPUID). The bucketing hash
 * lays its three parts out in one or two padded blocks on the stack, so
 * evaluation never formats or allocates a key string and streams nothing.
 */
#include "sha1.h"

#include <stdatomic.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define PH_SHA1_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
/* valgrind cannot execute the SHA instructions; some versions still let
 * CPUID report them. Its client-request header (when installed) says
 * whether we run under it; natively that check costs a few instructions. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define PH_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef PH_UNDER_VALGRIND
#define PH_UNDER_VALGRIND() 0
#endif
#else
#define PH_SHA1_SHANI 0
#endif

static inline uint32_t rol(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

/* One round: f is the round function, k its constant; the schedule word
 * for t >= 16 is computed in place in the 16-word ring. */
#define W(t) (w[t & 15] = rol(w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15], 1))
#define ROUND(f, k, x)                                                                    \
    do {                                                                                  \
        uint32_t tmp = rol(a, 5) + (f) + e + (k) + (x);                                   \
        e = d;                                                                            \
        d = c;                                                                            \
        c = rol(b, 30);                                                                   \
        b = a;                                                                            \
        a = tmp;                                                                          \
    } while (0)

static void compress_portable(uint32_t h[5], const uint8_t *p) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    /* four loops of 20 rounds: no branch on the round number inside */
    int t = 0;
#pragma GCC unroll 16
    for (; t < 16; t++) ROUND(d ^ (b & (c ^ d)), 0x5A827999u, w[t]);
#pragma GCC unroll 4
    for (; t < 20; t++) ROUND(d ^ (b & (c ^ d)), 0x5A827999u, W(t));
#pragma GCC unroll 20
    for (; t < 40; t++) ROUND(b ^ c ^ d, 0x6ED9EBA1u, W(t));
#pragma GCC unroll 20
    for (; t < 60; t++) ROUND((b & c) | (d & (b | c)), 0x8F1BBCDCu, W(t));
#pragma GCC unroll 20
    for (; t < 80; t++) ROUND(b ^ c ^ d, 0xCA62C1D6u, W(t));
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

#undef ROUND
#undef W

static void blocks_portable(uint32_t h[5], const uint8_t *p, size_t nblocks) {
    for (; nblocks; nblocks--, p += 64) compress_portable(h, p);
}

#if PH_SHA1_SHANI
/* Four rounds with the SHA extensions: group i of 20 (rounds 4i..4i+3),
 * f the round function (i / 5). w[] is a ring of the last four message
 * groups; from group 4 on, the next is W[i-4..i-1] combined by
 * sha1msg1/xor/sha1msg2. prev is ABCD before the previous group (its A gives
 * this group's E through sha1nexte). */
#define GROUP(i, f)                                                                           \
    do {                                                                                      \
        if ((i) >= 4)                                                                         \
            w[(i) & 3] = _mm_sha1msg2_epu32(                                                  \
                _mm_xor_si128(_mm_sha1msg1_epu32(w[(i) & 3], w[((i) + 1) & 3]),               \
                              w[((i) + 2) & 3]),                                              \
                w[((i) + 3) & 3]);                                                            \
        e = _mm_sha1nexte_epu32(prev, w[(i) & 3]);                                            \
        prev = abcd;                                                                          \
        abcd = _mm_sha1rnds4_epu32(abcd, e, f);                                               \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_shani(uint32_t h[5],
                                                                     const uint8_t *p,
                                                                     size_t nblocks) {
    /* big-endian words, W0 in the highest lane */
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)h), 0x1B);
    __m128i e0 = _mm_set_epi32((int)h[4], 0, 0, 0);
    for (; nblocks; nblocks--, p += 64) {
        __m128i abcd_in = abcd, e0_in = e0, e, prev, w[4];
        for (int k = 0; k < 4; k++)
            w[k] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)),
                                    bswap);
        /* group 0: E is the chaining value's e */
        e = _mm_add_epi32(e0, w[0]);
        prev = abcd;
        abcd = _mm_sha1rnds4_epu32(abcd, e, 0);
        GROUP(1, 0); GROUP(2, 0); GROUP(3, 0); GROUP(4, 0);
        GROUP(5, 1); GROUP(6, 1); GROUP(7, 1); GROUP(8, 1); GROUP(9, 1);
        GROUP(10, 2); GROUP(11, 2); GROUP(12, 2); GROUP(13, 2); GROUP(14, 2);
        GROUP(15, 3); GROUP(16, 3); GROUP(17, 3); GROUP(18, 3); GROUP(19, 3);
        e0 = _mm_sha1nexte_epu32(prev, e0_in); /* rol(a, 30) + e */
        abcd = _mm_add_epi32(abcd, abcd_in);
    }
    _mm_storeu_si128((__m128i *)(void *)h, _mm_shuffle_epi32(abcd, 0x1B));
    h[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

#undef GROUP

/* CPUID: SHA (leaf 7 EBX bit 29), SSE4.1 and SSSE3 (leaf 1 ECX bits 19, 9);
 * never under valgrind. */
static bool cpu_has_shani(void) {
    unsigned a, b, c, d;
    if (PH_UNDER_VALGRIND()) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9))) return false;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 29)) != 0;
}
#endif

#if PH_SHA1_SHANI
/* 0: not checked yet, 1: portable, 2: SHA-NI. Racing first callers store
 * the same answer. */
static atomic_int impl;
#endif

static void blocks(uint32_t h[5], const uint8_t *p, size_t nblocks) {
#if PH_SHA1_SHANI
    int k = atomic_load_explicit(&impl, memory_order_relaxed);
    if (!k) {
        k = cpu_has_shani() ? 2 : 1;
        atomic_store_explicit(&impl, k, memory_order_relaxed);
    }
    if (k == 2) {
        blocks_shani(h, p, nblocks);
        return;
    }
#endif
    blocks_portable(h, p, nblocks);
}

static void compress(uint32_t h[5], const uint8_t *p) { blocks(h, p, 1); }

bool posthog__sha1_accelerated(void) {
#if PH_SHA1_SHANI
    return cpu_has_shani();
#else
    return false;
#endif
}

void posthog__sha1_portable(const void *data, size_t n, uint8_t out[20]) {
    static const uint32_t iv[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u,
                                   0xC3D2E1F0u};
    uint32_t h[5];
    memcpy(h, iv, sizeof iv);
    const uint8_t *p = data;
    size_t left = n;
    blocks_portable(h, p, left / 64);
    p += left / 64 * 64;
    left %= 64;
    uint8_t tail[128] = {0};
    if (left) memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tn = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[tn - 8 + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    blocks_portable(h, tail, tn / 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

void posthog__sha1_init(ph_sha1_t *c) {
    static const uint32_t iv[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u,
                                   0xC3D2E1F0u};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->fill = 0;
}

void posthog__sha1_update(ph_sha1_t *c, const void *data, size_t n) {
    const uint8_t *p = data;
    c->len += n;
    if (c->fill) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill < 64) return;
        compress(c->h, c->block);
        c->fill = 0;
    }
    if (n >= 64) {
        blocks(c->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    if (n) {
        memcpy(c->block, p, n);
        c->fill = n;
    }
}

void posthog__sha1_final(ph_sha1_t *c, uint8_t out[20]) {
    uint64_t bits = c->len * 8;
    c->block[c->fill++] = 0x80;
    if (c->fill > 56) {
        memset(c->block + c->fill, 0, 64 - c->fill);
        compress(c->h, c->block);
        c->fill = 0;
    }
    memset(c->block + c->fill, 0, 56 - c->fill);
    for (int i = 0; i < 8; i++) c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(c->h, c->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void posthog__sha1(const void *data, size_t n, uint8_t out[20]) {
    ph_sha1_t c;
    posthog__sha1_init(&c);
    posthog__sha1_update(&c, data, n);
    posthog__sha1_final(&c, out);
}

double posthog__flags_hash_n(const char *prefix, size_t prefix_len, const char *id, size_t id_len,
                             const char *salt, size_t salt_len) {
    static const uint32_t iv[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u,
                                   0xC3D2E1F0u};
    uint32_t h[5];
    size_t n = prefix_len + id_len + salt_len;
    if (n <= 128 - 9) {
        /* the usual "key.distinct_id": the message and its padding laid out
         * at once in one or two blocks */
        uint8_t b[128];
        size_t nb = n < 56 ? 64 : 128;
        /* fixed-size clears (a few vector stores), then the message */
        memset(b, 0, 64);
        if (nb == 128) memset(b + 64, 0, 64);
        if (prefix_len) memcpy(b, prefix, prefix_len);
        if (id_len) memcpy(b + prefix_len, id, id_len);
        if (salt_len) memcpy(b + prefix_len + id_len, salt, salt_len);
        b[n] = 0x80;
        /* the bit length, big-endian: below 2^16 here (n < 120) */
        uint32_t bits = (uint32_t)n * 8;
        b[nb - 2] = (uint8_t)(bits >> 8);
        b[nb - 1] = (uint8_t)bits;
        memcpy(h, iv, sizeof iv);
        blocks(h, b, nb / 64);
    } else {
        ph_sha1_t c;
        uint8_t d[20];
        posthog__sha1_init(&c);
        if (prefix_len) posthog__sha1_update(&c, prefix, prefix_len);
        if (id_len) posthog__sha1_update(&c, id, id_len);
        if (salt_len) posthog__sha1_update(&c, salt, salt_len);
        posthog__sha1_final(&c, d);
        for (int i = 0; i < 5; i++)
            h[i] = (uint32_t)d[4 * i] << 24 | (uint32_t)d[4 * i + 1] << 16 |
                   (uint32_t)d[4 * i + 2] << 8 | (uint32_t)d[4 * i + 3];
    }
    uint64_t v = (uint64_t)h[0] << 32 | h[1];
    /* 15 hex digits = the top 60 bits. Both sides become doubles first, as
     * in Python's int / float(0xFFFFFFFFFFFFFFF): that rounding is part of
     * the contract (bucket edges must agree bit for bit). */
    return (double)(v >> 4) / (double)0xFFFFFFFFFFFFFFFull;
}

double posthog__flags_hash(const char *prefix, const char *id, const char *salt) {
    return posthog__flags_hash_n(prefix, prefix ? strlen(prefix) : 0, id, id ? strlen(id) : 0,
                                 salt, salt ? strlen(salt) : 0);
}
