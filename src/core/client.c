/*
 * client: the public client API. Capture is the hot path: it validates,
 * merges properties, and writes a compact record straight into the queue
 * with no lock, no allocation and no syscall in the common case (the
 * flusher is woken through an eventfd only when it sleeps and enough
 * events have piled up).
 *
 * Shutdown race: capture reserves (seq_cst CAS on the queue head) and then
 * reads the state (seq_cst); shutdown stores CLOSED (seq_cst) and then
 * reads the head. So a capture either reserved below the head shutdown saw
 * (the flusher delivers or counts it) or sees CLOSED and commits a dead
 * record and counts its own drop. No event escapes uncounted.
 */
#include "client.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "json.h"
#include "props.h"
#include "util.h"


/* ---------------------------------------------------------------- misc API */

const char *posthog_version(void) { return POSTHOG_VERSION_STRING; }

void *posthog_malloc(size_t n) { return malloc(n ? n : 1); }

void posthog_free(void *p) { free(p); }

const char *posthog_strerror(posthog_status_t s) {
    switch (s) {
    case POSTHOG_OK: return "ok";
    case POSTHOG_E_INVALID_ARG: return "invalid argument";
    case POSTHOG_E_INVALID_EVENT: return "invalid event: empty event name or distinct_id";
    case POSTHOG_E_INVALID_UTF8: return "string is not valid UTF-8";
    case POSTHOG_E_INVALID_JSON: return "properties are not a valid JSON object";
    case POSTHOG_E_TOO_LARGE: return "event larger than max_event_bytes";
    case POSTHOG_E_QUEUE_FULL: return "queue full: event dropped";
    case POSTHOG_E_SHUTDOWN: return "client is shut down";
    case POSTHOG_E_TIMEOUT: return "timed out";
    case POSTHOG_E_NOMEM: return "out of memory";
    case POSTHOG_E_UNKNOWN_OPTION: return "unknown option";
    case POSTHOG_E_BAD_OPTION_VALUE: return "invalid option value";
    case POSTHOG_E_NO_API_KEY: return "no api_key set (option api_key or POSTHOG_API_KEY)";
    case POSTHOG_E_DISABLED: return "client is disabled";
    case POSTHOG_E_DROPPED: return "event dropped by before_send";
    case POSTHOG_E_THREAD: return "could not start the flusher thread";
    case POSTHOG_E_HTTP: return "HTTP delivery failed";
    case POSTHOG_E_STORAGE: return "the spool directory could not be written";
    case POSTHOG_E_NO_STORAGE: return "durable capture needs the storage_path option";
    case POSTHOG_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}

static const char *const drop_names[POSTHOG_DROP_REASON_COUNT] = {
    "queue_full", "invalid",      "too_large", "rejected", "retries_exhausted",
    "before_send", "shutdown",    "storage_full", "expired", "corrupt"};

const char *posthog_drop_reason_name(posthog_drop_reason_t r) {
    return (unsigned)r < POSTHOG_DROP_REASON_COUNT ? drop_names[r] : "unknown";
}

static const posthog_status_t drop_status[POSTHOG_DROP_REASON_COUNT] = {
    POSTHOG_E_QUEUE_FULL, POSTHOG_E_INVALID_EVENT, POSTHOG_E_TOO_LARGE, POSTHOG_E_HTTP,
    POSTHOG_E_HTTP,       POSTHOG_E_DROPPED,       POSTHOG_E_SHUTDOWN,  POSTHOG_E_STORAGE,
    POSTHOG_E_STORAGE,    POSTHOG_E_STORAGE};

void posthog__log(posthog_client_t *c, posthog_log_level_t lvl, const char *fmt, ...) {
    if (!c->o->log_fn || (lvl == POSTHOG_LOG_DEBUG && !c->o->debug)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->o->log_fn(lvl, msg, c->o->log_ud);
}

void posthog__report_drop_st(posthog_client_t *c, posthog_drop_reason_t r, posthog_status_t st,
                             uint32_t count, int http_status, const char *msg,
                             const char *events_json, const char *event, const char *distinct_id) {
    ph_counter_add(&c->dropped[r], count);
    if (!c->o->drop_fn) return;
    posthog_drop_info_t info = {(int32_t)r, (int32_t)st, count,       http_status,
                                msg,        events_json, event,       distinct_id};
    c->o->drop_fn(&info, c->o->drop_ud);
}

void posthog__report_drop(posthog_client_t *c, posthog_drop_reason_t r, uint32_t count,
                          int http_status, const char *msg, const char *events_json,
                          const char *event, const char *distinct_id) {
    posthog__report_drop_st(c, r, drop_status[r], count, http_status, msg, events_json, event,
                            distinct_id);
}

/* A capture-time drop: counted, reported, and its status returned. */
static posthog_status_t drop_at_capture(posthog_client_t *c, posthog_drop_reason_t r,
                                        posthog_status_t st, const char *event,
                                        const char *did) {
    posthog__report_drop_st(c, r, st, 1, 0, posthog_strerror(st), NULL, event, did);
    return st;
}

void posthog__spool_pending_add(posthog_client_t *c, int64_t n) {
    /* relaxed: a statistic; flush waits re-read it under c->mu after a broadcast */
    atomic_fetch_add_explicit(&c->spool_pending, n, memory_order_relaxed);
}

void posthog__report_spool_loss(posthog_client_t *c, const ph_spool_loss_t *l) {
    if (l->own_evicted) posthog__spool_pending_add(c, -(int64_t)l->own_evicted);
    if (l->evicted_size)
        posthog__report_drop(c, POSTHOG_DROP_STORAGE_FULL, l->evicted_size, 0,
                             "spool over max_storage_bytes: oldest events evicted", NULL, NULL,
                             NULL);
    if (l->evicted_age)
        posthog__report_drop(c, POSTHOG_DROP_EXPIRED, l->evicted_age, 0,
                             "spooled events older than max_storage_age_s discarded", NULL, NULL,
                             NULL);
    if (l->corrupt)
        posthog__report_drop(c, POSTHOG_DROP_CORRUPT, l->corrupt, 0,
                             "corrupt or torn records skipped in the spool", NULL, NULL, NULL);
}

void posthog__spool_incoming(posthog_client_t *c, ph_spool_file_t *f) {
    posthog__spool_park(c->spool, f);
    posthog__wake(c);
}

void posthog__wake(posthog_client_t *c) {
    uint64_t one = 1;
    ssize_t w = write(c->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, the flusher will wake */
}

/* ---------------------------------------------------------------- registry, fork */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static posthog_client_t *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static struct timespec abs_deadline(int64_t mono_deadline_ms);

/* Timed waits compute deadlines on CLOCK_MONOTONIC (abs_deadline). */
static void init_conds(posthog_client_t *c) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_cond_init(&c->park_cv, &ca);
    pthread_condattr_destroy(&ca);
}

/*
 * Before the fork, every flusher is parked at the top of its loop, where it
 * holds no lock of its own nor of the allocator, libcurl, OpenSSL or zlib:
 * a child would otherwise inherit such a lock held by a thread it does not
 * have, and deadlock on its first use (glibc's malloc is fork-safe;
 * sanitizer allocators, other mallocs and OpenSSL 3's global locks are
 * not). A flusher is between wake-ups almost always, so this costs two
 * context switches; one busy in a long user callback or fsync delays the
 * fork at most PH_FORK_PARK_MS, after which the fork goes ahead unparked.
 * A fork from the flusher thread itself (in a callback) parks nothing of
 * its own client.
 */
static void fork_prepare(void) {
    pthread_mutex_lock(&registry_mu);
    int64_t deadline = posthog__mono_ms() + PH_FORK_PARK_MS;
    for (posthog_client_t *c = registry; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        if (!c->thread_running || pthread_equal(c->thread, pthread_self())) continue;
        c->fork_park = true;
        posthog__wake(c);
        struct timespec ts = abs_deadline(deadline);
        while (c->thread_running && !c->fl_parked)
            if (pthread_cond_timedwait(&c->park_cv, &c->mu, &ts) == ETIMEDOUT) break;
    }
}

static void fork_parent(void) {
    for (posthog_client_t *c = registry; c; c = c->next) {
        c->fork_park = false;
        pthread_cond_broadcast(&c->park_cv);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

/*
 * In the child only this thread exists. The parent's queued events stay
 * the parent's: the child forgets them (fresh zero pages), abandons the
 * flusher state it inherited (its curl handles share the parent's
 * sockets, so they are never used nor cleaned up here) and starts its own
 * flusher at its first capture. Counters restart at zero.
 */
static void fork_child(void) {
    posthog__rand_fork_child();
    posthog__spool_fork_child(NULL);
    for (posthog_client_t *c = registry; c; c = c->next) {
        posthog__queue_reset(&c->q);
        c->fl = NULL;
        c->thread_running = false;
        c->done_pos = 0;
        c->flush_target = 0;
        c->wake_at = UINT64_MAX;
        c->waiters = 0;
        c->fork_park = false;
        c->fl_parked = false;
        /* their waiters (flush callers, the parked flusher) are the parent's */
        init_conds(c);
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd >= 0) {
            close(c->wake_fd);
            c->wake_fd = fd;
        }
        atomic_store(&c->sleeping, 0);
        bool alive = !c->stop && !c->stopped;
        atomic_store(&c->need_thread, alive && !c->o->disabled ? 1 : 0);
        ph_counter_t *cs[] = {&c->captured, &c->sent, &c->requests,
                              &c->retries,  &c->bytes_raw, &c->bytes_sent};
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) atomic_store(&cs[i]->v, 0);
        for (int i = 0; i < POSTHOG_DROP_REASON_COUNT; i++) atomic_store(&c->dropped[i].v, 0);
        atomic_store(&c->spooled.v, 0);
        atomic_store(&c->replayed.v, 0);
        atomic_store(&c->spool_pending, 0);
        /* durable capture: the parent's waiters do not exist here */
        pthread_mutex_init(&c->dmu, NULL);
        pthread_cond_init(&c->dcv, NULL);
        c->dpend_n = 0;
        c->dcommitting = false;
        c->dseq_next = c->dseq_done = 0;
        posthog__spool_fork_child(c->spool);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

static void atfork_init(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

static void registry_add(posthog_client_t *c) {
    pthread_mutex_lock(&registry_mu);
    c->next = registry;
    registry = c;
    pthread_mutex_unlock(&registry_mu);
}

static void registry_remove(posthog_client_t *c) {
    pthread_mutex_lock(&registry_mu);
    for (posthog_client_t **p = &registry; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
}

/* ---------------------------------------------------------------- create/free */

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void set_err(char *errbuf, size_t errlen, const char *msg) {
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", msg);
}

/* Splits super_properties into members so capture can skip overridden keys. */
static int load_super(posthog_client_t *c) {
    if (!c->o->super_properties) return 0;
    cJSON *root = cJSON_Parse(c->o->super_properties);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    int n = cJSON_GetArraySize(root);
    c->super = calloc((size_t)(n ? n : 1), sizeof *c->super);
    ph_buf_t all;
    posthog__buf_init(&all, (size_t)1 << 30);
    int rc = c->super ? 0 : -1;
    for (cJSON *it = root->child; it && !rc; it = it->next) {
        ph_member_t *m = &c->super[c->nsuper];
        char *val = cJSON_PrintUnformatted(it);
        ph_buf_t mb;
        posthog__buf_init(&mb, (size_t)1 << 30);
        if (!val || posthog__json_append_string(&mb, it->string, strlen(it->string)) ||
            ph_buf_putc(&mb, ':') || posthog__buf_append(&mb, val, strlen(val))) {
            rc = -1;
        } else {
            m->member = mb.data; /* owned by c->super from here on */
            m->mlen = mb.len;
            mb.data = NULL;
            m->key = strndup(m->member + 1, posthog__json_escaped_len(it->string, strlen(it->string)));
            m->klen = m->key ? strlen(m->key) : 0;
            if (!m->key) rc = -1;
            c->nsuper++;
            if ((all.len && ph_buf_putc(&all, ',')) || posthog__buf_append(&all, m->member, m->mlen))
                rc = -1;
            if (!strcmp(it->string, "$lib")) c->super_has_lib = true;
            if (!strcmp(it->string, "$lib_version")) c->super_has_lib_version = true;
            if (!strcmp(it->string, "$groups")) c->super_has_groups = true;
        }
        if (rc) posthog__buf_free(&mb);
        cJSON_free(val);
    }
    cJSON_Delete(root);
    c->super_inner = all.data;
    c->super_inner_len = all.len;
    return rc;
}

static void client_destroy(posthog_client_t *c) {
    if (c->spool) {
        posthog__crash_uninstall(c);
        posthog__spool_close(c->spool);
        free(c->spool);
    }
    for (size_t i = 0; i < c->dpend_n; i++) free(c->dpend[i]);
    free(c->dpend);
    free(c->dpend_len);
    free(c->dstatus);
    pthread_mutex_destroy(&c->dmu);
    pthread_cond_destroy(&c->dcv);
    for (size_t i = 0; i < c->nsuper; i++) {
        free(c->super[i].key);
        free(c->super[i].member);
    }
    free(c->super);
    free(c->super_inner);
    posthog__queue_destroy(&c->q);
    if (c->wake_fd >= 0) close(c->wake_fd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->park_cv);
    posthog_options_free(c->o);
    free(c);
}

posthog_client_t *posthog_client_new(posthog_options_t *o, char *errbuf, size_t errlen) {
    if (!o) o = posthog_options_new();
    if (!o) {
        set_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    posthog__options_apply_env(o);
    if (!o->api_key && !o->disabled) {
        set_err(errbuf, errlen, posthog_strerror(POSTHOG_E_NO_API_KEY));
        posthog_options_free(o);
        return NULL;
    }
    if ((uint64_t)o->max_event_bytes > o->max_queue_bytes / 4) {
        set_err(errbuf, errlen, "max_event_bytes must be at most a quarter of max_queue_bytes");
        posthog_options_free(o);
        return NULL;
    }
    if (o->max_batch_size < o->flush_at) o->max_batch_size = o->flush_at;
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    pthread_once(&curl_once, curl_init_once);
    pthread_once(&atfork_once, atfork_init);

    posthog_client_t *c = aligned_alloc(PH_CACHELINE, (sizeof *c + PH_CACHELINE - 1) &
                                                          ~(size_t)(PH_CACHELINE - 1));
    if (!c) {
        set_err(errbuf, errlen, "out of memory");
        posthog_options_free(o);
        return NULL;
    }
    memset(c, 0, sizeof *c);
    c->o = o;
    c->wake_fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    init_conds(c);
    c->wake_at = UINT64_MAX;
    pthread_mutex_init(&c->dmu, NULL);
    pthread_cond_init(&c->dcv, NULL);
    /* never above what the queue can hold, or a small queue would never wake it */
    c->wake_threshold = PH_MIN(o->flush_at, PH_MAX(o->max_queue_size / 2, 1u));
    c->wake_threshold_busy =
        PH_MIN(PH_MAX(o->flush_at, PH_MIN(o->max_queue_size / 8, 4096u)),
               PH_MAX(o->max_queue_size / 2, 1u));
    /* max_queue_bytes is the whole memory budget: 3/4 for the queue, 1/8
     * for sealed batches waiting to be sent (flusher.c: pending_max), 1/8
     * for the flusher's working memory (deflate state, buffers, curl) */
    if (posthog__queue_init(&c->q, o->max_queue_bytes / 4 * 3, o->max_queue_size)) {
        set_err(errbuf, errlen, "cannot allocate the queue");
        goto fail;
    }
    if (load_super(c)) {
        set_err(errbuf, errlen, "cannot load super_properties");
        goto fail;
    }
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0) {
        set_err(errbuf, errlen, "cannot create the wake-up eventfd");
        goto fail;
    }
    if (o->storage_path) {
        c->spool = calloc(1, sizeof *c->spool);
        if (!c->spool || posthog__spool_open(c->spool, o->storage_path, o->max_storage_bytes,
                                             (int64_t)o->max_storage_age_s * 1000)) {
            /* never fatal: the client works from memory, and says so */
            char why[256];
            snprintf(why, sizeof why, "%s", c->spool ? strerror(errno) : "out of memory");
            free(c->spool);
            c->spool = NULL;
            posthog__log(c, POSTHOG_LOG_ERROR,
                         "storage_path %s unusable (%s): events are kept in memory only",
                         o->storage_path, why);
        } else {
            /* Files left by earlier runs are ours to deliver from now on, so
             * that a posthog_flush right after creation waits for them. */
            ph_spool_loss_t loss = {0};
            uint64_t n = posthog__spool_adopt(c->spool, &loss);
            posthog__spool_pending_add(c, (int64_t)n);
            posthog__report_spool_loss(c, &loss);
            if (n)
                posthog__log(c, POSTHOG_LOG_INFO, "found %llu spooled events to deliver",
                             (unsigned long long)n);
            if (o->crash_handler && posthog__crash_install(c))
                posthog__log(c, POSTHOG_LOG_WARN, "could not install the crash handler");
        }
    }
    /* Registered before the thread starts, so a fork from now on resets it. */
    registry_add(c);
    if (!o->disabled) {
        pthread_mutex_lock(&c->mu);
        int rc = posthog__flusher_start(c);
        pthread_mutex_unlock(&c->mu);
        if (rc) {
            registry_remove(c);
            set_err(errbuf, errlen, posthog_strerror(POSTHOG_E_THREAD));
            goto fail;
        }
    }
    return c;
fail:
    client_destroy(c);
    return NULL;
}

/* ---------------------------------------------------------------- capture */

typedef struct {
    const char *event, *did;           /* raw, NUL-terminated */
    const posthog_props_t *pb;         /* typed properties, or */
    const char *pjson;                 /* validated JSON object text */
    const ph_json_keys_t *pkeys;       /* its keys */
    const char *groups_json;           /* validated object, or NULL */
    ph_frags_t extra;                  /* top-level members */
    int64_t ts_ms;                     /* 0: now */
    const uint8_t *uuid;               /* NULL: new v7 */
    char *uuid_out;
    bool durable;                      /* posthog_capture_durable */
    const posthog_capture_options_t *eo; /* per-event options, or NULL */
} cap_t;

static bool user_has_key(const cap_t *k, const char *key, size_t klen) {
    if (k->pb) return posthog__props_has_key(k->pb, key, klen);
    if (k->pjson) return posthog__json_keys_has(k->pkeys, k->pjson, key, klen);
    return false;
}

typedef struct {
    ph_frags_t props;
    uint32_t flags;         /* PH_REC_LIB / PH_REC_LIBV: the flusher adds them */
    char *tmp[3];           /* heap pieces to free */
    char groups_small[256];
    char opts_small[192];
} props_out_t;

static void props_out_free(props_out_t *po) {
    free(po->tmp[0]);
    free(po->tmp[1]);
    free(po->tmp[2]);
}

/* Appends ,"key":true|false for a set tri-state the user's properties lack. */
static char *opt_bool(char *o, const cap_t *k, const char *key, posthog_tristate_t v,
                      bool (*has)(const cap_t *, const char *, size_t)) {
    size_t kl = strlen(key);
    if (v == POSTHOG_UNSET || has(k, key, kl)) return o;
    *o++ = ',';
    *o++ = '"';
    memcpy(o, key, kl);
    o += kl;
    const char *val = v == POSTHOG_TRUE ? "\":true" : "\":false";
    size_t vl = strlen(val);
    memcpy(o, val, vl);
    return o + vl;
}

static bool user_has_key(const cap_t *k, const char *key, size_t klen);

/*
 * Members for the per-event options, disable_geoip and a generated
 * distinct_id (personless), written to po->opts_small or the heap. The
 * user's own properties win over each of them.
 */
static posthog_status_t option_members(posthog_client_t *c, const cap_t *k, bool generated_did,
                                       props_out_t *po) {
    const posthog_capture_options_t *eo = k->eo;
    posthog_tristate_t ppp = eo ? eo->process_person_profile : POSTHOG_UNSET;
    if (generated_did && ppp == POSTHOG_UNSET) ppp = POSTHOG_FALSE;
    const char *tour = eo ? eo->product_tour_id : NULL;
    bool any = ppp || c->o->disable_geoip || tour ||
               (eo && (eo->cookieless_mode || eo->disable_skew_correction));
    if (!any) return POSTHOG_OK;
    size_t tl = 0, te = 0;
    if (tour) {
        tl = strlen(tour);
        te = posthog__json_escaped_len_valid(tour, tl);
        if (te == SIZE_MAX) return POSTHOG_E_INVALID_UTF8;
    }
    size_t need = 4 * 40 + (tour ? te + 24 : 0);
    char *buf = need <= sizeof po->opts_small ? po->opts_small : (po->tmp[2] = malloc(need));
    if (!buf) return POSTHOG_E_NOMEM;
    char *o = buf;
    o = opt_bool(o, k, "$process_person_profile", ppp, user_has_key);
    if (eo) {
        o = opt_bool(o, k, "$cookieless_mode", eo->cookieless_mode, user_has_key);
        o = opt_bool(o, k, "$ignore_sent_at", eo->disable_skew_correction, user_has_key);
    }
    if (c->o->disable_geoip) o = opt_bool(o, k, "$geoip_disable", POSTHOG_TRUE, user_has_key);
    if (tour && !user_has_key(k, "$product_tour_id", 16)) {
        memcpy(o, ",\"$product_tour_id\":\"", 21);
        o += 21;
        o += posthog__json_escape(o, tour, tl);
        *o++ = '"';
    }
    if (o > buf) ph_frags_add(&po->props, buf + 1, (size_t)(o - buf - 1));
    return POSTHOG_OK;
}

/* Joins user properties, super properties, $groups and $lib* (first wins). */
static posthog_status_t merge_props(posthog_client_t *c, const cap_t *k, bool generated_did,
                                    props_out_t *po) {
    memset(&po->props, 0, sizeof po->props);
    po->tmp[0] = po->tmp[1] = po->tmp[2] = NULL;
    po->flags = 0;
    if (k->pb) {
        size_t n;
        const char *in = posthog__props_inner(k->pb, &n);
        ph_frags_add(&po->props, in, n);
    } else if (k->pjson) {
        ph_frags_add(&po->props, k->pjson + k->pkeys->inner_off, k->pkeys->inner_len);
    }
    bool has_props = k->pb || k->pjson;
    if (c->nsuper) {
        bool overlap = false;
        for (size_t i = 0; has_props && i < c->nsuper && !overlap; i++)
            overlap = user_has_key(k, c->super[i].key, c->super[i].klen);
        if (!overlap) {
            ph_frags_add(&po->props, c->super_inner, c->super_inner_len);
        } else {
            ph_buf_t b;
            posthog__buf_init(&b, c->super_inner_len + 1);
            for (size_t i = 0; i < c->nsuper; i++) {
                if (user_has_key(k, c->super[i].key, c->super[i].klen)) continue;
                if ((b.len && ph_buf_putc(&b, ',')) ||
                    posthog__buf_append(&b, c->super[i].member, c->super[i].mlen)) {
                    posthog__buf_free(&b);
                    return POSTHOG_E_NOMEM;
                }
            }
            po->tmp[0] = b.data;
            ph_frags_add(&po->props, b.data, b.len);
        }
    }
    if (k->groups_json && !user_has_key(k, "$groups", 7)) {
        size_t gl = strlen(k->groups_json), need = 10 + gl;
        char *g = need <= sizeof po->groups_small ? po->groups_small : (po->tmp[1] = malloc(need));
        if (!g) return POSTHOG_E_NOMEM;
        memcpy(g, "\"$groups\":", 10);
        memcpy(g + 10, k->groups_json, gl);
        ph_frags_add(&po->props, g, need);
    }
    posthog_status_t st = option_members(c, k, generated_did, po);
    if (st != POSTHOG_OK) return st;
    if (!c->super_has_lib && !user_has_key(k, "$lib", 4)) po->flags |= PH_REC_LIB;
    if (!c->super_has_lib_version && !user_has_key(k, "$lib_version", 12))
        po->flags |= PH_REC_LIBV;
    return POSTHOG_OK;
}

/* Writes the record (header + texts) at dst. */
static void write_rec(void *dst, const uint8_t uuid[16], int64_t ts, uint32_t flags,
                      const char *name, size_t name_n, size_t name_e, const char *did,
                      size_t did_n, size_t did_e, const ph_frags_t *props,
                      const ph_frags_t *extra) {
    ph_rec_t *r = dst;
    memcpy(r->uuid, uuid, 16);
    r->ts_ms = ts;
    r->flags = flags;
    r->name_len = (uint32_t)name_e;
    r->did_len = (uint32_t)did_e;
    r->props_len = (uint32_t)props->len;
    r->extra_len = (uint32_t)extra->len;
    char *o = (char *)(r + 1);
    o += name_n == name_e ? (memcpy(o, name, name_n), name_n) : posthog__json_escape(o, name, name_n);
    o += did_n == did_e ? (memcpy(o, did, did_n), did_n) : posthog__json_escape(o, did, did_n);
    o = posthog__frags_write(o, props);
    posthog__frags_write(o, extra);
}

static size_t rec_size(const ph_rec_t *r) {
    return sizeof *r + r->name_len + r->did_len + r->props_len + r->extra_len;
}

/* Copies a finished record image into the queue. */
static posthog_status_t enqueue_rec(posthog_client_t *c, const ph_rec_t *img, const char *event,
                                    const char *did);

static posthog_status_t apply_before_send(posthog_client_t *c, ph_rec_t **img,
                                          const char *event, const char *did);
static posthog_status_t durable_commit(posthog_client_t *c, const ph_rec_t *img,
                                       const char *event, const char *did);

/* Commits a written record, or marks it dead when shutdown won the race. */
static posthog_status_t publish(posthog_client_t *c, ph_qslot_t *slot, uint64_t queued,
                                const char *event, const char *did) {
    /* seq_cst: see the shutdown race note at the top of this file */
    if (PH_UNLIKELY(atomic_load_explicit(&c->state, memory_order_seq_cst) != PH_RUNNING)) {
        posthog__queue_commit(&c->q, slot, PH_Q_DEAD);
        return drop_at_capture(c, POSTHOG_DROP_SHUTDOWN, POSTHOG_E_SHUTDOWN, event, did);
    }
    posthog__queue_commit(&c->q, slot, 0);
    ph_counter_add(&c->captured, 1);
    /* seq_cst: pairs with the flusher's seq_cst store before it sleeps */
    uint32_t th = atomic_load_explicit(&c->sleeping, memory_order_seq_cst);
    if (PH_UNLIKELY(th && queued >= th) && atomic_exchange(&c->sleeping, 0)) posthog__wake(c);
    return POSTHOG_OK;
}

static posthog_status_t check_object(const char *json, ph_json_keys_t *keys, const char **out);
static posthog_status_t capture_ex(posthog_client_t *c, const char *distinct_id,
                                   const char *event, const char *properties_json,
                                   const posthog_capture_options_t *eo, char *uuid_out,
                                   bool durable);

static void maybe_start_thread(posthog_client_t *c) {
    /* relaxed: a hint; the decision is re-checked under c->mu */
    if (PH_LIKELY(!atomic_load_explicit(&c->need_thread, memory_order_relaxed))) return;
    bool failed = false;
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->need_thread) && !c->thread_running && !c->stop) {
        if (posthog__flusher_start(c) == 0) atomic_store(&c->need_thread, 0);
        else failed = true;
    }
    pthread_mutex_unlock(&c->mu);
    /* logged after unlocking: no lock is held while user code runs */
    if (failed) posthog__log(c, POSTHOG_LOG_ERROR, "cannot start the flusher in the forked child");
}

static posthog_status_t capture(posthog_client_t *c, cap_t *k) {
    /* relaxed: early exit only; the seq_cst re-check after reserving decides */
    if (PH_UNLIKELY(atomic_load_explicit(&c->state, memory_order_relaxed) != PH_RUNNING))
        return drop_at_capture(c, POSTHOG_DROP_SHUTDOWN, POSTHOG_E_SHUTDOWN, k->event, k->did);
    maybe_start_thread(c);
    const char *did = k->did;
    if (!did || !*did) did = c->o->default_distinct_id;
    if (!k->event || !*k->event)
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, k->event, did);
    /* no distinct_id: a generated one and a personless event, as the SDKs do */
    char gen_did[PH_UUID_STR_LEN + 1];
    bool generated = !did || !*did;
    if (generated) {
        uint8_t g[16];
        posthog__uuid_v7(g, posthog__now_ms());
        posthog__uuid_format(gen_did, g);
        gen_did[PH_UUID_STR_LEN] = '\0';
        did = gen_did;
    }
    size_t name_n = strlen(k->event), did_n = strlen(did);
    size_t name_e = posthog__json_escaped_len_valid(k->event, name_n);
    size_t did_e = posthog__json_escaped_len_valid(did, did_n);
    if (name_e == SIZE_MAX || did_e == SIZE_MAX)
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_UTF8, NULL, NULL);

    props_out_t po;
    posthog_status_t st = merge_props(c, k, generated, &po);
    if (st != POSTHOG_OK) {
        props_out_free(&po);
        return drop_at_capture(c, POSTHOG_DROP_INVALID, st, k->event, did);
    }
    uint32_t flags = po.flags | (k->ts_ms ? PH_REC_TS_EXPLICIT : 0);
    if (ph_event_json_len(name_e, did_e, po.props.len, k->extra.len, flags) >
        c->o->max_event_bytes) {
        props_out_free(&po);
        return drop_at_capture(c, POSTHOG_DROP_TOO_LARGE, POSTHOG_E_TOO_LARGE, k->event, did);
    }
    int64_t now = posthog__now_ms();
    int64_t ts = k->ts_ms ? k->ts_ms : now;
    uint8_t uuid[16];
    if (k->uuid) memcpy(uuid, k->uuid, 16);
    else posthog__uuid_v7(uuid, ts);
    if (k->uuid_out) {
        posthog__uuid_format(k->uuid_out, uuid);
        k->uuid_out[PH_UUID_STR_LEN] = '\0';
    }
    size_t payload = sizeof(ph_rec_t) + name_e + did_e + po.props.len + k->extra.len;

    if (PH_UNLIKELY(c->o->before_send_fn || c->o->disabled || k->durable)) {
        ph_rec_t *img = malloc(payload);
        if (!img) {
            props_out_free(&po);
            return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, k->event, did);
        }
        write_rec(img, uuid, ts, flags, k->event, name_n, name_e, did, did_n, did_e, &po.props,
                  &k->extra);
        props_out_free(&po);
        if (c->o->disabled) {
            free(img);
            return POSTHOG_OK;
        }
        st = c->o->before_send_fn ? apply_before_send(c, &img, k->event, did) : POSTHOG_OK;
        if (st == POSTHOG_OK) {
            if (k->uuid_out) {
                posthog__uuid_format(k->uuid_out, img->uuid);
                k->uuid_out[PH_UUID_STR_LEN] = '\0';
            }
            st = k->durable ? durable_commit(c, img, k->event, did)
                            : enqueue_rec(c, img, k->event, did);
        }
        free(img);
        return st;
    }

    ph_qslot_t slot;
    uint64_t queued;
    void *dst = posthog__queue_reserve(&c->q, payload, &slot, &queued);
    if (PH_UNLIKELY(!dst)) {
        props_out_free(&po);
        return drop_at_capture(c, POSTHOG_DROP_QUEUE_FULL, POSTHOG_E_QUEUE_FULL, k->event, did);
    }
    write_rec(dst, uuid, ts, flags, k->event, name_n, name_e, did, did_n, did_e, &po.props,
              &k->extra);
    props_out_free(&po);
    return publish(c, &slot, queued, k->event, did);
}

static posthog_status_t enqueue_rec(posthog_client_t *c, const ph_rec_t *img, const char *event,
                                    const char *did) {
    size_t n = rec_size(img);
    ph_qslot_t slot;
    uint64_t queued;
    void *dst = posthog__queue_reserve(&c->q, n, &slot, &queued);
    if (!dst) return drop_at_capture(c, POSTHOG_DROP_QUEUE_FULL, POSTHOG_E_QUEUE_FULL, event, did);
    memcpy(dst, img, n);
    return publish(c, &slot, queued, event, did);
}

/* ---------------------------------------------------------------- durable capture */

/*
 * Group commit: each caller appends its event to c->dpend and waits; the
 * first caller that finds no commit running becomes the leader, takes
 * every pending event, writes them as one spool file (one fsync of the
 * file, one of the directory) outside the lock, stores each waiter's
 * result and wakes them. So N concurrent callers share one commit.
 */
static posthog_status_t durable_commit(posthog_client_t *c, const ph_rec_t *img,
                                       const char *event, const char *did) {
    ph_buf_t b;
    posthog__buf_init(&b, (size_t)c->o->max_event_bytes + 1024);
    if (posthog__event_format(&b, img))
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, event, did);
    posthog_status_t result = POSTHOG_E_INTERNAL, *mine = &result;
    pthread_mutex_lock(&c->dmu);
    if (c->dpend_n == c->dpend_cap) {
        size_t cap = c->dpend_cap ? c->dpend_cap * 2 : 16;
        char **p = realloc(c->dpend, cap * sizeof *p);
        if (p) c->dpend = p;
        size_t *l = p ? realloc(c->dpend_len, cap * sizeof *l) : NULL;
        if (l) c->dpend_len = l;
        posthog_status_t **st = l ? realloc(c->dstatus, cap * sizeof *st) : NULL;
        if (st) c->dstatus = st;
        if (!st) {
            pthread_mutex_unlock(&c->dmu);
            posthog__buf_free(&b);
            return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, event, did);
        }
        c->dpend_cap = cap;
    }
    c->dpend[c->dpend_n] = b.data; /* ownership moves to the pending list */
    c->dpend_len[c->dpend_n] = b.len;
    c->dstatus[c->dpend_n] = mine;
    c->dpend_n++;
    uint64_t seq = c->dseq_next++;
    while (c->dseq_done <= seq) {
        if (c->dcommitting) {
            pthread_cond_wait(&c->dcv, &c->dmu);
            continue;
        }
        /* leader: take everything pending */
        c->dcommitting = true;
        size_t n = c->dpend_n;
        char **ev = c->dpend;
        size_t *len = c->dpend_len;
        posthog_status_t **sts = c->dstatus;
        c->dpend = NULL;
        c->dpend_len = NULL;
        c->dstatus = NULL;
        c->dpend_n = c->dpend_cap = 0;
        uint64_t upto = c->dseq_next;
        pthread_mutex_unlock(&c->dmu);

        ph_spool_loss_t loss = {0};
        ph_spool_file_t *f =
            posthog__spool_write(c->spool, (const char *const *)ev, len, (uint32_t)n, &loss);
        int err = errno;
        posthog__report_spool_loss(c, &loss);
        posthog_status_t st = f ? POSTHOG_OK : POSTHOG_E_STORAGE;
        if (f) {
            ph_counter_add(&c->spooled, n);
            ph_counter_add(&c->captured, n);
            posthog__spool_pending_add(c, (int64_t)n);
            posthog__spool_incoming(c, f);
        } else {
            posthog__log(c, POSTHOG_LOG_ERROR, "durable capture: spool write failed: %s",
                         strerror(err));
        }
        for (size_t i = 0; i < n; i++) {
            *sts[i] = st;
            free(ev[i]);
        }
        free(ev);
        free(len);
        free(sts);
        pthread_mutex_lock(&c->dmu);
        c->dseq_done = upto;
        c->dcommitting = false;
        pthread_cond_broadcast(&c->dcv);
    }
    pthread_mutex_unlock(&c->dmu);
    if (result != POSTHOG_OK)
        return drop_at_capture(c, POSTHOG_DROP_STORAGE_FULL, result, event, did);
    return POSTHOG_OK;
}

