/*
 * durable: posthog_capture_durable's group commit to the spool.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "event.h"
#include "util.h"

/* ---------------------------------------------------------------- durable capture */

/*
 * Group commit: each caller appends its event to c->dpend and waits; the
 * first caller that finds no commit running becomes the leader, takes
 * every pending event, writes them as one spool file (one fsync of the
 * file, one of the directory) outside the lock, stores each waiter's
 * result and wakes them. So N concurrent callers share one commit.
 */
posthog_status_t posthog__durable_commit(posthog_client_t *c, const ph_rec_t *img,
                                       const char *event, const char *did) {
    ph_buf_t b;
    posthog__buf_init(&b, (size_t)PH_MAX(c->o->max_event_bytes, c->o->max_ai_event_bytes) + 1024);
    if (posthog__event_format(&b, img))
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, event, did);
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
            return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, event, did);
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
            posthog__spool_append(c->spool, (const char *const *)ev, len, (uint32_t)n, true, &loss);
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
        return posthog__drop_at_capture(c, POSTHOG_DROP_STORAGE_FULL, result, event, did);
    return POSTHOG_OK;
}
