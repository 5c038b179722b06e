/*
 * retry: the response table of the ingestion contract and the backoff.
 */
#include "retry.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PH_RETRY_MIN(a, b) ((a) < (b) ? (a) : (b))

ph_outcome_t posthog__classify(long status) {
    if (status == 0) return PH_OUTCOME_RETRY;
    if (status >= 200 && status < 300) return PH_OUTCOME_OK;
    /* a redirect is not the capture service's answer (a proxy or captive
     * portal between us; libcurl follows none): nothing was refused */
    if (status >= 300 && status < 400) return PH_OUTCOME_RETRY;
    if (status == 413) return PH_OUTCOME_TOO_LARGE;
    if (status == 408 || status == 429 || (status >= 500 && status <= 599 && status != 501 &&
                                           status != 505))
        return PH_OUTCOME_RETRY;
    return PH_OUTCOME_REJECT;
}

int64_t posthog__backoff_ms(uint32_t retry, uint32_t base_ms, uint32_t cap_ms,
                            int64_t retry_after_ms) {
    if (retry < 1) retry = 1;
    double d = (double)base_ms;
    for (uint32_t i = 1; i < retry && d < (double)cap_ms; i++) d *= 2;
    d += d * 0.25 * ((double)(posthog__rand_u64() >> 11) / 9007199254740992.0);
    if (retry_after_ms >= 0 && (double)retry_after_ms > d) d = (double)retry_after_ms;
    if (d > (double)cap_ms) d = (double)cap_ms;
    return (int64_t)d;
}

int64_t posthog__parse_retry_after(const char *v, int64_t now_wall_ms) {
    if (!v) return -1;
    while (*v == ' ' || *v == '\t') v++;
    if (!*v) return -1;
    if (*v >= '0' && *v <= '9') {
        /* delta-seconds: digits only (RFC 9110) */
        int64_t secs = 0;
        while (*v >= '0' && *v <= '9') {
            if (secs < 86400) secs = secs * 10 + (*v - '0');
            v++;
        }
        while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') v++;
        if (*v) return -1;
        return PH_RETRY_MIN(secs, 86400) * 1000;
    }
    int64_t t; /* no curl_getdate: see posthog__parse_http_date */
    if (posthog__parse_http_date(v, now_wall_ms / 1000, &t)) return -1;
    int64_t d = t * 1000 - now_wall_ms;
    return d < 0 ? 0 : d;
}
