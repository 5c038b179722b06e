/*
 * util: clocks, per-thread PRNG, UUID v7 and ISO-8601 formatting.
 * Invariant: a thread's generator is reseeded whenever the process-wide
 * fork generation differs from the one it was seeded under.
 */
#include "util.h"

#include "platform.h"
#include "alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Added to the wall clock: tests step it (posthog__test_step_wall_clock). */
static _Atomic int64_t wall_offset_ms;

int64_t posthog__now_ms(void) {
    /* relaxed: a test hook; zero outside tests */
    return posthog__os_wall_ms() + atomic_load_explicit(&wall_offset_ms, memory_order_relaxed);
}

void posthog__test_step_wall_clock(int64_t delta_ms) {
    atomic_fetch_add_explicit(&wall_offset_ms, delta_ms, memory_order_relaxed);
}

int64_t posthog__mono_ns(void) { return posthog__os_mono_ns(); }

int64_t posthog__mono_ms(void) { return posthog__mono_ns() / 1000000; }

/* ---------------------------------------------------------------- PRNG */

static _Atomic unsigned fork_generation = 1;

typedef struct {
    uint64_t s[4];
    unsigned generation; /* 0: never seeded */
} rng_t;

static _Thread_local rng_t tl_rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, unsigned gen) {
    uint64_t seed[4] = {0, 0, 0, 0};
    if (posthog__os_random(seed, sizeof seed)) memset(seed, 0, sizeof seed);
    /* Mix in time, pid and the state's address so a failed system source
     * still gives distinct streams per thread and per process. */
    uint64_t x = seed[0] ^ (uint64_t)posthog__mono_ns() ^ ((uint64_t)getpid() << 32) ^
                 (uint64_t)(uintptr_t)r;
    for (int i = 0; i < 4; i++) r->s[i] = seed[i] ^ splitmix64(&x);
    r->generation = gen;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t posthog__rand_u64(void) {
    rng_t *r = &tl_rng;
    /* relaxed: the generation only needs to be eventually seen; the child
     * handler runs before any thread of the child exists but this one. */
    unsigned gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (__builtin_expect(r->generation != gen, 0)) rng_seed(r, gen);
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void posthog__rand_fork_child(void) {
    /* relaxed: pairs with the relaxed load above; single-threaded child */
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- UUID */

void posthog__uuid_v7(uint8_t out[16], int64_t unix_ms) {
    uint64_t ms = (uint64_t)unix_ms;
    uint64_t a = posthog__rand_u64(), b = posthog__rand_u64();
    out[0] = (uint8_t)(ms >> 40);
    out[1] = (uint8_t)(ms >> 32);
    out[2] = (uint8_t)(ms >> 24);
    out[3] = (uint8_t)(ms >> 16);
    out[4] = (uint8_t)(ms >> 8);
    out[5] = (uint8_t)ms;
    out[6] = (uint8_t)(0x70 | ((a >> 8) & 0x0f)); /* version 7 */
    out[7] = (uint8_t)a;
    out[8] = (uint8_t)(0x80 | ((b >> 56) & 0x3f)); /* variant 10 */
    for (int i = 9; i < 16; i++) out[i] = (uint8_t)(b >> (8 * (15 - i)));
}


/* "00".."ff": one two-char load per byte (the uuid of every event). */
#define HD(n) ((char)((n) < 10 ? '0' + (n) : 'a' + (n) - 10))
#define H1(x) {HD((x) >> 4), HD((x) & 15)}
#define H4(x) H1(x), H1((x) + 1), H1((x) + 2), H1((x) + 3)
#define H16(x) H4(x), H4((x) + 4), H4((x) + 8), H4((x) + 12)
#define H64(x) H16(x), H16((x) + 16), H16((x) + 32), H16((x) + 48)
static const char hexpair[256][2] = {H64(0), H64(64), H64(128), H64(192)};
#undef H64
#undef H16
#undef H4
#undef H1
#undef HD

void posthog__uuid_format(char out[PH_UUID_STR_LEN], const uint8_t u[16]) {
    /* 8-4-4-4-12 */
    static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (int i = 0; i < 16; i++) memcpy(out + at[i], hexpair[u[i]], 2);
    out[8] = out[13] = out[18] = out[23] = '-';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int posthog__uuid_parse(const char *s, size_t len, uint8_t out[16]) {
    if (len != PH_UUID_STR_LEN) return -1;
    int n = 0;
    for (size_t i = 0; i < len;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return -1;
            i++;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0 || (i + 1 == 8 || i + 1 == 13 || i + 1 == 18 || i + 1 == 23))
            return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return n == 16 ? 0 : -1;
}

char *posthog__fmt_u64(char *o, uint64_t v, int width) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width && n < (int)sizeof tmp) tmp[n++] = '0';
    while (n) *o++ = tmp[--n];
    return o;
}

/* ---------------------------------------------------------------- time */

/* Days since 1970-01-01 <-> proleptic Gregorian dates (Howard Hinnant's
 * algorithms), for any int64 year. */
void posthog__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

int64_t posthog__days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void put2(char *p, unsigned v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* The "YYYY-MM-DDTHH:MM:SS." of the last second this thread formatted:
 * events come many per second, so most calls only write the milliseconds. */
static _Thread_local struct {
    int64_t secs;
    bool valid;
    char text[20];
} tl_iso;

void posthog__iso8601_ms(char out[PH_ISO8601_LEN], int64_t unix_ms) {
    int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
    unsigned ms = (unsigned)(unix_ms - secs * 1000);
    if (tl_iso.valid && tl_iso.secs == secs) {
        memcpy(out, tl_iso.text, 20);
        out[20] = (char)('0' + ms / 100);
        out[21] = (char)('0' + ms / 10 % 10);
        out[22] = (char)('0' + ms % 10);
        out[23] = 'Z';
        return;
    }
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    unsigned sod = (unsigned)(secs - days * 86400);
    int64_t y64;
    unsigned mo, d;
    posthog__civil_from_days(days, &y64, &mo, &d);
    int y = y64 < 0 ? 0 : y64 > 9999 ? 9999 : (int)y64;
    out[0] = (char)('0' + y / 1000);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    put2(out + 5, mo);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, sod / 3600);
    out[13] = ':';
    put2(out + 14, sod / 60 % 60);
    out[16] = ':';
    put2(out + 17, sod % 60);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    memcpy(tl_iso.text, out, 20);
    tl_iso.secs = secs;
    tl_iso.valid = true;
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int posthog__iso8601_parse(const char *s, size_t len, int64_t *out_ms) {
    int y, mo, d, h, mi, se, ms = 0;
    if (len < 20) return -1;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &se))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60) return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return -1;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        i++;
        int nd = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (nd < 3) ms = ms * 10 + (s[i] - '0');
            nd++;
            i++;
        }
        if (nd == 0) return -1;
        for (; nd < 3; nd++) ms *= 10;
    }
    int64_t off_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        int sign = s[i] == '-' ? -1 : 1;
        if (len - i == 6 && s[i + 3] == ':') {
            if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om)) return -1;
        } else if (len - i == 5) {
            if (digits(s + i + 1, 2, &oh) || digits(s + i + 3, 2, &om)) return -1;
        } else {
            return -1;
        }
        if (oh > 23 || om > 59) return -1;
        off_min = sign * (oh * 60 + om);
        i = len;
    } else {
        return -1;
    }
    if (i != len) return -1;
    int64_t days = posthog__days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - off_min * 60;
    *out_ms = secs * 1000 + ms;
    return 0;
}

