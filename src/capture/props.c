/*
 * props: incremental JSON object/array builder (see props.h).
 * Invariants: text[0] is '{' or '['; text[0..len) is the opener followed
 * by the members separated by ','; member i starts at mstart[i] (its
 * leading ',' included for i > 0) and, in objects, its key's raw text is
 * text[kstart[i] .. kstart[i]+klen[i]).
 */
#include "props.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "util.h"

#define INLINE_TEXT 320
#define INLINE_MEMBERS 12
#define PROPS_MAX_BYTES ((size_t)64 << 20)

struct posthog_props {
    char *text;
    size_t len, cap;
    uint32_t count, mcap;
    uint32_t *mstart, *kstart, *klen;
    bool is_array;
    bool key_escapes; /* some key's text holds an escape (cleared with the builder) */
    char inline_text[INLINE_TEXT];
    uint32_t inline_m[3][INLINE_MEMBERS];
};

static posthog_props_t *props_alloc(bool array) {
    posthog_props_t *p = malloc(sizeof *p);
    if (!p) return NULL;
    p->text = p->inline_text;
    p->cap = INLINE_TEXT;
    p->text[0] = array ? '[' : '{';
    p->len = 1;
    p->count = 0;
    p->mcap = INLINE_MEMBERS;
    p->mstart = p->inline_m[0];
    p->kstart = p->inline_m[1];
    p->klen = p->inline_m[2];
    p->is_array = array;
    p->key_escapes = false;
    return p;
}

posthog_props_t *posthog_props_new(void) { return props_alloc(false); }
posthog_props_t *posthog_props_new_array(void) { return props_alloc(true); }

void posthog_props_clear(posthog_props_t *p) {
    if (!p) return;
    p->len = 1;
    p->count = 0;
    p->key_escapes = false;
}

void posthog_props_free(posthog_props_t *p) {
    if (!p) return;
    if (p->text != p->inline_text) free(p->text);
    if (p->mstart != p->inline_m[0]) {
        free(p->mstart);
        free(p->kstart);
        free(p->klen);
    }
    free(p);
}

/* Room for `extra` more bytes plus closer and NUL. */
static int text_reserve(posthog_props_t *p, size_t extra) {
    if (extra > PROPS_MAX_BYTES || p->len + extra > PROPS_MAX_BYTES) return -1;
    size_t need = p->len + extra + 2;
    if (need <= p->cap) return 0;
    size_t cap = p->cap * 2;
    while (cap < need) cap *= 2;
    char *t;
    if (p->text == p->inline_text) {
        t = malloc(cap);
        if (t) memcpy(t, p->text, p->len);
    } else {
        t = realloc(p->text, cap);
    }
    if (!t) return -1;
    p->text = t;
    p->cap = cap;
    return 0;
}

static int members_reserve(posthog_props_t *p) {
    if (p->count < p->mcap) return 0;
    uint32_t cap = p->mcap * 2;
    uint32_t *a[3];
    uint32_t *old[3] = {p->mstart, p->kstart, p->klen};
    bool was_inline = p->mstart == p->inline_m[0];
    for (int i = 0; i < 3; i++) {
        a[i] = was_inline ? malloc(cap * sizeof(uint32_t)) : realloc(old[i], cap * sizeof(uint32_t));
        if (!a[i]) {
            /* keep what succeeded consistent: realloc'ed ones replace old */
            for (int j = 0; j < i; j++) {
                if (was_inline) free(a[j]);
                else old[j] = a[j];
            }
            if (!was_inline) {
                p->mstart = old[0];
                p->kstart = old[1];
                p->klen = old[2];
            }
            return -1;
        }
        if (was_inline) memcpy(a[i], old[i], p->count * sizeof(uint32_t));
    }
    p->mstart = a[0];
    p->kstart = a[1];
    p->klen = a[2];
    p->mcap = cap;
    return 0;
}

static void remove_member(posthog_props_t *p, uint32_t i) {
    size_t start = p->mstart[i];
    size_t end = i + 1 < p->count ? p->mstart[i + 1] : p->len;
    if (i == 0 && i + 1 < p->count) end++; /* drop the next member's ',' instead */
    size_t cut = end - start;
    memmove(p->text + start, p->text + end, p->len - end);
    p->len -= cut;
    for (uint32_t j = i + 1; j < p->count; j++) {
        p->mstart[j - 1] = p->mstart[j] - (uint32_t)cut;
        p->kstart[j - 1] = p->kstart[j] - (uint32_t)cut;
        p->klen[j - 1] = p->klen[j];
    }
    p->count--;
    if (i == 0 && p->count > 0) {
        /* the new first member lost its ','; its key moved too */
        p->mstart[0] = 1;
    }
}

bool posthog__props_any_key(const posthog_props_t *p, bool (*pred)(const char *, size_t)) {
    for (uint32_t i = 0; i < p->count; i++)
        if (p->text[p->kstart[i]] == '$' && pred(p->text + p->kstart[i], p->klen[i])) return true;
    return false;
}

