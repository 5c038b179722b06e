/*
 * request: one synchronous HTTP request on the caller's thread, for the
 * callers that are not the flusher (remote feature flags, the flag
 * definitions loader). The flusher keeps its own asynchronous transport
 * (http.h); this one shares nothing with it.
 *
 * A pool keeps idle libcurl handles so that repeated calls reuse their
 * connection (and TLS session). The pool's mutex is held only to take or
 * return a handle, never during I/O; any number of threads may perform
 * requests at once, each on its own handle. Every request is bounded by
 * its timeout_ms (connect and transfer together); a response body beyond
 * max_body bytes is not kept (body_truncated).
 */
#ifndef POSTHOG_REQUEST_H
#define POSTHOG_REQUEST_H

#include "common.h"
#include "options.h"

typedef struct ph_req_pool ph_req_pool_t;

typedef struct {
    const char *method;          /* "GET" or "POST" */
    const char *url;
    const char *const *headers;  /* "Name: value" lines */
    int nheaders;
    const char *body;            /* POST body (not copied), NULL for GET */
    size_t body_len;
    int timeout_ms;              /* the whole request, > 0 */
    size_t max_body;             /* response bytes kept; 0: 4 MiB */
    _Atomic int *cancel;         /* when set and non-zero, the request is abandoned
                                    within ~0.1 s (error "cancelled"); may be NULL */
} ph_req_t;

typedef struct {
    long status;                 /* 0: no HTTP response (see error) */
    bool timed_out;              /* the request hit timeout_ms */
    char error[320];             /* "HTTP 502", or libcurl's reason */
    char etag[256];              /* the ETag header, "" when none */
    int64_t retry_after_ms;      /* -1: none */
    ph_buf_t body;               /* NUL-terminated; posthog__req_done frees it */
    bool body_truncated;
} ph_resp_t;

ph_req_pool_t *posthog__req_pool_new(const posthog_options_t *o);
void posthog__req_pool_free(ph_req_pool_t *p);
/* Performs the request; *out is always initialised (free with
 * posthog__req_done). 0 when an HTTP response arrived (any status), -1 on a
 * transport failure (out->error says which) or when out of memory. */
int posthog__req_perform(ph_req_pool_t *p, const ph_req_t *r, ph_resp_t *out);
void posthog__req_done(ph_resp_t *out);
/* In a forked child: forget the parent's idle handles (their connections
 * belong to the parent) without touching them. */
void posthog__req_pool_atfork_child(ph_req_pool_t *p);

#endif