posthog_status_t posthog_capture_durable(posthog_client_t *c, const char *distinct_id,
                                         const char *event, const char *properties_json) {
    return capture_ex(c, distinct_id, event, properties_json, NULL, NULL, true);
}

/* ---------------------------------------------------------------- before_send */

/* Builds a record image from an event JSON object returned by before_send. */
static posthog_status_t rec_from_json(posthog_client_t *c, const char *json, const ph_rec_t *orig,
                                      ph_rec_t **out) {
    posthog_status_t st = POSTHOG_E_INVALID_EVENT;
    cJSON *root = cJSON_Parse(json);
    char *props = NULL, *did_num = NULL;
    ph_buf_t extra;
    posthog__buf_init(&extra, c->o->max_event_bytes);
    if (!root || !cJSON_IsObject(root)) goto done;
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(root, "event");
    const cJSON *di = cJSON_GetObjectItemCaseSensitive(root, "distinct_id");
    const char *name = cJSON_IsString(ev) ? ev->valuestring : NULL;
    const char *did = cJSON_IsString(di) ? di->valuestring : NULL;
    if (cJSON_IsNumber(di)) did = did_num = cJSON_PrintUnformatted(di);
    if (!name || !*name || !did || !*did) goto done;
    if (!posthog__utf8_valid(name, strlen(name)) || !posthog__utf8_valid(did, strlen(did))) {
        st = POSTHOG_E_INVALID_UTF8;
        goto done;
    }
    uint8_t uuid[16];
    memcpy(uuid, orig->uuid, 16);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "uuid");
    if (cJSON_IsString(u) && posthog__uuid_parse(u->valuestring, strlen(u->valuestring), uuid))
        memcpy(uuid, orig->uuid, 16);
    int64_t ts = orig->ts_ms;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
    if (cJSON_IsString(t) && posthog__iso8601_parse(t->valuestring, strlen(t->valuestring), &ts))
        ts = orig->ts_ms;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "properties");
    ph_frags_t pf = {0}, xf = {0};
    if (cJSON_IsObject(p)) {
        props = cJSON_PrintUnformatted(p);
        if (!props) goto nomem;
        size_t pl = strlen(props);
        if (pl > 2) ph_frags_add(&pf, props + 1, pl - 2);
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "event") || !strcmp(it->string, "distinct_id") ||
            !strcmp(it->string, "uuid") || !strcmp(it->string, "timestamp") ||
            !strcmp(it->string, "properties"))
            continue;
        char *v = cJSON_PrintUnformatted(it);
        int bad = !v || (extra.len && ph_buf_putc(&extra, ',')) ||
                  posthog__json_append_string(&extra, it->string, strlen(it->string)) ||
                  ph_buf_putc(&extra, ':') || posthog__buf_append(&extra, v, strlen(v));
        cJSON_free(v);
        if (bad) {
            st = POSTHOG_E_TOO_LARGE;
            goto done;
        }
    }
    ph_frags_add(&xf, extra.data, extra.len);
    size_t nn = strlen(name), dn = strlen(did);
    size_t ne = posthog__json_escaped_len(name, nn), de = posthog__json_escaped_len(did, dn);
    uint32_t flags = ts != orig->ts_ms ? PH_REC_TS_EXPLICIT : (orig->flags & PH_REC_TS_EXPLICIT);
    if (ph_event_json_len(ne, de, pf.len, xf.len, flags) > c->o->max_event_bytes) {
        st = POSTHOG_E_TOO_LARGE;
        goto done;
    }
    ph_rec_t *r = malloc(sizeof *r + ne + de + pf.len + xf.len);
    if (!r) goto nomem;
    write_rec(r, uuid, ts, flags, name, nn, ne, did, dn, de, &pf, &xf);
    *out = r;
    st = POSTHOG_OK;
    goto done;
