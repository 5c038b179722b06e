/*
 * scan: single-pass validator for ingestion bodies. It checks JSON syntax
 * (strict RFC 8259, including UTF-8), finds every event of the three body
 * shapes (batch object, single event object, array of events) and applies
 * the capture rules, without building a tree. Event positions are reported
 * as byte spans of the body, so a caller can keep the raw text and splice
 * events into its own JSON output.
 */
#ifndef PH_SCAN_H
#define PH_SCAN_H

#include <stddef.h>

typedef enum { PH_SHAPE_NONE, PH_SHAPE_BATCH, PH_SHAPE_SINGLE, PH_SHAPE_ARRAY } ph_shape_t;

typedef struct ph_scan_event {
    size_t off, len;         /* the event object's bytes in the body */
    size_t name_off, name_len; /* raw bytes of "event"'s string value (0/0 if none) */
    int name_esc;            /* the name contains backslash escapes */
    int has_uuid;
    unsigned char uuid[16];
} ph_scan_event_t;

typedef struct ph_scan_opts {
    size_t max_event_bytes;       /* 0: no limit */
    const char *const *api_keys;  /* borrows; NULL/0: any non-empty key */
    size_t n_api_keys;
    int v1;                       /* capture v1 body rules (no api_key, see README) */
} ph_scan_opts_t;

typedef struct ph_scan {
    int status;              /* 200, 400, 401 or 413 */
    char error[256];         /* "" when status is 200 */
    int json_ok;             /* 1 when the body is syntactically valid JSON */
    ph_shape_t shape;
    ph_scan_event_t *events; /* malloc()ed; ph_scan_free releases it */
    size_t nevents, cap;
} ph_scan_t;

/* Scans body[0..len). body borrows; opts borrows; out is overwritten. */
void ph_scan_body(const char *body, size_t len, const ph_scan_opts_t *opts, ph_scan_t *out);
void ph_scan_free(ph_scan_t *out);
/* Parses a 36-char hyphenated or 32-char hex UUID. 0 on success. */
int ph_parse_uuid(const char *s, size_t n, unsigned char out[16]);
/* Writes the canonical lower-case hyphenated form (36 chars + NUL). */
void ph_format_uuid(const unsigned char u[16], char out[37]);
/* 1 when s[0..n) is a strict RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac]
 * then Z or +HH:MM/-HH:MM ('t' and 'z' allowed, as RFC 3339 says); the
 * calendar date must exist; seconds 00..60. */
int ph_rfc3339_valid(const char *s, size_t n);
/* Unescapes the raw JSON string content in[0..n) (validated by the
 * scanner) into out (at most cap - 1 bytes, NUL-terminated); returns the
 * length. */
size_t ph_json_unescape(const char *in, size_t n, char *out, size_t cap);

#endif
