/*
 * libposthog: a C11 client for PostHog's event ingestion API.
 *
 * Application threads call posthog_capture*(): the event is validated,
 * serialised and pushed into a lock-free bounded in-memory queue. Capture
 * never does I/O, never takes a lock and never blocks. One background
 * flusher thread per client drains the queue into batches, gzips them and
 * POSTs them to {host}/batch/, retrying transient failures with backoff.
 *
 * Every event the library does not deliver is counted in exactly one drop
 * reason (posthog_get_stats) and reported through the drop callback.
 *
 * Conventions
 *  - Functions that can fail return posthog_status_t (POSTHOG_OK == 0).
 *  - Every pointer parameter says whether it is *borrowed* (valid for the
 *    call only), *copied*, or *owned* (the function takes ownership).
 *  - All strings are NUL-terminated UTF-8.
 *  - The ABI has no varargs, no bitfields and no structs passed by value,
 *    so it can be called through ctypes, ffi and similar.
 */
#ifndef POSTHOG_POSTHOG_H
#define POSTHOG_POSTHOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define POSTHOG_API
#elif defined(__GNUC__)
#define POSTHOG_API __attribute__((visibility("default")))
#else
#define POSTHOG_API
#endif

#define POSTHOG_VERSION_MAJOR 0
#define POSTHOG_VERSION_MINOR 1
#define POSTHOG_VERSION_PATCH 0
#define POSTHOG_VERSION_STRING "0.1.0"

/*
 * How deep a JSON value given to the library (properties, $set, $groups,
 * super_properties, a builder with the builders nested in it, the property
 * values of a before_send replacement) may nest objects and arrays; the
 * value itself is level 1. Deeper ones are refused at capture
 * (POSTHOG_E_INVALID_JSON, with a message naming the limit), as PostHog
 * refuses a whole batch for one event nested too deep.
 */
#define POSTHOG_MAX_JSON_DEPTH 64

/* ------------------------------------------------------------------ */
/* Status codes                                                        */
/* ------------------------------------------------------------------ */

typedef enum posthog_status {
    POSTHOG_OK = 0,
    POSTHOG_E_INVALID_ARG = 1,   /* a NULL or malformed argument */
    POSTHOG_E_INVALID_EVENT = 2, /* empty event name, bad distinct_id, ... */
    POSTHOG_E_INVALID_UTF8 = 3,  /* a string is not valid UTF-8 */
    POSTHOG_E_INVALID_JSON = 4,  /* properties are not a JSON object */
    POSTHOG_E_TOO_LARGE = 5,     /* event over max_event_bytes */
    POSTHOG_E_QUEUE_FULL = 6,    /* in-memory queue full: event dropped */
    POSTHOG_E_SHUTDOWN = 7,      /* client is shut down */
    POSTHOG_E_TIMEOUT = 8,       /* flush/shutdown deadline passed */
    POSTHOG_E_NOMEM = 9,         /* allocation failed */
    POSTHOG_E_UNKNOWN_OPTION = 10,
    POSTHOG_E_BAD_OPTION_VALUE = 11,
    POSTHOG_E_NO_API_KEY = 12,   /* no api_key option nor POSTHOG_API_KEY */
    POSTHOG_E_DISABLED = 13,     /* client created with disabled=1: nothing sent */
    POSTHOG_E_DROPPED = 14,      /* before_send dropped the event */
    POSTHOG_E_THREAD = 15,       /* could not start the flusher thread */
    POSTHOG_E_HTTP = 16,         /* transport or server error (callbacks) */
    POSTHOG_E_INTERNAL = 17,
    POSTHOG_E_STORAGE = 18,      /* the spool directory could not be used */
    POSTHOG_E_NO_STORAGE = 19,   /* durable capture needs storage_path */
    POSTHOG_E_UNDELIVERED = 20,  /* posthog_flush_ex: done, but events were dropped meanwhile */
    POSTHOG_E_IN_CALLBACK = 21   /* flush/shutdown called inside a callback of that client */
} posthog_status_t;

/* A static, human-readable message for a status code. Never NULL. */
POSTHOG_API const char *posthog_strerror(posthog_status_t s);

/* The library version, e.g. "0.1.0". Static string. */
POSTHOG_API const char *posthog_version(void);

/* The library's allocator. No function takes ownership of memory from its
 * caller (before_send replacements are copied, see posthog_replacement_set);
 * these remain for callers that want to share it. posthog_malloc(0) returns
 * a unique pointer. */
POSTHOG_API void *posthog_malloc(size_t n);
POSTHOG_API void posthog_free(void *p);

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef struct posthog_options posthog_options_t;

/* A new option set with every default. NULL only if out of memory. */
POSTHOG_API posthog_options_t *posthog_options_new(void);

