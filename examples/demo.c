/*
 * demo: libposthog doing its job on a realistic stream of product events.
 *
 *   demo http://127.0.0.1:PORT     send to the local ingestion server
 *                                  (build/tools/posthog-ingest-server) and
 *                                  print what it received (a URL always
 *                                  means local, even with a key set)
 *   POSTHOG_API_KEY=phc_... demo   send to a real PostHog project at
 *                                  $POSTHOG_HOST (default US cloud)
 *
 * Simulates a small SaaS: anonymous visitors browse, some sign up (alias +
 * identify with $set/$set_once), some buy (typed and nested properties,
 * $groups), companies get group properties. One event is deliberately
 * invalid to show drop accounting. Then flushes, prints the client's
 * counters and, for the local server, GET /_control/summary.
 *
 * Exit status: 0 when every valid event was delivered (and, locally, the
 * server saw each of them exactly once); 1 otherwise.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <posthog/posthog.h>

#define N_VISITORS 60
#define N_COMPANIES 5

static const char *const PAGES[] = {
    "/",          "/pricing", "/docs", "/blog/launch-week", "/features", "/docs/getting-started",
    "/changelog", "/about"};
static const char *const REFERRERS[] = {"https://www.google.com/", "https://news.ycombinator.com/",
                                        "$direct", "https://twitter.com/", "https://github.com/"};
static const char *const PLANS[] = {"free", "starter", "pro", "enterprise"};
static const char *const PRODUCTS[] = {"seats", "storage-100gb", "priority-support", "sso"};
static const char *const COMPANIES[N_COMPANIES] = {"acme", "globex", "initech", "umbrella",
                                                   "hooli"};

/* ------------------------------------------------------------ callbacks */

typedef struct demo_state {
    atomic_uint_fast64_t drop_reports;
    atomic_uint_fast64_t dropped_events;
} demo_state_t;

/* Called on the flusher thread for delivery, the caller's thread otherwise. */
static void on_log(posthog_log_level_t level, const char *message, void *user_data) {
    (void)user_data;
    if (level >= POSTHOG_LOG_WARN) fprintf(stderr, "  [posthog] %s\n", message);
}

/* Called on the capturing thread (capture-time drops) or the flusher thread. */
static void on_drop(const posthog_drop_info_t *info, void *user_data) {
    demo_state_t *st = user_data;
    atomic_fetch_add(&st->drop_reports, 1);
    atomic_fetch_add(&st->dropped_events, info->count);
    printf("  [drop callback] %u event(s), reason %s: %s%s%s%s\n", (unsigned)info->count,
           posthog_drop_reason_name((posthog_drop_reason_t)info->reason),
           info->message ? info->message : "", info->event ? " (event \"" : "",
           info->event ? info->event : "", info->event ? "\")" : "");
}

/* ------------------------------------------------------------ helpers */

/* A small deterministic PRNG so every run sends the same mix. */
static uint32_t rng_state = 0x2545F491u;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state % n;
}

#define PICK(arr) (arr[rnd((uint32_t)(sizeof(arr) / sizeof(arr[0])))])

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct tally {
    uint64_t ok, failed;
} tally_t;

static void count(tally_t *t, posthog_status_t st, const char *what) {
    if (st == POSTHOG_OK) {
        t->ok++;
        return;
    }
    t->failed++;
    printf("  %-20s -> %s\n", what, posthog_strerror(st));
}

/* ------------------------------------------------------------ the story */

static void page_view(posthog_client_t *c, tally_t *t, const char *did, const char *path,
                      const char *host) {
    char url[256];
    snprintf(url, sizeof url, "https://%s%s", host, path);
    posthog_props_t *p = posthog_props_new();
    if (!p) {
        t->failed++;
        return;
    }
    posthog_props_set_string(p, "$current_url", url);
    posthog_props_set_string(p, "$pathname", path);
    posthog_props_set_string(p, "$referrer", PICK(REFERRERS));
    posthog_props_set_string(p, "$browser", rnd(3) ? "Chrome" : "Firefox");
    posthog_props_set_int(p, "$screen_width", rnd(2) ? 1920 : 1440);
    posthog_props_set_double(p, "load_time_s", 0.2 + rnd(1800) / 1000.0);
    count(t, posthog_capture(c, did, "$pageview", p), "$pageview");
    posthog_props_free(p);
}

