/*
 * json: the library's own JSON text handling for the hot path.
 *  - UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
 *  - Escaping of strings into JSON (every control char, '"' and '\\').
 *  - A strict single-pass validator (RFC 8259) that also reports the spans
 *    of an object's top-level members, so capture can merge properties
 *    without building a tree. Nesting is limited (see PH_JSON_MAX_DEPTH).
 *  - Comparison and decoding of JSON string bodies, so keys written with
 *    escapes ("pl\u0061n") match their plain form ("plan").
 */
#ifndef POSTHOG_JSON_H
#define POSTHOG_JSON_H

#include "common.h"

/*
 * The one nesting limit of the library: a JSON value the user gives
 * (properties, $set, $groups, a builder, a super property, the properties of
 * a before_send replacement) nests objects and arrays at most this deep; the
 * value itself is level 1, so {"a":{"b":1}} is 2 levels. Checked at capture.
 */
#define PH_JSON_MAX_DEPTH POSTHOG_MAX_JSON_DEPTH
/*
 * Whole event texts (before_send replacements, spool records, conversions
 * between protocols) hold user values at most two levels down: the event
 * object and its properties, where capture v1 also moves $set and $set_once.
 * So every event accepted at capture passes this limit wherever it goes, and
 * the request body adds two more levels ({"batch":[...]}), far below the
 * capture service's own limit (128).
 */
#define PH_EVENT_MAX_DEPTH (PH_JSON_MAX_DEPTH + 2)
#define PH_JSON_INLINE_KEYS 32

enum { PH_JSON_OBJECT = 1, PH_JSON_ARRAY, PH_JSON_STRING, PH_JSON_NUMBER, PH_JSON_LITERAL };

/* Top-level keys of an object, as raw (still escaped) spans of its text. */
typedef struct {
    uint32_t off[PH_JSON_INLINE_KEYS]; /* offset of the key's first char after '"' */
    uint32_t len[PH_JSON_INLINE_KEYS];
    size_t count;     /* number of members */
    bool overflow;    /* more members than PH_JSON_INLINE_KEYS: spans incomplete */
    size_t inner_off; /* the members' text: after '{' ... */
    size_t inner_len; /* ... up to before '}', trimmed; 0 for {} */
} ph_json_keys_t;

bool posthog__utf8_valid(const char *s, size_t n);

/* Bytes the escaped form of s takes (without quotes). */
size_t posthog__json_escaped_len(const char *s, size_t n);
/* Writes the escaped form; returns bytes written (== escaped_len). */
size_t posthog__json_escape(char *out, const char *s, size_t n);
/*
 * One pass: validates UTF-8 and writes the escaped form into `out`, which
 * must have room for the escaped length + 8 bytes (it stores whole 8-byte
 * words); 6 * n + 8 always suffices. Returns bytes written, or SIZE_MAX when
 * s is not valid UTF-8 (out then holds garbage).
 */
size_t posthog__json_escape_valid(char *out, const char *s, size_t n);
/* One pass: escaped length, or SIZE_MAX when s is not valid UTF-8. */
size_t posthog__json_escaped_len_valid(const char *s, size_t n);

/* Appends "escaped" with quotes to b. -1 on overflow of b. */
int posthog__json_append_string(ph_buf_t *b, const char *s, size_t n);

/* Why a text failed validation, for error messages. */
enum { PH_JERR_SYNTAX = 1, PH_JERR_UTF8, PH_JERR_DEPTH, PH_JERR_NUMBER };
typedef struct {
    int kind;      /* PH_JERR_* */
    size_t off;    /* byte offset where the scanner stopped */
    int max_depth; /* the limit that applied */
} ph_json_err_t;

/*
 * Validates `s` as one JSON value (surrounding whitespace allowed) that
 * nests at most `max_depth` (<= PH_EVENT_MAX_DEPTH) levels. Returns
 * POSTHOG_OK, POSTHOG_E_INVALID_JSON or POSTHOG_E_INVALID_UTF8, and then
 * fills *err (may be NULL). *type_out (may be NULL) gets PH_JSON_*. If
 * `keys` is not NULL and the value is an object, fills it.
 */
posthog_status_t posthog__json_check(const char *s, size_t n, int max_depth, int *type_out,
                                     ph_json_keys_t *keys, ph_json_err_t *err);
/* posthog__json_check of a user value: max_depth PH_JSON_MAX_DEPTH. */
posthog_status_t posthog__json_validate(const char *s, size_t n, int *type_out,
                                        ph_json_keys_t *keys);
/* posthog__json_check of a whole event text: max_depth PH_EVENT_MAX_DEPTH. */
posthog_status_t posthog__json_validate_event(const char *s, size_t n, int *type_out,
                                              ph_json_keys_t *keys);
/*
 * A message naming what failed in `what` (e.g. "properties_json") and what
 * is allowed, into buf (always NUL-terminated).
 */
void posthog__json_err_text(const ph_json_err_t *e, const char *what, char *buf, size_t n);

/* How deep the (valid, possibly still unclosed) JSON text nests. */
int posthog__json_depth(const char *s, size_t n);

/*
 * String bodies (between the quotes, escapes as written) of validated JSON.
 * posthog__json_str_eq compares two by their decoded value, so "pl\u0061n"
 * equals "plan". posthog__json_unescape writes the decoded bytes into out
 * (room for n bytes always suffices) and returns their count.
 */
/* The value of a validated JSON number text, as strtod in the C locale
 * (whatever locale the host set); NaN when out of memory. */
double posthog__json_number(const char *s, size_t n);

bool posthog__json_str_eq(const char *a, size_t an, const char *b, size_t bn);
size_t posthog__json_unescape(char *out, const char *s, size_t n);

/* Whether `inner` (an object's members text, as in ph_json_keys_t) has the
 * top-level key (escaped form; compared by decoded value). */
bool posthog__json_inner_has_key(const char *inner, size_t n, const char *key, size_t klen);

/* Whether the keys of a validated object include the key (escaped form;
 * compared by decoded value). */
bool posthog__json_keys_has(const ph_json_keys_t *k, const char *text, const char *key,
                            size_t klen);

/* Walks the top-level members of an object's inner text (between the
 * braces) that was validated already: key spans are raw (still escaped),
 * value spans are exact JSON texts without surrounding whitespace. */
typedef struct {
    const char *s;
    size_t n, i;
} ph_json_iter_t;
typedef struct {
    const char *key, *val, *start;
    size_t klen, vlen;
} ph_json_member_t;
static inline void ph_json_iter_init(ph_json_iter_t *it, const char *inner, size_t n) {
    it->s = inner;
    it->n = n;
    it->i = 0;
}
bool posthog__json_next_member(ph_json_iter_t *it, ph_json_member_t *m);

#endif