/*
 * Sets one option from its string form. `key` and `value` are borrowed
 * (the value is copied). Returns POSTHOG_E_UNKNOWN_OPTION for an unknown
 * key and POSTHOG_E_BAD_OPTION_VALUE for a value that does not parse or is
 * out of range; the option set is unchanged on error. posthog_options_set_ex
 * (below) says why in words.
 *
 * Keys (defaults in brackets):
 *   api_key              project API key (phc_...) [$POSTHOG_API_KEY]; UTF-8
 *                        without control characters. A malformed
 *                        $POSTHOG_API_KEY fails posthog_client_new.
 *   host                 base URL: https://host[:port][/path] or http://...;
 *                        a bare host name ("eu.i.posthog.com") means https://
 *                        [$POSTHOG_HOST or https://us.i.posthog.com];
 *                        app./us.posthog.com map to us.i, eu.posthog.com to
 *                        eu.i. A malformed $POSTHOG_HOST fails
 *                        posthog_client_new: the client never falls back to
 *                        another host.
 *   flush_at             events per batch that trigger a send [100]
 *   max_batch_size       events per request at most; while a request is in
 *                        flight batches grow past flush_at up to this [1000]
 *   flush_interval_ms    max age of a partial batch before it is sent [5000]
 *   max_queue_size       events held in memory before drops [262144]
 *   max_queue_bytes      memory budget of the pipeline: queued events (3/4),
 *                        sealed batches waiting to be sent (1/8), the
 *                        flusher's working memory (1/8); the default holds a
 *                        burst of ~220k events of ~170 bytes even if nothing
 *                        is sent meanwhile [50331648]
 *   memory_budget        bytes that bound everything the library allocates
 *                        for events (unset: max_queue_bytes as above, today's
 *                        speed). Split: the queue's ring 1/2 (an anonymous
 *                        mapping whose pages are touched only as it is used:
 *                        no prefault), sealed batches waiting to be sent 1/16,
 *                        one compressor's state 3/16 (zlib windowBits and
 *                        memLevel, zstd window and tables sized to fit; made
 *                        when a batch opens, freed when it is sealed; one
 *                        batch is open at a time), max_batch_bytes,
 *                        max_event_bytes and max_ai_event_bytes a 32nd each
 *                        (larger explicit values, or max_queue_bytes, are an
 *                        error), batch text, output and spool buffers and the
 *                        client's own structures the rest. Not in it: the
 *                        transport (libcurl), thread stacks (thread_stack_size),
 *                        feature-flag definitions. A capture that does not fit
 *                        is refused (POSTHOG_E_QUEUE_FULL, counted), never
 *                        silently lost. zstd needs about 200 KiB: below that
 *                        the default compression is gzip (an explicit zstd is
 *                        an error saying the least budget); br is refused.
 *                        At least 131072 (128 KiB). README "Memory" has the
 *                        measured table (tools/heap.sh) [unset]
 *   thread_stack_size    stack of the flusher thread and of the flag
 *                        definitions loader, in bytes; set explicitly so a
 *                        client does not reserve RLIMIT_STACK (often 8 MiB) of
 *                        address space per thread. The flusher uses ~16 KiB
 *                        over HTTP (tools/heap.sh); the rest is margin for
 *                        TLS and for log/drop callbacks, which run on it
 *                        [262144]
 *   max_batch_bytes      uncompressed bytes per request [5242880]
 *   max_ai_event_bytes   serialised bytes per posthog_capture_ai event, as the
 *                        official SDKs' AI lane [8388608, at most a quarter
 *                        of max_queue_bytes]
 *   max_event_bytes      serialised bytes per event [921600]; in v1 the event
 *                        name and distinct_id are also limited to 200 bytes
 *   capture_mode         "v1": PostHog's current protocol, POST
 *                        /i/v1/analytics/events with per-event results;
 *                        "v0": the legacy /batch/ endpoint, for self-hosted
 *                        instances and proxies that do not serve v1 yet
 *                        [$POSTHOG_CAPTURE_MODE or v1]. Spooled events are
 *                        replayed in the client's mode, whichever spooled them.
 *   compression          request bodies: "zstd", "gzip", "deflate", "br"
 *                        (brotli, when built with libbrotli) or "none"
 *                        (v0: gzip or none) [zstd in v1 when built with
 *                        libzstd, else gzip]
 *   gzip                 legacy switch: 1 = compression gzip, 0 = none
 *   gzip_level           zlib level 1..9 of gzip and deflate [1]
 *   zstd_level           zstd level 1..19 [1]
 *   brotli_level         brotli quality 0..11 [4]
 *   request_timeout_ms   per HTTP request [10000]
 *   connect_timeout_ms   TCP+TLS connect [5000]
 *   max_retries          retries after the first attempt [3]
 *   retry_backoff_ms     first backoff; doubles each retry, with jitter [100]
 *   max_retry_wait_ms    cap of one wait, incl. Retry-After [30000]
 *   shutdown_timeout_ms  default deadline of posthog_client_free [5000]
 *   disabled             1: accept calls, send nothing [0]
 *   historical_migration 1: mark batches as historical imports (v0: the body's
 *                        flag; v1: "historical_migration":true in the body) [0]
 *   default_distinct_id  used when capture gets a NULL/empty distinct_id; unset:
 *                        a new UUID and a personless event [none]
 *   disable_geoip        1: add "$geoip_disable":true to every event's
 *                        properties (no GeoIP enrichment) [0]
 *   super_properties     JSON object merged into every event's properties; a
 *                        key the event's own properties have keeps the event's
 *                        value (the Python and Ruby bindings' precedence too) [{}]
 *   sdk_name, sdk_version  who the events come from: capture v1 sends
 *                        PostHog-Sdk-Info: <name>/<version>, from which the
 *                        server sets $lib/$lib_version (a binding sets its own);
 *                        tokens of printable ASCII without '/' [posthog-c and
 *                        this version, or $lib/$lib_version of super_properties]
 *   ca_bundle            path of a CA bundle (PEM) for TLS; posthog_client_new
 *                        fails when it is not a readable file [system]
 *   tls_verify           0: do not verify the server's certificate (logged as a
 *                        warning at client creation) [1]
 *   debug                1: log at debug level (unless log_level says
 *                        otherwise) [0]
 *   log_level            the least severe level logged: "debug", "info",
 *                        "warn", "error" or "none" (nothing) [$POSTHOG_LOG_LEVEL,
 *                        else warn; info with a log callback; debug with
 *                        debug=1]; a malformed $POSTHOG_LOG_LEVEL is ignored
 *                        (and logged)
 *   storage_path         directory for the disk spool (created 0700); unset:
 *                        memory only. An existing directory must be a real
 *                        one (no symlink) owned by this user and not writable
 *                        by group or others, else it is refused (logged: the
 *                        path and the problem) and the client keeps events in
 *                        memory only; a relative path is resolved at creation
 *                        (docs/spool-format.md). A build configured with
 *                        -DPOSTHOG_WITH_SPOOL=OFF has no spool:
 *                        posthog_client_new then fails with an error naming
 *                        that option [none]
 *   max_storage_bytes    spool size limit; oldest files evicted [67108864]
 *   max_storage_age_s    spooled events older than this are discarded [604800]
 *   spool_fsync_interval_ms  batches spooled because the endpoint is down (or
 *                        at the shutdown deadline) are appended to a segment
 *                        file and fsynced at most this often: at the default,
 *                        at most 60 fsyncs an hour plus two per new segment.
 *                        They survive the process being killed at once; a
 *                        power loss may cost the last interval's. 0: fsync
 *                        at every append. durability=always batches and
 *                        posthog_capture_durable events are fsynced before
 *                        they count as stored, whatever this is [60000]
 *   spool_max_files      segment files per client (2 to 100000); a segment
 *                        is rotated at max(max_storage_bytes * 2 /
 *                        spool_max_files, 64 KiB); when a new one would be
 *                        one too many the oldest is evicted (storage_full)
 *                        [32]
 *   durability           "failures": spool what cannot be delivered (retries
 *                        exhausted, endpoint down, left at shutdown);
 *                        "always": also every batch before its first send,
 *                        removed once the server confirms it [failures]
 *   crash_handler        1: on SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGABRT write every
 *                        event not yet confirmed by the server (queued, or in
 *                        a batch not yet delivered) to the spool, in files of
 *                        at most max_batch_bytes, together at most
 *                        max_storage_bytes, then chain. Needs storage_path.
 *                        The handler runs on an alternate signal stack, set up
 *                        (when the thread has none) on the thread creating the
 *                        client, on its flusher thread and on each thread at
 *                        its first capture, so a stack overflow is covered.
 *                        posthog_client_free restores the previous signal
 *                        dispositions only if the handler is still the
 *                        library's. README "Crash handler". A build
 *                        configured with -DPOSTHOG_WITH_CRASH_HANDLER=OFF (or
 *                        without the spool) refuses 1 (POSTHOG_E_BAD_OPTION_VALUE,
 *                        naming the build option). [0]
 *   feature_flags_request_timeout_ms  each /flags request [3000]
 *   feature_flags_request_max_retries retries of a /flags request after a
 *                        transport error, 502 or 504 (300 ms, doubling) [1]
 *   send_feature_flag_events  1: reading a flag captures $feature_flag_called
 *                        (once per distinct_id, flag, value and groups) [1]
 *   feature_flag_called_cache_size  distinct ids the $feature_flag_called
 *                        dedupe remembers; the oldest is forgotten first; 0:
 *                        no dedupe [50000]
 *   secret_key           project secret key (phs_...) for local evaluation of
 *                        feature flags: the client then loads the flag
 *                        definitions in the background and evaluates locally;
 *                        personal_api_key (phx_...) is the older name [none]
 *   poll_interval_ms     how often the definitions are polled (+-10%) [30000]
 */
POSTHOG_API posthog_status_t posthog_options_set(posthog_options_t *o, const char *key,
                                                 const char *value);

/*
 * posthog_options_set, and on failure a NUL-terminated message in `errbuf`
 * (at most `errlen` bytes; NULL/0: none) naming the key, the value and what
 * is allowed, e.g. `option flush_at="0" is invalid: expected a whole number
 * from 1 to 100000`. Secret values (api_key) are shown masked; the value of
 * an unknown key is never shown. On success errbuf holds "".
 */
POSTHOG_API posthog_status_t posthog_options_set_ex(posthog_options_t *o, const char *key,
                                                    const char *value, char *errbuf,
                                                    size_t errlen);

