/*
 * answers: scripted HTTP answers for the feature-flag endpoints of the
 * local ingestion server (README.md, "Feature flags", "Scripted answers"):
 *
 *   {"status": 200..599, "body": <JSON, or a string sent as is>,
 *    "headers": {"X-Name": "value"}, "delay_ms": 0..600000, "hang": bool}
 *
 * Parse functions take a cJSON node (borrowed) and, on failure, write a
 * message naming the field and what is allowed into err (prefixed with
 * `where`, e.g. "\"responses\"[2]: "). Not thread-safe by themselves.
 */
#ifndef PH_ANSWERS_H
#define PH_ANSWERS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "sbuf.h"

/* Scripted headers take at most this many bytes as "Name: value\r\n" lines,
 * which leaves room in ph_http_response_t.extra_headers for an ETag. */
#define PH_ANSWER_HEADER_BYTES_MAX 256

/* One scripted answer (or the /flags default). */
typedef struct ph_answer {
    int status;            /* 0: not given */
    char *body;            /* owned, NUL-terminated; NULL: not given */
    size_t body_len;
    int body_json;         /* given as a JSON value rather than a string */
    char *headers;         /* owned "Name: value\r\n" lines (Content-Type excluded); NULL: none */
    char *headers_json;    /* owned, the "headers" object as given; NULL: none */
    char content_type[64]; /* from a Content-Type header; "": application/json */
    int delay_ms;
    int hang;
} ph_answer_t;

typedef struct ph_answers {
    ph_answer_t *v;
    size_t n, next;
} ph_answers_t;

/* What an answer sends; body and ctype borrow. */
typedef struct ph_pick {
    int status;
    const char *body;
    size_t len;
    const char *ctype;
} ph_pick_t;

/* Frees what a holds and zeroes it; a zeroed answer is a no-op. */
void ph_answer_free(ph_answer_t *a);
/* Frees every answer of l and zeroes l. */
void ph_answers_clear(ph_answers_t *l);

/* "body": a JSON string is taken as raw text, any other value serialised
 * (compact). Absent or null: *out NULL, 0. -1 with err set on failure. */
int ph_body_take(const cJSON *v, char **out, size_t *len, int *json, char *err, size_t errlen,
                 const char *where);
/* "delay_ms": an integer in 0..600000 into *out (untouched when v is NULL). */
int ph_delay_take(const cJSON *v, int *out, char *err, size_t errlen, const char *where);
/* One answer object into *a (zeroed first; nothing to free on failure). */
int ph_answer_take(const cJSON *it, ph_answer_t *a, char *err, size_t errlen, const char *where);
/* "responses": an array (at most 10000) of answers into *out; absent or
 * null: empty. Nothing to free on failure. */
int ph_answers_take(const cJSON *arr, ph_answers_t *out, char *err, size_t errlen);
/* -1 with err set when root has a key not in the NULL-terminated allowed
 * list (list: the same keys, quoted, for the message). */
int ph_known_keys(const cJSON *root, const char *const *allowed, const char *list, char *err,
                  size_t errlen);

/* Appends body as JSON: as is when json, else as a JSON string; NULL: null. */
void ph_body_render(ph_sbuf_t *b, const char *body, size_t len, int json);
/* Appends a as {"status", "body", "headers", "delay_ms", "hang"} (null for absent fields). */
void ph_answer_render(ph_sbuf_t *b, const ph_answer_t *a);
/* Appends the answers not yet consumed as a JSON array. */
void ph_answers_render(ph_sbuf_t *b, const ph_answers_t *l);

/* The answer of scripted entry c laid over the fallback answer fb (see the
 * README): no status and no body: fb as is; a body without a status: fb's
 * status; a status without a body: nothing for 204 and 304, for another 2xx
 * fb's body when fb is a 2xx, else ok_body, for any other status an
 * injected-fault body written into fault. A Content-Type header of c wins.
 * The result borrows from c, fb, ok_body and fault. */
ph_pick_t ph_answer_pick(const ph_answer_t *c, ph_pick_t fb, const char *ok_body, char *fault,
                         size_t faultlen);

#endif
