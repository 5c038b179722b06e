/*
 * The matcher: one flag, or all flags, for one context, on a compiled
 * ph_flags_defs_t. Server order (flag_matching.rs get_match): disabled ->
 * config version -> dependencies -> experience continuity -> group ->
 * early-access enrollment / legacy super condition -> holdout -> the
 * conditions in stored order (first match wins; early_exit) -> variant.
 * Inconclusive conditions are handled the way that keeps the server's
 * answer: a later match decides only when every inconclusive condition
 * before it would have given the same value. Reads only; no lock; no
 * allocation unless a regex runs or a dependency closure is larger than
 * PH_FLAGS_STACK_MEMO.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flags_int.h"
#include "sha1.h"

typedef struct {
    const ph_flags_defs_t *d;
    const ph_flags_ctx_t *ctx;
    int64_t now_ms;
    const char *distinct_id;
    struct ev_device *dev;       /* the device id, resolved on first use */
    ph_flag_result_t *all;       /* evaluate_all: results by flag index */
    const int32_t *closure;      /* single evaluation: the memo's flags */
    size_t nclosure;
    ph_flag_result_t *cres;      /* and their results */
} ev_t;

/* Who a condition is about: its properties and its bucketing id. */
typedef struct {
    int32_t agg;                 /* -1 person, else group type index */
    const cJSON *props;
    const char *extra_key, *extra_val; /* distinct_id / $group_key */
    const char *bucket;          /* NULL: cannot be resolved */
    char keybuf[64];             /* a numeric group key as text */
} ident_t;

typedef enum { C_MATCH, C_NO_MATCH, C_OUT_OF_ROLLOUT, C_INCONCLUSIVE, C_SKIPPED } cres_t;

typedef struct {
    ph_flag_cause_t cause;
    const char *detail;
} why_t;

static int64_t now_ms_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The evaluation's clock: the context's, else read once, when a date
 * operator first needs it (most evaluations never do: no clock call). The
 * ev_t is the evaluator's own local object, so caching into it is fine. */
static int64_t ev_now(const ev_t *e) {
    if (!e->now_ms) ((ev_t *)e)->now_ms = now_ms_real();
    return e->now_ms;
}

/* The clock for filter p: only the date operators read it. */
static int64_t filter_now(const ev_t *e, const ph_filter_t *p) {
    return p->op == PH_OP_IS_DATE_EXACT || p->op == PH_OP_IS_DATE_AFTER ||
                   p->op == PH_OP_IS_DATE_BEFORE
               ? ev_now(e)
               : 0;
}

/* An empty identifier hashes to 0 (the server's rule). */
static double bucket_hash(const char *prefix, size_t plen, const char *id, const char *salt) {
    if (!*id) return 0.0;
    return posthog__flags_hash_n(prefix, plen, id, strlen(id), salt, strlen(salt));
}

static const cJSON *obj_get(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* The person properties: the caller's tree, or its text parsed now (once
 * per context, and only by a flag that reads them). */
static const cJSON *person_props(const ev_t *e) {
    return e->ctx->person_properties ? e->ctx->person_properties
                                     : posthog__flags_lazy_get(e->ctx->person_lazy);
}

struct ev_device {
    const char *id;
    bool resolved;
};

/* The device id (the context's, else person_properties.$device_id, as the
 * server does), or NULL; looked up only by device-bucketed flags. */
static const char *device_id(const ev_t *e) {
    if (!e->dev->resolved) {
        e->dev->resolved = true;
        const cJSON *dv = obj_get(person_props(e), "$device_id");
        if (cJSON_IsString(dv) && *dv->valuestring) e->dev->id = dv->valuestring;
    }
    return e->dev->id;
}

/* Resolve agg into *id. Returns false when the group type is unknown or
 * the caller did not pass that group. */