/* Frees an option set. NULL is a no-op. */
POSTHOG_API void posthog_options_free(posthog_options_t *o);

/*
 * The allocator of everything the library allocates itself: its own
 * structures, the queue's companions, batches, compressor state (zlib's
 * zalloc, libzstd's customMem, libbrotli's alloc hooks) and cJSON's nodes.
 * Call it once, before any other posthog_ function (including
 * posthog_options_new); afterwards it returns POSTHOG_E_INVALID_ARG unless
 * given the functions already installed. All three or none (NULL, NULL,
 * NULL: the system's malloc, realloc and free). realloc_fn gets only
 * pointers from malloc_fn/realloc_fn; the library never asks for 0 bytes.
 *
 * cJSON's hooks are process-wide: this installs the functions there too
 * (cJSON_InitHooks), so an application that uses cJSON itself must not
 * hold cJSON memory across this call. Still from the system: libcurl's
 * allocations (the transport, outside memory_budget; an application that
 * wants them can call curl_global_init_mem before its first client), the
 * queue's ring (an anonymous mapping of its size, see memory_budget),
 * thread stacks, and what libc allocates internally.
 */
typedef void *(*posthog_malloc_fn)(size_t size);
typedef void *(*posthog_realloc_fn)(void *ptr, size_t size);
typedef void (*posthog_free_fn)(void *ptr);
POSTHOG_API posthog_status_t posthog_set_allocator(posthog_malloc_fn malloc_fn,
                                                   posthog_realloc_fn realloc_fn,
                                                   posthog_free_fn free_fn);

/* Log levels for the log callback. */
typedef enum posthog_log_level {
    POSTHOG_LOG_DEBUG = 0,
    POSTHOG_LOG_INFO = 1,
    POSTHOG_LOG_WARN = 2,
    POSTHOG_LOG_ERROR = 3
} posthog_log_level_t;

/*
 * Log callback. `message` is borrowed. Called from whichever thread logs:
 * the flusher thread for delivery, the caller's thread for API errors. No
 * internal lock is held while it runs. Without a callback (or after
 * setting fn NULL) messages go to stderr, one line each ("libposthog:
 * warning: ..."): warnings and errors unless the log_level option says
 * otherwise; log_level=none silences them.
 *
 * Inside any callback of a client (log, drop, before_send), that client's
 * posthog_flush, posthog_flush_ex, posthog_flush_resolved and
 * posthog_shutdown return POSTHOG_E_IN_CALLBACK at once and
 * posthog_client_free does nothing but log an error: on the flusher thread
 * they would wait for the thread itself, and the code the callback returns
 * to still uses the client. Call them from outside the callback (e.g. hand
 * the work to another thread). Capturing from a callback is allowed.
 */
typedef void (*posthog_log_fn)(posthog_log_level_t level, const char *message,
                               void *user_data);
POSTHOG_API void posthog_options_set_log(posthog_options_t *o, posthog_log_fn fn,
                                         void *user_data);

/* Why events were dropped. Every dropped event has exactly one reason. */
typedef enum posthog_drop_reason {
    POSTHOG_DROP_QUEUE_FULL = 0,        /* in-memory queue at its limit */
    POSTHOG_DROP_INVALID = 1,           /* failed validation at capture */
    POSTHOG_DROP_TOO_LARGE = 2,         /* over max_event_bytes, or 413 alone */
    POSTHOG_DROP_REJECTED = 3,          /* server refused the request for good (400, 401,
                                           402, 403, 415, other 4xx; v1 bisects a 400 so
                                           only the offending events get it) */
    POSTHOG_DROP_RETRIES_EXHAUSTED = 4, /* transient failures outlasted max_retries */
    POSTHOG_DROP_BEFORE_SEND = 5,       /* before_send returned drop */
    POSTHOG_DROP_SHUTDOWN = 6,          /* undelivered at shutdown deadline, or captured after */
    POSTHOG_DROP_STORAGE_FULL = 7,      /* spool over max_storage_bytes (evicted), or unwritable */
    POSTHOG_DROP_EXPIRED = 8,           /* spooled longer than max_storage_age_s */
    POSTHOG_DROP_CORRUPT = 9,           /* torn or corrupt records found in the spool */
    POSTHOG_DROP_SERVER_DROPPED = 10,   /* capture v1: the server answered "drop" for the
                                           event (message: its details, e.g.
                                           billing_limit_exceeded) */
    POSTHOG_DROP_REASON_COUNT = 11
} posthog_drop_reason_t;

/* Slots reserved in posthog_stats_t.dropped, so new reasons keep the ABI. */
#define POSTHOG_DROP_REASON_SLOTS 16

/* A short static name for a drop reason ("queue_full", ...). */
POSTHOG_API const char *posthog_drop_reason_name(posthog_drop_reason_t r);

/*
 * What the drop callback receives. Every pointer is borrowed for the call.
 *  reason       why
 *  status       the matching status code
 *  count        how many events this report covers
 *  http_status  the server's status when the server decided, else 0
 *  message      human-readable detail
 *  events_json  a JSON array of the dropped events when they were already
 *               serialised (flusher-side drops), else NULL
 *  event        event name for a single-event drop at capture, else NULL
 *  distinct_id  its distinct_id (may be NULL)
 */
typedef struct posthog_drop_info {
    int32_t reason; /* posthog_drop_reason_t */
    int32_t status; /* posthog_status_t */
    uint32_t count;
    int32_t http_status;
    const char *message;
    const char *events_json;
    const char *event;
    const char *distinct_id;
} posthog_drop_info_t;

/*
 * Drop callback: called once per drop report. Called on the capturing
 * thread for drops at capture (queue full, invalid, too large, before_send,
 * after shutdown) and on the flusher thread (or the thread calling
 * posthog_shutdown) for delivery drops. No internal lock is held.
 */
typedef void (*posthog_drop_fn)(const posthog_drop_info_t *info, void *user_data);
POSTHOG_API void posthog_options_set_on_drop(posthog_options_t *o, posthog_drop_fn fn,
                                             void *user_data);

/* Return values of before_send. */
typedef enum posthog_before_send_result {
    POSTHOG_BEFORE_SEND_KEEP = 0,    /* send the event unchanged */
    POSTHOG_BEFORE_SEND_REPLACE = 1, /* send the replacement set during the call */
    POSTHOG_BEFORE_SEND_DROP = 2     /* drop it (counted as before_send) */
} posthog_before_send_result_t;

/*
 * The replacement event a before_send callback may set. Owned by the
 * library and valid only during the callback, on its thread; the callback
 * never allocates or frees anything for it.
 */
typedef struct posthog_replacement posthog_replacement_t;

/*
 * before_send: called on the capturing thread, before the event is queued,
 * with the event as a JSON object {"uuid","event","distinct_id",
 * "timestamp","properties",...} (`event_json`, borrowed for the call) and
 * the event's `replacement` (owned by the library). Returns a verdict:
 *  KEEP     the event is sent as it was captured;
 *  DROP     it is dropped and counted as before_send;
 *  REPLACE  the replacement set during the call with posthog_replacement_set
 *           or posthog_replacement_remove_property is sent instead. Without
 *           one the event is sent unchanged (and a warning logged); a
 *           replacement those calls refused drops the event as invalid (or
 *           too_large) with their message.
 * Any other value is treated as KEEP. Keep it fast: it runs inside
 * posthog_capture*. No internal lock is held.
 */
typedef posthog_before_send_result_t (*posthog_before_send_fn)(const char *event_json,
                                                                posthog_replacement_t *replacement,
                                                                void *user_data);
