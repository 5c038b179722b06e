/*
 * The compiler: a `/flags/definitions` body -> an immutable
 * ph_flags_defs_t. Everything evaluation needs is parsed here once per
 * change: operators, numbers, dates, semvers, regexes, the cumulative
 * variant table, payload texts, cohort trees with resolved references, the
 * key index, and the dependency graph (closures in evaluation order; cycles
 * and missing dependencies flagged). A bad flag is compiled as "malformed"
 * (inconclusive) instead of failing the whole body. Runs on the caller's
 * thread; touches no shared state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags_int.h"

typedef struct {
    bool oom;
    bool uses_regex;
    int matching_version; /* property_matching_version: 1 (absent) the SDKs'
                             truthy exact matching, 2 strict, 0 unknown */
    char **cohort_ids; /* cohort ids as text, index = cohort index */
    size_t ncohorts;
    const cJSON *flags_json; /* the "flags" array, for dependency lookups */
    char **flag_keys;
    int64_t *flag_ids;
    size_t nflags;
} cc_t;

static char *xstrdup(cc_t *c, const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) c->oom = true;
    return d;
}

static void *xcalloc(cc_t *c, size_t n, size_t sz) {
    if (!n) return NULL;
    void *p = calloc(n, sz);
    if (!p) c->oom = true;
    return p;
}

static char *lower_dup(cc_t *c, const char *s) {
    char *d = xstrdup(c, s);
    if (d)
        for (char *p = d; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    return d;
}

/* The server's string form (strings as they are, other values as JSON). */
static char *text_dup(cc_t *c, const cJSON *v) {
    if (cJSON_IsString(v)) return xstrdup(c, v->valuestring);
    char buf[128];
    const char *t = posthog__flags_value_text(v, buf, sizeof buf);
    if (t) return xstrdup(c, t);
    char *p = cJSON_PrintUnformatted(v);
    if (!p) c->oom = true;
    return p;
}

static const struct {
    const char *name;
    ph_op_t op;
} OPS[] = {
    {"exact", PH_OP_EXACT},
    {"is_not", PH_OP_IS_NOT},
    {"is_set", PH_OP_IS_SET},
    {"is_not_set", PH_OP_IS_NOT_SET},
    {"icontains", PH_OP_ICONTAINS},
    {"not_icontains", PH_OP_NOT_ICONTAINS},
    {"icontains_multi", PH_OP_ICONTAINS_MULTI},
    {"not_icontains_multi", PH_OP_NOT_ICONTAINS_MULTI},
    {"starts_with", PH_OP_STARTS_WITH},
    {"not_starts_with", PH_OP_NOT_STARTS_WITH},
    {"ends_with", PH_OP_ENDS_WITH},
    {"not_ends_with", PH_OP_NOT_ENDS_WITH},
    {"regex", PH_OP_REGEX},
    {"not_regex", PH_OP_NOT_REGEX},
    {"gt", PH_OP_GT},
    {"gte", PH_OP_GTE},
    {"lt", PH_OP_LT},
    {"lte", PH_OP_LTE},
    {"between", PH_OP_BETWEEN},
    {"not_between", PH_OP_NOT_BETWEEN},
    {"semver_gt", PH_OP_SEMVER_GT},
    {"semver_gte", PH_OP_SEMVER_GTE},
    {"semver_lt", PH_OP_SEMVER_LT},
    {"semver_lte", PH_OP_SEMVER_LTE},
    {"semver_eq", PH_OP_SEMVER_EQ},
    {"semver_neq", PH_OP_SEMVER_NEQ},
    {"semver_tilde", PH_OP_SEMVER_TILDE},
    {"semver_caret", PH_OP_SEMVER_CARET},
    {"semver_wildcard", PH_OP_SEMVER_WILDCARD},
    {"is_date_exact", PH_OP_IS_DATE_EXACT},
    {"is_date_after", PH_OP_IS_DATE_AFTER},
    {"is_date_before", PH_OP_IS_DATE_BEFORE},
    {"in", PH_OP_IN},
    {"not_in", PH_OP_NOT_IN},
    {"flag_evaluates_to", PH_OP_FLAG_EVALUATES_TO},
};

static ph_op_t op_of(const char *name) {
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(OPS[i].name, name)) return OPS[i].op;
    return PH_OP_UNKNOWN;
}

