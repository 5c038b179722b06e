/*
 * batch: building request bodies, for both protocols, through one codec.
 *
 * v0 (/batch/): {"api_key":..,"historical_migration":..,"batch":[e1,...],
 * "sent_at":".."}. Everything up to the last event (the prefix) is
 * compressed once, as events are drained, into a raw deflate stream that
 * is sync-flushed when the batch is sealed. Each send attempt appends a
 * fresh tail `],"sent_at":"<now>"}` as a final *stored* deflate block plus
 * the gzip trailer (CRC32 of prefix+tail, size). So a retry costs ~80
 * bytes of work, and sent_at is new on every attempt while the events'
 * uuid and timestamp are byte-identical. Without gzip the prefix is kept
 * raw and the tail appended the same way.
 *
 * v1 (/i/v1/analytics/events, /i/v1/ai/events):
 * {"created_at":"<batch opened>"[,"historical_migration":true],"batch":[..]}
 * is the same on every attempt (the attempt's timestamp travels in a
 * header), so the body is compressed once, to the end, when the batch is
 * sealed (gzip, deflate, zstd or none), and every retry sends it as is. A
 * partial retry (the events the server answered "retry" for) builds a new
 * body of just those events with the same created_at and request id.
 *
 * A sealed batch keeps each event's offset in the uncompressed text, so it
 * can be split (413, a v1 400), subset (partial retry), spooled or
 * reported by decoding it again (rare paths).
 */
#ifndef POSTHOG_BATCH_H
#define POSTHOG_BATCH_H

#include "codec.h"
#include "common.h"
#include "event.h"

typedef struct ph_protocol ph_protocol_t; /* protocol.h */

typedef struct ph_batch {
    ph_buf_t body;       /* the request body (v0: without the current tail) */
    size_t prefix_len;   /* body.len without the current tail (v1: the whole body) */
    uint32_t crc;        /* v0 gzip: CRC32 of the uncompressed prefix */
    uint64_t raw_len;    /* uncompressed length of body[0..prefix_len) */
    uint64_t events_end; /* uncompressed offset where the last event ends */
    uint32_t count;      /* events */
    uint32_t *offsets;   /* count event start offsets in the uncompressed text */
    uint64_t end_pos;    /* queue position this batch completes (0: none) */
    uint32_t attempts;   /* sends done (v1: the next PostHog-Attempt is attempts + 1) */
    int64_t not_before_ms; /* monotonic: earliest next attempt */
    int64_t created_ms;  /* v1: created_at (wall ms) */
    char request_id[37]; /* v1: PostHog-Request-Id, the same on every retry */
    ph_proto_t proto;
    ph_codec_kind_t codec;
    bool raw_gzip;       /* v0 gzip: header + raw deflate blocks written by the protocol */
    bool ai;             /* $ai_* events: the AI endpoint */
    bool replay;         /* read back from the spool */
    bool probe;          /* sent to test a link that was down: no retries */
    struct ph_spool_file *file; /* its copy on disk, when it has one */
    struct ph_batch *next;
} ph_batch_t;

typedef struct {
    ph_codec_t codec;
    ph_proto_t proto;
    const ph_protocol_t *ops;
    bool ai;
    bool historical;
    ph_buf_t stage;      /* uncompressed text waiting for the codec */
    bool whole;          /* the codec gets the whole text at seal (posthog__codec_prefers_whole,
                            and the protocol ends the stream there) */
    ph_buf_t scratch;    /* slow-path event text (PH_REC_LIFT) */
    ph_batch_t *cur;     /* batch being filled, NULL when none */
    uint64_t max_raw;    /* max uncompressed bytes per batch */
    int64_t opened_mono; /* monotonic ms of the oldest event's capture in cur */
    const char *prefix;  /* v0: {"api_key":"...","historical_migration":x,"batch":[ */
    size_t prefix_n;
    /* v1: uuids of the open batch, so a uuid repeated by the caller starts
     * a new batch instead of getting the whole batch rejected. An open
     * addressing set; a slot belongs to the open batch when its gen is
     * seen_gen, so a new batch empties it by bumping seen_gen. */
    struct ph_seen_slot *seen;
    uint32_t seen_cap, seen_n, seen_gen;
} ph_builder_t;

int posthog__builder_init(ph_builder_t *b, ph_proto_t proto, ph_codec_kind_t codec, int level,
                          const char *api_key, bool historical, bool ai, uint64_t max_raw);
void posthog__builder_free(ph_builder_t *b);
/* Whether the event (of json_len bytes) still fits the open batch. */
bool posthog__builder_fits(const ph_builder_t *b, size_t json_len);
/* A builder with b's settings (its own codec state). */
int posthog__builder_init_like(ph_builder_t *dst, const ph_builder_t *src);
/* Adds an event that is already JSON text in either protocol's shape
 * (converted to the builder's when needed). -1 on allocation failure, -2
 * when the text is not an event. */
int posthog__builder_add_text(ph_builder_t *b, const char *json, size_t n);
/* The events of a sealed batch as texts pointing into *raw (malloc()ed;
 * free *raw, *ev and *len). 0 ok. */
int posthog__batch_texts(const ph_batch_t *bt, char **raw, const char ***ev, size_t **len);

/* Adds an event. -1 on allocation failure (nothing added). In v1 a uuid
 * already in the open batch returns 1 and adds nothing: seal, then add.
 * now_wall and now_mono are the two clocks read together: the event's age
 * (now_wall - its capture time, at least 0) moves to the monotonic clock
 * here, so a later step of the wall clock cannot change the batch's age. */
int posthog__builder_add(ph_builder_t *b, const ph_rec_t *r, int64_t now_wall, int64_t now_mono);
/* Seals and returns the open batch (NULL when empty). */
ph_batch_t *posthog__builder_seal(ph_builder_t *b);
static inline uint32_t ph_builder_count(const ph_builder_t *b) { return b->cur ? b->cur->count : 0; }

/* Prepares the body for an attempt (the protocol's attempt_body: v0 appends
 * a tail with sent_at = now_ms; v1 has nothing to change).
 * body.data[0..body.len) is the request. */
int posthog__batch_set_tail(ph_batch_t *bt, int64_t now_ms);
/* Appends n bytes of text to the open batch's staged text, growing it. */
static inline int ph_builder_stage(ph_builder_t *b, const char *s, size_t n) {
    return posthog__buf_append(&b->stage, s, n);
}
void posthog__batch_free(ph_batch_t *bt);
/* The uncompressed text (malloc()ed, NUL-terminated), or NULL. */
char *posthog__batch_inflate(const ph_batch_t *bt, size_t *len);
/* The batch's events as a JSON array text (malloc()ed), or NULL. */
char *posthog__batch_events_json(const ph_batch_t *bt);
/* The uuid text (36 chars) of event i, or NULL (raw from posthog__batch_inflate). */
const char *posthog__batch_event_uuid(const ph_batch_t *bt, const char *raw, uint32_t i);
/* Splits into two batches (first half, second half); 0 ok. The halves get
 * end_pos 0 and bt->end_pos respectively. `bt` is left untouched. */
int posthog__batch_split(ph_builder_t *b, const ph_batch_t *bt, ph_batch_t **first,
                         ph_batch_t **second);
/* A batch of the events of bt whose index has keep[i] set, with bt's
 * created_at, request id and attempts (a v1 partial retry); NULL on failure. */
ph_batch_t *posthog__batch_subset(ph_builder_t *b, const ph_batch_t *bt, const bool *keep);

#endif