POSTHOG_API void posthog_options_set_before_send(posthog_options_t *o,
                                                 posthog_before_send_fn fn, void *user_data);

/*
 * Sets the whole replacement event from `event_json` (borrowed, copied): a
 * JSON object with a non-empty string "event" and a non-empty "distinct_id"
 * (a string or a number); "uuid" and "timestamp" are kept from the original
 * when absent or null; "properties" (an object or null) and any other
 * top-level members ($set, ...) are sent exactly as written, numbers
 * included. The same rules as at capture apply: numbers within the range
 * of a double, property values nested at most POSTHOG_MAX_JSON_DEPTH levels,
 * max_event_bytes and, in capture v1, event names and distinct_ids of at
 * most 200 bytes. Returns POSTHOG_OK, or why the replacement is refused
 * (POSTHOG_E_INVALID_JSON, _INVALID_EVENT, _TOO_LARGE, _NOMEM,
 * _INVALID_ARG); the last call wins. Only during the before_send call.
 */
POSTHOG_API posthog_status_t posthog_replacement_set(posthog_replacement_t *replacement,
                                                     const char *event_json);

/*
 * Removes the property `key` (borrowed; compared by its decoded value) from
 * the replacement, which starts as the event the callback received; every
 * other byte stays as it was. POSTHOG_OK also when there was no such
 * property. Return POSTHOG_BEFORE_SEND_REPLACE for the edit to count. Only
 * during the before_send call.
 */
POSTHOG_API posthog_status_t posthog_replacement_remove_property(
    posthog_replacement_t *replacement, const char *key);

/* ------------------------------------------------------------------ */
/* Properties builder                                                  */
/* ------------------------------------------------------------------ */

/*
 * A JSON object or array built value by value. Not thread-safe: one
 * builder is used by one thread at a time. Capture copies it, so a builder
 * can be freed or reused right after posthog_capture returns.
 *
 * On an object, every setter needs a non-empty `key` (borrowed, copied);
 * setting a key twice replaces the earlier value. On an array (from
 * posthog_props_new_array) `key` must be NULL and the value is appended.
 * A setter that fails (POSTHOG_E_INVALID_ARG, _INVALID_UTF8, _INVALID_JSON,
 * _NOMEM) leaves the builder unchanged.
 *
 * A builder nests at most POSTHOG_MAX_JSON_DEPTH levels, itself included:
 * posthog_props_set_json and posthog_props_set_props return
 * POSTHOG_E_INVALID_JSON for a value that would nest deeper (a value nests
 * at most POSTHOG_MAX_JSON_DEPTH - 1 levels inside its builder).
 */
typedef struct posthog_props posthog_props_t;

POSTHOG_API posthog_props_t *posthog_props_new(void);
POSTHOG_API posthog_props_t *posthog_props_new_array(void);
/* Empties the builder, keeping its kind and memory. */
POSTHOG_API void posthog_props_clear(posthog_props_t *p);
POSTHOG_API void posthog_props_free(posthog_props_t *p);

/* `value` is borrowed and copied; NULL sets JSON null. */
POSTHOG_API posthog_status_t posthog_props_set_string(posthog_props_t *p, const char *key,
                                                      const char *value);
/* `value` with explicit length in bytes (may contain NUL, encoded as \u0000). */
POSTHOG_API posthog_status_t posthog_props_set_stringn(posthog_props_t *p, const char *key,
                                                       const char *value, size_t len);
POSTHOG_API posthog_status_t posthog_props_set_int(posthog_props_t *p, const char *key,
                                                   int64_t value);
/* NaN and infinities are stored as null (JSON has no such numbers). */
POSTHOG_API posthog_status_t posthog_props_set_double(posthog_props_t *p, const char *key,
                                                      double value);
POSTHOG_API posthog_status_t posthog_props_set_bool(posthog_props_t *p, const char *key,
                                                    int value);
POSTHOG_API posthog_status_t posthog_props_set_null(posthog_props_t *p, const char *key);
/* `json` (borrowed) is any JSON value; it is validated (numbers within the
 * range of a double, nesting as above) and copied exactly as written. */
POSTHOG_API posthog_status_t posthog_props_set_json(posthog_props_t *p, const char *key,
                                                    const char *json);
/* Nests a copy of `child` (borrowed), an object or array builder; it may
 * nest at most POSTHOG_MAX_JSON_DEPTH - 1 levels itself. */
POSTHOG_API posthog_status_t posthog_props_set_props(posthog_props_t *p, const char *key,
                                                     const posthog_props_t *child);
/* Number of keys (object) or elements (array). */
POSTHOG_API size_t posthog_props_count(const posthog_props_t *p);
/* The builder's JSON text (borrowed, valid until the builder changes). */
POSTHOG_API const char *posthog_props_json(posthog_props_t *p);

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

typedef struct posthog_client posthog_client_t;

/*
 * Creates a client and starts its flusher thread. Always takes ownership
 * of `o` (also on failure; NULL means all defaults). On failure returns
 * NULL and, when `errbuf` is not NULL, writes a NUL-terminated message of
 * at most `errlen` bytes. Several clients may live in one process.
 *
 * fork(): a client may be used on both sides of a fork. The child keeps
 * the client with none of the parent's queued events (the parent delivers
 * those, once), its stats restart at zero, and its own flusher thread
 * starts at its first capture. Before the fork, each flusher is parked
 * where it holds no lock (its own, the allocator's, libcurl's, OpenSSL's),
 * so the child cannot inherit one held by a thread it does not have; a
 * flusher busy in a callback delays fork() at most 0.5 s, then the fork
 * goes ahead.
 */
POSTHOG_API posthog_client_t *posthog_client_new(posthog_options_t *o, char *errbuf,
                                                 size_t errlen);

/*
 * Captures an event. Thread-safe, lock-free, never blocks, no I/O.
 * `distinct_id`, `event` and `props` are borrowed (copied). `props` may be
 * NULL. A NULL/empty distinct_id uses default_distinct_id if set, else a
 * generated one (a personless event; see posthog_capture_opts).
 * Returns POSTHOG_OK when queued; otherwise the event is dropped, counted
 * and reported (POSTHOG_E_INVALID_*, _TOO_LARGE, _QUEUE_FULL, _SHUTDOWN,
 * _DROPPED by before_send). A disabled client returns POSTHOG_OK and sends
 * nothing.
 */
POSTHOG_API posthog_status_t posthog_capture(posthog_client_t *c, const char *distinct_id,
                                             const char *event, const posthog_props_t *props);

/* As posthog_capture, with properties as JSON text: an object or NULL. */
POSTHOG_API posthog_status_t posthog_capture_json(posthog_client_t *c, const char *distinct_id,
                                                  const char *event,
                                                  const char *properties_json);

/*
 * The full capture: every argument after `event` may be NULL/0.
 *  properties_json  JSON object (borrowed)
 *  timestamp_ms     Unix epoch milliseconds; 0 means now
 *  uuid             canonical 8-4-4-4-12 UUID to use (borrowed); NULL: a new v7
 *  groups_json      JSON object group_type -> group_key, sent as $groups
 *  set_json         JSON object sent as top-level $set
 *  set_once_json    JSON object sent as top-level $set_once
 *  uuid_out         if not NULL, receives the event's uuid (37 bytes incl. NUL)
 */
POSTHOG_API posthog_status_t posthog_capture_ex(posthog_client_t *c, const char *distinct_id,
                                                const char *event, const char *properties_json,
                                                int64_t timestamp_ms, const char *uuid,
                                                const char *groups_json, const char *set_json,
                                                const char *set_once_json, char *uuid_out);

