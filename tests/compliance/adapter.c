/*
 * adapter: the HTTP "SDK adapter" that PostHog's SDK compliance harness
 * (PostHog/posthog-sdk-test-harness) drives. It wraps libposthog's public
 * API behind the harness's small REST contract:
 *
 *   GET  /health     SDK name/version and the capabilities of the configured
 *                    mode: capture_v1, or capture_v0 + capture_ai_v0; plus
 *                    encoding_<x> for the configured encoding (none: nothing)
 *   POST /init       new client from {api_key, host, flush_at,
 *                    flush_interval_ms, max_retries, enable_compression,
 *                    disable_geoip, historical_migration}
 *   POST /capture    posthog_capture_opts; {distinct_id, event, properties,
 *                    timestamp, options{cookieless_mode,
 *                    disable_skew_correction, process_person_profile,
 *                    product_tour_id}}, adapter extras uuid, groups;
 *                    answers the event's uuid
 *   POST /capture_ai posthog_capture_ai: the same, through the AI endpoint
 *                    (posthog_capture_ai); a caller uuid is kept
 *   POST /get_feature_flag  posthog_get_feature_flag (remote /flags); {key,
 *                    distinct_id, person_properties, groups, group_properties,
 *                    disable_geoip, force_remote} -> {success, value}; then a
 *                    flush so its $feature_flag_called stays in this test
 *   POST /flush      posthog_flush; answers how many events were delivered
 *   GET  /state      counters from posthog_get_stats and the last drop report
 *   POST /reset      shuts the client down and forgets it
 *
 * Usage: adapter PORT   (PORT 0 picks a free port). Listens on 127.0.0.1
 * only and prints "adapter listening on 127.0.0.1:PORT" once ready. /init
 * refuses any host that is not a loopback URL, so the adapter never makes
 * the library talk to anything but the harness's local mock server.
 *
 * Environment:
 *   POSTHOG_ADAPTER_CAPTURE_MODE  v1 (default) or v0: the library's
 *                                 capture_mode option and the capabilities
 *   POSTHOG_ADAPTER_ENCODING      gzip (default), deflate, zstd, br or none: the
 *                                 library's compression when /init does not
 *                                 say enable_compression=false (then none);
 *                                 v0 takes gzip or none only
 *   POSTHOG_ADAPTER_DEBUG=1       the library's debug option; its log and
 *                                 drop reports on stderr with a ms clock
 *   POSTHOG_ADAPTER_FLUSH_TIMEOUT_MS  bound of /flush (default 120000)
 * A library without capture v1 refuses the capture_mode and compression
 * options (POSTHOG_E_UNKNOWN_OPTION): in v0 mode the adapter then keeps the
 * library's v0 default and maps gzip/none to the older `gzip` option (1/0);
 * in v1 mode, or for deflate/zstd, /init fails with that error, so every
 * test fails visibly instead of silently testing v0.
 *
 * Invariants: `g.lock` serialises every endpoint that touches the client
 * pointer (the harness is sequential anyway). The library's callbacks run on
 * its flusher thread, possibly while an endpoint holds `g.lock` inside
 * posthog_shutdown/posthog_flush, so they only ever take `g.err_lock`, which
 * is never held across a library call.
 */
#include <posthog/posthog.h>

#include "httpd.h"

#include <cJSON.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ADAPTER_VERSION "1.0.0"
#define DEFAULT_FLUSH_TIMEOUT_MS 120000

static struct adapter_state {
    pthread_mutex_t lock;     /* guards client and endpoint handling */
    posthog_client_t *client; /* NULL before /init and after /reset */
    int debug;
    int flush_timeout_ms;
    const char *capture_mode; /* "v1" or "v0"; set once in main */
    const char *encoding;     /* "gzip", "deflate", "zstd", "br" or "none"; ditto */

    pthread_mutex_t err_lock; /* guards last_error only; leaf lock */
    char last_error[512];     /* "" when none */
} g = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, DEFAULT_FLUSH_TIMEOUT_MS, "v1", "gzip",
       PTHREAD_MUTEX_INITIALIZER, ""};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_last_error(const char *msg)
{
    pthread_mutex_lock(&g.err_lock);
    snprintf(g.last_error, sizeof g.last_error, "%s", msg);
    pthread_mutex_unlock(&g.err_lock);
}

