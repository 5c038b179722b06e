/*
 * transport_broker: the other end of examples/transport_publish. It listens
 * on a unix socket for length-prefixed request frames (frames.h), relays
 * each to the ingestion API over HTTP (examples/mini_http.c) and sends the
 * server's answer back as a frame: status, Retry-After, ETag and body, so
 * the client's retries, Retry-After and capture v1 results work unchanged.
 * The client never learns the server's address: the broker replaces the
 * scheme and host of each request's URL with its own upstream.
 *
 *   transport_broker SOCKET_PATH UPSTREAM_URL
 *   (e.g. transport_broker /tmp/ph.sock http://127.0.0.1:8000)
 *
 * One thread per connection; stops on SIGTERM or SIGINT. Prints "ready"
 * on stdout once it listens.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frames.h"
#include "mini_http.h"

static const char *upstream;
static volatile sig_atomic_t stopping;
static unsigned long relayed;
static pthread_mutex_t relayed_mu = PTHREAD_MUTEX_INITIALIZER;

/* Relays one request frame; the answer frame goes back on fd. */
static int relay(int fd, char *frame, size_t len) {
    char *body, *save = NULL;
    size_t blen;
    if (frame_split(frame, len, &body, &blen)) return -1;
    char *line = strtok_r(frame, "\n", &save);
    char method[8], url[2048];
    if (!line || sscanf(line, "%7s %2047s", method, url) != 2) return -1;
    const char *headers[64];
    size_t nh = 0;
    while ((line = strtok_r(NULL, "\n", &save)) && nh < 64) headers[nh++] = line;
    /* http://client-side-host/path?query -> upstream/path?query */
    const char *path = strstr(url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    char target[4096];
    snprintf(target, sizeof target, "%s%s", upstream, path ? path : "/");
    mh_resp_t r;
    char head[1024];
    int hl;
    bool get = !strcmp(method, "GET");
    if (mh_request(method, target, headers, nh, get ? NULL : body, get ? 0 : blen, 10000, &r) == 0) {
        hl = snprintf(head, sizeof head, "%d\n", r.status);
        if (r.retry_after[0]) hl += snprintf(head + hl, sizeof head - (size_t)hl, "Retry-After: %s\n", r.retry_after);
        if (r.etag[0]) hl += snprintf(head + hl, sizeof head - (size_t)hl, "ETag: %s\n", r.etag);
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "\n");
        int rc = frame_send(fd, head, (size_t)hl, r.body, r.body_len);
        mh_resp_free(&r);
        pthread_mutex_lock(&relayed_mu);
        relayed++;
        pthread_mutex_unlock(&relayed_mu);
        return rc;
    }
    hl = snprintf(head, sizeof head, "0\nError: %.900s\n\n", r.error);
    return frame_send(fd, head, (size_t)hl, NULL, 0);
}

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    size_t len;
    char *f;
    while ((f = frame_recv(fd, &len))) {
        int rc = relay(fd, f, len);
        free(f);
        if (rc) break;
    }
    close(fd);
    return NULL;
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET_PATH UPSTREAM_URL\n", argv[0]);
        return 2;
    }
    upstream = argv[2];
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: accept returns */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (ls < 0 || strlen(argv[1]) >= sizeof a.sun_path) {
        fprintf(stderr, "transport_broker: bad socket path %s\n", argv[1]);
        return 1;
    }
    snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 16)) {
        fprintf(stderr, "transport_broker: cannot listen on %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (!stopping) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd)) close(fd);
        else pthread_detach(t);
    }
    close(ls);
    unlink(argv[1]);
    pthread_mutex_lock(&relayed_mu);
    fprintf(stderr, "transport_broker: %lu requests relayed\n", relayed);
    pthread_mutex_unlock(&relayed_mu);
    return 0;
}
