/*
 * protocol: what a response means, per protocol (capture-api.md).
 *
 * v0 (/batch/) decides per batch from the status alone (retry.h).
 * v1 decides per event: a 2xx carries a results map keyed by uuid, parsed
 * here into one outcome per event of the batch. `ok`, `warning`, unknown
 * results and uuids absent from the map are delivered; `drop` is refused
 * for good (with the server's details); `retry` is resent alone.
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