static bool truthy_or_falsy(const cJSON *v) {
    if (cJSON_IsBool(v)) return true;
    if (cJSON_IsString(v))
        return !strcasecmp(v->valuestring, "true") || !strcasecmp(v->valuestring, "false");
    if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next)
            if (!truthy_or_falsy(e)) return false;
        return true;
    }
    return false;
}

static bool truthy_value(const cJSON *v) {
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (cJSON_IsString(v)) return !strcasecmp(v->valuestring, "true");
    if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next)
            if (!truthy_value(e)) return false;
        return true;
    }
    return false;
}

static bool to_f64(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    char buf[128];
    const char *t = posthog__flags_value_text(v, buf, sizeof buf);
    return t && posthog__flags_parse_f64(t, out);
}

static void compile_strings(cc_t *c, ph_filter_t *f) {
    const cJSON *v = f->value;
    bool per_element = cJSON_IsArray(v) &&
                       (f->op == PH_OP_EXACT || f->op == PH_OP_IS_NOT ||
                        f->op == PH_OP_ICONTAINS_MULTI || f->op == PH_OP_NOT_ICONTAINS_MULTI);
    f->value_is_array = cJSON_IsArray(v);
    if (per_element) {
        size_t n = (size_t)cJSON_GetArraySize(v);
        f->strs = xcalloc(c, n ? n : 1, sizeof *f->strs);
        if (!f->strs) return;
        for (const cJSON *e = v->child; e; e = e->next) {
            char *t = text_dup(c, e);
            if (!t) return;
            f->strs[f->nstrs++] = lower_dup(c, t);
            free(t);
        }
        return;
    }
    f->strs = xcalloc(c, 1, sizeof *f->strs);
    char *t = text_dup(c, v);
    if (f->strs && t) f->strs[f->nstrs++] = lower_dup(c, t);
    free(t);
}

static void compile_regex(cc_t *c, ph_filter_t *f) {
    char *pat = text_dup(c, f->value);
    if (!pat) return;
    size_t cap = strlen(pat) * 8 + 64;
    char *ere = malloc(cap);
    if (!ere) {
        c->oom = true;
        free(pat);
        return;
    }
    bool icase;
    int t = posthog__flags_regex_translate(pat, ere, cap, &icase);
    if (t < 0) {
        f->re_state = PH_RE_INVALID;
    } else if (t == 0 ||
               regcomp(&f->re, ere, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0)) != 0) {
        f->re_state = PH_RE_UNSUPPORTED;
    } else {
        f->re_state = PH_RE_OK;
        c->uses_regex = true;
    }
    free(ere);
    free(pat);
}

static void compile_dependency(cc_t *c, ph_filter_t *f, const cJSON *p) {
    f->dep_flag = -1;
    for (size_t i = 0; i < c->nflags; i++)
        if (c->flag_keys[i] && !strcmp(c->flag_keys[i], f->key)) {
            f->dep_flag = (int32_t)i;
            break;
        }
    if (f->dep_flag < 0) { /* the server's filters name the flag by id */
        char *end;
        long long id = strtoll(f->key, &end, 10);
        if (*f->key && !*end)
            for (size_t i = 0; i < c->nflags; i++)
                if (c->flag_ids[i] == id) {
                    f->dep_flag = (int32_t)i;
                    break;
                }
    }
    const cJSON *chain = cJSON_GetObjectItemCaseSensitive(p, "dependency_chain");
    if (cJSON_IsArray(chain) && !chain->child) f->dep_cycle = true; /* the server found a cycle */
    if (f->op != PH_OP_FLAG_EVALUATES_TO) f->dep_malformed = true;
    if (cJSON_IsBool(f->value)) {
        f->dep_expect_bool = true;
        f->dep_expect = cJSON_IsTrue(f->value);
    } else if (cJSON_IsString(f->value)) {
        f->dep_expect_str = f->value->valuestring;
    } else {
        f->dep_malformed = true;
    }
}

