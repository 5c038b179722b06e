/*
 * SHA-1 (FIPS 180-4) and PostHog's bucketing hash.
 *
 * Owns: a small SHA-1 (no OpenSSL: OpenSSL 3's implicit provider fetch
 * costs more than the hash itself, see docs/flags.md), portable, with an
 * x86 SHA-NI path chosen once at run time (CPUID), and
 * posthog__flags_hash(), the number in [0, 1] every PostHog SDK and the
 * server derive from sha1("<key>.<id><salt>"). Pure functions (the only
 * state is the CPU check, cached atomically), no allocation; safe from any
 * thread.
 */
#ifndef POSTHOG_FLAGS_SHA1_H
#define POSTHOG_FLAGS_SHA1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[5];
    uint64_t len;       /* bytes hashed so far */
    uint8_t block[64];  /* pending partial block */
    size_t fill;        /* bytes in block */
} ph_sha1_t;

void posthog__sha1_init(ph_sha1_t *c);
/* Borrows data for the call. */
void posthog__sha1_update(ph_sha1_t *c, const void *data, size_t n);
void posthog__sha1_final(ph_sha1_t *c, uint8_t out[20]);
/* One-shot convenience. */
void posthog__sha1(const void *data, size_t n, uint8_t out[20]);

/* The same digest by the portable code alone, whatever the CPU (tests
 * compare it with the dispatched one). */
void posthog__sha1_portable(const void *data, size_t n, uint8_t out[20]);
/* True when this CPU runs the SHA extensions path (x86 SHA-NI). */
bool posthog__sha1_accelerated(void);

/*
 * The bucketing hash: sha1(prefix || id || salt), the first 15 hex digits
 * (60 bits) as an integer, divided by 0xFFFFFFFFFFFFFFF as doubles, so the
 * result is in [0, 1] and equal to Python's
 * int(sha1(...).hexdigest()[:15], 16) / float(0xFFFFFFFFFFFFFFF).
 * For flags the prefix is "<flag key>." (with the dot); for holdouts it is
 * "holdout-" (no dot). Any argument may be NULL (= empty). Borrows all.
 */
double posthog__flags_hash(const char *prefix, const char *id, const char *salt);
/* The same with explicit lengths (prefix may hold NULs). */
double posthog__flags_hash_n(const char *prefix, size_t prefix_len, const char *id, size_t id_len,
                             const char *salt, size_t salt_len);

#endif
