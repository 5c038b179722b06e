/*
 * protocol: a wire protocol as a small table of functions; capture v0
 * (/batch/, proto_v0.c) and capture v1 (/i/v1/..., proto_v1.c) are its two
 * instances (capture-api.md). The batch builder, the flusher and the
 * transport call through it and never branch on the protocol themselves.
 *
 *  - building: the envelope of a new batch, each event's text (from a queue
 *    record, or from a stored text of either protocol: spool replay,
 *    splits), what closes the text, and how the codec ends at seal;
 *  - sending: the body and headers of one attempt (v0: a fresh sent_at
 *    tail; v1: PostHog-Attempt and PostHog-Request-Timestamp);
 *  - answers: what a status means, and for v1 the per-event results of a
 *    2xx (`ok`, `warning`, unknown results and uuids absent from the map are
 *    delivered; `drop` is refused for good, with the server's details;
 *    `retry` is resent alone).
 *
 * Threads: only the flusher thread (and the tests) use a protocol; the
 * tables are constant.
 */
#ifndef POSTHOG_PROTOCOL_H
#define POSTHOG_PROTOCOL_H

#include "batch.h"
#include "retry.h"

typedef enum { PH_EV_DELIVERED = 0, PH_EV_RETRY = 1, PH_EV_DROP = 2 } ph_ev_outcome_t;

typedef struct {
    uint32_t delivered, retry, drop; /* counts */
    uint8_t *outcome;                /* per event (ph_ev_outcome_t); NULL when all delivered */
    char **details;                  /* per event, the server's details for drops, or NULL */
} ph_results_t;

/* The header lines of one request. */
#define PH_MAX_HEADERS 12
#define PH_HEADER_MAX 192
typedef struct {
    char line[PH_MAX_HEADERS][PH_HEADER_MAX];
    int n;
} ph_headers_t;

/* Adds "Name: value" (printf-style); -1 when full or too long. */
int posthog__headers_add(ph_headers_t *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What a protocol needs from the client's options, fixed when the flusher
 * starts. */
typedef struct {
    const char *api_key;
    const char *sdk_name, *sdk_version; /* PostHog-Sdk-Info (v1) */
} ph_proto_ctx_t;

struct ph_protocol {
    ph_proto_t id;
    const char *name;    /* "v0", "v1" */
    const char *path[2]; /* endpoint: [0] analytics, [1] AI events */
    bool raw_gzip;       /* gzip as a raw deflate stream whose header and trailer the
                            protocol writes (v0: the per-attempt tail needs it) */

    /* Builder set-up (v0: the constant envelope prefix). 0 ok. */
    int (*builder_init)(ph_builder_t *b, const char *api_key);
    /* A new batch: its envelope up to the first event into `stage` (and
     * anything the body starts with, such as v0's gzip header). 0 ok. */
    int (*open)(ph_builder_t *b, ph_batch_t *bt, int64_t created_ms, const char *request_id);
    /* Upper bound of the text a record becomes. */
    size_t (*rec_len)(const ph_rec_t *r);
    /* Appends a record's event text to b->stage (room for rec_len reserved). 0 ok. */
    int (*add_record)(ph_builder_t *b, const ph_rec_t *r);
    /* Appends a stored event text of either protocol, converted when needed.
     * 0 ok, -1 out of memory, -2 not an event. */
    int (*add_text)(ph_builder_t *b, const char *json, size_t n);
    /* Whether a record may be added to the open batch (v1: a uuid at most
     * once per batch): 0 yes, 1 seal first, -1 out of memory. */
    int (*admit)(ph_builder_t *b, const ph_rec_t *r);
    /* Closes the text at seal (into b->stage) and how the codec ends. */
    const char *close_text;
    int seal_mode; /* PH_CODEC_SYNC (a per-attempt tail follows) or PH_CODEC_END */

    /* The body of an attempt, from the sealed prefix. 0 ok. */
    int (*attempt_body)(ph_batch_t *bt, int64_t now_wall_ms);
    /* This attempt's protocol headers (after Content-Type/-Encoding). 0 ok. */
    int (*attempt_headers)(const ph_batch_t *bt, const ph_proto_ctx_t *ctx, ph_headers_t *h);
    /* What a status means (0: no response). */
    ph_outcome_t (*classify)(long status);
    /* A 2xx answer's per-event results: only a body that is the capture
     * service's own answer confirms anything (a captive portal or proxy also
     * answers 2xx). 0 ok, -1 not such an answer (nothing delivered: the
     * batch is retried, its disk copy kept), -2 out of memory. */
    int (*parse_results)(const ph_batch_t *bt, long status, const char *body, size_t n,
                         ph_results_t *out);
    const char *confirmation; /* what parse_results wants, for messages */
};

extern const ph_protocol_t posthog__proto_v0, posthog__proto_v1;

/* Whether a v0 2xx confirms the batch (capture-api.md): a 204 without a
 * body, or a JSON object whose "status" is 1 ({"status": 1}). */
bool posthog__v0_confirmed(long status, const char *body, size_t n);

static inline const ph_protocol_t *ph_protocol(ph_proto_t p) {
    return p == PH_PROTO_V1 ? &posthog__proto_v1 : &posthog__proto_v0;
}

/*
 * Parses a v1 2xx body for the batch. 0 ok; -1 when the body is not a
 * results map (a proxy or captive portal answered: nothing is delivered);
 * -2 out of memory. Costs one validation pass when every result is
 * delivered, a parse only when some are not.
 */
int posthog__v1_parse_results(const ph_batch_t *bt, const char *body, size_t n,
                              ph_results_t *out);
void posthog__v1_results_free(ph_results_t *r, uint32_t count);

/* v1's status table: 404 is retried (then reported as a host that may not
 * serve v1), 400 is bisected like 413 so only bad events are dropped. */
ph_outcome_t posthog__v1_classify(long status);

#endif
