/*
 * scan: single-pass JSON validator specialised for ingestion bodies.
 *
 * Syntax errors abort the scan (json_ok = 0, 400). Event rule violations do
 * not: scanning continues so that a later missing api_key still wins (401
 * before 400, as in PostHog's capture), and only the first event error is
 * reported. Recursion is bounded by MAX_DEPTH.
 */
#include "scan.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uuidset.h"

#define MAX_DEPTH 256
#define V1_MAX_NAME_BYTES 200 /* "event" and "distinct_id" in capture v1 */

/* 1 for bytes a string scanner must look at: '"', '\\', controls, non-ASCII. */
static unsigned char str_special[256];
static signed char hexval[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
    for (int i = 0; i < 256; i++) {
        str_special[i] = (unsigned char)(i < 0x20 || i == '"' || i == '\\' || i >= 0x80);
        hexval[i] = -1;
    }
    for (int i = 0; i < 10; i++)
        hexval['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++) {
        hexval['a' + i] = (signed char)(10 + i);
        hexval['A' + i] = (signed char)(10 + i);
    }
}

typedef struct str {
    const unsigned char *p; /* raw bytes between the quotes */
    size_t n;
    int esc;                /* contains backslash escapes */
} str_t;

enum { F_EVENT = 1, F_DISTINCT = 2, F_TIMESTAMP = 4 };

/* What one object told us about the event rules. */
typedef struct objinfo {
    int present;             /* F_* fields present and valid */
    int any_event_field;     /* has "event" or "distinct_id" key at all */
    const char *type_err;    /* first field with a wrong type/format */
    int has_uuid;
    unsigned char uuid[16];
    int key_seen, key_ok;    /* api_key present / is a string */
    str_t key;
    int batch_seen, batch_ok;
    size_t name_off, name_len; /* "event" value's raw bytes */
    int name_esc;
    int created_seen, created_ok; /* v1 top level: "created_at" */
} objinfo_t;

typedef struct scanner {
    const unsigned char *base, *p, *end;
    const ph_scan_opts_t *o;
    ph_scan_t *out;
    const char *syntax;      /* first syntax error */
    int ev_status;           /* first event error */
    char ev_err[200];
    int key_status;          /* first api_key error */
    char key_err[200];
    size_t index;            /* events seen so far */
    int v1;
    ph_uuidset_t seen;       /* v1: uuids of this batch (duplicate rule) */
} scanner_t;

static int fail(scanner_t *s, const char *msg)
{
    if (!s->syntax)
        s->syntax = msg;
    return -1;
}

static inline void ws(scanner_t *s)
{
    const unsigned char *p = s->p, *e = s->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    s->p = p;
}

static int utf8_seq(const unsigned char *p, const unsigned char *e)
{
    unsigned c = p[0];
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c == 0xE0) { n = 2; lo = 0xA0; }
    else if (c == 0xED) { n = 2; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) n = 2;
    else if (c == 0xF0) { n = 3; lo = 0x90; }
    else if (c == 0xF4) { n = 3; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) n = 3;
    else return -1;
    if (e - p <= n || p[1] < lo || p[1] > hi)
        return -1;
    for (int i = 2; i <= n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return -1;
    return n + 1;
}

