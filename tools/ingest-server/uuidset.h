/*
 * uuidset: a growable open-addressing set of 128-bit UUIDs. Not thread-safe.
 */
#ifndef PH_UUIDSET_H
#define PH_UUIDSET_H

#include <stddef.h>

typedef struct ph_uuidset {
    unsigned char (*slots)[16]; /* all-zero slot = empty; the nil UUID is kept in has_nil */
    size_t cap, count;
    int has_nil;
} ph_uuidset_t;

/* 1 when u was new, 0 when already present, -1 out of memory. u borrows. */
int ph_uuidset_add(ph_uuidset_t *set, const unsigned char u[16]);
/* Frees the slots and empties the set (it stays usable). */
void ph_uuidset_clear(ph_uuidset_t *set);

#endif
