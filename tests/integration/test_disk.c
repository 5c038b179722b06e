/*
 * Integration: the spool under outages and hostile disks (issue 9, "Outages
 * and the disk"), against the local ingestion server on 127.0.0.1:
 *  - a long outage holds a bounded number of descriptors, all close-on-exec,
 *    and a forked child inherits none that keeps its parent's files;
 *  - posthog_shutdown (without free) lets another client deliver the files;
 *  - a relative storage_path keeps working after chdir();
 *  - an unsafe storage_path (symlink, group/world writable, someone else's)
 *    is refused with a message naming it and the problem;
 *  - the crash handler never writes through a symlink planted at its temp name;
 *  - 3xx answers and 2xx pages without the capture service's confirmation are
 *    not deliveries (v0 and v1), so no spool file is deleted for them;
 *  - the halves of a 413 split and a v1 partial retry keep a disk copy under
 *    durability=always.
 * Forked children never use Check: they report through their exit status.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "spool.h"
#include "support_spool.h"


/* ------------------------------------------------------------ helpers */

static char *tmp_dir(void) { return it_tmp_dir("ph-disk-it-"); }
/* Entries of dir named ph-*.spool. */
static int spool_files(const char *dir) { return it_count_files(dir, "ph-", ".spool"); }
static posthog_status_t cap_seq(posthog_client_t *c, const char *who, long seq) {
    return it_cap_seq(c, "disk_test", who, seq);
}





/* Options without Check (usable in forked children); v0 unless mode. */
static posthog_options_t *opts(const char *host, const char *dir, const char *mode) {
    posthog_options_t *o = posthog_options_new();
    posthog_options_set(o, "api_key", IT_API_KEY);
    if (host) posthog_options_set(o, "host", host);
    if (dir) posthog_options_set(o, "storage_path", dir);
    posthog_options_set(o, "capture_mode", mode ? mode : "v0");
    posthog_options_set(o, "retry_backoff_ms", "10");
    posthog_options_set(o, "max_retries", "1");
    posthog_options_set(o, "connect_timeout_ms", "2000");
    return o;
}




/* Descriptors of this process that refer to something inside `dir` (the
 * directory itself included); *no_cloexec gets how many of them lack
 * FD_CLOEXEC. */
static int fds_into(const char *dir, int *no_cloexec) {
    char real[PATH_MAX];
    if (!realpath(dir, real)) return -1;
    size_t rl = strlen(real);
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d)) continue;
        char link[300], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(link, target, sizeof target - 1);
        if (l < 0) continue;
        target[l] = '\0';
        if (strncmp(target, real, rl) || (target[rl] != '\0' && target[rl] != '/')) continue;
        n++;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC)) bad++;
    }
    closedir(d);
    if (no_cloexec) *no_cloexec = bad;
    return n;
}

/* ------------------------------------------------------------ descriptors */

/*
 * An outage of hundreds of batches: every spooled file used to hold an open
 * descriptor (until EMFILE in the host application), and a forked worker
 * inherited them all. Now a client holds the directory and its lease,
 * whatever the outage's length; the child keeps none of its parent's lease.
 */
START_TEST(outage_holds_bounded_descriptors) {
    enum { GROUP = 5, GROUPS = 100, N = GROUP * GROUPS };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir, NULL);
    it_set(o, "flush_at", "5");
    it_set(o, "flush_interval_ms", "5");
    posthog_client_t *c = it_client(o);
    /* one batch, one file per group */
    for (long g = 0; g < GROUPS; g++) {
        for (long i = 0; i < GROUP; i++)
            ck_assert_int_eq(cap_seq(c, "fd", g * GROUP + i), POSTHOG_OK);
        ck_assert_int_eq(it_wait_stat_ge(c, "spooled", (uint64_t)(g + 1) * GROUP, 10000), 0);
    }
    /* the batches are appended to segments: few files, every event on disk */
    int files = spool_files(dir);
    ck_assert_int_ge(files, 1);
    ck_assert_int_le(files, 32);
    ck_assert_int_eq(it_spool_events(dir), N);
    int no_cloexec = -1;
    int held = fds_into(dir, &no_cloexec);
    ck_assert_msg(held >= 1 && held <= 4, "%d descriptors held for %d spool files", held, files);
    ck_assert_int_eq(no_cloexec, 0);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* the child: at most the directory (no lease of the parent's) */
        int bad = -1;
        int n = fds_into(dir, &bad);
        _exit(n >= 0 && n <= 1 && bad == 0 ? 0 : 10 + (n > 50 ? 50 : n));
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child holds spool descriptors: status %d",
                  WIFEXITED(st) ? WEXITSTATUS(st) - 10 : -1);
    posthog_client_free(c);
    ck_assert_int_eq(fds_into(dir, NULL), 0);

    /* and all of it is delivered later, once */
    ph_ingest_t *srv = it_server(NULL);
    c = it_client(opts(ph_ingest_url(srv), dir, NULL));
    ck_assert_int_eq(it_wait_stat_ge(c, "replayed", N, 20000), 0);
    ck_assert_int_eq(posthog_flush(c, 20000), POSTHOG_OK);
    it_assert_exactly_once(srv, "fd", N);
    posthog_client_free(c);
    it_stop(srv);
    ck_assert_int_eq(spool_files(dir), 0);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