static bool resolve(const ev_t *e, const ph_flag_t *f, int32_t agg, ident_t *id) {
    id->agg = agg;
    if (agg < 0) {
        id->props = NULL; /* person_props(e), read when a filter needs it */
        id->extra_key = "distinct_id";
        id->extra_val = e->distinct_id;
        id->bucket = f->bucket_device ? device_id(e) : e->distinct_id;
        return true;
    }
    id->props = NULL;
    id->extra_key = id->extra_val = id->bucket = NULL;
    const char *name = (size_t)agg < e->d->ngroup_names ? e->d->group_names[agg] : NULL;
    const cJSON *key = name ? obj_get(e->ctx->groups, name) : NULL;
    if (!key) return false;
    /* the server: a non-empty string or a number */
    if (!(cJSON_IsString(key) && *key->valuestring) && !cJSON_IsNumber(key)) return false;
    const char *k = posthog__flags_value_text(key, id->keybuf, sizeof id->keybuf);
    if (!k) return false;
    id->props = obj_get(e->ctx->group_properties, name);
    id->extra_key = "$group_key";
    id->extra_val = k;
    id->bucket = k;
    return true;
}

static const ph_flag_result_t *dep_result(const ev_t *e, int32_t g) {
    if (e->all) return &e->all[g];
    for (size_t i = 0; i < e->nclosure; i++)
        if (e->closure[i] == g) return &e->cres[i];
    return NULL;
}

static int match_filter(const ev_t *e, const ph_filter_t *p, const ident_t *id, int depth, why_t *w);

static int match_group(const ev_t *e, const ph_pgroup_t *g, int depth, why_t *w) {
    if (g->bad_type) {
        w->cause = PH_INCONCLUSIVE_UNKNOWN_PROPERTY_TYPE;
        w->detail = "cohort group type";
        return -1;
    }
    if (!g->nkids) return 1;
    bool unknown = false;
    why_t first = {PH_INCONCLUSIVE_NONE, NULL};
    ident_t person;
    if (!resolve(e, &(ph_flag_t){0}, -1, &person)) return -1;
    for (size_t i = 0; i < g->nkids; i++) {
        const ph_pgroup_t *k = &g->kids[i];
        why_t kw = {PH_INCONCLUSIVE_NONE, NULL};
        int r = k->is_leaf ? match_filter(e, &k->leaf, &person, depth, &kw)
                           : match_group(e, k, depth, &kw);
        if (r >= 0 && k->is_leaf && k->negation) r = !r;
        if (r < 0) {
            if (!unknown) first = kw;
            unknown = true;
            continue;
        }
        if (g->is_or && r == 1) return 1; /* one hit decides an OR */
        if (!g->is_or && r == 0) return 0; /* one miss decides an AND */
    }
    if (unknown) {
        *w = first;
        return -1;
    }
    return !g->is_or;
}

static int match_cohort(const ev_t *e, const ph_filter_t *p, int depth, why_t *w) {
    if (p->cohort < 0) {
        w->cause = PH_INCONCLUSIVE_STATIC_COHORT;
        w->detail = p->cohort_id ? p->cohort_id : p->key;
        return -1;
    }
    if (depth >= PH_FLAGS_MAX_DEPTH) {
        w->cause = PH_INCONCLUSIVE_COHORT_DEPTH;
        w->detail = e->d->cohorts[p->cohort].id;
        return -1;
    }
    int r = match_group(e, &e->d->cohorts[p->cohort].root, depth + 1, w);
    if (r >= 0 && p->op == PH_OP_NOT_IN) r = !r;
    return r;
}

static int match_dependency(const ev_t *e, const ph_filter_t *p, why_t *w) {
    if (p->dep_malformed) return 0; /* the server: wrong operator or value never matches */
    const ph_flag_result_t *r = p->dep_flag >= 0 ? dep_result(e, p->dep_flag) : NULL;
    if (!r || r->value == PH_FLAG_INCONCLUSIVE) {
        w->cause = PH_INCONCLUSIVE_DEPENDENCY;
        w->detail = p->dep_flag >= 0 ? e->d->flags[p->dep_flag].key : p->key;
        return -1;
    }
    if (p->dep_expect_bool) return (r->value != PH_FLAG_FALSE) == p->dep_expect;
    return r->value == PH_FLAG_VARIANT && !strcmp(r->variant, p->dep_expect_str);
}

