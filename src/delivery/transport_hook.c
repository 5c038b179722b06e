/*
 * transport_hook: the application's posthog_transport_fn behind the
 * transport interface (transport.h), and the public completion calls.
 *
 * A call (posthog_transport_call_t) has two owners: the library, which
 * waits for the answer, and the hook, which must complete it once. Each
 * lets go of it (the library by taking the answer or giving up, the hook by
 * completing); the last one frees it. The call owns a copy of the request
 * (URL, headers, body), so a hook completing after the library gave up, or
 * after the client is gone, still reads valid memory. The call's mutex
 * orders a completion against the library giving up: once given up, a
 * completion neither stores the answer nor touches the client's wake-up
 * descriptor (which the client may have closed).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "retry.h"
#include "platform.h"
#include "transport.h"
#include "util.h"

#define USER_AGENT "User-Agent: posthog-c/" POSTHOG_VERSION_STRING

struct posthog_transport_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;          /* [mu] 2: library and hook; 1: one of them; 0: freed */
    bool done;         /* [mu] completed (or the hook refused it) */
    bool abandoned;    /* [mu] the library gave up */
    int wake_fd;       /* written on completion (asynchronous calls), or -1 */
    int64_t deadline;  /* monotonic ms: given up then */
    uint32_t wait_ms;  /* timeout_ms + grace, for the message */
    size_t max_body;
    ph_resp_t resp;    /* [mu] the answer once done */
    /* the request, owned */
    posthog_transport_request_t req;
    char *url;
    char **lines;
    void *body;
};

/* ph_xfer_t of this transport is the call itself. */
struct ph_xfer {
    posthog_transport_call_t call;
};

typedef struct {
    ph_transport_t base;
    posthog_transport_fn fn;
    void *ud;
    uint32_t connect_timeout_ms;
} hook_transport_t;

