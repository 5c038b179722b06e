/*
 * transport: how a request reaches the server. Every request of a client
 * (the flusher's capture batches, remote /flags, the definitions loader)
 * goes through one interface, a small table of functions with two
 * instances:
 *   - curl  (transport_curl.c): libcurl, the default; absent from a build
 *           with -DPOSTHOG_WITH_CURL=OFF;
 *   - hook  (transport_hook.c): the application's posthog_transport_fn
 *           (posthog_options_set_transport), which completes each call
 *           synchronously or later from any thread.
 * The protocols (protocol.h) build URL, headers and body and read the
 * answer; a transport only carries them and reports status, Retry-After,
 * ETag and body (ph_resp_t).
 *
 * Two ways to use a transport:
 *   - perform: synchronous on the caller's thread (flags, loader); any
 *     number of threads at once;
 *   - start/poll/abort: one asynchronous request at a time (the flusher),
 *     poll also waking when `wake_fd` (the client's wake-up descriptor)
 *     becomes readable, so the flusher keeps draining the queue while a
 *     request is in flight.
 * Every request is bounded by its timeout_ms, whatever the transport: a
 * hook that never completes is given up at that deadline (plus
 * PH_HOOK_GRACE_MS) and reported as a timeout.
 */
#ifndef POSTHOG_TRANSPORT_H
#define POSTHOG_TRANSPORT_H

#include "common.h"
#include "options.h"

/* A hook's call is given up this long after the request's timeout_ms. */
#define PH_HOOK_GRACE_MS 1000
/* Response bytes kept when a request does not say (ph_req_t.max_body 0). */
#define PH_RESP_BODY_MAX ((size_t)4 << 20)

typedef struct {
    const char *method;          /* "GET" or "POST" */
    const char *url;
    const char *const *headers;  /* "Name: value" lines */
    int nheaders;
    const char *body;            /* POST body (not copied), NULL for GET */
    size_t body_len;
    int timeout_ms;              /* the whole request, > 0 */
    size_t max_body;             /* response bytes kept; 0: PH_RESP_BODY_MAX */
    _Atomic int *cancel;         /* perform only: when set and non-zero, the request is
                                    abandoned within ~0.1 s (error "cancelled"); may be NULL */
    const char *kind;            /* "capture", "flags", "flag_definitions" (for the hook) */
} ph_req_t;

typedef struct {
    long status;                 /* 0: no HTTP response (see error) */
    bool timed_out;              /* the request hit its deadline */
    char error[320];             /* "HTTP 502", or the transport's reason */
    char etag[256];              /* the ETag header, "" when none */
    int64_t retry_after_ms;      /* -1: none */
    ph_buf_t body;               /* NUL-terminated; posthog__resp_done frees it */
    bool body_truncated;         /* longer than max_body: not kept */
} ph_resp_t;

typedef struct ph_transport ph_transport_t;
typedef struct ph_xfer ph_xfer_t; /* one asynchronous request */

typedef struct {
    const char *name;
    /* 0 when an answer arrived (any status), -1 on a transport failure
     * (out->error says which); *out is always initialised. */
    int (*perform)(ph_transport_t *t, const ph_req_t *r, ph_resp_t *out);
    /* Starts r (its memory may go once start returns). NULL when it could
     * not (err says why). */
    ph_xfer_t *(*start)(ph_transport_t *t, const ph_req_t *r, int wake_fd, char *err,
                        size_t errlen);
    /* Waits up to timeout_ms for x to complete or wake_fd to be readable
     * (x may be NULL: only waits). 1 when x completed: *out filled
     * (posthog__resp_done frees it) and x released; else 0. */
    int (*poll)(ph_transport_t *t, ph_xfer_t *x, int wake_fd, int timeout_ms, ph_resp_t *out);
    /* Gives up on x and releases it. */
    void (*abort)(ph_transport_t *t, ph_xfer_t *x);
    /* In a forked child: forget what belongs to the parent (connections). */
    void (*atfork_child)(ph_transport_t *t);
    void (*free)(ph_transport_t *t);
} ph_transport_ops_t;

struct ph_transport {
    const ph_transport_ops_t *ops;
    const posthog_client_t *owner; /* may be NULL */
};

/* The client's transport as its options say: the hook when set, else
 * libcurl (NULL with a message when the build has none). */
ph_transport_t *posthog__transport_new(const posthog_options_t *o, char *err, size_t errlen);
/* The client whose callback frame the hook runs in (posthog_flush,
 * shutdown and free of that client are refused inside the hook). */
void posthog__transport_set_owner(ph_transport_t *t, const posthog_client_t *c);
void posthog__transport_free(ph_transport_t *t);
/* 0 when a client with these options has a transport; else -1 and why. */
int posthog__transport_check(const posthog_options_t *o, char *err, size_t errlen);

/* Shared helpers of the transports. */
void posthog__resp_init(ph_resp_t *out, size_t max_body);
void posthog__resp_done(ph_resp_t *out);
/* Copies a header's value (trimmed) into dst when the "Name: value" line
 * `buf` (len bytes, maybe with CRLF) is that header; true then. */
bool posthog__header_value(const char *buf, size_t len, const char *name, char *dst, size_t cap);

#ifdef POSTHOG_HAVE_CURL
ph_transport_t *posthog__transport_curl_new(const posthog_options_t *o);
void posthog__transport_curl_global_init(void);
#endif
ph_transport_t *posthog__transport_hook_new(const posthog_options_t *o);

#endif
