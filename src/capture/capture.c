/*
 * capture: the capture path. It validates, merges properties, and writes a
 * compact record straight into the queue with no lock, no allocation and
 * no syscall in the common case (the flusher is woken through the
 * platform's wake-up primitive, platform.h, only when it sleeps and enough
 * events have piled up). Also the
 * person/group calls built on capture; before_send is in before_send.c.
 *
 * Shutdown race: capture reserves (seq_cst CAS on the queue head) and then
 * reads the state (seq_cst); shutdown stores CLOSED (seq_cst) and then
 * reads the head. So a capture either reserved below the head shutdown saw
 * (the flusher delivers or counts it) or sees CLOSED and commits a dead
 * record and counts its own drop. No event escapes uncounted.
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>

#include "before_send.h"
#include "event.h"
#include "json.h"
#include "props.h"
#include "util.h"

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
    bool ai;                           /* posthog_capture_ai: the AI endpoint */
} cap_t;

/* Whether the user's properties hold a key capture v1 lifts out of them. */
static bool user_has_lift_key(const cap_t *k) {
    if (k->pb) return posthog__props_any_key(k->pb, posthog__is_lift_key);
    if (!k->pjson) return false;
    const ph_json_keys_t *ks = k->pkeys;
    if (ks->overflow) {
        ph_json_iter_t it;
        ph_json_member_t m;
        ph_json_iter_init(&it, k->pjson + ks->inner_off, ks->inner_len);
        while (posthog__json_next_member(&it, &m))
            if (posthog__is_lift_key(m.key, m.klen)) return true;
        return false;
    }
    for (size_t i = 0; i < ks->count; i++)
        if ((k->pjson[ks->off[i]] == '$' || k->pjson[ks->off[i]] == '\\') &&
            posthog__is_lift_key(k->pjson + ks->off[i], ks->len[i]))
            return true;
    return false;
}

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
static char *opt_bool(char *o, const cap_t *k, const char *key, posthog_tristate_t v) {
    size_t kl = strlen(key);
    if (v == POSTHOG_UNSET || user_has_key(k, key, kl)) return o;
    *o++ = ',';
    *o++ = '"';
    memcpy(o, key, kl);
    o += kl;
    const char *val = v == POSTHOG_TRUE ? "\":true" : "\":false";
    size_t vl = strlen(val);
    memcpy(o, val, vl);
    return o + vl;
}

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
    /* everything but $geoip_disable is lifted into v1's "options" */
    bool lifted = ppp || tour || (eo && (eo->cookieless_mode || eo->disable_skew_correction));
    if (!lifted && !c->o->disable_geoip) return POSTHOG_OK;
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
    o = opt_bool(o, k, "$process_person_profile", ppp);
    if (eo) {
        o = opt_bool(o, k, "$cookieless_mode", eo->cookieless_mode);
        o = opt_bool(o, k, "$ignore_sent_at", eo->disable_skew_correction);
    }
    if (c->o->disable_geoip) o = opt_bool(o, k, "$geoip_disable", POSTHOG_TRUE);
    if (tour && !user_has_key(k, "$product_tour_id", 16)) {
        memcpy(o, ",\"$product_tour_id\":\"", 21);
        o += 21;
        o += posthog__json_escape(o, tour, tl);
        *o++ = '"';
    }
    if (o > buf) ph_frags_add(&po->props, buf + 1, (size_t)(o - buf - 1));
    if (lifted) po->flags |= PH_REC_LIFT;
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
    /* v1 formats records whose properties hold keys it lifts on the slow path */
    if (!c->o->capture_v0 && (c->super_has_lift || user_has_lift_key(k)))
        po->flags |= PH_REC_LIFT;
    return POSTHOG_OK;
}

