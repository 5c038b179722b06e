/*
 * posthog-ingest-loadgen: measures the ingestion server's throughput.
 *
 *   posthog-ingest-loadgen --inproc [--batches N] [--events N]
 *       gunzip + validate prebuilt batches in this process (one core)
 *   posthog-ingest-loadgen --port P [--batches N] [--events N] [--distinct N]
 *       POST them to 127.0.0.1:P/batch/ over one keep-alive connection
 *   --v1: capture v1 instead (zstd bodies, POST /i/v1/analytics/events with
 *       the v1 headers; the timed loop reads every results map in full)
 *
 * Batches are built up front (distinct uuids, ~250-byte events, gzip) so the
 * timed loop measures the server side only. Loopback only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "gunzip.h"
#include "sbuf.h"
#include "scan.h"

static int DISTINCT_BODIES = 64; /* --distinct: bodies (uuid sets) cycled through */
static int V1;                   /* --v1: capture v1 with zstd */

typedef struct body {
    char *p;
    size_t n, raw;
} body_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static body_t build_body(int which, int events)
{
    ph_sbuf_t b = {0};
    char ev[512];
    if (V1)
        ph_sbuf_str(&b, "{\"created_at\":\"2026-11-23T10:00:00.123Z\",\"batch\":[");
    else
        ph_sbuf_str(&b, "{\"api_key\":\"phc_bench\",\"historical_migration\":false,"
                        "\"sent_at\":\"2026-11-23T10:00:00.123Z\",\"batch\":[");
    for (int i = 0; i < events; i++) {
        int n = snprintf(ev, sizeof ev,
                         "%s{\"event\":\"page_viewed\",\"distinct_id\":\"user-%d\","
                         "\"uuid\":\"0193a1b2-%04x-7%03x-8%03x-%012x\","
                         "\"timestamp\":\"2026-11-23T09:59:58.%03dZ\",\"properties\":{"
                         "\"$lib\":\"posthog-c\",\"$lib_version\":\"0.1.0\",\"path\":\"/pricing/%d\","
                         "\"plan\":\"team\",\"n\":%d,\"flag\":true}}",
                         i ? "," : "", (which * 7919 + i) % 100000, which & 0xffff,
                         (unsigned)(i >> 12) & 0xfff, (unsigned)i & 0xfff,
                         (unsigned)(which * 1000003 + i), i % 1000, i % 37, i);
        ph_sbuf_add(&b, ev, (size_t)n);
    }
    ph_sbuf_str(&b, "]}");
    size_t raw_n;
    char *raw = ph_sbuf_take(&b, &raw_n);
    if (V1) {
        size_t zcap = ZSTD_compressBound(raw_n);
        body_t zo = {malloc(zcap), 0, raw_n};
        zo.n = ZSTD_compress(zo.p, zcap, raw, raw_n, 3);
        if (ZSTD_isError(zo.n))
            zo.n = 0;
        free(raw);
        return zo;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)raw_n);
    body_t out = {malloc(cap), 0, raw_n};
    z.next_in = (unsigned char *)raw;
    z.avail_in = (unsigned)raw_n;
    z.next_out = (unsigned char *)out.p;
    z.avail_out = (unsigned)cap;
    deflate(&z, Z_FINISH);
    out.n = cap - z.avail_out;
    deflateEnd(&z);
    free(raw);
    return out;
}

static int inproc(body_t *bodies, int batches)
{
    double t0 = now_s();
    size_t events = 0, bytes = 0;
    for (int i = 0; i < batches; i++) {
        body_t *b = &bodies[i % DISTINCT_BODIES];
        char *dec;
        size_t n;
        if ((V1 ? ph_unzstd : ph_gunzip)(b->p, b->n, (size_t)100 << 20, &dec, &n) != PH_GUNZIP_OK)
            return fprintf(stderr, "decoding failed\n"), 1;
        ph_scan_t sc;
        ph_scan_opts_t o = {1000000, NULL, 0, V1};
        ph_scan_body(dec, n, &o, &sc);
        if (sc.status != 200)
            return fprintf(stderr, "scan: %d %s\n", sc.status, sc.error), 1;
        events += sc.nevents;
        bytes += n;
        ph_scan_free(&sc);
        free(dec);
    }
    double dt = now_s() - t0;
    printf("inproc: %zu events in %.3f s = %.0f events/s (%.0f MB/s decoded)\n", events, dt,
           (double)events / dt, (double)bytes / dt / 1e6);
    return 0;
}

