/*
 * errors/exception: $exception events (posthog.h "Error tracking").
 *
 * posthog_capture_exception builds PostHog's error-tracking shape:
 * $exception_list (outermost exception first, each with type, value,
 * mechanism {type, handled, synthetic} and stacktrace {type: "raw",
 * frames}), $exception_level, optional $exception_fingerprint, and for
 * native frames $debug_images: every loaded ELF image a frame points into,
 * with its GNU build id (debug_id, code_id), code_file, image_addr and
 * image_size, so PostHog can symbolicate from uploaded debug files. Frames
 * are ordered as PostHog (and Sentry) expect: the outermost call first, the
 * frame that raised last. The event then goes through the normal capture
 * path (validation, before_send, queue, spool).
 */
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "native.h"
#include "util.h"

static const char *const levels[] = {"fatal", "error", "warning", "info", "debug", "log"};

static bool valid_level(const char *l) {
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (!strcmp(l, levels[i])) return true;
    return false;
}

static void add_hex(cJSON *o, const char *name, uintptr_t v) {
    char b[2 + 2 * sizeof v + 1];
    snprintf(b, sizeof b, "0x%llx", (unsigned long long)v);
    cJSON_AddStringToObject(o, name, b);
}

static bool system_path(const char *p) {
    return !strncmp(p, "/lib", 4) || !strncmp(p, "/usr/lib", 8) || !strncmp(p, "/usr/local/lib", 14) ||
           strstr(p, "linux-vdso") != NULL;
}

/* The frames of pcs (innermost first) in PostHog's order, and the images
 * they point into (each once) appended to images. */
static cJSON *native_frames(const uintptr_t *pcs, size_t n, const ph_modules_t *mods,
                            cJSON *images, bool *used, bool live) {
    cJSON *frames = cJSON_CreateArray();
    if (!frames) return NULL;
    for (size_t k = n; k-- > 0;) { /* outermost first */
        uintptr_t pc = pcs[k];
        cJSON *f = cJSON_CreateObject();
        if (!f) break;
        cJSON_AddStringToObject(f, "platform", "native");
        add_hex(f, "instruction_addr", pc);
        Dl_info di;
        memset(&di, 0, sizeof di);
        /* the return address of a caller's frame lies after its call: look
         * up the symbol of the call itself */
        if (live && dladdr((void *)(k ? pc - 1 : pc), &di) && di.dli_sname) {
            cJSON_AddStringToObject(f, "function", di.dli_sname);
            add_hex(f, "symbol_addr", (uintptr_t)di.dli_saddr);
        }
        const ph_module_t *m = posthog__native_module_of(mods, pc);
        if (m) {
            cJSON_AddStringToObject(f, "module", m->path);
            add_hex(f, "image_addr", m->addr);
            cJSON_AddBoolToObject(f, "in_app", !system_path(m->path));
            size_t i = (size_t)(m - mods->m);
            if (!used[i] && images) {
                used[i] = true;
                cJSON *img = cJSON_CreateObject();
                if (img) {
                    char id[37], code[2 * PH_BUILD_ID_MAX + 1];
                    cJSON_AddStringToObject(img, "type", "elf");
                    cJSON_AddStringToObject(img, "code_file", m->path);
                    if (m->build_id_len) {
                        posthog__debug_id(m->build_id, m->build_id_len, id);
                        posthog__hex(m->build_id, m->build_id_len, code);
                        cJSON_AddStringToObject(img, "debug_id", id);
                        cJSON_AddStringToObject(img, "code_id", code);
                    }
                    add_hex(img, "image_addr", m->addr);
                    cJSON_AddNumberToObject(img, "image_size", (double)m->size);
#if defined(__x86_64__)
                    cJSON_AddStringToObject(img, "arch", "x86_64");
#elif defined(__aarch64__)
                    cJSON_AddStringToObject(img, "arch", "arm64");
#elif defined(__arm__)
                    cJSON_AddStringToObject(img, "arch", "arm");
#elif defined(__i386__)
                    cJSON_AddStringToObject(img, "arch", "x86");
#endif
                    cJSON_AddItemToArray(images, img);
                }
            }
        }
        cJSON_AddItemToArray(frames, f);
    }
    return frames;
}

