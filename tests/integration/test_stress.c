/*
 * Integration: concurrent producers (style.md "Concurrency tests stamp
 * each event with producer id and sequence number and check
 * delivered + dropped == produced"). Run under ThreadSanitizer too.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_client.h"

#define PRODUCERS 4
#define PER_PRODUCER 50000

typedef struct producer {
    posthog_client_t *c;
    int id;
    uint64_t ok, failed, queue_full;
    unsigned char *accepted; /* [PER_PRODUCER]: 1 when capture returned OK */
} producer_t;

static void *produce(void *p)
{
    producer_t *a = p;
    posthog_props_t *props = posthog_props_new();
    for (int seq = 0; seq < PER_PRODUCER; seq++) {
        posthog_props_clear(props);
        if (posthog_props_set_int(props, "producer", a->id) != POSTHOG_OK ||
            posthog_props_set_int(props, "seq", seq) != POSTHOG_OK) {
            a->failed++;
            continue;
        }
        posthog_status_t st = posthog_capture(a->c, "stress-user", "stress", props);
        if (st == POSTHOG_OK) {
            a->ok++;
            a->accepted[seq] = 1;
        } else {
            a->failed++;
            a->queue_full += st == POSTHOG_E_QUEUE_FULL;
        }
    }
    posthog_props_free(props);
    return NULL;
}

static void run(const char *const *opts, int expect_queue_full)
{
    static const char *const server_args[] = {"--max-body-bytes", "104857600", NULL};
    ph_ingest_t *srv = it_server(server_args);
    it_drops_t *d = it_drops_new();
    posthog_options_t *o = posthog_options_new(); /* defaults, but for these */
    it_set(o, "api_key", IT_API_KEY);
    it_set(o, "host", ph_ingest_url(srv));
    for (int i = 0; opts && opts[i]; i += 2)
        it_set(o, opts[i], opts[i + 1]);
    it_drops_attach(o, d);
    posthog_client_t *c = it_client(o);

    producer_t prods[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        memset(&prods[i], 0, sizeof prods[i]);
        prods[i].c = c;
        prods[i].id = i;
        prods[i].accepted = calloc(PER_PRODUCER, 1);
        ck_assert_ptr_nonnull(prods[i].accepted);
    }
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, produce, &prods[i]), 0);
    uint64_t ok = 0, failed = 0, queue_full = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_uint_eq(prods[i].ok + prods[i].failed, PER_PRODUCER);
        ok += prods[i].ok;
        failed += prods[i].failed;
        queue_full += prods[i].queue_full;
    }
    ck_assert_int_eq(posthog_flush(c, 150000), POSTHOG_OK);

    const uint64_t produced = (uint64_t)PRODUCERS * PER_PRODUCER;
    posthog_stats_t s = it_stats(c);
    it_check_balance(c, ok, failed);
    ck_assert_uint_eq(s.dropped[POSTHOG_DROP_QUEUE_FULL], queue_full);
    ck_assert_uint_eq(it_drops_total(d), s.dropped_total);
    ck_assert_uint_eq(s.queue_depth, 0);
    if (expect_queue_full)
        ck_assert_msg(queue_full > 0, "a tiny queue never filled: the variant tests nothing");

    long long delivered = it_summary_num(srv, "events");
    fprintf(stderr, "stress: produced %llu, captured %llu, refused %llu (queue_full %llu), "
            "delivered %lld, requests %llu\n", (unsigned long long)produced,
            (unsigned long long)ok, (unsigned long long)failed, (unsigned long long)queue_full,
            delivered, (unsigned long long)s.requests);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
    ck_assert_int_eq(it_summary_num(srv, "unique_uuids"), delivered);
    ck_assert_msg((uint64_t)delivered == s.sent, "server accepted %lld events, client sent %llu",
                  delivered, (unsigned long long)s.sent);
    ck_assert_msg((uint64_t)delivered + s.dropped_total == produced,
                  "delivered %lld + dropped %llu != produced %llu", delivered,
                  (unsigned long long)s.dropped_total, (unsigned long long)produced);

    /* Per producer: every delivered (producer, seq) was accepted by capture,
     * appears once, and without delivery drops every accepted one arrived. */
    cJSON *events = it_events(srv);
    ck_assert_int_eq(cJSON_GetArraySize(events), delivered);
    unsigned char *seen = calloc((size_t)produced, 1);
    ck_assert_ptr_nonnull(seen);
    const cJSON *e;
    /* plain ifs: ck_assert records a mark point per call, far too slow here */
    cJSON_ArrayForEach(e, events) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(e, "properties");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(props, "producer");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(props, "seq");
        if (!cJSON_IsNumber(p) || !cJSON_IsNumber(q))
            ck_abort_msg("an event without producer/seq");
        int pi = p->valueint, si = q->valueint;
        if (pi < 0 || pi >= PRODUCERS || si < 0 || si >= PER_PRODUCER)
            ck_abort_msg("producer %d seq %d out of range", pi, si);
        if (!prods[pi].accepted[si])
            ck_abort_msg("producer %d seq %d delivered but refused at capture", pi, si);
        size_t k = (size_t)pi * PER_PRODUCER + (size_t)si;
        if (seen[k])
            ck_abort_msg("producer %d seq %d delivered twice", pi, si);
        seen[k] = 1;
    }
    cJSON_Delete(events);
    if (s.dropped_total == failed) { /* no drop after capture */
        for (int pi = 0; pi < PRODUCERS; pi++)
            for (int si = 0; si < PER_PRODUCER; si++)
                if (seen[(size_t)pi * PER_PRODUCER + si] != prods[pi].accepted[si])
                    ck_abort_msg("producer %d seq %d accepted but not delivered", pi, si);
    }
    free(seen);
    for (int i = 0; i < PRODUCERS; i++)
        free(prods[i].accepted);
    if (failed == 0)
        ck_assert_int_eq(delivered, (long long)produced);
    posthog_client_free(c);
    it_drops_free(d);
    it_stop(srv);
}

