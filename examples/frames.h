/*
 * frames: the wire format between examples/transport_publish and
 * examples/transport_broker, a stand-in for a device's own channel (an MQTT
 * broker, a serial link, ...). Each message is a 4-byte big-endian length
 * followed by that many bytes:
 *
 *   request  "POST <url>\n" + header lines "Name: value\n" + "\n" + body
 *   answer   "<status>\n" + "Retry-After: v\n" / "ETag: v\n" / "Error: why\n"
 *            (each only when present) + "\n" + body
 *
 * Status 0 with an Error line: the broker could not reach the server.
 */
#ifndef EXAMPLE_FRAMES_H
#define EXAMPLE_FRAMES_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FRAME_MAX ((uint32_t)64 << 20)

static inline int frame_io(int fd, void *buf, size_t n, int writing) {
    char *p = buf;
    while (n) {
        ssize_t r = writing ? write(fd, p, n) : read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends one frame made of two parts (head, then body). 0 ok. */
static inline int frame_send(int fd, const void *head, size_t hlen, const void *body, size_t blen) {
    uint64_t total = (uint64_t)hlen + blen;
    if (total > FRAME_MAX) return -1;
    unsigned char len[4] = {(unsigned char)(total >> 24), (unsigned char)(total >> 16),
                            (unsigned char)(total >> 8), (unsigned char)total};
    return frame_io(fd, len, 4, 1) || frame_io(fd, (void *)head, hlen, 1) ||
                   (blen && frame_io(fd, (void *)body, blen, 1))
               ? -1
               : 0;
}

/* Receives one frame (malloc()ed, NUL-terminated, *len bytes); NULL at the
 * end of the stream or on error. */
static inline char *frame_recv(int fd, size_t *len) {
    unsigned char h[4];
    if (frame_io(fd, h, 4, 0)) return NULL;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n > FRAME_MAX) return NULL;
    char *b = malloc((size_t)n + 1);
    if (!b) return NULL;
    if (frame_io(fd, b, n, 0)) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* Splits a frame at its blank line: the head (lines, NUL-terminated in
 * place) and the body after it. -1 when there is none. */
static inline int frame_split(char *f, size_t len, char **body, size_t *blen) {
    char *e = NULL;
    if (len >= 1 && f[0] == '\n') e = f;
    for (size_t i = 0; !e && i + 1 < len; i++)
        if (f[i] == '\n' && f[i + 1] == '\n') e = f + i + 1;
    if (!e) return -1;
    *e = '\0';
    *body = e + 1;
    *blen = len - (size_t)(e + 1 - f);
    return 0;
}

#endif
