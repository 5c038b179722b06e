/*
 * http: one reusable libcurl connection that sends one batch at a time,
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
    struct curl_slist *hdr_gzip, *hdr_plain;
    char *url;
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
} ph_http_result_t;

int posthog__http_init(ph_http_t *h, const posthog_options_t *o);
void posthog__http_free(ph_http_t *h);
/* Starts sending the batch (its tail already set). 0 ok. */
int posthog__http_start(ph_http_t *h, ph_batch_t *bt);
/*
 * Runs I/O, waiting up to timeout_ms for activity or for `wake_fd` to be
 * readable. Returns 1 and fills *res when the request completed, else 0.
 */
int posthog__http_poll(ph_http_t *h, int wake_fd, int timeout_ms, ph_http_result_t *res);
/* Abandons the request in flight; returns its batch (or NULL). */
ph_batch_t *posthog__http_abort(ph_http_t *h);

#endif
