/*
 * ingest: PostHog's capture contract (v0 /batch/ and friends, capture v1
 * /i/v1/...) on top of httpd. Validates ingestion requests, records them,
 * applies the scripted faults (including per-event v1 verdicts) and serves
 * the /_control API. See README.md for the wire behaviour.
 */
#ifndef PH_INGEST_H
#define PH_INGEST_H

#include <stddef.h>

#include "httpd.h"

#define PH_INGEST_MAX_BODY_BYTES ((size_t)20 * 1024 * 1024)
#define PH_INGEST_MAX_DECODED_BYTES ((size_t)100 * 1024 * 1024)
#define PH_INGEST_MAX_EVENT_BYTES ((size_t)1000000)
#define PH_INGEST_MAX_AI_EVENT_BYTES ((size_t)10 << 20) /* AI endpoints: larger events */
/* Capture v1 (/i/v1/...) has its own, lower request limits. */
#define PH_INGEST_MAX_V1_BODY_BYTES ((size_t)10 * 1024 * 1024)
#define PH_INGEST_MAX_V1_DECODED_BYTES ((size_t)50 * 1024 * 1024)

typedef struct ph_ingestd_config {
    size_t max_body_bytes;     /* on the wire; 0: default */
    size_t max_decoded_bytes;  /* after gzip; 0: default */
    size_t max_event_bytes;    /* one event's raw JSON; 0: default */
    size_t max_v1_body_bytes;    /* capture v1, on the wire; 0: default */
    size_t max_v1_decoded_bytes; /* capture v1, decoded; 0: default */
    const char *const *api_keys; /* copied; none: any non-empty key */
    size_t n_api_keys;
    int no_store;              /* keep counters and seen uuids only */
    int verbose;               /* one line per ingest request on stderr */
    /* Called (on a connection thread) for POST /_control/shutdown. */
    void (*on_shutdown)(void *user_data);
    void *shutdown_user_data;
} ph_ingestd_config_t;

typedef struct ph_ingestd ph_ingestd_t;

/* cfg borrows (the keys are copied). NULL on allocation failure. */
ph_ingestd_t *ph_ingestd_new(const ph_ingestd_config_t *cfg);
/* NULL is a no-op. The httpd using it must be stopped first. */
void ph_ingestd_free(ph_ingestd_t *d);
/* The httpd handler; user_data is the ph_ingestd_t. Thread-safe. */
void ph_ingestd_handle(const ph_http_request_t *req, ph_http_response_t *res, void *user_data);

#endif