void posthog__rec_write(void *dst, const uint8_t uuid[16], int64_t ts, uint32_t flags,
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

/* Commits a written record, or marks it dead when shutdown won the race. */
static posthog_status_t publish(posthog_client_t *c, ph_qslot_t *slot, uint64_t queued,
                                const char *event, const char *did) {
    /* seq_cst: see the shutdown race note at the top of this file */
    if (PH_UNLIKELY(atomic_load_explicit(&c->state, memory_order_seq_cst) != PH_RUNNING)) {
        posthog__queue_commit(&c->q, slot, PH_Q_DEAD);
        return posthog__drop_at_capture(c, POSTHOG_DROP_SHUTDOWN, POSTHOG_E_SHUTDOWN, event, did);
    }
    posthog__queue_commit(&c->q, slot, 0);
    ph_counter_add(&c->captured, 1);
    /* seq_cst: pairs with the flusher's seq_cst store before it sleeps */
    uint32_t th = atomic_load_explicit(&c->sleeping, memory_order_seq_cst);
    if (PH_UNLIKELY(th && queued >= th) && atomic_exchange(&c->sleeping, 0)) posthog__wake(c);
    return POSTHOG_OK;
}

static posthog_status_t check_object(const char *json, ph_json_keys_t *keys, const char **out,
                                     const char *what, char *msg, size_t msglen);
/* A capture-time drop whose message says what was wrong: logged and reported. */
static posthog_status_t refuse(posthog_client_t *c, posthog_drop_reason_t reason,
                               posthog_status_t st, const char *msg, const char *event,
                               const char *did) {
    posthog__log(c, POSTHOG_LOG_ERROR, "event refused: %s", msg);
    posthog__report_drop_st(c, reason, st, 1, 0, msg, NULL, event, did);
    return st;
}

static posthog_status_t capture_ex(posthog_client_t *c, const char *distinct_id,
                                   const char *event, const char *properties_json,
                                   const posthog_capture_options_t *eo, char *uuid_out,
                                   bool durable, bool ai);

static posthog_status_t capture_args(posthog_client_t *c, const char *distinct_id,
                                    const char *event, const char *properties_json,
                                    const posthog_capture_options_t *eo, char *uuid_out,
                                    bool durable, bool ai);

static posthog_status_t capture(posthog_client_t *c, cap_t *k) {
    /* relaxed: early exit only; the seq_cst re-check after reserving decides */
    if (PH_UNLIKELY(atomic_load_explicit(&c->state, memory_order_relaxed) != PH_RUNNING))
        return posthog__drop_at_capture(c, POSTHOG_DROP_SHUTDOWN, POSTHOG_E_SHUTDOWN, k->event, k->did);
    posthog__maybe_start_thread(c);
    posthog__crash_thread_prepare(c); /* a capturing thread may crash: alternate stack */
    const char *did = k->did;
    if (!did || !*did) did = c->o->default_distinct_id;
    if (!k->event || !*k->event)
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, k->event, did);
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
    /* capture v1 refuses a whole batch for one of these: refuse the event here */
    if (!c->o->capture_v0 && (name_n > PH_V1_MAX_ID_BYTES || did_n > PH_V1_MAX_ID_BYTES)) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s is %zu bytes; capture v1 allows at most %d",
                 name_n > PH_V1_MAX_ID_BYTES ? "the event name" : "the distinct_id",
                 name_n > PH_V1_MAX_ID_BYTES ? name_n : did_n, PH_V1_MAX_ID_BYTES);
        posthog__log(c, POSTHOG_LOG_ERROR, "event refused: %s", msg);
        posthog__report_drop_st(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, 1, 0, msg, NULL,
                                k->event, did);
        return POSTHOG_E_INVALID_EVENT;
    }
    size_t name_e = posthog__json_escaped_len_valid(k->event, name_n);
    size_t did_e = posthog__json_escaped_len_valid(did, did_n);
    if (name_e == SIZE_MAX || did_e == SIZE_MAX)
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_UTF8, NULL, NULL);

    props_out_t po;
    posthog_status_t st = merge_props(c, k, generated, &po);
    if (st != POSTHOG_OK) {
        props_out_free(&po);
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, st, k->event, did);
    }
    uint32_t flags = po.flags | (k->ts_ms ? PH_REC_TS_EXPLICIT : 0) | (k->ai ? PH_REC_AI : 0);
    if (ph_event_json_len(name_e, did_e, po.props.len, k->extra.len, flags) >
        (k->ai ? c->o->max_ai_event_bytes : c->o->max_event_bytes)) {
        props_out_free(&po);
        return posthog__drop_at_capture(c, POSTHOG_DROP_TOO_LARGE, POSTHOG_E_TOO_LARGE, k->event, did);
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
            return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, k->event, did);
        }
        posthog__rec_write(img, uuid, ts, flags, k->event, name_n, name_e, did, did_n, did_e, &po.props,
                  &k->extra);
        props_out_free(&po);
        if (c->o->disabled) {
            free(img);
            return POSTHOG_OK;
        }
        st = c->o->before_send_fn ? posthog__before_send_apply(c, &img, k->event, did) : POSTHOG_OK;
        if (st == POSTHOG_OK) {
            if (k->uuid_out) {
                posthog__uuid_format(k->uuid_out, img->uuid);
                k->uuid_out[PH_UUID_STR_LEN] = '\0';
            }
            st = k->durable ? posthog__durable_commit(c, img, k->event, did)
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
        return posthog__drop_at_capture(c, POSTHOG_DROP_QUEUE_FULL, POSTHOG_E_QUEUE_FULL, k->event, did);
    }
    posthog__rec_write(dst, uuid, ts, flags, k->event, name_n, name_e, did, did_n, did_e, &po.props,
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
    if (!dst) return posthog__drop_at_capture(c, POSTHOG_DROP_QUEUE_FULL, POSTHOG_E_QUEUE_FULL, event, did);
    memcpy(dst, img, n);
    return publish(c, &slot, queued, event, did);
}

