/*
 * SHA-1 after FIPS 180-4 section 6.1, written for clarity and a small
 * footprint: one 64-byte block at a time, the 80-word schedule kept in a
 * 16-word ring. The bucketing hash streams its three parts through one
 * context, so evaluation never formats or allocates a key string.
 */
#include "sha1.h"

#include <string.h>

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

static void compress(uint32_t h[5], const uint8_t *p) {
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
    for (; n >= 64; p += 64, n -= 64) compress(c->h, p);
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
    ph_sha1_t c;
    uint8_t d[20];
    posthog__sha1_init(&c);
    if (prefix_len) posthog__sha1_update(&c, prefix, prefix_len);
    if (id_len) posthog__sha1_update(&c, id, id_len);
    if (salt_len) posthog__sha1_update(&c, salt, salt_len);
    posthog__sha1_final(&c, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | d[i];
    /* 15 hex digits = the top 60 bits. Both sides become doubles first, as
     * in Python's int / float(0xFFFFFFFFFFFFFFF): that rounding is part of
     * the contract (bucket edges must agree bit for bit). */
    return (double)(v >> 4) / (double)0xFFFFFFFFFFFFFFFull;
}

double posthog__flags_hash(const char *prefix, const char *id, const char *salt) {
    return posthog__flags_hash_n(prefix, prefix ? strlen(prefix) : 0, id, id ? strlen(id) : 0,
                                 salt, salt ? strlen(salt) : 0);
}