/* After posthog_shutdown, a client that is not freed (yet) kept every
 * spooled file locked: no other client or process could deliver them. */
START_TEST(shutdown_without_free_releases_files) {
    enum { N = 40 };
    char *dir = tmp_dir();
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, dir, NULL);
    it_set(o, "flush_at", "8");
    posthog_client_t *a = it_client(o);
    for (long i = 0; i < N; i++) ck_assert_int_eq(cap_seq(a, "sd", i), POSTHOG_OK);
    posthog_shutdown(a, 5000);
    ck_assert_uint_eq(it_stats(a).spooled, N);
    ck_assert_int_ge(spool_files(dir), 1);

    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *b = it_client(opts(ph_ingest_url(srv), dir, NULL));
    /* the files are b's to adopt now (at its start, or its next look) */
    ck_assert_int_eq(it_wait_stat_ge(b, "replayed", N, 10000), 0);
    ck_assert_int_eq(posthog_flush(b, 10000), POSTHOG_OK);
    it_assert_exactly_once(srv, "sd", N);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(b);
    posthog_client_free(a);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ relative path */

START_TEST(relative_storage_path_survives_chdir) {
    enum { N = 30 };
    char *base = tmp_dir();
    char *elsewhere = tmp_dir();
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(base), 0);
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, "spool", NULL);
    it_set(o, "flush_at", "5");
    it_set(o, "flush_interval_ms", "5");
    posthog_client_t *c = it_client(o);
    ck_assert_int_eq(chdir(elsewhere), 0); /* the host application moves on */
    for (long i = 0; i < N; i++) ck_assert_int_eq(cap_seq(c, "rel", i), POSTHOG_OK);
    ck_assert_int_eq(posthog_capture_durable(c, "u", "durable", NULL), POSTHOG_OK);
    int spooled = it_wait_stat_ge(c, "spooled", N + 1, 10000);
    posthog_stats_t s = it_stats(c);
    ck_assert_msg(spooled == 0, "spooled %llu of %d after chdir (dropped %llu)",
                  (unsigned long long)s.spooled, N + 1, (unsigned long long)s.dropped_total);
    ck_assert_uint_eq(s.dropped_total, 0);
    char where[PATH_MAX];
    snprintf(where, sizeof where, "%s/spool", base);
    ck_assert_int_ge(spool_files(where), 1);
    snprintf(where, sizeof where, "%s/spool", elsewhere);
    struct stat st;
    ck_assert_int_ne(stat(where, &st), 0); /* nothing went to the new working directory */
    posthog_client_free(c);
    ck_assert_int_eq(chdir(cwd), 0);
    it_rm_rf(base);
    it_rm_rf(elsewhere);
    free(base);
    free(elsewhere);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ unsafe directories */


/* Creates a client on `path` and checks the spool was refused with a
 * message naming the path and containing `problem`. */
static void assert_refused(const char *path, const char *problem) {
    it_errlog_t logs = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    char *down = it_url_of_port(it_closed_port());
    posthog_options_t *o = opts(down, path, NULL);
    posthog_options_set_log(o, it_errlog_fn, &logs);
    posthog_client_t *c = it_client(o);
    ck_assert_int_ge(logs.errors, 1);
    ck_assert_msg(strstr(logs.last, path) && strstr(logs.last, "storage_path"),
                  "the message does not name the path %s: %s", path, logs.last);
    ck_assert_msg(strstr(logs.last, problem), "the message does not say \"%s\": %s", problem,
                  logs.last);
    /* no spool: a durable capture says so, and nothing was written there */
    ck_assert_int_eq(posthog_capture_durable(c, "u", "x", NULL), POSTHOG_E_NO_STORAGE);
    posthog_client_free(c);
    free(down);
}

