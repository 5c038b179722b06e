/*
 * before_send: runs the user's callback on a captured event and builds the
 * record of its replacement (before_send.h). The replacement is owned by
 * the library (posthog_replacement_t, on this thread's stack for the call);
 * its text is never re-printed: values, numbers included, are copied as
 * written, after the same checks as capture (json.h: numbers within the
 * double range, nesting, decoded keys).
 */
#include "before_send.h"

#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "util.h"

/*
 * What before_send's callback edits (posthog_replacement_t): owned by the
 * library, on the capturing thread's stack, valid for the call. `text` is
 * the replacement's JSON once the callback set or edited it; `rec` its
 * record, built at once, so the callback's call learns whether it is
 * acceptable. Nothing the callback hands over is ever freed by the library.
 */
struct posthog_replacement {
    posthog_client_t *c;
    const ph_rec_t *orig;
    const char *orig_json; /* what the callback received */
    size_t orig_len;
    ph_buf_t text;
    bool edited;
    ph_rec_t *rec;         /* NULL while refused */
    posthog_status_t st;   /* why it was refused */
    char msg[320];
};

/* Keys compare by their decoded value ("\u0065vent" is "event"). */
static bool member_is(const ph_json_member_t *m, const char *key) {
    return posthog__json_str_eq(m->key, m->klen, key, strlen(key));
}

/* The decoded value of a string member (malloc'ed, NUL-terminated), or NULL. */
static char *member_string(const ph_json_member_t *m, size_t *len) {
    char *s = malloc(m->vlen);
    if (!s) return NULL;
    *len = posthog__json_unescape(s, m->val + 1, m->vlen - 2);
    s[*len] = '\0';
    return s;
}

static bool is_string(const ph_json_member_t *m) { return m->val && m->val[0] == '"'; }
static bool is_null(const ph_json_member_t *m) {
    return !m->val || (m->vlen == 4 && !memcmp(m->val, "null", 4));
}

/* Top-level members of an event text that are not copied as extras. */
typedef struct {
    ph_json_member_t ev, did, uuid, ts, props;
} ev_fields_t;

static ph_json_member_t *field_of(ev_fields_t *f, const ph_json_member_t *m) {
    if (member_is(m, "event")) return &f->ev;
    if (member_is(m, "distinct_id")) return &f->did;
    if (member_is(m, "uuid")) return &f->uuid;
    if (member_is(m, "timestamp")) return &f->ts;
    if (member_is(m, "properties")) return &f->props;
    return NULL;
}

/*
 * Builds a record image from an event JSON object (before_send's
 * replacement). Values are copied as written: numbers keep their exact
 * text, and the same rules as at capture apply (numbers within the double
 * range, nesting, the v1 id lengths, max_event_bytes). On failure *msg says
 * what was wrong and what is allowed.
 */
