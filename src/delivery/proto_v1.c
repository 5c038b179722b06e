/*
 * proto_v1: the capture v1 results map (see protocol.h).
 */
#include "protocol.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <strings.h>

#include "json.h"

ph_outcome_t posthog__v1_classify(long status) {
    if (status == 404) return PH_OUTCOME_RETRY;
    if (status == 400) return PH_OUTCOME_TOO_LARGE; /* bisect: only bad events are dropped */
    return posthog__classify(status);
}

typedef struct {
    const char *uuid;
    const cJSON *entry;
    uint8_t outcome;
} hit_t;

static int hit_cmp(const void *a, const void *b) {
    return strncasecmp(((const hit_t *)a)->uuid, ((const hit_t *)b)->uuid, 36);
}

void posthog__v1_results_free(ph_results_t *r, uint32_t count) {
    if (r->details)
        for (uint32_t i = 0; i < count; i++) free(r->details[i]);
    free(r->details);
    free(r->outcome);
    memset(r, 0, sizeof *r);
}

int posthog__v1_parse_results(const ph_batch_t *bt, const char *body, size_t n,
                              ph_results_t *out) {
    memset(out, 0, sizeof *out);
    int type = 0;
    ph_json_keys_t keys;
    if (!body || !n || posthog__json_validate(body, n, &type, &keys) != POSTHOG_OK ||
        type != PH_JSON_OBJECT)
        return -1;
    /* the "results" member must be an object */
    ph_json_iter_t it;
    ph_json_member_t m;
    const char *res = NULL;
    size_t res_n = 0;
    ph_json_iter_init(&it, body + keys.inner_off, keys.inner_len);
    while (posthog__json_next_member(&it, &m))
        if (m.klen == 7 && !memcmp(m.key, "results", 7)) {
            res = m.val;
            res_n = m.vlen;
        }
    if (!res || res[0] != '{') return -1;
    /* fast path: no entry can be "retry" or "drop" */
    if (!memmem(res, res_n, "\"retry\"", 7) && !memmem(res, res_n, "\"drop\"", 6)) {
        out->delivered = bt->count;
        return 0;
    }
    cJSON *root = cJSON_ParseWithLength(res, res_n);
    if (!root) return -2;
    size_t nh = 0, cap = 0;
    hit_t *hits = NULL;
    int rc = -2;
    for (const cJSON *e = root->child; e; e = e->next) {
        const cJSON *r = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "result") : e;
        const char *v = cJSON_IsString(r) ? r->valuestring : NULL;
        uint8_t oc = v && !strcmp(v, "retry") ? PH_EV_RETRY
                     : v && !strcmp(v, "drop") ? PH_EV_DROP
                                               : PH_EV_DELIVERED;
        if (oc == PH_EV_DELIVERED || !e->string || strlen(e->string) != 36) continue;
        if (nh == cap) {
            cap = cap ? cap * 2 : 64;
            hit_t *h = realloc(hits, cap * sizeof *h);
            if (!h) goto done;
            hits = h;
        }
        hits[nh++] = (hit_t){e->string, e, oc};
    }
    qsort(hits, nh, sizeof *hits, hit_cmp);
    char *raw = nh ? posthog__batch_inflate(bt, NULL) : NULL;
    if (nh && !raw) goto done;
    out->outcome = calloc(bt->count ? bt->count : 1, 1);
    out->details = calloc(bt->count ? bt->count : 1, sizeof *out->details);
    if (!out->outcome || !out->details) {
        free(raw);
        posthog__v1_results_free(out, 0);
        goto done;
    }
    for (uint32_t i = 0; i < bt->count; i++) {
        const char *u = nh ? posthog__batch_event_uuid(bt, raw, i) : NULL;
        hit_t key = {u, NULL, 0}, *h = u ? bsearch(&key, hits, nh, sizeof *hits, hit_cmp) : NULL;
        uint8_t oc = h ? h->outcome : PH_EV_DELIVERED;
        out->outcome[i] = oc;
        if (oc == PH_EV_DELIVERED) {
            out->delivered++;
            continue;
        }
        if (oc == PH_EV_RETRY) out->retry++;
        else out->drop++;
        const cJSON *d = cJSON_IsObject(h->entry)
                             ? cJSON_GetObjectItemCaseSensitive(h->entry, "details")
                             : NULL;
        out->details[i] = strdup(cJSON_IsString(d) ? d->valuestring : "");
    }
    free(raw);
    rc = 0;
done:
    free(hits);
    cJSON_Delete(root);
    return rc;
}
