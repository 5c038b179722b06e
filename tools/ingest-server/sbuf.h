/*
 * sbuf: an append-only growable string for building JSON responses.
 * An allocation failure sets `failed` and later appends are ignored.
 */
#ifndef PH_SBUF_H
#define PH_SBUF_H

#include <stddef.h>

typedef struct ph_sbuf {
    char *p;
    size_t len, cap;
    int failed;
} ph_sbuf_t;

void ph_sbuf_add(ph_sbuf_t *b, const char *s, size_t n);   /* s borrows */
void ph_sbuf_str(ph_sbuf_t *b, const char *s);             /* NUL-terminated */
void ph_sbuf_fmt_u64(ph_sbuf_t *b, unsigned long long v);
/* Appends s[0..n) as a quoted JSON string (bytes >= 0x80 become \u00XX, so the
 * output is valid JSON whatever the input). */
void ph_sbuf_json_str(ph_sbuf_t *b, const char *s, size_t n);
/* Takes the text out (NUL-terminated, malloc()ed, may be NULL when failed). */
char *ph_sbuf_take(ph_sbuf_t *b, size_t *len);

#endif
