/*
 * crash: the opt-in crash handler (option crash_handler=1 with a spool).
 * On SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT it writes every event of
 * each registered client that the server has not confirmed to spool
 * files, using only async-signal-safe calls (openat, unlinkat, renameat,
 * write, pwrite, fsync, ftruncate, close, clock_gettime, getpid,
 * sigaction, signal, raise) and pure functions (formatting, crc32) on
 * memory prepared at install time,
 * then restores the previous disposition and re-raises (or calls the
 * previous handler). The next process that opens the spool delivers them.
 *
 * What it saves: the queue retains drained records until their batch is
 * delivered, dropped or on disk (queue.h, "Retention"), so the handler
 * writes from the oldest unconfirmed record (ph_queue_keep) to the head:
 * the events still queued and those in open, sealed or in-flight batches.
 * It freezes the queue first, so the flusher, which keeps running while
 * the handler does, zeroes none of those bytes meanwhile.
 *
 * Files: ph-<ms>-<pid>-crash<slot>-<part>.spool, each at most
 * max_batch_bytes (and a quarter of max_storage_bytes) of events, so the
 * next process replays each as one normal batch and evicting one for space
 * costs one part only; $ai_* events in parts of their own (a file replays
 * to one endpoint); all parts together at most max_storage_bytes (events
 * past that are not written).
 *
 * Alternate signal stacks: a crash by stack overflow can only run a
 * handler on an alternate stack. One (ALT_STACK_BYTES, with a guard page)
 * is set up, when the thread has none, on the thread that creates a client
 * with the crash handler, on its flusher thread, and on every thread at
 * its first capture into such a client (a thread-local flag: one
 * sigaltstack call per thread, never on later captures). It is freed when
 * the thread exits. A thread that never captured (and never created the
 * client) gets none: its stack overflow saves nothing.
 *
 * Limits (at least once): an event of a batch whose spool write completes
 * while the handler runs, or that is on disk while an older batch is not
 * (its spool write failed), is also written by the handler: delivered
 * twice after such a crash (same uuid).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "client.h"
#include "event.h"
#include "util.h"

#define MAX_CRASH_CLIENTS 8
#define ALT_STACK_BYTES ((size_t)128 << 10) /* the crash report and the spool writer */
#define ALT_GUARD_BYTES ((size_t)4 << 10)
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define NSIGS (int)(sizeof crash_signals / sizeof crash_signals[0])

static pthread_mutex_t crash_mu = PTHREAD_MUTEX_INITIALIZER;
static posthog_client_t *_Atomic crash_clients[MAX_CRASH_CLIENTS];
static struct sigaction old_actions[NSIGS];
static int installed_count; /* [crash_mu] */
static volatile sig_atomic_t in_handler;

_Thread_local bool posthog__crash_thread_ready;

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

/* What the part files of one crash share. */
typedef struct {
    int dfd; /* the spool's directory (names are relative to it) */
    uint64_t ms, pid;
    int slot;
    uint32_t next_part; /* number of the next part opened */
} crash_ctx_t;

/* One part file being written. */
typedef struct {
    int fd;
    uint32_t count; /* records in it */
    uint64_t bytes; /* its size so far */
    char tmp[96], fin[96];
} part_t;

/* Names part `no` of the crash: temp and final, in the spool directory. */
static void part_names(part_t *p, const crash_ctx_t *x, uint32_t no) {
    size_t k = put_str(p->tmp, ".tmp-");
    k = (size_t)(posthog__fmt_u64(p->tmp + k, x->pid, 0) - p->tmp);
    k += put_str(p->tmp + k, "-crash");
    k = (size_t)(posthog__fmt_u64(p->tmp + k, (uint64_t)x->slot, 0) - p->tmp);
    p->tmp[k++] = '-';
    k = (size_t)(posthog__fmt_u64(p->tmp + k, no, 0) - p->tmp);
    p->tmp[k] = '\0';
    /* fixed widths: parts sort (and are replayed) in the order written */
    k = put_str(p->fin, "ph-");
    k = (size_t)(posthog__fmt_u64(p->fin + k, x->ms, 13) - p->fin);
    p->fin[k++] = '-';
    k = (size_t)(posthog__fmt_u64(p->fin + k, x->pid, 10) - p->fin);
    k += put_str(p->fin + k, "-crash");
    k = (size_t)(posthog__fmt_u64(p->fin + k, (uint64_t)x->slot, 0) - p->fin);
    p->fin[k++] = '-';
    k = (size_t)(posthog__fmt_u64(p->fin + k, no, 6) - p->fin);
    k += put_str(p->fin + k, ".spool");
    p->fin[k] = '\0';
}