bool posthog__props_has_key(const posthog_props_t *p, const char *key, size_t klen) {
    if (!p->key_escapes && !memchr(key, '\\', klen)) {
        /* no escapes on either side: equal keys are equal bytes */
        for (uint32_t i = 0; i < p->count; i++)
            if (p->klen[i] == klen && memcmp(p->text + p->kstart[i], key, klen) == 0) return true;
        return false;
    }
    for (uint32_t i = 0; i < p->count; i++)
        if (posthog__json_str_eq(p->text + p->kstart[i], p->klen[i], key, klen)) return true;
    return false;
}

/*
 * Starts a member: checks key/kind, reserves room for the key and
 * `value_room` more bytes, writes [","] ["key":]. Returns the offset where
 * the member began (for rollback), or -1 with *st set.
 */
static long member_begin(posthog_props_t *p, const char *key, size_t value_room,
                         posthog_status_t *st) {
    if (p->is_array ? key != NULL : (key == NULL || !*key)) {
        *st = POSTHOG_E_INVALID_ARG;
        return -1;
    }
    size_t klen = key ? strlen(key) : 0;
    if (value_room > PROPS_MAX_BYTES || klen > PROPS_MAX_BYTES / 8 ||
        text_reserve(p, klen * 6 + value_room + 12) || members_reserve(p)) {
        *st = value_room > PROPS_MAX_BYTES || klen > PROPS_MAX_BYTES / 8 ? POSTHOG_E_TOO_LARGE
                                                                         : POSTHOG_E_NOMEM;
        return -1;
    }
    size_t start = p->len;
    char *o = p->text + p->len;
    if (p->count) *o++ = ',';
    size_t ks = 0, kesc = 0;
    if (key) {
        *o++ = '"';
        ks = (size_t)(o - p->text);
        kesc = posthog__json_escape_valid(o, key, klen);
        if (kesc == SIZE_MAX) {
            *st = POSTHOG_E_INVALID_UTF8;
            return -1;
        }
        o += kesc;
        *o++ = '"';
        *o++ = ':';
        if (kesc != klen) p->key_escapes = true; /* escaping always lengthens */
    }
    p->len = (size_t)(o - p->text);
    p->mstart[p->count] = (uint32_t)start;
    p->kstart[p->count] = (uint32_t)ks;
    p->klen[p->count] = (uint32_t)kesc;
    return (long)start;
}

/* Undoes member_begin after a failed value. */
static void member_abort(posthog_props_t *p, long start) { p->len = (size_t)start; }

/* Finishes the member begun at `start`: drops an earlier one with the same key. */
static posthog_status_t member_end(posthog_props_t *p) {
    uint32_t n = p->count;
    p->count++;
    if (!p->is_array) {
        const char *k = p->text + p->kstart[n];
        uint32_t kl = p->klen[n];
        for (uint32_t i = 0; i < n; i++) {
            const char *ki = p->text + p->kstart[i];
            if (p->klen[i] == kl && ki[0] == k[0] && ki[kl - 1] == k[kl - 1] &&
                memcmp(ki, k, kl) == 0) {
                remove_member(p, i);
                break;
            }
        }
    }
    return POSTHOG_OK;
}

static posthog_status_t append_raw(posthog_props_t *p, const char *key, const char *raw,
                                   size_t n) {
    posthog_status_t st;
    if (member_begin(p, key, n, &st) < 0) return st;
    memcpy(p->text + p->len, raw, n);
    p->len += n;
    return member_end(p);
}

posthog_status_t posthog_props_set_stringn(posthog_props_t *p, const char *key,
                                           const char *value, size_t len) {
    if (!p) return POSTHOG_E_INVALID_ARG;
    if (!value) return posthog_props_set_null(p, key);
    /* Short values: reserve the worst case and escape+validate in one
     * pass. Long ones: measure first so memory stays proportional. */
    size_t room;
    if (len <= 4096) {
        room = len * 6 + 2 + 8; /* escape_valid's slack */
    } else {
        room = posthog__json_escaped_len_valid(value, len);
        if (room == SIZE_MAX) return POSTHOG_E_INVALID_UTF8;
        room += 2 + 8;
    }
    posthog_status_t st;
    long start = member_begin(p, key, room, &st);
    if (start < 0) return st;
    char *o = p->text + p->len;
    *o++ = '"';
    size_t w = posthog__json_escape_valid(o, value, len);
    if (w == SIZE_MAX) {
        member_abort(p, start);
        return POSTHOG_E_INVALID_UTF8;
    }
    o += w;
    *o++ = '"';
    p->len = (size_t)(o - p->text);
    return member_end(p);
}

posthog_status_t posthog_props_set_string(posthog_props_t *p, const char *key,
                                          const char *value) {
    return posthog_props_set_stringn(p, key, value, value ? strlen(value) : 0);
}

