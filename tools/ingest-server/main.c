/*
 * posthog-ingest-server: the project's local PostHog ingestion server.
 * Parses the command line, starts httpd + ingest, writes the port file,
 * then waits for SIGTERM/SIGINT (or POST /_control/shutdown, which raises
 * SIGTERM) and stops cleanly. Signals are blocked in every thread and taken
 * synchronously by sigwait() in the main thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"
#include "ingest.h"

#define MAX_KEYS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: posthog-ingest-server [options]\n"
            "  --port N               port to listen on (default 0: any free port)\n"
            "  --host H               127.0.0.1 (default), localhost or ::1 only\n"
            "  --port-file PATH       write the chosen port to PATH once listening (atomic)\n"
            "  --api-key KEY          accept only this key (repeatable); default: any non-empty key\n"
            "  --no-store             keep only counters and seen uuids (benchmarks)\n"
            "  --max-body-bytes N     wire body limit (default 20971520)\n"
            "  --max-decoded-bytes N  decompressed body limit (default 104857600)\n"
            "  --max-event-bytes N    single event limit (default 1000000)\n"
            "  --max-v1-body-bytes N  capture v1 wire body limit (default 10485760)\n"
            "  --max-v1-decoded-bytes N  capture v1 decoded body limit (default 52428800)\n"
            "  --verbose              log every ingest request on stderr\n"
            "  --quiet                print nothing but the 'listening on' line\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void request_shutdown(void *user_data)
{
    (void)user_data;
    kill(getpid(), SIGTERM);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port_file = NULL;
    const char *keys[MAX_KEYS];
    int port = 0, quiet = 0;
    ph_ingestd_config_t cfg;
    memset(&cfg, 0, sizeof cfg);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--no-store") == 0) {
            cfg.no_store = 1;
            takes = 0;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            takes = 0;
        } else if (strcmp(a, "--verbose") == 0) {
            cfg.verbose = 1;
            takes = 0;
        } else if (!v) {
            fprintf(stderr, "posthog-ingest-server: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--port") == 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || end == v || p < 0 || p > 65535) {
                fprintf(stderr, "posthog-ingest-server: bad --port %s\n", v);
                return 2;
            }
            port = (int)p;
        } else if (strcmp(a, "--host") == 0) {
            host = v;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--api-key") == 0) {
            if (cfg.n_api_keys >= MAX_KEYS || !v[0]) {
                fprintf(stderr, "posthog-ingest-server: too many or empty --api-key\n");
                return 2;
            }
            keys[cfg.n_api_keys++] = v;
        } else if (strcmp(a, "--max-body-bytes") == 0 ||
                   strcmp(a, "--max-decoded-bytes") == 0 ||
                   strcmp(a, "--max-event-bytes") == 0 ||
                   strcmp(a, "--max-v1-body-bytes") == 0 ||
                   strcmp(a, "--max-v1-decoded-bytes") == 0) {
            size_t *dst = strcmp(a, "--max-body-bytes") == 0      ? &cfg.max_body_bytes
                          : strcmp(a, "--max-decoded-bytes") == 0 ? &cfg.max_decoded_bytes
                          : strcmp(a, "--max-event-bytes") == 0   ? &cfg.max_event_bytes
                          : strcmp(a, "--max-v1-body-bytes") == 0 ? &cfg.max_v1_body_bytes
                                                                  : &cfg.max_v1_decoded_bytes;
            if (parse_size(v, dst) < 0) {
                fprintf(stderr, "posthog-ingest-server: bad %s %s\n", a, v);
                return 2;
            }
        } else {
            fprintf(stderr, "posthog-ingest-server: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i += takes;
    }
    cfg.api_keys = keys;
    cfg.on_shutdown = request_shutdown;

    /* Block the stop signals before any thread exists so all inherit the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    ph_ingestd_t *d = ph_ingestd_new(&cfg);
    if (!d) {
        fprintf(stderr, "posthog-ingest-server: out of memory\n");
        return 1;
    }
    char err[256];
    ph_httpd_t *s = ph_httpd_start(host, port, ph_ingestd_handle, d, err, sizeof err);
    if (!s) {
        fprintf(stderr, "posthog-ingest-server: %s\n", err);
        ph_ingestd_free(d);
        return 1;
    }
    port = ph_httpd_port(s);
    if (port_file && write_port_file(port_file, port) < 0) {
        fprintf(stderr, "posthog-ingest-server: cannot write %s: %s\n", port_file, strerror(errno));
        ph_httpd_stop(s);
        ph_ingestd_free(d);
        return 1;
    }
    int v6 = strcmp(host, "::1") == 0;
    printf("listening on http://%s:%d\n", v6 ? "[::1]" : "127.0.0.1", port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    if (!quiet)
        fprintf(stderr, "posthog-ingest-server: signal %d, stopping\n", sig);
    ph_httpd_stop(s);
    ph_ingestd_free(d);
    return 0;
}
