/*
 * Value parsers of the flags engine: numbers, the server's string form of
 * a JSON value, semantic versions and ranges, absolute and relative dates,
 * and the translation of the server's regex dialect (Rust fancy_regex,
 * close to Python's re) into POSIX extended regular expressions.
 * All functions are pure: no state, no allocation.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags_int.h"
#include "util.h"

/* ------------------------------------------------------------ numbers */

/* Rust's str::parse::<f64>: optional sign, decimal digits with an optional
 * fraction and exponent, or inf/infinity/nan (any case). No surrounding
 * whitespace, no hex, no empty string. */
bool posthog__flags_parse_f64(const char *s, double *out) {
    if (!s || !*s) return false;
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity") || !strcasecmp(p, "nan")) {
        double v = (tolower((unsigned char)p[0]) == 'n') ? NAN : INFINITY;
        *out = *s == '-' ? -v : v;
        return true;
    }
    const char *q = p;
    size_t digits = 0;
    while (isdigit((unsigned char)*q)) q++, digits++;
    if (*q == '.') {
        q++;
        while (isdigit((unsigned char)*q)) q++, digits++;
    }
    if (!digits) return false;
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!isdigit((unsigned char)*q)) return false;
        while (isdigit((unsigned char)*q)) q++;
    }
    if (*q) return false;
    char *end;
    double v = strtod(s, &end);
    if (end != q) return false;
    *out = v; /* overflow gives +-inf like Rust */
    return true;
}

/* serde_json prints an f64 with the shortest text that reads back as the
 * same double; integral values keep a ".0". cJSON does not remember how a
 * number was written, so integral values that fit print as integers (the
 * form both 1 and 1.0 take when they come from a C caller); see
 * docs/flags.md. */
static void number_text(double v, char *buf, size_t cap) {
    if (isnan(v) || isinf(v)) {
        snprintf(buf, cap, "null");
        return;
    }
    if (ph_fabs(v) < 9007199254740992.0 && v == ph_floor(v)) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

const char *posthog__flags_value_text(const cJSON *v, char *buf, size_t cap) {
    if (!v) return NULL;
    if (cJSON_IsString(v)) return v->valuestring ? v->valuestring : "";
    if (cJSON_IsNumber(v)) {
        number_text(v->valuedouble, buf, cap);
        return buf;
    }
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNull(v)) return "null";
    /* arrays and objects: their compact JSON text, if it fits */
    if (!cJSON_PrintPreallocated((cJSON *)v, buf, (int)cap, 0)) return NULL;
    return buf;
}

/* ------------------------------------------------------------ semver */

static bool parse_u64_digits(const char *s, size_t n, uint64_t *out) {
    if (!n) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Identifiers of a pre-release: non-empty, [0-9A-Za-z-], dot-separated;
 * numeric ones without leading zeros (the semver crate's rules). */
static bool valid_pre(const char *s, size_t n, bool is_build) {
    if (!n) return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (!len) return false;
            bool numeric = true;
            for (size_t j = start; j < i; j++)
                if (!isdigit((unsigned char)s[j])) numeric = false;
            if (numeric && !is_build && len > 1 && s[start] == '0') return false;
            start = i + 1;
            continue;
        }
        if (!isalnum((unsigned char)s[i]) && s[i] != '-') return false;
    }
    return true;
}

/*
 * The server's to_semver_representation: trim, strip one leading 'v', then
 * canonicalise the numeric core (strip leading zeros of all-digit parts,
 * pad to three parts) and parse strictly. Build metadata is accepted and
 * ignored for ordering here (the server's ClickHouse twin ignores it too;
 * the semver crate would order by it: see docs/flags.md).
 */