/* At '"'. Validates the string, reports its raw content. */
static int parse_string(scanner_t *s, str_t *out)
{
    const unsigned char *p = s->p + 1, *e = s->end, *start = p;
    int esc = 0;
    for (;;) {
        while (p + 4 <= e && !(str_special[p[0]] | str_special[p[1]] | str_special[p[2]] |
                               str_special[p[3]]))
            p += 4;
        while (p < e && !str_special[*p])
            p++;
        if (p >= e)
            return fail(s, "unterminated string");
        unsigned c = *p;
        if (c == '"')
            break;
        if (c == '\\') {
            esc = 1;
            if (p + 1 >= e)
                return fail(s, "unterminated string");
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u':
                if (e - p < 6 || hexval[p[2]] < 0 || hexval[p[3]] < 0 || hexval[p[4]] < 0 ||
                    hexval[p[5]] < 0)
                    return fail(s, "bad \\u escape");
                p += 6;
                break;
            default:
                return fail(s, "bad escape in string");
            }
        } else if (c < 0x20) {
            return fail(s, "control character in string");
        } else {
            int n = utf8_seq(p, e);
            if (n < 0)
                return fail(s, "invalid UTF-8 in string");
            p += n;
        }
    }
    if (out) {
        out->p = start;
        out->n = (size_t)(p - start);
        out->esc = esc;
    }
    s->p = p + 1;
    return 0;
}

