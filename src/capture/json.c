/*
 * json: UTF-8 validation, escaping and a strict validating scanner.
 * The scanner is iterative over an explicit stack so hostile nesting
 * cannot overflow the C stack; depth is capped by the caller, at most
 * PH_EVENT_MAX_DEPTH.
 */
#include "json.h"

#include <assert.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- buf */

void posthog__buf_init(ph_buf_t *b, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void posthog__buf_free(ph_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int posthog__buf_reserve(ph_buf_t *b, size_t extra) {
    if (extra > b->max || b->len > b->max - extra) return -1;
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int posthog__buf_reserve_exact(ph_buf_t *b, size_t extra) {
    if (extra > b->max || b->len > b->max - extra) return -1;
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (need <= b->cap) return 0;
    char *p = realloc(b->data, need);
    if (!p) return -1;
    b->data = p;
    b->cap = need;
    return 0;
}

int posthog__buf_append(ph_buf_t *b, const void *p, size_t n) {
    if (posthog__buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static inline size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

bool posthog__utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(s + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* ---------------------------------------------------------------- escape */

/* Bytes an ASCII byte takes once escaped; 0: copied as is. Designated
 * initialisers, so no entry can drift to a neighbour's index. */
#define CTRL6(b) [b] = 6
static const unsigned char esc_len[256] = {
    CTRL6(0x00), CTRL6(0x01), CTRL6(0x02), CTRL6(0x03), CTRL6(0x04), CTRL6(0x05), CTRL6(0x06),
    CTRL6(0x07), CTRL6(0x0b), CTRL6(0x0e), CTRL6(0x0f), CTRL6(0x10), CTRL6(0x11), CTRL6(0x12),
    CTRL6(0x13), CTRL6(0x14), CTRL6(0x15), CTRL6(0x16), CTRL6(0x17), CTRL6(0x18), CTRL6(0x19),
    CTRL6(0x1a), CTRL6(0x1b), CTRL6(0x1c), CTRL6(0x1d), CTRL6(0x1e), CTRL6(0x1f),
    ['\b'] = 2, ['\t'] = 2, ['\n'] = 2, ['\f'] = 2, ['\r'] = 2, ['"'] = 2, ['\\'] = 2,
};
#undef CTRL6

/* Writes the escape sequence of an ASCII byte that needs one. */
static inline char *write_escape(char *o, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
    }
    return o;
}

size_t posthog__json_escaped_len(const char *s, size_t n) {
    size_t out = n;
    for (size_t i = 0; i < n; i++) {
        unsigned e = esc_len[(unsigned char)s[i]];
        if (e) out += e - 1;
    }
    return out;
}

size_t posthog__json_escape(char *out, const char *s, size_t n) {
    char *o = out;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && !esc_len[(unsigned char)s[i]]) i++;
        memcpy(o, s + start, i - start);
        o += i - start;
        if (i >= n) break;
        o = write_escape(o, (unsigned char)s[i++]);
    }
    return (size_t)(o - out);
}

/*
 * SWAR: a mask with the high bit set in every byte of x that needs work:
 * >= 0x80 (UTF-8 to validate), < 0x20, '"' or '\\'. The subtractions can
 * only mark extra bytes *above* a byte that is really marked, so "any
 * marked byte among the low n" is exact, even with zero padding above.
 */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The word arithmetic below needs the string's first byte in the word's
 * lowest byte (borrows run towards the later bytes, low_bytes_mask keeps
 * the first n): little-endian order. A big-endian CPU (s390x, PowerPC,
 * MIPS-BE) swaps what it loads and stores; little-endian ones are
 * unchanged (the capture path's speed). */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE64(x) __builtin_bswap64(x)
#define LE32(x) __builtin_bswap32(x)
#elif defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LE64(x) (x)
#define LE32(x) (x)
#else
#error "json.c: byte order unknown (neither __ORDER_LITTLE_ENDIAN__ nor __ORDER_BIG_ENDIAN__)"
#endif
static inline uint64_t special_bytes(uint64_t x) {
    uint64_t lt20 = (x - ONES * 0x20) & ~x;
    uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
    uint64_t eq = ((q - ONES) & ~q) | ((b - ONES) & ~b);
    return (x | lt20 | eq) & HIGHS;
}

/* Loads 1 <= n <= 8 bytes, zero padded, with fixed-size loads only
 * (overlapping ones for n < 8), so no libc call and no over-read. */
static inline uint64_t load_partial(const unsigned char *s, size_t n) {
    if (n >= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        return LE64(x);
    }
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        return (uint64_t)LE32(lo) | ((uint64_t)LE32(hi) << (8 * (n - 4)));
    }
    return (uint64_t)s[0] | ((uint64_t)s[n / 2] << (8 * (n / 2))) |
           ((uint64_t)s[n - 1] << (8 * (n - 1)));
}

static inline uint64_t low_bytes_mask(size_t n) {
    return n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

size_t posthog__json_escaped_len_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t out = n, i = 0;
    while (i < n) {
        size_t chunk = n - i < 8 ? n - i : 8;
        uint64_t x = load_partial(s + i, chunk);
        if (!(special_bytes(x) & low_bytes_mask(chunk))) {
            i += chunk;
            continue;
        }
        size_t end = i + chunk;
        while (i < end) {
            unsigned char c = s[i];
            if (c < 0x80) {
                unsigned e = esc_len[c];
                if (e) out += e - 1;
                i++;
                continue;
            }
            size_t l = utf8_seq(s + i, n - i);
            if (!l) return SIZE_MAX;
            i += l;
        }
    }
    return out;
}

size_t posthog__json_escape_valid(char *out, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    char *o = out;
    size_t i = 0;
    while (i < n) {
        size_t chunk = n - i < 8 ? n - i : 8;
        uint64_t x = load_partial(s + i, chunk);
        if (!(special_bytes(x) & low_bytes_mask(chunk))) {
            x = LE64(x); /* back to memory order */
            memcpy(o, &x, 8); /* out has 8 bytes of slack: see json.h */
            o += chunk;
            i += chunk;
            continue;
        }
        size_t end = i + chunk;
        while (i < end) {
            unsigned char c = s[i];
            if (c < 0x80) {
                if (!esc_len[c]) *o++ = (char)c;
                else o = write_escape(o, c);
                i++;
                continue;
            }
            size_t l = utf8_seq(s + i, n - i);
            if (!l) return SIZE_MAX;
            memcpy(o, s + i, l);
            o += l;
            i += l;
        }
    }
    return (size_t)(o - out);
}

int posthog__json_append_string(ph_buf_t *b, const char *s, size_t n) {
    size_t el = posthog__json_escaped_len(s, n);
    if (posthog__buf_reserve(b, el + 2)) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    o += posthog__json_escape(o, s, n);
    *o++ = '"';
    b->len += el + 2;
    b->data[b->len] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- scanner */

typedef struct {
    const unsigned char *s;
    size_t n, i;
    posthog_status_t err;
    int kind; /* PH_JERR_* of a failure the generic status does not tell */
} scan_t;

static inline void skip_ws(scan_t *sc) {
    while (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        sc->i++;
    }
}

static inline int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    *out = v;
    return 0;
}

/* 1 for the bytes a string body holds as they are: not a control char,
 * '"', '\\' or the start of a multi-byte UTF-8 sequence. */
static const unsigned char str_plain[256] = {
#define P16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    P16, P16,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5c '\\' */
    P16, P16,
#undef P16
};

/* At the opening quote; leaves i after the closing quote. */
static int scan_string(scan_t *sc) {
    const unsigned char *s = sc->s;
    size_t n = sc->n, i = sc->i + 1;
    for (;;) {
        /* the plain run: one table load per byte, four at a time */
        while (i + 4 <= n && str_plain[s[i]] & str_plain[s[i + 1]] & str_plain[s[i + 2]] &
                                 str_plain[s[i + 3]])
            i += 4;
        while (i < n && str_plain[s[i]]) i++;
        if (i >= n) goto bad;
        unsigned char c = s[i];
        if (c == '"') break;
        if (c < 0x20) goto bad;
        if (c == '\\') {
            if (i + 1 >= n) goto bad;
            unsigned char e = s[i + 1];
            if (e == 'u') {
                unsigned cp;
                if (i + 6 > n || hex4(s + i + 2, &cp)) goto bad;
                i += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* needs a low surrogate */
                    unsigned lo;
                    if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u' || hex4(s + i + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        goto bad;
                    i += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    goto bad;
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                e != 'r' && e != 't')
                goto bad;
            i += 2;
            continue;
        }
        size_t l = utf8_seq(s + i, n - i);
        if (!l) {
            sc->err = POSTHOG_E_INVALID_UTF8;
            return -1;
        }
        i += l;
    }
    sc->i = i + 1;
    return 0;
bad:
    sc->err = POSTHOG_E_INVALID_JSON;
    return -1;
}

static locale_t c_locale;
static void c_locale_init(void) { c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

double posthog__json_number(const char *text, size_t n) {
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    bool neg = n && p[0] == '-';
    i = neg;
    /* up to 15 digits, no fraction or exponent: exact as an integer */
    uint64_t v = 0;
    while (i < n && i - neg < 15 && p[i] >= '0' && p[i] <= '9') v = v * 10 + (uint64_t)(p[i++] - '0');
    if (i == n && i > (size_t)neg) return neg ? -(double)v : (double)v;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, c_locale_init);
    /* strtod under the C locale: the host may have set one with a decimal comma */
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return NAN; /* out of memory: not a number the caller can use */
    memcpy(buf, text, n);
    buf[n] = '\0';
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    double d = strtod(buf, NULL);
    if (old) uselocale(old);
    if (buf != small) free(buf);
    return d;
}

/* Whether the number text (valid JSON syntax) is within the double range. */
static bool number_in_range(const unsigned char *p, size_t n) {
    return isfinite(posthog__json_number((const char *)p, n));
}

static int scan_number(scan_t *sc) {
    const unsigned char *s = sc->s;
    size_t n = sc->n, i = sc->i;
    if (i < n && s[i] == '-') i++;
    if (i >= n) goto bad;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        goto bad;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') goto bad;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    bool exp = false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        exp = true;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') goto bad;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    /* PostHog's capture service (serde_json) refuses a number beyond the
     * double range (1e400, a 400-digit integer) and with it the whole batch:
     * such a number is invalid here. Only long numbers or ones with an
     * exponent can be out of range, so the common case costs nothing. */
    if (PH_UNLIKELY(exp || i - sc->i > 300) && !number_in_range(s + sc->i, i - sc->i)) {
        sc->kind = PH_JERR_NUMBER;
        goto bad;
    }
    sc->i = i;
    return 0;
bad:
    sc->err = POSTHOG_E_INVALID_JSON;
    return -1;
}

static int scan_literal(scan_t *sc, const char *lit, size_t l) {
    if (sc->n - sc->i < l || memcmp(sc->s + sc->i, lit, l) != 0) {
        sc->err = POSTHOG_E_INVALID_JSON;
        return -1;
    }
    sc->i += l;
    return 0;
}

/* Scans one scalar value or the opening bracket of a container.
 * Returns the PH_JSON_* type, or 0 on error. */
static int scan_value_start(scan_t *sc) {
    skip_ws(sc);
    if (sc->i >= sc->n) {
        sc->err = POSTHOG_E_INVALID_JSON;
        return 0;
    }
    switch (sc->s[sc->i]) {
    case '{': sc->i++; return PH_JSON_OBJECT;
    case '[': sc->i++; return PH_JSON_ARRAY;
    case '"': return scan_string(sc) ? 0 : PH_JSON_STRING;
    case 't': return scan_literal(sc, "true", 4) ? 0 : PH_JSON_LITERAL;
    case 'f': return scan_literal(sc, "false", 5) ? 0 : PH_JSON_LITERAL;
    case 'n': return scan_literal(sc, "null", 4) ? 0 : PH_JSON_LITERAL;
    default: return scan_number(sc) ? 0 : PH_JSON_NUMBER;
    }
}

#define FAIL(status)                                                                           \
    do {                                                                                       \
        *scp = sc;                                                                             \
        return (status);                                                                       \
    } while (0)

static posthog_status_t scan_doc(scan_t *scp, int max_depth, int *type_out,
                                 ph_json_keys_t *keys) {
    scan_t sc = *scp;
    char stack[PH_EVENT_MAX_DEPTH]; /* 'o' or 'a' */
    int depth = 0;
    if (keys) {
        keys->count = 0;
        keys->overflow = false;
        keys->inner_off = keys->inner_len = 0;
    }
    int top = scan_value_start(&sc);
    if (!top) FAIL(sc.err);
    if (type_out) *type_out = top;
    if (top == PH_JSON_OBJECT || top == PH_JSON_ARRAY) {
        size_t inner_start = sc.i;
        stack[depth++] = top == PH_JSON_OBJECT ? 'o' : 'a';
        bool first = true;
        while (depth > 0) {
            skip_ws(&sc);
            if (sc.i >= sc.n) FAIL(POSTHOG_E_INVALID_JSON);
            char kind = stack[depth - 1];
            unsigned char c = sc.s[sc.i];
            if (c == (kind == 'o' ? '}' : ']')) {
                if (!first) FAIL(POSTHOG_E_INVALID_JSON); /* closing right after ',' */
                goto close;
            }
            if (kind == 'o') {
                if (c != '"') FAIL(POSTHOG_E_INVALID_JSON);
                size_t kstart = sc.i + 1;
                if (scan_string(&sc)) FAIL(sc.err);
                if (depth == 1 && keys) {
                    if (keys->count < PH_JSON_INLINE_KEYS) {
                        keys->off[keys->count] = (uint32_t)kstart;
                        keys->len[keys->count] = (uint32_t)(sc.i - 1 - kstart);
                    } else {
                        keys->overflow = true;
                    }
                    keys->count++;
                }
                skip_ws(&sc);
                if (sc.i >= sc.n || sc.s[sc.i] != ':') FAIL(POSTHOG_E_INVALID_JSON);
                sc.i++;
            }
            int t = scan_value_start(&sc);
            if (!t) FAIL(sc.err);
            if (t == PH_JSON_OBJECT || t == PH_JSON_ARRAY) {
                if (depth >= max_depth) {
                    sc.kind = PH_JERR_DEPTH;
                    sc.i--; /* at the opener one level too deep */
                    FAIL(POSTHOG_E_INVALID_JSON);
                }
                stack[depth++] = t == PH_JSON_OBJECT ? 'o' : 'a';
                first = true;
                continue;
            }
            /* after a value: ',' or the closer */
            for (;;) {
                skip_ws(&sc);
                if (sc.i >= sc.n) FAIL(POSTHOG_E_INVALID_JSON);
                c = sc.s[sc.i];
                kind = stack[depth - 1];
                if (c == ',') {
                    sc.i++;
                    first = false;
                    break;
                }
                if (c != (kind == 'o' ? '}' : ']')) FAIL(POSTHOG_E_INVALID_JSON);
            close:
                if (depth == 1 && keys && top == PH_JSON_OBJECT) {
                    size_t a = inner_start, b = sc.i;
                    while (a < b && (sc.s[a] == ' ' || sc.s[a] == '\t' || sc.s[a] == '\n' ||
                                     sc.s[a] == '\r'))
                        a++;
                    while (b > a && (sc.s[b - 1] == ' ' || sc.s[b - 1] == '\t' ||
                                     sc.s[b - 1] == '\n' || sc.s[b - 1] == '\r'))
                        b--;
                    keys->inner_off = a;
                    keys->inner_len = b - a;
                }
                sc.i++;
                depth--;
                first = true;
                if (depth == 0) break;
            }
        }
    }
    skip_ws(&sc);
    if (sc.i != sc.n) FAIL(POSTHOG_E_INVALID_JSON);
    return POSTHOG_OK;
}
#undef FAIL

posthog_status_t posthog__json_check(const char *s, size_t n, int max_depth, int *type_out,
                                     ph_json_keys_t *keys, ph_json_err_t *err) {
    assert(max_depth > 0 && max_depth <= PH_EVENT_MAX_DEPTH);
    if (max_depth > PH_EVENT_MAX_DEPTH) max_depth = PH_EVENT_MAX_DEPTH;
    scan_t sc = {(const unsigned char *)s, n, 0, POSTHOG_OK, 0};
    posthog_status_t st = scan_doc(&sc, max_depth, type_out, keys);
    if (st != POSTHOG_OK && err) {
        err->kind = st == POSTHOG_E_INVALID_UTF8 ? PH_JERR_UTF8 : sc.kind ? sc.kind : PH_JERR_SYNTAX;
        err->off = sc.i;
        err->max_depth = max_depth;
    }
    return st;
}

posthog_status_t posthog__json_validate(const char *s, size_t n, int *type_out,
                                        ph_json_keys_t *keys) {
    return posthog__json_check(s, n, PH_JSON_MAX_DEPTH, type_out, keys, NULL);
}

posthog_status_t posthog__json_validate_event(const char *s, size_t n, int *type_out,
                                              ph_json_keys_t *keys) {
    return posthog__json_check(s, n, PH_EVENT_MAX_DEPTH, type_out, keys, NULL);
}

void posthog__json_err_text(const ph_json_err_t *e, const char *what, char *buf, size_t n) {
    switch (e->kind) {
    case PH_JERR_DEPTH:
        snprintf(buf, n,
                 "%s nests objects and arrays deeper than %d levels (at byte %zu); at most %d "
                 "levels are allowed",
                 what, e->max_depth, e->off, e->max_depth);
        break;
    case PH_JERR_NUMBER:
        snprintf(buf, n,
                 "%s has a number beyond the range of a double at byte %zu, which PostHog "
                 "cannot store; numbers must lie within +-1.7976931348623157e308",
                 what, e->off);
        break;
    case PH_JERR_UTF8:
        snprintf(buf, n, "%s is not valid UTF-8 (at byte %zu)", what, e->off);
        break;
    default:
        snprintf(buf, n, "%s is not valid JSON (at byte %zu)", what, e->off);
    }
}

int posthog__json_depth(const char *s, size_t n) {
    int depth = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') { /* skip the string; escapes cannot hide a quote from this loop */
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
        } else if (c == '{' || c == '[') {
            if (++depth > max) max = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

/* ---------------------------------------------------------------- strings */

/* Decodes a string body byte by byte (validated text: escapes are whole). */
typedef struct {
    const unsigned char *s;
    size_t n, i;
    unsigned char pend[4];
    int np, ip;
} dec_t;

static int dec_next(dec_t *d) {
    if (d->ip < d->np) return d->pend[d->ip++];
    if (d->i >= d->n) return -1;
    unsigned char c = d->s[d->i];
    if (c != '\\' || d->i + 1 >= d->n) {
        d->i++;
        return c;
    }
    unsigned char e = d->s[d->i + 1];
    unsigned cp;
    if (e != 'u' || d->i + 6 > d->n || hex4(d->s + d->i + 2, &cp)) {
        d->i += 2;
        switch (e) {
        case 'b': return '\b';
        case 'f': return '\f';
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        default: return e; /* '"', '\\', '/' */
        }
    }
    d->i += 6;
    unsigned lo;
    if (cp >= 0xD800 && cp <= 0xDBFF && d->i + 6 <= d->n && d->s[d->i] == '\\' &&
        d->s[d->i + 1] == 'u' && !hex4(d->s + d->i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        d->i += 6;
    }
    d->ip = 1;
    if (cp < 0x80) {
        d->np = 0;
        return (int)cp;
    }
    if (cp < 0x800) {
        d->pend[0] = (unsigned char)(0xC0 | cp >> 6);
        d->pend[1] = (unsigned char)(0x80 | (cp & 0x3F));
        d->np = 2;
    } else if (cp < 0x10000) {
        d->pend[0] = (unsigned char)(0xE0 | cp >> 12);
        d->pend[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d->pend[2] = (unsigned char)(0x80 | (cp & 0x3F));
        d->np = 3;
    } else {
        d->pend[0] = (unsigned char)(0xF0 | cp >> 18);
        d->pend[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        d->pend[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d->pend[3] = (unsigned char)(0x80 | (cp & 0x3F));
        d->np = 4;
    }
    return d->pend[0];
}

bool posthog__json_str_eq(const char *a, size_t an, const char *b, size_t bn) {
    if (an == bn && memcmp(a, b, an) == 0) return true;
    /* without escapes, different bytes are different strings */
    if (!memchr(a, '\\', an) && !memchr(b, '\\', bn)) return false;
    dec_t da = {(const unsigned char *)a, an, 0, {0}, 0, 0};
    dec_t db = {(const unsigned char *)b, bn, 0, {0}, 0, 0};
    for (;;) {
        int x = dec_next(&da), y = dec_next(&db);
        if (x != y) return false;
        if (x < 0) return true;
    }
}

size_t posthog__json_unescape(char *out, const char *s, size_t n) {
    dec_t d = {(const unsigned char *)s, n, 0, {0}, 0, 0};
    size_t o = 0;
    for (int c; (c = dec_next(&d)) >= 0;) out[o++] = (char)c;
    return o;
}



bool posthog__json_keys_has(const ph_json_keys_t *k, const char *text, const char *key,
                            size_t klen) {
    if (k->overflow)
        return posthog__json_inner_has_key(text + k->inner_off, k->inner_len, key, klen);
    for (size_t i = 0; i < k->count; i++)
        if (posthog__json_str_eq(text + k->off[i], k->len[i], key, klen)) return true;
    return false;
}

bool posthog__json_inner_has_key(const char *inner, size_t n, const char *key, size_t klen) {
    /* Re-scan "{inner}" member by member. inner was validated already. */
    ph_json_iter_t it;
    ph_json_member_t m;
    ph_json_iter_init(&it, inner, n);
    while (posthog__json_next_member(&it, &m))
        if (posthog__json_str_eq(m.key, m.klen, key, klen)) return true;
    return false;
}

bool posthog__json_next_member(ph_json_iter_t *it, ph_json_member_t *m) {
    /* `inner` was validated already: only structure is tracked here. */
    scan_t sc = {(const unsigned char *)it->s, it->n, it->i, POSTHOG_OK, 0};
    skip_ws(&sc);
    if (sc.i < sc.n && sc.s[sc.i] == ',') {
        sc.i++;
        skip_ws(&sc);
    }
    if (sc.i >= sc.n || sc.s[sc.i] != '"') return false;
    size_t ks = sc.i + 1;
    if (scan_string(&sc)) return false;
    m->key = it->s + ks;
    m->klen = sc.i - 1 - ks;
    skip_ws(&sc);
    sc.i++; /* ':' */
    skip_ws(&sc);
    size_t vs = sc.i;
    int depth = 0;
    while (sc.i < sc.n) {
        unsigned char c = sc.s[sc.i];
        if (c == '"') {
            if (scan_string(&sc)) return false;
            continue;
        }
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == ',' && depth == 0) break;
        sc.i++;
    }
    size_t ve = sc.i;
    while (ve > vs && (sc.s[ve - 1] == ' ' || sc.s[ve - 1] == '\t' || sc.s[ve - 1] == '\n' ||
                       sc.s[ve - 1] == '\r'))
        ve--;
    m->val = it->s + vs;
    m->vlen = ve - vs;
    m->start = it->s + (it->i);
    it->i = sc.i;
    return true;
}
