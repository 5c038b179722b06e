/*
 * flags/loader: the definitions poller and its disk copy (see loader.h).
 */
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "client.h"
#include "util.h"

#define DEFS_BODY_MAX ((size_t)64 << 20)
#define CACHE_NAME "flag_definitions"
#define CACHE_MAGIC "PHFD1\n"

struct ph_loader {
    char *url;
    char *auth;          /* "Authorization: Bearer ..." */
    char *cache_path;    /* NULL without storage_path */
    uint32_t interval_ms;
    uint32_t stack_size; /* thread_stack_size */
    int timeout_ms;
    ph_req_pool_t *pool;
    ph_loader_sink_t sink;

    pthread_mutex_t mu;
    pthread_cond_t cv;   /* monotonic clock */
    pthread_t th;
    bool running;        /* [mu] the thread exists */
    bool stop;           /* [mu] */
    _Atomic int cancel;  /* set by stop: abandons the request in flight */
    bool first_done;     /* [mu] the first fetch (or the disk copy) settled */
    bool installed;      /* [mu] definitions are installed now */
    uint64_t want_seq;   /* [mu] polls asked for */
    uint64_t done_seq;   /* [mu] polls completed */
    char etag[256];      /* [loader thread] */
    ph_loader_stats_t st; /* [mu] */
};

/* Percent-encodes s for a query string (RFC 3986 unreserved kept). */
static char *query_escape(const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *w = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = '\0';
    return out;
}

static void logf_(ph_loader_t *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(ph_loader_t *l, int level, const char *fmt, ...) {
    if (!l->sink.log) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    l->sink.log(l->sink.ud, level, msg);
}

/* ---------------------------------------------------------------- disk copy */

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int write_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Layout: magic, crc32(etag + body), etag length, body length, etag, body
 * (big-endian u32s). */
static void cache_save(ph_loader_t *l, const char *etag, const char *body, size_t len) {
    if (!l->cache_path) return;
    size_t el = strlen(etag);
    unsigned char hdr[sizeof CACHE_MAGIC - 1 + 12];
    memcpy(hdr, CACHE_MAGIC, sizeof CACHE_MAGIC - 1);
    uLong crc = crc32(0, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)etag, (uInt)el);
    crc = crc32(crc, (const Bytef *)body, (uInt)len);
    put32(hdr + sizeof CACHE_MAGIC - 1, (uint32_t)crc);
    put32(hdr + sizeof CACHE_MAGIC - 1 + 4, (uint32_t)el);
    put32(hdr + sizeof CACHE_MAGIC - 1 + 8, (uint32_t)len);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%08llx", l->cache_path, (long)getpid(),
             (unsigned long long)(posthog__rand_u64() & 0xffffffffu));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        logf_(l, POSTHOG_LOG_WARN, "feature flags: cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    int bad = write_all(fd, hdr, sizeof hdr) || write_all(fd, etag, el) ||
              write_all(fd, body, len) || fsync(fd);
    bad |= close(fd);
    if (bad || rename(tmp, l->cache_path)) {
        logf_(l, POSTHOG_LOG_WARN, "feature flags: cannot keep the definitions in %s: %s",
              l->cache_path, strerror(errno));
        unlink(tmp);
    }
}

static void cache_remove(ph_loader_t *l) {
    if (l->cache_path) unlink(l->cache_path);
}

/* Installs the disk copy; 0 when it was valid and installed. */
static int cache_load(ph_loader_t *l) {
    if (!l->cache_path) return -1;
    int fd = open(l->cache_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat sb;
    char *buf = NULL;
    int rc = -1;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size < (off_t)(sizeof CACHE_MAGIC - 1 + 12) ||
        (uint64_t)sb.st_size > DEFS_BODY_MAX + 4096)
        goto out;
    size_t n = (size_t)sb.st_size;
    if (!(buf = malloc(n + 1))) goto out;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) goto out;
        got += (size_t)r;
    }
    const unsigned char *h = (const unsigned char *)buf;
    size_t off = sizeof CACHE_MAGIC - 1;
    if (memcmp(buf, CACHE_MAGIC, off)) goto out;
    uint32_t crc = get32(h + off), el = get32(h + off + 4), bl = get32(h + off + 8);
    off += 12;
    if ((uint64_t)off + el + bl != n || el >= sizeof l->etag) goto out;
    if ((uint32_t)crc32(crc32(0, Z_NULL, 0), (const Bytef *)buf + off, (uInt)(el + bl)) != crc) goto out;
    char err[256] = "";
    buf[n] = '\0';
    if (l->sink.install(l->sink.ud, buf + off + el, bl, err, sizeof err)) {
        logf_(l, POSTHOG_LOG_WARN, "feature flags: the definitions kept in %s do not compile: %s",
              l->cache_path, err);
        goto out;
    }
    memcpy(l->etag, buf + off, el);
    l->etag[el] = '\0';
    rc = 0;