/* ---------------------------------------------------------------- public capture */

posthog_status_t posthog_capture(posthog_client_t *c, const char *distinct_id, const char *event,
                                 const posthog_props_t *props) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (props && posthog__props_is_array(props))
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_JSON, event,
                               distinct_id);
    cap_t k = {.event = event, .did = distinct_id, .pb = props};
    return capture(c, &k);
}

/* Validates an optional JSON object argument; "null" counts as absent. On
 * failure *msg names `what` and the rule it broke. */
static posthog_status_t check_object(const char *json, ph_json_keys_t *keys, const char **out,
                                     const char *what, char *msg, size_t msglen) {
    *out = NULL;
    if (!json) return POSTHOG_OK;
    int type = 0;
    ph_json_err_t err;
    posthog_status_t st =
        posthog__json_check(json, strlen(json), PH_JSON_MAX_DEPTH, &type, keys, &err);
    if (st != POSTHOG_OK) {
        posthog__json_err_text(&err, what, msg, msglen);
        return st;
    }
    if (type == PH_JSON_LITERAL && strstr(json, "null")) return POSTHOG_OK;
    if (type != PH_JSON_OBJECT) {
        snprintf(msg, msglen, "%s must be a JSON object or null", what);
        return POSTHOG_E_INVALID_JSON;
    }
    *out = json;
    return POSTHOG_OK;
}