static posthog_status_t rec_from_json(posthog_client_t *c, const char *json, size_t n,
                                      const ph_rec_t *orig, ph_rec_t **out, char *msg,
                                      size_t msglen) {
    *out = NULL;
    int type = 0;
    ph_json_keys_t keys;
    ph_json_err_t err;
    posthog_status_t st = posthog__json_check(json, n, PH_EVENT_MAX_DEPTH, &type, &keys, &err);
    if (st != POSTHOG_OK) {
        if (err.kind == PH_JERR_DEPTH)
            snprintf(msg, msglen,
                     "the event nests objects and arrays deeper than %d levels (at byte %zu): "
                     "property values may nest at most %d levels",
                     PH_EVENT_MAX_DEPTH, err.off, PH_JSON_MAX_DEPTH);
        else
            posthog__json_err_text(&err, "the event", msg, msglen);
        return st;
    }
    if (type != PH_JSON_OBJECT) {
        snprintf(msg, msglen, "the event must be a JSON object");
        return POSTHOG_E_INVALID_JSON;
    }
    uint32_t limit = (orig->flags & PH_REC_AI) ? c->o->max_ai_event_bytes : c->o->max_event_bytes;
    ev_fields_t f;
    memset(&f, 0, sizeof f);
    char *name = NULL, *did = NULL;
    ph_buf_t extra;
    posthog__buf_init(&extra, limit);
    ph_json_iter_t it;
    ph_json_member_t m;
    ph_json_iter_init(&it, json + keys.inner_off, keys.inner_len);
    while (posthog__json_next_member(&it, &m)) {
        ph_json_member_t *slot = field_of(&f, &m);
        if (slot) {
            if (!slot->val) *slot = m; /* the first one counts, as when parsing */
            continue;
        }
        /* another top-level member ($set, $set_once, ...): a user value */
        if (posthog__json_check(m.val, m.vlen, PH_JSON_MAX_DEPTH, NULL, NULL, &err) != POSTHOG_OK) {
            char what[96];
            snprintf(what, sizeof what, "the event's member \"%.*s\"", (int)PH_MIN(m.klen, 40),
                     m.key);
            posthog__json_err_text(&err, what, msg, msglen);
            st = POSTHOG_E_INVALID_JSON;
            goto done;
        }
        if ((extra.len && ph_buf_putc(&extra, ',')) || ph_buf_putc(&extra, '"') ||
            posthog__buf_append(&extra, m.key, m.klen) || posthog__buf_append(&extra, "\":", 2) ||
            posthog__buf_append(&extra, m.val, m.vlen)) {
            snprintf(msg, msglen, "the event is larger than max_event_bytes (%u)", limit);
            st = POSTHOG_E_TOO_LARGE;
            goto done;
        }
    }
    size_t nn = 0, dn = 0;
    bool oom = false;
    if (is_string(&f.ev) && f.ev.vlen > 2) oom = !(name = member_string(&f.ev, &nn));
    if (is_string(&f.did) && f.did.vlen > 2) {
        oom = oom || !(did = member_string(&f.did, &dn));
    } else if (f.did.val && (f.did.val[0] == '-' || (f.did.val[0] >= '0' && f.did.val[0] <= '9'))) {
        did = strndup(f.did.val, f.did.vlen); /* a number: its text as written */
        dn = f.did.vlen;
        oom = oom || !did;
    }
    if (oom) {
        snprintf(msg, msglen, "out of memory");
        st = POSTHOG_E_NOMEM;
        goto done;
    }
    if (!name || !nn || !did || !dn) {
        snprintf(msg, msglen, "the event needs a non-empty string \"event\" and a non-empty "
                              "\"distinct_id\" (a string or a number)");
        st = POSTHOG_E_INVALID_EVENT;
        goto done;
    }
    if (!c->o->capture_v0 && (nn > PH_V1_MAX_ID_BYTES || dn > PH_V1_MAX_ID_BYTES)) {
        snprintf(msg, msglen, "%s is %zu bytes; capture v1 allows at most %d",
                 nn > PH_V1_MAX_ID_BYTES ? "the event name" : "the distinct_id",
                 nn > PH_V1_MAX_ID_BYTES ? nn : dn, PH_V1_MAX_ID_BYTES);
        st = POSTHOG_E_INVALID_EVENT;
        goto done;
    }
    uint8_t uuid[16];
    memcpy(uuid, orig->uuid, 16);
    if (!is_null(&f.uuid) && (!is_string(&f.uuid) ||
                              posthog__uuid_parse(f.uuid.val + 1, f.uuid.vlen - 2, uuid))) {
        snprintf(msg, msglen, "the event's \"uuid\" %.*s is not a UUID (8-4-4-4-12 hex digits); "
                 "leave it out to keep the original", (int)PH_MIN(f.uuid.vlen, 64), f.uuid.val);
        st = POSTHOG_E_INVALID_EVENT;
        goto done;
    }
    int64_t ts = orig->ts_ms;
    if (!is_null(&f.ts) && (!is_string(&f.ts) ||
                            posthog__iso8601_parse(f.ts.val + 1, f.ts.vlen - 2, &ts))) {
        snprintf(msg, msglen, "the event's \"timestamp\" %.*s is not an ISO 8601 time "
                 "(YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)); leave it out to keep the original",
                 (int)PH_MIN(f.ts.vlen, 64), f.ts.val);
        st = POSTHOG_E_INVALID_EVENT;
        goto done;
    }
    ph_frags_t pf = {0}, xf = {0};
    if (!is_null(&f.props)) {
        if (f.props.val[0] != '{') {
            snprintf(msg, msglen, "the event's \"properties\" must be a JSON object");
            st = POSTHOG_E_INVALID_JSON;
            goto done;
        }
        /* the members as written, between the braces, trimmed */
        const char *pb = f.props.val + 1, *pe = f.props.val + f.props.vlen - 1;
        while (pb < pe && (*pb == ' ' || *pb == '\t' || *pb == '\n' || *pb == '\r')) pb++;
        while (pe > pb && (pe[-1] == ' ' || pe[-1] == '\t' || pe[-1] == '\n' || pe[-1] == '\r'))
            pe--;
        ph_frags_add(&pf, pb, (size_t)(pe - pb));
    }
    ph_frags_add(&xf, extra.data, extra.len);
    size_t ne = posthog__json_escaped_len(name, nn), de = posthog__json_escaped_len(did, dn);
    uint32_t flags = ts != orig->ts_ms ? PH_REC_TS_EXPLICIT : (orig->flags & PH_REC_TS_EXPLICIT);
    flags |= orig->flags & PH_REC_AI;
    if (!c->o->capture_v0) flags |= PH_REC_LIFT; /* arbitrary properties: the slow path */
    size_t total = ph_event_json_len(ne, de, pf.len, xf.len, flags);
    if (total > limit) {
        snprintf(msg, msglen, "the event is %zu bytes; %s is %u", total,
                 (flags & PH_REC_AI) ? "max_ai_event_bytes" : "max_event_bytes", limit);
        st = POSTHOG_E_TOO_LARGE;
        goto done;
    }
    ph_rec_t *r = malloc(sizeof *r + ne + de + pf.len + xf.len);
    if (!r) {
        snprintf(msg, msglen, "out of memory");
        st = POSTHOG_E_NOMEM;
        goto done;
    }
    posthog__rec_write(r, uuid, ts, flags, name, nn, ne, did, dn, de, &pf, &xf);
    *out = r;
    st = POSTHOG_OK;
done:
    free(name);
    free(did);
    posthog__buf_free(&extra);
    return st;
}