nomem:
    st = POSTHOG_E_NOMEM;
done:
    cJSON_free(props);
    cJSON_free(did_num);
    posthog__buf_free(&extra);
    cJSON_Delete(root);
    return st;
}

static posthog_status_t apply_before_send(posthog_client_t *c, ph_rec_t **img,
                                          const char *event, const char *did) {
    ph_buf_t b;
    posthog__buf_init(&b, (size_t)c->o->max_event_bytes + 1024);
    if (posthog__event_format(&b, *img)) {
        posthog__buf_free(&b);
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, event, did);
    }
    char *rep = NULL;
    posthog_before_send_result_t r = c->o->before_send_fn(b.data, &rep, c->o->before_send_ud);
    posthog__buf_free(&b);
    if (r == POSTHOG_BEFORE_SEND_DROP) {
        free(rep);
        return drop_at_capture(c, POSTHOG_DROP_BEFORE_SEND, POSTHOG_E_DROPPED, event, did);
    }
    if (r != POSTHOG_BEFORE_SEND_REPLACE || !rep) {
        free(rep);
        return POSTHOG_OK;
    }
    ph_rec_t *nr = NULL;
    posthog_status_t st = rec_from_json(c, rep, *img, &nr);
    free(rep);
    if (st != POSTHOG_OK) {
        posthog__log(c, POSTHOG_LOG_ERROR, "before_send returned an invalid event: %s",
                     posthog_strerror(st));
        return drop_at_capture(c, st == POSTHOG_E_TOO_LARGE ? POSTHOG_DROP_TOO_LARGE
                                                            : POSTHOG_DROP_INVALID,
                               st, event, did);
    }
    free(*img);
    *img = nr;
    return POSTHOG_OK;
}

