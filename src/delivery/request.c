/*
 * request: synchronous requests through the client's transport
 * (see request.h).
 */
#include "request.h"

#include <stdlib.h>

struct ph_req_pool {
    ph_transport_t *t;
};

ph_req_pool_t *posthog__req_pool_new(const posthog_options_t *o, const posthog_client_t *owner) {
    ph_req_pool_t *p = calloc(1, sizeof *p);
    char err[256];
    if (p && !(p->t = posthog__transport_new(o, err, sizeof err))) {
        free(p);
        return NULL;
    }
    if (p) posthog__transport_set_owner(p->t, owner);
    return p;
}

void posthog__req_pool_free(ph_req_pool_t *p) {
    if (!p) return;
    posthog__transport_free(p->t);
    free(p);
}

void posthog__req_pool_atfork_child(ph_req_pool_t *p) {
    if (p) p->t->ops->atfork_child(p->t);
}

void posthog__req_done(ph_resp_t *out) { posthog__resp_done(out); }

int posthog__req_perform(ph_req_pool_t *p, const ph_req_t *r, ph_resp_t *out) {
    return p->t->ops->perform(p->t, r, out);
}
