/*
 * crash: the opt-in crash handler (option crash_handler=1 with a spool).
 * On SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT it writes the events still
 * in each registered client's queue to a spool file, using only
 * async-signal-safe calls (openat, unlinkat, write, fsync, rename, close,
 * clock_gettime, getpid) and pure functions (formatting, crc32) on memory
 * prepared at install time, then restores the previous disposition and
 * re-raises (or calls the previous handler). The next process that opens
 * the spool delivers the events.
 *
 * Limits: events already drained into an unsent batch are not in the
 * queue (durability=always covers them); the handler reads the queue while
 * the flusher may still run, so a record it catches mid-consumption can
 * come out damaged; replay validates every record and counts such ones as
 * corrupt.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "client.h"
#include "event.h"
#include "util.h"

#define MAX_CRASH_CLIENTS 8
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define NSIGS (int)(sizeof crash_signals / sizeof crash_signals[0])

static pthread_mutex_t crash_mu = PTHREAD_MUTEX_INITIALIZER;
static posthog_client_t *_Atomic crash_clients[MAX_CRASH_CLIENTS];
static struct sigaction old_actions[NSIGS];
static int installed_count; /* [crash_mu] */
static volatile sig_atomic_t in_handler;

/* ---------------------------------------------------------------- signal-safe helpers */

static size_t put_str(char *o, const char *s) {
    size_t n = 0;
    while (s[n]) {
        o[n] = s[n];
        n++;
    }
    return n;
}


static void le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int write_full(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void save_queue(posthog_client_t *c, int slot) {
    if (!c->spool || !c->crash_buf) return;
    ph_queue_t *q = &c->q;
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (h <= t) return;
    char tmp[4096], fin[4096];
    const char *dir = c->spool->dir;
    size_t dl = 0;
    while (dir[dl]) dl++;
    if (dl > 3900) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t pid = (uint64_t)getpid();
    size_t k = put_str(tmp, dir);
    k += put_str(tmp + k, "/.tmp-");
    k = (size_t)(posthog__fmt_u64(tmp + k, pid, 0) - tmp);
    k += put_str(tmp + k, "-crash");
    k = (size_t)(posthog__fmt_u64(tmp + k, (uint64_t)slot, 0) - tmp);
    tmp[k] = '\0';
    k = put_str(fin, dir);
    k += put_str(fin + k, "/ph-");
    k = (size_t)(posthog__fmt_u64(fin + k, ms, 13) - fin);
    fin[k++] = '-';
    k = (size_t)(posthog__fmt_u64(fin + k, pid, 10) - fin);
    k += put_str(fin + k, "-crash");
    k = (size_t)(posthog__fmt_u64(fin + k, (uint64_t)slot, 0) - fin);
    k += put_str(fin + k, ".spool");
    fin[k] = '\0';

    /* relative to the spool's directory descriptor, never through a
     * symlink, and a new file: whatever sits at that name (a stale temp file
     * of an earlier process with our pid, or a planted link) is removed,
     * not written through */
    const char *tmp_name = tmp + dl + 1;
    unlinkat(c->spool->dfd, tmp_name, 0);
    int fd = openat(c->spool->dfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    if (fd < 0) return;
    unsigned char hdr[PH_SPOOL_HDR] = {'P', 'H', 'S', 'P', PH_SPOOL_VERSION, 0, 0, 0};
    for (int i = 0; i < 8; i++) hdr[12 + i] = (unsigned char)(ms >> (8 * i));
    if (write_full(fd, hdr, sizeof hdr)) goto out;
    uint32_t count = 0;
    for (uint64_t pos = t; pos < h;) {
        uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(void *)(q->buf + pos % q->cap),
                                          memory_order_acquire);
        uint64_t len = w >> 32;
        if (w == 0 || len < 8 || len > q->cap / 2) break; /* unpublished or being consumed */
        pos += len;
        if (w & (PH_Q_PAD | PH_Q_DEAD)) continue;
        const ph_rec_t *r = (const ph_rec_t *)(q->buf + (pos - len) % q->cap + 8);
        size_t jl = ph_rec_json_len(r);
        if (jl + PH_SPOOL_REC_HDR > c->crash_cap || jl > len * 4 + 256) continue;
        char *o = c->crash_buf + PH_SPOOL_REC_HDR;
        char *end = posthog__event_write(o, r);
        uint32_t n = (uint32_t)(end - o);
        le32((unsigned char *)c->crash_buf, PH_SPOOL_REC_MAGIC);
        le32((unsigned char *)c->crash_buf + 4, n);
        le32((unsigned char *)c->crash_buf + 8, (uint32_t)crc32(0, (const Bytef *)o, n));
        if (write_full(fd, c->crash_buf, PH_SPOOL_REC_HDR + n)) break;
        count++;
    }
    le32(hdr + 8, count);
    if (pwrite(fd, hdr + 8, 4, 8) != 4 || !count) goto out;
    if (fsync(fd) == 0 && rename(tmp, fin) == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        close(fd);
        return;
    }
out:
    close(fd);
    unlink(tmp);
}

static void on_crash(int sig, siginfo_t *info, void *uctx) {
    int idx = 0;
    while (idx < NSIGS && crash_signals[idx] != sig) idx++;
    if (!in_handler) {
        in_handler = 1;
        for (int i = 0; i < MAX_CRASH_CLIENTS; i++) {
            posthog_client_t *c = atomic_load(&crash_clients[i]);
            if (!c) continue;
            /* what crashed (errors/crash_report.c), then the events */
            posthog__crash_report_write(c, sig, info, uctx);
            save_queue(c, i);
        }
    }
    if (idx >= NSIGS) return;
    struct sigaction *old = &old_actions[idx];
    sigaction(sig, old, NULL);
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, uctx);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    } else {
        /* default action: re-raise with it (a fault re-executes and re-faults) */
        raise(sig);
    }
}

/* ---------------------------------------------------------------- install */

int posthog__crash_install(posthog_client_t *c) {
    posthog__crash_report_prepare();
    c->crash_cap = (size_t)c->o->max_event_bytes + 512 + PH_SPOOL_REC_HDR;
    c->crash_buf = malloc(c->crash_cap);
    if (!c->crash_buf) return -1;
    pthread_mutex_lock(&crash_mu);
    int slot = -1;
    for (int i = 0; i < MAX_CRASH_CLIENTS && slot < 0; i++)
        if (!atomic_load(&crash_clients[i])) slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&crash_mu);
        free(c->crash_buf);
        c->crash_buf = NULL;
        return -1;
    }
    atomic_store(&crash_clients[slot], c);
    if (installed_count++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_crash;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < NSIGS; i++) sigaction(crash_signals[i], &sa, &old_actions[i]);
    }
    pthread_mutex_unlock(&crash_mu);
    return 0;
}

void posthog__crash_uninstall(posthog_client_t *c) {
    if (!c->crash_buf) return;
    pthread_mutex_lock(&crash_mu);
    for (int i = 0; i < MAX_CRASH_CLIENTS; i++)
        if (atomic_load(&crash_clients[i]) == c) atomic_store(&crash_clients[i], NULL);
    if (--installed_count == 0)
        for (int i = 0; i < NSIGS; i++) sigaction(crash_signals[i], &old_actions[i], NULL);
    pthread_mutex_unlock(&crash_mu);
    free(c->crash_buf);
    c->crash_buf = NULL;
}