/* ---------------------------------------------------------------- public capture */

posthog_status_t posthog_capture(posthog_client_t *c, const char *distinct_id, const char *event,
                                 const posthog_props_t *props) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (props && posthog__props_is_array(props))
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_JSON, event,
                               distinct_id);
    cap_t k = {.event = event, .did = distinct_id, .pb = props};
    return capture(c, &k);
}

/* Validates an optional JSON object argument; "null" counts as absent. */
static posthog_status_t check_object(const char *json, ph_json_keys_t *keys, const char **out) {
    *out = NULL;
    if (!json) return POSTHOG_OK;
    int type = 0;
    posthog_status_t st = posthog__json_validate(json, strlen(json), &type, keys);
    if (st != POSTHOG_OK) return st;
    if (type == PH_JSON_LITERAL && strstr(json, "null")) return POSTHOG_OK;
    if (type != PH_JSON_OBJECT) return POSTHOG_E_INVALID_JSON;
    *out = json;
    return POSTHOG_OK;
}

posthog_status_t posthog_capture_json(posthog_client_t *c, const char *distinct_id,
                                      const char *event, const char *properties_json) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    ph_json_keys_t keys;
    cap_t k = {.event = event, .did = distinct_id, .pkeys = &keys};
    posthog_status_t st = check_object(properties_json, &keys, &k.pjson);
    if (st != POSTHOG_OK) return drop_at_capture(c, POSTHOG_DROP_INVALID, st, event, distinct_id);
    return capture(c, &k);
}