/* The members of p that properties_json (an object's text) has too are
 * taken out of p: the caller's win, each key once in the event (as
 * posthog-python lets its caller's properties replace the SDK's). Text
 * that is no object is left to posthog__json_append_members to refuse. */
static void drop_callers_keys(cJSON *p, const char *properties_json) {
    if (!properties_json) return;
    cJSON *caller = cJSON_Parse(properties_json);
    if (cJSON_IsObject(caller)) {
        for (cJSON *m = p->child, *next; m; m = next) {
            next = m->next;
            if (cJSON_GetObjectItemCaseSensitive(caller, m->string))
                cJSON_Delete(cJSON_DetachItemViaPointer(p, m));
        }
    }
    cJSON_Delete(caller);
}

static posthog_status_t bad(posthog_client_t *c, posthog_status_t st, const char *what) {
    posthog__log(c, POSTHOG_LOG_ERROR, "posthog_capture_exception: %s", what);
    return posthog__drop_at_capture(c, POSTHOG_DROP_INVALID, st, "$exception", NULL);
}

static posthog_status_t build_and_capture(posthog_client_t *c, const char *distinct_id,
                                          const char *type, const char *message,
                                          const char *properties_json,
                                          const posthog_exception_options_t *opts, char *uuid_out,
                                          const uintptr_t *pcs, size_t n, const ph_modules_t *mods,
                                          bool live);

/* The stack starts at the caller of the public function: `ret` is the
 * public function's return address (__builtin_return_address(0)), so the
 * frames before it (this library's, and any a sanitizer's interceptor
 * adds) are left out whatever the inlining; `depth` (this function and the
 * public one) is the fallback when ret is not among the frames. */
__attribute__((noinline)) static posthog_status_t
capture_exception(posthog_client_t *c, const char *distinct_id, const char *type,
                  const char *message, const char *properties_json,
                  const posthog_exception_options_t *opts, char *uuid_out, size_t depth,
                  uintptr_t ret) {
    if (!c) return POSTHOG_E_INVALID_ARG;
    static const posthog_exception_options_t none = {0};
    uintptr_t pcs[PH_MAX_FRAMES];
    size_t n = 0;
    ph_modules_t mods = {0};
    if (!opts) opts = &none;
    if (!opts->exception_list_json) {
        uintptr_t all[PH_MAX_FRAMES + 8];
        size_t na = posthog__native_stack(all, PH_MAX_FRAMES + 8, 0), from = na;
        for (size_t i = 0; i < na && from == na; i++)
            if (all[i] == ret) from = i;
        if (from == na) from = PH_MIN(depth, na);
        from += (size_t)(opts->skip_frames > 0 ? opts->skip_frames : 0);
        for (size_t i = from; i < na && n < PH_MAX_FRAMES; i++) pcs[n++] = all[i];
        posthog__native_modules(&mods);
    }
    posthog_status_t st = build_and_capture(c, distinct_id, type, message, properties_json, opts,
                                            uuid_out, pcs, n, &mods, true);
    posthog__native_modules_free(&mods);
    return st;
}

posthog_status_t posthog__capture_native_exception(posthog_client_t *c, const char *distinct_id,
                                                   const char *type, const char *message,
                                                   const char *properties_json,
                                                   const posthog_exception_options_t *opts,
                                                   const uintptr_t *pcs, size_t n,
                                                   const ph_modules_t *mods) {
    return build_and_capture(c, distinct_id, type, message, properties_json, opts, NULL, pcs, n,
                             mods, false);
}

