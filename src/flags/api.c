/*
 * flags/api: the public feature-flag calls (posthog.h "Feature flags"):
 * snapshots, the convenience getters, and $feature_flag_called.
 *
 * Threads: every call runs on the caller's thread and may block on the
 * network for at most (1 + feature_flags_request_max_retries) x
 * feature_flags_request_timeout_ms plus the retry pauses (300 ms, doubling).
 * A snapshot is immutable after creation; reading it from several threads
 * is safe. Exposure events go through the normal capture path.
 */
#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "exposure.h"
#include "flags.h"
#include "json.h"
#include "loader.h"
#include "remote.h"
#include "request.h"
#include "util.h"

#define CAUSES (PH_INCONCLUSIVE_MALFORMED + 1)

/* Per-client flags state, created at the first flags call (or at client
 * creation with a secret_key). */
typedef struct ph_flags_client {
    ph_req_pool_t *pool;
    ph_exposure_t *seen;
    ph_flags_store_t *store;     /* local definitions (NULL without secret_key) */
    ph_loader_t *loader;
    posthog_client_t *c;
    ph_counter_t local;          /* flags decided locally */
    ph_counter_t remote;         /* flags asked of the server */
    ph_counter_t fallback[CAUSES]; /* local -> remote, by cause */
    ph_counter_t remote_requests;
} ph_flags_client_t;

static int sink_install(void *ud, const char *json, size_t len, char *err, size_t errlen) {
    ph_flags_client_t *s = ud;
    ph_flags_defs_t *d = posthog__flags_compile(json, len, err, errlen);
    if (!d) return -1;
    posthog__flags_store_publish(s->store, d);
    return 0;
}

static void sink_clear(void *ud) {
    ph_flags_client_t *s = ud;
    posthog__flags_store_publish(s->store, NULL);
}

static void sink_log(void *ud, int level, const char *msg) {
    ph_flags_client_t *s = ud;
    posthog__log(s->c, (posthog_log_level_t)level, "%s", msg);
}

static void state_free(ph_flags_client_t *s) {
    if (!s) return;
    posthog__loader_stop(s->loader); /* before the store it publishes into */
    posthog__flags_store_free(s->store);
    posthog__req_pool_free(s->pool);
    posthog__exposure_free(s->seen);
    free(s);
}

struct posthog_flags {
    posthog_client_t *c;
    char *did;
    char *groups_json;      /* as given (for $groups), NULL when none */
    char *groups_canon;     /* sorted "k=v\x1f..." for the dedupe fingerprint */
    ph_flags_answer_t a;    /* flags sorted by key */
    bool send_events;
    bool disable_geoip;
    char **keys;            /* requested keys (NULL: all) */
    size_t nkeys;
    char *strs;             /* the local entries' strings (one block) */
};

static ph_flags_client_t *flags_state(posthog_client_t *c) {
    ph_flags_client_t *s = atomic_load_explicit(&c->flags, memory_order_acquire);
    if (s) return s;
    ph_flags_client_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->c = c;
    n->pool = posthog__req_pool_new(c->o, c);
    n->seen = posthog__exposure_new(c->o->feature_flag_called_cache_size);
    bool local = c->o->secret_key && !c->o->disabled;
    if (local) n->store = posthog__flags_store_new();
    if (!n->pool || !n->seen || (local && !n->store)) {
        state_free(n);
        return NULL;
    }
    ph_flags_client_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&c->flags, &expected, n, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        state_free(n);
        return expected;
    }
    if (local) {
        /* started once the state is published: the loader's sink uses it */
        char err[128];
        ph_loader_sink_t sink = {sink_install, sink_clear, sink_log, n};
        if (!(n->loader = posthog__loader_start(c->o, n->pool, &sink, err, sizeof err)))
            posthog__log(c, POSTHOG_LOG_ERROR, "feature flags: no local evaluation: %s", err);
    }
    return n;
}

void posthog__flags_client_start(posthog_client_t *c) {
    if (!flags_state(c))
        posthog__log(c, POSTHOG_LOG_ERROR, "feature flags: out of memory at client creation");
}

void posthog__flags_client_free(posthog_client_t *c) {
    ph_flags_client_t *s = atomic_load(&c->flags);
    if (!s) return;
    state_free(s);
    atomic_store(&c->flags, NULL);
}

