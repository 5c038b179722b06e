/*
 * transport_curl: the libcurl transport (transport.h). Built only with
 * POSTHOG_WITH_CURL (CMake leaves this file out otherwise).
 *
 * Synchronous requests take an easy handle from a pool of idle ones, so
 * repeated calls reuse their connection (and TLS session); the pool's mutex
 * is held only to take or return a handle, never during I/O. The
 * asynchronous request (the flusher's, one at a time) has its own easy
 * handle, reused between batches, driven through a multi handle so the
 * flusher can wait on its wake-up descriptor at the same time.
 */
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "retry.h"
#include "transport.h"
#include "util.h"

#define POOL_IDLE_MAX 4

typedef struct {
    ph_resp_t *out;
    size_t max_body;
    _Atomic int *cancel;
    char retry_after[64];
} req_ctx_t;

struct ph_xfer {
    ph_resp_t resp;
    req_ctx_t ctx;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct {
    ph_transport_t base;
    pthread_mutex_t mu;
    CURL *idle[POOL_IDLE_MAX];
    int nidle;
    char *ca_bundle;
    bool tls_verify;
    uint32_t connect_timeout_ms;
    /* the asynchronous request (one at a time) */
    CURLM *multi;
    CURL *easy;
    ph_xfer_t *busy;
    ph_xfer_t x;
} curl_transport_t;

static void curl_global_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void posthog__transport_curl_global_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_global_once);
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    req_ctx_t *x = ud;
    return x->cancel && atomic_load_explicit(x->cancel, memory_order_relaxed) ? 1 : 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    req_ctx_t *x = ud;
    size_t len = size * n;
    /* a new response (a redirect is not followed, but 100 Continue is one) */
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        x->out->etag[0] = '\0';
        x->retry_after[0] = '\0';
    }
    if (!posthog__header_value(buf, len, "etag", x->out->etag, sizeof x->out->etag))
        posthog__header_value(buf, len, "retry-after", x->retry_after, sizeof x->retry_after);
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
    req_ctx_t *x = ud;
    size_t len = size * n;
    ph_resp_t *o = x->out;
    if (o->body_truncated || o->body.len + len > x->max_body || posthog__buf_append(&o->body, buf, len))
        o->body_truncated = true;
    return len;
}

static struct curl_slist *header_list(const ph_req_t *r) {
    /* "Expect:" disables 100-continue: it would add a round trip per POST */
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:"), *t;
    for (int i = 0; hd && i < r->nheaders; i++) {
        if (!(t = curl_slist_append(hd, r->headers[i]))) {
            curl_slist_free_all(hd);
            hd = NULL;
        } else {
            hd = t;
        }
    }
    return hd;
}

/* Every option of one request on a (fresh or reset) handle. */
static void setup(curl_transport_t *p, CURL *e, const ph_req_t *r, req_ctx_t *x,
                  struct curl_slist *hd, char *errbuf) {
    long timeout = r->timeout_ms > 0 ? r->timeout_ms : 1;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "posthog-c/" POSTHOG_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Abandoning a request (a timeout, the shutdown deadline) must not wait
     * for a name resolution in progress: without this, libcurl joins its
     * resolver thread, which blocks for as long as getaddrinfo() does (a
     * hung DNS server: many seconds past any deadline). With it the
     * resolver thread is detached and cleans up after itself. */
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)PH_MIN((long)p->connect_timeout_ms, timeout));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (x->cancel) {
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    } else {
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 1L);
    }
    if (p->ca_bundle) curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_bundle);
    if (!p->tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (r->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
}

/* The answer of a finished transfer into out (0), or its failure (-1). */
static int finish(CURL *e, CURLcode cc, req_ctx_t *x, const char *errbuf, ph_resp_t *out) {
    int rc = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
        snprintf(out->error, sizeof out->error, "HTTP %ld", out->status);
        out->retry_after_ms = posthog__parse_retry_after(x->retry_after, posthog__now_ms());
    } else {
        out->status = 0;
        out->etag[0] = '\0';
        out->timed_out = cc == CURLE_OPERATION_TIMEDOUT;
        if (cc == CURLE_ABORTED_BY_CALLBACK)
            snprintf(out->error, sizeof out->error, "cancelled");
        else
            snprintf(out->error, sizeof out->error, "%s: %s", curl_easy_strerror(cc),
                     errbuf[0] ? errbuf : "no detail");
        rc = -1;
    }
    if (posthog__buf_reserve(&out->body, 1) == 0 && out->body.data) out->body.data[out->body.len] = '\0';
    return rc;
}

static CURL *take(curl_transport_t *p) {
    CURL *e = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->nidle) e = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    if (e) {
        curl_easy_reset(e); /* keeps the connection cache */
        return e;
    }
    return curl_easy_init();
}