/*
 * Captures an event that must never be lost (a purchase, a device boot):
 * returns POSTHOG_OK only once the event is on disk in the spool (written
 * and fsync'ed; concurrent callers share one fsync), from where it is
 * delivered like any spooled batch. Blocks for the disk write. Needs
 * storage_path (else POSTHOG_E_NO_STORAGE; always so in a build configured
 * with -DPOSTHOG_WITH_SPOOL=OFF, logged as such); POSTHOG_E_STORAGE when the
 * write failed (the event is then not captured and counted as dropped).
 * The event is appended to the client's spool segment and fsynced whatever
 * spool_fsync_interval_ms is.
 */
POSTHOG_API posthog_status_t posthog_capture_durable(posthog_client_t *c, const char *distinct_id,
                                                     const char *event,
                                                     const char *properties_json);
/*
 * Per-event options of posthog_capture_opts. Zero-initialise the struct
 * (`posthog_capture_options_t o = {0};`): every field's zero is "not set".
 *  timestamp_ms .. set_once_json   as in posthog_capture_ex
 *  process_person_profile   POSTHOG_FALSE: a personless event (no person
 *                           profile is created or updated)
 *  cookieless_mode          POSTHOG_TRUE: the server derives a cookieless id
 *  disable_skew_correction  POSTHOG_TRUE: the server does not correct the
 *                           timestamp by the client's clock skew
 *  product_tour_id          the product tour the event belongs to
 * They travel as the properties $process_person_profile, $cookieless_mode,
 * $ignore_sent_at and $product_tour_id (capture v0), or in the event's
 * `options` object (capture v1, lifted from those properties). The same
 * keys given in properties_json count as well; when both are given the
 * properties win (first wins, as with super properties).
 */
typedef enum posthog_tristate {
    POSTHOG_UNSET = 0,
    POSTHOG_TRUE = 1,
    POSTHOG_FALSE = 2
} posthog_tristate_t;

typedef struct posthog_capture_options {
    int64_t timestamp_ms;
    const char *uuid;
    const char *groups_json;
    const char *set_json;
    const char *set_once_json;
    posthog_tristate_t process_person_profile;
    posthog_tristate_t cookieless_mode;
    posthog_tristate_t disable_skew_correction;
    const char *product_tour_id;
    /* a feature flag snapshot (posthog_evaluate_flags): adds $feature/<key>
     * for each of its flags and $active_feature_flags (the enabled keys,
     * sorted), as posthog-python's capture(flags=...); the properties given
     * win over these. Reads no flag ($feature_flag_called is not sent). */
    const struct posthog_flags *flags;
} posthog_capture_options_t;

/*
 * The full capture with per-event options (`opts` may be NULL). Like every
 * capture function, a NULL/empty distinct_id uses default_distinct_id when
 * set, else a new UUID as distinct_id and the event is personless
 * ($process_person_profile false unless opts or the properties say
 * otherwise), as the official SDKs do.
 */
POSTHOG_API posthog_status_t posthog_capture_opts(posthog_client_t *c, const char *distinct_id,
                                                  const char *event,
                                                  const char *properties_json,
                                                  const posthog_capture_options_t *opts,
                                                  char *uuid_out);
/*
 * Captures an LLM-analytics event ($ai_generation, $ai_span, ...) through
 * the dedicated AI endpoint (/i/v1/ai/events in capture v1, /i/v0/ai/batch/
 * in v0), in batches of their own, never mixed with analytics events.
 * Arguments as posthog_capture_opts. posthog_capture never reroutes an
 * event by its name.
 */
POSTHOG_API posthog_status_t posthog_capture_ai(posthog_client_t *c, const char *distinct_id,
                                                const char *event, const char *properties_json,
                                                const posthog_capture_options_t *opts,
                                                char *uuid_out);
/* Durable capture (see posthog_capture_durable) with per-event options. */
POSTHOG_API posthog_status_t posthog_capture_durable_opts(posthog_client_t *c,
                                                          const char *distinct_id,
                                                          const char *event,
                                                          const char *properties_json,
                                                          const posthog_capture_options_t *opts,
                                                          char *uuid_out);

/* Durable capture with the arguments of posthog_capture_ex. */
POSTHOG_API posthog_status_t posthog_capture_durable_ex(
    posthog_client_t *c, const char *distinct_id, const char *event, const char *properties_json,
    int64_t timestamp_ms, const char *uuid, const char *groups_json, const char *set_json,
    const char *set_once_json, char *uuid_out);

/* $identify with $set / $set_once (JSON objects or NULL), like the SDKs. */
POSTHOG_API posthog_status_t posthog_identify(posthog_client_t *c, const char *distinct_id,
                                              const char *set_json, const char *set_once_json);
/* $set event: person properties update. */
POSTHOG_API posthog_status_t posthog_set(posthog_client_t *c, const char *distinct_id,
                                         const char *set_json);
/* $set_once event (top-level $set_once), like posthog-python's set_once. */
POSTHOG_API posthog_status_t posthog_set_once(posthog_client_t *c, const char *distinct_id,
                                              const char *set_once_json);
/* $create_alias: links `alias` to `distinct_id`. */
POSTHOG_API posthog_status_t posthog_alias(posthog_client_t *c, const char *distinct_id,
                                           const char *alias);
/* $groupidentify: sets properties (JSON object or NULL) on a group. */
POSTHOG_API posthog_status_t posthog_group_identify(posthog_client_t *c, const char *group_type,
                                                    const char *group_key,
                                                    const char *properties_json,
                                                    const char *distinct_id);

/*
 * Waits until every event captured before the call has been delivered or
 * dropped, and nothing of this client waits in the spool, or until
 * `timeout_ms` passes (POSTHOG_E_TIMEOUT; < 0 waits for ever). So while the
 * endpoint is down, a flush with a spool returns POSTHOG_E_TIMEOUT: the
 * events are safe on disk, not delivered. Sends partial batches at once.
 * POSTHOG_OK also when events were dropped meanwhile (rejected by the
 * server, retries exhausted): posthog_flush_ex tells those apart.
 * Thread-safe; blocks the caller (never longer than `timeout_ms`, whatever
 * the network does). POSTHOG_E_IN_CALLBACK inside a callback of `c`.
 */
POSTHOG_API posthog_status_t posthog_flush(posthog_client_t *c, int timeout_ms);

/* What happened while posthog_flush_ex waited (counter differences, so
 * events of other threads that flushed or captured meanwhile count too). */
typedef struct posthog_flush_result {
    uint64_t delivered;     /* events the server acknowledged */
    uint64_t dropped;       /* events dropped on the delivery side: rejected,
                               retries exhausted, too large (413), server
                               dropped, spool full or expired... (drops at
                               capture, which the capture call returned, are
                               not counted) */
    uint64_t spooled;       /* events written to the disk spool */
    uint64_t spool_pending; /* events of this process still on disk at return */
} posthog_flush_result_t;

/*
 * posthog_flush, telling whether everything it waited for was delivered:
 * POSTHOG_OK when nothing was dropped while it waited, POSTHOG_E_UNDELIVERED
 * when the flush finished but events were dropped instead of delivered (see
 * the drop callback for which and why), POSTHOG_E_TIMEOUT as posthog_flush
 * (events still queued or spooled). `out` (borrowed, may be NULL) receives
 * the counts, also on timeout.
 */
POSTHOG_API posthog_status_t posthog_flush_ex(posthog_client_t *c, int timeout_ms,
                                              posthog_flush_result_t *out);