uint64_t posthog__flags_stat(const posthog_client_t *c, const char *name) {
    ph_flags_client_t *s = c ? atomic_load(&((posthog_client_t *)c)->flags) : NULL;
    ph_loader_stats_t ls;
    posthog__loader_stats(s ? s->loader : NULL, &ls);
    if (!strcmp(name, "flags_local")) return s ? ph_counter_get(&s->local) : 0;
    if (!strcmp(name, "flags_remote")) return s ? ph_counter_get(&s->remote) : 0;
    if (!strcmp(name, "flags_requests")) return s ? ph_counter_get(&s->remote_requests) : 0;
    if (!strcmp(name, "flags_definitions_fetches")) return ls.fetches;
    if (!strcmp(name, "flags_definitions_loads")) return ls.loads;
    if (!strcmp(name, "flags_definitions_not_modified")) return ls.not_modified;
    if (!strcmp(name, "flags_definitions_failures")) return ls.failures;
    if (!strcmp(name, "flags_fallback_total")) {
        uint64_t t = 0;
        for (int i = 1; s && i < CAUSES; i++) t += ph_counter_get(&s->fallback[i]);
        return t;
    }
    if (!strncmp(name, "flags_fallback_", 15))
        for (int i = 1; i < CAUSES; i++)
            if (!strcmp(name + 15, posthog__flags_cause_name((ph_flag_cause_t)i)))
                return s ? ph_counter_get(&s->fallback[i]) : 0;
    return UINT64_MAX;
}

posthog_status_t posthog_wait_for_flag_definitions(posthog_client_t *c, int timeout_ms) {
    if (!c || !c->o->secret_key) return POSTHOG_E_INVALID_ARG;
    ph_flags_client_t *s = flags_state(c);
    if (!s || !s->loader) return POSTHOG_E_INTERNAL;
    return posthog__loader_wait(s->loader, timeout_ms) == 0 ? POSTHOG_OK : POSTHOG_E_TIMEOUT;
}

posthog_status_t posthog_reload_feature_flags(posthog_client_t *c, int timeout_ms) {
    if (!c || !c->o->secret_key) return POSTHOG_E_INVALID_ARG;
    ph_flags_client_t *s = flags_state(c);
    if (!s || !s->loader) return POSTHOG_E_INTERNAL;
    return posthog__loader_reload(s->loader, timeout_ms) == 0 ? POSTHOG_OK : POSTHOG_E_TIMEOUT;
}

void posthog__flags_fork_child(posthog_client_t *c) {
    ph_flags_client_t *s = atomic_load(&c->flags);
    if (!s) return;
    posthog__req_pool_atfork_child(s->pool);
    posthog__flags_store_fork_child(s->store); /* hazard slots of the parent's threads */
    posthog__loader_fork_child(s->loader);
    /* the parent's exposures were reported by the parent; the tracker's
     * locks may have been held by a thread the child does not have */
    ph_exposure_t *fresh = posthog__exposure_new(c->o->feature_flag_called_cache_size);
    if (fresh) s->seen = fresh; /* the old one is abandoned, not touched */
}

void posthog__flags_shutdown(posthog_client_t *c) {
    ph_flags_client_t *s = atomic_load(&c->flags);
    if (s) posthog__exposure_clear(s->seen);
}

/* ---------------------------------------------------------------- snapshot */

static int cmp_flag(const void *a, const void *b) {
    return strcmp(((const ph_flag_eval_t *)a)->key, ((const ph_flag_eval_t *)b)->key);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "k=v" pairs sorted, joined by \x1f: the same groups give the same text
 * whatever their order in the JSON. */
static char *groups_canonical(const cJSON *g) {
    size_t n = 0, len = 1;
    for (const cJSON *it = g ? g->child : NULL; it; it = it->next) n++;
    char **parts = calloc(n ? n : 1, sizeof *parts);
    char *out = NULL;
    if (!parts) return NULL;
    size_t i = 0;
    for (const cJSON *it = g ? g->child : NULL; it; it = it->next, i++) {
        char *v = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
        const char *vs = cJSON_IsString(it) ? it->valuestring : v ? v : "";
        size_t m = strlen(it->string) + strlen(vs) + 2;
        if ((parts[i] = malloc(m))) snprintf(parts[i], m, "%s=%s", it->string, vs);
        cJSON_free(v);
        if (!parts[i]) goto done;
        len += m;
    }
    qsort(parts, n, sizeof *parts, cmp_str);
    if (!(out = malloc(len))) goto done;
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        if (i) strcat(out, "\x1f");
        strcat(out, parts[i]);
    }
done:
    for (i = 0; i < n; i++) free(parts[i]);
    free(parts);
    return out;
}

/* Validates an optional JSON object argument. */
/* Whether json is one JSON object (strict, nesting as capture allows);
 * checked without building a tree. */
static bool is_object_text(const char *json) {
    int type = 0;
    return posthog__json_check(json, strlen(json), PH_JSON_MAX_DEPTH, &type, NULL, NULL) ==
               POSTHOG_OK &&
           type == PH_JSON_OBJECT;
}

