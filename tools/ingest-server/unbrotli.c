/*
 * unbrotli: bounded brotli ("br") decoding of a whole request body with the
 * streaming decoder, growing the buffer geometrically but never past
 * max_out + 1 (one byte more tells "too large" apart).
 */
#include <brotli/decode.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gunzip.h"

int ph_unbrotli(const char *in, size_t inlen, size_t max_out, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    size_t limit = max_out + 1;
    size_t cap = inlen * 4 + 4096;
    if (cap > limit + 1)
        cap = limit + 1;
    char *buf = malloc(cap);
    BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!buf || !d) {
        free(buf);
        if (d)
            BrotliDecoderDestroyInstance(d);
        return PH_GUNZIP_NOMEM;
    }
    const uint8_t *next_in = (const uint8_t *)in;
    size_t avail_in = inlen, used = 0;
    int rc = PH_GUNZIP_OK;
    for (;;) {
        if (used + 1 >= cap && (rc = ph_out_grow(&buf, &cap, limit)) != PH_GUNZIP_OK)
            break;
        size_t avail_out = cap - 1 - used;
        uint8_t *next_out = (uint8_t *)buf + used;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, NULL);
        used = (size_t)((char *)next_out - buf);
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            if (avail_in)
                rc = PH_GUNZIP_CORRUPT; /* trailing bytes after the stream */
            break;
        }
        if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
            continue;
        rc = PH_GUNZIP_CORRUPT; /* an error, or the input ended inside the stream */
        break;
    }
    BrotliDecoderDestroyInstance(d);
    if (rc == PH_GUNZIP_OK && used > max_out)
        rc = PH_GUNZIP_TOO_LARGE;
    if (rc != PH_GUNZIP_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    *outlen = used;
    return PH_GUNZIP_OK;
}
