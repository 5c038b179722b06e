/*
 * retry: what to do with a response, and how long to wait before retrying.
 * Pure functions, no state: the flusher owns attempts and deadlines.
 */
#ifndef POSTHOG_RETRY_H
#define POSTHOG_RETRY_H

#include <stdint.h>

typedef enum {
    PH_OUTCOME_OK = 0,     /* 2xx (delivered only with the protocol's confirmation body) */
    PH_OUTCOME_RETRY,      /* 3xx, 408, 429, 5xx, network errors */
    PH_OUTCOME_REJECT,     /* 400, 401, 403 and other permanent statuses */
    PH_OUTCOME_TOO_LARGE   /* 413: split the batch */
} ph_outcome_t;

/* `status` 0 means no HTTP response (transport error). */
ph_outcome_t posthog__classify(long status);

/* Wait before retry number `retry` (1 = first retry): base * 2^(retry-1)
 * plus up to 25% jitter, at least `retry_after_ms` when >= 0, capped at
 * cap_ms. */
int64_t posthog__backoff_ms(uint32_t retry, uint32_t base_ms, uint32_t cap_ms,
                            int64_t retry_after_ms);

/* Retry-After value (delta seconds or an HTTP date) as ms from now_wall_ms;
 * -1 when absent or malformed. */
int64_t posthog__parse_retry_after(const char *v, int64_t now_wall_ms);

#endif