static posthog_status_t check_object_arg(posthog_client_t *c, const char *what, const char *json,
                                         cJSON **out) {
    if (out) *out = NULL;
    if (!json) return POSTHOG_OK;
    cJSON *v = NULL;
    if (!is_object_text(json) || (out && !cJSON_IsObject(v = cJSON_Parse(json)))) {
        cJSON_Delete(v);
        posthog__log(c, POSTHOG_LOG_ERROR,
                     "feature flags: %s must be a JSON object (for example {\"plan\": \"pro\"}), "
                     "got %.60s",
                     what, json);
        return POSTHOG_E_INVALID_JSON;
    }
    if (out) *out = v;
    else cJSON_Delete(v);
    return POSTHOG_OK;
}

static bool tri(posthog_tristate_t t, bool dflt) {
    return t == POSTHOG_TRUE ? true : t == POSTHOG_FALSE ? false : dflt;
}

typedef struct {
    char **v;
    size_t n, cap;
} ph_keys_t;

static int keys_push(ph_keys_t *k, const char *key) {
    if (k->n == k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 8;
        char **v = realloc(k->v, nc * sizeof *v);
        if (!v) return -1;
        k->v = v;
        k->cap = nc;
    }
    char *d = NULL;
    if (key && !(d = strdup(key))) return -1;
    k->v[k->n++] = d;
    return 0;
}

static void keys_free(ph_keys_t *k) {
    for (size_t i = 0; i < k->n; i++) free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof *k);
}

static int push_eval(ph_flags_answer_t *a, const ph_flag_eval_t *v) {
    ph_flag_eval_t *f = realloc(a->flags, (a->n + 1) * sizeof *f);
    if (!f) return -1;
    a->flags = f;
    a->flags[a->n++] = *v;
    return 0;
}

/* Local results, evaluated into res[] (in[i] the key asked for, or NULL:
 * res[i].key): the inconclusive keys go into `ask` (and are counted by
 * cause), the decided ones into the snapshot in one piece, one array of
 * entries and one block for their keys, variants and payloads (reasons are
 * static text), instead of four allocations per flag. */
static posthog_status_t take_results(posthog_flags_t *f, ph_flags_client_t *s,
                                     const ph_flag_result_t *res, const char *const *in, size_t n,
                                     ph_keys_t *ask) {
    size_t decided = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const ph_flag_result_t *r = &res[i];
        const char *key = r->key ? r->key : in[i];
        if (r->value == PH_FLAG_INCONCLUSIVE) {
            ph_counter_add(&s->fallback[r->cause < CAUSES ? r->cause : 0], 1);
            if (keys_push(ask, in[i] ? in[i] : key)) return POSTHOG_E_NOMEM;
            continue;
        }
        decided++;
        bytes += strlen(key) + 1;
        if (r->value == PH_FLAG_VARIANT && r->variant) bytes += strlen(r->variant) + 1;
        if (r->payload) bytes += strlen(r->payload) + 1;
    }
    if (!decided) return POSTHOG_OK;
    ph_flag_eval_t *v = realloc(f->a.flags, (f->a.n + decided) * sizeof *v);
    if (!v) return POSTHOG_E_NOMEM;
    f->a.flags = v;
    char *p = malloc(bytes);
    if (!p) return POSTHOG_E_NOMEM;
    f->strs = p;
    for (size_t i = 0; i < n; i++) {
        const ph_flag_result_t *r = &res[i];
        if (r->value == PH_FLAG_INCONCLUSIVE) continue;
        ph_flag_eval_t *e = &f->a.flags[f->a.n++];
        *e = (ph_flag_eval_t){.id = r->flag_id, .version = -1, .has_experiment = r->has_experiment,
                              .locally_evaluated = true, .borrowed = true,
                              .enabled = r->value != PH_FLAG_FALSE,
                              .reason = (char *)posthog__flags_reason_description(r->reason)};
        const char *strs[3] = {r->key ? r->key : in[i],
                               r->value == PH_FLAG_VARIANT ? r->variant : NULL, r->payload};
        char **dst[3] = {&e->key, &e->variant, &e->payload};
        for (int k = 0; k < 3; k++) {
            if (!strs[k]) continue;
            size_t l = strlen(strs[k]) + 1;
            memcpy(p, strs[k], l);
            *dst[k] = p;
            p += l;
        }
    }
    ph_counter_add(&s->local, decided);
    return POSTHOG_OK;
}