static void call_free(posthog_transport_call_t *k) {
    posthog__resp_done(&k->resp);
    for (size_t i = 0; k->lines && i < k->req.header_count; i++) free(k->lines[i]);
    free(k->lines);
    free(k->url);
    free(k->body);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

/* Drops one owner's reference; call with k->mu held (released here). */
static void unref_locked(posthog_transport_call_t *k) {
    int left = --k->refs;
    pthread_mutex_unlock(&k->mu);
    if (!left) call_free(k);
}

static posthog_transport_call_t *call_new(const hook_transport_t *h, const ph_req_t *r,
                                          int wake_fd) {
    posthog_transport_call_t *k = calloc(1, sizeof(struct ph_xfer));
    if (!k) return NULL;
    int e1 = pthread_mutex_init(&k->mu, NULL), e2 = posthog__cond_init_mono(&k->cv);
    if (e1 || e2) {
        if (!e1) pthread_mutex_destroy(&k->mu);
        if (!e2) pthread_cond_destroy(&k->cv);
        free(k);
        return NULL;
    }
    k->refs = 2;
    k->wake_fd = wake_fd;
    int timeout = r->timeout_ms > 0 ? r->timeout_ms : 1;
    k->wait_ms = (uint32_t)timeout + PH_HOOK_GRACE_MS;
    k->deadline = posthog__mono_ms() + k->wait_ms;
    k->max_body = r->max_body ? r->max_body : PH_RESP_BODY_MAX;
    posthog__resp_init(&k->resp, k->max_body);
    size_t n = (size_t)(r->nheaders > 0 ? r->nheaders : 0) + 1;
    bool ok = (k->url = strdup(r->url)) != NULL && (k->lines = calloc(n, sizeof *k->lines));
    for (size_t i = 0; ok && i + 1 < n; i++) ok = (k->lines[i] = strdup(r->headers[i])) != NULL;
    if (ok) ok = (k->lines[n - 1] = strdup(USER_AGENT)) != NULL;
    if (ok && r->body && !(k->body = malloc(r->body_len ? r->body_len : 1))) ok = false;
    k->req.header_count = ok ? n : 0;
    if (!ok) {
        for (size_t i = 0; k->lines && i < n; i++) free(k->lines[i]);
        free(k->lines);
        k->lines = NULL;
        call_free(k);
        return NULL;
    }
    if (r->body) memcpy(k->body, r->body, r->body_len);
    k->req.method = r->method;
    k->req.url = k->url;
    k->req.headers = (const char *const *)k->lines;
    k->req.body = k->body;
    k->req.body_len = r->body ? r->body_len : 0;
    k->req.timeout_ms = (uint32_t)timeout;
    k->req.connect_timeout_ms = h->connect_timeout_ms;
    k->req.kind = r->kind ? r->kind : "capture";
    return k;
}

static void wake(int fd) {
    if (fd < 0) return;
    uint64_t one = 1;
    ssize_t w;
    do w = write(fd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
}

/* The hook's answer (or failure) into the call, once. */
static posthog_status_t complete(posthog_transport_call_t *k, long status, const char *retry_after,
                                 const char *etag, const void *body, size_t body_len,
                                 const char *error) {
    pthread_mutex_lock(&k->mu);
    if (k->done) { /* completed twice: the second is refused */
        pthread_mutex_unlock(&k->mu);
        return POSTHOG_E_INVALID_ARG;
    }
    k->done = true;
    if (!k->abandoned) {
        ph_resp_t *o = &k->resp;
        o->status = status;
        if (error) {
            snprintf(o->error, sizeof o->error, "transport hook: %s", *error ? error : "failed");
        } else {
            snprintf(o->error, sizeof o->error, "HTTP %ld", status);
            if (etag) snprintf(o->etag, sizeof o->etag, "%s", etag);
            o->retry_after_ms = posthog__parse_retry_after(retry_after, posthog__now_ms());
            if (body_len > k->max_body || (body_len && posthog__buf_append(&o->body, body, body_len)))
                o->body_truncated = true;
            if (posthog__buf_reserve(&o->body, 1) == 0) o->body.data[o->body.len] = '\0';
        }
        pthread_cond_broadcast(&k->cv);
        wake(k->wake_fd);
    }
    unref_locked(k);
    return POSTHOG_OK;
}

posthog_status_t posthog_transport_complete(posthog_transport_call_t *call, int32_t http_status,
                                            const char *retry_after, const char *etag,
                                            const void *body, size_t body_len) {
    if (!call) return POSTHOG_E_INVALID_ARG;
    if (http_status < 100 || http_status > 599) {
        char msg[96];
        snprintf(msg, sizeof msg, "completed with HTTP status %d (allowed: 100..599)",
                 (int)http_status);
        complete(call, 0, NULL, NULL, NULL, 0, msg);
        return POSTHOG_E_INVALID_ARG;
    }
    if (!body) body_len = 0;
    return complete(call, http_status, retry_after, etag, body, body_len, NULL);
}

posthog_status_t posthog_transport_fail(posthog_transport_call_t *call, const char *message) {
    if (!call) return POSTHOG_E_INVALID_ARG;
    return complete(call, 0, NULL, NULL, NULL, 0, message ? message : "");
}

int posthog_transport_call_abandoned(const posthog_transport_call_t *call) {
    if (!call) return 1;
    posthog_transport_call_t *k = (posthog_transport_call_t *)call;
    pthread_mutex_lock(&k->mu);
    int a = k->abandoned;
    pthread_mutex_unlock(&k->mu);
    return a;
}

/* Runs the hook on k. A refusal (non-zero) completes the call with that
 * failure in the hook's place. */
static void invoke(hook_transport_t *h, posthog_transport_call_t *k) {
    /* in the client's callback frame: its flush/shutdown/free are refused
     * inside the hook (they would wait for the flusher running the hook) */
    ph_cb_frame_t fr;
    if (h->base.owner) ph_cb_enter(&fr, h->base.owner);
    int rc = h->fn(&k->req, k, h->ud);
    if (h->base.owner) ph_cb_leave(&fr);
    if (rc) {
        char msg[96];
        snprintf(msg, sizeof msg, "the hook refused the request (returned %d)", rc);
        complete(k, 0, NULL, NULL, NULL, 0, msg); /* refused by a finished call: ignored */
    }
}

/* The library's side: takes the answer (done) or gives up; releases k. */
static int take_answer_locked(posthog_transport_call_t *k, ph_resp_t *out) {
    int rc;
    if (k->done) {
        *out = k->resp;
        posthog__resp_init(&k->resp, 0);
        rc = out->status ? 0 : -1;
    } else {
        posthog__resp_init(out, 0);
        out->timed_out = true;
        snprintf(out->error, sizeof out->error,
                 "transport hook: no answer within %u ms (the call is given up)", k->wait_ms);
        rc = -1;
    }
    if (posthog__buf_reserve(&out->body, 1) == 0) out->body.data[out->body.len] = '\0';
    k->abandoned = true;
    unref_locked(k);
    return rc;
}

static int hook_perform(ph_transport_t *t, const ph_req_t *r, ph_resp_t *out) {
    hook_transport_t *h = (hook_transport_t *)t;
    posthog_transport_call_t *k = call_new(h, r, -1);
    if (!k) {
        posthog__resp_init(out, 0);
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    invoke(h, k);
    pthread_mutex_lock(&k->mu);
    for (;;) {
        if (k->done) break;
        if (r->cancel && atomic_load_explicit(r->cancel, memory_order_relaxed)) {
            k->abandoned = true;
            unref_locked(k);
            posthog__resp_init(out, 0);
            snprintf(out->error, sizeof out->error, "cancelled");
            return -1;
        }
        int64_t now = posthog__mono_ms();
        if (now >= k->deadline) break;
        int64_t step = PH_MIN(k->deadline - now, 100);
        struct timespec ts = posthog__cond_deadline(now + step);
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    return take_answer_locked(k, out);
}

static ph_xfer_t *hook_start(ph_transport_t *t, const ph_req_t *r, int wake_fd, char *err,
                             size_t errlen) {
    hook_transport_t *h = (hook_transport_t *)t;
    posthog_transport_call_t *k = call_new(h, r, wake_fd);
    if (!k) {
        snprintf(err, errlen, "out of memory starting a request");
        return NULL;
    }
    invoke(h, k);
    return (ph_xfer_t *)k;
}

static int hook_poll(ph_transport_t *t, ph_xfer_t *x, int wake_fd, int timeout_ms,
                     ph_resp_t *out) {
    (void)t;
    posthog_transport_call_t *k = (posthog_transport_call_t *)x;
    if (k) {
        pthread_mutex_lock(&k->mu);
        int64_t now = posthog__mono_ms();
        if (k->done || now >= k->deadline) {
            take_answer_locked(k, out);
            return 1;
        }
        pthread_mutex_unlock(&k->mu);
        if (k->deadline - now < timeout_ms) timeout_ms = (int)(k->deadline - now);
    }
    /* a completion writes wake_fd (the flusher drains it after this) */
    struct pollfd pf = {.fd = wake_fd, .events = POLLIN};
    if (timeout_ms > 0) poll(&pf, wake_fd >= 0 ? 1 : 0, timeout_ms);
    if (!k) return 0;
    pthread_mutex_lock(&k->mu);
    if (k->done || posthog__mono_ms() >= k->deadline) {
        take_answer_locked(k, out);
        return 1;
    }
    pthread_mutex_unlock(&k->mu);
    return 0;
}

static void hook_abort(ph_transport_t *t, ph_xfer_t *x) {
    (void)t;
    posthog_transport_call_t *k = (posthog_transport_call_t *)x;
    if (!k) return;
    pthread_mutex_lock(&k->mu);
    k->abandoned = true;
    unref_locked(k);
}

static void hook_atfork_child(ph_transport_t *t) { (void)t; }

static void hook_free(ph_transport_t *t) { free(t); }

static const ph_transport_ops_t hook_ops = {
    .name = "hook",
    .perform = hook_perform,
    .start = hook_start,
    .poll = hook_poll,
    .abort = hook_abort,
    .atfork_child = hook_atfork_child,
    .free = hook_free,
};

ph_transport_t *posthog__transport_hook_new(const posthog_options_t *o) {
    hook_transport_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->base.ops = &hook_ops;
    h->fn = o->transport_fn;
    h->ud = o->transport_ud;
    h->connect_timeout_ms = o->connect_timeout_ms;
    return &h->base;
}
