/*
 * ingest_harness: spawns tools/ingest-server as a child process and talks
 * to its control API with libcurl. The port is learned from the port file
 * the server writes atomically once it listens.
 */
#include "ingest_harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PH_INGEST_SERVER_PATH
#define PH_INGEST_SERVER_PATH "posthog-ingest-server"
#endif

#define MAX_ARGS 64

struct ph_ingest {
    pid_t pid;
    int port;
    char dir[64];
    char port_file[96];
    char url[64];
};

typedef struct buf {
    char *p;
    size_t n;
} buf_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf_t *b = ud;
    size_t n = size * nmemb;
    char *np = realloc(b->p, b->n + n + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, ptr, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One control call; returns the HTTP status (or -1) and the body in *out. */
static long control(const ph_ingest_t *s, const char *method, const char *path, const char *body,
                    char **out)
{
    char url[160];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    buf_t b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out)
        *out = b.p;
    else
        free(b.p);
    return status;
}

static cJSON *get_json(ph_ingest_t *s, const char *path, const char *member)
{
    char *body = NULL;
    if (!s || control(s, "GET", path, NULL, &body) != 200) {
        free(body);
        return NULL;
    }
    cJSON *root = cJSON_Parse(body);
    free(body);
    if (!root || !member)
        return root;
    cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(root, member);
    cJSON_Delete(root);
    return m;
}

static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%d", &port) != 1)
        port = -1;
    fclose(f);
    return port;
}

ph_ingest_t *ph_ingest_start(const char *const *extra_args)
{
    static int curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    ph_ingest_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->dir, sizeof s->dir, "/tmp/ph-ingest-XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("ph_ingest_start: mkdtemp");
        free(s);
        return NULL;
    }
    snprintf(s->port_file, sizeof s->port_file, "%s/port", s->dir);
    const char *bin = getenv("PH_INGEST_SERVER");
    if (!bin || !bin[0])
        bin = PH_INGEST_SERVER_PATH;

    const char *argv[MAX_ARGS + 10];
    int argc = 0;
    argv[argc++] = bin;
    argv[argc++] = "--host";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--port-file";
    argv[argc++] = s->port_file;
    argv[argc++] = "--quiet";
    for (int i = 0; extra_args && extra_args[i] && i < MAX_ARGS; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;

    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0) {
        perror("ph_ingest_start: fork");
        rmdir(s->dir);
        free(s);
        return NULL;
    }
    if (s->pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, STDOUT_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int waited = 0; waited < 10000; waited += 10) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            fprintf(stderr, "ph_ingest_start: %s exited early (status %d)\n", bin, st);
            s->pid = -1;
            ph_ingest_stop(s);
            return NULL;
        }
        if (s->port <= 0 && (s->port = read_port(s->port_file)) > 0)
            snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
        if (s->port > 0 && control(s, "GET", "/_health", NULL, NULL) == 200)
            return s;
        sleep_ms(10);
    }
    fprintf(stderr, "ph_ingest_start: %s did not come up within 10 s\n", bin);
    ph_ingest_stop(s);
    return NULL;
}

const char *ph_ingest_url(const ph_ingest_t *s)
{
    return s ? s->url : NULL;
}

int ph_ingest_port(const ph_ingest_t *s)
{
    return s ? s->port : -1;
}

int ph_ingest_set_faults(ph_ingest_t *s, const char *json)
{
    return s && control(s, "POST", "/_control/faults", json, NULL) == 200 ? 0 : -1;
}

cJSON *ph_ingest_requests(ph_ingest_t *s)
{
    return get_json(s, "/_control/requests", "requests");
}

cJSON *ph_ingest_events(ph_ingest_t *s)
{
    return get_json(s, "/_control/events", "events");
}

cJSON *ph_ingest_summary(ph_ingest_t *s)
{
    return get_json(s, "/_control/summary", NULL);
}

cJSON *ph_ingest_faults(ph_ingest_t *s)
{
    return get_json(s, "/_control/faults", NULL);
}

static int wait_counter(ph_ingest_t *s, const char *name, int n, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        cJSON *sum = ph_ingest_summary(s);
        const cJSON *ev = sum ? cJSON_GetObjectItemCaseSensitive(sum, name) : NULL;
        double got = cJSON_IsNumber(ev) ? ev->valuedouble : -1;
        cJSON_Delete(sum);
        if (got >= n)
            return 0;
        if (waited >= timeout_ms || !sum)
            return -1;
        sleep_ms(20);
    }
}

int ph_ingest_wait_requests(ph_ingest_t *s, int n, int timeout_ms)
{
    return wait_counter(s, "requests", n, timeout_ms);
}

int ph_ingest_wait_events(ph_ingest_t *s, int n, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        cJSON *sum = ph_ingest_summary(s);
        const cJSON *ev = sum ? cJSON_GetObjectItemCaseSensitive(sum, "events") : NULL;
        double got = cJSON_IsNumber(ev) ? ev->valuedouble : -1;
        cJSON_Delete(sum);
        if (got >= n)
            return 0;
        if (waited >= timeout_ms || !sum)
            return -1;
        sleep_ms(20);
    }
}

int ph_ingest_reset(ph_ingest_t *s)
{
    return s && control(s, "POST", "/_control/reset", "{}", NULL) == 200 ? 0 : -1;
}

int ph_ingest_stop(ph_ingest_t *s)
{
    if (!s)
        return 0;
    int rc = -1;
    if (s->pid > 0) {
        int st = 0;
        kill(s->pid, SIGTERM);
        pid_t r = 0;
        for (int waited = 0; waited < 5000 && (r = waitpid(s->pid, &st, WNOHANG)) == 0; waited += 10)
            sleep_ms(10);
        if (r == s->pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        } else {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
    }
    unlink(s->port_file);
    rmdir(s->dir);
    free(s);
    return rc;
}

int ph_ingest_set_flags(ph_ingest_t *s, const char *json)
{
    return s && control(s, "POST", "/_control/flags", json, NULL) == 200 ? 0 : -1;
}

cJSON *ph_ingest_flags_requests(ph_ingest_t *s)
{
    return get_json(s, "/_control/flags/requests", "requests");
}

int ph_ingest_set_definitions(ph_ingest_t *s, const char *json)
{
    return s && control(s, "POST", "/_control/flags/definitions", json, NULL) == 200 ? 0 : -1;
}

cJSON *ph_ingest_definitions_requests(ph_ingest_t *s)
{
    return get_json(s, "/_control/flags/definitions/requests", "requests");
}
