/*
 * errors/crash_report: what a fatal signal leaves behind for the next start
 * (posthog.h "Error tracking", crash reports).
 *
 * In the signal handler (async-signal-safe: open, write, read, fsync,
 * rename, close, clock_gettime, getpid, and backtrace() primed at install)
 * posthog__crash_report_write writes <storage_path>/crash-<ms>-<pid>.phcrash
 * through a temporary file and a rename:
 *
 *   PHCRASH 1\n
 *   signal <n>\n code <n>\n addr <hex>\n pid <n>\n time_ms <n>\n
 *   frames <n>\n <hex>\n ...          the crashing thread, innermost first
 *   context <bytes>\n <distinct_id>\0<properties JSON>   (posthog_set_crash_context)
 *   maps\n <the process's /proc/self/maps, or without /proc the images loaded at install>
 *
 * The next client on the same storage_path (posthog__crash_reports_send, at
 * creation) turns each report into one $exception ($exception_level fatal,
 * mechanism {type: "signalhandler", handled: false}) with the frames, the
 * images they point into (build ids read from the files on disk) and the
 * context, captures it, and deletes the report: once.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "json.h"
#include "native.h"
#include "platform.h"
#include "spool.h"
#include "util.h"

#if defined(__GLIBC__)
#include <execinfo.h>
#endif

#define CTX_MAX 4096
#define REPORT_MAX ((size_t)4 << 20)

/* The application's "current user and tags", readable from a signal
 * handler: two buffers, the writer fills the idle one and flips `active`. */
typedef struct {
    pthread_mutex_t mu;
    char buf[2][CTX_MAX];
    size_t len[2];
    _Atomic int active;
} crash_ctx_t;

static crash_ctx_t *ctx_of(posthog_client_t *c, bool create) {
    crash_ctx_t *x = atomic_load_explicit(&c->crash_ctx, memory_order_acquire);
    if (x || !create) return x;
    crash_ctx_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    pthread_mutex_init(&n->mu, NULL);
    void *expected = NULL;
    if (atomic_compare_exchange_strong(&c->crash_ctx, &expected, n)) return n;
    pthread_mutex_destroy(&n->mu);
    free(n);
    return expected;
}

void posthog__crash_ctx_free(posthog_client_t *c) {
    crash_ctx_t *x = atomic_exchange(&c->crash_ctx, NULL);
    if (!x) return;
    pthread_mutex_destroy(&x->mu);
    free(x);
}

posthog_status_t posthog_set_crash_context(posthog_client_t *c, const char *distinct_id,
                                           const char *properties_json) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    size_t dl = distinct_id ? strlen(distinct_id) : 0, pl = properties_json ? strlen(properties_json) : 0;
    if (distinct_id && !posthog__utf8_valid(distinct_id, dl)) return POSTHOG_E_INVALID_UTF8;
    if (properties_json) {
        cJSON *v = cJSON_Parse(properties_json);
        bool obj = cJSON_IsObject(v);
        cJSON_Delete(v);
        if (!obj) {
            posthog__log(c, POSTHOG_LOG_ERROR,
                         "posthog_set_crash_context: properties_json must be a JSON object");
            return POSTHOG_E_INVALID_JSON;
        }
    }
    if (dl + pl + 2 > CTX_MAX) {
        posthog__log(c, POSTHOG_LOG_ERROR,
                     "posthog_set_crash_context: distinct_id and properties take %zu bytes; at most %d",
                     dl + pl + 2, CTX_MAX);
        return POSTHOG_E_TOO_LARGE;
    }
    crash_ctx_t *x = ctx_of(c, true);
    if (!x) return POSTHOG_E_NOMEM;
    pthread_mutex_lock(&x->mu);
    int idle = 1 - atomic_load(&x->active);
    if (dl) memcpy(x->buf[idle], distinct_id, dl);
    x->buf[idle][dl] = '\0';
    if (pl) memcpy(x->buf[idle] + dl + 1, properties_json, pl);
    x->buf[idle][dl + 1 + pl] = '\0';
    x->len[idle] = dl + pl + 2;
    atomic_store(&x->active, idle);
    pthread_mutex_unlock(&x->mu);
    return POSTHOG_OK;
}

#ifndef POSTHOG_NO_CRASH_HANDLER /* the handler's parts: left out without it */
#if !PH_HAVE_PROCFS
/* Without /proc/self/maps: the images loaded when the first crash handler
 * was installed, in its format, written by the handler in its place (an
 * image loaded later is missing from the report's $debug_images). */
