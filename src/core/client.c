/*
 * client: the client's life cycle (create, flush, shutdown, free) and its
 * stats. The capture path is in capture/, drop reports and logging in
 * report.c, fork handling in fork.c.
 */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "json.h"
#include "props.h"
#include "transport.h"
#include "util.h"


/* ---------------------------------------------------------------- create/free */

static void set_err(char *errbuf, size_t errlen, const char *msg) {
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", msg);
}

/* Splits super_properties into members so capture can skip overridden keys.
 * Members are kept as written (numbers exactly, keys with their escapes);
 * keys compare by decoded value (json.h). */
static int load_super(posthog_client_t *c) {
    if (!c->o->super_properties) return 0;
    const char *text = c->o->super_properties;
    int type = 0;
    ph_json_keys_t keys;
    if (posthog__json_validate(text, strlen(text), &type, &keys) != POSTHOG_OK ||
        type != PH_JSON_OBJECT)
        return -1;
    c->super = calloc(keys.count ? keys.count : 1, sizeof *c->super);
    ph_buf_t all;
    posthog__buf_init(&all, (size_t)1 << 30);
    int rc = c->super ? 0 : -1;
    ph_json_iter_t it;
    ph_json_member_t mb;
    ph_json_iter_init(&it, text + keys.inner_off, keys.inner_len);
    while (!rc && posthog__json_next_member(&it, &mb)) {
        bool lib = posthog__json_str_eq(mb.key, mb.klen, "$lib", 4);
        bool libv = posthog__json_str_eq(mb.key, mb.klen, "$lib_version", 12);
        if (lib) c->super_has_lib = true;
        if (libv) c->super_has_lib_version = true;
        /* capture v1 sends these as PostHog-Sdk-Info (the flusher reads them
         * from super_properties), never in the properties: leaving them out
         * here keeps every record on v1's direct writer */
        if ((lib || libv) && !c->o->capture_v0) continue;
        ph_member_t *m = &c->super[c->nsuper];
        m->mlen = mb.klen + 3 + mb.vlen;
        m->member = malloc(m->mlen + 1);
        m->key = strndup(mb.key, mb.klen);
        m->klen = mb.klen;
        c->nsuper++; /* client_destroy frees what was allocated */
        if (!m->member || !m->key) {
            rc = -1;
            break;
        }
        char *o = m->member;
        *o++ = '"';
        memcpy(o, mb.key, mb.klen);
        o += mb.klen;
        *o++ = '"';
        *o++ = ':';
        memcpy(o, mb.val, mb.vlen);
        o[mb.vlen] = '\0';
        if ((all.len && ph_buf_putc(&all, ',')) || posthog__buf_append(&all, m->member, m->mlen))
            rc = -1;
        if (posthog__json_str_eq(mb.key, mb.klen, "$groups", 7)) c->super_has_groups = true;
        if (posthog__is_lift_key(m->key, m->klen)) c->super_has_lift = true;
    }
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
    posthog__wake_close(&c->wake);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->park_cv);
    posthog__flags_client_free(c);
    posthog__crash_ctx_free(c);
    posthog_options_free(c->o);
    posthog__aligned_free(c);
}