static int match_filter(const ev_t *e, const ph_filter_t *p, const ident_t *id, int depth, why_t *w) {
    int r;
    switch (p->type) {
    case PH_PT_PERSON: /* also inside a group condition: the person's */
        r = posthog__flags_match_property(p, person_props(e), true, "distinct_id", e->distinct_id,
                                          filter_now(e, p), &w->cause);
        break;
    case PH_PT_GROUP: {
        int32_t gti = p->group_type_index >= 0 ? p->group_type_index : id->agg;
        ident_t g;
        if (gti == id->agg && gti >= 0) {
            g = *id;
            if (g.extra_val == id->keybuf) g.extra_val = g.keybuf;
        } else if (gti < 0 || !resolve(e, &(ph_flag_t){0}, gti, &g)) {
            /* no such group in the request: the server has no properties */
            r = posthog__flags_match_property(p, NULL, false, NULL, NULL, filter_now(e, p), &w->cause);
            break;
        }
        r = posthog__flags_match_property(p, g.props, true, g.extra_key, g.extra_val, filter_now(e, p),
                                          &w->cause);
        break;
    }
    case PH_PT_COHORT: return match_cohort(e, p, depth, w);
    case PH_PT_FLAG: return match_dependency(e, p, w);
    default:
        w->cause = PH_INCONCLUSIVE_UNKNOWN_PROPERTY_TYPE;
        r = -1;
        break;
    }
    if (r < 0 && !w->detail) w->detail = w->cause == PH_INCONCLUSIVE_UNKNOWN_OPERATOR ? p->op_name : p->key;
    return r;
}

/* Properties (AND), then the rollout. */
static cres_t eval_condition(const ev_t *e, const ph_flag_t *f, const ph_condition_t *k,
                             ident_t *id, why_t *w) {
    int32_t agg = k->agg == -2 ? f->agg : k->agg;
    if (!resolve(e, f, agg, id)) return C_SKIPPED; /* its group was not passed */
    bool unknown = false;
    why_t first = {PH_INCONCLUSIVE_NONE, NULL};
    for (size_t i = 0; i < k->nprops; i++) {
        why_t pw = {PH_INCONCLUSIVE_NONE, NULL};
        int r = match_filter(e, &k->props[i], id, 0, &pw);
        if (r == 0) return C_NO_MATCH; /* a definite miss decides the AND */
        if (r < 0 && !unknown) {
            unknown = true;
            first = pw;
        }
    }
    if (unknown) {
        *w = first;
        return C_INCONCLUSIVE;
    }
    if (k->rollout >= 100.0) return C_MATCH; /* no hash at 100%, even without an id */
    if (!id->bucket) return C_OUT_OF_ROLLOUT;
    double h = bucket_hash(f->prefix, f->prefix_len, id->bucket, "");
    return h <= k->rollout / 100.0 ? C_MATCH : C_OUT_OF_ROLLOUT;
}

/* The value of a matched condition (k may be NULL: no override). */
static void set_value(const ph_flag_t *f, const ph_condition_t *k, const ident_t *id,
                      ph_flag_result_t *out) {
    out->value = PH_FLAG_TRUE;
    out->payload = f->payload_true;
    if (!f->nvariants) return;
    const ph_variant_t *v = NULL;
    if (k && k->variant_valid) {
        for (size_t i = 0; i < f->nvariants && !v; i++)
            if (!strcmp(f->variants[i].key, k->variant)) v = &f->variants[i];
    } else {
        if (!id->bucket) {
            out->value = PH_FLAG_INCONCLUSIVE;
            out->cause = PH_INCONCLUSIVE_MISSING_BUCKETING_ID;
            out->detail = "device_id";
            out->payload = NULL;
            return;
        }
        double h = bucket_hash(f->prefix, f->prefix_len, id->bucket, "variant");
        for (size_t i = 0; i < f->nvariants && !v; i++)
            if (h < f->variants[i].hi) v = &f->variants[i];
    }
    if (!v) return; /* the percentages leave h unassigned: true, no variant */
    out->value = PH_FLAG_VARIANT;
    out->variant = v->key;
    out->payload = v->payload;
}

static void inconclusive(ph_flag_result_t *out, ph_flag_cause_t c, const char *detail) {
    out->value = PH_FLAG_INCONCLUSIVE;
    out->reason = PH_REASON_NONE;
    out->cause = c;
    out->detail = detail;
    out->variant = NULL;
    out->payload = NULL;
}

