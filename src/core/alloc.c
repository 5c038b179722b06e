/*
 * alloc: the library's one allocator (see alloc.h). The hooks are set once,
 * before anything was allocated, and only read afterwards: plain loads.
 */
#define POSTHOG_ALLOC_IMPL 1
#include "alloc.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>

#include "posthog/posthog.h"

static posthog_malloc_fn g_malloc;   /* NULL: the system's */
static posthog_realloc_fn g_realloc;
static posthog_free_fn g_free;
/* set by the first allocation: from then on the allocator cannot change */
static _Atomic int g_used;

static inline void mark_used(void) {
    /* relaxed: a flag checked by posthog_set_allocator only, which the
     * application must call before any other posthog_ call anyway */
    if (!atomic_load_explicit(&g_used, memory_order_relaxed))
        atomic_store_explicit(&g_used, 1, memory_order_relaxed);
}

void *posthog__malloc(size_t n) {
    mark_used();
    return g_malloc ? g_malloc(n ? n : 1) : malloc(n);
}

void *posthog__calloc(size_t n, size_t size) {
    mark_used();
    if (!g_malloc) return calloc(n, size);
    if (size && n > SIZE_MAX / size) return NULL;
    size_t t = n * size;
    void *p = g_malloc(t ? t : 1);
    if (p) memset(p, 0, t);
    return p;
}

void *posthog__realloc(void *p, size_t n) {
    mark_used();
    if (!g_realloc) return realloc(p, n);
    if (!p) return g_malloc(n ? n : 1);
    return g_realloc(p, n ? n : 1);
}

void posthog__free(void *p) {
    if (!p) return;
    if (g_free) g_free(p);
    else free(p);
}

char *posthog__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = posthog__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

char *posthog__strndup(const char *s, size_t n) {
    size_t l = strnlen(s, n);
    char *d = posthog__malloc(l + 1);
    if (!d) return NULL;
    memcpy(d, s, l);
    d[l] = '\0';
    return d;
}

/* Over-allocates by `align` bytes and keeps the block's start just below the
 * aligned pointer, so it works with any malloc. */
void *posthog__aligned_alloc(size_t align, size_t n) {
    if (align < sizeof(void *)) align = sizeof(void *);
    if (n > SIZE_MAX - align) return NULL;
    char *raw = posthog__malloc(n + align);
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void posthog__aligned_free(void *p) {
    if (p) posthog__free(((void **)p)[-1]);
}

int posthog__alloc_custom(void) { return g_malloc != NULL; }

void *posthog__zalloc(void *opaque, unsigned items, unsigned size) {
    (void)opaque;
    if (size && items > SIZE_MAX / size) return NULL;
    return posthog__malloc((size_t)items * size);
}
void posthog__zfree(void *opaque, void *p) {
    (void)opaque;
    posthog__free(p);
}
void *posthog__opaque_alloc(void *opaque, size_t n) {
    (void)opaque;
    return posthog__malloc(n);
}
void posthog__opaque_free(void *opaque, void *p) {
    (void)opaque;
    posthog__free(p);
}

static void *cjson_malloc(size_t n) { return posthog__malloc(n); }
static void cjson_free(void *p) { posthog__free(p); }

posthog_status_t posthog_set_allocator(posthog_malloc_fn m, posthog_realloc_fn r,
                                       posthog_free_fn f) {
    if (!m != !r || !m != !f) return POSTHOG_E_INVALID_ARG; /* all three or none */
    if (atomic_load(&g_used)) {
        /* the same functions again is harmless (a binding's second load) */
        if (m == g_malloc && r == g_realloc && f == g_free) return POSTHOG_OK;
        return POSTHOG_E_INVALID_ARG;
    }
    g_malloc = m;
    g_realloc = r;
    g_free = f;
    if (m) {
        cJSON_Hooks h = {cjson_malloc, cjson_free};
        cJSON_InitHooks(&h);
    } else {
        cJSON_InitHooks(NULL);
    }
    return POSTHOG_OK;
}