static void compile_filter(cc_t *c, const cJSON *p, ph_filter_t *f) {
    f->group_type_index = -1;
    f->cohort = -1;
    f->dep_flag = -1;
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(p, "key");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(p, "operator");
    const cJSON *gti = cJSON_GetObjectItemCaseSensitive(p, "group_type_index");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(p, "value");
    f->key = key && !cJSON_IsNull(key) ? text_dup(c, key) : xstrdup(c, "");
    f->op_name = xstrdup(c, cJSON_IsString(op) ? op->valuestring : "exact");
    if (!f->key || !f->op_name) return;
    f->op = op_of(f->op_name);
    const char *t = cJSON_IsString(type) ? type->valuestring : "person";
    f->type = !strcmp(t, "person")   ? PH_PT_PERSON
              : !strcmp(t, "group")  ? PH_PT_GROUP
              : !strcmp(t, "cohort") ? PH_PT_COHORT
              : !strcmp(t, "flag")   ? PH_PT_FLAG
                                     : PH_PT_UNKNOWN;
    f->negation = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "negation"));
    if (cJSON_IsNumber(gti)) f->group_type_index = (int32_t)gti->valuedouble;
    if (val && !cJSON_IsNull(val)) {
        f->has_value = true;
        if (!(f->value = cJSON_Duplicate(val, 1))) {
            c->oom = true;
            return;
        }
    }
    if (f->type == PH_PT_COHORT) {
        f->cohort_id = f->has_value ? text_dup(c, f->value) : NULL;
        for (size_t i = 0; f->cohort_id && i < c->ncohorts; i++)
            if (!strcmp(c->cohort_ids[i], f->cohort_id)) f->cohort = (int32_t)i;
        return;
    }
    if (f->type == PH_PT_FLAG) {
        compile_dependency(c, f, p);
        return;
    }
    if (!f->has_value) return;
    compile_strings(c, f);
    /* version 2: "true"/true compare as text, only an empty list still
     * means "truthy" */
    f->truthy_mode = c->matching_version == 2
                         ? cJSON_IsArray(f->value) && !f->value->child
                         : truthy_or_falsy(f->value);
    f->matching_unknown = c->matching_version == 0;
    f->truthy = truthy_value(f->value);
    switch (f->op) {
    case PH_OP_GT:
    case PH_OP_GTE:
    case PH_OP_LT:
    case PH_OP_LTE: f->num_ok = to_f64(f->value, &f->num); break;
    case PH_OP_BETWEEN:
    case PH_OP_NOT_BETWEEN:
        if (cJSON_GetArraySize(f->value) == 2 && to_f64(f->value->child, &f->lo) &&
            to_f64(f->value->child->next, &f->hi) && f->lo == f->lo && f->hi == f->hi &&
            f->lo <= f->hi)
            f->num_ok = true;
        break;
    case PH_OP_SEMVER_GT:
    case PH_OP_SEMVER_GTE:
    case PH_OP_SEMVER_LT:
    case PH_OP_SEMVER_LTE:
    case PH_OP_SEMVER_EQ:
    case PH_OP_SEMVER_NEQ:
    case PH_OP_SEMVER_TILDE:
    case PH_OP_SEMVER_CARET:
    case PH_OP_SEMVER_WILDCARD:
        if (!(f->sv_text = text_dup(c, f->value))) return;
        if (f->op >= PH_OP_SEMVER_TILDE)
            f->sv_ok = posthog__flags_semver_range(f->op, f->sv_text, &f->range);
        else
            f->sv_ok = posthog__flags_semver_parse(f->sv_text, strlen(f->sv_text), &f->sv);
        break;
    case PH_OP_IS_DATE_EXACT:
    case PH_OP_IS_DATE_AFTER:
    case PH_OP_IS_DATE_BEFORE:
        if (!cJSON_IsString(f->value)) break; /* the server: only strings */
        if (posthog__flags_parse_relative(f->value->valuestring, &f->rel_n, &f->rel_unit) > 0) {
            f->date_ok = true; /* resolved against the clock of each evaluation */
        } else {
            int r = posthog__flags_date_text(f->value->valuestring, 0, &f->date_us);
            f->date_ok = r > 0;
            f->date_unsupported = r < 0;
        }
        break;
    case PH_OP_REGEX:
    case PH_OP_NOT_REGEX: compile_regex(c, f); break;
    default: break;
    }
}

static void free_filter(ph_filter_t *f) {
    free(f->key);
    free(f->op_name);
    cJSON_Delete(f->value);
    for (size_t i = 0; i < f->nstrs; i++) free(f->strs[i]);
    free(f->strs);
    free(f->sv_text);
    free(f->cohort_id);
    if (f->re_state == PH_RE_OK) regfree(&f->re);
}

/* A cohort's property group: {"type": "AND"|"OR", "values": [group | filter]}.
 * {} is the canonical empty group (true). */