/* Adds "name":json to an extra-members buffer. */
static int extra_add(ph_buf_t *b, const char *name, const char *json) {
    size_t n = strlen(json);
    while (n && (json[n - 1] == ' ' || json[n - 1] == '\n' || json[n - 1] == '\r' ||
                 json[n - 1] == '\t'))
        n--;
    while (n && (*json == ' ' || *json == '\n' || *json == '\r' || *json == '\t')) {
        json++;
        n--;
    }
    return (b->len && ph_buf_putc(b, ',')) || posthog__json_append_string(b, name, strlen(name)) ||
           ph_buf_putc(b, ':') || posthog__buf_append(b, json, n);
}

static posthog_status_t capture_ex(posthog_client_t *c, const char *distinct_id,
                                   const char *event, const char *properties_json,
                                   const posthog_capture_options_t *eo, char *uuid_out,
                                   bool durable) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    static const posthog_capture_options_t none;
    if (!eo) eo = &none;
    int64_t timestamp_ms = eo->timestamp_ms;
    const char *uuid = eo->uuid, *groups_json = eo->groups_json, *set_json = eo->set_json,
               *set_once_json = eo->set_once_json;
    if ((unsigned)eo->process_person_profile > POSTHOG_FALSE ||
        (unsigned)eo->cookieless_mode > POSTHOG_FALSE ||
        (unsigned)eo->disable_skew_correction > POSTHOG_FALSE)
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_ARG, event, distinct_id);
    if (durable && !c->spool)
        return drop_at_capture(c, POSTHOG_DROP_STORAGE_FULL, POSTHOG_E_NO_STORAGE, event,
                               distinct_id);
    ph_json_keys_t keys, scratch;
    uint8_t ubin[16];
    cap_t k = {.event = event, .did = distinct_id, .pkeys = &keys, .ts_ms = timestamp_ms,
               .uuid_out = uuid_out, .durable = durable, .eo = eo};
    const char *set = NULL, *set_once = NULL;
    posthog_status_t st = check_object(properties_json, &keys, &k.pjson);
    if (st == POSTHOG_OK) st = check_object(groups_json, &scratch, &k.groups_json);
    if (st == POSTHOG_OK) st = check_object(set_json, &scratch, &set);
    if (st == POSTHOG_OK) st = check_object(set_once_json, &scratch, &set_once);
    if (st == POSTHOG_OK && uuid && posthog__uuid_parse(uuid, strlen(uuid), ubin))
        st = POSTHOG_E_INVALID_ARG;
    if (st != POSTHOG_OK) return drop_at_capture(c, POSTHOG_DROP_INVALID, st, event, distinct_id);
    if (uuid) k.uuid = ubin;
    ph_buf_t extra;
    posthog__buf_init(&extra, (size_t)c->o->max_event_bytes);
    if ((set && extra_add(&extra, "$set", set)) ||
        (set_once && extra_add(&extra, "$set_once", set_once))) {
        posthog__buf_free(&extra);
        return drop_at_capture(c, POSTHOG_DROP_TOO_LARGE, POSTHOG_E_TOO_LARGE, event, distinct_id);
    }
    ph_frags_add(&k.extra, extra.data, extra.len);
    st = capture(c, &k);
    posthog__buf_free(&extra);
    return st;
}

