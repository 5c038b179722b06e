/*
 * mini_http: a tiny blocking HTTP/1.1 client over a TCP socket, for the
 * transport examples and tests: plain http:// only, one request per
 * connection (Connection: close), answers with Content-Length or read to
 * the end of the connection (no chunked answers). Not a general client: it
 * shows that a transport hook needs nothing of libcurl.
 */
#ifndef MINI_HTTP_H
#define MINI_HTTP_H

#include <stddef.h>

typedef struct {
    int status;              /* 0: no answer (see error) */
    char retry_after[64];    /* "" when absent */
    char etag[256];          /* "" when absent */
    char *body;              /* malloc()ed, NUL-terminated (mh_resp_free) */
    size_t body_len;
    char error[256];
} mh_resp_t;

/* Sends one request to `url` ("http://host:port/path?query") with the
 * given "Name: value" header lines and body (NULL for none), within
 * timeout_ms for the connect and again for each read or write. 0 when an
 * answer arrived (any status), -1 with out->error otherwise. */
int mh_request(const char *method, const char *url, const char *const *headers, size_t nheaders,
               const void *body, size_t body_len, int timeout_ms, mh_resp_t *out);
void mh_resp_free(mh_resp_t *r);

#endif