static void compile_group(cc_t *c, const cJSON *g, ph_pgroup_t *out) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(g, "type");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(g, "values");
    out->is_or = cJSON_IsString(type) && !strcmp(type->valuestring, "OR");
    out->bad_type = !(cJSON_IsString(type) && (out->is_or || !strcmp(type->valuestring, "AND"))) &&
                    cJSON_GetArraySize(g) > 0;
    size_t n = cJSON_IsArray(vals) ? (size_t)cJSON_GetArraySize(vals) : 0;
    if (!n) return;
    if (!(out->kids = xcalloc(c, n, sizeof *out->kids))) return;
    for (const cJSON *e = vals->child; e; e = e->next) {
        ph_pgroup_t *k = &out->kids[out->nkids++];
        /* a nested group; {} is the canonical empty group there too (true) */
        if (cJSON_IsObject(e) && (cJSON_GetObjectItemCaseSensitive(e, "values") || !e->child)) {
            compile_group(c, e, k);
        } else {
            k->is_leaf = true;
            compile_filter(c, e, &k->leaf);
            k->negation = k->leaf.negation;
        }
    }
}

static void free_group(ph_pgroup_t *g) {
    for (size_t i = 0; i < g->nkids; i++) free_group(&g->kids[i]);
    free(g->kids);
    if (g->is_leaf) free_filter(&g->leaf);
}

static void compile_condition(cc_t *c, const cJSON *g, ph_condition_t *k) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(g, "properties");
    const cJSON *roll = cJSON_GetObjectItemCaseSensitive(g, "rollout_percentage");
    const cJSON *var = cJSON_GetObjectItemCaseSensitive(g, "variant");
    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(g, "aggregation_group_type_index");
    size_t n = cJSON_IsArray(props) ? (size_t)cJSON_GetArraySize(props) : 0;
    if (n && (k->props = xcalloc(c, n, sizeof *k->props)))
        for (const cJSON *p = props->child; p; p = p->next) compile_filter(c, p, &k->props[k->nprops++]);
    k->rollout = 100.0;
    if (cJSON_IsNumber(roll)) {
        k->has_rollout = true;
        k->rollout = roll->valuedouble;
    }
    if (cJSON_IsString(var)) k->variant = xstrdup(c, var->valuestring);
    k->agg = !agg ? -2 : cJSON_IsNumber(agg) ? (int32_t)agg->valuedouble : -1;
}

static void free_condition(ph_condition_t *k) {
    for (size_t i = 0; i < k->nprops; i++) free_filter(&k->props[i]);
    free(k->props);
    free(k->variant);
}

/* A payload as JSON text, as remote answers give it: a string that holds
 * JSON is that JSON (payloads are stored as JSON-encoded strings); any other
 * string (plain text) is itself the payload, so it is printed as a JSON
 * string; other values are printed. */
static char *payload_text(cc_t *c, const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) {
        cJSON *inner = cJSON_ParseWithOpts(v->valuestring, NULL, 1); /* nothing after it */
        if (inner) {
            cJSON_Delete(inner);
            return xstrdup(c, v->valuestring);
        }
    }
    char *p = cJSON_PrintUnformatted(v);
    if (!p) c->oom = true;
    return p;
}