/*
 * posthog_flush without waiting for the spool to drain: POSTHOG_OK as soon
 * as every event captured before the call is delivered, dropped, or
 * written to the spool. While the endpoint is down that is once the events
 * are on disk (posthog_flush waits for as long as it stays down). The
 * bindings' sync_mode uses it. POSTHOG_E_TIMEOUT past `timeout_ms` (< 0:
 * no limit), POSTHOG_E_IN_CALLBACK inside a callback of `c`.
 */
POSTHOG_API posthog_status_t posthog_flush_resolved(posthog_client_t *c, int timeout_ms);

/*
 * Flushes within `timeout_ms` (< 0: shutdown_timeout_ms), then aborts a
 * request still in flight and stops the flusher. What is left at the
 * deadline is written to the spool when storage_path is set (delivered by
 * the next client on that directory, which may start before this one is
 * freed: shutdown gives up the client's spool files), else counted as
 * dropped (shutdown).
 * Later captures return POSTHOG_E_SHUTDOWN. Idempotent: a second call
 * returns POSTHOG_OK at once. Returns POSTHOG_OK when every event was
 * delivered or spooled, POSTHOG_E_TIMEOUT when some were dropped.
 * The deadline holds whatever the network does (a server that never
 * accepts or never answers, a name resolution that hangs: libcurl's
 * resolver thread is left to finish on its own, which needs libcurl >=
 * 7.87), up to the time a user callback or a spool write takes.
 * POSTHOG_E_IN_CALLBACK inside a callback of `c` (nothing is done).
 * A fork() while another thread is inside posthog_shutdown leaves the
 * child's copy shut down: its shutdown and free return at once.
 */
POSTHOG_API posthog_status_t posthog_shutdown(posthog_client_t *c, int timeout_ms);

/*
 * What the application knows of the network (the OS's reachability or
 * connectivity callbacks, a modem's link state, airplane mode).
 */
typedef enum posthog_network_state {
    POSTHOG_NETWORK_UP = 0,  /* reachable (the default) */
    POSTHOG_NETWORK_DOWN = 1 /* no network: do not try */
} posthog_network_state_t;

/*
 * Tells the client the network is down or back, so that it neither burns
 * retries while it cannot succeed nor waits out a backoff once it can.
 *
 * POSTHOG_NETWORK_DOWN: the flusher starts no request (no retry attempt
 * is used up, no failure counted, no probe sent). Captures go on as
 * usual: events stay queued and batched; with a spool (storage_path)
 * sealed batches go to disk as during an outage, without one they wait in
 * memory up to the queue's budget, after which captures are dropped and
 * counted (queue_full), as during an outage. A request already in flight
 * is left to finish: delivered if it can be, and if it fails its attempt
 * is not counted. A shutdown while down with a spool writes what is left
 * to disk at once instead of waiting for its timeout; without a spool it
 * waits for its timeout, in case the network comes back.
 *
 * POSTHOG_NETWORK_UP: the flusher tries at once: a batch waiting for its
 * retry (backoff or Retry-After) and the probe of an unreachable endpoint
 * go now, and the spool is replayed. Also when the client thought the
 * network was up (a network change: the backoff is skipped all the same).
 *
 * Stats: posthog_get_stat(c, "network_down") is 1 while down, and
 * "network_down_periods" counts the transitions from up to down.
 * Thread-safe and never blocks, on any thread, also inside the client's
 * callbacks. POSTHOG_E_INVALID_ARG for a NULL client or a
 * state other than those two (logged, nothing changes).
 */
POSTHOG_API posthog_status_t posthog_set_network_state(posthog_client_t *c,
                                                       posthog_network_state_t state);

/*
 * Counts one event that the caller refused before handing it to the
 * library (a binding that cannot serialise a value, e.g. a self-referencing
 * dict), as a drop at capture under `reason` (POSTHOG_DROP_INVALID,
 * _TOO_LARGE or _BEFORE_SEND), and reports it through the drop callback on
 * the calling thread with `message` (borrowed; NULL: the status text).
 * `event` and `distinct_id` are borrowed and may be NULL. Returns the
 * status a capture would have returned for that reason, or
 * POSTHOG_E_INVALID_ARG for another reason (nothing counted).
 */
POSTHOG_API posthog_status_t posthog_drop_event(posthog_client_t *c, posthog_drop_reason_t reason,
                                                const char *event, const char *distinct_id,
                                                const char *message);

/* Shuts down (shutdown_timeout_ms) if not yet, and frees. NULL is a no-op.
 * Inside a callback of `c` it is refused (logged as an error, the client
 * stays alive): free it from outside its callbacks. */
POSTHOG_API void posthog_client_free(posthog_client_t *c);

/* ------------------------------------------------------------------ */
/* Stats                                                               */
/* ------------------------------------------------------------------ */

/*
 * Counters since the client was created (in a forked child: since the
 * fork). Every call to a capture function either counts one `captured`
 * (it returned POSTHOG_OK) or one drop at capture; every captured event
 * ends, once the pipeline is idle, in `sent`, in exactly one delivery
 * drop reason, or on disk (`spool_pending`). So when idle:
 * captured + capture-time drops == sent + dropped_total + spool_pending,
 * counting only this process's own events (adopted spool files of other
 * processes add to `sent`/`replayed` and to drops without `captured`).
 */
typedef struct posthog_stats {
    uint64_t captured;        /* events accepted into the queue */
    uint64_t sent;            /* events acknowledged by the server (2xx) */
    uint64_t requests;        /* HTTP requests made (attempts) */
    uint64_t retries;         /* attempts that were retries */
    uint64_t bytes_raw;       /* request bodies before gzip */
    uint64_t bytes_sent;      /* request bodies on the wire */
    uint64_t queue_depth;     /* events in the in-memory queue now */
    uint64_t queue_bytes;     /* bytes of the in-memory queue in use now */
    uint64_t spooled;         /* events written to the disk spool */
    uint64_t replayed;        /* spooled events delivered later (also in `sent`) */
    uint64_t spool_bytes;     /* bytes of spool files on disk now */
    uint64_t spool_pending;   /* events this process has on disk, undelivered */
    uint64_t dropped[POSTHOG_DROP_REASON_SLOTS]; /* by posthog_drop_reason_t */
    uint64_t dropped_total;   /* sum of dropped[] */
} posthog_stats_t;

/* Fills *out (borrowed). Thread-safe, lock-free. */
POSTHOG_API posthog_status_t posthog_get_stats(const posthog_client_t *c, posthog_stats_t *out);

/* One counter by name: each field of posthog_stats_t ("captured", "sent",
 * "spool_bytes", ...), "dropped_<reason>" for each drop reason, the
 * spool's "evicted" (storage_full + expired) and "corrupt_skipped",
 * "spool_scan_errors" (listings of the spool directory that failed, each
 * also logged as an error: spooled files may have been missed),
 * "network_down" (1 while posthog_set_network_state says so) and
 * "network_down_periods" (its up -> down transitions); and two sizes:
 * "queue_capacity_bytes" (the queue's ring) and "memory_budget" (the
 * option; 0 when unset);
 * UINT64_MAX for an unknown name. Convenient for bindings. */
POSTHOG_API uint64_t posthog_get_stat(const posthog_client_t *c, const char *name);

