/*
 * request: one synchronous request on the caller's thread, for the callers
 * that are not the flusher (remote feature flags, the flag definitions
 * loader), through the client's transport (transport.h: libcurl's pool of
 * idle handles, or the application's hook). Any number of threads may
 * perform requests at once. Every request is bounded by its timeout_ms
 * (connect and transfer together); a response body beyond max_body bytes
 * is not kept (body_truncated).
 */
#ifndef POSTHOG_REQUEST_H
#define POSTHOG_REQUEST_H

#include "common.h"
#include "options.h"
#include "transport.h"

typedef struct ph_req_pool ph_req_pool_t;

/* NULL when out of memory or when no transport is available (the client
 * refuses to start then: posthog__transport_check). */
ph_req_pool_t *posthog__req_pool_new(const posthog_options_t *o, const posthog_client_t *owner);
void posthog__req_pool_free(ph_req_pool_t *p);
/* Performs the request; *out is always initialised (free with
 * posthog__req_done). 0 when an HTTP response arrived (any status), -1 on a
 * transport failure (out->error says which) or when out of memory. */
int posthog__req_perform(ph_req_pool_t *p, const ph_req_t *r, ph_resp_t *out);
void posthog__req_done(ph_resp_t *out);
/* In a forked child: forget the parent's idle connections without
 * touching them. */
void posthog__req_pool_atfork_child(ph_req_pool_t *p);

#endif
