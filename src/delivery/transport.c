/*
 * transport: picks the client's transport (transport.h) and the helpers
 * the transports share.
 */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

int posthog__transport_check(const posthog_options_t *o, char *err, size_t errlen) {
    if (o->transport_fn) return 0;
#ifdef POSTHOG_HAVE_CURL
    return 0;
#else
    snprintf(err, errlen,
             "no transport: this libposthog was built without libcurl (POSTHOG_WITH_CURL=OFF); "
             "set a transport hook with posthog_options_set_transport");
    return -1;
#endif
}

ph_transport_t *posthog__transport_new(const posthog_options_t *o, char *err, size_t errlen) {
    if (posthog__transport_check(o, err, errlen)) return NULL;
    ph_transport_t *t = NULL;
    if (o->transport_fn) t = posthog__transport_hook_new(o);
#ifdef POSTHOG_HAVE_CURL
    else t = posthog__transport_curl_new(o);
#endif
    if (!t) snprintf(err, errlen, "out of memory creating the transport");
    return t;
}

void posthog__transport_set_owner(ph_transport_t *t, const posthog_client_t *c) {
    if (t) t->owner = c;
}

void posthog__transport_free(ph_transport_t *t) {
    if (t) (t->ops->free)(t); /* parenthesised: alloc.h maps free() */
}

int posthog_has_curl(void) {
#ifdef POSTHOG_HAVE_CURL
    return 1;
#else
    return 0;
#endif
}

void posthog__resp_init(ph_resp_t *out, size_t max_body) {
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
    posthog__buf_init(&out->body, (max_body ? max_body : PH_RESP_BODY_MAX) + 1);
}

void posthog__resp_done(ph_resp_t *out) { posthog__buf_free(&out->body); }

bool posthog__header_value(const char *buf, size_t len, const char *name, char *dst, size_t cap) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(buf, name, nl) || buf[nl] != ':') return false;
    const char *v = buf + nl + 1, *e = buf + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t n = (size_t)(e - v);
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}