static void compile_flag(cc_t *c, const cJSON *j, ph_flag_t *f) {
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(j, "filters");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *bucket = cJSON_GetObjectItemCaseSensitive(j, "bucketing_identifier");
    f->id = cJSON_IsNumber(id) ? (int64_t)id->valuedouble : -1;
    f->active = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "active"));
    f->deleted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "deleted"));
    f->eec = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ensure_experience_continuity"));
    f->bucket_device = cJSON_IsString(bucket) && !strcmp(bucket->valuestring, "device_id");
    f->agg = -1;
    const cJSON *hx = cJSON_GetObjectItemCaseSensitive(j, "has_experiment");
    f->has_experiment = cJSON_IsBool(hx) ? (int8_t)cJSON_IsTrue(hx) : -1;
    size_t kl = strlen(f->key);
    if ((f->prefix = malloc(kl + 2))) {
        memcpy(f->prefix, f->key, kl);
        memcpy(f->prefix + kl, ".", 2);
        f->prefix_len = kl + 1;
    } else {
        c->oom = true;
    }
    if (filters && !cJSON_IsObject(filters) && !cJSON_IsNull(filters)) {
        f->malformed = true;
        f->malformed_detail = "filters";
        return;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(filters, "version");
    if (ver && !cJSON_IsNull(ver) && !(cJSON_IsNumber(ver) && ver->valuedouble == 1))
        f->bad_version = true;
    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(filters, "aggregation_group_type_index");
    if (cJSON_IsNumber(agg)) f->agg = (int32_t)agg->valuedouble < 0 ? -1 : (int32_t)agg->valuedouble;
    f->early_exit = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(filters, "early_exit"));

    /* variants: the cumulative table, summed exactly as the server does */
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(filters, "multivariate");
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(mv, "variants");
    size_t nv = cJSON_IsArray(vars) ? (size_t)cJSON_GetArraySize(vars) : 0;
    const cJSON *payloads = cJSON_GetObjectItemCaseSensitive(filters, "payloads");
    if (nv && (f->variants = xcalloc(c, nv, sizeof *f->variants))) {
        double cum = 0.0;
        for (const cJSON *v = vars->child; v; v = v->next) {
            const cJSON *vk = cJSON_GetObjectItemCaseSensitive(v, "key");
            const cJSON *vp = cJSON_GetObjectItemCaseSensitive(v, "rollout_percentage");
            if (!cJSON_IsString(vk)) {
                f->malformed = true;
                f->malformed_detail = "multivariate.variants[].key";
                continue;
            }
            ph_variant_t *x = &f->variants[f->nvariants++];
            x->key = xstrdup(c, vk->valuestring);
            x->pct = cJSON_IsNumber(vp) ? vp->valuedouble : 0.0;
            x->lo = cum;
            cum += x->pct / 100.0;
            x->hi = cum;
            x->payload = payload_text(c, cJSON_GetObjectItemCaseSensitive(payloads, vk->valuestring));
        }
    }
    f->payload_true = payload_text(c, cJSON_GetObjectItemCaseSensitive(payloads, "true"));

    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(filters, "groups");
    size_t ng = cJSON_IsArray(groups) ? (size_t)cJSON_GetArraySize(groups) : 0;
    if (ng && (f->conds = xcalloc(c, ng, sizeof *f->conds)))
        for (const cJSON *g = groups->child; g; g = g->next)
            compile_condition(c, g, &f->conds[f->nconds++]);
    for (size_t i = 0; i < f->nconds; i++) {
        ph_condition_t *k = &f->conds[i];
        for (size_t v = 0; k->variant && v < f->nvariants; v++)
            if (!strcmp(f->variants[v].key, k->variant)) k->variant_valid = true;
    }

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(filters, "feature_enrollment"))) {
        f->enrollment = true;
        if ((f->enroll_key = malloc(kl + 21))) snprintf(f->enroll_key, kl + 21, "$feature_enrollment/%s", f->key);
        else c->oom = true;
    }
    const cJSON *sg = cJSON_GetObjectItemCaseSensitive(filters, "super_groups");
    if (cJSON_IsArray(sg) && cJSON_IsObject(sg->child) &&
        (f->super_cond = xcalloc(c, 1, sizeof *f->super_cond))) {
        compile_condition(c, sg->child, f->super_cond);
        f->super_cond->agg = -1; /* early access is about persons, also on group flags */
    }
    const cJSON *ho = cJSON_GetObjectItemCaseSensitive(filters, "holdout");
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(ho, "exclusion_percentage");
    if (cJSON_IsNumber(hp)) {
        const cJSON *hid = cJSON_GetObjectItemCaseSensitive(ho, "id");
        char idt[64];
        const char *t = posthog__flags_value_text(hid, idt, sizeof idt);
        f->has_holdout = true;
        f->holdout_pct = hp->valuedouble;
        size_t n = strlen(t ? t : "") + 9;
        if ((f->holdout_variant = malloc(n))) {
            snprintf(f->holdout_variant, n, "holdout-%s", t ? t : "");
            f->holdout_payload =
                payload_text(c, cJSON_GetObjectItemCaseSensitive(payloads, f->holdout_variant));
        } else {
            c->oom = true;
        }
    }
}

static void free_flag(ph_flag_t *f) {
    free(f->key);
    free(f->prefix);
    for (size_t i = 0; i < f->nconds; i++) free_condition(&f->conds[i]);
    free(f->conds);
    for (size_t i = 0; i < f->nvariants; i++) {
        free(f->variants[i].key);
        free(f->variants[i].payload);
    }
    free(f->variants);
    free(f->payload_true);
    free(f->enroll_key);
    if (f->super_cond) free_condition(f->super_cond);
    free(f->super_cond);
    free(f->holdout_variant);
    free(f->holdout_payload);
    free(f->closure);
}

