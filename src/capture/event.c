/*
 * event: expanding queue records to the JSON PostHog receives.
 * Field order is fixed: uuid, event, distinct_id, timestamp, properties,
 * then extra top-level members.
 */
#include "event.h"

#include "json.h"

char *posthog__frags_write(char *o, const ph_frags_t *fs) {
    for (int i = 0; i < fs->n; i++) {
        if (i) *o++ = ',';
        memcpy(o, fs->f[i].p, fs->f[i].n);
        o += fs->f[i].n;
    }
    return o;
}

#define PUT(lit)                                                                               \
    do {                                                                                       \
        memcpy(o, lit, sizeof(lit) - 1);                                                       \
        o += sizeof(lit) - 1;                                                                  \
    } while (0)

/* {"uuid":"..","event":"..","distinct_id":"..","timestamp":"..  (both
 * protocols start an event so; the uuid first lets a batch find it) */
static char *write_head(char *o, const ph_rec_t *r) {
    PUT("{\"uuid\":\"");
    posthog__uuid_format(o, r->uuid);
    o += PH_UUID_STR_LEN;
    PUT("\",\"event\":\"");
    memcpy(o, ph_rec_name(r), r->name_len);
    o += r->name_len;
    PUT("\",\"distinct_id\":\"");
    memcpy(o, ph_rec_did(r), r->did_len);
    o += r->did_len;
    PUT("\",\"timestamp\":\"");
    posthog__iso8601_ms(o, r->ts_ms);
    return o + PH_ISO8601_LEN;
}

char *posthog__event_write(char *o, const ph_rec_t *r) {
    o = write_head(o, r);
    PUT("\",\"properties\":{");
    memcpy(o, ph_rec_props(r), r->props_len);
    o += r->props_len;
    bool sep = r->props_len != 0;
    if (r->flags & PH_REC_LIB) {
        if (sep) *o++ = ',';
        PUT(PH_LIB_MEMBER);
        sep = true;
    }
    if (r->flags & PH_REC_LIBV) {
        if (sep) *o++ = ',';
        PUT(PH_LIBV_MEMBER);
    }
    *o++ = '}';
    if (r->extra_len) {
        *o++ = ',';
        memcpy(o, ph_rec_extra(r), r->extra_len);
        o += r->extra_len;
    }
    *o++ = '}';
    return o;
}

int posthog__event_format(ph_buf_t *b, const ph_rec_t *r) {
    size_t n = ph_rec_json_len(r);
    if (posthog__buf_reserve(b, n)) return -1;
    char *end = posthog__event_write(b->data + b->len, r);
    b->len = (size_t)(end - b->data);
    b->data[b->len] = '\0';
    return 0;
}

char *posthog__event_write_v1(char *o, const ph_rec_t *r) {
    o = write_head(o, r);
    PUT("\",\"options\":{},\"properties\":{");
    memcpy(o, ph_rec_props(r), r->props_len);
    o += r->props_len;
    if (r->extra_len) {
        if (r->props_len) *o++ = ',';
        memcpy(o, ph_rec_extra(r), r->extra_len);
        o += r->extra_len;
    }
    *o++ = '}';
    *o++ = '}';
    return o;
}

/* ------------------------------------------------------------ conversion */

/* The $ properties v1 lifts, and where they go. */
typedef struct {
    const char *prop;   /* in v0 properties */
    const char *v1;     /* v1 name */
    char type;          /* 'b' boolean, 's' string */
    bool top;           /* v1: a top-level field, else a member of "options" */
} lift_t;

static const lift_t lifts[] = {
    {"$session_id", "session_id", 's', true},
    {"$window_id", "window_id", 's', true},
    {"$process_person_profile", "process_person_profile", 'b', false},
    {"$cookieless_mode", "cookieless_mode", 'b', false},
    {"$ignore_sent_at", "disable_skew_correction", 'b', false},
    {"$product_tour_id", "product_tour_id", 's', false},
};
#define NLIFTS (sizeof lifts / sizeof lifts[0])

