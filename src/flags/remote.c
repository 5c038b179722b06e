/*
 * flags/remote: POST /flags/?v=2 and its two answer shapes (see remote.h).
 */
#include "remote.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

#define FLAGS_BODY_MAX ((size_t)8 << 20)
#define RETRY_BASE_MS 300

void posthog__flag_eval_free(ph_flag_eval_t *v) {
    if (v->borrowed) {
        memset(v, 0, sizeof *v);
        return;
    }
    free(v->key);
    free(v->variant);
    free(v->payload);
    free(v->reason);
    memset(v, 0, sizeof *v);
}

void posthog__flags_answer_free(ph_flags_answer_t *a) {
    for (size_t i = 0; i < a->n; i++) posthog__flag_eval_free(&a->flags[i]);
    free(a->flags);
    for (size_t i = 0; i < a->nfailed; i++) free(a->failed[i]);
    free(a->failed);
    free(a->request_id);
    memset(a, 0, sizeof *a);
    a->evaluated_at = -1;
}

void posthog__flags_error_string(unsigned e, long api_status, char *buf, size_t cap) {
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {PH_FERR_ERRORS_WHILE_COMPUTING, "errors_while_computing_flags"},
        {PH_FERR_FLAG_MISSING, "flag_missing"},
        {PH_FERR_QUOTA_LIMITED, "quota_limited"},
        {PH_FERR_TIMEOUT, "timeout"},
        {PH_FERR_CONNECTION, "connection_error"},
        {PH_FERR_UNKNOWN, "unknown_error"},
        {PH_FERR_API, NULL},
        {PH_FERR_EVALUATION_FAILED, "evaluation_failed"},
    };
    size_t len = 0;
    if (cap) buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(e & names[i].bit)) continue;
        char api[32];
        const char *n = names[i].name;
        if (!n) {
            snprintf(api, sizeof api, "api_error_%ld", api_status);
            n = api;
        }
        /* only whole names: a truncated one would read as another value */
        size_t need = strlen(n) + (len ? 1 : 0);
        if (len + need >= cap) break;
        snprintf(buf + len, cap - len, "%s%s", len ? "," : "", n);
        len += need;
    }
}

/* ---------------------------------------------------------------- request */

/* Adds `name`: the parsed object text, or {} when NULL. -1 when the text is
 * not a JSON object. */
static int add_object(cJSON *body, const char *name, const char *json) {
    cJSON *v = json ? cJSON_Parse(json) : cJSON_CreateObject();
    if (!v || !cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return -1;
    }
    cJSON_AddItemToObject(body, name, v);
    return 0;
}

static char *build_body(const posthog_options_t *o, const ph_flags_query_t *q, char *why,
                        size_t why_cap) {
    cJSON *b = cJSON_CreateObject();
    char *text = NULL;
    if (!b) return NULL;
    cJSON_AddStringToObject(b, "token", o->api_key ? o->api_key : "");
    cJSON_AddStringToObject(b, "distinct_id", q->distinct_id);
    const char *bad = add_object(b, "groups", q->groups_json)                       ? "groups"
                      : add_object(b, "person_properties", q->person_properties_json) ? "person_properties"
                      : add_object(b, "group_properties", q->group_properties_json)   ? "group_properties"
                                                                                      : NULL;
    if (bad) {
        snprintf(why, why_cap, "%s is not a JSON object", bad);
        goto out;
    }
    cJSON_AddBoolToObject(b, "geoip_disable", q->disable_geoip);
    if (q->flag_keys) {
        cJSON *keys = cJSON_AddArrayToObject(b, "flag_keys_to_evaluate");
        for (const char *const *k = q->flag_keys; keys && *k; k++)
            cJSON_AddItemToArray(keys, cJSON_CreateString(*k));
    }
    if (q->device_id) cJSON_AddStringToObject(b, "device_id", q->device_id);
    text = cJSON_PrintUnformatted(b);
    if (!text) snprintf(why, why_cap, "out of memory");
out:
    cJSON_Delete(b);
    return text;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1) {
    }
}