bool posthog__flags_semver_parse(const char *s, size_t n, ph_semver_t *out) {
    if (n && *s == 'v') s++, n--; /* the server strips the 'v' before trimming */
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    size_t core = 0;
    while (core < n && s[core] != '-' && s[core] != '+') core++;
    uint64_t part[3] = {0, 0, 0};
    size_t nparts = 0, start = 0;
    for (size_t i = 0; i <= core; i++) {
        if (i < core && s[i] != '.') continue;
        if (nparts == 3) return false;
        const char *p = s + start;
        size_t len = i - start;
        while (len > 1 && *p == '0') p++, len--; /* "08" -> "8" */
        if (!parse_u64_digits(p, len, &part[nparts])) return false;
        nparts++;
        start = i + 1;
    }
    out->major = part[0];
    out->minor = part[1];
    out->patch = part[2];
    out->pre = out->build = NULL;
    out->pre_len = out->build_len = 0;
    if (core < n) {
        size_t plus = core;
        while (plus < n && s[plus] != '+') plus++;
        if (s[core] == '-') {
            if (!valid_pre(s + core + 1, plus - core - 1, false)) return false;
            out->pre = s + core + 1;
            out->pre_len = plus - core - 1;
        }
        if (plus < n) {
            if (!valid_pre(s + plus + 1, n - plus - 1, true)) return false;
            out->build = s + plus + 1;
            out->build_len = n - plus - 1;
        }
    }
    return true;
}

/* Dot-separated identifiers in order; a shorter list that is a prefix of
 * a longer one sorts first. */
static int cmp_idents(const char *p, size_t pn, const char *q, size_t qn);

static int cmp_ident(const char *a, size_t an, const char *b, size_t bn) {
    bool anum = true, bnum = true;
    for (size_t i = 0; i < an; i++) anum &= isdigit((unsigned char)a[i]) != 0;
    for (size_t i = 0; i < bn; i++) bnum &= isdigit((unsigned char)b[i]) != 0;
    if (anum && bnum) {
        size_t za = 0, zb = 0; /* build identifiers may have leading zeros */
        while (za + 1 < an && a[za] == '0') za++;
        while (zb + 1 < bn && b[zb] == '0') zb++;
        if (an - za != bn - zb) return an - za < bn - zb ? -1 : 1;
        int c = memcmp(a + za, b + zb, an - za);
        if (c) return (c > 0) - (c < 0);
        return (an > bn) - (an < bn);
    }
    if (anum != bnum) return anum ? -1 : 1; /* numeric < alphanumeric */
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return (c > 0) - (c < 0);
    return (an > bn) - (an < bn);
}

int posthog__flags_semver_cmp(const ph_semver_t *a, const ph_semver_t *b) {
    if (a->major != b->major) return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor) return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch) return a->patch < b->patch ? -1 : 1;
    if (!a->pre_len != !b->pre_len) /* a release sorts after its pre-releases */
        return (a->pre_len == 0) - (b->pre_len == 0);
    int c = a->pre_len ? cmp_idents(a->pre, a->pre_len, b->pre, b->pre_len) : 0;
    if (c) return c;
    /* the semver crate orders (and compares) build metadata too; none first */
    if (!a->build_len || !b->build_len) return (a->build_len != 0) - (b->build_len != 0);
    return cmp_idents(a->build, a->build_len, b->build, b->build_len);
}

static int cmp_idents(const char *p, size_t pn, const char *q, size_t qn) {
    for (;;) {
        size_t i = 0, j = 0;
        while (i < pn && p[i] != '.') i++;
        while (j < qn && q[j] != '.') j++;
        int c = cmp_ident(p, i, q, j);
        if (c) return c;
        bool pend = i == pn, qend = j == qn;
        if (pend || qend) return (int)qend - (int)pend; /* fewer identifiers sort first */
        p += i + 1, pn -= i + 1;
        q += j + 1, qn -= j + 1;
    }
}

/*
 * ~X.Y.Z   >= X.Y.Z, < X.(Y+1).0          (after canonicalisation, so "~1" is ~1.0.0)
 * ^X.Y.Z   >= X.Y.Z, < (X+1).0.0; X == 0: < 0.(Y+1).0; X == Y == 0: < 0.0.(Z+1)
 * wildcard "*" any; "1.*" / "1.*.*" [1.0.0, 2.0.0); "1.2.*" [1.2.0, 1.3.0);
 *          without a '*' the semver crate reads a bare version as ^version.
 */