void posthog__flags_defs_free(ph_flags_defs_t *d) {
    if (!d) return;
    for (size_t i = 0; i < d->nflags; i++) free_flag(&d->flags[i]);
    free(d->flags);
    for (size_t i = 0; i < d->ncohorts; i++) {
        free(d->cohorts[i].id);
        free_group(&d->cohorts[i].root);
    }
    free(d->cohorts);
    for (size_t i = 0; i < d->ngroup_names; i++) free(d->group_names[i]);
    free(d->group_names);
    free(d->index);
    free(d->order);
    free(d->by_key);
    free(d);
}

/* ------------------------------------------------------------ index */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

long posthog__flags_find(const ph_flags_defs_t *d, const char *key) {
    if (!d || !key || !d->index_cap) return -1;
    size_t mask = d->index_cap - 1;
    for (size_t i = fnv1a(key) & mask;; i = (i + 1) & mask) {
        int32_t x = d->index[i];
        if (x < 0) return -1;
        if (!strcmp(d->flags[x].key, key)) return x;
    }
}

/* Stable bottom-up merge sort of d->by_key by key (no qsort: its
 * comparator would need the definitions through a global). */
static bool sort_by_key(ph_flags_defs_t *d) {
    size_t n = d->nflags;
    int32_t *a = d->by_key, *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) return false;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = PH_MIN(lo + w, n), hi = PH_MIN(lo + 2 * w, n), i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = strcmp(d->flags[a[j]].key, d->flags[a[i]].key) < 0 ? a[j++] : a[i++];
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, n * sizeof *a);
    }
    free(tmp);
    return true;
}

static void build_index(cc_t *c, ph_flags_defs_t *d) {
    /* the key order (snapshots list flags by key): indices sorted once here */
    if (!(d->by_key = malloc((d->nflags ? d->nflags : 1) * sizeof *d->by_key))) {
        c->oom = true;
        return;
    }
    for (size_t f = 0; f < d->nflags; f++) d->by_key[f] = (int32_t)f;
    if (!sort_by_key(d)) {
        c->oom = true;
        return;
    }
    size_t cap = 8;
    while (cap < d->nflags * 2) cap <<= 1;
    if (!(d->index = malloc(cap * sizeof *d->index))) {
        c->oom = true;
        return;
    }
    memset(d->index, 0xff, cap * sizeof *d->index); /* -1 */
    d->index_cap = cap;
    for (size_t f = 0; f < d->nflags; f++) {
        if (posthog__flags_find(d, d->flags[f].key) >= 0) continue; /* the first of duplicates wins */
        size_t i = fnv1a(d->flags[f].key) & (cap - 1);
        while (d->index[i] >= 0) i = (i + 1) & (cap - 1);
        d->index[i] = (int32_t)f;
    }
}

/* ------------------------------------------------------------ dependencies */

typedef struct {
    int32_t *out;
    size_t n;
    uint8_t *mark; /* 0 new, 1 on the DFS stack, 2 done */
    bool cycle;
    bool missing;
} dfs_t;

static void deps_of_filter(const ph_flags_defs_t *d, const ph_filter_t *p, dfs_t *s, int depth);

static void deps_of_group(const ph_flags_defs_t *d, const ph_pgroup_t *g, dfs_t *s, int depth) {
    if (g->is_leaf) {
        deps_of_filter(d, &g->leaf, s, depth);
        return;
    }
    for (size_t i = 0; i < g->nkids; i++) deps_of_group(d, &g->kids[i], s, depth);
}

static void visit(const ph_flags_defs_t *d, int32_t f, dfs_t *s);

static void deps_of_filter(const ph_flags_defs_t *d, const ph_filter_t *p, dfs_t *s, int depth) {
    if (p->type == PH_PT_FLAG) {
        if (p->dep_cycle) s->cycle = true;
        if (p->dep_flag < 0) s->missing = true;
        else visit(d, p->dep_flag, s);
    } else if (p->type == PH_PT_COHORT && p->cohort >= 0 && depth < PH_FLAGS_MAX_DEPTH) {
        deps_of_group(d, &d->cohorts[p->cohort].root, s, depth + 1);
    }
}

