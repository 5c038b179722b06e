/*
 * options: defaults, string parsing and validation of every option.
 * An option set is only touched by the thread configuring it; the client
 * takes ownership and treats it as read-only afterwards.
 */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

#include <stdio.h>

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

static int valid_host(const char *v) {
    if (!v) return 0;
    const char *rest = NULL;
    if (!strncasecmp(v, "http://", 7)) rest = v + 7;
    else if (!strncasecmp(v, "https://", 8)) rest = v + 8;
    if (!rest || !*rest || *rest == '/') return 0;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '<' || *p == '>') return 0;
    return 1;
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
    NUM("gzip_level", 1, 9, gzip_level),
    NUM("zstd_level", 1, 19, zstd_level),
    NUM("brotli_level", 0, 11, brotli_level),
    NUM("feature_flags_request_timeout_ms", 1, 600000, feature_flags_request_timeout_ms),
    NUM("feature_flags_request_max_retries", 0, 10, feature_flags_request_max_retries),
    NUM("feature_flag_called_cache_size", 0, 10000000, feature_flag_called_cache_size),
    NUM("poll_interval_ms", 1000, 86400000, poll_interval_ms),
};

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

posthog_status_t posthog_options_set(posthog_options_t *o, const char *key, const char *value) {
    if (!o || !key) return POSTHOG_E_INVALID_ARG;
    for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0]; i++) {
        const num_opt_t *d = &num_opts[i];
        if (strcmp(key, d->key)) continue;
        uint64_t x;
        if (parse_u64(value, d->lo, d->hi, &x)) return POSTHOG_E_BAD_OPTION_VALUE;
        if (d->width == 4) *(uint32_t *)((char *)o + d->off) = (uint32_t)x;
        else *(uint64_t *)((char *)o + d->off) = x;
        return POSTHOG_OK;
    }
    for (size_t i = 0; i < sizeof bool_opts / sizeof bool_opts[0]; i++) {
        if (strcmp(key, bool_opts[i].key)) continue;
        return parse_bool(value, (bool *)((char *)o + bool_opts[i].off)) ? POSTHOG_E_BAD_OPTION_VALUE
                                                                        : POSTHOG_OK;
    }
    int r;
    if (!strcmp(key, "gzip")) {
        bool g;
        if (parse_bool(value, &g)) return POSTHOG_E_BAD_OPTION_VALUE;
        o->compression = g ? PH_CODEC_GZIP : PH_CODEC_NONE;
        o->compression_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "compression")) {
        ph_codec_kind_t k;
        if (posthog__codec_parse(value, &k) || !posthog__codec_available(k))
            return POSTHOG_E_BAD_OPTION_VALUE;
        o->compression = k;
        o->compression_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "capture_mode")) {
        if (!value || (strcmp(value, "v1") && strcmp(value, "v0")))
            return POSTHOG_E_BAD_OPTION_VALUE;
        o->capture_v0 = !strcmp(value, "v0");
        o->capture_mode_set = true;
        return POSTHOG_OK;
    }
    if (!strcmp(key, "api_key")) {
        if (value && !posthog__utf8_valid(value, strlen(value))) return POSTHOG_E_BAD_OPTION_VALUE;
        /* it travels in a header (v1: Authorization): no control characters */
        for (const char *p = value; p && *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) return POSTHOG_E_BAD_OPTION_VALUE;
        r = set_str(&o->api_key, value, false);
        if (!r) o->api_key_set = true;
    } else if (!strcmp(key, "host")) {
        if (!valid_host(value)) return POSTHOG_E_BAD_OPTION_VALUE;
        char *h = posthog__normalize_host(value);
        if (!h) return POSTHOG_E_NOMEM;
        free(o->host);
        o->host = h;
        o->host_set = true;
        return POSTHOG_OK;
    } else if (!strcmp(key, "default_distinct_id")) {
        if (value && !posthog__utf8_valid(value, strlen(value))) return POSTHOG_E_BAD_OPTION_VALUE;
        r = set_str(&o->default_distinct_id, value, false);
    } else if (!strcmp(key, "sdk_name") || !strcmp(key, "sdk_version")) {
        /* a header token: printable ASCII, no blanks, no '/' */
        if (!value || !*value || strlen(value) > 64) return POSTHOG_E_BAD_OPTION_VALUE;
        for (const char *p = value; *p; p++)
            if (*p <= ' ' || *p > '~' || *p == '/') return POSTHOG_E_BAD_OPTION_VALUE;
        r = set_str(key[4] == 'n' ? &o->sdk_name : &o->sdk_version, value, false);
    } else if (!strcmp(key, "storage_path")) {
        r = set_str(&o->storage_path, value, false);
    } else if (!strcmp(key, "durability")) {
        if (!value || (strcmp(value, "failures") && strcmp(value, "always")))
            return POSTHOG_E_BAD_OPTION_VALUE;
        o->durability_always = !strcmp(value, "always");
        return POSTHOG_OK;
    } else if (!strcmp(key, "secret_key") || !strcmp(key, "personal_api_key")) {
        /* local evaluation's key: phs_... (personal_api_key: phx_..., the older
         * name); it travels in a header, so printable ASCII only */
        for (const char *p = value; p && *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f || (unsigned char)*p >= 0x80)
                return POSTHOG_E_BAD_OPTION_VALUE;
        r = set_str(&o->secret_key, value && *value ? value : NULL, false);
    } else if (!strcmp(key, "ca_bundle")) {
        r = set_str(&o->ca_bundle, value, false);
    } else if (!strcmp(key, "super_properties")) {
        int type = 0;
        if (!value || posthog__json_validate(value, strlen(value), &type, NULL) != POSTHOG_OK ||
            type != PH_JSON_OBJECT)
            return POSTHOG_E_BAD_OPTION_VALUE;
        r = set_str(&o->super_properties, value, false);
    } else {
        return POSTHOG_E_UNKNOWN_OPTION;
    }
    return r == 0 ? POSTHOG_OK : r == -2 ? POSTHOG_E_NOMEM : POSTHOG_E_BAD_OPTION_VALUE;
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
    return 0;
}

void posthog__options_apply_env(posthog_options_t *o) {
    const char *m = getenv("POSTHOG_CAPTURE_MODE");
    if (!o->capture_mode_set && m && (!strcmp(m, "v0") || !strcmp(m, "v1")))
        o->capture_v0 = !strcmp(m, "v0");
    const char *k = getenv("POSTHOG_API_KEY");
    if (!o->api_key_set && k && *k) {
        char *c = strdup(k);
        if (c) {
            free(o->api_key);
            o->api_key = c;
        }
    }
    const char *h = getenv("POSTHOG_HOST");
    if (!o->host_set && h && valid_host(h)) {
        char *c = posthog__normalize_host(h);
        if (c) {
            free(o->host);
            o->host = c;
        }
    }
}
