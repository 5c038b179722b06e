/*
 * options: defaults, string parsing and validation of every option.
 * An option set is only touched by the thread configuring it; the client
 * takes ownership and treats it as read-only afterwards.
 */
#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "json.h"

posthog_options_t *posthog_options_new(void) {
    posthog_options_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->host = strdup("https://us.i.posthog.com");
    if (!o->host) {
        free(o);
        return NULL;
    }
    o->flush_at = 100;
    o->flush_interval_ms = 5000;
    o->max_batch_size = 1000;
    o->max_queue_size = 262144;
    o->max_queue_bytes = (uint64_t)48 << 20;
    o->max_batch_bytes = (uint64_t)5 << 20;
    o->max_event_bytes = 900 * 1024;
    o->max_ai_event_bytes = 0; /* unset: 8 MiB, at most a quarter of max_queue_bytes */
    o->tls_verify = true;
    o->max_storage_bytes = (uint64_t)64 << 20;
    o->max_storage_age_s = 7 * 86400;
    o->spool_fsync_interval_ms = 60000;
    o->spool_max_files = 32;
    o->gzip_level = 1;
    o->zstd_level = 1;
    o->brotli_level = 4;
    o->compression = posthog__codec_available(PH_CODEC_ZSTD) ? PH_CODEC_ZSTD : PH_CODEC_GZIP;
    o->request_timeout_ms = 10000;
    o->connect_timeout_ms = 5000;
    o->max_retries = 3;
    o->retry_backoff_ms = 100;
    o->max_retry_wait_ms = 30000;
    o->shutdown_timeout_ms = 5000;
    o->feature_flags_request_timeout_ms = 3000;
    o->feature_flags_request_max_retries = 1;
    o->send_feature_flag_events = true;
    o->feature_flag_called_cache_size = 50000;
    o->poll_interval_ms = 30000;
    o->thread_stack_size = PH_THREAD_STACK_DEFAULT;
    return o;
}

void posthog_options_free(posthog_options_t *o) {
    if (!o) return;
    free(o->api_key);
    free(o->host);
    free(o->default_distinct_id);
    free(o->sdk_name);
    free(o->sdk_version);
    free(o->super_properties);
    free(o->ca_bundle);
    free(o->secret_key);
    free(o->storage_path);
    free(o);
}

static int parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (!v || *v < '0' || *v > '9') return -1; /* digits only: no sign, no blanks */
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out) {
    if (!v) return -1;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
        !strcasecmp(v, "off")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int set_str(char **dst, const char *v, bool allow_empty) {
    if (!v || (!allow_empty && !*v)) return -1;
    char *c = strdup(v);
    if (!c) return -2;
    free(*dst);
    *dst = c;
    return 0;
}

char *posthog__normalize_host(const char *host) {
    size_t n = strlen(host);
    while (n && host[n - 1] == '/') n--;
    static const struct {
        const char *from, *to;
    } map[] = {
        {"https://app.posthog.com", "https://us.i.posthog.com"},
        {"https://us.posthog.com", "https://us.i.posthog.com"},
        {"https://eu.posthog.com", "https://eu.i.posthog.com"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].from) == n && !strncasecmp(host, map[i].from, n)) return strdup(map[i].to);
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, host, n);
    r[n] = '\0';
    return r;
}

/* A host name (or [IPv6] literal) and an optional :port, up to the first '/'. */
static bool valid_authority(const char *a, size_t n, bool bare) {
    if (!n) return false;
    size_t hn = n;
    const char *colon = NULL;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close || close == a + 1) return false;
        hn = (size_t)(close - a) + 1;
        if (hn < n && a[hn] != ':') return false;
        if (hn < n) colon = a + hn;
    } else {
        colon = memchr(a, ':', n);
        if (colon) hn = (size_t)(colon - a);
        if (!hn) return false;
        bool dot = false;
        for (size_t i = 0; i < hn; i++) {
            char ch = a[i];
            if (ch == '.') dot = true;
            else if (ch != '-' && ch != '_' && !(ch >= '0' && ch <= '9') &&
                     !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z'))
                return false;
        }
        /* without a scheme, "https//x" or "javascript:x" must not pass for a
         * host: a bare name has a dot (or is localhost) */
        if (bare && !dot && !(hn == 9 && !strncasecmp(a, "localhost", 9))) return false;
    }
    if (colon) {
        size_t pn = n - (size_t)(colon + 1 - a);
        if (!pn || pn > 5) return false;
        for (size_t i = 0; i < pn; i++)
            if (colon[1 + i] < '0' || colon[1 + i] > '9') return false;
    }
    return true;
}