int posthog__flags_remote(ph_req_pool_t *pool, const posthog_options_t *o, const ph_flags_query_t *q,
                          ph_flags_answer_t *out) {
    memset(out, 0, sizeof *out);
    out->evaluated_at = -1;
    char *body = build_body(o, q, out->detail, sizeof out->detail);
    if (!body) {
        out->errors = PH_FERR_UNKNOWN;
        return -1;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s/flags/?v=2", o->host);
    const char *headers[] = {"Content-Type: application/json"};
    ph_req_t r = {.method = "POST",
                  .url = url,
                  .headers = headers,
                  .nheaders = 1,
                  .body = body,
                  .body_len = strlen(body),
                  .timeout_ms = (int)o->feature_flags_request_timeout_ms,
                  .max_body = FLAGS_BODY_MAX,
                  .kind = "flags"};
    int rc = -1;
    for (uint32_t attempt = 0;; attempt++) {
        ph_resp_t resp;
        int prc = posthog__req_perform(pool, &r, &resp);
        out->requests++;
        bool retryable = prc != 0 || resp.status == 502 || resp.status == 504;
        if (prc != 0) {
            out->errors = resp.timed_out ? PH_FERR_TIMEOUT : PH_FERR_CONNECTION;
            snprintf(out->detail, sizeof out->detail, "%s", resp.error);
        } else if (resp.status < 200 || resp.status > 299) {
            out->errors = PH_FERR_API;
            out->api_status = resp.status;
            snprintf(out->detail, sizeof out->detail, "the server answered HTTP %ld", resp.status);
        } else if (resp.body_truncated) {
            out->errors = PH_FERR_UNKNOWN;
            snprintf(out->detail, sizeof out->detail, "the answer is larger than %zu bytes",
                     (size_t)FLAGS_BODY_MAX);
        } else {
            ph_flags_answer_t parsed;
            if (posthog__flags_parse_answer(resp.body.data, resp.body.len, &parsed) == 0) {
                int requests = out->requests;
                *out = parsed;
                out->requests = requests;
                rc = 0;
            } else {
                out->errors = PH_FERR_UNKNOWN;
                snprintf(out->detail, sizeof out->detail,
                         "the answer (HTTP %ld, %zu bytes) is not a flags response", resp.status,
                         resp.body.len);
            }
        }
        posthog__req_done(&resp);
        if (rc == 0 || !retryable || attempt >= o->feature_flags_request_max_retries) break;
        sleep_ms((int64_t)RETRY_BASE_MS << (attempt < 10 ? attempt : 10));
    }
    free(body);
    return rc;
}

/* ---------------------------------------------------------------- answer */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* A payload as JSON text: a string that holds JSON is that JSON (the v2
 * metadata and most v1 answers encode payloads as strings); any other
 * string is itself the payload; other values are printed. */
static char *payload_text(const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) {
        cJSON *inner = cJSON_ParseWithOpts(v->valuestring, NULL, 1); /* nothing after it */
        if (inner) {
            cJSON_Delete(inner);
            return strdup(v->valuestring);
        }
    }
    return cJSON_PrintUnformatted(v);
}

static int push_flag(ph_flags_answer_t *a, ph_flag_eval_t *v, size_t *cap) {
    if (a->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        ph_flag_eval_t *f = realloc(a->flags, nc * sizeof *f);
        if (!f) return -1;
        a->flags = f;
        *cap = nc;
    }
    a->flags[a->n++] = *v;
    return 0;
}