posthog_status_t posthog_capture_ex(posthog_client_t *c, const char *distinct_id,
                                    const char *event, const char *properties_json,
                                    int64_t timestamp_ms, const char *uuid,
                                    const char *groups_json, const char *set_json,
                                    const char *set_once_json, char *uuid_out) {
    posthog_capture_options_t eo = {.timestamp_ms = timestamp_ms, .uuid = uuid,
                                    .groups_json = groups_json, .set_json = set_json,
                                    .set_once_json = set_once_json};
    return capture_ex(c, distinct_id, event, properties_json, &eo, uuid_out, false);
}

posthog_status_t posthog_capture_opts(posthog_client_t *c, const char *distinct_id,
                                      const char *event, const char *properties_json,
                                      const posthog_capture_options_t *opts, char *uuid_out) {
    return capture_ex(c, distinct_id, event, properties_json, opts, uuid_out, false);
}

posthog_status_t posthog_capture_durable_opts(posthog_client_t *c, const char *distinct_id,
                                              const char *event, const char *properties_json,
                                              const posthog_capture_options_t *opts,
                                              char *uuid_out) {
    return capture_ex(c, distinct_id, event, properties_json, opts, uuid_out, true);
}

posthog_status_t posthog_capture_durable_ex(posthog_client_t *c, const char *distinct_id,
                                            const char *event, const char *properties_json,
                                            int64_t timestamp_ms, const char *uuid,
                                            const char *groups_json, const char *set_json,
                                            const char *set_once_json, char *uuid_out) {
    posthog_capture_options_t eo = {.timestamp_ms = timestamp_ms, .uuid = uuid,
                                    .groups_json = groups_json, .set_json = set_json,
                                    .set_once_json = set_once_json};
    return capture_ex(c, distinct_id, event, properties_json, &eo, uuid_out, true);
}