static void give_back(curl_transport_t *p, CURL *e) {
    pthread_mutex_lock(&p->mu);
    if (p->nidle < POOL_IDLE_MAX) {
        p->idle[p->nidle++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (e) curl_easy_cleanup(e);
}

static int curl_tr_perform(ph_transport_t *t, const ph_req_t *r, ph_resp_t *out) {
    curl_transport_t *p = (curl_transport_t *)t;
    posthog__resp_init(out, r->max_body);
    req_ctx_t x = {.out = out, .max_body = r->max_body ? r->max_body : PH_RESP_BODY_MAX,
                   .cancel = r->cancel};
    CURL *e = take(p);
    struct curl_slist *hd = header_list(r);
    if (!e || !hd) {
        if (e) give_back(p, e);
        curl_slist_free_all(hd);
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    setup(p, e, r, &x, hd, errbuf);
    CURLcode cc = curl_easy_perform(e);
    int rc = finish(e, cc, &x, errbuf, out);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hd);
    /* a handle whose transfer failed may hold a broken connection: drop it */
    if (cc == CURLE_OK) give_back(p, e);
    else curl_easy_cleanup(e);
    return rc;
}

static ph_xfer_t *curl_tr_start(ph_transport_t *t, const ph_req_t *r, int wake_fd, char *err,
                             size_t errlen) {
    (void)wake_fd;
    curl_transport_t *p = (curl_transport_t *)t;
    if (p->busy) {
        snprintf(err, errlen, "a request is already in flight");
        return NULL;
    }
    if (!p->multi && !(p->multi = curl_multi_init())) goto nomem;
    if (!p->easy && !(p->easy = curl_easy_init())) goto nomem;
    ph_xfer_t *x = &p->x;
    struct curl_slist *hd = header_list(r);
    if (!hd) goto nomem;
    curl_slist_free_all(x->hdrs);
    x->hdrs = hd;
    posthog__resp_done(&x->resp);
    posthog__resp_init(&x->resp, r->max_body);
    x->ctx = (req_ctx_t){.out = &x->resp,
                         .max_body = r->max_body ? r->max_body : PH_RESP_BODY_MAX};
    x->errbuf[0] = '\0';
    /* the handle is reused (not reset) so the connection stays open; the
     * body is the caller's until the request completes or is aborted */
    setup(p, p->easy, r, &x->ctx, hd, x->errbuf);
    if (curl_multi_add_handle(p->multi, p->easy) != CURLM_OK) {
        snprintf(err, errlen, "curl_multi_add_handle failed");
        return NULL;
    }
    p->busy = x;
    return x;
nomem:
    snprintf(err, errlen, "out of memory starting a request");
    return NULL;
}

static void curl_tr_abort(ph_transport_t *t, ph_xfer_t *x) {
    curl_transport_t *p = (curl_transport_t *)t;
    if (!x || p->busy != x) return;
    curl_multi_remove_handle(p->multi, p->easy);
    p->busy = NULL;
}

static int curl_tr_poll(ph_transport_t *t, ph_xfer_t *x, int wake_fd, int timeout_ms,
                     ph_resp_t *out) {
    curl_transport_t *p = (curl_transport_t *)t;
    if (!p->multi && !(p->multi = curl_multi_init())) {
        /* out of memory: wait without libcurl */
        struct pollfd pf = {.fd = wake_fd, .events = POLLIN};
        poll(&pf, wake_fd >= 0 ? 1 : 0, timeout_ms < 0 ? 0 : timeout_ms);
        return 0;
    }
    if (x && p->busy != x) x = NULL;
    struct curl_waitfd wfd = {.fd = wake_fd, .events = CURL_WAIT_POLLIN, .revents = 0};
    int running = 0;
    if (x) curl_multi_perform(p->multi, &running);
    if (!x || running) {
        curl_multi_poll(p->multi, wake_fd >= 0 ? &wfd : NULL, wake_fd >= 0 ? 1 : 0,
                        timeout_ms < 0 ? 0 : timeout_ms, NULL);
        if (x) curl_multi_perform(p->multi, &running);
    }
    if (!x) return 0;
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(p->multi, &left))) {
        if (m->msg != CURLMSG_DONE || m->easy_handle != p->easy) continue;
        CURLcode cc = m->data.result;
        finish(p->easy, cc, &x->ctx, x->errbuf, &x->resp);
        curl_tr_abort(t, x);
        *out = x->resp; /* the body moves to the caller */
        posthog__resp_init(&x->resp, 0);
        return 1;
    }
    return 0;
}

static void curl_tr_atfork_child(ph_transport_t *t) {
    curl_transport_t *p = (curl_transport_t *)t;
    /* the handles' sockets are the parent's: leak them rather than send a
     * TLS close_notify on the parent's connection */
    p->nidle = 0;
    p->multi = NULL;
    p->easy = NULL;
    p->busy = NULL;
    pthread_mutex_init(&p->mu, NULL);
}

static void curl_tr_free(ph_transport_t *t) {
    curl_transport_t *p = (curl_transport_t *)t;
    if (p->busy) curl_tr_abort(t, p->busy);
    for (int i = 0; i < p->nidle; i++) curl_easy_cleanup(p->idle[i]);
    if (p->easy) curl_easy_cleanup(p->easy);
    if (p->multi) curl_multi_cleanup(p->multi);
    curl_slist_free_all(p->x.hdrs);
    posthog__resp_done(&p->x.resp);
    pthread_mutex_destroy(&p->mu);
    free(p->ca_bundle);
    free(p);
}

static const ph_transport_ops_t curl_ops = {
    .name = "libcurl",
    .perform = curl_tr_perform,
    .start = curl_tr_start,
    .poll = curl_tr_poll,
    .abort = curl_tr_abort,
    .atfork_child = curl_tr_atfork_child,
    .free = curl_tr_free,
};

ph_transport_t *posthog__transport_curl_new(const posthog_options_t *o) {
    posthog__transport_curl_global_init();
    curl_transport_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.ops = &curl_ops;
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return NULL;
    }
    if (o->ca_bundle && !(p->ca_bundle = strdup(o->ca_bundle))) {
        curl_tr_free(&p->base);
        return NULL;
    }
    p->tls_verify = o->tls_verify;
    p->connect_timeout_ms = o->connect_timeout_ms;
    return &p->base;
}
