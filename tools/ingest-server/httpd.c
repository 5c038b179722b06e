/*
 * httpd: loopback-only HTTP/1.1 server for the development tools.
 *
 * Owns: the listening socket, one accept thread, one thread per connection.
 * Invariants:
 *  - only 127.0.0.1 / ::1 are ever bound ("localhost" means 127.0.0.1; no
 *    name resolution is done);
 *  - a request head is at most HEAD_MAX bytes and HEADERS_MAX lines, a body
 *    at most BODY_MAX bytes; anything else gets 4xx and the connection closes;
 *  - every blocking read polls the stop pipe too, so ph_httpd_stop() wakes
 *    every thread, then joins them all (the pipe is written once and never
 *    drained: it stays readable for every poller).
 * Lock order: only s->lock exists; it is never held across I/O.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)
#define HEADERS_MAX 128
#define BODY_MAX ((size_t)128 * 1024 * 1024)
#define CONNS_MAX 1024
#define READ_CHUNK (256 * 1024)

typedef struct conn {
    struct conn *next;
    struct ph_httpd *srv;
    int fd;
    pthread_t thread;
    atomic_int done; /* set by the connection thread as its last act */
    /* read window: bytes [start, end) of buf are received but unconsumed */
    char *buf;
    size_t start, end;
    size_t floor; /* bytes [0, floor) hold the current request head: never moved */
    ph_http_header_t headers[HEADERS_MAX];
} conn_t;

struct ph_httpd {
    int listen_fd;
    int wake[2]; /* stop pipe */
    int port;
    ph_http_handler_fn fn;
    void *user_data;
    pthread_t accept_thread;
    atomic_int stopping;
    pthread_mutex_t lock; /* guards conns, nconns */
    conn_t *conns;
    int nconns;
};

/* ------------------------------------------------------------ low-level io */

/* Waits until fd is readable or the server stops. 1 readable, 0 stopping. */
static int wait_readable(conn_t *c)
{
    struct pollfd p[2] = {{c->fd, POLLIN, 0}, {c->srv->wake[0], POLLIN, 0}};
    for (;;) {
        if (atomic_load(&c->srv->stopping))
            return 0;
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (p[1].revents & POLLIN))
            return 0;
        if (p[0].revents)
            return 1;
    }
}

