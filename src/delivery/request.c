/*
 * request: synchronous libcurl requests from a pool of idle handles
 * (see request.h).
 */
#include "request.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "retry.h"
#include "util.h"

#define POOL_IDLE_MAX 4
#define BODY_MAX_DEFAULT ((size_t)4 << 20)

struct ph_req_pool {
    pthread_mutex_t mu;
    CURL *idle[POOL_IDLE_MAX];
    int nidle;
    char *ca_bundle;
    bool tls_verify;
    uint32_t connect_timeout_ms;
};

typedef struct {
    ph_resp_t *out;
    size_t max_body;
    _Atomic int *cancel;
    char retry_after[64];
} req_ctx_t;

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    req_ctx_t *x = ud;
    return x->cancel && atomic_load_explicit(x->cancel, memory_order_relaxed) ? 1 : 0;
}

/* Copies a header's value (trimmed) when its name matches. */
static bool header_value(const char *buf, size_t len, const char *name, char *dst, size_t cap) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(buf, name, nl) || buf[nl] != ':') return false;
    const char *v = buf + nl + 1, *e = buf + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t n = (size_t)(e - v);
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    req_ctx_t *x = ud;
    size_t len = size * n;
    /* a new response (a redirect is not followed, but 100 Continue is one) */
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        x->out->etag[0] = '\0';
        x->retry_after[0] = '\0';
    }
    if (!header_value(buf, len, "etag", x->out->etag, sizeof x->out->etag))
        header_value(buf, len, "retry-after", x->retry_after, sizeof x->retry_after);
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

ph_req_pool_t *posthog__req_pool_new(const posthog_options_t *o) {
    ph_req_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return NULL;
    }
    if (o->ca_bundle && !(p->ca_bundle = strdup(o->ca_bundle))) {
        posthog__req_pool_free(p);
        return NULL;
    }
    p->tls_verify = o->tls_verify;
    p->connect_timeout_ms = o->connect_timeout_ms;
    return p;
}

void posthog__req_pool_free(ph_req_pool_t *p) {
    if (!p) return;
    for (int i = 0; i < p->nidle; i++) curl_easy_cleanup(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    free(p->ca_bundle);
    free(p);
}

void posthog__req_pool_atfork_child(ph_req_pool_t *p) {
    if (!p) return;
    /* the handles' sockets are the parent's: leak them rather than send a
     * TLS close_notify on the parent's connection */
    p->nidle = 0;
    pthread_mutex_init(&p->mu, NULL);
}

static CURL *take(ph_req_pool_t *p) {
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

static void give_back(ph_req_pool_t *p, CURL *e) {
    pthread_mutex_lock(&p->mu);
    if (p->nidle < POOL_IDLE_MAX) {
        p->idle[p->nidle++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (e) curl_easy_cleanup(e);
}

void posthog__req_done(ph_resp_t *out) { posthog__buf_free(&out->body); }

int posthog__req_perform(ph_req_pool_t *p, const ph_req_t *r, ph_resp_t *out) {
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    req_ctx_t x = {.out = out, .max_body = r->max_body ? r->max_body : BODY_MAX_DEFAULT,
                   .cancel = r->cancel};
    posthog__buf_init(&out->body, x.max_body + 1);
    CURL *e = take(p);
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:"), *t;
    for (int i = 0; hd && i < r->nheaders; i++) {
        if (!(t = curl_slist_append(hd, r->headers[i]))) {
            curl_slist_free_all(hd);
            hd = NULL;
        } else {
            hd = t;
        }
    }
    if (!e || !hd) {
        if (e) give_back(p, e);
        curl_slist_free_all(hd);
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long timeout = r->timeout_ms > 0 ? r->timeout_ms : 1;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "posthog-c/" POSTHOG_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* a timed-out request must not wait for a hung name resolution (http.c) */
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)PH_MIN((long)p->connect_timeout_ms, timeout));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->cancel) {
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, &x);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
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
    CURLcode cc = curl_easy_perform(e);
    int rc = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
        snprintf(out->error, sizeof out->error, "HTTP %ld", out->status);
        out->retry_after_ms = posthog__parse_retry_after(x.retry_after, posthog__now_ms());
    } else {
        out->timed_out = cc == CURLE_OPERATION_TIMEDOUT;
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            snprintf(out->error, sizeof out->error, "cancelled");
            errbuf[0] = '\0';
        }
        if (cc != CURLE_ABORTED_BY_CALLBACK)
            snprintf(out->error, sizeof out->error, "%s: %s", curl_easy_strerror(cc),
                     errbuf[0] ? errbuf : "no detail");
        rc = -1;
    }
    if (posthog__buf_reserve(&out->body, 0) == 0 && out->body.data) out->body.data[out->body.len] = '\0';
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hd);
    /* a handle whose transfer failed may hold a broken connection: drop it */
    if (cc == CURLE_OK) give_back(p, e);
    else curl_easy_cleanup(e);
    return rc;
}