/* Library log callback (flusher or caller thread): stderr when debugging. */
static void on_log(posthog_log_level_t level, const char *message, void *user_data)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    const char *name = (level >= POSTHOG_LOG_DEBUG && level <= POSTHOG_LOG_ERROR)
                           ? names[level]
                           : "?";
    (void)user_data;
    fprintf(stderr, "[%.3f] posthog %s: %s\n", now_seconds(), name, message);
}

/* Drop callback (flusher, capturing or shutting-down thread). */
static void on_drop(const posthog_drop_info_t *info, void *user_data)
{
    char msg[512];
    (void)user_data;
    snprintf(msg, sizeof msg, "dropped %" PRIu32 " event(s): %s (http %" PRId32 "): %s",
             info->count, posthog_drop_reason_name((posthog_drop_reason_t)info->reason),
             info->http_status, info->message ? info->message : "");
    set_last_error(msg);
    if (g.debug)
        fprintf(stderr, "[%.3f] adapter: %s\n", now_seconds(), msg);
}

/* Replies with `obj` (taken, freed here) as JSON and the given status. */
static void reply_json(ph_http_response_t *res, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    res->status = status;
    snprintf(res->content_type, sizeof res->content_type, "application/json");
    ph_http_set_body(res, text ? text : "{\"success\":false,\"error\":\"out of memory\"}");
    cJSON_free(text);
    cJSON_Delete(obj);
}

/* Error replies also go to stderr (the adapter log run.sh keeps), since the
 * harness reports only the HTTP status of a failed adapter call. */
static void reply_error(ph_http_response_t *res, int status, const char *message)
{
    fprintf(stderr, "[%.3f] adapter: error %d: %s\n", now_seconds(), status, message);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddBoolToObject(o, "success", 0);
        cJSON_AddStringToObject(o, "error", message);
    }
    reply_json(res, status, o);
}

static void reply_success(ph_http_response_t *res)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddBoolToObject(o, "success", 1);
    reply_json(res, 200, o);
}

/* Parses the request body as a JSON object. An empty body is an empty
 * object (the harness posts /flush and /reset without a body). */