/* Rebuilds the record of an edited replacement. */
static posthog_status_t replacement_build(posthog_replacement_t *r) {
    free(r->rec);
    r->rec = NULL;
    r->msg[0] = '\0';
    r->st = rec_from_json(r->c, r->text.data, r->text.len, r->orig, &r->rec, r->msg,
                          sizeof r->msg);
    return r->st;
}

static posthog_status_t replacement_refuse(posthog_replacement_t *r, posthog_status_t st,
                                           const char *msg) {
    free(r->rec);
    r->rec = NULL;
    r->st = st;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    return st;
}

posthog_status_t posthog_replacement_set(posthog_replacement_t *r, const char *event_json) {
    if (!r) return POSTHOG_E_INVALID_ARG;
    r->edited = true;
    r->text.len = 0;
    if (!event_json)
        return replacement_refuse(r, POSTHOG_E_INVALID_ARG, "the replacement event is NULL");
    if (posthog__buf_append(&r->text, event_json, strlen(event_json)))
        return replacement_refuse(r, POSTHOG_E_TOO_LARGE,
                                  "the replacement event's text is larger than max_event_bytes");
    return replacement_build(r);
}

posthog_status_t posthog_replacement_remove_property(posthog_replacement_t *r, const char *key) {
    if (!r || !key) return POSTHOG_E_INVALID_ARG;
    if (!r->edited) { /* first edit: start from the event the callback got */
        r->edited = true;
        r->text.len = 0;
        if (posthog__buf_append(&r->text, r->orig_json, r->orig_len))
            return replacement_refuse(r, POSTHOG_E_NOMEM, "out of memory");
        replacement_build(r);
    }
    if (r->st != POSTHOG_OK) return r->st; /* a refused text cannot be edited */
    size_t kl = strlen(key), ke = posthog__json_escaped_len_valid(key, kl);
    if (ke == SIZE_MAX) return POSTHOG_E_INVALID_UTF8;
    char *kesc = malloc(ke + 1);
    if (!kesc) return POSTHOG_E_NOMEM;
    posthog__json_escape(kesc, key, kl);
    /* the text is valid (its record was built): find "properties" */
    const char *t = r->text.data;
    ph_json_keys_t keys;
    posthog__json_validate_event(t, r->text.len, NULL, &keys);
    ph_json_iter_t it;
    ph_json_member_t m, props = {0};
    ph_json_iter_init(&it, t + keys.inner_off, keys.inner_len);
    while (posthog__json_next_member(&it, &m))
        if (member_is(&m, "properties") && !props.val) props = m;
    posthog_status_t st = POSTHOG_OK;
    if (props.val && props.val[0] == '{') {
        ph_buf_t nb;
        posthog__buf_init(&nb, r->text.max);
        size_t head = (size_t)(props.val - t) + 1;
        int bad = posthog__buf_append(&nb, t, head);
        bool first = true, removed = false;
        ph_json_iter_init(&it, props.val + 1, props.vlen - 2);
        while (!bad && posthog__json_next_member(&it, &m)) {
            if (posthog__json_str_eq(m.key, m.klen, kesc, ke)) {
                removed = true;
                continue;
            }
            bad = (!first && ph_buf_putc(&nb, ',')) || ph_buf_putc(&nb, '"') ||
                  posthog__buf_append(&nb, m.key, m.klen) || posthog__buf_append(&nb, "\":", 2) ||
                  posthog__buf_append(&nb, m.val, m.vlen);
            first = false;
        }
        const char *tail = props.val + props.vlen - 1; /* the closing brace on */
        bad = bad || posthog__buf_append(&nb, tail, r->text.len - (size_t)(tail - t));
        if (bad) {
            st = POSTHOG_E_NOMEM;
        } else if (removed) {
            posthog__buf_free(&r->text);
            r->text = nb;
            nb.data = NULL;
            st = replacement_build(r);
        }
        posthog__buf_free(&nb);
    }
    free(kesc);
    return st;
}