/*
 * A host option or POSTHOG_HOST: "https://host[:port][/path]", "http://...",
 * or a bare "host[:port][/path]" taken as https://. Returns a malloc()ed
 * normalised URL, or NULL with *why set (NULL and *why NULL: out of memory).
 */
static char *parse_host(const char *v, const char **why) {
    static const char expect[] =
        "expected a URL such as https://eu.i.posthog.com or https://ph.example.com:8443/base "
        "(scheme https:// or http://; a bare host name means https://)";
    *why = expect;
    if (!v || !*v) return NULL;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '<' || *p == '>' || *p == '\\' ||
            (unsigned char)*p == 0x7f)
            return NULL;
    const char *rest;
    bool bare = false;
    if (!strncasecmp(v, "http://", 7)) rest = v + 7;
    else if (!strncasecmp(v, "https://", 8)) rest = v + 8;
    else if (strstr(v, "://")) {
        *why = "unsupported scheme: expected https:// or http:// (or a bare host name, "
               "taken as https://)";
        return NULL;
    } else {
        rest = v;
        bare = true;
    }
    const char *slash = strchr(rest, '/');
    size_t an = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!bare && !an) return NULL;
    if (bare && !valid_authority(rest, an, true)) return NULL;
    *why = NULL;
    if (!bare) return posthog__normalize_host(v);
    size_t n = strlen(v);
    char *url = malloc(n + 9);
    if (!url) return NULL;
    memcpy(url, "https://", 8);
    memcpy(url + 8, v, n + 1);
    char *r = posthog__normalize_host(url);
    free(url);
    return r;
}

/* ---------------------------------------------------------------- messages */

/* The value as it may be shown in a message: printable, bounded. */
static void show_value(char *out, size_t n, const char *v) {
    size_t o = 0, len = strlen(v);
    for (size_t i = 0; i < len && o + 8 < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", ch);
        else out[o++] = (char)ch;
        if (i + 1 < len && o + 8 >= n) {
            memcpy(out + o, "...", 4);
            return;
        }
    }
    out[o] = '\0';
}

void posthog__mask_secret(char *out, size_t n, const char *v) {
    size_t len = strlen(v);
    char head[8] = "";
    /* a long key keeps its 4-character prefix (phc_ project key, phx_
     * personal key): enough to tell which kind was given, nothing more */
    if (len >= 12) {
        memcpy(head, v, 4);
        for (int i = 0; i < 4; i++)
            if ((unsigned char)head[i] < 0x20 || (unsigned char)head[i] >= 0x7f) head[i] = '?';
    }
    snprintf(out, n, "%s****(%zu characters, masked)", head, len);
}

static bool is_secret(const char *key) {
    return !strcmp(key, "api_key") || !strcmp(key, "POSTHOG_API_KEY") ||
           !strcmp(key, "secret_key") || !strcmp(key, "personal_api_key");
}

/* Writes `option key="value" is invalid: <what>` (the value masked for
 * secrets); a POSTHOG_* key names an environment variable. */