static int64_t num_or(const cJSON *o, const char *k, int64_t dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

static int parse_v2(const cJSON *flags, ph_flags_answer_t *a) {
    size_t cap = 0;
    for (const cJSON *f = flags->child; f; f = f->next) {
        if (!cJSON_IsObject(f) || !f->string) continue;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "failed"))) {
            char **nf = realloc(a->failed, (a->nfailed + 1) * sizeof *nf);
            if (!nf) return -1;
            a->failed = nf;
            if (!(a->failed[a->nfailed] = strdup(f->string))) return -1;
            a->nfailed++;
            continue;
        }
        ph_flag_eval_t v = {.id = -1, .version = -1, .has_experiment = -1};
        const cJSON *variant = cJSON_GetObjectItemCaseSensitive(f, "variant");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(f, "reason");
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(f, "metadata");
        v.enabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "enabled"));
        v.key = strdup(f->string);
        if (cJSON_IsString(variant)) v.variant = strdup(variant->valuestring);
        if (cJSON_IsObject(reason)) {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(reason, "description");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(reason, "code");
            v.reason = dup_or_null(cJSON_IsString(d) ? d->valuestring
                                   : cJSON_IsString(c) ? c->valuestring
                                                       : NULL);
        }
        if (cJSON_IsObject(meta)) {
            v.id = num_or(meta, "id", -1);
            v.version = num_or(meta, "version", -1);
            const cJSON *he = cJSON_GetObjectItemCaseSensitive(meta, "has_experiment");
            if (cJSON_IsBool(he)) v.has_experiment = cJSON_IsTrue(he);
            v.payload = payload_text(cJSON_GetObjectItemCaseSensitive(meta, "payload"));
        }
        /* a variant means enabled, whatever "enabled" says */
        if (v.variant) v.enabled = true;
        if (!v.key || push_flag(a, &v, &cap)) {
            posthog__flag_eval_free(&v);
            return -1;
        }
    }
    return 0;
}

static int parse_v1(const cJSON *flags, const cJSON *payloads, ph_flags_answer_t *a) {
    size_t cap = 0;
    for (const cJSON *f = flags->child; f; f = f->next) {
        if (!f->string) continue;
        ph_flag_eval_t v = {.id = -1, .version = -1, .has_experiment = -1};
        if (cJSON_IsString(f)) {
            v.enabled = true;
            v.variant = strdup(f->valuestring);
            if (!v.variant) return -1;
        } else if (cJSON_IsBool(f)) {
            v.enabled = cJSON_IsTrue(f);
        } else {
            continue; /* not a flag value */
        }
        v.key = strdup(f->string);
        if (cJSON_IsObject(payloads))
            v.payload = payload_text(cJSON_GetObjectItemCaseSensitive(payloads, f->string));
        if (!v.key || push_flag(a, &v, &cap)) {
            posthog__flag_eval_free(&v);
            return -1;
        }
    }
    return 0;
}

int posthog__flags_parse_answer(const char *body, size_t len, ph_flags_answer_t *out) {
    memset(out, 0, sizeof *out);
    out->evaluated_at = -1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    int rc = -1;
    if (!cJSON_IsObject(root)) goto done;
    const cJSON *v2 = cJSON_GetObjectItemCaseSensitive(root, "flags");
    const cJSON *v1 = cJSON_GetObjectItemCaseSensitive(root, "featureFlags");
    if (cJSON_IsObject(v2)) rc = parse_v2(v2, out);
    else if (cJSON_IsObject(v1))
        rc = parse_v1(v1, cJSON_GetObjectItemCaseSensitive(root, "featureFlagPayloads"), out);
    else goto done;
    if (rc) goto done;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "errorsWhileComputingFlags")))
        out->errors |= PH_FERR_ERRORS_WHILE_COMPUTING;
    const cJSON *ql = cJSON_GetObjectItemCaseSensitive(root, "quotaLimited");
    for (const cJSON *it = cJSON_IsArray(ql) ? ql->child : NULL; it; it = it->next) {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "feature_flags")) {
            out->errors |= PH_FERR_QUOTA_LIMITED;
            /* quota limited: no flag value is to be trusted */
            for (size_t i = 0; i < out->n; i++) posthog__flag_eval_free(&out->flags[i]);
            out->n = 0;
        }
    }
    if (out->nfailed) out->errors |= PH_FERR_EVALUATION_FAILED;
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(root, "requestId");
    if (cJSON_IsString(rid) && !(out->request_id = strdup(rid->valuestring))) rc = -1;
    out->evaluated_at = num_or(root, "evaluatedAt", -1);
    out->minimal_events = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "minimalFlagCalledEvents"));
done:
    cJSON_Delete(root);
    if (rc) posthog__flags_answer_free(out);
    return rc;
}