static void deps_of_condition(const ph_flags_defs_t *d, const ph_condition_t *k, dfs_t *s) {
    for (size_t i = 0; i < k->nprops; i++) deps_of_filter(d, &k->props[i], s, 0);
}

/* Post-order DFS: every flag is emitted after the flags it reads. */
static void visit(const ph_flags_defs_t *d, int32_t f, dfs_t *s) {
    if (s->mark[f] == 2) return;
    if (s->mark[f] == 1) {
        s->cycle = true;
        return;
    }
    s->mark[f] = 1;
    const ph_flag_t *fl = &d->flags[f];
    /* an inactive or deleted flag is false without reading anything: the
     * server does not follow its dependencies either */
    if (fl->active && !fl->deleted) {
        for (size_t i = 0; i < fl->nconds; i++) deps_of_condition(d, &fl->conds[i], s);
        if (fl->super_cond) deps_of_condition(d, fl->super_cond, s);
    }
    s->mark[f] = 2;
    s->out[s->n++] = f;
}

static void build_dependencies(cc_t *c, ph_flags_defs_t *d) {
    size_t n = d->nflags;
    if (!n) return;
    uint8_t *mark = xcalloc(c, n, 1);
    int32_t *buf = xcalloc(c, n, sizeof *buf);
    d->order = xcalloc(c, n, sizeof *d->order);
    if (c->oom) {
        free(mark);
        free(buf);
        return;
    }
    /* the global order: all flags, dependencies first */
    dfs_t all = {d->order, 0, mark, false, false};
    for (size_t f = 0; f < n; f++) visit(d, (int32_t)f, &all);
    /* per flag: its closure, and whether it reaches a cycle or a missing flag */
    for (size_t f = 0; f < n; f++) {
        memset(mark, 0, n);
        dfs_t s = {buf, 0, mark, false, false};
        visit(d, (int32_t)f, &s);
        ph_flag_t *fl = &d->flags[f];
        fl->in_cycle = s.cycle;
        fl->dep_missing = s.missing;
        if (s.n > 1) { /* the last one emitted is f itself */
            if (!(fl->closure = malloc((s.n - 1) * sizeof *fl->closure))) {
                c->oom = true;
                break;
            }
            memcpy(fl->closure, buf, (s.n - 1) * sizeof *buf);
            fl->nclosure = s.n - 1;
        }
    }
    free(mark);
    free(buf);
}

/* ------------------------------------------------------------ entry points */

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static void load_groups(cc_t *c, ph_flags_defs_t *d, const cJSON *map) {
    size_t max = 0;
    for (const cJSON *e = cJSON_IsObject(map) ? map->child : NULL; e; e = e->next) {
        char *end;
        long i = strtol(e->string, &end, 10);
        if (*end || i < 0 || i >= 1024 || !cJSON_IsString(e)) continue; /* the server has 5 */
        if ((size_t)i + 1 > max) max = (size_t)i + 1;
    }
    if (!max || !(d->group_names = xcalloc(c, max, sizeof *d->group_names))) return;
    d->ngroup_names = max;
    for (const cJSON *e = map->child; e; e = e->next) {
        char *end;
        long i = strtol(e->string, &end, 10);
        if (*end || i < 0 || i >= 1024 || !cJSON_IsString(e) || d->group_names[i]) continue;
        d->group_names[i] = xstrdup(c, e->valuestring);
    }
}