static cJSON *parse_body(const ph_http_request_t *req)
{
    if (req->body_len == 0)
        return cJSON_CreateObject();
    cJSON *o = cJSON_ParseWithLength(req->body, req->body_len);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A member that is present and not JSON null, else NULL. */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* An integral JSON number in [lo, hi] written into *out. 0 if absent,
 * 1 if set, -1 if present but malformed. */
static int member_int(const cJSON *obj, const char *key, long lo, long hi, long *out)
{
    const cJSON *v = member(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return -1;
    *out = (long)d;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Timestamps                                                          */
/* ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads exactly n digits. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/*
 * Parses an ISO-8601 / RFC 3339 date-time into Unix epoch milliseconds:
 * YYYY-MM-DD[T| ]hh:mm[:ss[.fraction]][Z|+hh:mm|-hh:mm|+hhmm|+hh]. No zone
 * means UTC. The fraction is truncated to milliseconds (libposthog's
 * precision). Returns 0 on success, -1 on malformed input.
 */
static int parse_iso8601_ms(const char *s, int64_t *out)
{
    const char *p = s;
    int year, mon, day, hour, min, sec = 0, ms = 0, off_min = 0;

    if (read_digits(&p, 4, &year) || *p++ != '-' || read_digits(&p, 2, &mon) || *p++ != '-' ||
        read_digits(&p, 2, &day))
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    if (read_digits(&p, 2, &hour) || *p++ != ':' || read_digits(&p, 2, &min))
        return -1;
    if (*p == ':') {
        p++;
        if (read_digits(&p, 2, &sec))
            return -1;
        if (*p == '.' || *p == ',') {
            int digits = 0;
            p++;
            if (*p < '0' || *p > '9')
                return -1;
            while (*p >= '0' && *p <= '9') {
                if (digits < 3)
                    ms = ms * 10 + (*p - '0');
                digits++;
                p++;
            }
            for (; digits < 3; digits++)
                ms *= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (read_digits(&p, 2, &oh))
            return -1;
        if (*p == ':')
            p++;
        if (*p >= '0' && *p <= '9' && read_digits(&p, 2, &om))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        off_min = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;

    int64_t secs = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
    secs -= (int64_t)off_min * 60; /* local time minus offset is UTC */
    *out = secs * 1000 + ms;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Client lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* Shuts the current client down without waiting (anything still queued is
 * dropped, counted as shutdown) and forgets it. Called with g.lock held. */
static void drop_client_locked(void)
{
    if (!g.client)
        return;
    posthog_shutdown(g.client, 0);
    posthog_client_free(g.client);
    g.client = NULL;
}

/*
 * Whether `url` is http(s):// to a loopback host (127.0.0.0/8, localhost
 * or [::1]). The adapter never lets the library reach anything else.
 */
static int is_loopback_url(const char *url)
{
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return 0;
    if (strchr(p, '@'))
        return 0; /* userinfo would make the host part ambiguous */

    size_t n = strcspn(p, "/?#");
    char hostport[300];
    if (n == 0 || n >= sizeof hostport)
        return 0;
    memcpy(hostport, p, n);
    hostport[n] = '\0';

    if (hostport[0] == '[')
        return strncmp(hostport, "[::1]", 5) == 0 && (hostport[5] == '\0' || hostport[5] == ':');

    char *colon = strchr(hostport, ':');
    if (colon)
        *colon = '\0';
    if (strcasecmp(hostport, "localhost") == 0)
        return 1;
    unsigned a, b, c, d;
    char tail;
    if (sscanf(hostport, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4)
        return 0;
    return a == 127 && b < 256 && c < 256 && d < 256;
}

/* Sets one option; on failure writes a message into err. */
static int set_opt(posthog_options_t *o, const char *key, const char *value, char *err,
                   size_t errlen)
{
    posthog_status_t s = posthog_options_set(o, key, value);
    if (s != POSTHOG_OK) {
        snprintf(err, errlen, "option %s=%s: %s", key, value, posthog_strerror(s));
        return -1;
    }
    return 0;
}

/* Applies one optional integer member of /init to an option key. */
static int set_int_opt(posthog_options_t *o, const cJSON *body, const char *member_name,
                       const char *key, long lo, char *err, size_t errlen)
{
    long v;
    int r = member_int(body, member_name, lo, INT_MAX, &v);
    if (r < 0) {
        snprintf(err, errlen, "%s must be an integer >= %ld", member_name, lo);
        return -1;
    }
    if (r == 0)
        return 0;
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    return set_opt(o, key, buf, err, errlen);
}

/* Applies one optional boolean member of /init to a 1/0 option key. */
static int set_bool_opt(posthog_options_t *o, const cJSON *body, const char *member_name,
                        const char *key, char *err, size_t errlen)
{
    const cJSON *v = member(body, member_name);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "%s must be a boolean", member_name);
        return -1;
    }
    return set_opt(o, key, cJSON_IsTrue(v) ? "1" : "0", err, errlen);
}

/*
 * Sets capture_mode and compression from the adapter's configuration.
 * `compress` is 0 when /init said enable_compression=false (compression
 * none), else 1 (the configured encoding). A library without capture v1
 * refuses both keys as unknown; see the file comment for the fallback.
 */
static int set_transport_opts(posthog_options_t *o, int compress, char *err, size_t errlen)
{
    const char *enc = compress ? g.encoding : "none";
    posthog_status_t s = posthog_options_set(o, "capture_mode", g.capture_mode);
    if (s == POSTHOG_E_UNKNOWN_OPTION && strcmp(g.capture_mode, "v0") == 0)
        s = POSTHOG_OK; /* a v0-only library: v0 is what it does */
    if (s != POSTHOG_OK) {
        snprintf(err, errlen, "option capture_mode=%s: %s%s", g.capture_mode,
                 posthog_strerror(s),
                 s == POSTHOG_E_UNKNOWN_OPTION ? " (this libposthog has no capture v1)" : "");
        return -1;
    }
    s = posthog_options_set(o, "compression", enc);
    if (s == POSTHOG_E_UNKNOWN_OPTION &&
        (strcmp(enc, "gzip") == 0 || strcmp(enc, "none") == 0))
        return set_opt(o, "gzip", strcmp(enc, "gzip") == 0 ? "1" : "0", err, errlen);
    if (s != POSTHOG_OK) {
        snprintf(err, errlen, "option compression=%s: %s", enc, posthog_strerror(s));
        return -1;
    }
    return 0;
}

/* Builds an option set from the /init body. NULL with a message in err. */
static posthog_options_t *options_from_init(const cJSON *body, char *err, size_t errlen)
{
    const cJSON *api_key = member(body, "api_key");
    const cJSON *host = member(body, "host");
    if (!cJSON_IsString(api_key) || !cJSON_IsString(host)) {
        snprintf(err, errlen, "api_key and host are required strings");
        return NULL;
    }
    if (!is_loopback_url(host->valuestring)) {
        snprintf(err, errlen, "host %s is not a loopback URL; the adapter only talks to 127.0.0.1",
                 host->valuestring);
        return NULL;
    }
    /* enable_compression: false means no compression; true or absent, the
     * encoding the adapter was started with. */
    const cJSON *compress = member(body, "enable_compression");
    if (compress && !cJSON_IsBool(compress)) {
        snprintf(err, errlen, "enable_compression must be a boolean");
        return NULL;
    }

    posthog_options_t *o = posthog_options_new();
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int bad = set_opt(o, "api_key", api_key->valuestring, err, errlen) ||
              set_opt(o, "host", host->valuestring, err, errlen) ||
              set_int_opt(o, body, "flush_at", "flush_at", 1, err, errlen) ||
              set_int_opt(o, body, "flush_interval_ms", "flush_interval_ms", 1, err, errlen) ||
              set_int_opt(o, body, "max_retries", "max_retries", 0, err, errlen) ||
              set_transport_opts(o, !compress || cJSON_IsTrue(compress), err, errlen) ||
              set_bool_opt(o, body, "disable_geoip", "disable_geoip", err, errlen) ||
              set_bool_opt(o, body, "historical_migration", "historical_migration", err, errlen);
    if (!bad && g.debug)
        bad = set_opt(o, "debug", "1", err, errlen);
    if (bad) {
        posthog_options_free(o);
        return NULL;
    }
    if (g.debug)
        posthog_options_set_log(o, on_log, NULL);
    posthog_options_set_on_drop(o, on_drop, NULL);
    return o;
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */
/* ------------------------------------------------------------------ */

static void handle_health(ph_http_response_t *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *caps = cJSON_CreateArray();
    if (o && caps) {
        cJSON_AddStringToObject(o, "sdk_name", "posthog-c");
        cJSON_AddStringToObject(o, "sdk_version", posthog_version());
        cJSON_AddStringToObject(o, "adapter_version", ADAPTER_VERSION);
        cJSON_AddBoolToObject(o, "supports_parallel", 0);
        /* The harness's capability names: suite capture needs capture_v0,
         * capture_ai needs capture_ai_v0 (its paths are v0's
         * /i/v0/ai/batch/), capture_v1 needs capture_v1; single tests need
         * encoding_gzip / _deflate / _zstd / _br. */
        if (strcmp(g.capture_mode, "v1") == 0) {
            cJSON_AddItemToArray(caps, cJSON_CreateString("capture_v1"));
        } else {
            cJSON_AddItemToArray(caps, cJSON_CreateString("capture_v0"));
            cJSON_AddItemToArray(caps, cJSON_CreateString("capture_ai_v0"));
        }
        if (strcmp(g.encoding, "none") != 0) {
            char cap[32];
            snprintf(cap, sizeof cap, "encoding_%s", g.encoding);
            cJSON_AddItemToArray(caps, cJSON_CreateString(cap));
        }
        cJSON_AddStringToObject(o, "capture_mode", g.capture_mode); /* extras */
        cJSON_AddStringToObject(o, "encoding", g.encoding);
        cJSON_AddItemToObject(o, "capabilities", caps);
        caps = NULL;
    }
    cJSON_Delete(caps);
    reply_json(res, 200, o);
}

static void handle_init(const cJSON *body, ph_http_response_t *res)
{
    char err[512] = "";
    posthog_options_t *o = options_from_init(body, err, sizeof err);
    if (!o) {
        reply_error(res, 400, err);
        return;
    }
    drop_client_locked();
    set_last_error("");
    g.client = posthog_client_new(o, err, sizeof err); /* takes o */
    if (!g.client) {
        reply_error(res, 500, err[0] ? err : "posthog_client_new failed");
        return;
    }
    reply_success(res);
}

/*
 * The capture `options` object (V1 EventOptions) into `opts`: booleans
 * cookieless_mode, disable_skew_correction, process_person_profile and the
 * string product_tour_id. `opts->product_tour_id` borrows from `options`.
 * 0, or -1 with a message in err (a wrong type or an unknown key: a new
 * harness option should fail loudly here, not be dropped silently).
 */
static int capture_options(const cJSON *options, posthog_capture_options_t *opts, char *err,
                           size_t errlen)
{
    static const struct {
        const char *key;
        size_t offset;
    } tristates[] = {
        {"cookieless_mode", offsetof(posthog_capture_options_t, cookieless_mode)},
        {"disable_skew_correction", offsetof(posthog_capture_options_t, disable_skew_correction)},
        {"process_person_profile", offsetof(posthog_capture_options_t, process_person_profile)},
    };
    if (!options)
        return 0;
    if (!cJSON_IsObject(options)) {
        snprintf(err, errlen, "options must be an object");
        return -1;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, options)
    {
        const char *key = item->string;
        size_t i;
        if (cJSON_IsNull(item))
            continue; /* not set */
        for (i = 0; i < sizeof tristates / sizeof tristates[0]; i++)
            if (strcmp(key, tristates[i].key) == 0)
                break;
        if (i < sizeof tristates / sizeof tristates[0]) {
            if (!cJSON_IsBool(item)) {
                snprintf(err, errlen, "options.%s must be a boolean", key);
                return -1;
            }
            *(posthog_tristate_t *)((char *)opts + tristates[i].offset) =
                cJSON_IsTrue(item) ? POSTHOG_TRUE : POSTHOG_FALSE;
        } else if (strcmp(key, "product_tour_id") == 0) {
            if (!cJSON_IsString(item)) {
                snprintf(err, errlen, "options.product_tour_id must be a string");
                return -1;
            }
            opts->product_tour_id = item->valuestring;
        } else {
            snprintf(err, errlen, "options.%s is not supported by this adapter", key);
            return -1;
        }
    }
    return 0;
}

/*
 * POST /capture (posthog_capture_opts) and POST /capture_ai (`ai`,
 * posthog_capture_ai: the AI endpoint). Plain capture never reroutes an
 * $ai_* name.
 */
static void handle_capture(const cJSON *body, ph_http_response_t *res, int ai)
{
    const cJSON *distinct_id = member(body, "distinct_id");
    const cJSON *event = member(body, "event");
    const cJSON *props = member(body, "properties");
    const cJSON *ts = member(body, "timestamp");
    const cJSON *uuid = member(body, "uuid");
    const cJSON *groups = member(body, "groups");
    const cJSON *options = member(body, "options");
    const char *fn = ai ? "capture_ai" : "capture";
    posthog_capture_options_t opts;
    char err[256];

    memset(&opts, 0, sizeof opts);
    if (!g.client) {
        reply_error(res, 400, "not initialised: POST /init first");
        return;
    }
    if (!cJSON_IsString(distinct_id) || !cJSON_IsString(event)) {
        reply_error(res, 400, "distinct_id and event are required strings");
        return;
    }
    if ((props && !cJSON_IsObject(props)) || (groups && !cJSON_IsObject(groups))) {
        reply_error(res, 400, "properties and groups must be objects");
        return;
    }
    if (uuid && !cJSON_IsString(uuid)) {
        reply_error(res, 400, "uuid must be a string");
        return;
    }
    if (ts) {
        /* 0 would mean "now" to the library; the epoch itself is not a
         * timestamp any test uses. Any offset becomes the same UTC instant. */
        if (!cJSON_IsString(ts) || parse_iso8601_ms(ts->valuestring, &opts.timestamp_ms) != 0 ||
            opts.timestamp_ms == 0) {
            reply_error(res, 400, "timestamp must be an ISO-8601 date-time");
            return;
        }
    }
    if (capture_options(options, &opts, err, sizeof err) != 0) {
        reply_error(res, 400, err);
        return;
    }

    char *props_json = props ? cJSON_PrintUnformatted(props) : NULL;
    char *groups_json = groups ? cJSON_PrintUnformatted(groups) : NULL;
    char uuid_out[37] = "";
    posthog_status_t s = POSTHOG_E_NOMEM;
    opts.uuid = uuid ? uuid->valuestring : NULL;
    opts.groups_json = groups_json;
    if ((!props || props_json) && (!groups || groups_json))
        s = (ai ? posthog_capture_ai : posthog_capture_opts)(
            g.client, distinct_id->valuestring, event->valuestring, props_json, &opts, uuid_out);
    cJSON_free(props_json);
    cJSON_free(groups_json);

    if (s != POSTHOG_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: posthog_capture_opts: %s", fn, posthog_strerror(s));
        set_last_error(msg);
        reply_error(res, s == POSTHOG_E_NOMEM || s == POSTHOG_E_INTERNAL ? 500 : 400, msg);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddBoolToObject(o, "success", 1);
        cJSON_AddStringToObject(o, "uuid", uuid_out);
    }
    reply_json(res, 200, o);
}

static void handle_flush(ph_http_response_t *res)
{
    posthog_stats_t before, after;
    posthog_status_t s = POSTHOG_OK;
    uint64_t flushed = 0;

    if (g.client) {
        posthog_get_stats(g.client, &before);
        s = posthog_flush(g.client, g.flush_timeout_ms);
        posthog_get_stats(g.client, &after);
        flushed = after.sent - before.sent;
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddBoolToObject(o, "success", s == POSTHOG_OK);
        cJSON_AddNumberToObject(o, "events_flushed", (double)flushed);
        if (s != POSTHOG_OK)
            cJSON_AddStringToObject(o, "error", posthog_strerror(s));
    }
    reply_json(res, 200, o);
}

static void handle_state(ph_http_response_t *res)
{
    posthog_stats_t st;
    char last_error[sizeof g.last_error];

    memset(&st, 0, sizeof st);
    if (g.client)
        posthog_get_stats(g.client, &st);
    pthread_mutex_lock(&g.err_lock);
    memcpy(last_error, g.last_error, sizeof last_error);
    pthread_mutex_unlock(&g.err_lock);

    cJSON *o = cJSON_CreateObject();
    cJSON *dropped = cJSON_CreateObject();
    if (!o || !dropped) {
        cJSON_Delete(dropped);
        reply_json(res, 500, o);
        return;
    }
    cJSON_AddNumberToObject(o, "pending_events", (double)st.queue_depth);
    cJSON_AddNumberToObject(o, "total_events_captured", (double)st.captured);
    cJSON_AddNumberToObject(o, "total_events_sent", (double)st.sent);
    cJSON_AddNumberToObject(o, "total_retries", (double)st.retries);
    if (last_error[0])
        cJSON_AddStringToObject(o, "last_error", last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    /* The library does its own HTTP, so per-request records are not
     * observable here; no capture_v0 test reads them (the harness judges
     * from what its mock server recorded). */
    cJSON_AddItemToObject(o, "requests_made", cJSON_CreateArray());
    /* Extra, non-contract diagnostics. */
    cJSON_AddNumberToObject(o, "requests", (double)st.requests);
    for (int r = 0; r < POSTHOG_DROP_REASON_COUNT; r++)
        cJSON_AddNumberToObject(dropped, posthog_drop_reason_name((posthog_drop_reason_t)r),
                                (double)st.dropped[r]);
    cJSON_AddItemToObject(o, "dropped", dropped);
    reply_json(res, 200, o);
}

/* POST /get_feature_flag: one remote evaluation (the library's remote path
 * is what force_remote asks for), then a flush so that its
 * $feature_flag_called does not leak into the next test. */
static void handle_get_feature_flag(const cJSON *body, ph_http_response_t *res)
{
    const cJSON *key = member(body, "key");
    const cJSON *distinct_id = member(body, "distinct_id");
    const cJSON *pp = member(body, "person_properties");
    const cJSON *groups = member(body, "groups");
    const cJSON *gp = member(body, "group_properties");
    const cJSON *geo = member(body, "disable_geoip");
    const cJSON *remote = member(body, "force_remote");

    if (!g.client) {
        reply_error(res, 400, "not initialised: POST /init first");
        return;
    }
    if (!cJSON_IsString(key) || !cJSON_IsString(distinct_id)) {
        reply_error(res, 400, "key and distinct_id are required strings");
        return;
    }
    if ((pp && !cJSON_IsObject(pp)) || (groups && !cJSON_IsObject(groups)) ||
        (gp && !cJSON_IsObject(gp)) || (geo && !cJSON_IsBool(geo))) {
        reply_error(res, 400, "person_properties, groups and group_properties must be objects, "
                              "disable_geoip a boolean");
        return;
    }
    posthog_flags_options_t fo;
    memset(&fo, 0, sizeof fo);
    char *pp_json = pp ? cJSON_PrintUnformatted(pp) : NULL;
    char *groups_json = groups ? cJSON_PrintUnformatted(groups) : NULL;
    char *gp_json = gp ? cJSON_PrintUnformatted(gp) : NULL;
    fo.person_properties_json = pp_json;
    fo.groups_json = groups_json;
    fo.group_properties_json = gp_json;
    if (geo)
        fo.disable_geoip = cJSON_IsTrue(geo) ? POSTHOG_TRUE : POSTHOG_FALSE;
    fo.force_remote = cJSON_IsTrue(remote);
    char variant[512];
    posthog_flag_state_t st = posthog_get_feature_flag(g.client, key->valuestring,
                                                       distinct_id->valuestring, &fo, variant,
                                                       sizeof variant);
    cJSON_free(pp_json);
    cJSON_free(groups_json);
    cJSON_free(gp_json);
    posthog_flush(g.client, g.flush_timeout_ms);

    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddBoolToObject(o, "success", 1);
        if (st == POSTHOG_FLAG_UNKNOWN)
            cJSON_AddNullToObject(o, "value");
        else if (st == POSTHOG_FLAG_ENABLED && variant[0])
            cJSON_AddStringToObject(o, "value", variant);
        else
            cJSON_AddBoolToObject(o, "value", st == POSTHOG_FLAG_ENABLED);
    }
    reply_json(res, 200, o);
}

static void handle_reset(ph_http_response_t *res)
{
    drop_client_locked();
    set_last_error("");
    reply_success(res);
}

static int is_method(const ph_http_request_t *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

/* httpd handler: runs on a connection thread. */
static void handle(const ph_http_request_t *req, ph_http_response_t *res, void *user_data)
{
    (void)user_data;
    const char *path = req->path;
    int get = is_method(req, "GET"), post = is_method(req, "POST");

    if (g.debug)
        fprintf(stderr, "[%.3f] adapter: %s %s\n", now_seconds(), req->method, path);

    if (strcmp(path, "/health") == 0 && get) {
        handle_health(res);
        return;
    }
    if (!(strcmp(path, "/state") == 0 && get) &&
        !(post && (strcmp(path, "/init") == 0 || strcmp(path, "/capture") == 0 ||
                   strcmp(path, "/get_feature_flag") == 0 ||
                   strcmp(path, "/capture_ai") == 0 || strcmp(path, "/flush") == 0 ||
                   strcmp(path, "/reset") == 0))) {
        reply_error(res, 404, "no such endpoint");
        return;
    }

    cJSON *body = NULL;
    if (post) {
        body = parse_body(req);
        if (!body) {
            reply_error(res, 400, "body is not a JSON object");
            return;
        }
    }

    pthread_mutex_lock(&g.lock);
    if (strcmp(path, "/init") == 0)
        handle_init(body, res);
    else if (strcmp(path, "/capture") == 0)
        handle_capture(body, res, 0);
    else if (strcmp(path, "/capture_ai") == 0)
        handle_capture(body, res, 1);
    else if (strcmp(path, "/get_feature_flag") == 0)
        handle_get_feature_flag(body, res);
    else if (strcmp(path, "/flush") == 0)
        handle_flush(res);
    else if (strcmp(path, "/reset") == 0)
        handle_reset(res);
    else
        handle_state(res);
    pthread_mutex_unlock(&g.lock);
    cJSON_Delete(body);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static int parse_port(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    int port;
    if (argc != 2 || parse_port(argv[1], &port) != 0) {
        fprintf(stderr, "usage: %s PORT   (listens on 127.0.0.1:PORT; 0 picks a free port)\n",
                argv[0]);
        return 2;
    }
    const char *dbg = getenv("POSTHOG_ADAPTER_DEBUG");
    g.debug = dbg && *dbg && strcmp(dbg, "0") != 0;
    const char *mode = getenv("POSTHOG_ADAPTER_CAPTURE_MODE");
    if (mode && *mode) {
        if (strcmp(mode, "v1") != 0 && strcmp(mode, "v0") != 0) {
            fprintf(stderr, "adapter: bad POSTHOG_ADAPTER_CAPTURE_MODE=%s (v1 or v0)\n", mode);
            return 2;
        }
        g.capture_mode = strcmp(mode, "v1") == 0 ? "v1" : "v0";
    }
    const char *enc = getenv("POSTHOG_ADAPTER_ENCODING");
    if (enc && *enc) {
        static const char *const encodings[] = {"gzip", "deflate", "zstd", "br", "none"};
        size_t i;
        for (i = 0; i < sizeof encodings / sizeof encodings[0]; i++)
            if (strcmp(enc, encodings[i]) == 0)
                break;
        if (i == sizeof encodings / sizeof encodings[0]) {
            fprintf(stderr,
                    "adapter: bad POSTHOG_ADAPTER_ENCODING=%s (gzip, deflate, zstd, br, none)\n",
                    enc);
            return 2;
        }
        g.encoding = encodings[i];
    }
    if (strcmp(g.capture_mode, "v0") == 0 && strcmp(g.encoding, "gzip") != 0 &&
        strcmp(g.encoding, "none") != 0) {
        fprintf(stderr, "adapter: capture v0 sends gzip or none, not %s\n", g.encoding);
        return 2;
    }
    const char *fto = getenv("POSTHOG_ADAPTER_FLUSH_TIMEOUT_MS");
    if (fto && *fto) {
        char *end;
        long v = strtol(fto, &end, 10);
        if (*end || v <= 0 || v > INT_MAX) {
            fprintf(stderr, "adapter: bad POSTHOG_ADAPTER_FLUSH_TIMEOUT_MS=%s\n", fto);
            return 2;
        }
        g.flush_timeout_ms = (int)v;
    }

    /* Block the stop signals in every thread (the server's threads inherit
     * the mask) and wait for them here. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[256] = "";
    ph_httpd_t *srv = ph_httpd_start("127.0.0.1", port, handle, NULL, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "adapter: cannot listen on 127.0.0.1:%d: %s\n", port, err);
        return 1;
    }
    printf("adapter listening on 127.0.0.1:%d\n", ph_httpd_port(srv));
    printf("adapter capture_mode %s, encoding %s\n", g.capture_mode, g.encoding);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    if (g.debug)
        fprintf(stderr, "adapter: signal %d, stopping\n", sig);

    ph_httpd_stop(srv);
    pthread_mutex_lock(&g.lock);
    drop_client_locked();
    pthread_mutex_unlock(&g.lock);
    return 0;
}