out:
    if (rc && fd >= 0 && buf) logf_(l, POSTHOG_LOG_WARN, "feature flags: ignoring %s (damaged)", l->cache_path);
    free(buf);
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- fetch */

static void fetch(ph_loader_t *l) {
    char inm[300];
    const char *hdrs[2] = {l->auth, NULL};
    int nh = 1;
    if (l->etag[0]) {
        snprintf(inm, sizeof inm, "If-None-Match: %s", l->etag);
        hdrs[nh++] = inm;
    }
    ph_req_t r = {.method = "GET", .url = l->url, .headers = hdrs, .nheaders = nh,
                  .timeout_ms = l->timeout_ms, .max_body = DEFS_BODY_MAX, .cancel = &l->cancel,
                  .kind = "flag_definitions"};
    ph_resp_t resp;
    posthog__req_perform(l->pool, &r, &resp);
    if (atomic_load(&l->cancel)) { /* stopping: nothing to report */
        posthog__req_done(&resp);
        return;
    }
    bool installed = false, cleared = false;
    long s = resp.status;
    if (s == 200 && !resp.body_truncated) {
        char err[256] = "";
        if (l->sink.install(l->sink.ud, resp.body.data, resp.body.len, err, sizeof err) == 0) {
            installed = true;
            snprintf(l->etag, sizeof l->etag, "%s", resp.etag); /* "" when none: cleared */
            cache_save(l, l->etag, resp.body.data, resp.body.len);
        } else {
            logf_(l, POSTHOG_LOG_ERROR,
                  "feature flags: the definitions (%zu bytes) do not compile, keeping the last "
                  "ones: %s",
                  resp.body.len, err);
        }
    } else if (s == 200) {
        logf_(l, POSTHOG_LOG_ERROR, "feature flags: the definitions are larger than %zu bytes",
              (size_t)DEFS_BODY_MAX);
    } else if (s == 304) {
        if (resp.etag[0]) snprintf(l->etag, sizeof l->etag, "%s", resp.etag);
    } else if (s == 401 || s == 402) {
        l->sink.clear(l->sink.ud);
        l->etag[0] = '\0';
        cache_remove(l);
        cleared = true;
        if (s == 401)
            logf_(l, POSTHOG_LOG_ERROR,
                  "feature flags: /flags/definitions answered 401: the secret_key (phs_...) or "
                  "personal API key was refused; local evaluation is off until it is accepted");
        else
            logf_(l, POSTHOG_LOG_WARN,
                  "feature flags: /flags/definitions answered 402: the project is over its feature "
                  "flags quota; local definitions cleared");
    } else if (s) {
        logf_(l, POSTHOG_LOG_WARN,
              "feature flags: /flags/definitions answered HTTP %ld; keeping the last definitions%s", s,
              s == 403 ? " (403: the key lacks the feature_flag:read scope?)" : "");
    } else {
        logf_(l, POSTHOG_LOG_WARN, "feature flags: /flags/definitions failed (%s); keeping the last definitions",
              resp.error);
    }
    posthog__req_done(&resp);
    pthread_mutex_lock(&l->mu);
    l->st.fetches++;
    l->st.last_status = s;
    if (installed) {
        l->st.loads++;
        l->installed = true;
        l->st.loaded_at_ms = posthog__now_ms();
    } else if (s == 304) {
        l->st.not_modified++;
        l->st.loaded_at_ms = posthog__now_ms();
    } else {
        l->st.failures++;
        if (cleared) l->installed = false;
    }
    pthread_mutex_unlock(&l->mu);
}