static int http(body_t *bodies, int batches, int port, int events_per)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return perror("connect"), 1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char head[1024];
    size_t rcap = 1 << 20;
    char *resp = malloc(rcap);
    if (!resp)
        return 1;
    double t0 = now_s();
    for (int i = 0; i < batches; i++) {
        body_t *b = &bodies[i % DISTINCT_BODIES];
        int hn = V1 ? snprintf(head, sizeof head,
                               "POST /i/v1/analytics/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Authorization: Bearer phc_bench\r\nPostHog-Sdk-Info: posthog-c/0.1.0\r\n"
                               "PostHog-Request-Id: 0193a1b2-0000-7000-8000-%012x\r\n"
                               "PostHog-Attempt: 1\r\nPostHog-Request-Timestamp: 2026-11-23T10:00:00.123Z\r\n"
                               "Content-Type: application/json\r\nContent-Encoding: zstd\r\n"
                               "Content-Length: %zu\r\n\r\n",
                               (unsigned)i, b->n)
                    : snprintf(head, sizeof head,
                               "POST /batch/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                               "application/json\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
                               b->n);
        if (send(fd, head, (size_t)hn, MSG_MORE) < 0 || send(fd, b->p, b->n, 0) < 0)
            return perror("send"), 1;
        /* Read the head, then exactly Content-Length bytes of body. */
        size_t got = 0, need = 0;
        char *eoh = NULL;
        for (;;) {
            ssize_t r = recv(fd, resp + got, rcap - 1 - got, 0);
            if (r <= 0)
                return fprintf(stderr, "connection closed\n"), 1;
            got += (size_t)r;
            resp[got] = '\0';
            if (!eoh && (eoh = strstr(resp, "\r\n\r\n")) != NULL) {
                const char *cl = strstr(resp, "Content-Length: ");
                need = (size_t)(eoh + 4 - resp) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
                if (need >= rcap)
                    return fprintf(stderr, "response too large\n"), 1;
            }
            if (eoh && got >= need)
                break;
        }
        if (strncmp(resp, "HTTP/1.1 200", 12) != 0)
            return fprintf(stderr, "unexpected response: %.80s\n", resp), 1;
    }
    free(resp);
    double dt = now_s() - t0;
    close(fd);
    double ev = (double)batches * events_per;
    printf("http: %.0f events in %.3f s = %.0f events/s\n", ev, dt, ev / dt);
    return 0;
}

int main(int argc, char **argv)
{
    int batches = 2000, events = 1000, port = 0, in = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--inproc") == 0)
            in = 1;
        else if (strcmp(argv[i], "--v1") == 0)
            V1 = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--batches") == 0)
            batches = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--events") == 0)
            events = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--distinct") == 0)
            DISTINCT_BODIES = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else
            return fprintf(stderr, "usage: %s (--inproc | --port P) [--v1] [--batches N] [--events N] [--distinct N]\n",
                           argv[0]),
                   2;
    }
    if (batches <= 0 || events <= 0 || (!in && port <= 0) || DISTINCT_BODIES <= 0 ||
        DISTINCT_BODIES > 100000)
        return fprintf(stderr, "bad arguments\n"), 2;
    body_t *bodies = calloc((size_t)DISTINCT_BODIES, sizeof *bodies);
    if (!bodies)
        return 1;
    size_t wire = 0, raw = 0;
    for (int i = 0; i < DISTINCT_BODIES; i++) {
        bodies[i] = build_body(i, events);
        wire += bodies[i].n;
        raw += bodies[i].raw;
    }
    printf("batch: %d events, %zu bytes raw (%zu per event), %zu %s\n", events,
           raw / DISTINCT_BODIES, raw / DISTINCT_BODIES / (size_t)events, wire / DISTINCT_BODIES,
           V1 ? "zstd (capture v1)" : "gzipped");
    int rc = in ? inproc(bodies, batches) : http(bodies, batches, port, events);
    for (int i = 0; i < DISTINCT_BODIES; i++)
        free(bodies[i].p);
    free(bodies);
    return rc;
}
