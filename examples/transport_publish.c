/*
 * transport_publish: libposthog without HTTP on the device. A transport
 * hook (posthog_options_set_transport) publishes every request the client
 * makes (capture batches, feature flags) as a length-prefixed frame on a
 * unix socket to examples/transport_broker, which relays it to PostHog and
 * sends the answer back; the hook completes the call with it. The library
 * still does everything else: batching, compression, retries with
 * Retry-After, capture v1 per-event results, the spool.
 *
 *   transport_broker /tmp/ph.sock http://127.0.0.1:8000 &
 *   transport_publish /tmp/ph.sock 100 [who]
 *
 * Captures N events {"seq": i, "who": who}, flushes, prints the stats and
 * exits 0 when all N were delivered. Works with a library built with
 * -DPOSTHOG_WITH_CURL=OFF.
 */
#include <posthog/posthog.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frames.h"

typedef struct {
    const char *path;
    pthread_mutex_t mu; /* one request at a time on the connection */
    int fd;             /* -1: not connected */
} link_t;

static int link_connect(link_t *l) {
    if (l->fd >= 0) return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", l->path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    /* the library's deadline, as far as this blocking link goes */
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    l->fd = fd;
    return 0;
}

/* The hook: one frame out, one frame back, completed before returning. */
static int publish(const posthog_transport_request_t *req, posthog_transport_call_t *call,
                   void *ud) {
    link_t *l = ud;
    size_t cap = 64 + strlen(req->url);
    for (size_t i = 0; i < req->header_count; i++) cap += strlen(req->headers[i]) + 1;
    char *head = malloc(cap);
    if (!head) return -1;
    size_t n = (size_t)snprintf(head, cap, "%s %s\n", req->method, req->url);
    for (size_t i = 0; i < req->header_count; i++)
        n += (size_t)snprintf(head + n, cap - n, "%s\n", req->headers[i]);
    n += (size_t)snprintf(head + n, cap - n, "\n");

    pthread_mutex_lock(&l->mu);
    char *answer = NULL;
    size_t alen = 0;
    for (int attempt = 0; attempt < 2 && !answer; attempt++) { /* one reconnect */
        if (link_connect(l)) break;
        if (frame_send(l->fd, head, n, req->body, req->body_len) == 0)
            answer = frame_recv(l->fd, &alen);
        if (!answer) {
            close(l->fd);
            l->fd = -1;
        }
    }
    pthread_mutex_unlock(&l->mu);
    free(head);
    if (!answer) return posthog_transport_fail(call, "broker unreachable") == POSTHOG_OK ? 0 : -1;

    char *body, *save = NULL, retry_after[64] = "", etag[256] = "", error[256] = "";
    size_t blen;
    int status = 0;
    if (frame_split(answer, alen, &body, &blen) == 0) {
        char *line = strtok_r(answer, "\n", &save);
        status = line ? atoi(line) : 0;
        while ((line = strtok_r(NULL, "\n", &save))) {
            if (!strncmp(line, "Retry-After: ", 13)) snprintf(retry_after, sizeof retry_after, "%s", line + 13);
            else if (!strncmp(line, "ETag: ", 6)) snprintf(etag, sizeof etag, "%s", line + 6);
            else if (!strncmp(line, "Error: ", 7)) snprintf(error, sizeof error, "%s", line + 7);
        }
    } else {
        snprintf(error, sizeof error, "malformed answer frame");
    }
    if (status) posthog_transport_complete(call, status, retry_after[0] ? retry_after : NULL,
                                           etag[0] ? etag : NULL, body, blen);
    else posthog_transport_fail(call, error[0] ? error : "no answer");
    free(answer);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SOCKET_PATH N [who]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    const char *who = argc > 3 ? argv[3] : "transport_publish";
    link_t l = {.path = argv[1], .fd = -1};
    pthread_mutex_init(&l.mu, NULL);

    posthog_options_t *o = posthog_options_new();
    /* the host only names the request's URL: the broker picks the server */
    posthog_options_set(o, "host", "http://broker.invalid");
    if (!getenv("POSTHOG_API_KEY")) posthog_options_set(o, "api_key", "phc_transport_example");
    posthog_options_set(o, "retry_backoff_ms", "50");
    posthog_options_set_transport(o, publish, &l);
    char err[512];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "posthog: %s\n", err);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        char props[160];
        snprintf(props, sizeof props, "{\"seq\":%ld,\"who\":\"%s\"}", i, who);
        if (posthog_capture_json(c, "user-1", "published_over_a_broker", props) != POSTHOG_OK)
            fprintf(stderr, "capture %ld failed\n", i);
    }
    posthog_flush_result_t fr;
    posthog_status_t st = posthog_flush_ex(c, 30000, &fr);
    posthog_stats_t s;
    posthog_get_stats(c, &s);
    printf("captured %llu, sent %llu, requests %llu, retries %llu, dropped %llu: %s\n",
           (unsigned long long)s.captured, (unsigned long long)s.sent,
           (unsigned long long)s.requests, (unsigned long long)s.retries,
           (unsigned long long)s.dropped_total, posthog_strerror(st));
    posthog_client_free(c);
    if (l.fd >= 0) close(l.fd);
    return st == POSTHOG_OK && s.sent == (uint64_t)n ? 0 : 1;
}