static posthog_status_t build_and_capture(posthog_client_t *c, const char *distinct_id,
                                          const char *type, const char *message,
                                          const char *properties_json,
                                          const posthog_exception_options_t *opts, char *uuid_out,
                                          const uintptr_t *pcs, size_t n, const ph_modules_t *mods,
                                          bool live) {
    const char *level = opts->level ? opts->level : "error";
    if (!valid_level(level))
        return bad(c, POSTHOG_E_INVALID_ARG,
                   "level must be fatal, error, warning, info, debug or log");
    if ((unsigned)opts->handled > POSTHOG_FALSE)
        return bad(c, POSTHOG_E_INVALID_ARG, "handled must be POSTHOG_UNSET, _TRUE or _FALSE");
    cJSON *p = cJSON_CreateObject(), *list = NULL, *images = NULL;
    bool *used = NULL;
    posthog_status_t st = POSTHOG_E_NOMEM;
    char *more = NULL, *props = NULL;
    if (!p) goto out;
    if (opts->exception_list_json) {
        list = cJSON_Parse(opts->exception_list_json);
        if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list)) {
            st = bad(c, POSTHOG_E_INVALID_JSON,
                     "exception_list_json must be a non-empty JSON array of exceptions "
                     "([{\"type\": ..., \"value\": ..., \"stacktrace\": {...}}])");
            goto out;
        }
    } else {
        if (!type || !*type) {
            st = bad(c, POSTHOG_E_INVALID_ARG, "type (the exception's class or kind) is required");
            goto out;
        }
        if (mods->n) used = calloc(mods->n, sizeof *used);
        images = cJSON_CreateArray();
        list = cJSON_CreateArray();
        cJSON *ex = cJSON_CreateObject();
        if (!images || !list || !ex) {
            cJSON_Delete(ex);
            goto out;
        }
        cJSON_AddStringToObject(ex, "type", type);
        cJSON_AddStringToObject(ex, "value", message ? message : "");
        cJSON *mech = cJSON_AddObjectToObject(ex, "mechanism");
        cJSON_AddStringToObject(mech, "type", opts->mechanism_type ? opts->mechanism_type : "generic");
        cJSON_AddBoolToObject(mech, "handled", opts->handled != POSTHOG_FALSE);
        cJSON_AddBoolToObject(mech, "synthetic", false);
        cJSON *trace = cJSON_AddObjectToObject(ex, "stacktrace");
        cJSON_AddStringToObject(trace, "type", "raw");
        cJSON *frames = native_frames(pcs, n, mods, used ? images : NULL, used, live);
        if (frames) cJSON_AddItemToObject(trace, "frames", frames);
        cJSON_AddItemToArray(list, ex);
    }
    cJSON_AddItemToObject(p, "$exception_list", list);
    list = NULL;
    cJSON_AddStringToObject(p, "$exception_level", level);
    if (opts->fingerprint) cJSON_AddStringToObject(p, "$exception_fingerprint", opts->fingerprint);
    if (images && cJSON_GetArraySize(images)) {
        cJSON_AddItemToObject(p, "$debug_images", images);
        images = NULL;
    }
    drop_callers_keys(p, properties_json);
    if (!(more = cJSON_PrintUnformatted(p))) goto out;
    if (!(props = posthog__json_append_members(properties_json, more))) {
        st = bad(c, POSTHOG_E_INVALID_JSON, "properties_json must be a JSON object");
        goto out;
    }
    posthog_capture_options_t co = {.timestamp_ms = opts->timestamp_ms, .uuid = opts->uuid,
                                    .groups_json = opts->groups_json};
    st = posthog_capture_opts(c, distinct_id, "$exception", props, &co, uuid_out);
out:
    cJSON_Delete(p);
    cJSON_Delete(list);
    cJSON_Delete(images);
    cJSON_free(more);
    free(props);
    free(used);
    if (st == POSTHOG_E_NOMEM) posthog__log(c, POSTHOG_LOG_ERROR, "posthog_capture_exception: out of memory");
    return st;
}

/* the empty asm after each call keeps it from becoming a tail call (which
 * would take the public function's frame off the stack) */
__attribute__((noinline)) posthog_status_t
posthog_capture_exception_ex(posthog_client_t *c, const char *distinct_id, const char *type,
                             const char *message, const char *properties_json,
                             const posthog_exception_options_t *opts, char *uuid_out) {
    posthog_status_t st = capture_exception(c, distinct_id, type, message, properties_json, opts,
                                            uuid_out, 2, (uintptr_t)__builtin_return_address(0));
    __asm__ volatile("" ::: "memory");
    return st;
}

__attribute__((noinline)) posthog_status_t
posthog_capture_exception(posthog_client_t *c, const char *distinct_id, const char *type,
                          const char *message, const char *properties_json) {
    posthog_status_t st = capture_exception(c, distinct_id, type, message, properties_json, NULL,
                                            NULL, 2, (uintptr_t)__builtin_return_address(0));
    __asm__ volatile("" ::: "memory");
    return st;
}