static int part_open(part_t *p, crash_ctx_t *x) {
    part_names(p, x, x->next_part++);
    /* relative to the spool's directory descriptor, never through a
     * symlink, and a new file: whatever sits at that name (a stale temp
     * file of an earlier process with our pid, or a planted link) is
     * removed, not written through */
    unlinkat(x->dfd, p->tmp, 0);
    p->fd = openat(x->dfd, p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (p->fd < 0) return -1;
    unsigned char hdr[PH_SPOOL_HDR] = {'P', 'H', 'S', 'P', PH_SPOOL_VERSION, 0, 0, 0};
    for (int i = 0; i < 8; i++) hdr[12 + i] = (unsigned char)(x->ms >> (8 * i));
    p->count = 0;
    p->bytes = PH_SPOOL_HDR;
    if (write_full(p->fd, hdr, sizeof hdr) == 0) return 0;
    close(p->fd);
    unlinkat(x->dfd, p->tmp, 0);
    p->fd = -1;
    return -1;
}

/* Completes the part (count, fsync, rename); an empty or failed one is
 * removed. 0 when a file was kept. */
static int part_close(part_t *p, const crash_ctx_t *x) {
    if (p->fd < 0) return -1;
    unsigned char cnt[4];
    le32(cnt, p->count);
    int rc = -1;
    if (p->count && pwrite(p->fd, cnt, 4, 8) == 4 && fsync(p->fd) == 0 &&
        renameat(x->dfd, p->tmp, x->dfd, p->fin) == 0)
        rc = 0;
    close(p->fd);
    if (rc) unlinkat(x->dfd, p->tmp, 0);
    p->fd = -1;
    return rc;
}

static void save_queue(posthog_client_t *c, int slot) {
    if (!c->spool || !c->crash_buf) return;
    ph_queue_t *q = &c->q;
    /* no release zeroes anything from here on: [keep, head) stays intact */
    posthog__queue_freeze(q);
    uint64_t t = ph_queue_keep(q);
    uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (h <= t) return;
    crash_ctx_t x = {.dfd = c->spool->dfd, .slot = slot, .next_part = 0};
    if (x.dfd < 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    x.ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    x.pid = (uint64_t)getpid();
    /* analytics and $ai_* events in parts of their own: a file replays to
     * one endpoint */
    part_t parts[2];
    parts[0].fd = parts[1].fd = -1;
    uint64_t budget = c->spool->max_bytes, written = 0;
    int kept = 0;
    for (uint64_t pos = t; pos < h;) {
        uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(void *)(q->buf + pos % q->cap),
                                          memory_order_acquire);
        uint64_t len = w >> 32;
        if (w == 0 || len < 8 || len > q->cap / 2) break; /* not published (yet) */
        pos += len;
        if (w & (PH_Q_PAD | PH_Q_DEAD)) continue;
        const ph_rec_t *r = (const ph_rec_t *)(q->buf + (pos - len) % q->cap + 8);
        size_t jl = ph_rec_json_len(r);
        if (jl + PH_SPOOL_REC_HDR > c->crash_cap || jl > len * 4 + 256) continue;
        part_t *p = &parts[(r->flags & PH_REC_AI) ? 1 : 0];
        char *o = c->crash_buf + PH_SPOOL_REC_HDR;
        char *end = posthog__event_write(o, r);
        uint32_t n = (uint32_t)(end - o);
        uint64_t need = PH_SPOOL_REC_HDR + (uint64_t)n;
        /* a full part is closed; the next starts with this record */
        if (p->fd >= 0 && p->count && p->bytes + need > c->crash_part_bytes &&
            part_close(p, &x) == 0)
            kept++;
        if (written + need + (p->fd < 0 ? PH_SPOOL_HDR : 0) > budget) break; /* max_storage_bytes */
        if (p->fd < 0) {
            if (part_open(p, &x)) break;
            written += PH_SPOOL_HDR;
        }
        le32((unsigned char *)c->crash_buf, PH_SPOOL_REC_MAGIC);
        le32((unsigned char *)c->crash_buf + 4, n);
        le32((unsigned char *)c->crash_buf + 8, (uint32_t)crc32(0, (const Bytef *)o, n));
        if (write_full(p->fd, c->crash_buf, (size_t)need)) {
            if (ftruncate(p->fd, (off_t)p->bytes)) { /* else the reader counts a torn tail */
            }
            break;
        }
        p->count++;
        p->bytes += need;
        written += need;
    }
    for (int i = 0; i < 2; i++)
        if (part_close(&parts[i], &x) == 0) kept++;
    if (kept) fsync(x.dfd);
}

static void on_crash(int sig, siginfo_t *info, void *uctx);

static bool is_ours(const struct sigaction *sa) {
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_crash;
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
    } else if (in_handler++ > 1) {
        /* entered again through a chain that leads back here: end it */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
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

/* ---------------------------------------------------------------- alternate stacks */

static pthread_once_t alt_once = PTHREAD_ONCE_INIT;
static pthread_key_t alt_key;
static bool alt_key_ok;

static size_t alt_total(void) { return ALT_GUARD_BYTES + ALT_STACK_BYTES; }

/* Thread exit: the thread's alternate stack, set up by us, goes. */
static void alt_free(void *m) {
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(m, alt_total());
}

static void alt_key_init(void) { alt_key_ok = pthread_key_create(&alt_key, alt_free) == 0; }

void posthog__crash_thread_slow(void) {
    posthog__crash_thread_ready = true; /* once per thread, whatever happens */
    stack_t cur;
    if (sigaltstack(NULL, &cur) || !(cur.ss_flags & SS_DISABLE)) return; /* it has one */
    pthread_once(&alt_once, alt_key_init);
    if (!alt_key_ok) return;
    char *m = mmap(NULL, alt_total(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    /* a guard page below: an overflowing handler faults instead of
     * writing over whatever is mapped there */
    if (mprotect(m, ALT_GUARD_BYTES, PROT_NONE)) {
        munmap(m, alt_total());
        return;
    }
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = m + ALT_GUARD_BYTES;
    ss.ss_size = ALT_STACK_BYTES;
    if (sigaltstack(&ss, NULL)) {
        munmap(m, alt_total());
        return;
    }
    if (pthread_setspecific(alt_key, m)) {
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
        munmap(m, alt_total());
    }
}

/* ---------------------------------------------------------------- install */

int posthog__crash_install(posthog_client_t *c) {
    posthog__crash_report_prepare();
    const posthog_options_t *o = c->o;
    c->crash_cap = (size_t)PH_MAX(o->max_event_bytes, o->max_ai_event_bytes) + 512 +
                   PH_SPOOL_REC_HDR;
    /* a part replays as one batch; evicting one for space costs a quarter
     * of the storage at most */
    c->crash_part_bytes = PH_MIN(o->max_batch_bytes, o->max_storage_bytes / 4);
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
    /* drained records stay in the ring until confirmed (set before the
     * flusher starts, which is what reads it) */
    c->q.retain = true;
    atomic_store(&crash_clients[slot], c);
    if (installed_count++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_crash;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < NSIGS; i++) {
            struct sigaction cur;
            /* still ours from an earlier install (the application replaced
             * nothing since): keep the disposition saved then */
            if (sigaction(crash_signals[i], NULL, &cur) == 0 && is_ours(&cur)) continue;
            sigaction(crash_signals[i], &sa, &old_actions[i]);
        }
    }
    pthread_mutex_unlock(&crash_mu);
    posthog__crash_thread_prepare(c);
    return 0;
}

void posthog__crash_uninstall(posthog_client_t *c) {
    if (!c->crash_buf) return;
    pthread_mutex_lock(&crash_mu);
    for (int i = 0; i < MAX_CRASH_CLIENTS; i++)
        if (atomic_load(&crash_clients[i]) == c) atomic_store(&crash_clients[i], NULL);
    if (--installed_count == 0)
        for (int i = 0; i < NSIGS; i++) {
            /* only while the handler is still ours: one the application
             * installed since stays (it may chain to ours, which then
             * chains to the disposition saved at install) */
            struct sigaction cur;
            if (sigaction(crash_signals[i], NULL, &cur) == 0 && is_ours(&cur))
                sigaction(crash_signals[i], &old_actions[i], NULL);
        }
    pthread_mutex_unlock(&crash_mu);
    free(c->crash_buf);
    c->crash_buf = NULL;
}