bool posthog__flags_semver_range(ph_op_t op, const char *s, ph_semver_range_t *r) {
    memset(r, 0, sizeof *r);
    size_t n = strlen(s);
    if (op == PH_OP_SEMVER_WILDCARD) {
        while (n && isspace((unsigned char)*s)) s++, n--;
        if (n && *s == 'v') s++, n--;
        while (n && isspace((unsigned char)s[n - 1])) n--;
        if (memchr(s, '*', n) || memchr(s, 'x', n) || memchr(s, 'X', n)) {
            uint64_t part[3] = {0, 0, 0};
            size_t nparts = 0, nnum = 0, start = 0;
            bool seen_star = false;
            for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.') continue;
                if (nparts == 3) return false;
                const char *p = s + start;
                size_t len = i - start;
                if (len == 1 && (*p == '*' || *p == 'x' || *p == 'X')) {
                    seen_star = true;
                } else {
                    if (seen_star) return false; /* "1.*.3" */
                    while (len > 1 && *p == '0') p++, len--;
                    if (!parse_u64_digits(p, len, &part[nparts])) return false;
                    nnum++;
                }
                nparts++;
                start = i + 1;
            }
            r->lo.major = part[0];
            r->lo.minor = part[1];
            r->lo.patch = 0;
            if (nnum == 0) return true; /* "*": no bounds */
            r->hi_set = true;
            if (nnum == 1) {
                r->hi.major = part[0] + 1;
            } else {
                r->hi.major = part[0];
                r->hi.minor = part[1] + 1;
            }
            return nnum < 3;
        }
        op = PH_OP_SEMVER_CARET;
    }
    ph_semver_t v;
    if (!posthog__flags_semver_parse(s, n, &v)) return false;
    r->lo = v;
    r->hi_set = true;
    if (op == PH_OP_SEMVER_TILDE) {
        r->hi.major = v.major;
        r->hi.minor = v.minor + 1;
    } else if (v.major > 0) {
        r->hi.major = v.major + 1;
    } else if (v.minor > 0) {
        r->hi.minor = v.minor + 1;
    } else {
        r->hi.patch = v.patch + 1;
    }
    /* hi without a pre-release: "< 1.3.0" excludes 1.3.0-alpha as well in
     * the semver crate only through the pre-release rule below. */
    return true;
}

bool posthog__flags_semver_in_range(const ph_semver_t *v, const ph_semver_range_t *r) {
    /* The semver crate matches a pre-release only against a comparator of
     * the same major.minor.patch that itself has a pre-release. */
    if (v->pre_len) {
        if (!r->lo.pre_len || r->lo.major != v->major || r->lo.minor != v->minor ||
            r->lo.patch != v->patch)
            return false;
    }
    if (posthog__flags_semver_cmp(v, &r->lo) < 0) return false;
    if (r->hi_set && posthog__flags_semver_cmp(v, &r->hi) >= 0) return false;
    return true;
}

/* ------------------------------------------------------------ dates */

static unsigned days_in_month(int64_t y, unsigned m) {
    static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/*
 * The formats the server parses itself: RFC 3339 ("T", "t" or " " between
 * date and time, "Z"/"z" or +-HH:MM), a bare date, and naive
 * "YYYY-MM-DD[ T]HH:MM[:SS[.f]]". Naive values are UTC here (the server
 * uses the team's time zone, which the definitions do not carry).
 * Returns 1 parsed, 0 not one of these forms, -1 a YYYY-MM-DD that is no
 * calendar date (no parser reads "2024-02-30").
 */
int posthog__flags_parse_date(const char *s, int64_t *us) {
    int y, mo, d, h = 0, mi = 0, sec = 0;
    size_t n = strlen(s);
    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)mo)) return -1;
    const char *p = s + 10;
    int64_t frac_us = 0, offset_s = 0;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ') return 0;
        p++;
        if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi)) return 0;
        p += 5;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec)) return 0;
            p += 3;
            if (*p == '.') {
                p++;
                int nd = 0;
                int64_t scale = 100000;
                while (isdigit((unsigned char)*p)) {
                    if (nd < 6) frac_us += (*p - '0') * scale, scale /= 10;
                    p++, nd++;
                }
                if (!nd) return 0;
            }
            if (*p == 'Z' || *p == 'z') {
                p++;
            } else if (*p == '+' || *p == '-') {
                int oh, om;
                if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om)) return 0;
                offset_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
                p += 6;
            }
        }
        if (*p || h > 23 || mi > 59 || sec > 60) return 0;
    }
    int64_t t = posthog__days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec -
                offset_s;
    *us = t * 1000000 + frac_us;
    return 1;
}

