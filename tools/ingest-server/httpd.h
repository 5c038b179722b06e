/*
 * httpd: a small HTTP/1.1 server for the project's development and test
 * tools (the local ingestion server, the compliance adapter). Not part of
 * libposthog. Listens on loopback only: ph_httpd_start refuses any other
 * address. One thread per connection, keep-alive, Content-Length and
 * chunked request bodies.
 */
#ifndef PH_HTTPD_H
#define PH_HTTPD_H

#include <stddef.h>

typedef struct ph_http_header {
    const char *name;  /* as received */
    const char *value; /* leading/trailing blanks trimmed */
} ph_http_header_t;

typedef struct ph_http_request {
    const char *method;          /* "POST" */
    const char *path;            /* "/batch/" (without the query) */
    const char *query;           /* "compression=gzip" or "" */
    const ph_http_header_t *headers;
    size_t header_count;
    const char *body;            /* raw bytes as received, NUL-terminated */
    size_t body_len;
} ph_http_request_t;

typedef struct ph_http_response {
    int status;                  /* default 200 */
    char content_type[64];       /* default "application/json" */
    char *body;                  /* malloc()ed; the server frees it */
    size_t body_len;
    char extra_headers[512];     /* "Name: value\r\n" lines, may be empty */
    int delay_ms;                /* wait before answering */
    int reset;                   /* 1: close the connection without answering */
    int hang;                    /* 1: answer nothing, keep the connection open until the
                                    client closes it or the server stops (input is
                                    discarded), then close it */
} ph_http_response_t;

/* Called on a connection thread; may run concurrently with itself. */
typedef void (*ph_http_handler_fn)(const ph_http_request_t *req, ph_http_response_t *res,
                                   void *user_data);

typedef struct ph_httpd ph_httpd_t;

/* Binds host ("127.0.0.1", "localhost" or "::1" only) and port (0: any free
 * port) and starts serving. NULL on failure with a message in err. */
ph_httpd_t *ph_httpd_start(const char *host, int port, ph_http_handler_fn fn, void *user_data,
                           char *err, size_t errlen);
int ph_httpd_port(const ph_httpd_t *s);
/* Stops accepting, closes every connection, joins the threads, frees. */
void ph_httpd_stop(ph_httpd_t *s);
/* Case-insensitive header lookup; NULL when absent. */
const char *ph_http_header(const ph_http_request_t *req, const char *name);
/* Sets res->body to a copy of the NUL-terminated text. */
void ph_http_set_body(ph_http_response_t *res, const char *text);

#endif
