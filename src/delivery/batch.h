/*
 * batch: building request bodies.
 *
 * A body is {"api_key":..,"historical_migration":..,"batch":[e1,...],
 * "sent_at":".."}. Everything up to the last event (the prefix) is
 * compressed once, as events are drained, into a raw deflate stream that
 * is sync-flushed when the batch is sealed. Each send attempt appends a
 * fresh tail `],"sent_at":"<now>"}` as a final *stored* deflate block plus
 * the gzip trailer (CRC32 of prefix+tail, size). So a retry costs ~80
 * bytes of work, and sent_at is new on every attempt while the events'
 * uuid and timestamp are byte-identical.
 *
 * Without gzip the prefix is kept raw and the tail appended the same way.
 * A sealed batch keeps each event's offset in the uncompressed prefix so it
 * can be split in halves on 413 (by inflating it again; rare).
 */
#ifndef POSTHOG_BATCH_H
#define POSTHOG_BATCH_H

#include <zlib.h>

#include "common.h"
#include "event.h"

typedef struct ph_batch {
    ph_buf_t body;       /* gzip header + deflate blocks, or raw JSON prefix */
    size_t prefix_len;   /* body.len without the current tail */
    uint32_t crc;        /* CRC32 of the uncompressed prefix */
    uint64_t raw_len;    /* uncompressed prefix length */
    uint32_t count;      /* events */
    uint32_t *offsets;   /* count event start offsets in the uncompressed prefix */
    uint64_t end_pos;    /* queue position this batch completes (0: none) */
    uint32_t attempts;   /* sends done */
    int64_t not_before_ms; /* monotonic: earliest next attempt */
    bool gzip;
    bool replay;         /* read back from the spool */
    bool probe;          /* sent to test a link that was down: no retries */
    struct ph_spool_file *file; /* its copy on disk, when it has one */
    struct ph_batch *next;
} ph_batch_t;

typedef struct {
    z_stream z;
    bool z_ready;
    bool gzip;
    int level;
    ph_buf_t stage;      /* uncompressed text waiting for deflate */
    ph_batch_t *cur;     /* batch being filled, NULL when none */
    uint64_t max_raw;    /* max uncompressed bytes per batch */
    int64_t opened_ms;   /* wall ms of the oldest event in cur */
    const char *prefix;  /* {"api_key":"...","historical_migration":x,"batch":[ */
    size_t prefix_n;
} ph_builder_t;

int posthog__builder_init(ph_builder_t *b, const char *api_key, bool historical, bool gzip,
                          int level, uint64_t max_raw);
void posthog__builder_free(ph_builder_t *b);
/* Whether the event (of json_len bytes) still fits the open batch. */
bool posthog__builder_fits(const ph_builder_t *b, size_t json_len);
/* A builder with b's settings and prefix (its own deflate state). */
int posthog__builder_init_like(ph_builder_t *dst, const ph_builder_t *src);
/* Adds an event that is already JSON text. -1 on allocation failure. */
int posthog__builder_add_text(ph_builder_t *b, const char *json, size_t n);
/* The events of a sealed batch as texts pointing into *raw (malloc()ed;
 * free *raw, *ev and *len). 0 ok. */
int posthog__batch_texts(const ph_batch_t *bt, char **raw, const char ***ev, size_t **len);

/* Adds an event. -1 on allocation failure (nothing added). */
int posthog__builder_add(ph_builder_t *b, const ph_rec_t *r, int64_t now_ms);
/* Seals and returns the open batch (NULL when empty). */
ph_batch_t *posthog__builder_seal(ph_builder_t *b);
static inline uint32_t ph_builder_count(const ph_builder_t *b) { return b->cur ? b->cur->count : 0; }

/* Appends a tail with sent_at = now_ms; body.data[0..body.len) is the request. */
int posthog__batch_set_tail(ph_batch_t *bt, int64_t now_ms);
void posthog__batch_free(ph_batch_t *bt);
/* The uncompressed prefix text (malloc()ed, NUL-terminated), or NULL. */
char *posthog__batch_inflate(const ph_batch_t *bt, size_t *len);
/* The batch's events as a JSON array text (malloc()ed), or NULL. */
char *posthog__batch_events_json(const ph_batch_t *bt);
/* Splits into two batches (first half, second half); 0 ok. The halves get
 * end_pos 0 and bt->end_pos respectively. `bt` is left untouched. */
int posthog__batch_split(ph_builder_t *b, const ph_batch_t *bt, ph_batch_t **first,
                         ph_batch_t **second);

#endif