/* ^-?[0-9]+[hdwmy]$ with the number below 10000 (the server's rule).
 * Returns 1 parsed, 0 another form, -1 this form with a number too large
 * (then no parser of the server reads it as a date). */
int posthog__flags_parse_relative(const char *s, int32_t *n, char *unit) {
    const char *p = s;
    if (*p == '-') p++;
    int64_t v = 0;
    bool big = false;
    const char *start = p;
    while (isdigit((unsigned char)*p)) {
        if (v < 10000) v = v * 10 + (*p - '0');
        if (v >= 10000) big = true;
        p++;
    }
    if (p == start || !*p || !strchr("hdwmy", *p) || p[1]) return 0;
    if (big) return -1;
    *n = (int32_t)v;
    *unit = *p;
    return 1;
}

/* now minus n units; months and years step one at a time clamping the day
 * (relativedelta, as the server does it). */
int64_t posthog__flags_relative_to_us(int32_t n, char unit, int64_t now_ms) {
    int64_t now_us = now_ms * 1000;
    switch (unit) {
    case 'h': return now_us - (int64_t)n * 3600 * 1000000;
    case 'd': return now_us - (int64_t)n * 86400 * 1000000;
    case 'w': return now_us - (int64_t)n * 7 * 86400 * 1000000;
    default: break;
    }
    int64_t day = now_us >= 0 ? now_us / 86400000000 : -((-now_us + 86399999999) / 86400000000);
    int64_t tod = now_us - day * 86400000000;
    int64_t y;
    unsigned m, d;
    posthog__civil_from_days(day, &y, &m, &d);
    for (int32_t i = 0; i < n; i++) {
        if (unit == 'm') {
            if (m == 1) m = 12, y--;
            else m--;
        } else {
            y--;
        }
        if (d > days_in_month(y, m)) d = days_in_month(y, m);
    }
    return posthog__days_from_civil(y, m, d) * 86400000000 + tod;
}

/* ------------------------------------------------------------ regex */

typedef struct {
    char *out;
    size_t len, cap;
    bool overflow;
} rbuf_t;

static void put(rbuf_t *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->overflow = true;
        return;
    }
    memcpy(b->out + b->len, s, n);
    b->len += n;
    b->out[b->len] = 0;
}

static void putc_(rbuf_t *b, char c) {
    char s[2] = {c, 0};
    put(b, s);
}

/* A bracket expression starting after '['. Python escapes inside brackets
 * become POSIX's rules: ']' first, '-' last, no backslash escapes.
 * Returns the index after ']' or 0 when invalid, -1 when unsupported. */
static long bracket(const char *p, long i, rbuf_t *b) {
    char lit[256];
    bool have[256] = {false};
    char body[512];
    size_t bl = 0;
    bool neg = false;
    (void)lit;
    if (p[i] == '^') neg = true, i++;
    bool first = true;
    for (;; first = false) {
        char c = p[i];
        if (!c) return 0;
        if (c == ']' && !first) break;
        if (c == '[' && p[i + 1] == ':') { /* [:alpha:] */
            const char *e = strstr(p + i + 2, ":]");
            if (!e) return -1;
            size_t n = (size_t)(e - (p + i)) + 2;
            if (bl + n >= sizeof body) return -1;
            memcpy(body + bl, p + i, n);
            bl += n;
            i += (long)n;
            continue;
        }
        if (c == '\\') {
            char e = p[i + 1];
            const char *cls = NULL;
            if (!e) return 0;
            if (e == 'd') cls = "0-9";
            else if (e == 'w') cls = "[:alnum:]_";
            else if (e == 's') cls = "[:space:]";
            else if (e == 'D' || e == 'W' || e == 'S') return -1;
            else if (e == 'n') e = '\n';
            else if (e == 't') e = '\t';
            else if (e == 'r') e = '\r';
            else if (isalnum((unsigned char)e)) return -1; /* \x, \u, \p ... */
            if (cls) {
                size_t n = strlen(cls);
                if (bl + n >= sizeof body) return -1;
                memcpy(body + bl, cls, n);
                bl += n;
            } else {
                have[(unsigned char)e] = true; /* a literal, placed below */
            }
            i += 2;
            continue;
        }
        if (c == ']' || (c == '-' && (first || p[i + 1] == ']'))) {
            have[(unsigned char)c] = true;
            i++;
            continue;
        }
        if (bl + 1 >= sizeof body) return -1;
        body[bl++] = c;
        i++;
    }
    put(b, neg ? "[^" : "[");
    if (have[']']) putc_(b, ']');
    for (int c = 1; c < 256; c++)
        if (have[c] && c != ']' && c != '-' && c != '^') putc_(b, (char)c);
    body[bl] = 0;
    put(b, body);
    if (have['^']) putc_(b, '^');
    if (have['-']) putc_(b, '-');
    put(b, "]");
    return i + 1;
}