/* ---------------------------------------------------------------- HTTP-date */

/* Index 1..12 of a three-letter month name (any case), 0 if none. */
static int month_of(const char *p) {
    static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    for (int i = 0; i < 12; i++)
        if (!strncasecmp(p, names + 3 * i, 3)) return i + 1;
    return 0;
}

/* The length of the day name at p (Mon..Sun, or Monday..Sunday when
 * `full`), 0 if none. */
static size_t day_name(const char *p, bool full) {
    static const char *const names[] = {"monday", "tuesday", "wednesday", "thursday",
                                        "friday", "saturday", "sunday"};
    for (int i = 0; i < 7; i++) {
        size_t n = full ? strlen(names[i]) : 3;
        if (!strncasecmp(p, names[i], n)) return n;
    }
    return 0;
}

/* "HH:MM:SS" */
static int clock_of(const char *p, int *h, int *mi, int *se) {
    if (digits(p, 2, h) || p[2] != ':' || digits(p + 3, 2, mi) || p[5] != ':' ||
        digits(p + 6, 2, se))
        return -1;
    return *h > 23 || *mi > 59 || *se > 60 ? -1 : 0;
}

int posthog__parse_http_date(const char *s, int64_t now_s, int64_t *out_s) {
    int y, mo, d, h, mi, se;
    size_t n;
    while (*s == ' ' || *s == '\t') s++;
    const char *p;
    if ((n = day_name(s, false)) && s[n] == ',') {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        p = s + n + 1;
        if (*p++ != ' ' || digits(p, 2, &d) || p[2] != ' ' || !(mo = month_of(p + 3)) ||
            p[6] != ' ' || digits(p + 7, 4, &y) || p[11] != ' ' || clock_of(p + 12, &h, &mi, &se) ||
            p[20] != ' ' || strncasecmp(p + 21, "GMT", 3))
            return -1;
        p += 24;
    } else if ((n = day_name(s, true)) && s[n] == ',') {
        /* obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT; a two-digit
         * year more than 50 years ahead is in the past century (RFC 7231) */
        p = s + n + 1;
        int yy;
        if (*p++ != ' ' || digits(p, 2, &d) || p[2] != '-' || !(mo = month_of(p + 3)) ||
            p[6] != '-' || digits(p + 7, 2, &yy) || p[9] != ' ' || clock_of(p + 10, &h, &mi, &se) ||
            p[18] != ' ' || strncasecmp(p + 19, "GMT", 3))
            return -1;
        int64_t now_y, cent;
        unsigned um, ud;
        posthog__civil_from_days(now_s / 86400, &now_y, &um, &ud);
        cent = now_y - now_y % 100;
        y = (int)(cent + yy);
        if (y > now_y + 50) y -= 100;
        p += 22;
    } else if ((n = day_name(s, false)) && s[n] == ' ') {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        p = s + n + 1;
        if (!(mo = month_of(p)) || p[3] != ' ') return -1;
        p += 4;
        if (*p == ' ') {
            if (digits(p + 1, 1, &d)) return -1;
        } else if (digits(p, 2, &d)) {
            return -1;
        }
        if (p[2] != ' ' || clock_of(p + 3, &h, &mi, &se) || p[11] != ' ' || digits(p + 12, 4, &y))
            return -1;
        p += 16;
    } else {
        return -1;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p) return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) return -1;
    *out_s = posthog__days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
             se;
    return 0;
}

/* ---------------------------------------------------------------- JSON text */

static bool json_blank(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

char *posthog__json_append_members(const char *obj, const char *more) {
    const char *p = obj ? obj : "{}";
    size_t pl = strlen(p), ml = strlen(more);
    while (pl && json_blank(p[pl - 1])) pl--;
    const char *q = p;
    while (json_blank(*q)) q++;
    if (!pl || p[pl - 1] != '}' || *q != '{' || ml < 2 || more[0] != '{' || more[ml - 1] != '}')
        return NULL;
    bool empty = true, more_empty = true;
    for (const char *s = q + 1; s < p + pl - 1 && empty; s++) empty = json_blank(*s);
    for (const char *s = more + 1; s < more + ml - 1 && more_empty; s++) more_empty = json_blank(*s);
    char *out = malloc(pl + ml + 2);
    if (!out) return NULL;
    memcpy(out, p, pl - 1); /* without its closing brace */
    size_t w = pl - 1;
    if (more_empty) {
        out[w++] = '}';
    } else {
        if (!empty) out[w++] = ',';
        memcpy(out + w, more + 1, ml - 1); /* the members and the closing brace */
        w += ml - 1;
    }
    out[w] = '\0';
    return out;
}