static int parse_number(scanner_t *s)
{
    const unsigned char *p = s->p, *e = s->end;
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0')
        p++;
    else if (p < e && *p >= '1' && *p <= '9')
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    else
        return fail(s, "bad number");
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(s, "bad number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(s, "bad number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int parse_value(scanner_t *s, int depth);

static int parse_literal(scanner_t *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return fail(s, "invalid literal");
    s->p += n;
    return 0;
}

/* Generic object or array; `each` is NULL for plain validation. */
static int parse_container(scanner_t *s, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(s, "nesting too deep");
    int obj = *s->p == '{';
    unsigned char close = obj ? '}' : ']';
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        if (obj) {
            if (s->p >= s->end || *s->p != '"')
                return fail(s, "expected object key");
            if (parse_string(s, NULL) < 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return fail(s, "expected ':'");
            s->p++;
            ws(s);
        }
        if (parse_value(s, depth + 1) < 0)
            return -1;
        ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        if (*s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if (*s->p == close) {
            s->p++;
            return 0;
        }
        return fail(s, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(scanner_t *s, int depth)
{
    if (s->p >= s->end)
        return fail(s, "unexpected end of input");
    switch (*s->p) {
    case '{': case '[': return parse_container(s, depth);
    case '"': return parse_string(s, NULL);
    case 't': return parse_literal(s, "true", 4);
    case 'f': return parse_literal(s, "false", 5);
    case 'n': return parse_literal(s, "null", 4);
    default: return parse_number(s);
    }
}

/* ------------------------------------------------------------ event rules */

static size_t unescape(const str_t *in, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n && n + 4 < cap; i++) {
        unsigned char c = in->p[i];
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        c = in->p[++i];
        switch (c) {
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned v = 0;
            for (int k = 1; k <= 4; k++)
                v = v * 16 + (unsigned)hexval[in->p[i + (size_t)k]];
            i += 4;
            if (v < 0x80) {
                out[n++] = (char)v;
            } else if (v < 0x800) {
                out[n++] = (char)(0xC0 | (v >> 6));
                out[n++] = (char)(0x80 | (v & 0x3F));
            } else { /* surrogates are copied as-is: good enough for keys and uuids */
                out[n++] = (char)(0xE0 | (v >> 12));
                out[n++] = (char)(0x80 | ((v >> 6) & 0x3F));
                out[n++] = (char)(0x80 | (v & 0x3F));
            }
            break;
        }
        default: out[n++] = (char)c; break;
        }
    }
    out[n] = '\0';
    return n;
}

size_t ph_json_unescape(const char *in, size_t n, char *out, size_t cap)
{
    pthread_once(&tables_once, init_tables);
    if (!cap)
        return 0;
    if (cap < 5) {
        out[0] = '\0';
        return 0;
    }
    str_t v = {(const unsigned char *)in, n, 1};
    return unescape(&v, out, cap);
}

/* Length in bytes of the string once unescaped (UTF-8). */
static size_t str_bytes(const str_t *v)
{
    if (!v->esc)
        return v->n;
    size_t cnt = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->p[i] != '\\') {
            cnt++;
            continue;
        }
        if (v->p[++i] != 'u') {
            cnt++;
            continue;
        }
        unsigned u = 0;
        for (int k = 1; k <= 4; k++)
            u = u * 16 + (unsigned)hexval[v->p[i + (size_t)k]];
        i += 4;
        cnt += u < 0x80 ? 1 : u < 0x800 ? 2 : (u >= 0xD800 && u <= 0xDFFF) ? 2 : 3;
    }
    return cnt;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int ph_rfc3339_valid(const char *s, size_t n)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return 0;
    int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
    int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (Y < 0 || M < 1 || M > 12 || D < 1 || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 ||
        sec > 60)
        return 0;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (D > mdays[M - 1] + (M == 2 && leap))
        return 0;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z'))
        return i + 1 == n;
    if (i < n && (s[i] == '+' || s[i] == '-') && n - i == 6 && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
    }
    return 0;
}

/* A JSON string value that must be an RFC 3339 date-time. */
static int rfc3339_str(const str_t *v)
{
    if (!v->esc)
        return ph_rfc3339_valid((const char *)v->p, v->n);
    char buf[128];
    if (v->n >= 120)
        return 0;
    size_t n = unescape(v, buf, sizeof buf);
    return ph_rfc3339_valid(buf, n);
}

void ph_format_uuid(const unsigned char u[16], char out[37])
{
    static const char hx[] = "0123456789abcdef";
    size_t j = 0;
    for (int b = 0; b < 16; b++) {
        if (b == 4 || b == 6 || b == 8 || b == 10)
            out[j++] = '-';
        out[j++] = hx[u[b] >> 4];
        out[j++] = hx[u[b] & 15];
    }
    out[j] = '\0';
}

int ph_parse_uuid(const char *s, size_t n, unsigned char out[16])
{
    pthread_once(&tables_once, init_tables);
    const unsigned char *u = (const unsigned char *)s;
    int hyph = n == 36;
    if (n != 36 && n != 32)
        return -1;
    if (hyph && (u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-'))
        return -1;
    size_t j = 0;
    for (int b = 0; b < 16; b++) {
        if (hyph && (j == 8 || j == 13 || j == 18 || j == 23))
            j++;
        int hi = hexval[u[j]], lo = hexval[u[j + 1]];
        if (hi < 0 || lo < 0)
            return -1;
        out[b] = (unsigned char)(hi << 4 | lo);
        j += 2;
    }
    return 0;
}

static void key_error(scanner_t *s, const char *msg)
{
    if (!s->key_status) {
        s->key_status = 401;
        snprintf(s->key_err, sizeof s->key_err, "%s", msg);
    }
}

static void check_api_key(scanner_t *s, const objinfo_t *oi)
{
    if (!oi->key_seen || !oi->key_ok) {
        key_error(s, oi->key_seen ? "api_key must be a string" : "api_key is missing");
        return;
    }
    if (oi->key.n == 0) {
        key_error(s, "api_key is empty");
        return;
    }
    if (!s->o || !s->o->n_api_keys)
        return;
    char buf[512];
    size_t n = oi->key.esc ? unescape(&oi->key, buf, sizeof buf) : oi->key.n;
    const char *k = oi->key.esc ? buf : (const char *)oi->key.p;
    for (size_t i = 0; i < s->o->n_api_keys; i++)
        if (strlen(s->o->api_keys[i]) == n && memcmp(s->o->api_keys[i], k, n) == 0)
            return;
    key_error(s, "unknown api_key");
}

static void event_error(scanner_t *s, int status, const char *msg)
{
    if (!s->ev_status) {
        s->ev_status = status;
        snprintf(s->ev_err, sizeof s->ev_err, "event %zu: %s", s->index, msg);
    }
}

/* Applies the event rules to a parsed object spanning [start, s->p). */
static void finish_event(scanner_t *s, const objinfo_t *oi, const unsigned char *start)
{
    size_t len = (size_t)(s->p - start);
    if (s->v1) {
        int had = s->ev_status != 0;
        if (oi->type_err)
            event_error(s, 400, oi->type_err);
        else if (!(oi->present & F_EVENT))
            event_error(s, 400, "\"event\" is missing or empty");
        else if (!oi->has_uuid)
            event_error(s, 400, "\"uuid\" is missing");
        else if (!(oi->present & F_DISTINCT))
            event_error(s, 400, "\"distinct_id\" is missing or empty");
        else if (!(oi->present & F_TIMESTAMP))
            event_error(s, 400, "\"timestamp\" is missing");
        else if (s->o->max_event_bytes && len > s->o->max_event_bytes)
            event_error(s, 413, "event too large");
        /* Only while no error is known: a rejected batch needs no more. */
        if (!had && !s->ev_status && ph_uuidset_add(&s->seen, oi->uuid) == 0)
            event_error(s, 400, "\"uuid\" duplicates the uuid of an earlier event in the batch");
    } else if (oi->type_err)
        event_error(s, 400, oi->type_err);
    else if (!(oi->present & F_EVENT))
        event_error(s, 400, "\"event\" is missing or empty");
    else if (!(oi->present & F_DISTINCT))
        event_error(s, 400, "\"distinct_id\" is missing or empty");
    else if (s->o && s->o->max_event_bytes && len > s->o->max_event_bytes)
        event_error(s, 413, "event too large");
    ph_scan_t *out = s->out;
    if (out->nevents == out->cap) {
        size_t ncap = out->cap ? out->cap * 2 : 64;
        ph_scan_event_t *ne = realloc(out->events, ncap * sizeof *ne);
        if (!ne) {
            event_error(s, 413, "out of memory");
            s->index++;
            return;
        }
        out->events = ne;
        out->cap = ncap;
    }
    ph_scan_event_t *ev = &out->events[out->nevents++];
    ev->off = (size_t)(start - s->base);
    ev->len = len;
    ev->name_off = oi->name_off;
    ev->name_len = oi->name_len;
    ev->name_esc = oi->name_esc;
    ev->has_uuid = oi->has_uuid;
    memcpy(ev->uuid, oi->uuid, 16);
    s->index++;
}

static int parse_event_obj(scanner_t *s, objinfo_t *oi, int top, int depth);

/* At '['. Every element must be an event object. */
static int parse_event_array(scanner_t *s, int elements_need_key, int depth)
{
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        if (s->p < s->end && *s->p == '{') {
            const unsigned char *start = s->p;
            objinfo_t oi;
            memset(&oi, 0, sizeof oi);
            if (parse_event_obj(s, &oi, 0, depth + 1) < 0)
                return -1;
            if (elements_need_key)
                check_api_key(s, &oi);
            finish_event(s, &oi, start);
        } else {
            if (parse_value(s, depth + 1) < 0)
                return -1;
            event_error(s, 400, "not a JSON object");
            s->index++;
        }
        ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        if (*s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if (*s->p == ']') {
            s->p++;
            return 0;
        }
        return fail(s, "expected ',' or ']'");
    }
}

#define KEY_IS(k, lit) ((k).n == sizeof(lit) - 1 && memcmp((k).p, lit, sizeof(lit) - 1) == 0)

static void type_error(objinfo_t *oi, const char *msg)
{
    if (!oi->type_err)
        oi->type_err = msg;
}

/* Capture v1: one member of the top-level object or of an event. null
 * counts as absent (so a required field that is null is missing). */
/* The value of an event's "uuid" member (both protocols): a string holding
 * a valid UUID, else a type error. 0, or -1 on malformed JSON. */
static int parse_uuid_member(scanner_t *s, objinfo_t *oi, unsigned char c, int depth)
{
    if (c != '"') {
        type_error(oi, "\"uuid\" must be a string");
        return parse_value(s, depth + 1);
    }
    str_t v;
    if (parse_string(s, &v) < 0)
        return -1;
    char buf[80];
    const char *u = (const char *)v.p;
    size_t n = v.n;
    if (v.esc && v.n < 200) {
        n = unescape(&v, buf, sizeof buf);
        u = buf;
    }
    if (ph_parse_uuid(u, n, oi->uuid) == 0)
        oi->has_uuid = 1;
    else
        type_error(oi, "\"uuid\" is not a valid UUID");
    return 0;
}

static int parse_member_v1(scanner_t *s, objinfo_t *oi, const str_t *k, int top, int depth)
{
    unsigned char c = *s->p;
    str_t v;
    if (top) {
        if (KEY_IS(*k, "created_at")) {
            oi->created_seen = c != 'n';
            if (c != '"')
                return parse_value(s, depth + 1);
            if (parse_string(s, &v) < 0)
                return -1;
            oi->created_ok = rfc3339_str(&v);
            return 0;
        }
        if (KEY_IS(*k, "batch")) {
            oi->batch_seen = 1;
            if (c != '[')
                return parse_value(s, depth + 1);
            oi->batch_ok = 1;
            if (depth > MAX_DEPTH)
                return fail(s, "nesting too deep");
            return parse_event_array(s, 0, depth + 1);
        }
        return parse_value(s, depth + 1);
    }
    if (c == 'n')
        return parse_value(s, depth + 1); /* null: absent */
    if (KEY_IS(*k, "event")) {
        if (c != '"') {
            type_error(oi, "\"event\" must be a string");
            return parse_value(s, depth + 1);
        }
        if (parse_string(s, &v) < 0)
            return -1;
        if (str_bytes(&v) > V1_MAX_NAME_BYTES)
            type_error(oi, "\"event\" is longer than 200 bytes");
        else if (v.n)
            oi->present |= F_EVENT;
        oi->name_off = (size_t)(v.p - s->base);
        oi->name_len = v.n;
        oi->name_esc = v.esc;
        return 0;
    }
    if (KEY_IS(*k, "distinct_id")) {
        if (c != '"') {
            type_error(oi, "\"distinct_id\" must be a string");
            return parse_value(s, depth + 1);
        }
        if (parse_string(s, &v) < 0)
            return -1;
        if (str_bytes(&v) > V1_MAX_NAME_BYTES)
            type_error(oi, "\"distinct_id\" is longer than 200 bytes");
        else if (v.n)
            oi->present |= F_DISTINCT;
        return 0;
    }
    if (KEY_IS(*k, "uuid"))
        return parse_uuid_member(s, oi, c, depth);
    if (KEY_IS(*k, "timestamp")) {
        if (c != '"') {
            type_error(oi, "\"timestamp\" must be a string");
            return parse_value(s, depth + 1);
        }
        if (parse_string(s, &v) < 0)
            return -1;
        if (rfc3339_str(&v))
            oi->present |= F_TIMESTAMP;
        else
            type_error(oi, "\"timestamp\" is not an RFC 3339 date-time");
        return 0;
    }
    if (KEY_IS(*k, "properties") || KEY_IS(*k, "options")) {
        if (c != '{')
            type_error(oi, KEY_IS(*k, "options") ? "\"options\" must be an object"
                                                 : "\"properties\" must be an object");
        return parse_value(s, depth + 1);
    }
    if (KEY_IS(*k, "session_id") || KEY_IS(*k, "window_id")) {
        if (c != '"')
            type_error(oi, KEY_IS(*k, "session_id") ? "\"session_id\" must be a string"
                                                    : "\"window_id\" must be a string");
        return parse_value(s, depth + 1);
    }
    return parse_value(s, depth + 1);
}

/* Parses one member value of an event-ish object, applying the rules. */
static int parse_member(scanner_t *s, objinfo_t *oi, const str_t *k, int top, int depth)
{
    unsigned char c = *s->p;
    str_t v;
    if (s->v1)
        return parse_member_v1(s, oi, k, top, depth);
    if (c == 'n' && (KEY_IS(*k, "event") || KEY_IS(*k, "distinct_id") || KEY_IS(*k, "uuid") ||
                     KEY_IS(*k, "timestamp") || KEY_IS(*k, "properties"))) {
        if (KEY_IS(*k, "event") || KEY_IS(*k, "distinct_id"))
            oi->any_event_field = 1;
        return parse_literal(s, "null", 4); /* null is treated as absent */
    }
    if (KEY_IS(*k, "event")) {
        oi->any_event_field = 1;
        if (c != '"') {
            if (!oi->type_err)
                oi->type_err = "\"event\" must be a string";
            return parse_value(s, depth + 1);
        }
        if (parse_string(s, &v) < 0)
            return -1;
        if (v.n)
            oi->present |= F_EVENT;
        oi->name_off = (size_t)(v.p - s->base);
        oi->name_len = v.n;
        oi->name_esc = v.esc;
        return 0;
    }
    if (KEY_IS(*k, "distinct_id")) {
        oi->any_event_field = 1;
        if (c == '"') {
            if (parse_string(s, &v) < 0)
                return -1;
            if (v.n)
                oi->present |= F_DISTINCT;
            return 0;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            oi->present |= F_DISTINCT; /* numbers are stringified */
            return parse_number(s);
        }
        if (!oi->type_err)
            oi->type_err = "\"distinct_id\" must be a string or a number";
        return parse_value(s, depth + 1);
    }
    if (KEY_IS(*k, "uuid"))
        return parse_uuid_member(s, oi, c, depth);
    if (KEY_IS(*k, "timestamp")) {
        if (c != '"' && !oi->type_err)
            oi->type_err = "\"timestamp\" must be a string";
        return parse_value(s, depth + 1);
    }
    if (KEY_IS(*k, "properties")) {
        if (c != '{' && !oi->type_err)
            oi->type_err = "\"properties\" must be an object";
        return parse_value(s, depth + 1);
    }
    if (KEY_IS(*k, "api_key")) {
        oi->key_seen = 1;
        if (c != '"')
            return parse_value(s, depth + 1);
        oi->key_ok = 1;
        return parse_string(s, &oi->key);
    }
    if (top && KEY_IS(*k, "batch")) {
        oi->batch_seen = 1;
        if (c != '[')
            return parse_value(s, depth + 1);
        oi->batch_ok = 1;
        if (depth > MAX_DEPTH)
            return fail(s, "nesting too deep");
        return parse_event_array(s, 0, depth + 1);
    }
    return parse_value(s, depth + 1);
}

/* At '{'. */
static int parse_event_obj(scanner_t *s, objinfo_t *oi, int top, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(s, "nesting too deep");
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        str_t k;
        if (s->p >= s->end || *s->p != '"')
            return fail(s, "expected object key");
        if (parse_string(s, &k) < 0)
            return -1;
        ws(s);
        if (s->p >= s->end || *s->p != ':')
            return fail(s, "expected ':'");
        s->p++;
        ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        if (parse_member(s, oi, &k, top, depth) < 0)
            return -1;
        ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        if (*s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if (*s->p == '}') {
            s->p++;
            return 0;
        }
        return fail(s, "expected ',' or '}'");
    }
}

static void set_result(ph_scan_t *out, int status, const char *msg)
{
    out->status = status;
    snprintf(out->error, sizeof out->error, "%s", msg);
}

/* Capture v1: one object with "created_at" and a non-empty "batch". */
static void scan_v1(scanner_t *s, objinfo_t *top)
{
    ph_scan_t *out = s->out;
    ws(s);
    int obj = s->p < s->end && *s->p == '{';
    int r = obj ? parse_event_obj(s, top, 1, 0) : parse_value(s, 0);
    if (r == 0) {
        ws(s);
        if (s->p != s->end)
            r = fail(s, "trailing data after JSON value");
    }
    if (r < 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", s->syntax,
                 (size_t)(s->p - s->base));
        set_result(out, 400, msg);
        out->nevents = 0;
        return;
    }
    out->json_ok = 1;
    out->shape = obj && top->batch_seen ? PH_SHAPE_BATCH : PH_SHAPE_NONE;
    if (!obj)
        set_result(out, 400, "body must be a JSON object");
    else if (!top->created_seen)
        set_result(out, 400, "\"created_at\" is missing");
    else if (!top->created_ok)
        set_result(out, 400, "\"created_at\" is not an RFC 3339 date-time");
    else if (!top->batch_seen)
        set_result(out, 400, "\"batch\" is missing");
    else if (!top->batch_ok)
        set_result(out, 400, "\"batch\" must be an array");
    else if (s->ev_status)
        set_result(out, s->ev_status, s->ev_err);
    else if (out->nevents == 0)
        set_result(out, 400, "\"batch\" is empty");
    else
        set_result(out, 200, "");
}

void ph_scan_body(const char *body, size_t len, const ph_scan_opts_t *opts, ph_scan_t *out)
{
    pthread_once(&tables_once, init_tables);
    memset(out, 0, sizeof *out);
    scanner_t s;
    memset(&s, 0, sizeof s);
    s.base = s.p = (const unsigned char *)body;
    s.end = s.base + len;
    s.o = opts;
    s.out = out;
    s.v1 = opts && opts->v1;
    objinfo_t top;
    memset(&top, 0, sizeof top);
    if (s.v1) {
        scan_v1(&s, &top);
        ph_uuidset_clear(&s.seen);
        return;
    }

    ws(&s);
    const unsigned char *start = s.p, *top_end = NULL;
    int r;
    if (s.p < s.end && *s.p == '{') {
        r = parse_event_obj(&s, &top, 1, 0);
        top_end = s.p;
    } else if (s.p < s.end && *s.p == '[') {
        out->shape = PH_SHAPE_ARRAY;
        r = parse_event_array(&s, 1, 0);
    } else {
        r = parse_value(&s, 0);
        if (r == 0)
            out->shape = PH_SHAPE_NONE;
    }
    if (r == 0) {
        ws(&s);
        if (s.p != s.end)
            r = fail(&s, "trailing data after JSON value");
    }
    if (r < 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", s.syntax,
                 (size_t)(s.p - s.base));
        set_result(out, 400, msg);
        out->nevents = 0;
        return;
    }
    out->json_ok = 1;
    if (*start == '{') {
        if (top.batch_seen) {
            out->shape = PH_SHAPE_BATCH;
            check_api_key(&s, &top);
            if (!top.batch_ok)
                event_error(&s, 400, "\"batch\" must be an array");
        } else if (top.any_event_field || top.present || top.type_err) {
            out->shape = PH_SHAPE_SINGLE;
            check_api_key(&s, &top);
            s.p = top_end; /* the span excludes trailing blanks */
            finish_event(&s, &top, start);
        } else {
            check_api_key(&s, &top);
            set_result(out, s.key_status ? 401 : 400,
                       s.key_status ? s.key_err : "body has neither \"batch\" nor \"event\"");
            return;
        }
    } else if (*start != '[') {
        set_result(out, 400, "body must be a JSON object or array");
        return;
    }
    if (s.key_status)
        set_result(out, s.key_status, s.key_err);
    else if (s.ev_status)
        set_result(out, s.ev_status, s.ev_err);
    else if (out->nevents == 0)
        set_result(out, 400, "no events in request");
    else
        set_result(out, 200, "");
}

void ph_scan_free(ph_scan_t *out)
{
    if (!out)
        return;
    free(out->events);
    out->events = NULL;
    out->nevents = out->cap = 0;
}