int posthog__flags_regex_translate(const char *p, char *out, size_t cap, bool *icase) {
    rbuf_t b = {out, 0, cap, false};
    out[0] = 0;
    *icase = false;
    long i = 0;
    int depth = 0;
    if (!strncmp(p, "(?i)", 4)) *icase = true, i = 4;
    while (p[i]) {
        char c = p[i];
        if (c == '\\') {
            char e = p[i + 1];
            if (!e) return -1; /* dangling escape: invalid for the server too */
            i += 2;
            switch (e) {
            case 'd': put(&b, "[0-9]"); continue;
            case 'D': put(&b, "[^0-9]"); continue;
            case 'w': put(&b, "[[:alnum:]_]"); continue;
            case 'W': put(&b, "[^[:alnum:]_]"); continue;
            case 's': put(&b, "[[:space:]]"); continue;
            case 'S': put(&b, "[^[:space:]]"); continue;
            case 'n': put(&b, "\n"); continue;
            case 't': put(&b, "\t"); continue;
            case 'r': put(&b, "\r"); continue;
            default: break;
            }
            if (isalnum((unsigned char)e)) return 0; /* \b, \A, \1, \x41, \p{..}: not POSIX */
            if (strchr(".[]()*+?{}|^$\\", e)) {
                putc_(&b, '\\');
                putc_(&b, e);
            } else {
                putc_(&b, e); /* \/ \- \: ... are plain characters */
            }
            continue;
        }
        if (c == '[') {
            long r = bracket(p, i + 1, &b);
            if (r == 0) return -1;
            if (r < 0) return 0;
            i = r;
            continue;
        }
        if (c == '(') {
            depth++;
            if (p[i + 1] == '?') {
                if (p[i + 2] == ':') {
                    put(&b, "(");
                    i += 3;
                    continue;
                }
                if (p[i + 2] == 'P' && p[i + 3] == '<') { /* (?P<name>...) */
                    const char *e = strchr(p + i + 4, '>');
                    if (!e) return -1;
                    put(&b, "(");
                    i = (long)(e - p) + 1;
                    continue;
                }
                return 0; /* lookaround, inline flags, atomic groups */
            }
            put(&b, "(");
            i++;
            continue;
        }
        if (c == ')') {
            if (--depth < 0) return -1;
            put(&b, ")");
            i++;
            continue;
        }
        if (c == '.') {
            put(&b, "[^\n]"); /* Rust's '.' does not match a newline */
            i++;
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || c == '}') {
            putc_(&b, c);
            i++;
            /* lazy quantifiers find a match exactly when greedy ones do, and
             * only match/no-match matters here; possessive ones differ */
            if (p[i] == '?') i++;
            else if (p[i] == '+') return 0;
            continue;
        }
        putc_(&b, c);
        i++;
    }
    if (depth) return -1;
    return b.overflow ? 0 : 1;
}

int posthog__flags_date_text(const char *s, int64_t now_ms, int64_t *us) {
    int32_t n;
    char unit;
    int r = posthog__flags_parse_relative(s, &n, &unit);
    if (r > 0) {
        *us = posthog__flags_relative_to_us(n, unit, now_ms);
        return 1;
    }
    if (r < 0) return 0;
    r = posthog__flags_parse_date(s, us);
    if (r) return r > 0 ? 1 : 0;
    for (; *s; s++) /* dateparser's forms all hold a digit */
        if (isdigit((unsigned char)*s)) return -1;
    return 0;
}
