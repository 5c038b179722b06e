/*
 * http: the flusher's batches through the transport (see http.h).
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>

int posthog__http_init(ph_http_t *h, const posthog_options_t *o, int wake_fd,
                       const posthog_client_t *owner) {
    memset(h, 0, sizeof *h);
    posthog__resp_init(&h->resp, 0);
    h->wake_fd = wake_fd;
    h->timeout_ms = (int)o->request_timeout_ms;
    char err[256];
    if (!(h->t = posthog__transport_new(o, err, sizeof err))) return -1;
    posthog__transport_set_owner(h->t, owner);
    return 0;
}

void posthog__http_free(ph_http_t *h) {
    if (h->busy) posthog__batch_free(posthog__http_abort(h));
    posthog__transport_free(h->t);
    posthog__resp_done(&h->resp);
    memset(h, 0, sizeof *h);
}

int posthog__http_start(ph_http_t *h, const char *url, const char *const *headers, int nheaders,
                        ph_batch_t *bt) {
    if (h->busy) return -1;
    ph_req_t r = {.method = "POST",
                  .url = url,
                  .headers = headers,
                  .nheaders = nheaders,
                  .body = bt->body.data ? bt->body.data : "",
                  .body_len = bt->body.len,
                  .timeout_ms = h->timeout_ms,
                  .kind = "capture"};
    char err[256];
    /* busy before the start: a hook may complete the call inside it */
    h->busy = true;
    h->batch = bt;
    if (!(h->x = h->t->ops->start(h->t, &r, h->wake_fd, err, sizeof err))) {
        h->busy = false;
        h->batch = NULL;
        return -1;
    }
    return 0;
}

ph_batch_t *posthog__http_abort(ph_http_t *h) {
    if (!h->busy) return NULL;
    h->t->ops->abort(h->t, h->x);
    h->x = NULL;
    h->busy = false;
    ph_batch_t *bt = h->batch;
    h->batch = NULL;
    return bt;
}

int posthog__http_poll(ph_http_t *h, int wake_fd, int timeout_ms, ph_http_result_t *res) {
    ph_resp_t out;
    if (!h->t->ops->poll(h->t, h->busy ? h->x : NULL, wake_fd, timeout_ms, &out)) return 0;
    posthog__resp_done(&h->resp);
    h->resp = out;
    h->x = NULL;
    h->busy = false;
    res->status = out.status;
    res->retry_after_ms = out.retry_after_ms;
    snprintf(res->error, sizeof res->error, "%s", out.error);
    res->body_truncated = out.body_truncated;
    res->body = out.body.data && !out.body_truncated ? out.body.data : "";
    res->body_len = out.body_truncated ? 0 : out.body.len;
    res->batch = h->batch;
    h->batch = NULL;
    return 1;
}
