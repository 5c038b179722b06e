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

static const char *skip_blanks(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Up to `max` digits into *out; NULL when there are none. */
static const char *digits(const char *p, int max, int64_t *out, int *n) {
    int64_t v = 0;
    int k = 0;
    while (k < max && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0'), k++;
    if (!k) return NULL;
    *out = v;
    if (n) *n = k;
    return p;
}

static const char *month(const char *p, unsigned *m) {
    static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    char lc[3];
    for (int i = 0; i < 3; i++) {
        char ch = p[i];
        if (!ch) return NULL;
        lc[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    for (unsigned i = 0; i < 12; i++)
        if (!memcmp(names + 3 * i, lc, 3)) {
            *m = i + 1;
            return p + 3;
        }
    return NULL;
}

/* "HH:MM:SS" */
static const char *clock_time(const char *p, int64_t *secs) {
    int64_t h, mi, s;
    if (!(p = digits(p, 2, &h, NULL)) || *p++ != ':' || !(p = digits(p, 2, &mi, NULL)) ||
        *p++ != ':' || !(p = digits(p, 2, &s, NULL)))
        return NULL;
    if (h > 23 || mi > 59 || s > 60) return NULL;
    *secs = h * 3600 + mi * 60 + s;
    return p;
}

int64_t posthog__parse_http_date(const char *v) {
    /* RFC 9110 HTTP-date: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
     * RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6
     * 08:49:37 1994"; the weekday is not checked */
    const char *p = skip_blanks(v);
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) p++;
    if (*p == ',') p++;
    p = skip_blanks(p);
    int64_t day, year, secs;
    unsigned mon;
    int ny;
    if (*p >= '0' && *p <= '9') { /* IMF-fixdate or RFC 850 */
        if (!(p = digits(p, 2, &day, NULL))) return -1;
        char sep = *p;
        if (sep != ' ' && sep != '-') return -1;
        if (!(p = month(p + 1, &mon)) || *p++ != sep) return -1;
        if (!(p = digits(p, 4, &year, &ny)) || (ny != 2 && ny != 4)) return -1;
        if (ny == 2) year += year < 70 ? 2000 : 1900;
        if (*p++ != ' ' || !(p = clock_time(skip_blanks(p), &secs))) return -1;
        p = skip_blanks(p);
        if (!strncmp(p, "GMT", 3) || !strncmp(p, "UTC", 3)) p += 3;
    } else { /* asctime */
        if (!(p = month(p, &mon))) return -1;
        if (!(p = digits(skip_blanks(p), 2, &day, NULL))) return -1;
        if (!(p = clock_time(skip_blanks(p), &secs))) return -1;
        if (!(p = digits(skip_blanks(p), 4, &year, &ny)) || ny != 4) return -1;
    }
    p = skip_blanks(p);
    while (*p == '\r' || *p == '\n') p++;
    if (*p || day < 1 || day > 31) return -1;
    return posthog__days_from_civil(year, mon, (unsigned)day) * 86400 + secs;
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
    int64_t t = posthog__parse_http_date(v);
    if (t < 0) return -1;
    int64_t d = t * 1000 - now_wall_ms;
    return d < 0 ? 0 : d;
}
