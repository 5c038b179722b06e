/*
 * flags: the feature-flag endpoints of the local ingestion server, for tests
 * of remote flag evaluation and of the flag definitions loader.
 *
 *   POST /flags, /flags/                     remote evaluation: a scripted queue
 *                                            of answers, then a default
 *   GET  /flags/definitions[/],              local-evaluation definitions: scripted
 *        /api/feature_flag/local_evaluation[/]  answers, then 400 / 401 / 304 / 200
 *   /_control/flags[/requests], /_control/flags/definitions[/requests]
 *
 * Every request to the two endpoints is recorded. See README.md, "Feature
 * flags", for the wire behaviour.
 */
#ifndef PH_FLAGS_H
#define PH_FLAGS_H

#include "httpd.h"

typedef struct ph_flagsd ph_flagsd_t;

/* NULL on allocation failure. */
ph_flagsd_t *ph_flagsd_new(void);
/* NULL is a no-op. The httpd using it must be stopped first. */
void ph_flagsd_free(ph_flagsd_t *f);
/* Forgets the records, the scripts, the defaults and the definitions
 * (POST /_control/reset). Thread-safe. */
void ph_flagsd_reset(ph_flagsd_t *f);
/* Serves req when its path is one of the flag endpoints or their control
 * paths and returns 1; returns 0 (res untouched) for any other path.
 * Called on a connection thread; thread-safe. req and res borrow. */
int ph_flagsd_handle(ph_flagsd_t *f, const ph_http_request_t *req, ph_http_response_t *res);

/* A request's headers as a JSON object {lower-case name: value}, repeated
 * ones joined with ", " (malloc'd; NULL when out of memory): the records of
 * every endpoint use it. */
char *ph_ingest_headers_json(const ph_http_request_t *req);

#endif
