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
    int has_uuid;
    unsigned char uuid[16];
} ph_scan_event_t;

typedef struct ph_scan_opts {
    size_t max_event_bytes;       /* 0: no limit */
    const char *const *api_keys;  /* borrows; NULL/0: any non-empty key */
    size_t n_api_keys;
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

#endif
