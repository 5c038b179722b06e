/*
 * http: libcurl transport (see http.h). The easy handle is reused so the
 * connection (and TLS session) stays open between batches.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "retry.h"
#include "util.h"

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    ph_http_t *h = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && !strncasecmp(buf, name, sizeof name - 1)) {
        size_t vl = len - (sizeof name - 1);
        if (vl >= sizeof h->retry_after) vl = sizeof h->retry_after - 1;
        memcpy(h->retry_after, buf + sizeof name - 1, vl);
        h->retry_after[vl] = '\0';
        char *e = h->retry_after + strlen(h->retry_after);
        while (e > h->retry_after && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) *--e = 0;
    }
    return len;
}

#define RESP_MAX ((size_t)4 << 20)

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
    ph_http_t *h = ud;
    size_t len = size * n;
    /* v1 answers a results map; past the bound the rest is not kept (the
     * protocol then treats the answer as unreadable) */
    if (h->resp.len + len + 1 <= h->resp.max) posthog__buf_append(&h->resp, buf, len);
    else h->resp.max = 0; /* mark truncated */
    return len;
}

int posthog__http_init(ph_http_t *h, const posthog_options_t *o) {
    memset(h, 0, sizeof *h);
    posthog__buf_init(&h->resp, RESP_MAX);
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy) goto fail;
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "posthog-c/" POSTHOG_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Abandoning a request (the shutdown deadline) must not wait for a
     * name resolution in progress: without this, libcurl joins its
     * resolver thread, which blocks for as long as getaddrinfo() does (a
     * hung DNS server: many seconds past any deadline). With it the
     * resolver thread is detached and cleans up after itself. */
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (o->ca_bundle) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_bundle);
    if (!o->tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return 0;
fail:
    posthog__http_free(h);
    return -1;
}

void posthog__http_free(ph_http_t *h) {
    if (h->busy) posthog__batch_free(posthog__http_abort(h));
    if (h->easy) curl_easy_cleanup(h->easy);
    if (h->multi) curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->hdrs);
    posthog__buf_free(&h->resp);
    memset(h, 0, sizeof *h);
}

int posthog__http_start(ph_http_t *h, const char *url, const char *const *headers, int nheaders,
                        ph_batch_t *bt) {
    CURL *e = h->easy;
    h->retry_after[0] = '\0';
    h->errbuf[0] = '\0';
    /* "Expect:" disables 100-continue: it would add a round trip per POST */
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:"), *t;
    for (int i = 0; hd && i < nheaders; i++) {
        if (!(t = curl_slist_append(hd, headers[i]))) {
            curl_slist_free_all(hd);
            hd = NULL;
        } else {
            hd = t;
        }
    }
    if (!hd) return -1;
    curl_slist_free_all(h->hdrs);
    h->hdrs = hd;
    h->resp.len = 0;
    h->resp.max = RESP_MAX;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bt->body.len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, bt->body.data);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) return -1;
    h->busy = true;
    h->batch = bt;
    return 0;
}

ph_batch_t *posthog__http_abort(ph_http_t *h) {
    if (!h->busy) return NULL;
    curl_multi_remove_handle(h->multi, h->easy);
    h->busy = false;
    ph_batch_t *bt = h->batch;
    h->batch = NULL;
    return bt;
}

int posthog__http_poll(ph_http_t *h, int wake_fd, int timeout_ms, ph_http_result_t *res) {
    struct curl_waitfd wfd = {.fd = wake_fd, .events = CURL_WAIT_POLLIN, .revents = 0};
    int running = 0;
    if (h->busy) curl_multi_perform(h->multi, &running);
    if (!h->busy || running) {
        curl_multi_poll(h->multi, wake_fd >= 0 ? &wfd : NULL, wake_fd >= 0 ? 1 : 0,
                        timeout_ms < 0 ? 0 : timeout_ms, NULL);
        if (h->busy) curl_multi_perform(h->multi, &running);
    }
    if (!h->busy) return 0;
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE || m->easy_handle != h->easy) continue;
        CURLcode cc = m->data.result;
        long status = 0;
        if (cc == CURLE_OK) curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        res->status = status;
        res->retry_after_ms = posthog__parse_retry_after(h->retry_after, posthog__now_ms());
        if (cc != CURLE_OK)
            snprintf(res->error, sizeof res->error, "%s: %s", curl_easy_strerror(cc),
                     h->errbuf[0] ? h->errbuf : "no detail");
        else
            snprintf(res->error, sizeof res->error, "HTTP %ld", status);
        res->body_truncated = h->resp.max == 0;
        if (posthog__buf_reserve(&h->resp, 1) == 0) h->resp.data[h->resp.len] = '\0';
        res->body = h->resp.data && !res->body_truncated ? h->resp.data : "";
        res->body_len = res->body_truncated ? 0 : h->resp.len;
        res->batch = posthog__http_abort(h);
        return 1;
    }
    return 0;
}