posthog_status_t posthog_identify(posthog_client_t *c, const char *distinct_id,
                                  const char *set_json, const char *set_once_json) {
    return posthog_capture_ex(c, distinct_id, "$identify", NULL, 0, NULL, NULL,
                              set_json ? set_json : "{}", set_once_json, NULL);
}

posthog_status_t posthog_set(posthog_client_t *c, const char *distinct_id, const char *set_json) {
    return posthog_capture_ex(c, distinct_id, "$set", NULL, 0, NULL, NULL,
                              set_json ? set_json : "{}", NULL, NULL);
}

posthog_status_t posthog_set_once(posthog_client_t *c, const char *distinct_id,
                                  const char *set_once_json) {
    return posthog_capture_ex(c, distinct_id, "$set_once", NULL, 0, NULL, NULL, NULL,
                              set_once_json ? set_once_json : "{}", NULL);
}

posthog_status_t posthog_alias(posthog_client_t *c, const char *distinct_id, const char *alias) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (!alias || !*alias)
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, "$create_alias",
                               distinct_id);
    posthog_props_t *p = posthog_props_new();
    if (!p) return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, NULL, NULL);
    posthog_status_t st = POSTHOG_OK;
    if (distinct_id && *distinct_id) st = posthog_props_set_string(p, "distinct_id", distinct_id);
    if (st == POSTHOG_OK) st = posthog_props_set_string(p, "alias", alias);
    st = st == POSTHOG_OK ? posthog_capture(c, distinct_id, "$create_alias", p)
                          : drop_at_capture(c, POSTHOG_DROP_INVALID, st, "$create_alias", NULL);
    posthog_props_free(p);
    return st;
}

posthog_status_t posthog_group_identify(posthog_client_t *c, const char *group_type,
                                        const char *group_key, const char *properties_json,
                                        const char *distinct_id) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (!group_type || !*group_type || !group_key || !*group_key)
        return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, "$groupidentify",
                               distinct_id);
    ph_json_keys_t keys;
    const char *set = NULL;
    posthog_status_t st = check_object(properties_json, &keys, &set);
    if (st != POSTHOG_OK)
        return drop_at_capture(c, POSTHOG_DROP_INVALID, st, "$groupidentify", distinct_id);
    posthog_props_t *p = posthog_props_new();
    char *did = NULL;
    if (!p) return drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, NULL, NULL);
    st = posthog_props_set_string(p, "$group_type", group_type);
    if (st == POSTHOG_OK) st = posthog_props_set_string(p, "$group_key", group_key);
    if (st == POSTHOG_OK) st = posthog_props_set_json(p, "$group_set", set ? set : "{}");
    if (st == POSTHOG_OK && (!distinct_id || !*distinct_id)) {
        size_t n = strlen(group_type) + strlen(group_key) + 3;
        did = malloc(n);
        if (!did) st = POSTHOG_E_NOMEM;
        else snprintf(did, n, "$%s_%s", group_type, group_key);
    }
    st = st == POSTHOG_OK
             ? posthog_capture(c, did ? did : distinct_id, "$groupidentify", p)
             : drop_at_capture(c, POSTHOG_DROP_INVALID, st, "$groupidentify", distinct_id);
    free(did);
    posthog_props_free(p);
    return st;
}

/* ---------------------------------------------------------------- flush, shutdown */

