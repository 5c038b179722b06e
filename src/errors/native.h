/*
 * errors/native: the calling thread's native stack and the loaded modules
 * (ELF images with their GNU build ids), for $exception events that PostHog
 * symbolicates server-side from uploaded debug files.
 *
 * posthog__native_stack walks the stack with the platform unwinder
 * (glibc's backtrace(), else libgcc's _Unwind_Backtrace); frames of code
 * built without unwind tables may end the walk early. posthog__native_modules
 * lists the loaded images through dl_iterate_phdr. Neither is
 * async-signal-safe (the crash handler records raw addresses instead).
 */
#ifndef POSTHOG_ERRORS_NATIVE_H
#define POSTHOG_ERRORS_NATIVE_H

#include "common.h"

#define PH_MAX_FRAMES 128
#define PH_BUILD_ID_MAX 64

typedef struct {
    char path[512];            /* the image's file ("code_file") */
    uintptr_t addr;            /* load address of its lowest segment */
    uintptr_t size;            /* from the lowest to the highest segment end */
    uintptr_t bias;            /* dlpi_addr: file vaddr + bias = run-time address */
    uint8_t build_id[PH_BUILD_ID_MAX];
    size_t build_id_len;       /* 0: the image has no GNU build id */
} ph_module_t;

typedef struct {
    ph_module_t *m;
    size_t n;
} ph_modules_t;

/* Return addresses of the calling thread, innermost first, leaving out the
 * `skip` innermost frames (this function's own is always left out). */
size_t posthog__native_stack(uintptr_t *pcs, size_t max, size_t skip);
/* Every loaded ELF image (free with posthog__native_modules_free). 0 ok. */
int posthog__native_modules(ph_modules_t *out);
void posthog__native_modules_free(ph_modules_t *m);
/* The module an address lies in, or NULL. */
const ph_module_t *posthog__native_module_of(const ph_modules_t *m, uintptr_t pc);
/* Breakpad/Sentry debug id of a build id: its first 16 bytes as a GUID
 * whose first three fields are little-endian ("xxxxxxxx-xxxx-xxxx-xxxx-
 * xxxxxxxxxxxx"), zero-padded when shorter. out: 37 bytes. */
void posthog__debug_id(const uint8_t *build_id, size_t len, char out[37]);
/* Lower-case hex of the build id ("code_id"). out: 2 * len + 1 bytes. */
void posthog__hex(const uint8_t *p, size_t len, char *out);

struct posthog_client;
struct posthog_exception_options;
/* A $exception from addresses and modules of another process (a crash
 * report): no symbol lookup in this one. */
posthog_status_t posthog__capture_native_exception(struct posthog_client *c, const char *distinct_id,
                                                   const char *type, const char *message,
                                                   const char *properties_json,
                                                   const struct posthog_exception_options *opts,
                                                   const uintptr_t *pcs, size_t n,
                                                   const ph_modules_t *mods);
/* The GNU build id of an ELF file on disk; 0 ok. */
int posthog__file_build_id(const char *path, uint8_t *out, size_t cap, size_t *len);

#endif