static void decided(ph_flag_result_t *out, bool on, ph_flag_reason_t r, int32_t cond) {
    out->value = on ? PH_FLAG_TRUE : PH_FLAG_FALSE;
    out->reason = r;
    out->condition_index = cond;
}

/* Early access (feature_enrollment) or the legacy super condition.
 * Returns true when it decided *out. */
static bool super_condition(const ev_t *e, const ph_flag_t *f, ph_flag_result_t *out) {
    if (!f->enrollment && !f->super_cond) return false;
    const cJSON *person = person_props(e);
    if (f->enrollment) {
        const cJSON *v = obj_get(person, f->enroll_key);
        if (!v) {
            inconclusive(out, PH_INCONCLUSIVE_MISSING_PROPERTY, f->enroll_key);
            return true;
        }
        bool on = cJSON_IsTrue(v) || (cJSON_IsString(v) && !strcmp(v->valuestring, "true"));
        /* the server answers no variant here, even on a multivariate flag */
        decided(out, on, PH_REASON_SUPER_CONDITION_VALUE, 0);
        if (on) out->payload = f->payload_true;
        return true;
    }
    if (!f->super_cond) return false;
    bool present = false;
    for (size_t i = 0; i < f->super_cond->nprops && !present; i++)
        present = obj_get(person, f->super_cond->props[i].key) != NULL;
    if (!present) {
        inconclusive(out, PH_INCONCLUSIVE_MISSING_PROPERTY,
                     f->super_cond->nprops ? f->super_cond->props[0].key : NULL);
        return true;
    }
    why_t w = {PH_INCONCLUSIVE_NONE, NULL};
    ident_t sid;
    cres_t r = eval_condition(e, f, f->super_cond, &sid, &w);
    if (r == C_INCONCLUSIVE) {
        inconclusive(out, w.cause, w.detail);
        return true;
    }
    decided(out, r == C_MATCH, PH_REASON_SUPER_CONDITION_VALUE, 0);
    if (r == C_MATCH) out->payload = f->payload_true;
    return true;
}

static int reason_score(ph_flag_reason_t r) {
    return r == PH_REASON_NO_GROUP_TYPE ? 2 : r == PH_REASON_OUT_OF_ROLLOUT_BOUND ? 1 : 0;
}

/* The effective override of a condition: what decides its variant. */
static bool same_outcome(const ph_flag_t *f, const ph_condition_t *a, int32_t a_agg,
                         const ph_condition_t *b, int32_t b_agg) {
    if (!f->nvariants) return true; /* true either way, same payload */
    const char *va = a->variant_valid ? a->variant : NULL;
    const char *vb = b->variant_valid ? b->variant : NULL;
    if (va || vb) return va && vb && !strcmp(va, vb);
    return a_agg == b_agg; /* the same hash of the same id */
}