static struct timespec abs_deadline(int64_t mono_deadline_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t d = mono_deadline_ms - now;
    if (d < 0) d = 0;
    ts.tv_sec += d / 1000;
    ts.tv_nsec += (d % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static bool spool_settled(posthog_client_t *c) {
    return atomic_load_explicit(&c->spool_pending, memory_order_relaxed) <= 0;
}

void posthog__wake_waiters_locked(posthog_client_t *c) {
    if (c->waiters && c->done_pos >= c->wake_at && spool_settled(c)) {
        c->wake_at = UINT64_MAX; /* the woken re-register what they still need */
        pthread_cond_broadcast(&c->cv);
    }
}

/* Waits (c->mu held) until done_pos >= target and nothing of ours waits on
 * disk, the flusher exits, or the deadline. */
static bool wait_done(posthog_client_t *c, uint64_t target, int64_t deadline, bool forever) {
    c->waiters++;
    while ((c->done_pos < target || !spool_settled(c)) && c->thread_running) {
        if (target < c->wake_at) c->wake_at = target;
        if (forever) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        if (posthog__mono_ms() >= deadline) break;
        struct timespec ts = abs_deadline(deadline);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    c->waiters--;
    return c->done_pos >= target && spool_settled(c);
}

posthog_status_t posthog_flush(posthog_client_t *c, int timeout_ms) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (c->o->disabled) return POSTHOG_OK;
    maybe_start_thread(c);
    uint64_t target = ph_queue_head(&c->q);
    int64_t deadline = posthog__mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&c->mu);
    if (c->done_pos >= target && spool_settled(c)) {
        pthread_mutex_unlock(&c->mu);
        return POSTHOG_OK;
    }
    if (target > c->flush_target) c->flush_target = target;
    pthread_mutex_unlock(&c->mu);
    posthog__wake(c);
    pthread_mutex_lock(&c->mu);
    bool ok = wait_done(c, target, deadline, timeout_ms < 0);
    pthread_mutex_unlock(&c->mu);
    return ok ? POSTHOG_OK : POSTHOG_E_TIMEOUT;
}

posthog_status_t posthog_shutdown(posthog_client_t *c, int timeout_ms) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (timeout_ms < 0) timeout_ms = (int)c->o->shutdown_timeout_ms;
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        /* another thread shuts down (or did): wait for it to finish */
        while (!c->stopped) pthread_cond_wait(&c->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
        return POSTHOG_OK;
    }
    c->stopping = true;
    /* seq_cst: see the shutdown race note at the top of this file */
    atomic_store_explicit(&c->state, PH_CLOSED, memory_order_seq_cst);
    uint64_t target = ph_queue_head(&c->q);
    c->stop = true;
    c->stop_deadline = posthog__mono_ms() + timeout_ms;
    if (target > c->flush_target) c->flush_target = target;
    bool had_thread = c->thread_running;
    pthread_t th = c->thread;
    pthread_mutex_unlock(&c->mu);

    uint64_t before = ph_counter_get(&c->dropped[POSTHOG_DROP_SHUTDOWN]);
    if (had_thread) {
        posthog__wake(c);
        pthread_join(th, NULL);
    } else if (!c->o->disabled && ph_queue_tail(&c->q) < target) {
        /* no flusher (a forked child that never captured): nothing of
         * ours can be in the queue, but count anything that is */
        uint32_t n = 0;
        size_t len;
        while (posthog__queue_peek(&c->q, &len)) {
            posthog__queue_pop(&c->q);
            n++;
        }
        if (n) posthog__report_drop(c, POSTHOG_DROP_SHUTDOWN, n, 0, "no flusher", NULL, NULL, NULL);
    }
    bool lost = ph_counter_get(&c->dropped[POSTHOG_DROP_SHUTDOWN]) != before;
    pthread_mutex_lock(&c->mu);
    c->stopped = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return lost ? POSTHOG_E_TIMEOUT : POSTHOG_OK;
}

void posthog_client_free(posthog_client_t *c) {
    if (!c) return;
    posthog_shutdown(c, -1);
    registry_remove(c);
    client_destroy(c);
}

/* ---------------------------------------------------------------- stats */

posthog_status_t posthog_get_stats(const posthog_client_t *cc, posthog_stats_t *out) {
    if (!cc || !out) return POSTHOG_E_INVALID_ARG;
    posthog_client_t *c = (posthog_client_t *)cc;
    memset(out, 0, sizeof *out);
    out->captured = ph_counter_get(&c->captured);
    out->sent = ph_counter_get(&c->sent);
    out->requests = ph_counter_get(&c->requests);
    out->retries = ph_counter_get(&c->retries);
    out->bytes_raw = ph_counter_get(&c->bytes_raw);
    out->bytes_sent = ph_counter_get(&c->bytes_sent);
    out->queue_depth = ph_queue_count(&c->q);
    uint64_t h = atomic_load_explicit(&c->q.head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&c->q.tail, memory_order_relaxed);
    out->queue_bytes = h > t ? h - t : 0;
    out->spooled = ph_counter_get(&c->spooled);
    out->replayed = ph_counter_get(&c->replayed);
    out->spool_bytes = c->spool ? posthog__spool_bytes(c->spool) : 0;
    int64_t pend = atomic_load_explicit(&c->spool_pending, memory_order_relaxed);
    out->spool_pending = pend > 0 ? (uint64_t)pend : 0;
    for (int i = 0; i < POSTHOG_DROP_REASON_COUNT; i++) {
        out->dropped[i] = ph_counter_get(&c->dropped[i]);
        out->dropped_total += out->dropped[i];
    }
    return POSTHOG_OK;
}

uint64_t posthog_get_stat(const posthog_client_t *c, const char *name) {
    posthog_stats_t s;
    if (!name || posthog_get_stats(c, &s) != POSTHOG_OK) return UINT64_MAX;
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"captured", offsetof(posthog_stats_t, captured)},
        {"sent", offsetof(posthog_stats_t, sent)},
        {"requests", offsetof(posthog_stats_t, requests)},
        {"retries", offsetof(posthog_stats_t, retries)},
        {"bytes_raw", offsetof(posthog_stats_t, bytes_raw)},
        {"bytes_sent", offsetof(posthog_stats_t, bytes_sent)},
        {"queue_depth", offsetof(posthog_stats_t, queue_depth)},
        {"queue_bytes", offsetof(posthog_stats_t, queue_bytes)},
        {"dropped_total", offsetof(posthog_stats_t, dropped_total)},
        {"spooled", offsetof(posthog_stats_t, spooled)},
        {"replayed", offsetof(posthog_stats_t, replayed)},
        {"spool_bytes", offsetof(posthog_stats_t, spool_bytes)},
        {"spool_pending", offsetof(posthog_stats_t, spool_pending)},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!strcmp(name, fields[i].name))
            return *(const uint64_t *)(const void *)((const char *)&s + fields[i].off);
    if (!strncmp(name, "dropped_", 8))
        for (int i = 0; i < POSTHOG_DROP_REASON_COUNT; i++)
            if (!strcmp(name + 8, drop_names[i])) return s.dropped[i];
    /* the spool's names for its drops */
    if (!strcmp(name, "evicted"))
        return s.dropped[POSTHOG_DROP_STORAGE_FULL] + s.dropped[POSTHOG_DROP_EXPIRED];
    if (!strcmp(name, "corrupt_skipped")) return s.dropped[POSTHOG_DROP_CORRUPT];
    return UINT64_MAX;
}
