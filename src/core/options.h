/*
 * options: the client's configuration, set by string key so bindings need
 * no code per option. Values are validated when set.
 */
#ifndef POSTHOG_OPTIONS_H
#define POSTHOG_OPTIONS_H

#include "common.h"

struct posthog_options {
    char *api_key;
    char *host; /* normalised base URL without trailing '/' */
    uint32_t flush_at;
    uint32_t flush_interval_ms;
    uint32_t max_batch_size;
    uint32_t max_queue_size;
    uint64_t max_queue_bytes;
    uint64_t max_batch_bytes;
    uint32_t max_event_bytes;
    uint32_t max_ai_event_bytes; /* posthog_capture_ai; 0: the default (resolve) */
    uint32_t gzip_level;   /* zlib level of gzip and deflate */
    bool capture_v0;       /* capture_mode=v0 */
    bool capture_mode_set;
    int compression;       /* ph_codec_kind_t (delivery/codec.h) */
    bool compression_set;
    uint32_t zstd_level;
    uint32_t brotli_level;
    uint32_t request_timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t max_retries;
    uint32_t retry_backoff_ms;
    uint32_t max_retry_wait_ms;
    uint32_t shutdown_timeout_ms;
    bool disabled;
    bool historical_migration;
    bool disable_geoip;
    char *default_distinct_id;
    char *sdk_name, *sdk_version; /* who the events come from (v1: PostHog-Sdk-Info) */
    char *super_properties; /* validated JSON object text, or NULL */
    char *ca_bundle;
    bool debug;
    bool tls_verify;
    char *storage_path;
    uint64_t max_storage_bytes;
    uint32_t max_storage_age_s;
    uint32_t spool_fsync_interval_ms; /* lazy (outage) appends: fsync at most this often */
    uint32_t spool_max_files;         /* segment files per client */
    bool durability_always;
    bool crash_handler;
    uint32_t feature_flags_request_timeout_ms;
    uint32_t feature_flags_request_max_retries;
    bool send_feature_flag_events;
    uint32_t feature_flag_called_cache_size;
    char *secret_key;            /* local evaluation (phs_ or phx_), NULL: none */
    uint32_t poll_interval_ms;   /* flag definitions */
    bool api_key_set, host_set;
    int log_level;      /* posthog_log_level_t, or 4: none */
    bool log_level_set; /* unset: warn (info with a callback; debug with debug=1) */
    uint64_t memory_budget;      /* 0: none (max_queue_bytes splits as before) */
    uint32_t thread_stack_size;  /* the flusher's and the flags loader's stacks */
    uint32_t num_set;            /* bit i: num_opts[i] was set (options.c) */
    /* resolved by posthog__options_resolve from memory_budget or max_queue_bytes */
    uint64_t ring_bytes;    /* the queue's ring */
    uint64_t pending_bytes; /* sealed batches waiting to be sent */
    uint64_t codec_bytes;   /* each compressor's state (0: unbounded) */
    bool prefault;          /* the flusher faults the ring's pages in ahead of the producers */

    posthog_log_fn log_fn;
    void *log_ud;
    posthog_drop_fn drop_fn;
    void *drop_ud;
    posthog_before_send_fn before_send_fn;
    void *before_send_ud;
    posthog_transport_fn transport_fn; /* NULL: libcurl (delivery/transport.h) */
    void *transport_ud;
};

/* memory_budget's least value, and the threads' default stack */
#define PH_MEMORY_BUDGET_MIN (128u * 1024)
#define PH_THREAD_STACK_DEFAULT (256u * 1024)

/* log_level "none": above every level */
#define PH_LOG_NONE 4

/* Fills unset api_key/host/capture_mode/log_level from the environment
 * (POSTHOG_API_KEY, POSTHOG_HOST, POSTHOG_CAPTURE_MODE, POSTHOG_LOG_LEVEL).
 * A malformed key or host is an error (0 ok; -1 with a message in `err`):
 * the client must not send with another key or to another host. A malformed
 * capture mode or log level is ignored with a message in `warn` ("" if none). */
int posthog__options_apply_env(posthog_options_t *o, char *err, size_t errlen, char *warn,
                               size_t warnlen);
/* Picks the defaults that depend on other options (compression per
 * capture_mode) and checks combinations and files (ca_bundle). 0 ok; -1
 * with a message. */
int posthog__options_resolve(posthog_options_t *o, char *err, size_t errlen);
/* 0 when `value` may be an API key; else -1 with a message naming `key`
 * (an option or environment variable name) and the value masked. */
int posthog__check_api_key(const char *key, const char *value, char *err, size_t errlen);
/* "debug", "info", "warn"/"warning", "error", "none" (any case) -> level; -1. */
int posthog__parse_log_level(const char *v);
/* A secret as it may appear in a message: "phc_****(43 characters, masked)". */
void posthog__mask_secret(char *out, size_t n, const char *v);
/* Maps PostHog app hosts onto their ingestion hosts; returns a malloc()ed URL. */
char *posthog__normalize_host(const char *host);

#endif
