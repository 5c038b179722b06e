/* support_spool: see support_spool.h. */
#include "support_spool.h"

#include <check.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

char *it_tmp_dir(const char *prefix)
{
    char *t = malloc(strlen(prefix) + 16);
    ck_assert_ptr_nonnull(t);
    sprintf(t, "/tmp/%sXXXXXX", prefix);
    ck_assert_ptr_nonnull(mkdtemp(t));
    return t;
}

void it_rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

int it_count_files(const char *dir, const char *prefix, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    size_t pl = strlen(prefix), sl = suffix ? strlen(suffix) : 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        if (suffix && (l < pl + sl || strcmp(e->d_name + l - sl, suffix) != 0))
            continue;
        n++;
    }
    closedir(d);
    return n;
}

char *it_url_of_port(int port)
{
    char *u = malloc(64);
    if (u)
        snprintf(u, 64, "http://127.0.0.1:%d", port);
    return u;
}

posthog_status_t it_cap_seq(posthog_client_t *c, const char *event, const char *who, long seq)
{
    char props[128];
    snprintf(props, sizeof props, "{\"seq\":%ld,\"who\":\"%s\"}", seq, who);
    return posthog_capture_json(c, "user-1", event, props);
}

int it_wait_stat_ge(posthog_client_t *c, const char *name, uint64_t v, int timeout_ms)
{
    int64_t end = it_mono_ms() + timeout_ms;
    while (posthog_get_stat(c, name) < v) {
        if (it_mono_ms() > end)
            return -1;
        it_sleep_ms(5);
    }
    return 0;
}

long it_server_seqs(ph_ingest_t *srv, const char *who, int *seen, long max)
{
    cJSON *ev = it_events(srv);
    long n = 0, bad = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ev)
    {
        const char *w = it_prop_str(e, "who");
        if (who && (!w || strcmp(w, who)))
            continue;
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(e, "properties");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(props, "seq");
        if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble >= (double)max) {
            bad++;
            continue;
        }
        seen[(long)s->valuedouble]++;
        n++;
    }
    cJSON_Delete(ev);
    return bad ? -1 : n;
}

void it_assert_exactly_once(ph_ingest_t *srv, const char *who, long n)
{
    int *seen = calloc((size_t)n, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    long got = it_server_seqs(srv, who, seen, n);
    ck_assert_int_eq(got, n);
    for (long i = 0; i < n; i++)
        ck_assert_msg(seen[i] == 1, "seq %ld delivered %d times", i, seen[i]);
    free(seen);
    ck_assert_int_eq(it_summary_num(srv, "duplicate_uuids"), 0);
}

void it_errlog_fn(posthog_log_level_t level, const char *msg, void *ud)
{
    it_errlog_t *l = ud;
    if (level < POSTHOG_LOG_ERROR)
        return;
    pthread_mutex_lock(&l->mu);
    l->errors++;
    snprintf(l->last, sizeof l->last, "%s", msg);
    pthread_mutex_unlock(&l->mu);
}

int it_blackhole(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

#ifndef POSTHOG_NO_SPOOL
long it_spool_events(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "ph-", 3) || l < 7 || strcmp(e->d_name + l - 6, ".spool")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        size_t cap = 1 << 16, len = 0;
        unsigned char *buf = malloc(cap);
        size_t r;
        while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
            len += r;
            if (len == cap) {
                unsigned char *b2 = realloc(buf, cap * 2);
                if (!b2) break;
                buf = b2;
                cap *= 2;
            }
        }
        fclose(f);
        ph_spool_loss_t loss = {0};
        if (buf) n += posthog__spool_parse(buf, len, NULL, NULL, &loss);
        free(buf);
    }
    closedir(d);
    return n;
}
#endif