static void bad_value(char *err, size_t errlen, const char *key, const char *value,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void bad_value(char *err, size_t errlen, const char *key, const char *value,
                      const char *fmt, ...) {
    if (!err || !errlen) return;
    char shown[96], what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *kind = !strncmp(key, "POSTHOG_", 8) ? "environment variable" : "option";
    if (!value) {
        snprintf(err, errlen, "%s %s: no value given (NULL): %s", kind, key, what);
        return;
    }
    if (is_secret(key)) posthog__mask_secret(shown, sizeof shown, value);
    else show_value(shown, sizeof shown, value);
    snprintf(err, errlen, "%s %s=\"%s\" is invalid: %s", kind, key, shown, what);
}

/* A table keeps every numeric option's key, range and field in one place. */
typedef struct {
    const char *key;
    uint64_t lo, hi;
    size_t off;
    int width; /* 4 or 8 */
} num_opt_t;

#define NUM(k, lo, hi, field)                                                                   \
    {k, lo, hi, offsetof(posthog_options_t, field), (int)sizeof(((posthog_options_t *)0)->field)}
static const num_opt_t num_opts[] = {
    NUM("flush_at", 1, 100000, flush_at),
    NUM("flush_interval_ms", 1, 86400000, flush_interval_ms),
    NUM("max_batch_size", 1, 100000, max_batch_size),
    NUM("max_queue_size", 1, 1u << 26, max_queue_size),
    NUM("max_queue_bytes", 64 * 1024, (uint64_t)16 << 30, max_queue_bytes),
    NUM("max_batch_bytes", 1024, (uint64_t)90 << 20, max_batch_bytes),
    NUM("max_event_bytes", 256, 1000000, max_event_bytes),
    NUM("max_ai_event_bytes", 256, 32u << 20, max_ai_event_bytes),
    NUM("request_timeout_ms", 1, 3600000, request_timeout_ms),
    NUM("connect_timeout_ms", 1, 3600000, connect_timeout_ms),
    NUM("max_retries", 0, 100, max_retries),
    NUM("retry_backoff_ms", 1, 3600000, retry_backoff_ms),
    NUM("max_retry_wait_ms", 1, 3600000, max_retry_wait_ms),
    NUM("shutdown_timeout_ms", 0, 3600000, shutdown_timeout_ms),
    NUM("max_storage_bytes", 4096, (uint64_t)1 << 40, max_storage_bytes),
    NUM("max_storage_age_s", 1, 10u * 365 * 86400, max_storage_age_s),
    NUM("spool_fsync_interval_ms", 0, 3600000, spool_fsync_interval_ms),
    NUM("spool_max_files", 2, 100000, spool_max_files),
    NUM("gzip_level", 1, 9, gzip_level),
    NUM("zstd_level", 1, 19, zstd_level),
    NUM("brotli_level", 0, 11, brotli_level),
    NUM("feature_flags_request_timeout_ms", 1, 600000, feature_flags_request_timeout_ms),
    NUM("feature_flags_request_max_retries", 0, 10, feature_flags_request_max_retries),
    NUM("feature_flag_called_cache_size", 0, 10000000, feature_flag_called_cache_size),
    NUM("poll_interval_ms", 1000, 86400000, poll_interval_ms),
    NUM("memory_budget", PH_MEMORY_BUDGET_MIN, (uint64_t)16 << 30, memory_budget),
    NUM("thread_stack_size", 64 * 1024, 64u << 20, thread_stack_size),
};
_Static_assert(sizeof num_opts / sizeof num_opts[0] <= 32, "num_set has a bit per option");

static bool num_was_set(const posthog_options_t *o, const char *key) {
    for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0]; i++)
        if (!strcmp(num_opts[i].key, key)) return (o->num_set >> i) & 1u;
    return false;
}

/* memory_budget B: the split documented in posthog.h. An explicit option
 * that would not fit it is an error, not silently lowered. */
static int resolve_budget(posthog_options_t *o, char *err, size_t errlen) {
    uint64_t b = o->memory_budget;
    if (!b) {
        /* max_queue_bytes: 3/4 for the queue, 1/8 for sealed batches, 1/8
         * for the flusher's working memory (compressors unbounded) */
        o->ring_bytes = o->max_queue_bytes / 4 * 3;
        o->pending_bytes = o->max_queue_bytes / 8;
        o->codec_bytes = 0;
        o->prefault = true;
        return 0;
    }
    if (num_was_set(o, "max_queue_bytes")) {
        snprintf(err, errlen,
                 "options memory_budget and max_queue_bytes cannot both be set: memory_budget "
                 "sizes the queue (half of it); set only one");
        return -1;
    }
    uint64_t part = b / 32; /* largest batch text and event */
    static const char *const limited[] = {"max_batch_bytes", "max_event_bytes",
                                          "max_ai_event_bytes"};
    for (int i = 0; i < 3; i++) {
        uint64_t v = i == 0 ? o->max_batch_bytes : i == 1 ? o->max_event_bytes
                                                          : o->max_ai_event_bytes;
        if (num_was_set(o, limited[i]) && v > part) {
            snprintf(err, errlen,
                     "option %s=%llu does not fit memory_budget=%llu: expected at most %llu "
                     "(a 32nd of the budget), or a larger memory_budget",
                     limited[i], (unsigned long long)v, (unsigned long long)b,
                     (unsigned long long)part);
            return -1;
        }
    }
    if (!num_was_set(o, "max_batch_bytes")) o->max_batch_bytes = part;
    if (!num_was_set(o, "max_event_bytes")) o->max_event_bytes = (uint32_t)PH_MIN(part, 900 * 1024);
    if (!num_was_set(o, "max_ai_event_bytes")) o->max_ai_event_bytes = (uint32_t)PH_MIN(part, 8u << 20);
    o->max_queue_bytes = b;
    o->ring_bytes = b / 2;
    o->pending_bytes = b / 16;
    o->codec_bytes = b / 16 * 3; /* one compressor at a time (flusher.c) */
    o->prefault = false;         /* pages are touched only as the queue is used */
    /* the compressor must fit its share: zstd's smallest context is ~37 KiB,
     * so below ~200 KiB the default is gzip; br is not bounded */
    ph_codec_kind_t k = (ph_codec_kind_t)o->compression;
    int level = (int)(k == PH_CODEC_ZSTD ? o->zstd_level : o->gzip_level);
    size_t need = posthog__codec_min_mem(k, level);
    if (need > o->codec_bytes) {
        if (!o->compression_set && k == PH_CODEC_ZSTD) {
            o->compression = PH_CODEC_GZIP;
            return 0;
        }
        if (k == PH_CODEC_BROTLI)
            snprintf(err, errlen,
                     "compression=br cannot be bounded by memory_budget: use zstd, gzip, "
                     "deflate or none, or no memory_budget");
        else
            snprintf(err, errlen,
                     "compression=%s at level %d needs memory_budget of at least %llu (its "
                     "compressor gets 3/16 of it); memory_budget is %llu",
                     posthog__codec_name(k), level,
                     (unsigned long long)((need + 2) / 3 * 16), (unsigned long long)b);
        return -1;
    }
    return 0;
}

