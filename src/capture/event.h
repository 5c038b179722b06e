/*
 * event: the compact form of a captured event inside the queue, and its
 * expansion to the JSON object sent to PostHog.
 *
 * A record is a fixed header followed by four texts, all already valid
 * JSON fragments (strings escaped, properties validated):
 *   name      escaped event name (no quotes)
 *   did       escaped distinct_id (no quotes)
 *   props     the properties object's members, without braces
 *   extra     extra top-level members (e.g. "$set":{...}), without braces
 * uuid and timestamp stay binary until the flusher formats the event, so
 * the queue holds ~100 bytes less per event than the JSON would take.
 */
#ifndef POSTHOG_EVENT_H
#define POSTHOG_EVENT_H

#include "common.h"
#include "util.h"

enum {
    PH_REC_LIB = 1,          /* the flusher adds "$lib":"posthog-c" */
    PH_REC_LIBV = 2,         /* ... and "$lib_version" */
    PH_REC_TS_EXPLICIT = 4,  /* ts_ms came from the caller, not the clock */
    PH_REC_LIFT = 8,         /* properties hold keys capture v1 lifts out of them
                                ($session_id, $process_person_profile, $lib, ...):
                                formatted through posthog__event_convert */
    PH_REC_AI = 16           /* an $ai_* event: batched apart, for the AI endpoint */
};

/* Longest event name and distinct_id capture v1 accepts (bytes). */
#define PH_V1_MAX_ID_BYTES 200

/* Wire protocols (capture-api.md): v0 /batch/, v1 /i/v1/analytics/events. */
typedef enum { PH_PROTO_V0 = 0, PH_PROTO_V1 = 1 } ph_proto_t;

typedef struct ph_rec {
    uint8_t uuid[16];
    int64_t ts_ms;     /* event timestamp, Unix ms; capture time unless TS_EXPLICIT */
    uint32_t name_len, did_len, props_len, extra_len;
    uint32_t flags;    /* PH_REC_* */
} ph_rec_t;

#define PH_LIB_MEMBER "\"$lib\":\"posthog-c\""
#define PH_LIBV_MEMBER "\"$lib_version\":\"" POSTHOG_VERSION_STRING "\""

/* Bytes of JSON a record expands to, for given text lengths and flags. */
static inline size_t ph_event_json_len(size_t name, size_t did, size_t props, size_t extra,
                                       uint32_t flags) {
    /* {"uuid":"<36>","event":"","distinct_id":"","timestamp":"<24>","properties":{}} */
    size_t lib = (flags & PH_REC_LIB ? sizeof PH_LIB_MEMBER : 0) + /* each incl. a ',' */
                 (flags & PH_REC_LIBV ? sizeof PH_LIBV_MEMBER : 0);
    if (lib && !props) lib--; /* the first member of empty properties has no ',' */
    return 130 + name + did + props + (extra ? extra + 1 : 0) + lib;
}

static inline size_t ph_rec_json_len(const void *rec) {
    const uint32_t *l = &((const ph_rec_t *)rec)->name_len;
    return ph_event_json_len(l[0], l[1], l[2], l[3], l[4]);
}

/* v1: {"uuid":"<36>","event":"","distinct_id":"","timestamp":"<24>",
 *      "options":{},"properties":{<props>[,<extra>]}} (no $lib: the server
 * takes it from PostHog-Sdk-Info). Records with PH_REC_LIFT take the slow
 * path (posthog__event_convert) and may come out shorter. */
#define PH_V1_FIXED_LEN                                                                            \
    (sizeof "{\"uuid\":\"" - 1 + 36 + sizeof "\",\"event\":\"" - 1 +                             \
     sizeof "\",\"distinct_id\":\"" - 1 + sizeof "\",\"timestamp\":\"" - 1 + 24 +                   \
     sizeof "\",\"options\":{},\"properties\":{" - 1 + 2)
static inline size_t ph_event_v1_len(size_t name, size_t did, size_t props, size_t extra) {
    return PH_V1_FIXED_LEN + name + did + props + (extra ? extra + (props ? 1 : 0) : 0);
}

