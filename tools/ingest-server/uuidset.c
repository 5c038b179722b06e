/*
 * uuidset: linear probing, load factor <= 1/2, capacity a power of two.
 */
#include "uuidset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char nil[16];

static size_t hash(const unsigned char u[16])
{
    uint64_t a, b;
    memcpy(&a, u, 8);
    memcpy(&b, u + 8, 8);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 31));
}

static void place(unsigned char (*slots)[16], size_t cap, const unsigned char u[16])
{
    size_t i = hash(u) & (cap - 1);
    while (memcmp(slots[i], nil, 16) != 0)
        i = (i + 1) & (cap - 1);
    memcpy(slots[i], u, 16);
}

int ph_uuidset_add(ph_uuidset_t *set, const unsigned char u[16])
{
    if (memcmp(u, nil, 16) == 0) {
        int was = set->has_nil;
        set->has_nil = 1;
        set->count += !was;
        return !was;
    }
    if ((set->count + 1) * 2 > set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 1024;
        unsigned char (*ns)[16] = calloc(ncap, 16);
        if (!ns)
            return -1;
        for (size_t i = 0; i < set->cap; i++)
            if (memcmp(set->slots[i], nil, 16) != 0)
                place(ns, ncap, set->slots[i]);
        free(set->slots);
        set->slots = ns;
        set->cap = ncap;
    }
    size_t i = hash(u) & (set->cap - 1);
    while (memcmp(set->slots[i], nil, 16) != 0) {
        if (memcmp(set->slots[i], u, 16) == 0)
            return 0;
        i = (i + 1) & (set->cap - 1);
    }
    memcpy(set->slots[i], u, 16);
    set->count++;
    return 1;
}

void ph_uuidset_clear(ph_uuidset_t *set)
{
    free(set->slots);
    memset(set, 0, sizeof *set);
}