bool posthog__is_lift_key(const char *key, size_t klen) {
    char plain[32]; /* longer than any lifted key */
    if (klen >= 4 && klen <= 6 * sizeof plain && memchr(key, '\\', klen)) {
        /* written with escapes ("\u0024lib"): compare the decoded key */
        char tmp[6 * sizeof plain];
        size_t n = posthog__json_unescape(tmp, key, klen);
        if (n > sizeof plain) return false;
        memcpy(plain, tmp, n);
        key = plain;
        klen = n;
    }
    if (klen < 4 || key[0] != '$') return false;
    if ((klen == 4 && !memcmp(key, "$lib", 4)) || (klen == 12 && !memcmp(key, "$lib_version", 12)))
        return true;
    for (size_t i = 0; i < NLIFTS; i++)
        if (strlen(lifts[i].prop) == klen && !memcmp(lifts[i].prop, key, klen)) return true;
    return false;
}

/* Keys compare by decoded value: "\u0024lib" is "$lib". */
static bool key_is(const ph_json_member_t *m, const char *k) {
    return posthog__json_str_eq(m->key, m->klen, k, strlen(k));
}

static bool type_ok(const ph_json_member_t *m, char type) {
    if (type == 's') return m->vlen >= 2 && m->val[0] == '"';
    return (m->vlen == 4 && !memcmp(m->val, "true", 4)) ||
           (m->vlen == 5 && !memcmp(m->val, "false", 5));
}

static int put(ph_buf_t *b, const char *s, size_t n) { return posthog__buf_append(b, s, n); }
static int puts_(ph_buf_t *b, const char *s) { return put(b, s, strlen(s)); }

/* A member's text, after a ',' unless it is the first. */
static int raw_member(ph_buf_t *b, bool *first, const char *text) {
    if (!*first && ph_buf_putc(b, ',')) return -1;
    *first = false;
    return puts_(b, text);
}

/* ,"key":value (or without the comma when *first) */
static int member(ph_buf_t *b, bool *first, const char *k, size_t kl, const char *v, size_t vl) {
    if (!*first && ph_buf_putc(b, ',')) return -1;
    *first = false;
    return ph_buf_putc(b, '"') || put(b, k, kl) || put(b, "\":", 2) || put(b, v, vl);
}

/* Records a lifted member: the first valid one of each kind wins. */
static void lift(ph_json_member_t *lifted, bool *have, size_t i, const ph_json_member_t *m) {
    if (have[i] || !type_ok(m, lifts[i].type)) return;
    lifted[i] = *m;
    have[i] = true;
}

#define MAX_TOP 32