/* Upper bound of the JSON a record expands to in protocol p. */
static inline size_t ph_rec_json_len_proto(const void *rec, ph_proto_t p) {
    const ph_rec_t *r = (const ph_rec_t *)rec;
    size_t v0 = ph_event_json_len(r->name_len, r->did_len, r->props_len, r->extra_len, r->flags);
    if (p == PH_PROTO_V0) return v0;
    size_t v1 = ph_event_v1_len(r->name_len, r->did_len, r->props_len, r->extra_len);
    /* the slow path writes the v0 text first, then converts it */
    return (r->flags & PH_REC_LIFT) ? PH_MAX(v0, v1) + 64 : v1;
}

/* A text fragment; a list of them is joined with ','. */
typedef struct {
    const char *p;
    size_t n;
} ph_frag_t;

#define PH_MAX_FRAGS 8

typedef struct {
    ph_frag_t f[PH_MAX_FRAGS];
    int n;
    size_t len; /* joined length incl. separators */
} ph_frags_t;

static inline void ph_frags_add(ph_frags_t *fs, const char *p, size_t n) {
    if (!n) return;
    fs->len += n + (fs->n ? 1 : 0);
    fs->f[fs->n].p = p;
    fs->f[fs->n].n = n;
    fs->n++;
}

/* Writes the joined fragments; returns the end. */
char *posthog__frags_write(char *o, const ph_frags_t *fs);

/* Whether a properties key (raw escaped) is one capture v1 lifts out of the
 * properties ($session_id, $window_id, $process_person_profile,
 * $cookieless_mode, $ignore_sent_at, $product_tour_id, $lib, $lib_version). */
bool posthog__is_lift_key(const char *key, size_t klen);

/* Writes the record as a v1 event into o (ph_event_v1_len bytes, only for
 * records without PH_REC_LIFT); returns the end. */
char *posthog__event_write_v1(char *o, const ph_rec_t *r);

/*
 * Rewrites one event object (v0 or v1 shape, as this library writes them or
 * reads them back from the spool) into protocol p's shape, appending it to
 * out. v1: $session_id/$window_id (strings) become session_id/window_id;
 * $process_person_profile, $cookieless_mode, $ignore_sent_at (booleans) and
 * $product_tour_id (a string) move into "options" as process_person_profile,
 * cookieless_mode, disable_skew_correction, product_tour_id; $lib and
 * $lib_version are dropped; top-level extras such as $set move into the
 * properties. v0: the reverse, with $lib/$lib_version added when absent.
 * Values are copied byte for byte (numbers are never re-printed).
 * -1 when the text is not an event object or out is full.
 */
int posthog__event_convert(ph_proto_t p, const char *json, size_t n, ph_buf_t *out);

/* Writes a record (header + texts) at dst, which has room for
 * sizeof(ph_rec_t) + name_e + did_e + props->len + extra->len bytes; name
 * and did are raw (name_n, did_n bytes) and escaped when name_e != name_n
 * (their escaped lengths). In capture.c, the capture path's writer. */
void posthog__rec_write(void *dst, const uint8_t uuid[16], int64_t ts, uint32_t flags,
                        const char *name, size_t name_n, size_t name_e, const char *did,
                        size_t did_n, size_t did_e, const ph_frags_t *props,
                        const ph_frags_t *extra);

/* Appends the event's JSON object to b. -1 when b is at its maximum. */
int posthog__event_format(ph_buf_t *b, const ph_rec_t *r);
/* Writes the event's JSON into o (ph_event_json_len bytes); returns end. */
char *posthog__event_write(char *o, const ph_rec_t *r);

static inline const char *ph_rec_name(const ph_rec_t *r) { return (const char *)(r + 1); }
static inline const char *ph_rec_did(const ph_rec_t *r) { return ph_rec_name(r) + r->name_len; }
static inline const char *ph_rec_props(const ph_rec_t *r) { return ph_rec_did(r) + r->did_len; }
static inline const char *ph_rec_extra(const ph_rec_t *r) { return ph_rec_props(r) + r->props_len; }

#endif