/* *sorted: the snapshot's entries came out in key order. */
static posthog_status_t local_eval(posthog_flags_t *f, ph_flags_client_t *s,
                                   const ph_flags_defs_t *d, const posthog_flags_options_t *opts,
                                   ph_keys_t *ask, bool *sorted) {
    /* validated by snapshot_new; parsed only if a flag reads them */
    ph_flags_lazy_t pp;
    posthog__flags_lazy_init(&pp, opts->person_properties_json,
                             opts->person_properties_json ? strlen(opts->person_properties_json) : 0,
                             true);
    cJSON *groups = opts->groups_json ? cJSON_Parse(opts->groups_json) : NULL;
    cJSON *gp = opts->group_properties_json ? cJSON_Parse(opts->group_properties_json) : NULL;
    ph_flags_ctx_t ctx = {.distinct_id = f->did,
                          .device_id = opts->device_id,
                          .person_lazy = &pp,
                          .groups = groups,
                          .group_properties = gp};
    size_t total = posthog__flags_count(d), nkeys = 0;
    if (opts->flag_keys)
        while (opts->flag_keys[nkeys]) nkeys++;
    size_t n = opts->flag_keys ? nkeys : total;
    /* all flags: evaluated together (each dependency once), then listed in
     * key order, the first of duplicate keys only */
    size_t cap = opts->flag_keys ? n : 2 * total;
    ph_flag_result_t small[8];
    ph_flag_result_t *res = cap <= 8 ? small : malloc(cap * sizeof *res);
    const char **in = n ? calloc(n, sizeof *in) : NULL;
    posthog_status_t st = POSTHOG_E_NOMEM;
    if (res && (in || !n)) {
        if (opts->flag_keys) {
            for (size_t i = 0; i < n; i++) {
                in[i] = opts->flag_keys[i];
                posthog__flags_evaluate(d, in[i], &ctx, &res[i]);
            }
            *sorted = n < 2;
        } else {
            ph_flag_result_t *all = res + total;
            posthog__flags_evaluate_all(d, &ctx, all);
            size_t m = 0;
            for (size_t j = 0; j < total; j++) {
                size_t i = posthog__flags_by_key(d, j);
                if (m && !strcmp(res[m - 1].key, all[i].key)) continue;
                res[m++] = all[i];
            }
            n = m;
            *sorted = true;
        }
        st = take_results(f, s, res, in, n, ask);
    }
    if (res != small) free(res);
    free(in);
    f->a.minimal_events = posthog__flags_minimal_events(d);
    posthog__flags_lazy_free(&pp);
    cJSON_Delete(groups);
    cJSON_Delete(gp);
    return st;
}

static bool has_key(const ph_flags_answer_t *a, const char *key) {
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->flags[i].key, key)) return true;
    return false;
}

/* Adds the server's answer; a local value is never replaced by a remote one. */
static posthog_status_t merge_remote(posthog_flags_t *f, ph_flags_client_t *s, ph_flags_answer_t *r) {
    size_t local_n = f->a.n;
    for (size_t i = 0; i < r->n; i++) {
        if (local_n && has_key(&f->a, r->flags[i].key)) continue;
        if (push_eval(&f->a, &r->flags[i])) return POSTHOG_E_NOMEM;
        memset(&r->flags[i], 0, sizeof r->flags[i]); /* moved */
        ph_counter_add(&s->remote, 1);
    }
    f->a.errors |= r->errors;
    f->a.api_status = r->api_status;
    f->a.requests += r->requests;
    if (!f->a.request_id && r->request_id) {
        f->a.request_id = r->request_id;
        r->request_id = NULL;
    }
    if (r->evaluated_at >= 0) f->a.evaluated_at = r->evaluated_at;
    f->a.minimal_events |= r->minimal_events;
    if (r->nfailed) {
        f->a.failed = r->failed;
        f->a.nfailed = r->nfailed;
        r->failed = NULL;
        r->nfailed = 0;
    }
    snprintf(f->a.detail, sizeof f->a.detail, "%s", r->detail);
    return POSTHOG_OK;
}

