/*
 * alloc: every allocation the library makes goes through one allocator,
 * the system's (malloc/realloc/free) unless the application installed its
 * own with posthog_set_allocator before any other posthog_ call.
 *
 * common.h includes this header, so in every library source file malloc,
 * calloc, realloc, free, strdup and strndup name the posthog__ functions
 * below (function-like macros: the system headers' declarations, included
 * first, stay as they are). Memory a system function allocates itself
 * (realpath with NULL, getline, ...) must be freed with (free)(p), the
 * parenthesised name that bypasses the macro. aligned_alloc is not
 * redirected: use posthog__aligned_alloc / posthog__aligned_free.
 *
 * The hooks also reach zlib (zalloc/zfree), libzstd (ZSTD_customMem) and
 * libbrotli through codec.c, and cJSON through cJSON_InitHooks (set by
 * posthog_set_allocator only: it is process-wide). libcurl keeps the
 * system allocator (the transport is outside the memory budget).
 */
#ifndef POSTHOG_ALLOC_H
#define POSTHOG_ALLOC_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void *posthog__malloc(size_t n);
void *posthog__calloc(size_t n, size_t size);
void *posthog__realloc(void *p, size_t n);
void posthog__free(void *p);
char *posthog__strdup(const char *s);
char *posthog__strndup(const char *s, size_t n);
/* `align` a power of two at most 4096; free with posthog__aligned_free. */
void *posthog__aligned_alloc(size_t align, size_t n);
void posthog__aligned_free(void *p);
/* Whether the application installed its own allocator. */
int posthog__alloc_custom(void);

/* zlib's zalloc/zfree and zstd's/brotli's (opaque, size) forms. */
void *posthog__zalloc(void *opaque, unsigned items, unsigned size);
void posthog__zfree(void *opaque, void *p);
void *posthog__opaque_alloc(void *opaque, size_t n);
void posthog__opaque_free(void *opaque, void *p);

#ifndef POSTHOG_ALLOC_IMPL
#define malloc(n) posthog__malloc(n)
#define calloc(n, s) posthog__calloc(n, s)
#define realloc(p, n) posthog__realloc(p, n)
#define free(p) posthog__free(p)
#define strdup(s) posthog__strdup(s)
#define strndup(s, n) posthog__strndup(s, n)
#endif

#endif
