/*
 * gunzip: inflates gzip (RFC 1952) and zlib (RFC 1950) bodies into one
 * buffer sized from a hint (the gzip trailer's ISIZE when plausible),
 * growing geometrically but never past max_out + 1.
 */
#include "gunzip.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int ph_out_grow(char **buf, size_t *cap, size_t limit)
{
    if (*cap >= limit + 1)
        return PH_GUNZIP_TOO_LARGE;
    size_t ncap = *cap * 2 > limit + 1 ? limit + 1 : *cap * 2;
    char *nb = realloc(*buf, ncap);
    if (!nb)
        return PH_GUNZIP_NOMEM;
    *buf = nb;
    *cap = ncap;
    return PH_GUNZIP_OK;
}

/* wbits: 16 + MAX_WBITS for gzip (members may be concatenated), MAX_WBITS
 * for zlib (exactly one stream, nothing after it). */
static int inflate_all(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen,
                       int wbits, size_t hint)
{
    int gzip = wbits > MAX_WBITS;
    size_t limit = max_out + 1; /* one byte more tells "too large" apart */
    size_t cap = hint + 1;
    if (cap < 4096)
        cap = 4096;
    if (cap > limit + 1)
        cap = limit + 1;
    char *buf = malloc(cap);
    if (!buf)
        return PH_GUNZIP_NOMEM;

    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, wbits) != Z_OK) {
        free(buf);
        return PH_GUNZIP_NOMEM;
    }
    size_t used = 0, consumed = 0;
    int rc = PH_GUNZIP_OK;
    for (;;) {
        if (used + 1 >= cap && (rc = ph_out_grow(&buf, &cap, limit)) != PH_GUNZIP_OK)
            break;
        size_t in_left = inlen - consumed, out_left = cap - 1 - used;
        z.next_in = (unsigned char *)in + consumed;
        z.avail_in = in_left > UINT_MAX ? UINT_MAX : (unsigned)in_left;
        z.next_out = (unsigned char *)buf + used;
        z.avail_out = out_left > UINT_MAX ? UINT_MAX : (unsigned)out_left;
        unsigned ai = z.avail_in, ao = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        consumed += ai - z.avail_in;
        used += ao - z.avail_out;
        if (used > max_out) {
            rc = PH_GUNZIP_TOO_LARGE;
            break;
        }
        if (zr == Z_STREAM_END) {
            if (consumed == inlen)
                break;
            if (!gzip) { /* trailing bytes after the zlib stream */
                rc = PH_GUNZIP_CORRUPT;
                break;
            }
            /* Another member follows (concatenated gzip). */
            if (inflateReset(&z) != Z_OK) {
                rc = PH_GUNZIP_CORRUPT;
                break;
            }
            continue;
        }
        if (zr == Z_BUF_ERROR && z.avail_out != 0) { /* input ended mid-stream */
            rc = PH_GUNZIP_CORRUPT;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? PH_GUNZIP_NOMEM : PH_GUNZIP_CORRUPT;
            break;
        }
    }
    inflateEnd(&z);
    if (rc != PH_GUNZIP_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    *outlen = used;
    return PH_GUNZIP_OK;
}

int ph_gunzip(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (inlen < 18 || (unsigned char)in[0] != 0x1f || (unsigned char)in[1] != 0x8b)
        return PH_GUNZIP_CORRUPT;
    const unsigned char *t = (const unsigned char *)in + inlen - 4;
    size_t hint = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    return inflate_all(in, inlen, max_out, out, outlen, 16 + MAX_WBITS, hint);
}

int ph_zinflate(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (inlen < 6) /* 2-byte header + 4-byte Adler-32 at least */
        return PH_GUNZIP_CORRUPT;
    size_t hint = inlen > SIZE_MAX / 4 ? inlen : inlen * 4; /* no wrap, 32-bit too */
    return inflate_all(in, inlen, max_out, out, outlen, MAX_WBITS, hint);
}