START_TEST(unsafe_storage_path_refused) {
    char *dir = tmp_dir();
    char real[600], link[600], open_dir[600], theirs[600];
    /* a symlink to a directory (a planted link would redirect every file) */
    snprintf(real, sizeof real, "%s/real", dir);
    ck_assert_int_eq(mkdir(real, 0700), 0);
    snprintf(link, sizeof link, "%s/link", dir);
    ck_assert_int_eq(symlink(real, link), 0);
    assert_refused(link, "symbolic link");
    ck_assert_int_eq(spool_files(real), 0);
    DIR *d = opendir(real);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d))) entries += e->d_name[0] != '.' || strlen(e->d_name) > 2;
    closedir(d);
    ck_assert_int_eq(entries, 0); /* no lease, no temp file either */
    /* writable by others */
    snprintf(open_dir, sizeof open_dir, "%s/open", dir);
    ck_assert_int_eq(mkdir(open_dir, 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    assert_refused(open_dir, "writable by group or others (mode 0777)");
    ck_assert_int_eq(chmod(open_dir, 0770), 0);
    assert_refused(open_dir, "writable by group or others (mode 0770)");
    ck_assert_int_eq(chmod(open_dir, 01777), 0); /* sticky does not make it ours alone */
    assert_refused(open_dir, "writable by group or others");
    /* somebody else's (only root can make one here) */
    if (geteuid() == 0) {
        snprintf(theirs, sizeof theirs, "%s/theirs", dir);
        ck_assert_int_eq(mkdir(theirs, 0700), 0);
        ck_assert_int_eq(chown(theirs, 65534, 65534), 0);
        assert_refused(theirs, "owned by uid 65534");
    }
    /* a safe one is used; 0750 and 0500-like read bits for others are fine */
    ck_assert_int_eq(chmod(open_dir, 0755), 0);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(opts(ph_ingest_url(srv), open_dir, NULL));
    ck_assert_int_eq(posthog_capture_durable(c, "u", "x", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

static int scan_fails(void) {
    errno = EOVERFLOW;
    return -1;
}

/* A listing of the spool directory that fails (EOVERFLOW: what a 32-bit
 * build without large-file support got from readdir) is never silent: the
 * client logs an error naming the directory and the cause, and counts it
 * (spool_scan_errors). Once listings work again the files are found. */
START_TEST(failed_directory_listing_reported) {
    char *dir = tmp_dir();
    it_errlog_t logs = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    char *down = it_url_of_port(it_closed_port());
    posthog__spool_faults.before_scan = scan_fails;
    posthog_options_t *o = opts(down, dir, NULL);
    posthog_options_set_log(o, it_errlog_fn, &logs);
    posthog_client_t *c = it_client(o);
    posthog__spool_faults.before_scan = NULL;
    ck_assert_uint_ge(posthog_get_stat(c, "spool_scan_errors"), 1);
    pthread_mutex_lock(&logs.mu);
    ck_assert_int_ge(logs.errors, 1);
    ck_assert_msg(strstr(logs.last, dir) && strstr(logs.last, "could not be listed") &&
                      strstr(logs.last, strerror(EOVERFLOW)) && strstr(logs.last, "spool_scan_errors"),
                  "message: %s", logs.last);
    pthread_mutex_unlock(&logs.mu);
    posthog_client_free(c);
    free(down);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

/* A spool file image (docs/spool-format.md) of one event, built here. */
static size_t spool_image(unsigned char *b, size_t cap, const char *event) {
    size_t n = strlen(event), size = 20 + 12 + n;
    ck_assert_uint_le(size, cap);
    memset(b, 0, 20);
    memcpy(b, "PHSP", 4);
    b[4] = 1;
    b[8] = 1;
    int64_t now = it_wall_ms();
    for (int i = 0; i < 8; i++) b[12 + i] = (unsigned char)((uint64_t)now >> (8 * i));
    uint32_t v[3] = {0x52485050u, (uint32_t)n, (uint32_t)crc32(0, (const Bytef *)event, (uInt)n)};
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 4; i++) b[20 + 4 * j + i] = (unsigned char)(v[j] >> (8 * i));
    memcpy(b + 32, event, n);
    return size;
}

/* A symlink planted at a spool file's name is never followed: the file it
 * points to (here a valid spool image elsewhere) is neither read, sent nor
 * deleted. */
START_TEST(planted_spool_symlink_not_followed) {
    char *dir = tmp_dir();
    char *outside = tmp_dir();
    char victim[600], planted[600];
    snprintf(victim, sizeof victim, "%s/ph-0000000000001-0000000001-0000000001.spool", outside);
    unsigned char img[512];
    size_t n = spool_image(img, sizeof img,
                           "{\"uuid\":\"01900000-0000-7000-8000-000000000001\","
                           "\"event\":\"planted\",\"distinct_id\":\"d\","
                           "\"timestamp\":\"2026-01-01T00:00:00.000Z\","
                           "\"properties\":{\"who\":\"planted\"}}");
    FILE *f = fopen(victim, "wb");
    ck_assert_uint_eq(fwrite(img, 1, n, f), n);
    fclose(f);
    snprintf(planted, sizeof planted, "%s/ph-0000000000001-0000000001-0000000001.spool", dir);
    ck_assert_int_eq(symlink(victim, planted), 0);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(opts(ph_ingest_url(srv), dir, NULL));
    ck_assert_int_eq(posthog_flush(c, 5000), POSTHOG_OK);
    ck_assert_int_eq(cap_seq(c, "live", 0), POSTHOG_OK); /* the client works */
    ck_assert_int_eq(posthog_flush(c, 5000), POSTHOG_OK);
    posthog_client_free(c);
    ck_assert_int_eq(it_summary_num(srv, "events"), 1);
    it_assert_exactly_once(srv, "live", 1);
    it_stop(srv);
    struct stat st;
    ck_assert_int_eq(stat(victim, &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, n);
    it_rm_rf(dir);
    it_rm_rf(outside);
    free(dir);
    free(outside);
}
END_TEST

/* ------------------------------------------------------------ crash handler */

/* The crash handler used to open its temp file with O_TRUNC and without
 * O_NOFOLLOW: a symlink planted at that name let a crash overwrite the
 * file it pointed to. */
START_TEST(crash_temp_symlink_not_followed) {
    enum { M = 10 };
    char *dir = tmp_dir();
    char *outside = tmp_dir();
    char victim[600];
    snprintf(victim, sizeof victim, "%s/victim", outside);
    FILE *vf = fopen(victim, "w");
    fputs("precious", vf);
    fclose(vf);
    char *down = it_url_of_port(it_closed_port());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(20);
        /* the temp names this process's crash handler will use, one per slot */
        for (int slot = 0; slot < 8; slot++) {
            char p[700];
            snprintf(p, sizeof p, "%s/.tmp-%ld-crash%d", dir, (long)getpid(), slot);
            if (symlink(victim, p)) _exit(9);
        }
        posthog_options_t *o = opts(down, dir, NULL);
        posthog_options_set(o, "crash_handler", "1");
        posthog_options_set(o, "flush_at", "1000");
        posthog_options_set(o, "flush_interval_ms", "60000");
        posthog_client_t *c = posthog_client_new(o, NULL, 0);
        if (!c) _exit(2);
        usleep(300 * 1000); /* the flusher's first turn is over: events stay queued */
        for (long i = 0; i < M; i++)
            if (cap_seq(c, "crash", i) != POSTHOG_OK) _exit(3);
        if (IT_SANITIZER) {
            raise(SIGSEGV);
        } else {
            volatile int *volatile np = NULL;
            *np = 1;
        }
        _exit(5);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(!WIFEXITED(st) || (WEXITSTATUS(st) != 9 && WEXITSTATUS(st) != 2 &&
                                     WEXITSTATUS(st) != 3),
                  "child setup failed: %d", WEXITSTATUS(st));
    struct stat vs;
    ck_assert_int_eq(stat(victim, &vs), 0);
    char buf[64] = "";
    vf = fopen(victim, "r");
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, vf));
    fclose(vf);
    ck_assert_msg(!strcmp(buf, "precious"), "the crash handler wrote through a symlink: %zu bytes",
                  (size_t)vs.st_size);
    /* the queue was saved all the same, into a real file */
    ck_assert_int_eq(spool_files(dir), 1);
    ph_ingest_t *srv = it_server(NULL);
    posthog_client_t *c = it_client(opts(ph_ingest_url(srv), dir, NULL));
    ck_assert_int_eq(it_wait_stat_ge(c, "replayed", M, 10000), 0);
    it_assert_exactly_once(srv, "crash", M);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    it_rm_rf(outside);
    free(dir);
    free(outside);
    free(down);
}
END_TEST

/* ------------------------------------------------------------ answers that are not deliveries */

/* A 3xx, or a 2xx page that is not the capture service's answer (a captive
 * portal), used to count as rejected or delivered and delete the batch's
 * disk copy. Now they are retried; the events arrive once. v0 and v1. */
START_TEST(redirect_and_portal_are_not_answers) {
    static const char *const modes[] = {"v0", "v1"};
    static const char *const scripts[] = {
        "{\"script\":[{\"status\":302}]}",
        "{\"script\":[{\"status\":301},{\"status\":307}]}",
        ("{\"script\":[{\"status\":200,\"body\":\"<html>Sign in to the Wi-Fi</html>\","
         "\"content_type\":\"text/html\"}]}"),
        "{\"script\":[{\"status\":202,\"body\":\"\"}]}",
    };
    for (int m = 0; m < 2; m++) {
        for (size_t k = 0; k < sizeof scripts / sizeof scripts[0]; k++) {
            for (int always = 0; always < 2; always++) {
                enum { N = 6 };
                char *dir = tmp_dir();
                ph_ingest_t *srv = it_server(NULL);
                it_drops_t *d = it_drops_new();
                posthog_options_t *o = opts(ph_ingest_url(srv), dir, modes[m]);
                it_set(o, "max_retries", "3");
                it_set(o, "flush_interval_ms", "60000");
                if (always) it_set(o, "durability", "always");
                it_drops_attach(o, d);
                posthog_client_t *c = it_client(o);
                it_faults(srv, scripts[k]);
                for (long i = 0; i < N; i++) ck_assert_int_eq(cap_seq(c, "ans", i), POSTHOG_OK);
                ck_assert_int_eq(posthog_flush(c, 10000), POSTHOG_OK);
                posthog_stats_t s = it_stats(c);
                ck_assert_msg(s.dropped_total == 0 && it_drops_total(d) == 0,
                              "%s %s always=%d: %llu dropped", modes[m], scripts[k], always,
                              (unsigned long long)s.dropped_total);
                ck_assert_msg(it_summary_num(srv, "events") == N,
                              "%s %s always=%d: the server accepted %lld of %d (sent %llu)",
                              modes[m], scripts[k], always, it_summary_num(srv, "events"), N,
                              (unsigned long long)s.sent);
                it_assert_exactly_once(srv, "ans", N);
                ck_assert_uint_eq(s.sent, N);
                ck_assert_uint_eq(s.spool_pending, 0);
                ck_assert_int_eq(spool_files(dir), 0);
                posthog_client_free(c);
                it_drops_free(d);
                it_stop(srv);
                it_rm_rf(dir);
                free(dir);
            }
        }
    }
}
END_TEST

/* durability=always: while a batch is answered by a portal page, its file
 * stays on disk (a kill -9 then loses nothing). */
START_TEST(portal_answer_keeps_the_file) {
    enum { N = 5 };
    char *dir = tmp_dir();
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = opts(ph_ingest_url(srv), dir, "v0");
    it_set(o, "durability", "always");
    it_set(o, "max_retries", "5");
    it_set(o, "retry_backoff_ms", "5000"); /* the retry waits: the file must be there */
    it_set(o, "flush_interval_ms", "60000");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"status\":200,\"body\":\"<html>portal</html>\"}]}");
    for (long i = 0; i < N; i++) ck_assert_int_eq(cap_seq(c, "keep", i), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 0), POSTHOG_E_TIMEOUT); /* seals and sends */
    ck_assert_int_eq(it_wait_requests(srv, 1, 5000), 0);
    it_sleep_ms(200);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 0);
    ck_assert_uint_eq(s.spool_pending, N);
    ck_assert_int_eq(spool_files(dir), 1);
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    it_assert_exactly_once(srv, "keep", N);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------ parts of a batch keep a disk copy */

/* After a 413 split, the batch's disk copy was deleted and the halves never
 * written: durability=always lost them to a kill -9. Each half now has its
 * own file until it is delivered. */
START_TEST(split_halves_keep_disk_copies) {
    enum { N = 8 };
    char *dir = tmp_dir();
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = opts(ph_ingest_url(srv), dir, "v0");
    it_set(o, "durability", "always");
    it_set(o, "flush_interval_ms", "60000");
    it_set(o, "request_timeout_ms", "30000");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"status\":413},{\"delay_ms\":1500},{\"delay_ms\":300}]}");
    for (long i = 0; i < N; i++) ck_assert_int_eq(cap_seq(c, "half", i), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 0), POSTHOG_E_TIMEOUT);
    /* the 413 answered, the first half in flight (its answer delayed) */
    ck_assert_int_eq(it_wait_stat_ge(c, "requests", 2, 5000), 0);
    posthog_stats_t s = it_stats(c);
    ck_assert_uint_eq(s.sent, 0);
    /* the halves are appended (fsynced) to the segment, the batch marked done */
    ck_assert_msg(spool_files(dir) == 1 && it_spool_events(dir) == N && s.spool_pending == N,
                  "while the halves are sent: %d files, %llu events pending", spool_files(dir),
                  (unsigned long long)s.spool_pending);
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    it_assert_exactly_once(srv, "half", N);
    s = it_stats(c);
    ck_assert_uint_eq(s.spooled, N); /* written once as spooled; the halves are copies */
    ck_assert_uint_eq(s.spool_pending, 0);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

