/*
 * http: the flusher's side of the transport (transport.h): sends one batch
 * at a time through the client's transport (libcurl or the application's
 * hook) asynchronously, so the flusher's loop keeps draining the queue
 * while a request is in flight. Only the flusher thread touches it.
 */
#ifndef POSTHOG_HTTP_H
#define POSTHOG_HTTP_H

#include "batch.h"
#include "options.h"
#include "transport.h"

typedef struct {
    ph_transport_t *t;
    ph_xfer_t *x;                /* in flight */
    int wake_fd;                 /* the client's wake-up descriptor */
    int timeout_ms;              /* request_timeout_ms */
    ph_resp_t resp;              /* the last answer (its body until the next start) */
    bool busy;
    ph_batch_t *batch;           /* in flight */
} ph_http_t;

typedef struct {
    long status;                 /* 0: no response */
    int64_t retry_after_ms;      /* -1: none */
    char error[sizeof(((ph_resp_t *)0)->error) + 32];
    ph_batch_t *batch;           /* the batch that was sent */
    const char *body;            /* the response body (NUL-terminated; valid until the
                                    next start), "" when none */
    size_t body_len;
    bool body_truncated;         /* longer than the transport keeps */
} ph_http_result_t;

/* 0 ok; -1 (no transport, out of memory). wake_fd: the write end of the
 * client's wake-up (ph_wake_t.wfd), written by a hook completing from
 * another thread; posthog__http_poll waits on the read end. */
int posthog__http_init(ph_http_t *h, const posthog_options_t *o, int wake_fd,
                       const posthog_client_t *owner);
void posthog__http_free(ph_http_t *h);
/* Starts POSTing the batch's body (its attempt already prepared) to `url`
 * with these header lines (copied). The transport knows nothing of
 * protocols: the flusher gets URL and headers from the protocol. 0 ok. */
int posthog__http_start(ph_http_t *h, const char *url, const char *const *headers, int nheaders,
                        ph_batch_t *bt);
/*
 * Runs I/O, waiting up to timeout_ms for activity or for `wake_fd` to be
 * readable. Returns 1 and fills *res when the request completed, else 0.
 */
int posthog__http_poll(ph_http_t *h, int wake_fd, int timeout_ms, ph_http_result_t *res);
/* Abandons the request in flight; returns its batch (or NULL). */
ph_batch_t *posthog__http_abort(ph_http_t *h);

#endif