/* recv() that gives up when the server stops. >0 bytes, 0 EOF, -1 error. */
static ssize_t conn_recv(conn_t *c, void *dst, size_t n)
{
    for (;;) {
        if (!wait_readable(c))
            return -1;
        ssize_t r = recv(c->fd, dst, n, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return r;
    }
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Receives more bytes into the window, compacting it first. */
static int fill(conn_t *c)
{
    if (c->start > c->floor) {
        memmove(c->buf + c->floor, c->buf + c->start, c->end - c->start);
        c->end -= c->start - c->floor;
        c->start = c->floor;
    }
    if (c->end >= READ_CHUNK)
        return -1;
    ssize_t r = conn_recv(c, c->buf + c->end, READ_CHUNK - c->end);
    if (r <= 0)
        return -1;
    c->end += (size_t)r;
    return 0;
}

/* Copies n bytes to dst: window first, then straight from the socket. */
static int read_exact(conn_t *c, char *dst, size_t n)
{
    size_t have = c->end - c->start;
    size_t take = have < n ? have : n;
    memcpy(dst, c->buf + c->start, take);
    c->start += take;
    dst += take;
    n -= take;
    while (n > 0) {
        ssize_t r = conn_recv(c, dst, n);
        if (r <= 0)
            return -1;
        dst += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Returns a NUL-terminated line (CRLF or LF stripped) of at most max bytes. */
static char *read_line(conn_t *c, size_t max)
{
    for (;;) {
        char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
        if (nl) {
            char *line = c->buf + c->start;
            c->start = (size_t)(nl - c->buf) + 1;
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            return line;
        }
        if (c->end - c->start > max || fill(c) < 0)
            return NULL;
    }
}

/* ------------------------------------------------------------ responses */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static int send_response(int fd, const ph_http_response_t *res, int keep_alive, int head_only)
{
    char head[1024];
    int status = res->status >= 100 && res->status <= 999 ? res->status : 500;
    size_t blen = res->body ? res->body_len : 0;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     status, reason(status), res->content_type[0] ? res->content_type : "text/plain",
                     blen, res->extra_headers, keep_alive ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    struct iovec iov[2] = {{head, (size_t)n}, {res->body, head_only ? 0 : blen}};
    struct msghdr m = {0};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    size_t total = (size_t)n + iov[1].iov_len;
    ssize_t w;
    do {
        w = sendmsg(fd, &m, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w < 0)
        return -1;
    if ((size_t)w == total)
        return 0;
    /* Short write: finish the rest piecewise. */
    size_t done = (size_t)w;
    if (done < (size_t)n) {
        if (send_all(fd, head + done, (size_t)n - done) < 0)
            return -1;
        done = (size_t)n;
    }
    return send_all(fd, res->body + (done - (size_t)n), total - done);
}

static void send_error(conn_t *c, int status, const char *msg)
{
    ph_http_response_t res;
    memset(&res, 0, sizeof res);
    res.status = status;
    snprintf(res.content_type, sizeof res.content_type, "text/plain");
    res.body = (char *)msg;
    res.body_len = strlen(msg);
    (void)send_response(c->fd, &res, 0, 0);
}

/* ------------------------------------------------------------ requests */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Finds the end of the head in the window; returns its length incl. the blank line. */
static size_t head_end(const conn_t *c)
{
    const char *p = c->buf + c->start, *e = c->buf + c->end;
    for (const char *q = p; q < e; q++) {
        q = memchr(q, '\n', (size_t)(e - q));
        if (!q)
            return 0;
        if (q + 1 < e && q[1] == '\n')
            return (size_t)(q + 2 - p);
        if (q + 2 < e && q[1] == '\r' && q[2] == '\n')
            return (size_t)(q + 3 - p);
    }
    return 0;
}

/* Parses "ab12;ext" into *out; 0 on success. */
static int parse_chunk_size(const char *s, size_t *out)
{
    size_t v = 0;
    int digits = 0;
    for (; *s; s++, digits++) {
        int d;
        if (*s >= '0' && *s <= '9') d = *s - '0';
        else if (*s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
        else break;
        if (v > BODY_MAX)
            return -1;
        v = v * 16 + (size_t)d;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (!digits || (*s && *s != ';'))
        return -1;
    *out = v;
    return 0;
}

/* Reads a chunked body into a growing buffer. 0 ok, else the HTTP status to send. */
static int read_chunked(conn_t *c, char **body, size_t *len)
{
    size_t cap = 0, n = 0;
    char *b = NULL;
    for (;;) {
        char *line = read_line(c, 1024);
        size_t sz;
        if (!line) {
            free(b);
            return -1;
        }
        if (parse_chunk_size(line, &sz) < 0) {
            free(b);
            return 400;
        }
        if (sz == 0)
            break;
        if (sz > BODY_MAX - n) {
            free(b);
            return 413;
        }
        if (n + sz + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 64 * 1024;
            while (ncap < n + sz + 1)
                ncap *= 2;
            char *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                return 500;
            }
            b = nb;
            cap = ncap;
        }
        if (read_exact(c, b + n, sz) < 0) {
            free(b);
            return -1;
        }
        n += sz;
        line = read_line(c, 2);
        if (!line || line[0]) {
            free(b);
            return line ? 400 : -1;
        }
    }
    for (int i = 0;; i++) { /* trailers, ignored */
        char *line = read_line(c, 8192);
        if (!line || i > HEADERS_MAX) {
            free(b);
            return line ? 431 : -1;
        }
        if (!line[0])
            break;
    }
    if (!b && !(b = malloc(1)))
        return 500;
    b[n] = '\0';
    *body = b;
    *len = n;
    return 0;
}

static int parse_content_length(const char *v, size_t *out)
{
    size_t n = 0;
    if (!*v)
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        if (n > BODY_MAX)
            return 1;
        n = n * 10 + (size_t)(*v - '0');
    }
    *out = n;
    return n > BODY_MAX ? 1 : 0;
}

static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *p = v; (p = strcasestr(p, tok)) != NULL; p += tl) {
        int start_ok = p == v || p[-1] == ',' || p[-1] == ' ' || p[-1] == '\t';
        char e = p[tl];
        if (start_ok && (e == '\0' || e == ',' || e == ' ' || e == '\t' || e == ';'))
            return 1;
    }
    return 0;
}

static void delay(ph_httpd_t *s, int ms)
{
    struct pollfd p = {s->wake[0], POLLIN, 0};
    while (ms > 0 && !atomic_load(&s->stopping)) {
        int step = ms > 100 ? 100 : ms;
        if (poll(&p, 1, step) > 0)
            return;
        ms -= step;
    }
}

/* Discards input until the peer closes the connection (or it fails) or the
 * server stops: a request that is never answered ends when its client gives up. */
static void wait_peer_close(conn_t *c)
{
    char sink[4096];
    while (conn_recv(c, sink, sizeof sink) > 0)
        ;
}

/* Serves one request. Returns 1 to keep the connection, 0 to close it. */
static int serve_one(conn_t *c)
{
    size_t hlen;
    /* Start each request at the front of the window so the head is contiguous. */
    c->floor = 0;
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    while ((hlen = head_end(c)) == 0) {
        if (c->end - c->start >= HEAD_MAX) {
            send_error(c, 431, "request head too large\n");
            return 0;
        }
        if (fill(c) < 0)
            return 0;
    }
    if (hlen > HEAD_MAX) {
        send_error(c, 431, "request head too large\n");
        return 0;
    }
    char *head = c->buf + c->start;
    head[hlen - 1] = '\0';
    c->start += hlen;
    c->floor = c->start; /* method, path and headers point into the head */

    /* request line */
    char *save = NULL;
    char *line = strtok_r(head, "\n", &save);
    while (line && (line[0] == '\r' || !line[0])) /* tolerate leading blank lines */
        line = strtok_r(NULL, "\n", &save);
    if (!line) {
        send_error(c, 400, "empty request\n");
        return 0;
    }
    size_t ll = strlen(line);
    if (ll && line[ll - 1] == '\r')
        line[ll - 1] = '\0';
    char *method = line, *target = strchr(line, ' '), *version;
    if (!target) {
        send_error(c, 400, "bad request line\n");
        return 0;
    }
    *target++ = '\0';
    version = strchr(target, ' ');
    if (!version || !method[0] || target[0] != '/') {
        send_error(c, 400, "bad request line\n");
        return 0;
    }
    *version++ = '\0';
    int http10;
    if (strcmp(version, "HTTP/1.1") == 0)
        http10 = 0;
    else if (strcmp(version, "HTTP/1.0") == 0)
        http10 = 1;
    else {
        send_error(c, 400, "unsupported HTTP version\n");
        return 0;
    }

    size_t nh = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        ll = strlen(line);
        if (ll && line[ll - 1] == '\r')
            line[--ll] = '\0';
        if (!ll)
            break;
        char *colon = strchr(line, ':');
        if (!colon || colon == line || nh >= HEADERS_MAX) {
            send_error(c, colon ? 431 : 400, "bad header\n");
            return 0;
        }
        *colon = '\0';
        c->headers[nh].name = line;
        c->headers[nh].value = trim(colon + 1);
        nh++;
    }

    ph_http_request_t req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = target;
    char *q = strchr(target, '?');
    if (q)
        *q++ = '\0';
    req.query = q ? q : "";
    req.headers = c->headers;
    req.header_count = nh;

    const char *conn_h = ph_http_header(&req, "Connection");
    int keep = http10 ? (conn_h && has_token(conn_h, "keep-alive"))
                      : !(conn_h && has_token(conn_h, "close"));

    const char *te = ph_http_header(&req, "Transfer-Encoding");
    const char *cl = ph_http_header(&req, "Content-Length");
    const char *expect = ph_http_header(&req, "Expect");
    size_t blen = 0;
    char *body = NULL;
    if (te && strcasecmp(te, "identity") != 0) {
        if (strcasecmp(te, "chunked") != 0) {
            send_error(c, 501, "unsupported transfer-encoding\n");
            return 0;
        }
    } else if (cl) {
        int r = parse_content_length(cl, &blen);
        if (r != 0) {
            send_error(c, r > 0 ? 413 : 400, r > 0 ? "body too large\n" : "bad content-length\n");
            return 0;
        }
    }
    if (expect && strcasecmp(expect, "100-continue") == 0 && !http10 &&
        (te || blen > 0) && send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        return 0;
    if (te && strcasecmp(te, "identity") != 0) {
        int r = read_chunked(c, &body, &blen);
        if (r != 0) {
            if (r > 0)
                send_error(c, r, "bad chunked body\n");
            return 0;
        }
    } else {
        body = malloc(blen + 1);
        if (!body) {
            send_error(c, 500, "out of memory\n");
            return 0;
        }
        if (read_exact(c, body, blen) < 0) {
            free(body);
            return 0;
        }
        body[blen] = '\0';
    }
    req.body = body;
    req.body_len = blen;

    ph_http_response_t res;
    memset(&res, 0, sizeof res);
    res.status = 200;
    snprintf(res.content_type, sizeof res.content_type, "application/json");
    c->srv->fn(&req, &res, c->srv->user_data);
    free(body);

    if (res.delay_ms > 0)
        delay(c->srv, res.delay_ms);
    if (res.reset) {
        struct linger lg = {1, 0}; /* close() then sends RST */
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        free(res.body);
        return 0;
    }
    if (res.hang) {
        wait_peer_close(c);
        free(res.body);
        return 0;
    }
    if (atomic_load(&c->srv->stopping))
        keep = 0;
    int head_only = strcmp(method, "HEAD") == 0;
    int w = send_response(c->fd, &res, keep, head_only);
    free(res.body);
    return w == 0 && keep;
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    c->buf = malloc(READ_CHUNK);
    if (c->buf) {
        while (!atomic_load(&c->srv->stopping) && serve_one(c))
            ;
    }
    free(c->buf);
    c->buf = NULL;
    close(c->fd);
    c->fd = -1;
    atomic_store(&c->done, 1); /* seq_cst; read by reap() before join */
    return NULL;
}

/* Joins finished connection threads (all of them when `all`). */
static void reap(ph_httpd_t *s, int all)
{
    pthread_mutex_lock(&s->lock);
    conn_t **pp = &s->conns;
    conn_t *dead = NULL;
    while (*pp) {
        conn_t *c = *pp;
        if (all || atomic_load(&c->done)) {
            *pp = c->next;
            c->next = dead;
            dead = c;
            s->nconns--;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (dead) {
        conn_t *c = dead;
        dead = c->next;
        pthread_join(c->thread, NULL);
        free(c);
    }
}

static void *accept_main(void *arg)
{
    ph_httpd_t *s = arg;
    struct pollfd p[2] = {{s->listen_fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
    while (!atomic_load(&s->stopping)) {
        int r = poll(p, 2, 1000);
        reap(s, 0);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0 || (p[1].revents & POLLIN))
            continue;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&s->lock);
        int full = s->nconns >= CONNS_MAX;
        pthread_mutex_unlock(&s->lock);
        conn_t *c = full ? NULL : calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval tv = {30, 0}; /* a client that stops reading cannot block stop() for ever */
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        c->fd = fd;
        c->srv = s;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        s->conns = c;
        s->nconns++;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* ------------------------------------------------------------ public API */

ph_httpd_t *ph_httpd_start(const char *host, int port, ph_http_handler_fn fn, void *user_data,
                           char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (err && errlen)
        err[0] = '\0';
    if (!fn || port < 0 || port > 65535) {
        snprintf(err, errlen, "invalid arguments");
        return NULL;
    }
    if (!host || strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *a;
    } else if (strcmp(host, "::1") == 0) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        sl = sizeof *a;
    } else {
        snprintf(err, errlen, "refusing to listen on '%s': loopback only (127.0.0.1, localhost, ::1)",
                 host);
        return NULL;
    }
    ph_httpd_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->fn = fn;
    s->user_data = user_data;
    s->wake[0] = s->wake[1] = -1;
    s->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->listen_fd < 0 || pipe2(s->wake, O_CLOEXEC) < 0 ||
        setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(s->listen_fd, (struct sockaddr *)&ss, sl) < 0 || listen(s->listen_fd, 128) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host ? host : "127.0.0.1", port,
                 strerror(errno));
        goto fail;
    }
    sl = sizeof ss;
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto fail;
    }
    s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    pthread_mutex_init(&s->lock, NULL);
    if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
        snprintf(err, errlen, "cannot create thread");
        pthread_mutex_destroy(&s->lock);
        goto fail;
    }
    return s;
fail:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    free(s);
    return NULL;
}

int ph_httpd_port(const ph_httpd_t *s)
{
    return s ? s->port : -1;
}

void ph_httpd_stop(ph_httpd_t *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    char b = 1;
    while (write(s->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    pthread_join(s->accept_thread, NULL);
    reap(s, 1);
    close(s->listen_fd);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *ph_http_header(const ph_http_request_t *req, const char *name)
{
    for (size_t i = 0; req && name && i < req->header_count; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

void ph_http_set_body(ph_http_response_t *res, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    char *b = malloc(n + 1);
    free(res->body);
    res->body = b;
    res->body_len = b ? n : 0;
    if (b) {
        if (n)
            memcpy(b, text, n);
        b[n] = '\0';
    }
}