static void *loader_main(void *arg) {
    ph_loader_t *l = arg;
    if (cache_load(l) == 0) {
        pthread_mutex_lock(&l->mu);
        l->installed = true;
        l->first_done = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        uint64_t seq = l->want_seq;
        pthread_mutex_unlock(&l->mu);
        fetch(l);
        pthread_mutex_lock(&l->mu);
        l->first_done = true;
        if (l->done_seq < seq) l->done_seq = seq;
        pthread_cond_broadcast(&l->cv);
        /* next poll: interval +-10% */
        int64_t jitter = (int64_t)(posthog__rand_u64() % (l->interval_ms / 5 + 1)) - l->interval_ms / 10;
        int64_t at = posthog__mono_ms() + l->interval_ms + jitter;
        struct timespec ts = posthog__abs_deadline(at);
        while (!l->stop && l->want_seq == l->done_seq && posthog__mono_ms() < at)
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---------------------------------------------------------------- life cycle */

static void init_sync(ph_loader_t *l) {
    pthread_mutex_init(&l->mu, NULL);
    posthog__cond_init_mono(&l->cv); /* deadlines: posthog__abs_deadline */
}

static int start_thread(ph_loader_t *l) {
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, l->stack_size); /* the option; the default is 256 KiB */
    int rc = pthread_create(&l->th, &at, loader_main, l);
    pthread_attr_destroy(&at);
    if (rc == 0) l->running = true;
    return rc;
}

ph_loader_t *posthog__loader_start(const posthog_options_t *o, ph_req_pool_t *pool,
                                   const ph_loader_sink_t *sink, char *err, size_t errlen) {
    ph_loader_t *l = calloc(1, sizeof *l);
    if (!l) goto nomem;
    l->pool = pool;
    l->sink = *sink;
    l->interval_ms = o->poll_interval_ms;
    l->stack_size = o->thread_stack_size;
    l->timeout_ms = (int)o->request_timeout_ms;
    l->st.loaded_at_ms = -1;
    /* the project key goes in the query: percent-encode it */
    char *tok = query_escape(o->api_key ? o->api_key : "");
    size_t ul = strlen(o->host) + strlen(tok) + 64;
    l->url = malloc(ul);
    size_t al = strlen(o->secret_key) + 32;
    l->auth = malloc(al);
    if (!tok || !l->url || !l->auth) {
        free(tok);
        goto nomem;
    }
    snprintf(l->url, ul, "%s/flags/definitions?token=%s&send_cohorts", o->host, tok);
    free(tok);
    snprintf(l->auth, al, "Authorization: Bearer %s", o->secret_key);
    if (o->storage_path) {
        size_t pl = strlen(o->storage_path) + sizeof CACHE_NAME + 2;
        if (!(l->cache_path = malloc(pl))) goto nomem;
        snprintf(l->cache_path, pl, "%s/%s", o->storage_path, CACHE_NAME);
    }
    init_sync(l);
    if (start_thread(l)) {
        snprintf(err, errlen, "cannot start the feature flag definitions thread");
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        goto fail;
    }
    return l;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (l) {
        free(l->url);
        free(l->auth);
        free(l->cache_path);
        free(l);
    }
    return NULL;
}

void posthog__loader_stop(ph_loader_t *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    atomic_store(&l->cancel, 1);
    bool running = l->running;
    l->running = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (running) pthread_join(l->th, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->url);
    free(l->auth);
    free(l->cache_path);
    free(l);
}

void posthog__loader_fork_child(ph_loader_t *l) {
    if (!l) return;
    /* the parent's thread (and anything it held) does not exist here */
    init_sync(l);
    l->running = false;
    l->want_seq = l->done_seq = 0;
    if (!l->stop && start_thread(l) != 0)
        logf_(l, POSTHOG_LOG_ERROR, "feature flags: cannot start the definitions thread in the forked child");
}

static bool wait_until(ph_loader_t *l, bool (*done)(ph_loader_t *, uint64_t), uint64_t arg,
                       int timeout_ms) {
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : posthog__mono_ms() + timeout_ms;
    struct timespec ts = posthog__abs_deadline(deadline == INT64_MAX ? posthog__mono_ms() + 86400000 : deadline);
    pthread_mutex_lock(&l->mu);
    while (!done(l, arg) && l->running && posthog__mono_ms() < deadline) {
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (deadline == INT64_MAX) ts = posthog__abs_deadline(posthog__mono_ms() + 86400000);
    }
    bool ok = done(l, arg);
    pthread_mutex_unlock(&l->mu);
    return ok;
}

static bool first_settled(ph_loader_t *l, uint64_t unused) {
    (void)unused;
    return l->first_done;
}

static bool seq_done(ph_loader_t *l, uint64_t seq) { return l->done_seq >= seq; }

int posthog__loader_wait(ph_loader_t *l, int timeout_ms) {
    if (!l) return -1;
    wait_until(l, first_settled, 0, timeout_ms);
    pthread_mutex_lock(&l->mu);
    bool ok = l->installed;
    pthread_mutex_unlock(&l->mu);
    return ok ? 0 : -1;
}

int posthog__loader_reload(ph_loader_t *l, int timeout_ms) {
    if (!l) return -1;
    pthread_mutex_lock(&l->mu);
    uint64_t seq = ++l->want_seq;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return wait_until(l, seq_done, seq, timeout_ms) ? 0 : -1;
}

void posthog__loader_stats(ph_loader_t *l, ph_loader_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->loaded_at_ms = -1;
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    pthread_mutex_unlock(&l->mu);
}
