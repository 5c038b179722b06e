/*
 * util: time, randomness and UUIDs.
 *  - posthog__now_ms: wall clock (CLOCK_REALTIME, through the vDSO on Linux),
 *    for event timestamps, sent_at, HTTP dates and spool file ages only.
 *    Every interval inside the process (batch age, retry waits, probes,
 *    deadlines, timed waits) is measured on posthog__mono_ms: the wall clock
 *    may step (NTP, an administrator, a VM resume) by hours either way.
 *  - Randomness comes from a per-thread xoshiro256** generator seeded from
 *    the system's generator (platform.h: getrandom, getentropy, ...) once per thread and again in a forked child (the fork
 *    generation is bumped by the atfork child handler), so parent and child
 *    never produce the same UUIDs.
 */
#ifndef POSTHOG_UTIL_H
#define POSTHOG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define PH_UUID_STR_LEN 36
#define PH_ISO8601_LEN 24 /* 2026-11-23T09:59:58.001Z */

int64_t posthog__now_ms(void);
/* Tests only: steps posthog__now_ms by delta_ms (as if the system clock
 * were set), so a test can check nothing measures intervals on it. */
void posthog__test_step_wall_clock(int64_t delta_ms);
/* Monotonic clock in milliseconds / nanoseconds. */
int64_t posthog__mono_ms(void);
int64_t posthog__mono_ns(void);

uint64_t posthog__rand_u64(void);
/* Marks every thread's generator stale (called in a forked child). */
void posthog__rand_fork_child(void);

/* UUID v7 (RFC 9562): 48-bit ms timestamp, 74 random bits. */
void posthog__uuid_v7(uint8_t out[16], int64_t unix_ms);
/* Writes 36 lowercase hex chars with dashes, no NUL. */
void posthog__uuid_format(char out[PH_UUID_STR_LEN], const uint8_t u[16]);
/* Parses the canonical 8-4-4-4-12 form (any case). 0 on success, -1 if malformed. */
int posthog__uuid_parse(const char *s, size_t len, uint8_t out[16]);

/* Writes v in decimal, left-padded with zeros to `width` digits (0: none);
 * returns the end. At most 20 digits. Async-signal-safe (the crash handler
 * uses it). */
char *posthog__fmt_u64(char *o, uint64_t v, int width);

/* Writes the 24-char UTC timestamp with milliseconds, no NUL. */
void posthog__iso8601_ms(char out[PH_ISO8601_LEN], int64_t unix_ms);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+hh:mm|-hh:mm)" into epoch ms. 0 ok, -1 bad. */
int posthog__iso8601_parse(const char *s, size_t len, int64_t *out_ms);

/* The object text `obj` (NULL: {}) with the members of the object text
 * `more` appended after its own (capture keeps the first of a duplicated
 * key, so obj's win). malloc'd; NULL when either is not an object's text
 * or out of memory. Neither is otherwise validated. */
char *posthog__json_append_members(const char *obj, const char *more);

/* Days since 1970-01-01 <-> proleptic Gregorian date (any int64 year). */
void posthog__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
int64_t posthog__days_from_civil(int64_t y, unsigned m, unsigned d);

/* An HTTP-date (RFC 7231 7.1.1.1: IMF-fixdate "Sun, 06 Nov 1994 08:49:37
 * GMT", obsolete RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov
 * 6 08:49:37 1994") -> seconds since the epoch in *out_s; 0, or -1 if not
 * one. now_s places an RFC 850 two-digit year. Parsed here rather than by
 * curl_getdate: its time_t differs from ours on 32-bit systems built with
 * a 64-bit time_t against a 32-bit time_t libcurl (Debian 12 armhf). */
int posthog__parse_http_date(const char *s, int64_t now_s, int64_t *out_s);

#endif