posthog_client_t *posthog_client_new(posthog_options_t *o, char *errbuf, size_t errlen) {
    if (!o) o = posthog_options_new();
    if (!o) {
        set_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    char oerr[512], env_warn[256];
    if (posthog__options_apply_env(o, oerr, sizeof oerr, env_warn, sizeof env_warn)) {
        set_err(errbuf, errlen, oerr);
        posthog_options_free(o);
        return NULL;
    }
    if (!o->api_key && !o->disabled) {
        set_err(errbuf, errlen, posthog_strerror(POSTHOG_E_NO_API_KEY));
        posthog_options_free(o);
        return NULL;
    }
    if (posthog__options_resolve(o, oerr, sizeof oerr)) {
        set_err(errbuf, errlen, oerr);
        posthog_options_free(o);
        return NULL;
    }
    if ((uint64_t)PH_MAX(o->max_event_bytes, o->max_ai_event_bytes) > o->ring_bytes / 3) {
        set_err(errbuf, errlen,
                "max_event_bytes and max_ai_event_bytes must be at most a quarter of "
                "max_queue_bytes");
        posthog_options_free(o);
        return NULL;
    }
#ifdef POSTHOG_NO_SPOOL
    if (o->storage_path) {
        set_err(errbuf, errlen,
                "option storage_path is set, but this build of libposthog has no disk spool "
                "(configured with -DPOSTHOG_WITH_SPOOL=OFF): unset storage_path, or use a build "
                "with the spool");
        posthog_options_free(o);
        return NULL;
    }
#endif
    if (o->max_batch_size < o->flush_at) o->max_batch_size = o->flush_at;
    /* without libcurl (POSTHOG_WITH_CURL=OFF) only a transport hook can send */
    if (!o->disabled && posthog__transport_check(o, oerr, sizeof oerr)) {
        set_err(errbuf, errlen, oerr);
        posthog_options_free(o);
        return NULL;
    }
#ifdef POSTHOG_HAVE_CURL
    posthog__transport_curl_global_init();
#endif
    posthog__fork_init();

    posthog_client_t *c = posthog__aligned_alloc(PH_CACHELINE, (sizeof *c + PH_CACHELINE - 1) &
                                                          ~(size_t)(PH_CACHELINE - 1));
    if (!c) {
        set_err(errbuf, errlen, "out of memory");
        posthog_options_free(o);
        return NULL;
    }
    memset(c, 0, sizeof *c);
    c->o = o;
    c->wake = PH_WAKE_NONE;
    pthread_mutex_init(&c->mu, NULL);
    posthog__init_conds(c);
    c->wake_at = UINT64_MAX;
    pthread_mutex_init(&c->dmu, NULL);
    pthread_cond_init(&c->dcv, NULL);
    /* never above what the queue can hold, or a small queue would never wake it */
    c->wake_threshold = PH_MIN(o->flush_at, PH_MAX(o->max_queue_size / 2, 1u));
    c->wake_threshold_busy =
        PH_MIN(PH_MAX(o->flush_at, PH_MIN(o->max_queue_size / 8, 4096u)),
               PH_MAX(o->max_queue_size / 2, 1u));
    /* the ring's share of memory_budget or max_queue_bytes (options.c:
     * resolve_budget; sealed batches: flusher.c pending_max) */
    if (posthog__queue_init(&c->q, o->ring_bytes, o->max_queue_size)) {
        set_err(errbuf, errlen, "cannot allocate the queue");
        goto fail;
    }
    if (load_super(c)) {
        set_err(errbuf, errlen, "cannot load super_properties");
        goto fail;
    }
    if (posthog__wake_open(&c->wake)) {
        char msg[160];
        snprintf(msg, sizeof msg, "cannot create the flusher's wake-up %s: %s",
                 posthog__wake_kind(), strerror(errno));
        set_err(errbuf, errlen, msg);
        goto fail;
    }
    if (o->storage_path) {
        c->spool = calloc(1, sizeof *c->spool);
        char why[256] = "out of memory";
        if (!c->spool || posthog__spool_open(c->spool, o->storage_path, o->max_storage_bytes,
                                             (int64_t)o->max_storage_age_s * 1000, why,
                                             sizeof why)) {
            /* never fatal: the client works from memory, and says so */
            free(c->spool);
            c->spool = NULL;
            posthog__log(c, POSTHOG_LOG_ERROR,
                         "storage_path %s unusable (%s): events are kept in memory only",
                         o->storage_path, why);
        } else {
            posthog__spool_set_segments(c->spool, o->spool_max_files,
                                        (int64_t)o->spool_fsync_interval_ms);
            /* Files left by earlier runs are ours to deliver from now on, so
             * that a posthog_flush right after creation waits for them. */
            ph_spool_loss_t loss = {0};
            uint64_t n = posthog__spool_adopt(c->spool, &loss);
            posthog__spool_pending_add(c, (int64_t)n);
            posthog__report_spool_loss(c, &loss);
            posthog__report_spool_scan(c);
            if (n)
                posthog__log(c, POSTHOG_LOG_INFO, "found %llu spooled events to deliver",
                             (unsigned long long)n);
            if (o->crash_handler && posthog__crash_install(c))
                posthog__log(c, POSTHOG_LOG_WARN, "could not install the crash handler");
        }
    }
    if (env_warn[0]) posthog__log(c, POSTHOG_LOG_WARN, "%s", env_warn);
    if (!o->tls_verify && !o->disabled)
        posthog__log(c, POSTHOG_LOG_WARN,
                     "tls_verify=0: the server's certificate is not verified, so the API key "
                     "and events can be intercepted; use it for local testing only");
    /* Registered before the thread starts, so a fork from now on resets it. */
    posthog__registry_add(c);
    /* local evaluation asked for (secret_key): load the definitions now, in
     * the background */
    if (!o->disabled && o->secret_key) posthog__flags_client_start(c);
    if (!o->disabled) {
        pthread_mutex_lock(&c->mu);
        int rc = posthog__flusher_start(c);
        pthread_mutex_unlock(&c->mu);
        if (rc) {
            posthog__registry_remove(c);
            set_err(errbuf, errlen, posthog_strerror(POSTHOG_E_THREAD));
            goto fail;
        }
    }
    /* a crash of an earlier process on this storage_path: report it once */
    if (o->storage_path && !o->disabled) posthog__crash_reports_send(c);
    return c;
fail:
    client_destroy(c);
    return NULL;
}

void posthog__start_thread_slow(posthog_client_t *c) {
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

/* ---------------------------------------------------------------- flush, shutdown */

_Thread_local ph_cb_frame_t *posthog__cb_top;

bool posthog__in_callback(const posthog_client_t *c) {
    for (const ph_cb_frame_t *f = posthog__cb_top; f; f = f->prev)
        if (f->c == c) return true;
    return false;
}

struct timespec posthog__abs_deadline(int64_t mono_deadline_ms) {
    return posthog__cond_deadline(mono_deadline_ms);
}

/* Waits (c->mu held) until done_pos >= target and (with `settle`) nothing
 * of ours waits on disk, the flusher exits, or the deadline. */
static bool wait_done(posthog_client_t *c, uint64_t target, int64_t deadline, bool forever,
                      bool settle) {
    c->waiters++;
    if (!settle) c->waiters_resolved++;
    while ((c->done_pos < target || (settle && !posthog__spool_settled(c))) &&
           c->thread_running) {
        if (target < c->wake_at) c->wake_at = target;
        if (forever) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        if (posthog__mono_ms() >= deadline) break;
        struct timespec ts = posthog__abs_deadline(deadline);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    c->waiters--;
    if (!settle) c->waiters_resolved--;
    return c->done_pos >= target && (!settle || posthog__spool_settled(c));
}

/* The flushes: until every event captured before the call is resolved
 * (delivered, dropped or spooled) and, with `settle`, nothing of ours waits
 * on disk. */
static posthog_status_t flush_wait(posthog_client_t *c, int timeout_ms, bool settle,
                                   posthog_flush_result_t *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (posthog__in_callback(c)) return POSTHOG_E_IN_CALLBACK;
    if (c->o->disabled) return POSTHOG_OK;
    posthog__maybe_start_thread(c);
    uint64_t target = ph_queue_head(&c->q);
    int64_t deadline = posthog__mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    /* what happened while it waited: counter differences */
    uint64_t sent0 = ph_counter_get(&c->sent), dropped0 = ph_counter_get(&c->delivery_dropped),
             spooled0 = ph_counter_get(&c->spooled);
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    if (c->done_pos < target || (settle && !posthog__spool_settled(c))) {
        if (target > c->flush_target) c->flush_target = target;
        pthread_mutex_unlock(&c->mu);
        posthog__wake(c);
        pthread_mutex_lock(&c->mu);
        ok = wait_done(c, target, deadline, timeout_ms < 0, settle);
    }
    pthread_mutex_unlock(&c->mu);
    uint64_t dropped = ph_counter_get(&c->delivery_dropped) - dropped0;
    if (out) {
        out->delivered = ph_counter_get(&c->sent) - sent0;
        out->dropped = dropped;
        out->spooled = ph_counter_get(&c->spooled) - spooled0;
        int64_t pend = atomic_load_explicit(&c->spool_pending, memory_order_relaxed);
        out->spool_pending = pend > 0 ? (uint64_t)pend : 0;
    }
    if (!ok) return POSTHOG_E_TIMEOUT;
    return dropped ? POSTHOG_E_UNDELIVERED : POSTHOG_OK;
}

posthog_status_t posthog_flush_ex(posthog_client_t *c, int timeout_ms,
                                  posthog_flush_result_t *out) {
    return flush_wait(c, timeout_ms, true, out);
}

posthog_status_t posthog_flush(posthog_client_t *c, int timeout_ms) {
    posthog_status_t st = flush_wait(c, timeout_ms, true, NULL);
    return st == POSTHOG_E_UNDELIVERED ? POSTHOG_OK : st;
}

posthog_status_t posthog_flush_resolved(posthog_client_t *c, int timeout_ms) {
    posthog_status_t st = flush_wait(c, timeout_ms, false, NULL);
    return st == POSTHOG_E_UNDELIVERED ? POSTHOG_OK : st;
}

posthog_status_t posthog_shutdown(posthog_client_t *c, int timeout_ms) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (posthog__in_callback(c)) return POSTHOG_E_IN_CALLBACK;
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
    posthog__flags_shutdown(c);
    /* the flusher is gone: what this client left on disk is anybody's now,
     * not locked up until posthog_client_free */
    if (c->spool) posthog__spool_release_all(c->spool);
    pthread_mutex_lock(&c->mu);
    c->stopped = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return lost ? POSTHOG_E_TIMEOUT : POSTHOG_OK;
}

void posthog_client_free(posthog_client_t *c) {
    if (!c) return;
    if (posthog__in_callback(c)) {
        /* the caller returns into code that uses c: freeing it would be a
         * use after free, and on the flusher thread a join of itself */
        posthog__log(c, POSTHOG_LOG_ERROR,
                     "posthog_client_free called inside a callback of the same client: "
                     "refused, the client stays alive (free it from outside its callbacks)");
        return;
    }
    posthog_shutdown(c, -1);
    posthog__registry_remove(c);
    client_destroy(c);
}

/* ---------------------------------------------------------------- network state */

posthog_status_t posthog_set_network_state(posthog_client_t *c, posthog_network_state_t state) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (state != POSTHOG_NETWORK_UP && state != POSTHOG_NETWORK_DOWN) {
        posthog__log(c, POSTHOG_LOG_ERROR,
                     "posthog_set_network_state: state %d is neither POSTHOG_NETWORK_UP (0) "
                     "nor POSTHOG_NETWORK_DOWN (1); nothing changed",
                     (int)state);
        return POSTHOG_E_INVALID_ARG;
    }
    bool down = state == POSTHOG_NETWORK_DOWN;
    /* seq_cst: the flusher reads net_down after net_up_seq moved */
    bool was = atomic_exchange(&c->net_down, down ? 1 : 0) != 0;
    if (down) {
        if (!was) {
            ph_counter_add(&c->net_down_periods, 1);
            posthog__log(c, POSTHOG_LOG_INFO, "network down: no requests until it is back");
        }
    } else {
        atomic_fetch_add(&c->net_up_seq, 1);
        if (was) posthog__log(c, POSTHOG_LOG_INFO, "network back: delivering now");
    }
    /* the flusher re-plans: spools or sends at once */
    if (!c->o->disabled) posthog__wake(c);
    return POSTHOG_OK;
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
    uint64_t t = atomic_load_explicit(&c->q.rel, memory_order_relaxed);
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
            if (!strcmp(name + 8, posthog_drop_reason_name((posthog_drop_reason_t)i))) return s.dropped[i];
    /* the spool's names for its drops */
    if (!strcmp(name, "evicted"))
        return s.dropped[POSTHOG_DROP_STORAGE_FULL] + s.dropped[POSTHOG_DROP_EXPIRED];
    if (!strcmp(name, "corrupt_skipped")) return s.dropped[POSTHOG_DROP_CORRUPT];
    if (!strcmp(name, "network_down")) return atomic_load(&((posthog_client_t *)c)->net_down) ? 1 : 0;
    if (!strcmp(name, "network_down_periods")) return ph_counter_get(&c->net_down_periods);
    /* the memory split (memory_budget): sizes, not counters */
    if (!strcmp(name, "queue_capacity_bytes")) return c->q.cap;
    if (!strcmp(name, "memory_budget")) return c->o->memory_budget;
#ifndef POSTHOG_NO_SPOOL
    if (!strcmp(name, "spool_scan_errors")) /* failed listings of the spool directory */
        return c && c->spool ? atomic_load(&c->spool->scan_failures) : 0;
#else
    if (!strcmp(name, "spool_scan_errors")) return 0; /* no spool in this build */
#endif
    if (!strncmp(name, "flags_", 6)) return posthog__flags_stat(c, name);
    return UINT64_MAX;
}