static posthog_status_t snapshot_new(posthog_client_t *c, const char *did,
                                     const posthog_flags_options_t *opts, bool events_default,
                                     posthog_flags_t **out) {
    static const posthog_flags_options_t none = {0};
    if (!opts) opts = &none;
    posthog_flags_t *f = calloc(1, sizeof *f);
    if (!f) return POSTHOG_E_NOMEM;
    f->c = c;
    f->a.evaluated_at = -1;
    f->send_events = tri(opts->send_feature_flag_events, events_default);
    f->disable_geoip = tri(opts->disable_geoip, c->o->disable_geoip);
    cJSON *groups = NULL;
    posthog_status_t st = check_object_arg(c, "groups_json", opts->groups_json, &groups);
    if (st == POSTHOG_OK)
        st = check_object_arg(c, "person_properties_json", opts->person_properties_json, NULL);
    if (st == POSTHOG_OK)
        st = check_object_arg(c, "group_properties_json", opts->group_properties_json, NULL);
    if (st != POSTHOG_OK) {
        cJSON_Delete(groups);
        free(f);
        return st;
    }
    if (did && *did && !(f->did = strdup(did))) st = POSTHOG_E_NOMEM;
    if (opts->groups_json && !(f->groups_json = strdup(opts->groups_json))) st = POSTHOG_E_NOMEM;
    if (!(f->groups_canon = groups_canonical(groups))) st = POSTHOG_E_NOMEM;
    cJSON_Delete(groups);
    if (opts->flag_keys) {
        size_t n = 0;
        while (opts->flag_keys[n]) n++;
        if (!(f->keys = calloc(n + 1, sizeof *f->keys))) st = POSTHOG_E_NOMEM;
        for (size_t i = 0; f->keys && i < n; i++, f->nkeys++)
            if (!(f->keys[i] = strdup(opts->flag_keys[i]))) {
                st = POSTHOG_E_NOMEM;
                break;
            }
    }
    if (st != POSTHOG_OK) {
        posthog_flags_free(f);
        return st;
    }
    *out = f;
    /* no distinct_id or a disabled client: an empty snapshot, no request */
    if (!f->did || c->o->disabled) return POSTHOG_OK;
    ph_flags_client_t *s = flags_state(c);
    if (!s) return POSTHOG_E_NOMEM;
    /* local evaluation first; what it cannot decide goes to the server */
    ph_keys_t ask = {0};
    bool ask_all = true, sorted = false;
    const ph_flags_defs_t *d =
        s->store && !opts->force_remote ? posthog__flags_store_acquire(s->store) : NULL;
    if (d) {
        ask_all = false;
        st = local_eval(f, s, d, opts, &ask, &sorted);
        posthog__flags_store_release(s->store, d);
        if (st != POSTHOG_OK) {
            keys_free(&ask);
            return st;
        }
    }
    if (!opts->only_evaluate_locally && (ask_all || ask.n)) {
        if (!ask_all && keys_push(&ask, NULL)) { /* NULL-terminate */
            keys_free(&ask);
            return POSTHOG_E_NOMEM;
        }
        ph_flags_query_t q = {.distinct_id = f->did,
                              .groups_json = opts->groups_json,
                              .person_properties_json = opts->person_properties_json,
                              .group_properties_json = opts->group_properties_json,
                              .flag_keys = ask_all ? opts->flag_keys : (const char *const *)ask.v,
                              .device_id = opts->device_id,
                              .disable_geoip = f->disable_geoip};
        ph_flags_answer_t r;
        int rc = posthog__flags_remote(s->pool, c->o, &q, &r);
        ph_counter_add(&s->remote_requests, (uint64_t)r.requests);
        if (rc) {
            char err[128];
            posthog__flags_error_string(r.errors, r.api_status, err, sizeof err);
            posthog__log(c, POSTHOG_LOG_WARN,
                         "feature flags: /flags failed after %d request(s) (%s): %s", r.requests,
                         err, r.detail);
        } else if (r.errors) {
            char err[128];
            posthog__flags_error_string(r.errors, r.api_status, err, sizeof err);
            posthog__log(c, POSTHOG_LOG_WARN, "feature flags: the server reported %s", err);
        }
        size_t before = f->a.n;
        st = merge_remote(f, s, &r);
        if (f->a.n != before) sorted = false;
        posthog__flags_answer_free(&r);
        if (st != POSTHOG_OK) {
            keys_free(&ask);
            return st;
        }
    }
    keys_free(&ask);
    if (f->a.n > 1 && !sorted) qsort(f->a.flags, f->a.n, sizeof *f->a.flags, cmp_flag);
    /* a request-time key list scopes the snapshot too */
    if (f->keys) {
        size_t w = 0;
        for (size_t i = 0; i < f->a.n; i++) {
            bool want = false;
            for (size_t k = 0; k < f->nkeys && !want; k++) want = !strcmp(f->keys[k], f->a.flags[i].key);
            if (want) f->a.flags[w++] = f->a.flags[i];
            else posthog__flag_eval_free(&f->a.flags[i]);
        }
        f->a.n = w;
    }
    return POSTHOG_OK;
}

posthog_status_t posthog_evaluate_flags(posthog_client_t *c, const char *distinct_id,
                                        const posthog_flags_options_t *opts, posthog_flags_t **out) {
    if (!out) return POSTHOG_E_INVALID_ARG;
    *out = NULL;
    if (!c) return POSTHOG_E_INVALID_ARG;
    return snapshot_new(c, distinct_id, opts, c->o->send_feature_flag_events, out);
}

void posthog_flags_free(posthog_flags_t *f) {
    if (!f) return;
    posthog__flags_answer_free(&f->a);
    for (size_t i = 0; i < f->nkeys; i++) free(f->keys[i]);
    free(f->keys);
    free(f->did);
    free(f->groups_json);
    free(f->groups_canon);
    free(f->strs);
    free(f);
}

size_t posthog_flags_count(const posthog_flags_t *f) { return f ? f->a.n : 0; }

