/* mini_http: see mini_http.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mini_http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MH_MAX_ANSWER ((size_t)64 << 20)

static int wait_fd(int fd, short ev, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    do r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

static int send_all(int fd, const void *data, size_t len, int timeout_ms) {
    const char *p = data;
    while (len) {
        if (wait_fd(fd, POLLOUT, timeout_ms)) return -1;
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int connect_to(const char *host, const char *port, int timeout_ms, char *err, size_t n) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        snprintf(err, n, "cannot resolve %.64s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) == 0) {
            int e = 0;
            socklen_t el = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
            if (!e) break;
            errno = e;
        }
        snprintf(err, n, "cannot connect to %.64s:%s: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* The value of header `name` in the header block [h, e), trimmed, or "". */
static void header(const char *h, const char *e, const char *name, char *dst, size_t cap) {
    size_t nl = strlen(name);
    dst[0] = '\0';
    while (h < e) {
        const char *eol = memchr(h, '\n', (size_t)(e - h));
        if (!eol) eol = e;
        if ((size_t)(eol - h) > nl && !strncasecmp(h, name, nl) && h[nl] == ':') {
            const char *v = h + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t k = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(dst, v, k);
            dst[k] = '\0';
            return;
        }
        h = eol + 1;
    }
}

int mh_request(const char *method, const char *url, const char *const *headers, size_t nheaders,
               const void *body, size_t body_len, int timeout_ms, mh_resp_t *out) {
    memset(out, 0, sizeof *out);
    if (strncmp(url, "http://", 7)) {
        snprintf(out->error, sizeof out->error, "only http:// URLs are supported: %s", url);
        return -1;
    }
    const char *hp = url + 7, *path = strchr(hp, '/');
    if (!path) path = hp + strlen(hp);
    char host[256], port[16] = "80";
    size_t hl = (size_t)(path - hp);
    if (hl >= sizeof host) hl = sizeof host - 1;
    memcpy(host, hp, hl);
    host[hl] = '\0';
    char *colon = strrchr(host, ':');
    if (colon) {
        snprintf(port, sizeof port, "%s", colon + 1);
        *colon = '\0';
    }
    int fd = connect_to(host, port, timeout_ms, out->error, sizeof out->error);
    if (fd < 0) return -1;
    /* the request head */
    size_t cap = 512 + strlen(url) + (body ? 32 : 0);
    for (size_t i = 0; i < nheaders; i++) cap += strlen(headers[i]) + 2;
    char *head = malloc(cap);
    int rc = -1;
    char *buf = NULL;
    if (!head) {
        snprintf(out->error, sizeof out->error, "out of memory");
        goto out;
    }
    size_t n = (size_t)snprintf(head, cap, "%s %s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n",
                                method, *path ? path : "/", (int)(path - hp), hp);
    for (size_t i = 0; i < nheaders; i++) n += (size_t)snprintf(head + n, cap - n, "%s\r\n", headers[i]);
    if (body) n += (size_t)snprintf(head + n, cap - n, "Content-Length: %zu\r\n", body_len);
    n += (size_t)snprintf(head + n, cap - n, "\r\n");
    if (send_all(fd, head, n, timeout_ms) || (body && send_all(fd, body, body_len, timeout_ms))) {
        snprintf(out->error, sizeof out->error, "cannot send the request: %s",
                 errno ? strerror(errno) : "timed out");
        goto out;
    }
    /* the answer: read until the body is complete or the peer closes */
    size_t len = 0, bcap = 16384, want = (size_t)-1, hend = 0;
    buf = malloc(bcap + 1);
    while (buf) {
        if (hend && len >= want) break;
        if (len == bcap) {
            if (bcap >= MH_MAX_ANSWER) break;
            char *nb = realloc(buf, bcap * 2 + 1);
            if (!nb) break;
            buf = nb;
            bcap *= 2;
        }
        if (wait_fd(fd, POLLIN, timeout_ms)) {
            snprintf(out->error, sizeof out->error, "no answer within %d ms", timeout_ms);
            goto out;
        }
        ssize_t r = recv(fd, buf + len, bcap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(out->error, sizeof out->error, "cannot read the answer: %s", strerror(errno));
            goto out;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (!hend) {
            buf[len] = '\0';
            char *e = strstr(buf, "\r\n\r\n");
            if (e) {
                hend = (size_t)(e - buf) + 4;
                char v[32];
                header(buf, e + 2, "Content-Length", v, sizeof v);
                if (v[0]) want = hend + strtoull(v, NULL, 10);
                char te[32];
                header(buf, e + 2, "Transfer-Encoding", te, sizeof te);
                if (te[0]) {
                    snprintf(out->error, sizeof out->error, "chunked answers are not supported");
                    goto out;
                }
            }
        }
    }
    if (!buf || !hend || sscanf(buf, "HTTP/%*d.%*d %d", &out->status) != 1) {
        snprintf(out->error, sizeof out->error, "no HTTP answer");
        out->status = 0;
        goto out;
    }
    if (want != (size_t)-1 && len < want) {
        snprintf(out->error, sizeof out->error, "the answer ended early");
        out->status = 0;
        goto out;
    }
    header(buf, buf + hend - 2, "Retry-After", out->retry_after, sizeof out->retry_after);
    header(buf, buf + hend - 2, "ETag", out->etag, sizeof out->etag);
    size_t blen = (want != (size_t)-1 ? want : len) - hend;
    memmove(buf, buf + hend, blen);
    buf[blen] = '\0';
    out->body = buf;
    out->body_len = blen;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    free(head);
    close(fd);
    return rc;
}

void mh_resp_free(mh_resp_t *r) {
    free(r->body);
    r->body = NULL;
}