ph_flags_defs_t *posthog__flags_compile_tree(const cJSON *root, char *err, size_t errlen) {
    if (!cJSON_IsObject(root)) {
        set_err(err, errlen, "flag definitions: the body is not a JSON object (want {\"flags\": [...], "
                             "\"group_type_mapping\": {...}, \"cohorts\": {...}})");
        return NULL;
    }
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(root, "flags");
    if (!cJSON_IsArray(flags)) {
        set_err(err, errlen, "flag definitions: \"flags\" is missing or not an array");
        return NULL;
    }
    cc_t c = {0};
    ph_flags_defs_t *d = calloc(1, sizeof *d);
    if (!d) {
        set_err(err, errlen, "flag definitions: out of memory");
        return NULL;
    }
    atomic_init(&d->refs, 1);
    atomic_init(&d->retire_next, NULL);
    d->minimal_events = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "minimal_flag_called_events"));
    const cJSON *pmv = cJSON_GetObjectItemCaseSensitive(root, "property_matching_version");
    c.matching_version = !pmv || cJSON_IsNull(pmv)                               ? 1
                         : cJSON_IsNumber(pmv) && (pmv->valuedouble == 1 || pmv->valuedouble == 2)
                             ? (int)pmv->valuedouble
                             : 0;
    load_groups(&c, d, cJSON_GetObjectItemCaseSensitive(root, "group_type_mapping"));

    /* cohort ids first, so references resolve in any order */
    const cJSON *cohorts = cJSON_GetObjectItemCaseSensitive(root, "cohorts");
    size_t nco = cJSON_IsObject(cohorts) ? (size_t)cJSON_GetArraySize(cohorts) : 0;
    d->cohorts = xcalloc(&c, nco, sizeof *d->cohorts);
    c.cohort_ids = xcalloc(&c, nco, sizeof *c.cohort_ids);
    for (const cJSON *e = nco ? cohorts->child : NULL; e && !c.oom; e = e->next) {
        d->cohorts[d->ncohorts].id = xstrdup(&c, e->string);
        c.cohort_ids[d->ncohorts] = d->cohorts[d->ncohorts].id;
        d->ncohorts++;
    }
    c.ncohorts = d->ncohorts;

    size_t nf = (size_t)cJSON_GetArraySize(flags);
    d->flags = xcalloc(&c, nf, sizeof *d->flags);
    c.flag_keys = xcalloc(&c, nf, sizeof *c.flag_keys);
    c.flag_ids = xcalloc(&c, nf, sizeof *c.flag_ids);
    for (const cJSON *j = flags->child; j && !c.oom; j = j->next) {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
        if (!cJSON_IsString(key) || !*key->valuestring) continue; /* nothing to look it up by */
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        c.flag_ids[d->nflags] = cJSON_IsNumber(id) ? (int64_t)id->valuedouble : -1;
        d->flags[d->nflags].key = xstrdup(&c, key->valuestring);
        c.flag_keys[d->nflags] = d->flags[d->nflags].key;
        d->nflags++;
    }
    c.nflags = d->nflags;
    size_t ci = 0;
    for (const cJSON *e = nco ? cohorts->child : NULL; e && !c.oom; e = e->next, ci++)
        compile_group(&c, e, &d->cohorts[ci].root);
    size_t fi = 0;
    for (const cJSON *j = flags->child; j && !c.oom; j = j->next) {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
        if (!cJSON_IsString(key) || !*key->valuestring) continue;
        compile_flag(&c, j, &d->flags[fi++]);
    }
    if (!c.oom) build_index(&c, d);
    if (!c.oom) build_dependencies(&c, d);
    d->uses_regex = c.uses_regex;
    free(c.cohort_ids);
    free(c.flag_keys);
    free(c.flag_ids);
    if (c.oom) {
        posthog__flags_defs_free(d);
        set_err(err, errlen, "flag definitions: out of memory");
        return NULL;
    }
    return d;
}

ph_flags_defs_t *posthog__flags_compile(const char *json, size_t len, char *err, size_t errlen) {
    if (!json) {
        set_err(err, errlen, "flag definitions: no body");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        char msg[160];
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        snprintf(msg, sizeof msg, "flag definitions: the body is not valid JSON (error near byte %zu of %zu)",
                 off, len);
        set_err(err, errlen, msg);
        return NULL;
    }
    ph_flags_defs_t *d = posthog__flags_compile_tree(root, err, errlen);
    cJSON_Delete(root);
    return d;
}

void posthog__flags_defs_ref(ph_flags_defs_t *d) {
    /* relaxed: taking another reference needs no ordering, the caller
     * already holds one */
    if (d) atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
}

void posthog__flags_defs_unref(ph_flags_defs_t *d) {
    if (d && atomic_fetch_sub(&d->refs, 1) == 1) posthog__flags_defs_free(d);
}

size_t posthog__flags_count(const ph_flags_defs_t *d) { return d ? d->nflags : 0; }

size_t posthog__flags_by_key(const ph_flags_defs_t *d, size_t j) {
    return d && j < d->nflags ? (size_t)d->by_key[j] : (size_t)-1;
}

const char *posthog__flags_key(const ph_flags_defs_t *d, size_t i) {
    return d && i < d->nflags ? d->flags[i].key : NULL;
}

bool posthog__flags_uses_regex(const ph_flags_defs_t *d) { return d && d->uses_regex; }

bool posthog__flags_minimal_events(const ph_flags_defs_t *d) { return d && d->minimal_events; }