const char *posthog_flags_key(const posthog_flags_t *f, size_t i) {
    return f && i < f->a.n ? f->a.flags[i].key : NULL;
}

static const ph_flag_eval_t *lookup(const posthog_flags_t *f, const char *key) {
    if (!f || !key || !f->a.n) return NULL;
    ph_flag_eval_t probe = {.key = (char *)key};
    return bsearch(&probe, f->a.flags, f->a.n, sizeof probe, cmp_flag);
}

static bool was_failed(const posthog_flags_t *f, const char *key) {
    for (size_t i = 0; i < f->a.nfailed; i++)
        if (!strcmp(f->a.failed[i], key)) return true;
    return false;
}

/* The $feature_flag_error for one key, into buf. */
static void key_errors(const posthog_flags_t *f, const char *key, const ph_flag_eval_t *v,
                       char *buf, size_t cap) {
    unsigned e = f->a.errors & ~(unsigned)PH_FERR_EVALUATION_FAILED;
    if (was_failed(f, key)) e |= PH_FERR_EVALUATION_FAILED;
    else if (!v && !(e & (PH_FERR_TIMEOUT | PH_FERR_CONNECTION | PH_FERR_API | PH_FERR_UNKNOWN |
                          PH_FERR_QUOTA_LIMITED)))
        e |= PH_FERR_FLAG_MISSING;
    posthog__flags_error_string(e, f->a.api_status, buf, cap);
}

static void add_response(cJSON *o, const char *name, const ph_flag_eval_t *v) {
    if (!v) cJSON_AddNullToObject(o, name);
    else if (v->variant) cJSON_AddStringToObject(o, name, v->variant);
    else cJSON_AddBoolToObject(o, name, v->enabled);
}

/* Captures $feature_flag_called for this read, once per (distinct_id,
 * key, response, groups). */
static void report_exposure(posthog_flags_t *f, const char *key, const ph_flag_eval_t *v) {
    if (!f->send_events || !f->did) return;
    ph_flags_client_t *s = flags_state(f->c);
    if (!s) return;
    const char *resp = !v ? "\001null" : v->variant ? v->variant : v->enabled ? "\001true" : "\001false";
    uint64_t fp = posthog__fnv64(PH_FNV64_INIT, key, strlen(key) + 1);
    fp = posthog__fnv64(fp, resp, strlen(resp) + 1);
    fp = posthog__fnv64(fp, f->groups_canon, strlen(f->groups_canon));
    if (!posthog__exposure_first(s->seen, f->did, fp)) return;

    cJSON *p = cJSON_CreateObject();
    if (!p) goto fail;
    bool minimal = f->a.minimal_events && v && v->has_experiment == 0;
    cJSON_AddStringToObject(p, "$feature_flag", key);
    add_response(p, "$feature_flag_response", v);
    cJSON_AddBoolToObject(p, "locally_evaluated", v && v->locally_evaluated);
    if (!minimal) {
        char *fk = malloc(strlen(key) + 10);
        if (fk) {
            sprintf(fk, "$feature/%s", key);
            add_response(p, fk, v);
            free(fk);
        }
        if (v && v->payload) {
            cJSON *pl = cJSON_Parse(v->payload);
            if (pl) cJSON_AddItemToObject(p, "$feature_flag_payload", pl);
        }
    }
    if (v && v->id >= 0) cJSON_AddNumberToObject(p, "$feature_flag_id", (double)v->id);
    if (v && v->version >= 0) cJSON_AddNumberToObject(p, "$feature_flag_version", (double)v->version);
    /* as the SDKs: local values say "Evaluated locally" */
    if (v && (v->locally_evaluated || v->reason))
        cJSON_AddStringToObject(p, "$feature_flag_reason",
                                v->locally_evaluated ? "Evaluated locally" : v->reason);
    if (v && v->has_experiment >= 0)
        cJSON_AddBoolToObject(p, "$feature_flag_has_experiment", v->has_experiment);
    if (f->a.request_id) cJSON_AddStringToObject(p, "$feature_flag_request_id", f->a.request_id);
    if (f->a.evaluated_at >= 0)
        cJSON_AddNumberToObject(p, "$feature_flag_evaluated_at", (double)f->a.evaluated_at);
    char err[160];
    key_errors(f, key, v, err, sizeof err);
    if (err[0]) cJSON_AddStringToObject(p, "$feature_flag_error", err);
    if (f->disable_geoip) cJSON_AddBoolToObject(p, "$geoip_disable", true);
    char *props = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    if (!props) goto fail;
    posthog_capture_options_t co = {.groups_json = f->groups_json};
    posthog_status_t st = posthog_capture_opts(f->c, f->did, "$feature_flag_called", props, &co, NULL);
    cJSON_free(props);
    /* not captured (and counted by capture): a later read may try again */
    if (st != POSTHOG_OK) posthog__exposure_forget(s->seen, f->did, fp);
    return;
fail:
    posthog__exposure_forget(s->seen, f->did, fp);
}