int posthog__event_convert(ph_proto_t p, const char *json, size_t n, ph_buf_t *out) {
    int type = 0;
    ph_json_keys_t keys;
    if (posthog__json_validate_event(json, n, &type, &keys) != POSTHOG_OK ||
        type != PH_JSON_OBJECT)
        return -1;
    ph_json_iter_t it;
    ph_json_member_t m, uuid = {0}, ev = {0}, did = {0}, ts = {0}, props = {0}, opts = {0};
    ph_json_member_t lifted[NLIFTS];
    bool have[NLIFTS] = {false};
    ph_json_member_t extra[MAX_TOP];
    size_t nextra = 0;
    ph_json_iter_init(&it, json + keys.inner_off, keys.inner_len);
    while (posthog__json_next_member(&it, &m)) {
        if (key_is(&m, "uuid")) uuid = m;
        else if (key_is(&m, "event")) ev = m;
        else if (key_is(&m, "distinct_id")) did = m;
        else if (key_is(&m, "timestamp")) ts = m;
        else if (key_is(&m, "properties") && m.vlen && m.val[0] == '{') props = m;
        else if (key_is(&m, "options") && m.vlen && m.val[0] == '{') opts = m;
        else {
            size_t i = 0; /* a v1 text's top-level lifted fields */
            while (i < NLIFTS && !(lifts[i].top && key_is(&m, lifts[i].v1))) i++;
            if (i < NLIFTS && type_ok(&m, lifts[i].type)) lift(lifted, have, i, &m);
            else if (nextra < MAX_TOP) extra[nextra++] = m;
            else return -1;
        }
    }
    if (!uuid.vlen || !ev.vlen || !did.vlen || !ts.vlen) return -1;
    /* options of a v1 text, by their v1 names */
    if (opts.vlen > 2) {
        ph_json_iter_t oi;
        ph_json_iter_init(&oi, opts.val + 1, opts.vlen - 2);
        while (posthog__json_next_member(&oi, &m))
            for (size_t i = 0; i < NLIFTS; i++)
                if (!lifts[i].top && key_is(&m, lifts[i].v1)) lift(lifted, have, i, &m);
    }
    bool first = true;
    if (ph_buf_putc(out, '{') || member(out, &first, "uuid", 4, uuid.val, uuid.vlen) ||
        member(out, &first, "event", 5, ev.val, ev.vlen) ||
        member(out, &first, "distinct_id", 11, did.val, did.vlen) ||
        member(out, &first, "timestamp", 9, ts.val, ts.vlen))
        return -1;
    /* properties first pass: in v1, lift what the properties carry */
    bool has_lib = false, has_libv = false;
    if (props.vlen > 2) {
        ph_json_iter_t pi;
        ph_json_iter_init(&pi, props.val + 1, props.vlen - 2);
        while (posthog__json_next_member(&pi, &m)) {
            if (key_is(&m, "$lib")) has_lib = true;
            if (key_is(&m, "$lib_version")) has_libv = true;
            for (size_t i = 0; i < NLIFTS; i++)
                if (key_is(&m, lifts[i].prop)) lift(lifted, have, i, &m);
        }
    }
    if (p == PH_PROTO_V1) {
        for (size_t i = 0; i < NLIFTS; i++)
            if (have[i] && lifts[i].top &&
                member(out, &first, lifts[i].v1, strlen(lifts[i].v1), lifted[i].val,
                       lifted[i].vlen))
                return -1;
        if (puts_(out, ",\"options\":{")) return -1;
        bool of = true;
        for (size_t i = 0; i < NLIFTS; i++)
            if (have[i] && !lifts[i].top &&
                member(out, &of, lifts[i].v1, strlen(lifts[i].v1), lifted[i].val,
                       lifted[i].vlen))
                return -1;
        if (puts_(out, "},\"properties\":{")) return -1;
    } else {
        if (puts_(out, ",\"properties\":{")) return -1;
    }
    bool pf = true;
    if (props.vlen > 2) {
        ph_json_iter_t pi;
        ph_json_iter_init(&pi, props.val + 1, props.vlen - 2);
        while (posthog__json_next_member(&pi, &m)) {
            bool skip = false;
            if (p == PH_PROTO_V1) { /* $lib* dropped, lifted members moved */
                skip = key_is(&m, "$lib") || key_is(&m, "$lib_version");
                for (size_t i = 0; i < NLIFTS && !skip; i++) skip = have[i] && lifted[i].val == m.val;
            }
            if (!skip && member(out, &pf, m.key, m.klen, m.val, m.vlen)) return -1;
        }
    }
    if (p == PH_PROTO_V1) {
        /* top-level extras ($set, $set_once, ...) live inside the properties */
        for (size_t i = 0; i < nextra; i++) {
            if (props.vlen > 2 &&
                posthog__json_inner_has_key(props.val + 1, props.vlen - 2, extra[i].key,
                                            extra[i].klen))
                continue;
            if (member(out, &pf, extra[i].key, extra[i].klen, extra[i].val, extra[i].vlen))
                return -1;
        }
        return put(out, "}}", 2);
    }
    /* v0: what a v1 text lifted goes back into the properties */
    for (size_t i = 0; i < NLIFTS; i++) {
        if (!have[i] || (props.vlen > 2 && lifted[i].val >= props.val &&
                         lifted[i].val < props.val + props.vlen))
            continue;
        if (member(out, &pf, lifts[i].prop, strlen(lifts[i].prop), lifted[i].val,
                   lifted[i].vlen))
            return -1;
    }
    if ((!has_lib && raw_member(out, &pf, PH_LIB_MEMBER)) ||
        (!has_libv && raw_member(out, &pf, PH_LIBV_MEMBER)) || ph_buf_putc(out, '}'))
        return -1;
    bool xf = false; /* after "properties" */
    for (size_t i = 0; i < nextra; i++)
        if (member(out, &xf, extra[i].key, extra[i].klen, extra[i].val, extra[i].vlen)) return -1;
    return ph_buf_putc(out, '}');
}
