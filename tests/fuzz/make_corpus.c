/*
 * Writes the seed corpus of fuzz_spool into a directory (default
 * tests/fuzz/corpus_spool): valid files made by posthog__spool_write (one
 * batch, version 1) and segments made by posthog__spool_append (version 2:
 * batches, done markers), and a few hand-corrupted variants. Run once; the
 * outputs are committed.
 *
 *   cc -Iinclude -Isrc tests/fuzz/make_corpus.c build/libposthog.a -lz -lcurl -lcjson -lpthread -o /tmp/mk
 *   /tmp/mk tests/fuzz/corpus_spool
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

static const char *out;

static void emit(const char *name, const unsigned char *b, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", out, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(b, 1, n, f) != n) {
        perror(p);
        exit(1);
    }
    fclose(f);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) exit(1);
    fclose(f);
    return b;
}

/* Writes events with posthog__spool_write and returns the file image. */
static unsigned char *make(ph_spool_t *s, const char **ev, uint32_t n, size_t *size) {
    size_t lens[16];
    for (uint32_t i = 0; i < n; i++) lens[i] = strlen(ev[i]);
    ph_spool_loss_t loss = {0};
    ph_spool_file_t *f = posthog__spool_write(s, ev, lens, n, &loss);
    if (!f) {
        perror("spool_write");
        exit(1);
    }
    unsigned char *b = slurp(f->path, size);
    posthog__spool_remove(s, f);
    return b;
}

/* A segment of `batches` batches of the events; batch `done` (or none: -1)
 * delivered (marked done). Returns the segment's image. */
static unsigned char *make_seg(ph_spool_t *s, const char **ev, uint32_t n, int batches, int done,
                               size_t *size) {
    size_t lens[16];
    for (uint32_t i = 0; i < n; i++) lens[i] = strlen(ev[i]);
    ph_spool_file_t *f[8];
    for (int k = 0; k < batches; k++) {
        ph_spool_loss_t loss = {0};
        if (!(f[k] = posthog__spool_append(s, ev, lens, n, false, &loss))) {
            perror("spool_append");
            exit(1);
        }
    }
    if (done >= 0) posthog__spool_remove(s, f[done]);
    unsigned char *b = slurp(f[done == 0 ? 1 : 0]->path, size);
    for (int k = 0; k < batches; k++)
        if (k != done) posthog__spool_remove(s, f[k]); /* the last one unlinks it */
    return b;
}

int main(int argc, char **argv) {
    out = argc > 1 ? argv[1] : "tests/fuzz/corpus_spool";
    char tmpl[] = "/tmp/ph-mkcorpus-XXXXXX";
    if (!mkdtemp(tmpl)) return 1;
    ph_spool_t s;
    if (posthog__spool_open(&s, tmpl, UINT64_C(1) << 30, 0, NULL, 0)) return 1;
    const char *one[] = {"{\"uuid\":\"0190a000-0000-7000-8000-000000000001\",\"event\":\"e\","
                         "\"distinct_id\":\"d\",\"timestamp\":\"2024-01-01T00:00:00.000Z\","
                         "\"properties\":{\"i\":1}}"};
    const char *three[] = {"{\"event\":\"a\",\"distinct_id\":\"x\"}",
                           "{\"event\":\"b\",\"properties\":{\"s\":\"\\u00e9\\n\",\"n\":[1,2.5e3,null,true]}}",
                           "{\"event\":\"c\",\"$set\":{\"k\":\"v\"},\"$set_once\":{}}"};
    const char *unicode[] = {"{\"event\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"distinct_id\":\"\\ud83d\\ude00\"}"};
    size_t n;
    unsigned char *b = make(&s, NULL, 0, &n);
    emit("valid-empty", b, n);
    free(b);
    b = make(&s, one, 1, &n);
    emit("valid-one", b, n);
    /* hand-corrupted variants of valid-one */
    unsigned char *c = malloc(n + 8);
    memcpy(c, b, n);
    c[PH_SPOOL_HDR + 12 + 5] ^= 0x01;
    emit("bad-crc", c, n);
    memcpy(c, b, n);
    c[PH_SPOOL_HDR] = 'X';
    emit("bad-record-magic", c, n);
    memcpy(c, b, n);
    c[PH_SPOOL_HDR + 4] = 0xff, c[PH_SPOOL_HDR + 5] = 0xff, c[PH_SPOOL_HDR + 6] = 0xff,
    c[PH_SPOOL_HDR + 7] = 0x7f;
    emit("huge-length", c, n);
    memcpy(c, b, n);
    c[4] = 3; /* 1: one batch, 2: a segment */
    emit("bad-version", c, n);
    memcpy(c, b, n);
    c[8] = 9;
    emit("count-too-high", c, n);
    emit("truncated-record", b, n - 7);
    emit("truncated-header", b, 11);
    memcpy(c, b, n);
    memcpy(c + n, "PPHR\0\0", 6);
    emit("trailing-garbage", c, n + 6);
    memset(c, 0, 64);
    emit("zeros", c, 64);
    free(c);
    free(b);
    b = make(&s, three, 3, &n);
    emit("valid-three", b, n);
    free(b);
    b = make(&s, unicode, 1, &n);
    emit("valid-unicode", b, n);
    free(b);
    /* segments (version 2) */
    b = make_seg(&s, three, 3, 3, 1, &n);
    emit("seg-valid-three-batches-one-done", b, n);
    c = malloc(n + 32);
    memcpy(c, b, n);
    emit("seg-torn-tail", c, n - 9);
    size_t first = PH_SPOOL_HDR; /* the first batch's PPHB record */
    c[first + 8] ^= 0x40;         /* its CRC: the events that follow are orphans */
    emit("seg-bad-batch-crc", c, n);
    memcpy(c, b, n);
    c[first + 12] = 9; /* its count, so its CRC no longer matches: an orphaned batch */
    emit("seg-bad-batch-count", c, n);
    memcpy(c, b, n);
    c[n - 1] ^= 0x01; /* the done marker's offset: marks nothing */
    emit("seg-bad-done", c, n);
    free(c);
    free(b);
    b = make_seg(&s, one, 1, 2, -1, &n);
    emit("seg-valid-two-batches", b, n);
    free(b);
    posthog__spool_close(&s);
    rmdir(tmpl);
    return 0;
}
