/*
 * support_spool: helpers shared by the spool and disk integration suites
 * (temporary directories, counting spool files, numbered events and their
 * exactly-once check). Everything but it_assert_exactly_once avoids Check,
 * so forked children may use it.
 */
#ifndef PH_SUPPORT_SPOOL_H
#define PH_SUPPORT_SPOOL_H

#include <pthread.h>

#include "support_client.h"

/* 1 under ASan or TSan (timing-heavy cases scale down). */
#define IT_SANITIZER (IT_UNDER_ASAN || IT_UNDER_TSAN)

/* A new directory /tmp/<prefix>XXXXXX (malloc'd; Check fails when it cannot). */
char *it_tmp_dir(const char *prefix);
void it_rm_rf(const char *dir);
/* Entries of dir whose name starts with prefix and, unless NULL, ends with
 * suffix; -1 when dir cannot be read. */
int it_count_files(const char *dir, const char *prefix, const char *suffix);
/* Events pending in the directory's spool files (ph-*.spool, read with
 * posthog__spool_parse: batches marked done in a segment do not count);
 * -1 when dir cannot be read. */
long it_spool_events(const char *dir);
/* "http://127.0.0.1:<port>" (malloc'd). */
char *it_url_of_port(int port);
/* A TCP listener on 127.0.0.1 that never accepts (connections complete,
 * requests hang): its fd; *port gets the port. */
int it_blackhole(int *port);
/* Captures `event` for user-1 with properties {"seq": seq, "who": who}. */
posthog_status_t it_cap_seq(posthog_client_t *c, const char *event, const char *who, long seq);
/* Waits until stat `name` of c is >= v: 0, or -1 after timeout_ms. */
int it_wait_stat_ge(posthog_client_t *c, const char *name, uint64_t v, int timeout_ms);
/* The "seq" property of every accepted event whose "who" is `who` (NULL:
 * any): seen[seq]++ for seq < max; how many matched, -1 if a seq is out of range. */
long it_server_seqs(ph_ingest_t *srv, const char *who, int *seen, long max);
/* Every event of `who` with seq 0..n-1 accepted exactly once (Check). */
void it_assert_exactly_once(ph_ingest_t *srv, const char *who, long n);

/* A log callback that keeps the errors: how many, and the last one. */
typedef struct {
    pthread_mutex_t mu;
    int errors;
    char last[512];
} it_errlog_t;
void it_errlog_fn(posthog_log_level_t level, const char *msg, void *ud);

#endif