/* ---------------------------------------------------------------- feature flags
 *
 * Remote evaluation: POST {host}/flags/?v=2 with the project key in the body
 * (no Authorization header). Every call below runs on the calling thread and
 * may block on the network: at most (1 + feature_flags_request_max_retries)
 * requests of feature_flags_request_timeout_ms each, plus the retry pauses
 * (300 ms, doubling). No flag request is ever made by client creation or by
 * capture. A call never fails loudly: a flag that could not be evaluated is
 * "unknown", the reason is logged (WARN) and carried by the snapshot's
 * error string and the $feature_flag_called event ($feature_flag_error:
 * timeout, connection_error, api_error_<status>, quota_limited,
 * errors_while_computing_flags, flag_missing, evaluation_failed,
 * unknown_error, joined with ',').
 *
 * Reading a flag (posthog_flags_get, posthog_flags_is_enabled,
 * posthog_get_feature_flag, posthog_is_feature_enabled) captures
 * $feature_flag_called once per (distinct_id, flag, value, groups) unless
 * send_feature_flag_events is off; payload reads and key enumeration are
 * silent. Without a distinct_id, or with a disabled client, the result is
 * empty: no request and no event.
 */
typedef struct posthog_flags posthog_flags_t; /* (declared above as struct posthog_flags) */

/* Per-call options; every member may be 0/NULL. */
typedef struct posthog_flags_options {
    const char *person_properties_json;    /* {"plan": "pro"} */
    const char *groups_json;               /* {"company": "acme"}: also the event's $groups */
    const char *group_properties_json;     /* {"company": {"size": 50}} */
    const char *const *flag_keys;          /* NULL-terminated keys to evaluate; NULL: all */
    const char *device_id;
    posthog_tristate_t disable_geoip;      /* UNSET: the client's disable_geoip */
    posthog_tristate_t send_feature_flag_events; /* UNSET: the client's option */
    int only_evaluate_locally;             /* 1: never a network request */
    int force_remote;                      /* 1: always ask the server */
} posthog_flags_options_t;

/* One flag as read from a snapshot; the strings live as long as it. */
typedef struct posthog_flag {
    const char *key;
    int enabled;              /* 1 when on (a variant counts as on) */
    const char *variant;      /* multivariate flags: the variant key; else NULL */
    const char *payload_json; /* the flag's payload as JSON text, NULL when none */
    const char *reason;       /* e.g. "Matched condition set 1"; NULL when unknown */
    int locally_evaluated;
    int64_t id, version;      /* -1 when unknown */
} posthog_flag_t;

/*
 * Evaluates the flags (all, or opts->flag_keys) for one distinct_id into an
 * immutable snapshot (*out; free with posthog_flags_free), with at most one
 * /flags request. Returns POSTHOG_OK even when the server could not be
 * reached (the snapshot is then empty and posthog_flags_error says why);
 * POSTHOG_E_INVALID_ARG / _INVALID_JSON for bad arguments (logged, naming
 * the argument), POSTHOG_E_NOMEM. This is also "get all flags".
 */
POSTHOG_API posthog_status_t posthog_evaluate_flags(posthog_client_t *c, const char *distinct_id,
                                                    const posthog_flags_options_t *opts,
                                                    posthog_flags_t **out);
/* 1 and *out filled when the snapshot has the flag, else 0 (*out: key only,
 * enabled 0). Captures $feature_flag_called (see above), also for a flag
 * the snapshot does not have (response null, $feature_flag_error). */
POSTHOG_API int posthog_flags_get(posthog_flags_t *f, const char *key, posthog_flag_t *out);
/* As posthog_flags_get, without capturing $feature_flag_called: for code
 * that lists a snapshot rather than decides on a flag (get-all-flags
 * helpers, $feature/<key> properties on a captured event, a binding's
 * filtered views of a snapshot). Decide with posthog_flags_get or
 * posthog_flags_is_enabled, so the exposure is recorded. */
POSTHOG_API int posthog_flags_peek(const posthog_flags_t *f, const char *key, posthog_flag_t *out);
/* enabled (1/0), or default_value when the snapshot does not have the flag. */
POSTHOG_API int posthog_flags_is_enabled(posthog_flags_t *f, const char *key, int default_value);
/* The flag's payload (JSON text owned by the snapshot) or NULL; no event. */
POSTHOG_API const char *posthog_flags_payload(const posthog_flags_t *f, const char *key);
/* Flags in the snapshot, and the i-th key (sorted); no event. */
POSTHOG_API size_t posthog_flags_count(const posthog_flags_t *f);
POSTHOG_API const char *posthog_flags_key(const posthog_flags_t *f, size_t i);
/* What went wrong for the whole snapshot, as $feature_flag_error spells it,
 * into buf ("" when nothing); returns buf. */
POSTHOG_API const char *posthog_flags_error(const posthog_flags_t *f, char *buf, size_t cap);
POSTHOG_API void posthog_flags_free(posthog_flags_t *f);

typedef enum posthog_flag_state {
    POSTHOG_FLAG_UNKNOWN = -1, /* not evaluated: unknown flag, or the server could not say */
    POSTHOG_FLAG_DISABLED = 0,
    POSTHOG_FLAG_ENABLED = 1
} posthog_flag_state_t;

/*
 * One flag for one distinct_id (a /flags request for that key). A
 * multivariate flag's variant is written to `variant` (NUL-terminated,
 * truncated to variant_size; "" for a boolean flag; may be NULL).
 */
POSTHOG_API posthog_flag_state_t posthog_get_feature_flag(posthog_client_t *c, const char *key,
                                                          const char *distinct_id,
                                                          const posthog_flags_options_t *opts,
                                                          char *variant, size_t variant_size);
/*
 * Local evaluation (with the secret_key option). Definitions load in a
 * thread of the client's own, at creation and every poll_interval_ms, and
 * with storage_path are kept on disk so that a restarted process evaluates
 * at once. Evaluation takes no lock. A flag that cannot be decided locally
 * (a static cohort, an unknown operator, a property not passed, ...) is
 * asked of the server in the same call unless only_evaluate_locally; each
 * such fallback is counted: posthog_get_stat(c, "flags_fallback_<cause>")
 * ("flags_fallback_total", "flags_local", "flags_remote", "flags_requests",
 * "flags_definitions_loads", "_not_modified", "_failures", "_fetches").
 *
 * posthog_wait_for_flag_definitions waits (up to timeout_ms, < 0 for ever)
 * until definitions are loaded: POSTHOG_OK, or POSTHOG_E_TIMEOUT when not
 * (yet) loaded. posthog_reload_feature_flags polls now and waits for that
 * poll (up to timeout_ms). Both return POSTHOG_E_INVALID_ARG without a
 * secret_key. Only these two block, and only the caller that calls them.
 */
POSTHOG_API posthog_status_t posthog_wait_for_flag_definitions(posthog_client_t *c, int timeout_ms);
POSTHOG_API posthog_status_t posthog_reload_feature_flags(posthog_client_t *c, int timeout_ms);

/* 1 enabled, 0 disabled, -1 unknown. */
POSTHOG_API int posthog_is_feature_enabled(posthog_client_t *c, const char *key,
                                           const char *distinct_id,
                                           const posthog_flags_options_t *opts);
/* The flag's payload as JSON text (free with posthog_free), NULL when none.
 * Captures no event unless opts->send_feature_flag_events is POSTHOG_TRUE. */
POSTHOG_API char *posthog_get_feature_flag_payload(posthog_client_t *c, const char *key,
                                                   const char *distinct_id,
                                                   const posthog_flags_options_t *opts);

/* ---------------------------------------------------------------- error tracking
 *
 * $exception events for PostHog's error tracking. posthog_capture_exception
 * records the calling thread's native stack: frames (outermost call first,
 * the caller of posthog_capture_exception last) with platform "native",
 * instruction_addr, and function/module/image_addr where the loader knows
 * them; and $debug_images: each loaded ELF image a frame points into, with
 * its GNU build id as debug_id/code_id, code_file, image_addr and
 * image_size. PostHog symbolicates the addresses from the debug files
 * uploaded for those build ids (README, "Error tracking"). The event is
 * captured like any other (validation, before_send, queue, spool), on the
 * caller's thread, without network I/O.
 */
