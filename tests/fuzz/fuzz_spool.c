/*
 * libFuzzer target for the spool reader (src/spool/spool.c, docs/spool-format.md).
 *
 * Every input goes through posthog__spool_parse (the in-memory reader).
 * Every 16th input is also written as a spool file into a private temp
 * directory and goes through the file path: posthog__spool_open (bytes
 * accounting), posthog__spool_adopt (header check, max_age, locking),
 * posthog__spool_take + posthog__spool_read, then remove/close.
 *
 * Invariants checked (abort on violation, so the fuzzer reports them):
 *  - every event handed to the callback lies inside the input and is a
 *    validated JSON object (starts with '{'),
 *  - parse returns the number of callbacks, never negative,
 *  - the file path delivers exactly what parse delivers for the same bytes
 *    (when the header is valid and the file was not expired).
 *
 * Built by tools/fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

typedef struct {
    const unsigned char *lo, *hi;
    long n;
    size_t bytes;
} fz_ctx_t;

static int on_event(const char *json, size_t len, void *ud) {
    fz_ctx_t *c = ud;
    if (c->lo && ((const unsigned char *)json < c->lo || (const unsigned char *)json + len > c->hi))
        abort();
    if (len < 2 || json[0] != '{') abort();
    c->n++;
    c->bytes += len;
    return 0;
}

static char *fz_dir;

static void cleanup(void) {
    if (!fz_dir) return;
    DIR *d = opendir(fz_dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
                continue;
            snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fz_dir);
}

static void file_path(const uint8_t *data, size_t size, const fz_ctx_t *mem) {
    if (!fz_dir) {
        static char t[] = "/tmp/ph-fuzz-spool-XXXXXX";
        if (!mkdtemp(t)) return;
        fz_dir = t;
        atexit(cleanup);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/ph-0000000000001-1-000001.spool", fz_dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    close(fd);
    ph_spool_t s;
    /* max_age a year: a fuzzed "created" field exercises both sides */
    if (posthog__spool_open(&s, fz_dir, UINT64_C(1) << 40, 365LL * 86400 * 1000, NULL, 0)) return;
    ph_spool_loss_t loss = {0};
    uint64_t adopted = posthog__spool_adopt(&s, &loss);
    ph_spool_file_t *f;
    long total = 0;
    int files = 0;
    while ((f = posthog__spool_take(&s))) {
        fz_ctx_t c = {0};
        long got = posthog__spool_read(f, on_event, &c, &loss);
        if (got < 0 || got != c.n) abort();
        total += got;
        files++;
        posthog__spool_remove(&s, f);
    }
    bool seg = size >= 6 && data[4] == PH_SPOOL_VERSION_SEG && data[5] == 0;
    if (files > 1 && !seg) abort(); /* a segment holds a batch per unit */
    if (files == 1 && total != mem->n) abort(); /* same bytes, same events */
    if (files == 0 && adopted) abort();
    if (posthog__spool_bytes(&s) != 0) abort();
    posthog__spool_close(&s);
    unlink(p); /* bad headers and expired files were removed by adopt already */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned long calls;
    fz_ctx_t c = {data, data + size, 0, 0};
    ph_spool_loss_t loss = {0};
    long got = posthog__spool_parse(data, size, on_event, &c, &loss);
    if (got < 0 || got != c.n) abort();
    if (c.bytes > size) abort();
    if (size >= 20 && (calls++ % 16) == 0) file_path(data, size, &c);
    return 0;
}