posthog_status_t posthog_capture_json(posthog_client_t *c, const char *distinct_id,
                                      const char *event, const char *properties_json) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    ph_json_keys_t keys;
    cap_t k = {.event = event, .did = distinct_id, .pkeys = &keys};
    char msg[256];
    posthog_status_t st =
        check_object(properties_json, &keys, &k.pjson, "properties_json", msg, sizeof msg);
    if (st != POSTHOG_OK) return refuse(c, POSTHOG_DROP_INVALID, st, msg, event, distinct_id);
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
                                   bool durable, bool ai) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    static const posthog_capture_options_t none;
    if (!eo) eo = &none;
    if ((unsigned)eo->process_person_profile > POSTHOG_FALSE ||
        (unsigned)eo->cookieless_mode > POSTHOG_FALSE ||
        (unsigned)eo->disable_skew_correction > POSTHOG_FALSE)
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_ARG, event, distinct_id);
    if (durable && !c->spool) {
#ifdef POSTHOG_NO_SPOOL
        posthog__log(c, POSTHOG_LOG_ERROR, "posthog_capture_durable: %s",
                     posthog_strerror(POSTHOG_E_NO_STORAGE));
#endif
        return posthog__drop_at_capture(c, POSTHOG_DROP_STORAGE_FULL, POSTHOG_E_NO_STORAGE, event,
                               distinct_id);
    }
    /* a flags snapshot adds $feature/<key> and $active_feature_flags */
    char *with_flags = NULL;
    if (eo->flags) {
        if (!(with_flags = posthog__flags_event_props(eo->flags, properties_json)))
            return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_JSON, event,
                                            distinct_id);
        properties_json = with_flags;
    }
    posthog_status_t st = capture_args(c, distinct_id, event, properties_json, eo, uuid_out, durable, ai);
    free(with_flags);
    return st;
}

static posthog_status_t capture_args(posthog_client_t *c, const char *distinct_id,
                                    const char *event, const char *properties_json,
                                    const posthog_capture_options_t *eo, char *uuid_out,
                                    bool durable, bool ai) {
    int64_t timestamp_ms = eo->timestamp_ms;
    const char *uuid = eo->uuid, *groups_json = eo->groups_json, *set_json = eo->set_json,
               *set_once_json = eo->set_once_json;
    ph_json_keys_t keys, scratch;
    uint8_t ubin[16];
    cap_t k = {.event = event, .did = distinct_id, .pkeys = &keys, .ts_ms = timestamp_ms,
               .uuid_out = uuid_out, .durable = durable, .eo = eo, .ai = ai};
    const char *set = NULL, *set_once = NULL;
    char msg[256];
    posthog_status_t st =
        check_object(properties_json, &keys, &k.pjson, "properties_json", msg, sizeof msg);
    if (st == POSTHOG_OK)
        st = check_object(groups_json, &scratch, &k.groups_json, "groups_json", msg, sizeof msg);
    if (st == POSTHOG_OK) st = check_object(set_json, &scratch, &set, "set_json", msg, sizeof msg);
    if (st == POSTHOG_OK)
        st = check_object(set_once_json, &scratch, &set_once, "set_once_json", msg, sizeof msg);
    if (st == POSTHOG_OK && uuid && posthog__uuid_parse(uuid, strlen(uuid), ubin)) {
        snprintf(msg, sizeof msg, "uuid \"%.40s\" is not a UUID (8-4-4-4-12 hex digits)", uuid);
        st = POSTHOG_E_INVALID_ARG;
    }
    if (st != POSTHOG_OK) return refuse(c, POSTHOG_DROP_INVALID, st, msg, event, distinct_id);
    if (uuid) k.uuid = ubin;
    ph_buf_t extra;
    posthog__buf_init(&extra, (size_t)PH_MAX(c->o->max_event_bytes, c->o->max_ai_event_bytes));
    if ((set && extra_add(&extra, "$set", set)) ||
        (set_once && extra_add(&extra, "$set_once", set_once))) {
        posthog__buf_free(&extra);
        return posthog__drop_at_capture(c, POSTHOG_DROP_TOO_LARGE, POSTHOG_E_TOO_LARGE, event, distinct_id);
    }
    ph_frags_add(&k.extra, extra.data, extra.len);
    st = capture(c, &k);
    posthog__buf_free(&extra);
    return st;
}

/* The _ex calls' arguments as capture options. */
static posthog_capture_options_t ex_options(int64_t timestamp_ms, const char *uuid,
                                            const char *groups_json, const char *set_json,
                                            const char *set_once_json) {
    return (posthog_capture_options_t){.timestamp_ms = timestamp_ms, .uuid = uuid,
                                       .groups_json = groups_json, .set_json = set_json,
                                       .set_once_json = set_once_json};
}