static void fill(posthog_flag_t *out, const char *key, const ph_flag_eval_t *v) {
    memset(out, 0, sizeof *out);
    out->key = key;
    out->id = out->version = -1;
    if (!v) return;
    out->key = v->key;
    out->enabled = v->enabled;
    out->variant = v->variant;
    out->payload_json = v->payload;
    out->reason = v->reason;
    out->locally_evaluated = v->locally_evaluated;
    out->id = v->id;
    out->version = v->version;
}

int posthog_flags_get(posthog_flags_t *f, const char *key, posthog_flag_t *out) {
    if (!f || !key) {
        if (out) fill(out, key, NULL);
        return 0;
    }
    const ph_flag_eval_t *v = lookup(f, key);
    if (out) fill(out, key, v);
    report_exposure(f, key, v);
    return v != NULL;
}

int posthog_flags_peek(const posthog_flags_t *f, const char *key, posthog_flag_t *out) {
    const ph_flag_eval_t *v = key ? lookup(f, key) : NULL;
    if (out) fill(out, key, v);
    return v != NULL;
}

int posthog_flags_is_enabled(posthog_flags_t *f, const char *key, int default_value) {
    posthog_flag_t r;
    return posthog_flags_get(f, key, &r) ? r.enabled : default_value;
}

const char *posthog_flags_payload(const posthog_flags_t *f, const char *key) {
    const ph_flag_eval_t *v = lookup(f, key);
    return v ? v->payload : NULL;
}

const char *posthog_flags_error(const posthog_flags_t *f, char *buf, size_t cap) {
    if (!buf || !cap) return "";
    buf[0] = '\0';
    if (f) posthog__flags_error_string(f->a.errors, f->a.api_status, buf, cap);
    return buf;
}

/* ---------------------------------------------------------------- capture */

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *posthog__flags_event_props(const posthog_flags_t *f, const char *props) {
    cJSON *m = cJSON_CreateObject(), *active = cJSON_CreateArray();
    const char **on = calloc(f->a.n ? f->a.n : 1, sizeof *on);
    char *members = NULL, *out = NULL;
    size_t non = 0;
    if (!m || !active || !on) goto done;
    for (size_t i = 0; i < f->a.n; i++) {
        const ph_flag_eval_t *v = &f->a.flags[i];
        size_t kl = strlen(v->key) + 10;
        char *name = malloc(kl);
        if (!name) goto done;
        snprintf(name, kl, "$feature/%s", v->key);
        if (v->variant) cJSON_AddStringToObject(m, name, v->variant);
        else cJSON_AddBoolToObject(m, name, v->enabled);
        free(name);
        if (v->enabled) on[non++] = v->key;
    }
    qsort(on, non, sizeof *on, cmp_cstr);
    for (size_t i = 0; i < non; i++) cJSON_AddItemToArray(active, cJSON_CreateString(on[i]));
    cJSON_AddItemToObject(m, "$active_feature_flags", active);
    active = NULL;
    if (!(members = cJSON_PrintUnformatted(m))) goto done;
    out = posthog__json_append_members(props, members);
done:
    cJSON_Delete(m);
    cJSON_Delete(active);
    cJSON_free(members);
    free(on);
    return out;
}

/* ---------------------------------------------------------------- convenience */

static posthog_status_t one_flag(posthog_client_t *c, const char *key, const char *did,
                                 const posthog_flags_options_t *opts, bool events_default,
                                 posthog_flags_t **f) {
    *f = NULL;
    if (!c || !key || !*key) return POSTHOG_E_INVALID_ARG;
    posthog_flags_options_t o = opts ? *opts : (posthog_flags_options_t){0};
    const char *keys[] = {key, NULL};
    o.flag_keys = keys;
    return snapshot_new(c, did, &o, events_default, f);
}

/* One flag decided by the local definitions without building a snapshot:
 * no allocation unless JSON arguments are given or the exposure event is
 * new. Returns false (nothing done) when the slow path must decide. */