typedef struct posthog_exception_options {
    /* the caller's own $exception_list (a JSON array, outermost exception
     * first, each {"type", "value", "mechanism", "stacktrace": {"type":
     * "raw", "frames": [...]}}), used as given instead of the native stack:
     * what the bindings send; type and message are then ignored */
    const char *exception_list_json;
    const char *level;          /* fatal|error|warning|info|debug|log [error] */
    const char *fingerprint;    /* $exception_fingerprint, NULL: PostHog groups by stack */
    posthog_tristate_t handled; /* mechanism.handled [TRUE] */
    const char *mechanism_type; /* mechanism.type ["generic"] */
    int skip_frames;            /* more innermost frames to leave out (helpers) */
    int64_t timestamp_ms;       /* 0: now */
    const char *uuid;           /* NULL: a new UUIDv7 */
    const char *groups_json;
} posthog_exception_options_t;

/* type: the error's class or kind ("ValueError", "SIGSEGV", "io_error");
 * message: its text (may be NULL); properties_json: more properties (may be
 * NULL); a property this function sets itself ($exception_list,
 * $exception_level, $exception_fingerprint, $debug_images) that
 * properties_json has too is the caller's, sent once. Status as posthog_capture_opts; a missing type or a bad option is
 * POSTHOG_E_INVALID_ARG (logged, counted as invalid). */
POSTHOG_API posthog_status_t posthog_capture_exception(posthog_client_t *c, const char *distinct_id,
                                                       const char *type, const char *message,
                                                       const char *properties_json);
/*
 * Crash reports (crash_handler=1 with storage_path): a fatal signal records,
 * async-signal-safely, the signal, the fault address, the crashing thread's
 * stack and the loaded modules; the next client created on the same
 * storage_path sends it once as a $exception ($exception_level fatal,
 * mechanism {type: "signalhandler", handled: false}), then delivers the
 * saved events. The event's distinct_id and extra properties are the ones
 * set here beforehand (the current user, tags); copied, up to 4 KiB
 * together; may be called again at any time from any thread. Without a
 * distinct_id the crash is reported personless.
 */
POSTHOG_API posthog_status_t posthog_set_crash_context(posthog_client_t *c, const char *distinct_id,
                                                       const char *properties_json);
POSTHOG_API posthog_status_t posthog_capture_exception_ex(posthog_client_t *c,
                                                          const char *distinct_id,
                                                          const char *type, const char *message,
                                                          const char *properties_json,
                                                          const posthog_exception_options_t *opts,
                                                          char *uuid_out);

/* ---------------------------------------------------------------- transport
 *
 * A transport hook replaces libcurl for every request the client makes:
 * capture batches (v1 and v0), remote feature flags (POST /flags) and flag
 * definitions (GET /flags/definitions with If-None-Match/ETag). The library
 * builds the request (URL, headers, compressed body) and interprets the
 * answer (status, Retry-After, ETag, body) exactly as with libcurl; the hook
 * only carries bytes, over HTTP or anything else (a broker, a device's own
 * HTTP stack). A library built with -DPOSTHOG_WITH_CURL=OFF has no other
 * transport: posthog_client_new fails without a hook.
 *
 * One request for the hook. Everything it points to is owned by the library
 * and stays valid until the call is completed (posthog_transport_complete or
 * posthog_transport_fail), also when the library has meanwhile given up on
 * the request: a hook that completes later from another thread may keep
 * using it until then.
 */
typedef struct posthog_transport_request {
    const char *method;             /* "POST" or "GET" */
    const char *url;                /* full URL: host option + path (+ query) */
    const char *const *headers;     /* "Name: value" lines (Content-Type,
                                       Content-Encoding, If-None-Match, ...) */
    size_t header_count;
    const void *body;               /* POST body (may be compressed: see
                                       Content-Encoding); NULL for GET */
    size_t body_len;
    uint32_t timeout_ms;            /* the library's deadline for the answer */
    uint32_t connect_timeout_ms;    /* the connect_timeout_ms option */
    const char *kind;               /* "capture", "flags" or "flag_definitions" */
} posthog_transport_request_t;

/* The handle of one request in flight, owned by the library. */
typedef struct posthog_transport_call posthog_transport_call_t;

/*
 * The hook: sends `req` and completes `call` exactly once, either before it
 * returns (synchronously) or later from any thread. Return 0 when the
 * request was taken (completed or to be completed); non-zero when it could
 * not be started: the library then treats it as a failed attempt (retried
 * with backoff like a network error) and the call needs no completion.
 *
 * Threads: called on the flusher thread for capture batches, on the
 * calling thread for remote flags (posthog_evaluate_flags,
 * posthog_get_feature_flag, ...), on the definitions loader's thread for
 * flag definitions; calls may overlap (one capture request at a time, flags
 * requests concurrently). No internal lock is held. The hook may block, but
 * a hook that sends synchronously must itself return within
 * req->timeout_ms: the library cannot interrupt a function that is running,
 * and the flusher (and so flush and shutdown) waits for it to return. As in
 * the other callbacks, the client's posthog_flush*, posthog_shutdown return
 * POSTHOG_E_IN_CALLBACK inside the hook and posthog_client_free only logs
 * an error.
 *
 * A call not completed within req->timeout_ms (plus a second) is given up
 * by the library: counted as a timed-out attempt and retried, spooled or
 * dropped (counted) exactly as a libcurl timeout; at the shutdown deadline
 * the batch in flight goes to the spool or is counted dropped. Nothing
 * waits for a hook that never completes beyond those bounds. Completing a
 * call that was given up, even after the client was freed, is safe: the
 * answer is ignored and the call's memory released then.
 */
typedef int (*posthog_transport_fn)(const posthog_transport_request_t *req,
                                    posthog_transport_call_t *call, void *user_data);

/* Sets the transport hook (fn NULL: libcurl again, when built with it). */
POSTHOG_API void posthog_options_set_transport(posthog_options_t *o, posthog_transport_fn fn,
                                               void *user_data);

/*
 * Completes a call with the server's answer: its HTTP status (100..599),
 * the values of its Retry-After and ETag headers (NULL when absent) and its
 * body (NULL with body_len 0 when empty); all borrowed for the call (the
 * library copies what it keeps). May be called from any thread. The call is
 * finished and must not be used again. POSTHOG_E_INVALID_ARG for a NULL call
 * or a status out of range (the call is then failed with that message).
 */
POSTHOG_API posthog_status_t posthog_transport_complete(posthog_transport_call_t *call,
                                                        int32_t http_status,
                                                        const char *retry_after,
                                                        const char *etag, const void *body,
                                                        size_t body_len);
/*
 * Completes a call with a transport failure (no answer from the server: a
 * connection refused, a broker down, ...); `message` (copied, may be NULL)
 * says why and appears in the library's log and drop messages. Retried like
 * a network error. The call must not be used again.
 */
POSTHOG_API posthog_status_t posthog_transport_fail(posthog_transport_call_t *call,
                                                    const char *message);
/* 1 when the library has given up on the call (its deadline passed, the
 * client shut down): the hook may stop working on it, but must still
 * complete or fail it once to release it. 0 otherwise. */
POSTHOG_API int posthog_transport_call_abandoned(const posthog_transport_call_t *call);
/* 1 when this library was built with libcurl (the default transport). */
POSTHOG_API int posthog_has_curl(void);

#ifdef __cplusplus
}
#endif
#endif /* POSTHOG_POSTHOG_H */
