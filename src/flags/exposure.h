/*
 * flags/exposure: the $feature_flag_called dedupe tracker (flags.md 2.4).
 *
 * Remembers, per distinct_id, which (flag, response, groups) exposures were
 * already reported, so each is captured once. Bounded by the number of
 * distinct ids (feature_flag_called_cache_size, default 50,000): when full,
 * the distinct id seen first is forgotten, one at a time.
 *
 * Threads: the distinct ids are spread over SHARDS shards, each with its own
 * mutex held for one lookup; no lock is shared by all threads. The
 * check-and-add is atomic, so two threads reading the same flag report it
 * once.
 */
#ifndef POSTHOG_FLAGS_EXPOSURE_H
#define POSTHOG_FLAGS_EXPOSURE_H

#include "common.h"

typedef struct ph_exposure ph_exposure_t;

/* NULL when out of memory; max_ids 0 means "no dedupe" (every read reports). */
ph_exposure_t *posthog__exposure_new(uint32_t max_ids);
void posthog__exposure_free(ph_exposure_t *x);
/* true when this exposure had not been seen (it is now recorded). */
bool posthog__exposure_first(ph_exposure_t *x, const char *distinct_id, uint64_t fingerprint);
/* Forgets the exposure again (its event could not be captured). */
void posthog__exposure_forget(ph_exposure_t *x, const char *distinct_id, uint64_t fingerprint);
/* Forgets everything (posthog_shutdown, a forked child). */
void posthog__exposure_clear(ph_exposure_t *x);
/* Distinct ids tracked now (for tests). */
size_t posthog__exposure_ids(ph_exposure_t *x);

/* 64-bit FNV-1a, chained: h = posthog__fnv64(h, p, n); start with PH_FNV64_INIT. */
#define PH_FNV64_INIT 0xcbf29ce484222325ull
uint64_t posthog__fnv64(uint64_t h, const void *p, size_t n);

#endif
