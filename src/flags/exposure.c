/*
 * flags/exposure: sharded, bounded dedupe of $feature_flag_called (see
 * exposure.h). Each shard is a chained hash of distinct ids, each id with a
 * small growable set of exposure fingerprints, plus a FIFO of ids in
 * first-seen order for eviction.
 */
#include "exposure.h"

#include <pthread.h>
#include <stdlib.h>

#define SHARDS 16

typedef struct id_ent {
    struct id_ent *next_hash;
    struct id_ent *older, *newer; /* FIFO */
    uint64_t id_hash;
    uint64_t *fps;
    uint32_t nfps, capfps;
    char did[]; /* NUL-terminated */
} id_ent_t;

typedef struct {
    pthread_mutex_t mu;
    id_ent_t **buckets;
    uint32_t nbuckets; /* power of two */
    uint32_t count, max;
    id_ent_t *oldest, *newest;
} shard_t;

struct ph_exposure {
    uint32_t max_ids;
    shard_t shards[SHARDS];
};

uint64_t posthog__fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

ph_exposure_t *posthog__exposure_new(uint32_t max_ids) {
    ph_exposure_t *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->max_ids = max_ids;
    uint32_t per = max_ids / SHARDS + 1, nb = 16;
    while (nb < per && nb < (1u << 20)) nb <<= 1;
    for (int i = 0; i < SHARDS; i++) {
        shard_t *s = &x->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->max = per;
        s->nbuckets = nb;
        if (max_ids && !(s->buckets = calloc(nb, sizeof *s->buckets))) {
            posthog__exposure_free(x);
            return NULL;
        }
    }
    return x;
}

static void ent_free(id_ent_t *e) {
    free(e->fps);
    free(e);
}

static void shard_clear(shard_t *s) {
    for (id_ent_t *e = s->oldest, *n; e; e = n) {
        n = e->newer;
        ent_free(e);
    }
    if (s->buckets) memset(s->buckets, 0, s->nbuckets * sizeof *s->buckets);
    s->oldest = s->newest = NULL;
    s->count = 0;
}

void posthog__exposure_free(ph_exposure_t *x) {
    if (!x) return;
    for (int i = 0; i < SHARDS; i++) {
        shard_clear(&x->shards[i]);
        free(x->shards[i].buckets);
        pthread_mutex_destroy(&x->shards[i].mu);
    }
    free(x);
}

void posthog__exposure_clear(ph_exposure_t *x) {
    if (!x) return;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&x->shards[i].mu);
        shard_clear(&x->shards[i]);
        pthread_mutex_unlock(&x->shards[i].mu);
    }
}

size_t posthog__exposure_ids(ph_exposure_t *x) {
    size_t n = 0;
    for (int i = 0; x && i < SHARDS; i++) {
        pthread_mutex_lock(&x->shards[i].mu);
        n += x->shards[i].count;
        pthread_mutex_unlock(&x->shards[i].mu);
    }
    return n;
}

static id_ent_t **find(shard_t *s, uint64_t h, const char *did) {
    id_ent_t **pp = &s->buckets[(h >> 8) & (s->nbuckets - 1)];
    while (*pp && ((*pp)->id_hash != h || strcmp((*pp)->did, did))) pp = &(*pp)->next_hash;
    return pp;
}

static void unlink_ent(shard_t *s, id_ent_t *e) {
    id_ent_t **pp = find(s, e->id_hash, e->did);
    if (*pp == e) *pp = e->next_hash;
    if (e->older) e->older->newer = e->newer;
    else s->oldest = e->newer;
    if (e->newer) e->newer->older = e->older;
    else s->newest = e->older;
    s->count--;
}

bool posthog__exposure_first(ph_exposure_t *x, const char *did, uint64_t fp) {
    if (!x || !x->max_ids) return true;
    uint64_t h = posthog__fnv64(PH_FNV64_INIT, did, strlen(did));
    shard_t *s = &x->shards[h % SHARDS];
    bool first = true;
    pthread_mutex_lock(&s->mu);
    id_ent_t *e = *find(s, h, did);
    if (e) {
        for (uint32_t i = 0; i < e->nfps; i++)
            if (e->fps[i] == fp) {
                first = false;
                goto out;
            }
    } else {
        if (s->count >= s->max && s->oldest) { /* forget the oldest id: one at a time */
            id_ent_t *old = s->oldest;
            unlink_ent(s, old);
            ent_free(old);
        }
        size_t n = strlen(did);
        e = calloc(1, sizeof *e + n + 1);
        if (!e) goto out; /* out of memory: report it (a duplicate is better than a loss) */
        memcpy(e->did, did, n + 1);
        e->id_hash = h;
        id_ent_t **pp = find(s, h, did);
        *pp = e;
        e->older = s->newest;
        if (s->newest) s->newest->newer = e;
        else s->oldest = e;
        s->newest = e;
        s->count++;
    }
    if (e->nfps == e->capfps) {
        uint32_t nc = e->capfps ? e->capfps * 2 : 4;
        uint64_t *f = realloc(e->fps, nc * sizeof *f);
        if (!f) goto out;
        e->fps = f;
        e->capfps = nc;
    }
    e->fps[e->nfps++] = fp;
out:
    pthread_mutex_unlock(&s->mu);
    return first;
}

void posthog__exposure_forget(ph_exposure_t *x, const char *did, uint64_t fp) {
    if (!x || !x->max_ids) return;
    uint64_t h = posthog__fnv64(PH_FNV64_INIT, did, strlen(did));
    shard_t *s = &x->shards[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    id_ent_t *e = *find(s, h, did);
    for (uint32_t i = 0; e && i < e->nfps; i++)
        if (e->fps[i] == fp) {
            e->fps[i] = e->fps[--e->nfps];
            break;
        }
    pthread_mutex_unlock(&s->mu);
}