static char *maps_snap;
static size_t maps_snap_len;

static void maps_snap_build(void) {
    ph_modules_t mods;
    if (posthog__native_modules(&mods)) return;
    ph_buf_t b;
    posthog__buf_init(&b, REPORT_MAX);
    for (size_t i = 0; i < mods.n; i++) {
        const ph_module_t *m = &mods.m[i];
        if (m->path[0] != '/') continue;
        char line[640];
        int n = snprintf(line, sizeof line, "%llx-%llx r-xp 00000000 00:00 0 %s\n",
                         (unsigned long long)m->addr, (unsigned long long)(m->addr + m->size),
                         m->path);
        if (n > 0 && (size_t)n < sizeof line && posthog__buf_append(&b, line, (size_t)n)) break;
    }
    posthog__native_modules_free(&mods);
    maps_snap_len = b.len;
    maps_snap = b.data; /* kept for the process's life: a crash may read it any time */
}
#endif

void posthog__crash_report_prepare(void) {
#if !PH_HAVE_PROCFS
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, maps_snap_build);
#endif
#if defined(__GLIBC__)
    /* the first backtrace() loads libgcc_s: never in a signal handler */
    void *b[4];
    (void)backtrace(b, 4);
#endif
}

/* ---------------------------------------------------------------- signal-safe writing */

typedef struct {
    int fd;
    char buf[1024];
    size_t n;
    int err;
} sw_t;

static void sw_flush(sw_t *w) {
    size_t off = 0;
    while (off < w->n && !w->err) {
        ssize_t r = write(w->fd, w->buf + off, w->n - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) w->err = 1;
        else off += (size_t)r;
    }
    w->n = 0;
}

static void sw_bytes(sw_t *w, const char *p, size_t n) {
    while (n) {
        if (w->n == sizeof w->buf) sw_flush(w);
        size_t k = PH_MIN(n, sizeof w->buf - w->n);
        memcpy(w->buf + w->n, p, k);
        w->n += k;
        p += k;
        n -= k;
    }
}

static void sw_str(sw_t *w, const char *s) { sw_bytes(w, s, strlen(s)); }

static void sw_u64(sw_t *w, uint64_t v) {
    char t[24];
    int i = 24;
    do t[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i);
    sw_bytes(w, t + i, (size_t)(24 - i));
}

static void sw_hex(sw_t *w, uint64_t v) {
    char t[18];
    int i = 18;
    do t[--i] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) && i > 2);
    t[--i] = 'x';
    t[--i] = '0';
    sw_bytes(w, t + i, (size_t)(18 - i));
}


/* Copies a decimal or text field into a path buffer. */
static size_t path_put(char *o, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) o[at++] = *s++;
    o[at] = '\0';
    return at;
}

static size_t path_u64(char *o, size_t at, size_t cap, uint64_t v) {
    char t[24];
    int i = 24;
    t[--i] = '\0';
    do t[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i);
    return path_put(o, at, cap, t + i);
}