posthog_status_t posthog__before_send_apply(posthog_client_t *c, ph_rec_t **img,
                                            const char *event, const char *did) {
    size_t limit = (size_t)PH_MAX(c->o->max_event_bytes, c->o->max_ai_event_bytes);
    ph_buf_t b;
    posthog__buf_init(&b, limit + 1024);
    if (posthog__event_format(&b, *img)) {
        posthog__buf_free(&b);
        return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, POSTHOG_E_NOMEM, event, did);
    }
    posthog_replacement_t rp;
    memset(&rp, 0, sizeof rp);
    rp.c = c;
    rp.orig = *img;
    rp.orig_json = b.data;
    rp.orig_len = b.len;
    /* a replacement's text may be spaced out: room for twice the limit */
    posthog__buf_init(&rp.text, 2 * limit + 4096);
    ph_cb_frame_t fr;
    ph_cb_enter(&fr, c); /* flush/shutdown/free of this client refused inside (report.c) */
    int v = (int)c->o->before_send_fn(b.data, &rp, c->o->before_send_ud);
    ph_cb_leave(&fr);
    posthog_status_t st = POSTHOG_OK;
    if (v == POSTHOG_BEFORE_SEND_DROP) {
        st = posthog__drop_at_capture(c, POSTHOG_DROP_BEFORE_SEND, POSTHOG_E_DROPPED, event, did);
    } else if (v == POSTHOG_BEFORE_SEND_REPLACE && rp.edited) {
        if (rp.rec) {
            free(*img);
            *img = rp.rec;
            rp.rec = NULL;
        } else {
            char msg[400];
            snprintf(msg, sizeof msg, "before_send's replacement: %s", rp.msg);
            posthog__log(c, POSTHOG_LOG_ERROR, "event refused: %s", msg);
            posthog__report_drop_st(c, rp.st == POSTHOG_E_TOO_LARGE ? POSTHOG_DROP_TOO_LARGE
                                                                    : POSTHOG_DROP_INVALID,
                                    rp.st, 1, 0, msg, NULL, event, did);
            st = rp.st;
        }
    } else if (v == POSTHOG_BEFORE_SEND_REPLACE) {
        posthog__log(c, POSTHOG_LOG_WARN,
                     "before_send returned REPLACE without a replacement "
                     "(posthog_replacement_set): event \"%s\" is sent unchanged", event);
    } else if (v != POSTHOG_BEFORE_SEND_KEEP) {
        posthog__log(c, POSTHOG_LOG_WARN,
                     "before_send returned %d, which is not KEEP (0), REPLACE (1) or DROP (2): "
                     "event \"%s\" is sent unchanged", v, event);
    }
    free(rp.rec);
    posthog__buf_free(&rp.text);
    posthog__buf_free(&b);
    return st;
}