/* v1: the events a results map asks to retry keep a disk copy too. */
START_TEST(partial_retry_keeps_disk_copy) {
    enum { N = 4 };
    char *dir = tmp_dir();
    ph_ingest_t *srv = it_server(NULL);
    posthog_options_t *o = opts(ph_ingest_url(srv), dir, "v1");
    it_set(o, "durability", "always");
    it_set(o, "flush_interval_ms", "60000");
    it_set(o, "max_retries", "3");
    posthog_client_t *c = it_client(o);
    it_faults(srv, "{\"script\":[{\"verdicts\":[{\"match\":{\"index\":1},\"result\":\"retry\"}],"
                   "\"retry_after\":\"2\"}]}");
    for (long i = 0; i < N; i++) ck_assert_int_eq(cap_seq(c, "part", i), POSTHOG_OK);
    ck_assert_int_eq(posthog_flush(c, 0), POSTHOG_E_TIMEOUT);
    ck_assert_int_eq(it_wait_stat_ge(c, "sent", N - 1, 5000), 0);
    it_sleep_ms(100);
    posthog_stats_t s = it_stats(c);
    ck_assert_msg(spool_files(dir) == 1 && s.spool_pending == 1,
                  "while the retry waits: %d files, %llu events pending", spool_files(dir),
                  (unsigned long long)s.spool_pending);
    ck_assert_int_eq(posthog_flush(c, 15000), POSTHOG_OK);
    it_assert_exactly_once(srv, "part", N);
    ck_assert_uint_eq(it_stats(c).spool_pending, 0);
    ck_assert_int_eq(spool_files(dir), 0);
    posthog_client_free(c);
    it_stop(srv);
    it_rm_rf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("integration_disk");
    TCase *tc = tcase_create("disk");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, outage_holds_bounded_descriptors);
    tcase_add_test(tc, shutdown_without_free_releases_files);
    tcase_add_test(tc, relative_storage_path_survives_chdir);
    tcase_add_test(tc, unsafe_storage_path_refused);
    tcase_add_test(tc, planted_spool_symlink_not_followed);
#ifndef POSTHOG_NO_CRASH_HANDLER
    tcase_add_test(tc, crash_temp_symlink_not_followed);
#else
    (void)crash_temp_symlink_not_followed; /* needs the crash handler */
#endif
    tcase_add_test(tc, redirect_and_portal_are_not_answers);
    tcase_add_test(tc, portal_answer_keeps_the_file);
    tcase_add_test(tc, split_halves_keep_disk_copies);
    tcase_add_test(tc, partial_retry_keeps_disk_copy);
    tcase_add_test(tc, failed_directory_listing_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return it_run_suite(suite()); }