static void sign_up(posthog_client_t *c, tally_t *t, const char *anon, const char *user,
                    const char *company, int i) {
    const char *plan = PICK(PLANS);
    /* Link the anonymous browsing history to the new user id. */
    count(t, posthog_alias(c, user, anon), "alias");

    char set[256], set_once[128];
    snprintf(
        set, sizeof set,
        "{\"email\":\"%s@%s.example\",\"name\":\"User %d\",\"plan\":\"%s\",\"company\":\"%s\"}",
        user, company, i, plan, company);
    snprintf(set_once, sizeof set_once,
             "{\"initial_referrer\":\"%s\",\"signup_cohort\":\"2026-W47\"}", PICK(REFERRERS));
    count(t, posthog_identify(c, user, set, set_once), "identify");

    char props[192], groups[64];
    snprintf(props, sizeof props, "{\"plan\":\"%s\",\"method\":\"%s\",\"invited\":%s}", plan,
             rnd(2) ? "google" : "email", rnd(4) ? "false" : "true");
    snprintf(groups, sizeof groups, "{\"company\":\"%s\"}", company);
    count(t,
          posthog_capture_ex(c, user, "user_signed_up", props, 0, NULL, groups, NULL, NULL, NULL),
          "user_signed_up");
}

static void purchase(posthog_client_t *c, tally_t *t, const char *user, const char *company,
                     int order_no) {
    posthog_props_t *p = posthog_props_new();
    posthog_props_t *items = posthog_props_new_array();
    posthog_props_t *item = posthog_props_new();
    if (!p || !items || !item) {
        t->failed++;
        goto out;
    }
    int n_items = 1 + (int)rnd(3);
    double total = 0;
    for (int k = 0; k < n_items; k++) {
        double price = 5 + rnd(20000) / 100.0;
        int qty = 1 + (int)rnd(5);
        total += price * qty;
        posthog_props_clear(item);
        posthog_props_set_string(item, "sku", PICK(PRODUCTS));
        posthog_props_set_double(item, "price", price);
        posthog_props_set_int(item, "quantity", qty);
        posthog_props_set_props(items, NULL, item);
    }
    char order_id[32];
    snprintf(order_id, sizeof order_id, "ord_%06d", order_no);
    posthog_props_set_string(p, "order_id", order_id);
    posthog_props_set_double(p, "revenue", total);
    posthog_props_set_string(p, "currency", "EUR");
    posthog_props_set_int(p, "item_count", n_items);
    posthog_props_set_bool(p, "first_order", order_no % 3 == 0);
    posthog_props_set_null(p, "coupon");
    posthog_props_set_props(p, "items", items);

    /* Nested $groups via capture_ex: builder JSON is a valid properties object. */
    char groups[64], uuid[37];
    snprintf(groups, sizeof groups, "{\"company\":\"%s\"}", company);
    count(t,
          posthog_capture_ex(c, user, "order_completed", posthog_props_json(p), 0, NULL, groups,
                             NULL, NULL, uuid),
          "order_completed");

    /* Per-event options (capture v1 sends them in the event's "options"):
     * a background job's receipt mail, personless and without clock-skew
     * correction, in the user's browser session. */
    posthog_capture_options_t eo = {.process_person_profile = POSTHOG_FALSE,
                                    .disable_skew_correction = POSTHOG_TRUE};
    char receipt[96];
    snprintf(receipt, sizeof receipt, "{\"order\":%d,\"$session_id\":\"s-%s\"}", order_no,
             user);
    count(t, posthog_capture_opts(c, user, "receipt_mailed", receipt, &eo, NULL),
          "receipt_mailed");

    /* An LLM call behind the order's recommendations: the AI endpoint. */
    char gen[160];
    snprintf(gen, sizeof gen,
             "{\"$ai_model\":\"gpt-4o-mini\",\"$ai_provider\":\"openai\","
             "\"$ai_input_tokens\":%d,\"$ai_output_tokens\":%d,\"$ai_latency\":0.42}",
             120 + n_items, 40 + order_no % 50);
    count(t, posthog_capture_ai(c, user, "$ai_generation", gen, NULL, NULL), "$ai_generation");
out:
    posthog_props_free(item);
    posthog_props_free(items);
    posthog_props_free(p);
}

/* ------------------------------------------------------------ server summary */

typedef struct membuf {
    char *data;
    size_t len;
} membuf_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user_data) {
    membuf_t *m = user_data;
    size_t n = size * nmemb;
    if (m->len + n > (1u << 20)) return 0; /* a summary is small; refuse anything huge */
    char *grown = realloc(m->data, m->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + m->len, ptr, n);
    m->len += n;
    grown[m->len] = '\0';
    m->data = grown;
    return n;
}