START_TEST(test_stress_default_options)
{
    run(NULL, 0);
}
END_TEST

START_TEST(test_stress_tiny_queue)
{
    /* flush_at below the queue size: see test_queue_smaller_than_flush_at_still_drains */
    static const char *const opts[] = {"max_queue_size", "64", "flush_at", "32", NULL};
    run(opts, 1);
}
END_TEST

/* A full queue must not wait for flush_interval_ms to drain: with
 * max_queue_size below flush_at, a steady producer still gets events in
 * (the flusher empties the queue as it fills). */
START_TEST(test_queue_smaller_than_flush_at_still_drains)
{
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = posthog_options_new();
    it_set(o, "api_key", IT_API_KEY);
    it_set(o, "host", ph_ingest_url(srv));
    it_set(o, "max_queue_size", "64"); /* flush_at stays 100, flush_interval 5000 */
    posthog_client_t *c = it_client(o);
    uint64_t ok = 0, failed = 0;
    int64_t end = it_mono_ms() + 1000;
    for (int i = 0; it_mono_ms() < end; i++) {
        if (posthog_capture(c, "u", "steady", NULL) == POSTHOG_OK)
            ok++;
        else
            failed++;
        if (i % 16 == 15)
            it_sleep_ms(1);
    }
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    it_check_balance(c, ok, failed);
    fprintf(stderr, "steady producer, queue 64: %llu accepted, %llu refused in 1 s\n",
            (unsigned long long)ok, (unsigned long long)failed);
    ck_assert_msg(ok >= 4 * 64,
                  "only %llu of %llu captures accepted in 1 s: the full queue (64) was not "
                  "drained before flush_interval_ms",
                  (unsigned long long)ok, (unsigned long long)(ok + failed));
    posthog_client_free(c);
    it_stop(srv);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("integration_stress");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_stress_default_options);
    tcase_add_test(tc, test_stress_tiny_queue);
    tcase_add_test(tc, test_queue_smaller_than_flush_at_still_drains);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