void posthog__crash_report_write(posthog_client_t *c, int sig, const siginfo_t *info,
                                 const void *uctx) {
    if (!c->spool || c->spool->dfd < 0) return;
    int dfd = c->spool->dfd; /* the checked spool directory, names relative to it */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t pid = (uint64_t)getpid();
    char tmp[128], fin[128];
    size_t at = path_put(tmp, 0, sizeof tmp, "crash-");
    at = path_u64(tmp, at, sizeof tmp, ms);
    at = path_put(tmp, at, sizeof tmp, "-");
    at = path_u64(tmp, at, sizeof tmp, pid);
    at = path_put(tmp, at, sizeof tmp, ".phcrash");
    memcpy(fin, tmp, at + 1);
    path_put(tmp, at, sizeof tmp, ".tmp");
    if (at + 5 >= sizeof tmp) return;
    sw_t w = {.fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
    if (w.fd < 0) return;

    /* the crashing thread: its frames from the faulting instruction out */
    uintptr_t pc = posthog__os_fault_pc(uctx);
    void *bt[PH_MAX_FRAMES + 16];
    int nb = 0;
#if defined(__GLIBC__)
    nb = backtrace(bt, (int)(sizeof bt / sizeof bt[0]));
#endif
    int from = -1;
    for (int i = 0; i < nb && from < 0; i++)
        if ((uintptr_t)bt[i] == pc) from = i;
    sw_str(&w, "PHCRASH 1\nsignal ");
    sw_u64(&w, (uint64_t)sig);
    sw_str(&w, "\ncode ");
    sw_u64(&w, info ? (uint64_t)(int64_t)info->si_code : 0);
    sw_str(&w, "\naddr ");
    sw_hex(&w, info ? (uint64_t)(uintptr_t)info->si_addr : 0);
    sw_str(&w, "\npid ");
    sw_u64(&w, pid);
    sw_str(&w, "\ntime_ms ");
    sw_u64(&w, ms);
    /* frames: the faulting pc, then the callers below the signal frame */
    int start = from >= 0 ? from + 1 : 0;
    int count = (pc ? 1 : 0) + (nb > start ? nb - start : 0);
    if (count > PH_MAX_FRAMES) count = PH_MAX_FRAMES;
    sw_str(&w, "\nframes ");
    sw_u64(&w, (uint64_t)count);
    sw_str(&w, "\n");
    int written = 0;
    if (pc) {
        sw_hex(&w, pc);
        sw_str(&w, "\n");
        written++;
    }
    for (int i = start; i < nb && written < count; i++, written++) {
        sw_hex(&w, (uint64_t)(uintptr_t)bt[i]);
        sw_str(&w, "\n");
    }
    crash_ctx_t *x = atomic_load(&c->crash_ctx);
    int a = x ? atomic_load(&x->active) : 0;
    size_t cl = x ? x->len[a] : 0;
    sw_str(&w, "context ");
    sw_u64(&w, cl);
    sw_str(&w, "\n");
    if (cl) sw_bytes(&w, x->buf[a], cl);
    sw_str(&w, "\nmaps\n");
    int mfd = posthog__os_maps_fd();
    if (mfd >= 0) {
        char mb[4096];
        ssize_t r;
        size_t total = 0;
        while ((r = read(mfd, mb, sizeof mb)) > 0 && total < REPORT_MAX) {
            sw_bytes(&w, mb, (size_t)r);
            total += (size_t)r;
        }
        close(mfd);
    }
#if !PH_HAVE_PROCFS
    else if (maps_snap) {
        sw_bytes(&w, maps_snap, maps_snap_len);
    }
#endif
    sw_flush(&w);
    int bad = w.err || fsync(w.fd);
    close(w.fd);
    if (bad || renameat(dfd, tmp, dfd, fin)) unlinkat(dfd, tmp, 0);
}

#endif /* POSTHOG_NO_CRASH_HANDLER */

/* ---------------------------------------------------------------- the next start */

static const char *sig_name(int s) {
    switch (s) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGTRAP: return "SIGTRAP";
    default: return "signal";
    }
}

static const char *sig_text(int s) {
    switch (s) {
    case SIGSEGV: return "Segmentation fault";
    case SIGBUS: return "Bus error";
    case SIGILL: return "Illegal instruction";
    case SIGFPE: return "Floating-point exception";
    case SIGABRT: return "Aborted";
    case SIGTRAP: return "Trace/breakpoint trap";
    default: return "Fatal signal";
    }
}

/* The images of a maps text: one per file with an executable mapping; the
 * image's address is its lowest mapping of that file. */
static int maps_modules(const char *maps, ph_modules_t *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    for (const char *l = maps; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[1024];
        if (n >= sizeof line) n = sizeof line - 1;
        memcpy(line, l, n);
        line[n] = '\0';
        l = e ? e + 1 : NULL;
        unsigned long long lo, hi, off;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &lo, &hi, perms, &off, &path_at) < 4 ||
            !path_at || line[path_at] != '/')
            continue;
        const char *path = line + path_at;
        ph_module_t *m = NULL;
        for (size_t i = 0; i < out->n && !m; i++)
            if (!strcmp(out->m[i].path, path)) m = &out->m[i];
        if (!m) {
            if (out->n == cap) {
                size_t nc = cap ? cap * 2 : 32;
                ph_module_t *g = realloc(out->m, nc * sizeof *g);
                if (!g) return -1;
                out->m = g;
                cap = nc;
            }
            m = &out->m[out->n++];
            memset(m, 0, sizeof *m);
            snprintf(m->path, sizeof m->path, "%s", path);
            m->addr = (uintptr_t)lo;
            m->size = (uintptr_t)(hi - lo);
            continue;
        }
        if ((uintptr_t)lo < m->addr) {
            m->size += m->addr - (uintptr_t)lo;
            m->addr = (uintptr_t)lo;
        }
        if ((uintptr_t)hi > m->addr + m->size) m->size = (uintptr_t)hi - m->addr;
    }
    for (size_t i = 0; i < out->n; i++)
        posthog__file_build_id(out->m[i].path, out->m[i].build_id, sizeof out->m[i].build_id,
                               &out->m[i].build_id_len);
    return 0;
}