/* Sizes of memory the library allocates must fit a size_t with room to
 * spare: on a 32-bit build 5.7 GB would wrap to a few bytes. Such an
 * option's upper bound is then half the address space, and a larger value
 * is refused (naming that bound) rather than truncated. */
static uint64_t num_opt_hi(const num_opt_t *d) {
    static const char *const in_memory[] = {"max_queue_bytes", "max_batch_bytes",
                                            "max_event_bytes", "max_ai_event_bytes"};
    uint64_t cap = (uint64_t)(SIZE_MAX / 2);
    for (size_t i = 0; i < sizeof in_memory / sizeof in_memory[0]; i++)
        if (!strcmp(d->key, in_memory[i])) return d->hi < cap ? d->hi : cap;
    return d->hi;
}

typedef struct {
    const char *key;
    size_t off;
} bool_opt_t;
#define BOOL(k, field) {k, offsetof(posthog_options_t, field)}
static const bool_opt_t bool_opts[] = {
    BOOL("disabled", disabled),
    BOOL("historical_migration", historical_migration),
    BOOL("disable_geoip", disable_geoip),
    BOOL("debug", debug),
    BOOL("tls_verify", tls_verify),
    BOOL("crash_handler", crash_handler),
    BOOL("send_feature_flag_events", send_feature_flag_events),
};

static const char bool_choices[] = "expected 1 or 0 (also true/false, yes/no, on/off)";

static const char *const log_level_names[] = {"debug", "info", "warn", "error", "none"};

/* "zstd, gzip, deflate, br or none": the codecs this build has. */
static void codec_choices(char *out, size_t n) {
    static const ph_codec_kind_t order[] = {PH_CODEC_ZSTD, PH_CODEC_GZIP, PH_CODEC_DEFLATE,
                                            PH_CODEC_BROTLI, PH_CODEC_NONE};
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!posthog__codec_available(order[i])) continue;
        const char *sep = !o ? "" : order[i] == PH_CODEC_NONE ? " or " : ", ";
        o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s", sep,
                              posthog__codec_name(order[i]));
    }
}

/* The first control character of a header value, or -1. */
static long control_at(const char *v) {
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return (long)(p - v);
    return -1;
}

int posthog__check_api_key(const char *key, const char *value, char *err, size_t errlen) {
    if (!value || !*value) {
        bad_value(err, errlen, key, value, "expected your project API key (phc_...), not empty");
        return -1;
    }
    if (!posthog__utf8_valid(value, strlen(value))) {
        bad_value(err, errlen, key, value, "not valid UTF-8; expected your project API key (phc_...)");
        return -1;
    }
    /* it travels in a header (v1: Authorization): no control characters */
    long at = control_at(value);
    if (at >= 0) {
        bad_value(err, errlen, key, value,
                  "control character 0x%02x at offset %ld (a stray newline or tab?); expected "
                  "your project API key (phc_...)",
                  (unsigned char)value[at], at);
        return -1;
    }
    return 0;
}