posthog_status_t posthog_capture_ex(posthog_client_t *c, const char *distinct_id,
                                    const char *event, const char *properties_json,
                                    int64_t timestamp_ms, const char *uuid,
                                    const char *groups_json, const char *set_json,
                                    const char *set_once_json, char *uuid_out) {
    posthog_capture_options_t eo = ex_options(timestamp_ms, uuid, groups_json, set_json,
                                              set_once_json);
    return capture_ex(c, distinct_id, event, properties_json, &eo, uuid_out, false, false);
}

posthog_status_t posthog_capture_opts(posthog_client_t *c, const char *distinct_id,
                                      const char *event, const char *properties_json,
                                      const posthog_capture_options_t *opts, char *uuid_out) {
    return capture_ex(c, distinct_id, event, properties_json, opts, uuid_out, false, false);
}

posthog_status_t posthog_capture_durable(posthog_client_t *c, const char *distinct_id,
                                         const char *event, const char *properties_json) {
    return capture_ex(c, distinct_id, event, properties_json, NULL, NULL, true, false);
}

posthog_status_t posthog_capture_ai(posthog_client_t *c, const char *distinct_id,
                                    const char *event, const char *properties_json,
                                    const posthog_capture_options_t *opts, char *uuid_out) {
    return capture_ex(c, distinct_id, event, properties_json, opts, uuid_out, false, true);
}

posthog_status_t posthog_capture_durable_opts(posthog_client_t *c, const char *distinct_id,
                                              const char *event, const char *properties_json,
                                              const posthog_capture_options_t *opts,
                                              char *uuid_out) {
    return capture_ex(c, distinct_id, event, properties_json, opts, uuid_out, true, false);
}

posthog_status_t posthog_capture_durable_ex(posthog_client_t *c, const char *distinct_id,
                                            const char *event, const char *properties_json,
                                            int64_t timestamp_ms, const char *uuid,
                                            const char *groups_json, const char *set_json,
                                            const char *set_once_json, char *uuid_out) {
    posthog_capture_options_t eo = ex_options(timestamp_ms, uuid, groups_json, set_json,
                                              set_once_json);
    return capture_ex(c, distinct_id, event, properties_json, &eo, uuid_out, true, false);
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
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, "$create_alias",
                               distinct_id);
    posthog_props_t *p = posthog_props_new();
    if (!p) return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, NULL, NULL);
    posthog_status_t st = POSTHOG_OK;
    if (distinct_id && *distinct_id) st = posthog_props_set_string(p, "distinct_id", distinct_id);
    if (st == POSTHOG_OK) st = posthog_props_set_string(p, "alias", alias);
    st = st == POSTHOG_OK ? posthog_capture(c, distinct_id, "$create_alias", p)
                          : posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, st, "$create_alias", NULL);
    posthog_props_free(p);
    return st;
}

posthog_status_t posthog_group_identify(posthog_client_t *c, const char *group_type,
                                        const char *group_key, const char *properties_json,
                                        const char *distinct_id) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    if (!group_type || !*group_type || !group_key || !*group_key)
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_INVALID_EVENT, "$groupidentify",
                               distinct_id);
    ph_json_keys_t keys;
    const char *set = NULL;
    char msg[256];
    posthog_status_t st =
        check_object(properties_json, &keys, &set, "properties_json", msg, sizeof msg);
    if (st != POSTHOG_OK) return refuse(c, POSTHOG_DROP_INVALID, st, msg, "$groupidentify", distinct_id);
    posthog_props_t *p = posthog_props_new();
    char *did = NULL;
    if (!p) return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, NULL, NULL);
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
             : posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, st, "$groupidentify", distinct_id);
    free(did);
    posthog_props_free(p);
    return st;
}