posthog_status_t posthog_props_set_int(posthog_props_t *p, const char *key, int64_t value) {
    if (!p) return POSTHOG_E_INVALID_ARG;
    char tmp[24], *o = tmp;
    if (value < 0) *o++ = '-';
    o = posthog__fmt_u64(o, value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value, 0);
    return append_raw(p, key, tmp, (size_t)(o - tmp));
}

/*
 * Shortest round-trip text of a double. Fast path: values with at most 6
 * decimals below 2^53 / 10^6. If n / 10^k (correctly rounded by IEEE
 * division) equals v, then the decimal "n / 10^k" also parses back to v,
 * because strtod rounds the same exact rational. Otherwise %.15g/%.17g.
 */
static size_t format_double(char *out, double v) {
    static const double p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    double a = fabs(v);
    if (a < 9007199254.0) {
        for (int k = 0; k <= 6; k++) {
            double scaled = a * p10[k];
            double n = (double)(uint64_t)scaled;
            if (n != scaled || n / p10[k] != a) continue;
            uint64_t u = (uint64_t)n;
            char *o = out;
            if (signbit(v)) *o++ = '-';
            if (k == 0) {
                o = posthog__fmt_u64(o, u, 0);
                *o++ = '.';
                *o++ = '0';
                return (size_t)(o - out);
            }
            uint64_t ip = u / (uint64_t)p10[k], fp = u % (uint64_t)p10[k];
            o = posthog__fmt_u64(o, ip, 0);
            *o++ = '.';
            char digits[8];
            for (int d = k - 1; d >= 0; d--) {
                digits[d] = (char)('0' + fp % 10);
                fp /= 10;
            }
            memcpy(o, digits, (size_t)k);
            return (size_t)(o + k - out);
        }
    }
    int n = snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v) n = snprintf(out, 32, "%.17g", v);
    return n > 0 ? (size_t)n : 0;
}

posthog_status_t posthog_props_set_double(posthog_props_t *p, const char *key, double value) {
    if (!p) return POSTHOG_E_INVALID_ARG;
    if (!isfinite(value)) return append_raw(p, key, "null", 4);
    char tmp[40];
    size_t n = format_double(tmp, value);
    if (!n) return POSTHOG_E_INTERNAL;
    return append_raw(p, key, tmp, n);
}

posthog_status_t posthog_props_set_bool(posthog_props_t *p, const char *key, int value) {
    if (!p) return POSTHOG_E_INVALID_ARG;
    return value ? append_raw(p, key, "true", 4) : append_raw(p, key, "false", 5);
}

posthog_status_t posthog_props_set_null(posthog_props_t *p, const char *key) {
    if (!p) return POSTHOG_E_INVALID_ARG;
    return append_raw(p, key, "null", 4);
}

/* A member's value sits one level inside the builder, which may itself be
 * nested in others: every builder stays within PH_JSON_MAX_DEPTH, so
 * whatever is built from builders does too. */
#define VALUE_MAX_DEPTH (PH_JSON_MAX_DEPTH - 1)

posthog_status_t posthog_props_set_json(posthog_props_t *p, const char *key, const char *json) {
    if (!p || !json) return POSTHOG_E_INVALID_ARG;
    size_t n = strlen(json);
    posthog_status_t st = posthog__json_check(json, n, VALUE_MAX_DEPTH, NULL, NULL, NULL);
    if (st != POSTHOG_OK) return st;
    while (n && (json[n - 1] == ' ' || json[n - 1] == '\n' || json[n - 1] == '\t' ||
                 json[n - 1] == '\r'))
        n--;
    while (*json == ' ' || *json == '\n' || *json == '\t' || *json == '\r') {
        json++;
        n--;
    }
    return append_raw(p, key, json, n);
}

posthog_status_t posthog_props_set_props(posthog_props_t *p, const char *key,
                                         const posthog_props_t *child) {
    if (!p || !child || child == p) return POSTHOG_E_INVALID_ARG;
    if (posthog__json_depth(child->text, child->len) > VALUE_MAX_DEPTH)
        return POSTHOG_E_INVALID_JSON;
    posthog_status_t st;
    if (member_begin(p, key, child->len + 1, &st) < 0) return st;
    memcpy(p->text + p->len, child->text, child->len);
    p->len += child->len;
    p->text[p->len++] = child->is_array ? ']' : '}';
    return member_end(p);
}

size_t posthog_props_count(const posthog_props_t *p) { return p ? p->count : 0; }

const char *posthog_props_json(posthog_props_t *p) {
    if (!p) return NULL;
    /* text_reserve always leaves 2 spare bytes */
    p->text[p->len] = p->is_array ? ']' : '}';
    p->text[p->len + 1] = '\0';
    return p->text;
}

const char *posthog__props_inner(const posthog_props_t *p, size_t *len) {
    *len = p->len - 1;
    return p->text + 1;
}

bool posthog__props_is_array(const posthog_props_t *p) { return p->is_array; }