static bool local_fast(posthog_client_t *c, const char *key, const char *did,
                       const posthog_flags_options_t *opts, char *variant, size_t variant_size,
                       posthog_flag_state_t *out) {
    static const posthog_flags_options_t none = {0};
    if (!opts) opts = &none;
    ph_flags_client_t *s = atomic_load_explicit(&c->flags, memory_order_acquire);
    if (!s || !s->store || opts->force_remote || !did || !*did || c->o->disabled) return false;
    const ph_flags_defs_t *d = posthog__flags_store_acquire(s->store);
    if (!d) return false;
    cJSON *groups = NULL, *gp = NULL;
    bool done = false;
    /* person properties: checked and parsed only if the flag reads them (a
     * plain rollout does not); when they are read and are not a JSON
     * object, the slow path names the bad argument */
    ph_flags_lazy_t pp;
    posthog__flags_lazy_init(&pp, opts->person_properties_json,
                             opts->person_properties_json ? strlen(opts->person_properties_json) : 0,
                             false);
    if ((opts->groups_json && !cJSON_IsObject(groups = cJSON_Parse(opts->groups_json))) ||
        (opts->group_properties_json && !cJSON_IsObject(gp = cJSON_Parse(opts->group_properties_json))))
        goto out; /* the slow path names the bad argument */
    ph_flags_ctx_t ctx = {.distinct_id = did, .device_id = opts->device_id,
                          .person_lazy = &pp, .groups = groups, .group_properties = gp};
    ph_flag_result_t r;
    posthog__flags_evaluate(d, key, &ctx, &r);
    if (pp.invalid) goto out;                      /* the slow path names the bad argument */
    if (r.value == PH_FLAG_INCONCLUSIVE) goto out; /* the slow path counts it and asks the server */
    ph_counter_add(&s->local, 1);
    done = true;
    *out = r.value == PH_FLAG_FALSE ? POSTHOG_FLAG_DISABLED : POSTHOG_FLAG_ENABLED;
    if (r.value == PH_FLAG_VARIANT && r.variant && variant && variant_size)
        snprintf(variant, variant_size, "%s", r.variant);
    if (tri(opts->send_feature_flag_events, c->o->send_feature_flag_events)) {
        posthog_flags_t f = {.c = c, .did = (char *)did, .groups_json = (char *)opts->groups_json,
                             .send_events = true,
                             .disable_geoip = tri(opts->disable_geoip, c->o->disable_geoip)};
        f.a.evaluated_at = -1;
        f.a.minimal_events = posthog__flags_minimal_events(d);
        char *canon = groups ? groups_canonical(groups) : NULL;
        f.groups_canon = canon ? canon : (char *)"";
        ph_flag_eval_t v = {.key = (char *)key, .enabled = r.value != PH_FLAG_FALSE,
                            .variant = r.value == PH_FLAG_VARIANT ? (char *)r.variant : NULL,
                            .payload = (char *)r.payload, .id = r.flag_id, .version = -1,
                            .has_experiment = r.has_experiment, .locally_evaluated = true};
        report_exposure(&f, key, &v);
        free(canon);
    }
out:
    posthog__flags_store_release(s->store, d);
    posthog__flags_lazy_free(&pp);
    cJSON_Delete(groups);
    cJSON_Delete(gp);
    return done;
}

posthog_flag_state_t posthog_get_feature_flag(posthog_client_t *c, const char *key,
                                              const char *distinct_id,
                                              const posthog_flags_options_t *opts, char *variant,
                                              size_t variant_size) {
    if (variant && variant_size) variant[0] = '\0';
    if (!c || !key || !*key) return POSTHOG_FLAG_UNKNOWN;
    posthog_flag_state_t fast;
    if (local_fast(c, key, distinct_id, opts, variant, variant_size, &fast)) return fast;
    posthog_flags_t *f;
    if (one_flag(c, key, distinct_id, opts, c ? c->o->send_feature_flag_events : false, &f))
        return POSTHOG_FLAG_UNKNOWN;
    posthog_flag_t r;
    posthog_flag_state_t st = POSTHOG_FLAG_UNKNOWN;
    if (posthog_flags_get(f, key, &r)) {
        st = r.enabled ? POSTHOG_FLAG_ENABLED : POSTHOG_FLAG_DISABLED;
        if (r.variant && variant && variant_size) snprintf(variant, variant_size, "%s", r.variant);
    }
    posthog_flags_free(f);
    return st;
}

int posthog_is_feature_enabled(posthog_client_t *c, const char *key, const char *distinct_id,
                               const posthog_flags_options_t *opts) {
    posthog_flag_state_t st = posthog_get_feature_flag(c, key, distinct_id, opts, NULL, 0);
    return st == POSTHOG_FLAG_UNKNOWN ? -1 : st == POSTHOG_FLAG_ENABLED;
}

char *posthog_get_feature_flag_payload(posthog_client_t *c, const char *key,
                                       const char *distinct_id,
                                       const posthog_flags_options_t *opts) {
    posthog_flags_t *f;
    /* like posthog-python: no $feature_flag_called unless asked for */
    if (one_flag(c, key, distinct_id, opts, false, &f)) return NULL;
    char *out = NULL;
    const ph_flag_eval_t *v = lookup(f, key);
    if (v && v->payload) {
        if (f->send_events) report_exposure(f, key, v);
        out = strdup(v->payload);
    }
    posthog_flags_free(f);
    return out;
}
