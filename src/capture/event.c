/*
 * event: expanding queue records to the JSON PostHog receives.
 * Field order is fixed: uuid, event, distinct_id, timestamp, properties,
 * then extra top-level members.
 */
#include "event.h"

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

char *posthog__event_write(char *o, const ph_rec_t *r) {
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
    o += PH_ISO8601_LEN;
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
