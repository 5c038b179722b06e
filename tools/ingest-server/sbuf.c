/*
 * sbuf: growable string; capacity doubles; always NUL-terminated when p != NULL.
 */
#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ph_sbuf_add(ph_sbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ph_sbuf_str(ph_sbuf_t *b, const char *s)
{
    ph_sbuf_add(b, s, strlen(s));
}

void ph_sbuf_fmt_u64(ph_sbuf_t *b, unsigned long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    ph_sbuf_add(b, tmp, (size_t)n);
}

void ph_sbuf_json_str(ph_sbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ph_sbuf_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
            continue;
        ph_sbuf_add(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            ph_sbuf_add(b, esc, 2);
        } else {
            ph_sbuf_add(b, esc, 6);
        }
    }
    ph_sbuf_add(b, s + run, n - run);
    ph_sbuf_add(b, "\"", 1);
}

char *ph_sbuf_take(ph_sbuf_t *b, size_t *len)
{
    char *p = b->failed ? NULL : b->p;
    if (b->failed)
        free(b->p);
    if (len)
        *len = p ? b->len : 0;
    memset(b, 0, sizeof *b);
    return p;
}
