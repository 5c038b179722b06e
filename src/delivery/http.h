/*
 * http: the libcurl transport (the one transport today; issue 13's user hook
 * joins it behind the same start/poll/abort calls). One reusable connection that sends one batch at a time,
 * driven by the flusher's loop through a multi handle so the loop can keep
 * draining the queue while a request is in flight. Only the flusher thread
 * touches it.
 */
#ifndef POSTHOG_HTTP_H
#define POSTHOG_HTTP_H

#include <curl/curl.h>

#include "batch.h"
#include "options.h"

typedef struct {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;     /* this request's headers */
    ph_buf_t resp;               /* response body, bounded */
    bool busy;
    ph_batch_t *batch;           /* in flight */
    char retry_after[64];        /* raw header of the last response */
    char errbuf[CURL_ERROR_SIZE];
} ph_http_t;

typedef struct {
    long status;                 /* 0: no response */
    int64_t retry_after_ms;      /* -1: none */
    char error[CURL_ERROR_SIZE + 32];
    ph_batch_t *batch;           /* the batch that was sent */
    const char *body;            /* the response body (NUL-terminated; valid until the
                                    next start), "" when none */
    size_t body_len;
    bool body_truncated;         /* longer than the transport keeps */
} ph_http_result_t;

int posthog__http_init(ph_http_t *h, const posthog_options_t *o);
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