static uint64_t num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

/* Prints GET {base}/_control/summary. Returns the unique uuids seen, or -1. */
static int64_t print_server_summary(const char *base) {
    char url[512];
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    snprintf(url, sizeof url, "%.*s/_control/summary", (int)bl, base);

    membuf_t m = {0};
    CURL *h = curl_easy_init();
    if (!h) return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || code != 200 || !m.data) {
        fprintf(stderr, "GET %s failed: %s (HTTP %ld)\n", url, curl_easy_strerror(rc), code);
        free(m.data);
        return -1;
    }
    cJSON *j = cJSON_Parse(m.data);
    free(m.data);
    if (!j) {
        fprintf(stderr, "GET %s: not JSON\n", url);
        return -1;
    }
    uint64_t wire = num(j, "wire_bytes"), body = num(j, "body_bytes");
    printf("\nwhat the local server received (GET /_control/summary):\n");
    printf("  requests         %" PRIu64 " (%" PRIu64 " accepted)", num(j, "requests"),
           num(j, "accepted_requests"));
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(j, "protocol_counts");
    const cJSON *ec = cJSON_GetObjectItemCaseSensitive(j, "encoding_counts");
    const cJSON *kv;
    cJSON_ArrayForEach(kv, pc) if (kv->valuedouble > 0) printf(" %s:%d", kv->string, (int)kv->valuedouble);
    cJSON_ArrayForEach(kv, ec) if (kv->valuedouble > 0) printf(" %s:%d", kv->string, (int)kv->valuedouble);
    printf("\n");
    printf("  events           %" PRIu64 "\n", num(j, "events"));
    printf("  unique uuids     %" PRIu64 " (duplicates %" PRIu64 ")\n", num(j, "unique_uuids"),
           num(j, "duplicate_uuids"));
    printf("  bytes            %" PRIu64 " on the wire, %" PRIu64 " decoded", wire, body);
    if (wire) printf(" (compression ratio %.1fx)", (double)body / (double)wire);
    printf("\n  status codes    ");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "status_counts");
    const cJSON *it;
    cJSON_ArrayForEach(it, sc) printf(" %s:%d", it->string, (int)it->valuedouble);
    printf("\n");
    int64_t uniq = (int64_t)num(j, "unique_uuids");
    if (num(j, "duplicate_uuids")) uniq = -1; /* every event must arrive exactly once */
    cJSON_Delete(j);
    return uniq;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv) {
    const char *key = getenv("POSTHOG_API_KEY");
    /* A URL argument always means the local server, even with a key set. */
    const char *local_url = argc > 1 ? argv[1] : NULL;
    int local = local_url != NULL;
    if (!local && !(key && *key)) {
        fprintf(stderr,
                "usage: %s http://127.0.0.1:PORT   (local ingestion server)\n"
                "   or: POSTHOG_API_KEY=phc_... [POSTHOG_HOST=...] %s\n",
                argv[0], argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);

    demo_state_t ds;
    atomic_init(&ds.drop_reports, 0);
    atomic_init(&ds.dropped_events, 0);

    posthog_options_t *o = posthog_options_new();
    if (!o) return 1;
    if (local) {
        posthog_options_set(o, "host", local_url);
        posthog_options_set(o, "api_key", "phc_local_demo_project");
    } /* else api_key and host come from POSTHOG_API_KEY / POSTHOG_HOST */
    posthog_options_set(o, "flush_at", "50");
    posthog_options_set(o, "super_properties", "{\"app\":\"libposthog-demo\",\"env\":\"demo\"}");
    posthog_options_set_log(o, on_log, NULL);
    posthog_options_set_on_drop(o, on_drop, &ds);

    char err[256];
    posthog_client_t *c = posthog_client_new(o, err, sizeof err);
    if (!c) {
        fprintf(stderr, "posthog_client_new: %s\n", err);
        return 1;
    }
    const char *target = local ? local_url : getenv("POSTHOG_HOST");
    printf("libposthog %s demo -> %s\n", posthog_version(),
           target && *target ? target : "https://us.i.posthog.com (default)");

    tally_t t = {0, 0};
    double t0 = now_s();

    /* Companies first: group analytics. */
    for (int g = 0; g < N_COMPANIES; g++) {
        char props[160];
        snprintf(props, sizeof props, "{\"name\":\"%s Inc.\",\"industry\":\"%s\",\"employees\":%u}",
                 COMPANIES[g], g % 2 ? "fintech" : "devtools", 10 + rnd(5000));
        count(&t, posthog_group_identify(c, "company", COMPANIES[g], props, NULL),
              "group_identify");
    }

    int orders = 0;
    for (int i = 0; i < N_VISITORS; i++) {
        char anon[48], user[32];
        snprintf(anon, sizeof anon, "anon-%08x-%04d", 0x5eed0000u + (unsigned)i, i);
        snprintf(user, sizeof user, "user-%04d", i);
        const char *company = COMPANIES[i % N_COMPANIES];
        int views = 2 + (int)rnd(4);
        for (int v = 0; v < views; v++) page_view(c, &t, anon, PICK(PAGES), "app.example.com");
        if (i % 3 == 2) continue; /* a third of visitors just browse */

        sign_up(c, &t, anon, user, company, i);
        for (int v = 0; v < 1 + (int)rnd(3); v++)
            page_view(c, &t, user, "/dashboard", "app.example.com");
        if (rnd(2)) {
            int n = 1 + (int)rnd(2);
            for (int k = 0; k < n; k++) purchase(c, &t, user, company, ++orders);
        }
        if (i % 10 == 0) /* later: a person property update */
            count(&t, posthog_set(c, user, "{\"last_seen_feature\":\"dashboards\"}"), "set");
    }

    /* Deliberately invalid (empty event name): dropped at capture, reason "invalid". */
    printf("capturing one invalid event on purpose:\n");
    posthog_status_t bad = posthog_capture(c, "user-0000", "", NULL);
    int invalid_expected = bad == POSTHOG_E_INVALID_EVENT;
    printf("  posthog_capture(\"\") -> %s\n", posthog_strerror(bad));

    double t1 = now_s();
    posthog_status_t fst = posthog_flush(c, 30000);
    double t2 = now_s();

    posthog_stats_t s;
    posthog_get_stats(c, &s);
    uint64_t n = t.ok + t.failed;
    printf("\ncaptured %" PRIu64 " events (%" PRIu64 " failed) in %.2f ms (%.2f us/event); "
           "flush: %s in %.0f ms\n",
           n, t.failed, (t1 - t0) * 1e3, n ? (t1 - t0) * 1e6 / (double)n : 0.0,
           posthog_strerror(fst), (t2 - t1) * 1e3);
    printf("\nclient stats:\n");
    printf("  captured         %" PRIu64 "\n", s.captured);
    printf("  sent             %" PRIu64 "\n", s.sent);
    printf("  requests         %" PRIu64 " (%" PRIu64 " retries)\n", s.requests, s.retries);
    printf("  bytes            %" PRIu64 " before compression, %" PRIu64 " on the wire", s.bytes_raw,
           s.bytes_sent);
    if (s.bytes_sent) printf(" (%.1fx smaller)", (double)s.bytes_raw / (double)s.bytes_sent);
    printf("\n  dropped          %" PRIu64 "\n", s.dropped_total);
    for (int r = 0; r < POSTHOG_DROP_REASON_COUNT; r++)
        printf("    %-20s %" PRIu64 "\n", posthog_drop_reason_name((posthog_drop_reason_t)r),
               s.dropped[r]);
    printf("  drop callback    %" PRIu64 " report(s), %" PRIu64 " event(s)\n",
           (uint64_t)atomic_load(&ds.drop_reports), (uint64_t)atomic_load(&ds.dropped_events));

    int ok = fst == POSTHOG_OK && invalid_expected && t.failed == 0 && s.sent == s.captured &&
             s.dropped_total == s.dropped[POSTHOG_DROP_INVALID] &&
             s.dropped[POSTHOG_DROP_INVALID] == 1;

    posthog_status_t sst = posthog_shutdown(c, 5000);
    if (sst != POSTHOG_OK) {
        printf("shutdown: %s\n", posthog_strerror(sst));
        ok = 0;
    }
    posthog_client_free(c);

    if (local) {
        int64_t uniq = print_server_summary(local_url);
        if (uniq != (int64_t)s.sent) {
            printf("MISMATCH: the server holds %" PRId64 " unique events, the client sent %" PRIu64
                   "\n",
                   uniq, s.sent);
            ok = 0;
        }
    }
    curl_global_cleanup();
    printf("\n%s\n",
           ok ? "demo: OK, every valid event delivered exactly once" : "demo: FAILED (see above)");
    return ok ? 0 : 1;
}