posthog_status_t posthog_options_set_ex(posthog_options_t *o, const char *key, const char *value,
                                        char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!o || !key) {
        if (err && errlen)
            snprintf(err, errlen, "posthog_options_set: %s is NULL", !o ? "the option set" : "key");
        return POSTHOG_E_INVALID_ARG;
    }
    for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0]; i++) {
        const num_opt_t *d = &num_opts[i];
        if (strcmp(key, d->key)) continue;
        uint64_t x, hi = num_opt_hi(d);
        if (parse_u64(value, d->lo, hi, &x)) {
            bad_value(err, errlen, key, value, "expected a whole number from %llu to %llu%s",
                      (unsigned long long)d->lo, (unsigned long long)hi,
                      hi < d->hi ? " (the most this 32-bit build can hold in memory)" : "");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        if (d->width == 4) *(uint32_t *)((char *)o + d->off) = (uint32_t)x;
        else *(uint64_t *)((char *)o + d->off) = x;
        o->num_set |= 1u << i;
        return POSTHOG_OK;
    }
    for (size_t i = 0; i < sizeof bool_opts / sizeof bool_opts[0]; i++) {
        if (strcmp(key, bool_opts[i].key)) continue;
#ifdef POSTHOG_NO_CRASH_HANDLER
        bool on = false;
        if (!strcmp(key, "crash_handler") && !parse_bool(value, &on) && on) {
            bad_value(err, errlen, key, value,
                      "this build of libposthog has no crash handler (configured with "
                      "-DPOSTHOG_WITH_CRASH_HANDLER=OFF%s); only 0 is accepted",
#ifdef POSTHOG_NO_SPOOL
                      " or -DPOSTHOG_WITH_SPOOL=OFF"
#else
                      ""
#endif
            );
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
#endif
        if (parse_bool(value, (bool *)((char *)o + bool_opts[i].off)) == 0) return POSTHOG_OK;
        bad_value(err, errlen, key, value, bool_choices);
        return POSTHOG_E_BAD_OPTION_VALUE;
    }
    int r;
    if (!strcmp(key, "gzip")) {
        bool g;
        if (parse_bool(value, &g)) {
            bad_value(err, errlen, key, value, bool_choices);
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        o->compression = g ? PH_CODEC_GZIP : PH_CODEC_NONE;
        o->compression_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "compression")) {
        ph_codec_kind_t k;
        char choices[80];
        codec_choices(choices, sizeof choices);
        if (posthog__codec_parse(value, &k)) {
            bad_value(err, errlen, key, value, "expected %s", choices);
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        if (!posthog__codec_available(k)) {
            bad_value(err, errlen, key, value,
                      "this build of libposthog has no %s support; expected %s", value, choices);
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        o->compression = k;
        o->compression_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "capture_mode")) {
        if (!value || (strcmp(value, "v1") && strcmp(value, "v0"))) {
            bad_value(err, errlen, key, value,
                      "expected v1 (PostHog's current capture API) or v0 (the legacy /batch/ "
                      "endpoint)");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        o->capture_v0 = !strcmp(value, "v0");
        o->capture_mode_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "log_level")) {
        int lvl = posthog__parse_log_level(value);
        if (lvl < 0) {
            bad_value(err, errlen, key, value, "expected debug, info, warn, error or none");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        o->log_level = lvl;
        o->log_level_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "api_key")) {
        if (posthog__check_api_key(key, value, err, errlen)) return POSTHOG_E_BAD_OPTION_VALUE;
        r = set_str(&o->api_key, value, false);
        if (!r) o->api_key_set = true;
    } else if (!strcmp(key, "host")) {
        const char *why;
        char *h = parse_host(value, &why);
        if (!h) {
            if (!why) {
                if (err && errlen) snprintf(err, errlen, "option host: out of memory");
                return POSTHOG_E_NOMEM;
            }
            bad_value(err, errlen, key, value, "%s", why);
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        free(o->host);
        o->host = h;
        o->host_set = true;
        return POSTHOG_OK;
    } else if (!strcmp(key, "default_distinct_id")) {
        if (!value || !*value || !posthog__utf8_valid(value, strlen(value))) {
            bad_value(err, errlen, key, value, "expected a non-empty UTF-8 string");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        r = set_str(&o->default_distinct_id, value, false);
    } else if (!strcmp(key, "sdk_name") || !strcmp(key, "sdk_version")) {
        /* a header token: printable ASCII, no blanks, no '/' */
        bool ok = value && *value && strlen(value) <= 64;
        for (const char *p = value; ok && *p; p++)
            if (*p <= ' ' || *p > '~' || *p == '/') ok = false;
        if (!ok) {
            bad_value(err, errlen, key, value,
                      "expected 1 to 64 printable ASCII characters without blanks or '/'");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        r = set_str(key[4] == 'n' ? &o->sdk_name : &o->sdk_version, value, false);
    } else if (!strcmp(key, "storage_path")) {
        if (!value || !*value) {
            bad_value(err, errlen, key, value, "expected a directory path");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        r = set_str(&o->storage_path, value, false);
    } else if (!strcmp(key, "durability")) {
        if (!value || (strcmp(value, "failures") && strcmp(value, "always"))) {
            bad_value(err, errlen, key, value, "expected failures or always");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        o->durability_always = !strcmp(value, "always");
        return POSTHOG_OK;
    } else if (!strcmp(key, "secret_key") || !strcmp(key, "personal_api_key")) {
        /* local evaluation's key: phs_... (personal_api_key: phx_..., the older
         * name); it travels in a header, so printable ASCII only */
        for (const char *p = value; p && *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f || (unsigned char)*p >= 0x80) {
                bad_value(err, errlen, key, value,
                          "expected a project secret key (phs_...) or personal API key (phx_...): "
                          "printable ASCII without blanks");
                return POSTHOG_E_BAD_OPTION_VALUE;
            }
        if (value && !strncmp(value, "phc_", 4)) {
            bad_value(err, errlen, key, value,
                      "this is a project API key (phc_...): local evaluation needs the project's "
                      "secret key (phs_...) or a personal API key (phx_...)");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        r = set_str(&o->secret_key, value && *value ? value : NULL, false);
    } else if (!strcmp(key, "ca_bundle")) {
        if (!value || !*value) {
            bad_value(err, errlen, key, value, "expected the path of a PEM file of CA certificates");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        r = set_str(&o->ca_bundle, value, false);
    } else if (!strcmp(key, "super_properties")) {
        int type = 0;
        if (!value || posthog__json_validate(value, strlen(value), &type, NULL) != POSTHOG_OK ||
            type != PH_JSON_OBJECT) {
            bad_value(err, errlen, key, value, "expected a JSON object such as {\"plan\":\"pro\"}");
            return POSTHOG_E_BAD_OPTION_VALUE;
        }
        r = set_str(&o->super_properties, value, false);
    } else {
        if (err && errlen) {
            char shown[64];
            show_value(shown, sizeof shown, key);
            /* the value is never shown: it may be a secret under a mistyped key */
            snprintf(err, errlen,
                     "unknown option \"%s\" (the keys are listed at posthog_options_set in "
                     "posthog.h)",
                     shown);
        }
        return POSTHOG_E_UNKNOWN_OPTION;
    }
    if (r == -2) {
        if (err && errlen) snprintf(err, errlen, "option %s: out of memory", key);
        return POSTHOG_E_NOMEM;
    }
    return r == 0 ? POSTHOG_OK : POSTHOG_E_BAD_OPTION_VALUE;
}

posthog_status_t posthog_options_set(posthog_options_t *o, const char *key, const char *value) {
    return posthog_options_set_ex(o, key, value, NULL, 0);
}

int posthog__parse_log_level(const char *v) {
    if (!v) return -1;
    for (int i = 0; i < (int)(sizeof log_level_names / sizeof log_level_names[0]); i++)
        if (!strcasecmp(v, log_level_names[i])) return i;
    if (!strcasecmp(v, "warning")) return POSTHOG_LOG_WARN;
    return -1;
}

void posthog_options_set_log(posthog_options_t *o, posthog_log_fn fn, void *user_data) {
    if (!o) return;
    o->log_fn = fn;
    o->log_ud = user_data;
}

void posthog_options_set_on_drop(posthog_options_t *o, posthog_drop_fn fn, void *user_data) {
    if (!o) return;
    o->drop_fn = fn;
    o->drop_ud = user_data;
}

void posthog_options_set_before_send(posthog_options_t *o, posthog_before_send_fn fn,
                                     void *user_data) {
    if (!o) return;
    o->before_send_fn = fn;
    o->before_send_ud = user_data;
}

void posthog_options_set_transport(posthog_options_t *o, posthog_transport_fn fn, void *user_data) {
    if (!o) return;
    o->transport_fn = fn;
    o->transport_ud = user_data;
}

/* A mistyped ca_bundle would otherwise show only as every request failing. */
static int check_ca_bundle(const char *path, char *err, size_t errlen) {
    struct stat st;
    const char *why = NULL;
    if (stat(path, &st)) why = strerror(errno);
    else if (S_ISDIR(st.st_mode)) why = "it is a directory";
    else if (access(path, R_OK)) why = strerror(errno);
    if (!why) return 0;
    char shown[96];
    show_value(shown, sizeof shown, path);
    snprintf(err, errlen,
             "option ca_bundle=\"%s\" is unusable: %s; expected the path of a readable PEM file "
             "of CA certificates (unset: the system's)",
             shown, why);
    return -1;
}

int posthog__options_resolve(posthog_options_t *o, char *err, size_t errlen) {
    if (!o->max_ai_event_bytes) /* the official SDKs' AI lane: 8 MiB per event */
        o->max_ai_event_bytes = (uint32_t)PH_MIN((uint64_t)8 << 20,
                                                 PH_MAX(o->max_queue_bytes / 4, o->max_event_bytes));
    if (!o->compression_set)
        o->compression = o->capture_v0 ? PH_CODEC_GZIP
                         : posthog__codec_available(PH_CODEC_ZSTD) ? PH_CODEC_ZSTD
                                                                    : PH_CODEC_GZIP;
    if (o->capture_v0 && o->compression != PH_CODEC_GZIP && o->compression != PH_CODEC_NONE) {
        snprintf(err, errlen,
                 "compression=%s is not allowed with capture_mode=v0 (the /batch/ endpoint "
                 "takes gzip or none)",
                 posthog__codec_name((ph_codec_kind_t)o->compression));
        return -1;
    }
    if (o->ca_bundle && check_ca_bundle(o->ca_bundle, err, errlen)) return -1;
    return resolve_budget(o, err, errlen); /* after compression's default */
}

int posthog__options_apply_env(posthog_options_t *o, char *err, size_t errlen, char *warn,
                               size_t warnlen) {
    if (warn && warnlen) warn[0] = '\0';
    const char *m = getenv("POSTHOG_CAPTURE_MODE");
    if (!o->capture_mode_set && m && *m) {
        if (!strcmp(m, "v0") || !strcmp(m, "v1")) o->capture_v0 = !strcmp(m, "v0");
        else
            bad_value(warn, warnlen, "POSTHOG_CAPTURE_MODE", m,
                      "expected v1 or v0; ignored, capture_mode is %s", o->capture_v0 ? "v0" : "v1");
    }
    const char *l = getenv("POSTHOG_LOG_LEVEL");
    if (!o->log_level_set && l && *l) {
        int lvl = posthog__parse_log_level(l);
        if (lvl >= 0) {
            o->log_level = lvl;
            o->log_level_set = true;
        } else if (warn && warnlen) {
            size_t used = strlen(warn);
            if (used && used + 3 < warnlen) {
                memcpy(warn + used, "; ", 3);
                used += 2;
            }
            bad_value(warn + used, warnlen - used, "POSTHOG_LOG_LEVEL", l,
                      "expected debug, info, warn, error or none; ignored");
        }
    }
    /* The key and the host decide who sends and where to: a malformed one
     * stops the client rather than sending elsewhere or in vain. */
    const char *k = getenv("POSTHOG_API_KEY");
    if (!o->api_key_set && k && *k) {
        if (posthog__check_api_key("POSTHOG_API_KEY", k, err, errlen)) return -1;
        char *c = strdup(k);
        if (!c) goto nomem;
        free(o->api_key);
        o->api_key = c;
    }
    const char *h = getenv("POSTHOG_HOST");
    if (!o->host_set && h && *h) {
        const char *why;
        char *c = parse_host(h, &why);
        if (!c) {
            if (!why) goto nomem;
            bad_value(err, errlen, "POSTHOG_HOST", h, "%s; set it right or unset it (the default "
                      "is https://us.i.posthog.com)", why);
            return -1;
        }
        free(o->host);
        o->host = c;
    }
    return 0;
nomem:
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -1;
}