/* Reads one report and captures its $exception; 0 when it may be deleted. */
static int send_report(posthog_client_t *c, int dfd, const char *path) {
    int fd = openat(dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat sb;
    char *buf = NULL;
    int rc = 0; /* unreadable or damaged reports are deleted too: they never get better */
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > REPORT_MAX + 65536) goto out;
    size_t n = (size_t)sb.st_size;
    if (!(buf = malloc(n + 1))) {
        rc = -1;
        goto out;
    }
    if (read(fd, buf, n) != (ssize_t)n) goto out;
    buf[n] = '\0';
    int sig = 0, code = 0, frames = 0;
    unsigned long long addr = 0, pid = 0, tms = 0;
    char *p = buf;
    if (strncmp(p, "PHCRASH 1\n", 10)) {
        posthog__log(c, POSTHOG_LOG_WARN, "ignoring a damaged crash report %s", path);
        goto out;
    }
    if (sscanf(p, "PHCRASH 1\nsignal %d\ncode %d\naddr %llx\npid %llu\ntime_ms %llu\nframes %d\n",
               &sig, &code, &addr, &pid, &tms, &frames) != 6 ||
        frames < 0 || frames > PH_MAX_FRAMES)
        goto out;
    p = strstr(p, "\nframes ");
    p = p ? strchr(p + 1, '\n') : NULL;
    if (!p) goto out;
    p++;
    uintptr_t pcs[PH_MAX_FRAMES];
    int nf = 0;
    for (; nf < frames && p; nf++) {
        pcs[nf] = (uintptr_t)strtoull(p, NULL, 16);
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || strncmp(p, "context ", 8)) goto out;
    size_t cl = strtoull(p + 8, &p, 10);
    if (*p != '\n' || (size_t)(buf + n - (p + 1)) < cl) goto out;
    const char *ctx = p + 1, *did = NULL, *props = NULL;
    if (cl >= 2) {
        did = ctx[0] ? ctx : NULL;
        props = ctx + strlen(ctx) + 1;
        if (!*props) props = NULL;
    }
    p = (char *)ctx + cl;
    const char *maps = strstr(p, "\nmaps\n");
    ph_modules_t mods = {0};
    if (maps) maps_modules(maps + 6, &mods);
    char msg[160];
    snprintf(msg, sizeof msg, "%s (signal %d, code %d) at address 0x%llx", sig_text(sig), sig, code,
             addr);
    posthog_exception_options_t o = {.level = "fatal", .handled = POSTHOG_FALSE,
                                     .mechanism_type = "signalhandler",
                                     .timestamp_ms = (int64_t)tms};
    posthog_status_t st = posthog__capture_native_exception(c, did, sig_name(sig), msg, props, &o,
                                                            pcs, (size_t)nf, &mods);
    posthog__native_modules_free(&mods);
    if (st == POSTHOG_OK)
        posthog__log(c, POSTHOG_LOG_INFO, "reported the crash of process %llu (%s) from %s", pid,
                     sig_name(sig), path);
    /* refused for good (invalid): delete; not queued (full, shutting down): keep for next time */
    rc = st == POSTHOG_E_QUEUE_FULL || st == POSTHOG_E_SHUTDOWN || st == POSTHOG_E_NOMEM ? -1 : 0;
out:
    free(buf);
    close(fd);
    return rc;
}

void posthog__crash_reports_send(posthog_client_t *c) {
    if (!c->spool || c->spool->dfd < 0) return;
    int dfd = c->spool->dfd;
    int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* fdopendir takes it */
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0) close(lfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 9 || strncmp(de->d_name, "crash-", 6) || strcmp(de->d_name + l - 8, ".phcrash")) continue;
        if (send_report(c, dfd, de->d_name) == 0) unlinkat(dfd, de->d_name, 0);
    }
    closedir(d);
}