static void eval_flag(const ev_t *e, size_t fi, ph_flag_result_t *out) {
    const ph_flag_t *f = &e->d->flags[fi];
    memset(out, 0, sizeof *out);
    out->key = f->key;
    out->flag_id = f->id;
    out->has_experiment = f->has_experiment;
    out->condition_index = -1;
    if (f->malformed) {
        inconclusive(out, PH_INCONCLUSIVE_MALFORMED, f->malformed_detail);
        return;
    }
    if (f->deleted || !f->active) {
        decided(out, false, PH_REASON_FLAG_DISABLED, -1);
        return;
    }
    if (f->bad_version) {
        inconclusive(out, PH_INCONCLUSIVE_CONFIG_VERSION, "filters.version");
        return;
    }
    if (f->in_cycle || f->dep_missing) {
        decided(out, false, PH_REASON_MISSING_DEPENDENCY, -1);
        return;
    }
    if (f->eec) {
        inconclusive(out, PH_INCONCLUSIVE_EXPERIENCE_CONTINUITY, "ensure_experience_continuity");
        return;
    }
    ident_t id;
    bool have_id = resolve(e, f, f->agg, &id);
    if (super_condition(e, f, out)) return;
    if (f->has_holdout) {
        if (!have_id || !id.bucket) {
            inconclusive(out, PH_INCONCLUSIVE_MISSING_BUCKETING_ID, "device_id");
            return;
        }
        if (f->holdout_pct >= 100.0 ||
            bucket_hash("holdout-", 8, id.bucket, "") <= f->holdout_pct / 100.0) {
            out->value = PH_FLAG_VARIANT;
            out->variant = f->holdout_variant;
            out->payload = f->holdout_payload;
            out->reason = PH_REASON_HOLDOUT_CONDITION_VALUE;
            return;
        }
    }
    ph_flag_reason_t reason = PH_REASON_NO_CONDITION_MATCH;
    int32_t reason_idx = -1;
    const ph_condition_t *pend = NULL; /* the first inconclusive condition */
    int32_t pend_agg = 0;
    bool pend_mixed = false;
    why_t pend_why = {PH_INCONCLUSIVE_NONE, NULL};
    for (size_t i = 0; i < f->nconds; i++) {
        const ph_condition_t *k = &f->conds[i];
        int32_t agg = k->agg == -2 ? f->agg : k->agg;
        why_t w = {PH_INCONCLUSIVE_NONE, NULL};
        ident_t cid;
        /* the server skips a person condition of a device-bucketed flag
         * without a device id as out of rollout, whatever its percentage */
        bool no_device = agg < 0 && f->bucket_device && !device_id(e);
        cres_t r = no_device ? C_OUT_OF_ROLLOUT : eval_condition(e, f, k, &cid, &w);
        if (r == C_INCONCLUSIVE) {
            if (!pend) {
                pend = k;
                pend_agg = agg;
                pend_why = w;
            } else if (!same_outcome(f, pend, pend_agg, k, agg)) {
                pend_mixed = true;
            }
            continue;
        }
        if (r == C_MATCH) {
            /* the server may have matched the inconclusive one first: decide
             * only when that would have given the same value */
            if (pend && (f->early_exit || pend_mixed || !same_outcome(f, pend, pend_agg, k, agg))) {
                inconclusive(out, pend_why.cause, pend_why.detail);
                return;
            }
            decided(out, true, PH_REASON_CONDITION_MATCH, (int32_t)i);
            set_value(f, k, &cid, out);
            return;
        }
        if (r == C_OUT_OF_ROLLOUT && !no_device) {
            if (f->early_exit) {
                if (pend) {
                    inconclusive(out, pend_why.cause, pend_why.detail);
                    return;
                }
                decided(out, false, PH_REASON_OUT_OF_ROLLOUT_BOUND, (int32_t)i);
                return;
            }
        }
        /* the server keeps the highest-priority reason (no group type >
         * out of rollout > no match); a tie takes the later condition */
        ph_flag_reason_t now = r == C_SKIPPED          ? PH_REASON_NO_GROUP_TYPE
                               : r == C_OUT_OF_ROLLOUT ? PH_REASON_OUT_OF_ROLLOUT_BOUND
                                                       : PH_REASON_NO_CONDITION_MATCH;
        if (reason_score(reason) <= reason_score(now)) {
            reason = now;
            reason_idx = (int32_t)i;
        }
    }
    if (pend) {
        inconclusive(out, pend_why.cause, pend_why.detail);
        return;
    }
    decided(out, false, reason, reason_idx);
}

static void ev_init(ev_t *e, struct ev_device *dev, const ph_flags_defs_t *d,
                    const ph_flags_ctx_t *ctx) {
    memset(e, 0, sizeof *e);
    e->d = d;
    e->ctx = ctx;
    e->now_ms = ctx->now_ms; /* 0: the real clock, read by ev_now when needed */
    e->distinct_id = ctx->distinct_id ? ctx->distinct_id : "";
    dev->id = ctx->device_id && *ctx->device_id ? ctx->device_id : NULL;
    dev->resolved = dev->id != NULL;
    e->dev = dev;
}

void posthog__flags_evaluate_index(const ph_flags_defs_t *d, size_t i, const ph_flags_ctx_t *ctx,
                                   ph_flag_result_t *out) {
    static const ph_flags_ctx_t empty = {0};
    if (!ctx) ctx = &empty;
    if (!d || i >= d->nflags) {
        memset(out, 0, sizeof *out);
        out->condition_index = -1;
        out->flag_id = -1;
        out->has_experiment = -1;
        inconclusive(out, PH_INCONCLUSIVE_UNKNOWN_FLAG, NULL);
        return;
    }
    ev_t e;
    struct ev_device dev;
    ev_init(&e, &dev, d, ctx);
    const ph_flag_t *f = &d->flags[i];
    ph_flag_result_t stack[PH_FLAGS_STACK_MEMO];
    ph_flag_result_t *memo = stack;
    if (f->nclosure > PH_FLAGS_STACK_MEMO && !(memo = malloc(f->nclosure * sizeof *memo))) {
        memset(out, 0, sizeof *out);
        out->key = f->key;
        out->flag_id = f->id;
        out->has_experiment = f->has_experiment;
        out->condition_index = -1;
        inconclusive(out, PH_INCONCLUSIVE_DEPENDENCY, "out of memory");
        return;
    }
    e.closure = f->closure;
    e.nclosure = f->nclosure;
    e.cres = memo;
    for (size_t j = 0; j < f->nclosure; j++) eval_flag(&e, (size_t)f->closure[j], &memo[j]);
    eval_flag(&e, i, out);
    if (memo != stack) free(memo);
}

void posthog__flags_evaluate(const ph_flags_defs_t *d, const char *key, const ph_flags_ctx_t *ctx,
                             ph_flag_result_t *out) {
    long i = posthog__flags_find(d, key);
    posthog__flags_evaluate_index(d, i < 0 ? (size_t)-1 : (size_t)i, ctx, out);
    if (i < 0) out->detail = key;
}

void posthog__flags_evaluate_all(const ph_flags_defs_t *d, const ph_flags_ctx_t *ctx,
                                 ph_flag_result_t *out) {
    static const ph_flags_ctx_t empty = {0};
    if (!d) return;
    ev_t e;
    struct ev_device dev;
    ev_init(&e, &dev, d, ctx ? ctx : &empty);
    e.all = out;
    for (size_t j = 0; j < d->nflags; j++) eval_flag(&e, (size_t)d->order[j], &out[d->order[j]]);
}

const char *posthog__flags_reason_code(ph_flag_reason_t r) {
    switch (r) {
    case PH_REASON_CONDITION_MATCH: return "condition_match";
    case PH_REASON_NO_CONDITION_MATCH: return "no_condition_match";
    case PH_REASON_OUT_OF_ROLLOUT_BOUND: return "out_of_rollout_bound";
    case PH_REASON_NO_GROUP_TYPE: return "no_group_type";
    case PH_REASON_SUPER_CONDITION_VALUE: return "super_condition_value";
    case PH_REASON_HOLDOUT_CONDITION_VALUE: return "holdout_condition_value";
    case PH_REASON_FLAG_DISABLED: return "flag_disabled";
    case PH_REASON_MISSING_DEPENDENCY: return "missing_dependency";
    default: return "";
    }
}

const char *posthog__flags_reason_description(ph_flag_reason_t r) {
    switch (r) {
    case PH_REASON_CONDITION_MATCH: return "Matched condition set";
    case PH_REASON_NO_CONDITION_MATCH: return "No matching condition set";
    case PH_REASON_OUT_OF_ROLLOUT_BOUND: return "Out of rollout bound";
    case PH_REASON_NO_GROUP_TYPE: return "No group type";
    case PH_REASON_SUPER_CONDITION_VALUE: return "Super condition value";
    case PH_REASON_HOLDOUT_CONDITION_VALUE: return "Holdout condition value";
    case PH_REASON_FLAG_DISABLED: return "Feature flag is disabled";
    case PH_REASON_MISSING_DEPENDENCY: return "Missing dependency";
    default: return "";
    }
}

const char *posthog__flags_cause_name(ph_flag_cause_t c) {
    static const char *const names[] = {
        "none",          "unknown_flag",          "config_version",   "experience_continuity",
        "static_cohort", "unknown_operator",      "unknown_property_type", "missing_property",
        "missing_bucketing_id", "regex_unsupported", "unsupported_value", "non_ascii_case",
        "dependency",    "cohort_depth",          "malformed",
    };
    return (size_t)c < sizeof names / sizeof names[0] ? names[c] : "";
}
