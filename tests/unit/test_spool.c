/*
 * Unit tests of src/spool/spool.c, the disk-backed retry buffer
 * (docs/spool-format.md): framing round trip, every kind of damage
 * (truncation at every offset, single bit flips at every byte, bad lengths
 * and magics, bad headers, empty and zero-filled files), stray files and
 * stale temp files, max_bytes eviction order, max_age, ownership through
 * owner tags and leases (across processes, between two spools of one
 * process, racing adopters, release_all), directory checks, park/take
 * ordering and fault injection.
 *
 * Forked helpers never use Check: they report through their exit status.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "spool.h"
#include "util.h"

#define BIG UINT64_C(1) << 40

/* ------------------------------------------------------------ helpers */

typedef struct {
    char **ev;
    size_t *len;
    size_t n, cap;
    long stop_after; /* callback returns non-zero after this many; -1 never */
} sink_t;

static int sink_fn(const char *json, size_t len, void *ud) {
    sink_t *s = ud;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->ev = realloc(s->ev, s->cap * sizeof *s->ev);
        s->len = realloc(s->len, s->cap * sizeof *s->len);
        ck_assert(s->ev && s->len);
    }
    s->ev[s->n] = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(s->ev[s->n]);
    memcpy(s->ev[s->n], json, len);
    s->len[s->n] = len;
    s->n++;
    return s->stop_after >= 0 && (long)s->n >= s->stop_after;
}

static void sink_clear(sink_t *s) {
    for (size_t i = 0; i < s->n; i++) free(s->ev[i]);
    free(s->ev);
    free(s->len);
    memset(s, 0, sizeof *s);
    s->stop_after = -1;
}

#define SINK_INIT {NULL, NULL, 0, 0, -1}

typedef struct {
    char **ev;
    size_t *len;
    uint32_t n;
} evset_t;

/* n events; event i has a padding of pad bytes. */
static evset_t make_events(uint32_t n, size_t pad) {
    evset_t e = {calloc(n ? n : 1, sizeof(char *)), calloc(n ? n : 1, sizeof(size_t)), n};
    for (uint32_t i = 0; i < n; i++) {
        size_t cap = pad + 256;
        e.ev[i] = malloc(cap);
        ck_assert_ptr_nonnull(e.ev[i]);
        int k = snprintf(e.ev[i], cap,
                         "{\"uuid\":\"01900000-0000-7000-8000-%012u\",\"event\":\"e%u\","
                         "\"distinct_id\":\"d\",\"timestamp\":\"2024-01-01T00:00:00.000Z\","
                         "\"properties\":{\"i\":%u,\"pad\":\"",
                         i, i, i);
        memset(e.ev[i] + k, 'a' + (char)(i % 26), pad);
        k += (int)pad;
        memcpy(e.ev[i] + k, "\"}}", 4);
        e.len[i] = (size_t)k + 3;
    }
    return e;
}

static void free_events(evset_t *e) {
    for (uint32_t i = 0; i < e->n; i++) free(e->ev[i]);
    free(e->ev);
    free(e->len);
}

static char *make_dir(void) {
    char *t = strdup("/tmp/ph-spool-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t));
    return t;
}

static void rm_rf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

/* Number of directory entries whose name starts with prefix ("" = all, not
 * . .. and not the leases of open spools). */
static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!*prefix && !strncmp(e->d_name, ".lease-", 7)) continue;
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    }
    closedir(d);
    return n;
}

static int exists(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* Whether spool file `stem` ("ph-<ms>-<pid>-<seq>") is in dir, untagged
 * (stem.spool) or with an owner's tag (stem.<tag>.spool). */
static int exists_stem(const char *dir, const char *stem) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t l = strlen(stem);
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, stem, l) && e->d_name[l] == '.' &&
            !strcmp(e->d_name + strlen(e->d_name) - 6, ".spool"))
            found = 1;
    closedir(d);
    return found;
}

/* The stem of a spool file's name (without its tag and ".spool"). */
static void stem_of(char *out, size_t cap, const char *name) {
    const char *dot = strchr(name, '.');
    snprintf(out, cap, "%.*s", (int)(dot ? dot - name : (long)strlen(name)), name);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void put_file(const char *dir, const char *name, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    if (n) ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

/* A valid spool file image of the events (built independently of spool.c). */
static unsigned char *build_image(const evset_t *e, size_t *n, int64_t created) {
    size_t size = PH_SPOOL_HDR;
    for (uint32_t i = 0; i < e->n; i++) size += PH_SPOOL_REC_HDR + e->len[i];
    unsigned char *b = calloc(1, size);
    memcpy(b, "PHSP", 4);
    b[4] = 1;
    for (int i = 0; i < 4; i++) b[8 + i] = (unsigned char)(e->n >> (8 * i));
    for (int i = 0; i < 8; i++) b[12 + i] = (unsigned char)((uint64_t)created >> (8 * i));
    size_t o = PH_SPOOL_HDR;
    for (uint32_t k = 0; k < e->n; k++) {
        uint32_t crc = (uint32_t)crc32(0, (const Bytef *)e->ev[k], (uInt)e->len[k]);
        uint32_t v[3] = {PH_SPOOL_REC_MAGIC, (uint32_t)e->len[k], crc};
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 4; i++) b[o + 4 * j + i] = (unsigned char)(v[j] >> (8 * i));
        memcpy(b + o + 12, e->ev[k], e->len[k]);
        o += PH_SPOOL_REC_HDR + e->len[k];
    }
    *n = size;
    return b;
}

static void assert_prefix(const sink_t *s, const evset_t *e, size_t n) {
    ck_assert_uint_eq(s->n, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(s->len[i], e->len[i]);
        ck_assert(memcmp(s->ev[i], e->ev[i], e->len[i]) == 0);
    }
}

/* Every delivered event equals one of the originals, in increasing order. */
static void assert_subsequence(const sink_t *s, const evset_t *e) {
    uint32_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        while (k < e->n && !(s->len[i] == e->len[k] && !memcmp(s->ev[i], e->ev[k], e->len[k])))
            k++;
        ck_assert_msg(k < e->n, "delivered event %zu is not an original (or out of order)", i);
        k++;
    }
}

static ph_spool_file_t *write_ev(ph_spool_t *s, const evset_t *e, ph_spool_loss_t *loss) {
    ph_spool_loss_t l = {0};
    ph_spool_file_t *f =
        posthog__spool_write(s, (const char *const *)e->ev, e->len, e->n, loss ? loss : &l);
    ck_assert_msg(f != NULL, "spool_write failed: %s", strerror(errno));
    return f;
}

static const char *base(const ph_spool_file_t *f) { return strrchr(f->path, '/') + 1; }

/* ------------------------------------------------------------ round trip */

START_TEST(roundtrip_sizes) {
    static const struct {
        uint32_t n;
        size_t pad;
    } cases[] = {{0, 0}, {1, 0}, {1, 100}, {2, 3}, {10, 50}, {100, 10}, {1000, 1}, {1, 1 << 20},
                 {3, 1 << 20}};
    char *dir = make_dir();
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    uint64_t total = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        evset_t e = make_events(cases[c].n, cases[c].pad);
        ph_spool_file_t *f = write_ev(&s, &e, NULL);
        ck_assert_uint_eq(f->count, e.n);
        int64_t now = posthog__now_ms();
        ck_assert(f->created_ms <= now && f->created_ms > now - 60000);
        /* name: ph-<13 digits>-<pid>-<seq>.<tag: 16 hex digits>.spool */
        long long ms;
        long pid;
        unsigned long long seq;
        char tail[32] = "";
        ck_assert_int_eq(sscanf(base(f), "ph-%13lld-%ld-%llu%31s", &ms, &pid, &seq, tail), 4);
        ck_assert_uint_eq(strlen(tail), 1 + 16 + 6);
        ck_assert_int_eq(tail[0], '.');
        ck_assert_uint_eq(strspn(tail + 1, "0123456789abcdef"), 16);
        ck_assert_str_eq(tail + 17, ".spool");
        ck_assert_str_eq(f->name, base(f));
        ck_assert_int_eq(pid, (long)getpid());
        ck_assert_int_eq(ms, f->created_ms);
        ck_assert_int_eq(stat(f->path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        ck_assert_uint_eq((uint64_t)st.st_size, f->bytes);
        total += f->bytes;
        ck_assert_uint_eq(posthog__spool_bytes(&s), total);

        sink_t k = SINK_INIT;
        ph_spool_loss_t loss = {0};
        ck_assert_int_eq(posthog__spool_read(f, sink_fn, &k, &loss), (long)e.n);
        ck_assert_uint_eq(loss.corrupt, 0);
        assert_prefix(&k, &e, e.n);
        sink_clear(&k);

        /* the image equals an independently built one (except created) */
        size_t n, n2;
        unsigned char *img = slurp(f->path, &n);
        unsigned char *ref = build_image(&e, &n2, f->created_ms);
        ck_assert_uint_eq(n, n2);
        ck_assert(memcmp(img, ref, n) == 0);
        ck_assert_int_eq(posthog__spool_parse(img, n, sink_fn, &k, &loss), (long)e.n);
        ck_assert_uint_eq(loss.corrupt, 0);
        assert_prefix(&k, &e, e.n);
        sink_clear(&k);
        /* a NULL callback counts too */
        ck_assert_int_eq(posthog__spool_parse(img, n, NULL, NULL, &loss), (long)e.n);
        free(img);
        free(ref);
        posthog__spool_remove(&s, f);
        total -= n;
        ck_assert_uint_eq(posthog__spool_bytes(&s), total);
        free_events(&e);
    }
    ck_assert_int_eq(count_entries(dir, ""), 0);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* A callback that stops early: the events after it are not delivered. */
START_TEST(parse_callback_stop) {
    evset_t e = make_events(5, 4);
    size_t n;
    unsigned char *img = build_image(&e, &n, 1);
    sink_t k = SINK_INIT;
    k.stop_after = 2;
    ph_spool_loss_t loss = {0};
    long got = posthog__spool_parse(img, n, sink_fn, &k, &loss);
    ck_assert_uint_eq(k.n, 2);
    ck_assert_int_le(got, 2);
    sink_clear(&k);
    free(img);
    free_events(&e);
}
END_TEST

/* ------------------------------------------------------------ damage */

START_TEST(truncate_every_offset_parse) {
    evset_t e = make_events(4, 7);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    size_t ends[5]; /* end offset of the header and of each record */
    ends[0] = PH_SPOOL_HDR;
    for (uint32_t i = 0; i < e.n; i++) ends[i + 1] = ends[i] + PH_SPOOL_REC_HDR + e.len[i];
    ck_assert_uint_eq(ends[4], n);
    for (size_t cut = 0; cut <= n; cut++) {
        /* a copy of exactly `cut` bytes so ASan sees any overread */
        unsigned char *b = malloc(cut ? cut : 1);
        memcpy(b, img, cut);
        sink_t k = SINK_INIT;
        ph_spool_loss_t loss = {0};
        long got = posthog__spool_parse(b, cut, sink_fn, &k, &loss);
        if (cut < PH_SPOOL_HDR) {
            ck_assert_int_eq(got, 0);
            ck_assert_uint_eq(loss.corrupt, 1);
        } else {
            size_t intact = 0;
            while (intact < 4 && ends[intact + 1] <= cut) intact++;
            ck_assert_msg(got == (long)intact, "cut %zu: got %ld want %zu", cut, got, intact);
            assert_prefix(&k, &e, intact);
            ck_assert_msg(loss.corrupt == 4 - intact, "cut %zu: corrupt %u want %zu", cut,
                          loss.corrupt, 4 - intact);
        }
        sink_clear(&k);
        free(b);
    }
    free(img);
    free_events(&e);
}
END_TEST

/* The same through the file path: adopt + take + read, at every offset. */
START_TEST(truncate_every_offset_files) {
    evset_t e = make_events(3, 5);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    char *dir = make_dir();
    for (size_t cut = 0; cut <= n; cut++) {
        put_file(dir, "ph-0000000000001-1-000001.spool", img, cut);
        ph_spool_t s;
        ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
        ph_spool_loss_t loss = {0};
        uint64_t adopted = posthog__spool_adopt(&s, &loss);
        if (cut < PH_SPOOL_HDR) {
            ck_assert_uint_eq(adopted, 0);
            ck_assert_uint_eq(loss.corrupt, 1);
            ck_assert_ptr_null(posthog__spool_take(&s));
            ck_assert_int_eq(count_entries(dir, ""), 0); /* bad header: deleted */
        } else {
            /* pending counts never exceed what the bytes could hold
             * (a record is at least its header and "{}") */
            uint64_t can_hold = (cut - PH_SPOOL_HDR) / (PH_SPOOL_REC_HDR + 2);
            uint64_t expect = can_hold < 3 ? can_hold : 3;
            ck_assert_uint_eq(adopted, expect);
            ck_assert_uint_eq(loss.corrupt, 0);
            ph_spool_file_t *f = posthog__spool_take(&s);
            ck_assert_ptr_nonnull(f);
            ck_assert_uint_eq(f->count, expect);
            sink_t k = SINK_INIT;
            long got = posthog__spool_read(f, sink_fn, &k, &loss);
            ck_assert_int_ge(got, 0);
            ck_assert_int_le(got, 3);
            assert_prefix(&k, &e, (size_t)got);
            ck_assert_uint_eq(loss.corrupt, 3 - (uint32_t)got);
            ck_assert_int_eq(got == 3, cut == n);
            sink_clear(&k);
            posthog__spool_remove(&s, f);
        }
        ck_assert_int_eq(count_entries(dir, ""), 0);
        posthog__spool_close(&s);
    }
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

START_TEST(bitflip_every_byte) {
    evset_t e = make_events(4, 6);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    size_t starts[5];
    starts[0] = PH_SPOOL_HDR;
    for (uint32_t i = 0; i < e.n; i++) starts[i + 1] = starts[i] + PH_SPOOL_REC_HDR + e.len[i];
    unsigned char *b = malloc(n);
    for (size_t at = 0; at < n; at++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, img, n);
            b[at] ^= (unsigned char)(1u << bit);
            sink_t k = SINK_INIT;
            ph_spool_loss_t loss = {0};
            long got = posthog__spool_parse(b, n, sink_fn, &k, &loss);
            ck_assert_int_eq(got, (long)k.n);
            assert_subsequence(&k, &e);
            if (at < 6) { /* file magic, version */
                ck_assert_int_eq(got, 0);
                ck_assert_uint_eq(loss.corrupt, 1);
            } else if (at < 8 || at >= 12) {
                if (at < PH_SPOOL_HDR) { /* flags, created: not checked by parse */
                    ck_assert_int_eq(got, 4);
                    ck_assert_uint_eq(loss.corrupt, 0);
                } else {
                    size_t r = 0;
                    while (starts[r + 1] <= at) r++;
                    size_t off = at - starts[r];
                    ck_assert_msg(got < 4, "flip at %zu bit %d not detected", at, bit);
                    ck_assert_uint_ge(loss.corrupt, 4 - (uint32_t)got);
                    if (off >= 8) { /* crc or payload: only that record is lost */
                        ck_assert_int_eq(got, 3);
                        ck_assert_uint_eq(loss.corrupt, 1);
                    } else { /* magic or length: the rest of the file is lost */
                        ck_assert_int_eq(got, (long)r);
                        assert_prefix(&k, &e, r);
                    }
                }
            } else { /* count: the records are all there; a higher count is a loss */
                ck_assert_int_eq(got, 4);
                uint32_t cnt = (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 |
                               (uint32_t)b[11] << 24;
                if (cnt > 4 && cnt - 4 < (1u << 24))
                    ck_assert_uint_eq(loss.corrupt, cnt - 4);
            }
            sink_clear(&k);
        }
    }
    free(b);
    free(img);
    free_events(&e);
}
END_TEST

static void set32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

START_TEST(bad_lengths_and_magics) {
    evset_t e = make_events(3, 5);
    size_t n;
    unsigned char *img = build_image(&e, &n, 1);
    size_t r1 = PH_SPOOL_HDR + PH_SPOOL_REC_HDR + e.len[0]; /* second record */
    static const uint32_t lens[] = {0xffffffffu, 0x80000000u, PH_SPOOL_MAX_RECORD + 1,
                                    PH_SPOOL_MAX_RECORD};
    unsigned char *b = malloc(n);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memcpy(b, img, n);
        set32(b + r1 + 4, lens[i]);
        sink_t k = SINK_INIT;
        ph_spool_loss_t loss = {0};
        ck_assert_int_eq(posthog__spool_parse(b, n, sink_fn, &k, &loss), 1);
        assert_prefix(&k, &e, 1);
        ck_assert_uint_eq(loss.corrupt, 2);
        sink_clear(&k);
    }
    /* one past the end of the file */
    memcpy(b, img, n);
    size_t r2 = r1 + PH_SPOOL_REC_HDR + e.len[1];
    set32(b + r2 + 4, (uint32_t)(n - r2 - PH_SPOOL_REC_HDR + 1));
    sink_t k = SINK_INIT;
    ph_spool_loss_t loss = {0};
    ck_assert_int_eq(posthog__spool_parse(b, n, sink_fn, &k, &loss), 2);
    assert_prefix(&k, &e, 2);
    ck_assert_uint_eq(loss.corrupt, 1);
    sink_clear(&k);
    /* wrong record magic */
    memcpy(b, img, n);
    set32(b + r1, 0x52485051u);
    loss = (ph_spool_loss_t){0};
    ck_assert_int_eq(posthog__spool_parse(b, n, sink_fn, &k, &loss), 1);
    ck_assert_uint_eq(loss.corrupt, 2);
    sink_clear(&k);
    /* trailing garbage after intact records: counted, records kept */
    unsigned char *g = malloc(n + 5);
    memcpy(g, img, n);
    memcpy(g + n, "junk!", 5);
    loss = (ph_spool_loss_t){0};
    ck_assert_int_eq(posthog__spool_parse(g, n + 5, sink_fn, &k, &loss), 3);
    assert_prefix(&k, &e, 3);
    ck_assert_uint_eq(loss.corrupt, 1);
    sink_clear(&k);
    free(g);
    free(b);
    free(img);
    free_events(&e);
}
END_TEST

/* A record with a valid CRC whose payload is not a JSON object is skipped;
 * reading goes on with the next record (its length is trusted). */
START_TEST(non_object_payload_skipped) {
    const char *ev[] = {"{\"event\":\"a\"}", "", "[1,2]", "\"str\"", "{\"broken\":", "{\"event\":\"b\"}",
                        "{\"bad\":\"\xff\"}"};
    size_t lens[7];
    for (int i = 0; i < 7; i++) lens[i] = strlen(ev[i]);
    evset_t e = {(char **)ev, lens, 7};
    size_t n;
    unsigned char *img = build_image(&e, &n, 1);
    sink_t k = SINK_INIT;
    ph_spool_loss_t loss = {0};
    ck_assert_int_eq(posthog__spool_parse(img, n, sink_fn, &k, &loss), 2);
    ck_assert_uint_eq(loss.corrupt, 5);
    ck_assert_uint_eq(k.n, 2);
    ck_assert(k.len[0] == lens[0] && !memcmp(k.ev[0], ev[0], lens[0]));
    ck_assert(k.len[1] == lens[5] && !memcmp(k.ev[1], ev[5], lens[5]));
    sink_clear(&k);
    free(img);
}
END_TEST

START_TEST(bad_file_headers) {
    evset_t e = make_events(2, 3);
    size_t n;
    unsigned char *img = build_image(&e, &n, 1);
    unsigned char *b = malloc(n + 4096);
    struct {
        const char *what;
        size_t at;
        unsigned char v;
    } muts[] = {{"magic", 0, 'X'}, {"magic", 3, 'p'}, {"version 3", 4, 3},
                {"version 0", 4, 0}, {"version 257", 5, 1}};
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        memcpy(b, img, n);
        b[muts[i].at] = muts[i].v;
        sink_t k = SINK_INIT;
        ph_spool_loss_t loss = {0};
        ck_assert_msg(posthog__spool_parse(b, n, sink_fn, &k, &loss) == 0, "%s", muts[i].what);
        ck_assert_uint_eq(k.n, 0);
        ck_assert_uint_eq(loss.corrupt, 1);
    }
    /* empty, short, zero-filled */
    size_t sizes[] = {0, 1, 4, 19, 20, 21, 32, 100, 4096};
    memset(b, 0, n + 4096);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ph_spool_loss_t loss = {0};
        ck_assert_int_eq(posthog__spool_parse(b, sizes[i], sink_fn, NULL, &loss), 0);
        ck_assert_uint_eq(loss.corrupt, 1);
    }
    /* header only, count 5: five lost */
    memcpy(b, img, PH_SPOOL_HDR);
    set32(b + 8, 5);
    ph_spool_loss_t loss = {0};
    ck_assert_int_eq(posthog__spool_parse(b, PH_SPOOL_HDR, NULL, NULL, &loss), 0);
    ck_assert_uint_eq(loss.corrupt, 5);
    /* a valid header followed by zeros: a torn tail */
    memset(b + PH_SPOOL_HDR, 0, 100);
    set32(b + 8, 0);
    loss = (ph_spool_loss_t){0};
    ck_assert_int_eq(posthog__spool_parse(b, PH_SPOOL_HDR + 100, NULL, NULL, &loss), 0);
    ck_assert_uint_eq(loss.corrupt, 1);

    /* through adopt: each bad file is deleted and counted once */
    char *dir = make_dir();
    unsigned char zeros[4096] = {0};
    put_file(dir, "ph-0000000000001-1-000001.spool", "", 0);
    put_file(dir, "ph-0000000000001-1-000002.spool", zeros, sizeof zeros);
    memcpy(b, img, n);
    b[4] = 9;
    put_file(dir, "ph-0000000000001-1-000003.spool", b, n);
    memcpy(b, img, n);
    b[0] = 'Q';
    put_file(dir, "ph-0000000000001-1-000004.spool", b, n);
    put_file(dir, "ph-0000000000001-1-000005.spool", img, n); /* the good one */
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    loss = (ph_spool_loss_t){0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 2);
    ck_assert_uint_eq(loss.corrupt, 4);
    ck_assert_int_eq(count_entries(dir, ""), 1);
    ck_assert(exists_stem(dir, "ph-0000000000001-1-000005"));
    ck_assert_uint_eq(posthog__spool_bytes(&s), n);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(b);
    free(img);
    free_events(&e);
}
END_TEST

/* ------------------------------------------------------------ directory */

static void set_age(const char *dir, const char *name, int seconds) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= seconds;
    tv[1] = tv[0];
    ck_assert_int_eq(utimes(p, tv), 0);
}

START_TEST(stray_files_and_temp_files) {
    char *dir = make_dir();
    evset_t e = make_events(2, 3);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    put_file(dir, "ph-0000000000001-1-000001.spool", img, n);
    put_file(dir, "readme.txt", "hello", 5);
    put_file(dir, "ph-0000000000001-1-000002.spool.bak", img, n);
    put_file(dir, "xph-0000000000001-1-000003.spool", img, n);
    put_file(dir, "ph-.spool", "junk", 4); /* too short a name: not a spool file */
    put_file(dir, ".tmp-999999-1", img, n);
    set_age(dir, ".tmp-999999-1", 120); /* a dead writer's, two minutes old */
    put_file(dir, ".tmp-999999-2", img, n); /* fresh: maybe still being written */
    set_age(dir, ".tmp-999999-2", 5);
    char p[512];
    snprintf(p, sizeof p, "%s/sub", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/ph-0000000000002-1-000001.spool", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0); /* a directory with a spool name */

    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 2);
    ck_assert_uint_eq(loss.corrupt, 0);
    ck_assert_uint_eq(loss.evicted_age, 0);
    ck_assert(!exists(dir, ".tmp-999999-1"));
    ck_assert(exists(dir, ".tmp-999999-2"));
    ck_assert(exists(dir, "readme.txt"));
    ck_assert(exists(dir, "ph-0000000000001-1-000002.spool.bak"));
    ck_assert(exists(dir, "xph-0000000000001-1-000003.spool"));
    ck_assert(exists(dir, "ph-.spool"));
    ck_assert(exists(dir, "sub"));
    ck_assert(exists(dir, "ph-0000000000002-1-000001.spool"));
    ph_spool_file_t *f = posthog__spool_take(&s);
    ck_assert_ptr_nonnull(f);
    char stem[64];
    stem_of(stem, sizeof stem, base(f));
    ck_assert_str_eq(stem, "ph-0000000000001-1-000001");
    ck_assert_ptr_null(posthog__spool_take(&s));
    posthog__spool_park(&s, f);
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 2);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

/* spool_bytes counts the spool files only (not a directory with a spool name,
 * not other names). */
START_TEST(bytes_count_only_spool_files) {
    char *dir = make_dir();
    evset_t e = make_events(2, 3);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    put_file(dir, "ph-0000000000001-1-000001.spool", img, n);
    put_file(dir, "other.bin", img, n);
    char p[512];
    snprintf(p, sizeof p, "%s/ph-0000000000002-1-000001.spool", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ck_assert_msg(posthog__spool_bytes(&s) == n, "open: spool_bytes %llu, files %zu",
                  (unsigned long long)posthog__spool_bytes(&s), n);
    ph_spool_loss_t loss = {0};
    posthog__spool_adopt(&s, &loss);
    ck_assert_msg(posthog__spool_bytes(&s) == n, "adopt: spool_bytes %llu, files %zu",
                  (unsigned long long)posthog__spool_bytes(&s), n);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

START_TEST(open_errors) {
    char *dir = make_dir();
    char p[512];
    snprintf(p, sizeof p, "%s/file", dir);
    put_file(dir, "file", "x", 1);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, NULL, 0), -1); /* a regular file */
    ck_assert_int_eq(errno, ENOTDIR);
    snprintf(p, sizeof p, "%s/file/sub", dir);
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, NULL, 0), -1); /* under a regular file */
    ck_assert_int_eq(errno, ENOTDIR);
    snprintf(p, sizeof p, "%s/a/b", dir);
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, NULL, 0), -1); /* parent missing */
    ck_assert_int_eq(errno, ENOENT);
    snprintf(p, sizeof p, "%s/new", dir);
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, NULL, 0), 0);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    posthog__spool_close(&s);
    posthog__spool_close(&s); /* idempotent */
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------ limits */

START_TEST(max_bytes_eviction_order) {
    char *dir = make_dir();
    evset_t e = make_events(3, 200);
    size_t fsize = PH_SPOOL_HDR;
    for (uint32_t i = 0; i < e.n; i++) fsize += PH_SPOOL_REC_HDR + e.len[i];
    /* Two unowned files from a dead process (oldest names), written first. */
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    ck_assert_uint_eq(n, fsize);
    put_file(dir, "ph-0000000000001-1-000001.spool", img, n);
    put_file(dir, "ph-0000000000002-1-000001.spool", img, n);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, 4 * fsize, 0, NULL, 0), 0);
    ck_assert_uint_eq(posthog__spool_bytes(&s), 2 * fsize);
    /* own files: two idle, one taken (in flight: never evicted) */
    ph_spool_loss_t loss = {0};
    ph_spool_file_t *a = write_ev(&s, &e, &loss);
    ph_spool_file_t *b = write_ev(&s, &e, &loss);
    ck_assert_uint_eq(loss.evicted_size, 0);
    posthog__spool_park(&s, a);
    posthog__spool_park(&s, b);
    char an[128], bn[128];
    snprintf(an, sizeof an, "%s", base(a));
    snprintf(bn, sizeof bn, "%s", base(b));
    ck_assert_uint_eq(posthog__spool_bytes(&s), 4 * fsize);
    /* a fifth file: our oldest idle file goes first, though unowned ones are older */
    ph_spool_file_t *c = write_ev(&s, &e, &loss);
    ck_assert_uint_eq(loss.evicted_size, 3);
    ck_assert_uint_eq(loss.own_evicted, 3);
    ck_assert(!exists(dir, an));
    ck_assert(exists(dir, bn));
    ck_assert(exists(dir, "ph-0000000000001-1-000001.spool"));
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 3);
    /* the next one: our other idle file */
    loss = (ph_spool_loss_t){0};
    ph_spool_file_t *d = write_ev(&s, &e, &loss);
    ck_assert_uint_eq(loss.evicted_size, 3);
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 0);
    ck_assert(!exists(dir, bn));
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 0);
    /* then unowned files, oldest first; c and d are in flight and stay */
    loss = (ph_spool_loss_t){0};
    ph_spool_file_t *g = write_ev(&s, &e, &loss);
    ck_assert_uint_eq(loss.evicted_size, 3);
    ck_assert_uint_eq(loss.own_evicted, 0);
    ck_assert(!exists(dir, "ph-0000000000001-1-000001.spool"));
    ck_assert(exists(dir, "ph-0000000000002-1-000001.spool"));
    loss = (ph_spool_loss_t){0};
    ph_spool_file_t *h = write_ev(&s, &e, &loss);
    ck_assert_uint_eq(loss.evicted_size, 3);
    ck_assert(!exists(dir, "ph-0000000000002-1-000001.spool"));
    ck_assert_uint_eq(posthog__spool_bytes(&s), 4 * fsize);
    /* nothing left to evict: the write goes over the limit or fails, never
     * deletes an in-flight file */
    loss = (ph_spool_loss_t){0};
    ph_spool_file_t *x = posthog__spool_write(&s, (const char *const *)e.ev, e.len, e.n, &loss);
    ck_assert_uint_eq(loss.evicted_size, 0);
    ck_assert(exists(dir, base(c)) && exists(dir, base(d)) && exists(dir, base(g)) &&
              exists(dir, base(h)));
    if (x) posthog__spool_remove(&s, x);
    /* a file larger than the limit is refused */
    evset_t huge = make_events(1, 5 * fsize);
    errno = 0;
    ck_assert_ptr_null(posthog__spool_write(&s, (const char *const *)huge.ev, huge.len, 1, &loss));
    ck_assert_int_eq(errno, EFBIG);
    free_events(&huge);
    posthog__spool_remove(&s, c);
    posthog__spool_remove(&s, d);
    posthog__spool_remove(&s, g);
    posthog__spool_remove(&s, h);
    ck_assert_int_eq(count_entries(dir, ""), 0);
    ck_assert_uint_eq(posthog__spool_bytes(&s), 0);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

START_TEST(max_age_on_adopt) {
    char *dir = make_dir();
    evset_t e = make_events(4, 3);
    size_t n;
    int64_t now = posthog__now_ms();
    unsigned char *old = build_image(&e, &n, now - 3600 * 1000);
    unsigned char *fresh = build_image(&e, &n, now - 1000);
    put_file(dir, "ph-0000000000001-1-000001.spool", old, n);
    put_file(dir, "ph-0000000000002-1-000001.spool", fresh, n);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 60 * 1000, NULL, 0), 0);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 4);
    ck_assert_uint_eq(loss.evicted_age, 4);
    ck_assert_uint_eq(loss.corrupt, 0);
    ck_assert(!exists_stem(dir, "ph-0000000000001-1-000001"));
    ck_assert(exists_stem(dir, "ph-0000000000002-1-000001"));
    ck_assert_uint_eq(posthog__spool_bytes(&s), n);
    posthog__spool_close(&s);
    /* max_age 0: no limit */
    put_file(dir, "ph-0000000000001-1-000001.spool", old, n);
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    loss = (ph_spool_loss_t){0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 8);
    ck_assert_uint_eq(loss.evicted_age, 0);
    posthog__spool_close(&s);
    /* a file this process wrote, released, ages out too */
    rm_rf(dir);
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 50, NULL, 0), 0);
    ph_spool_file_t *f = write_ev(&s, &e, NULL);
    posthog__spool_release(&s, f);
    usleep(120 * 1000);
    loss = (ph_spool_loss_t){0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 0);
    ck_assert_uint_eq(loss.evicted_age, 4);
    ck_assert_int_eq(count_entries(dir, ""), 0);
    ck_assert_uint_eq(posthog__spool_bytes(&s), 0);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(old);
    free(fresh);
    free_events(&e);
}
END_TEST

/* ------------------------------------------------------------ ownership */

/* 0 when the file at path can be write-locked by this (child) process. */
static int child_can_lock(const char *path) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* a separate program: no copy of our heap for valgrind to leak-check */
#ifdef PH_EMULATOR_ARGV /* a cross build under qemu-user: through the emulator */
        char *const argv[] = {PH_EMULATOR_ARGV PH_LOCKPROBE, (char *)path, NULL};
        execv(argv[0], argv);
#else
        execl(PH_LOCKPROBE, "ph_lockprobe", path, (char *)NULL);
#endif
        _exit(2);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    ck_assert_int_ne(WEXITSTATUS(st), 2);
    return WEXITSTATUS(st);
}

/* 1 when the spool file at path belongs to a live owner: its name carries
 * an owner's tag and another process cannot lock that owner's lease. */
static int owned_by_live(const char *path) {
    const char *b = strrchr(path, '/') + 1;
    size_t l = strlen(b);
    if (l < 6 + 17 || b[l - 6 - 17] != '.') return 0;
    char lease[512];
    snprintf(lease, sizeof lease, "%.*s/.lease-%.16s", (int)(b - 1 - path), path, b + l - 6 - 16);
    struct stat st;
    if (stat(lease, &st)) return 0;
    return child_can_lock(lease);
}

START_TEST(other_process_files_not_adopted_until_it_dies) {
    char *dir = make_dir();
    evset_t e = make_events(5, 10);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        posthog__spool_fork_child(NULL);
        ph_spool_t s;
        if (posthog__spool_open(&s, dir, BIG, 0, NULL, 0)) _exit(3);
        ph_spool_loss_t loss = {0};
        ph_spool_file_t *f =
            posthog__spool_write(&s, (const char *const *)e.ev, e.len, e.n, &loss);
        if (!f) _exit(4);
        posthog__spool_park(&s, f); /* idle, still locked */
        /* an old temp file this live process still writes (locked) */
        char p[512];
        snprintf(p, sizeof p, "%s/.tmp-%ld-77", dir, (long)getpid());
        int fd = open(p, O_RDWR | O_CREAT, 0600);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fd < 0 || fcntl(fd, F_SETLK, &fl)) _exit(5);
        struct timeval tv[2];
        gettimeofday(&tv[0], NULL);
        tv[0].tv_sec -= 600;
        tv[1] = tv[0];
        if (utimes(p, tv)) _exit(6);
        if (write(pfd[1], "k", 1) != 1) _exit(7);
        for (;;) pause();
    }
    close(pfd[1]);
    char ch;
    ck_assert_int_eq(read(pfd[0], &ch, 1), 1);
    close(pfd[0]);
    ck_assert_int_eq(count_entries(dir, "ph-"), 1);
    ck_assert_int_eq(count_entries(dir, ".tmp-"), 1);

    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 0); /* the child's: locked */
    ck_assert_ptr_null(posthog__spool_take(&s));
    ck_assert_int_eq(count_entries(dir, ".tmp-"), 1);     /* locked: kept though old */
    ck_assert_int_eq(count_entries(dir, "ph-"), 1);
    ck_assert_uint_eq(loss.corrupt + loss.evicted_age + loss.evicted_size, 0);
    /* eviction must not take a live process's file either */
    ph_spool_t small;
    evset_t one = make_events(1, 0);
    ck_assert_int_eq(posthog__spool_open(&small, dir, PH_SPOOL_HDR + PH_SPOOL_REC_HDR + one.len[0],
                                         0, NULL, 0),
                     0);
    ck_assert_uint_gt(posthog__spool_bytes(&small), 0); /* the child's file */
    ph_spool_file_t *x =
        posthog__spool_write(&small, (const char *const *)one.ev, one.len, 1, &loss);
    ck_assert_uint_eq(loss.evicted_size, 0);
    ck_assert_int_eq(count_entries(dir, "ph-"), x ? 2 : 1);
    if (x) posthog__spool_remove(&small, x);
    posthog__spool_close(&small);
    free_events(&one);

    kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    loss = (ph_spool_loss_t){0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 5);
    ck_assert_int_eq(count_entries(dir, ".tmp-"), 0); /* dead writer's, old: removed */
    ph_spool_file_t *f = posthog__spool_take(&s);
    ck_assert_ptr_nonnull(f);
    sink_t k = SINK_INIT;
    ck_assert_int_eq(posthog__spool_read(f, sink_fn, &k, &loss), 5);
    assert_prefix(&k, &e, 5);
    sink_clear(&k);
    /* now ours: another process cannot lock our lease */
    ck_assert_int_eq(owned_by_live(f->path), 1);
    /* adopting again takes nothing twice */
    posthog__spool_park(&s, f);
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 0);
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 5);
    f = posthog__spool_take(&s);
    posthog__spool_remove(&s, f);
    ck_assert_int_eq(count_entries(dir, ""), 0);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free_events(&e);
}
END_TEST

/* A child forked without the library's atfork handler (here: a bare
 * fork) has a copy of its parent's random generator: its spool must still
 * get a tag of its own, or each would take the other's files for its own. */
START_TEST(forked_spool_gets_its_own_tag) {
    char *dir = make_dir();
    (void)posthog__rand_u64(); /* the generator is seeded before the fork */
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ph_spool_t c;
        if (posthog__spool_open(&c, dir, BIG, 0, NULL, 0)) _exit(3);
        if (write(pfd[1], c.tag, PH_SPOOL_TAG_LEN) != PH_SPOOL_TAG_LEN) _exit(4);
        /* dies without exit handlers: valgrind would leak-check the heap it
         * shares with the parent */
        raise(SIGKILL);
    }
    close(pfd[1]);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    char theirs[PH_SPOOL_TAG_LEN + 1] = "";
    ck_assert_int_eq(read(pfd[0], theirs, PH_SPOOL_TAG_LEN), PH_SPOOL_TAG_LEN);
    close(pfd[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    ck_assert_str_ne(theirs, s.tag);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(two_spools_one_process) {
    char *dir = make_dir();
    evset_t e = make_events(3, 10);
    ph_spool_t s1, s2;
    ck_assert_int_eq(posthog__spool_open(&s1, dir, BIG, 0, NULL, 0), 0);
    ck_assert_int_eq(posthog__spool_open(&s2, dir, BIG, 0, NULL, 0), 0);
    ph_spool_file_t *inflight = write_ev(&s1, &e, NULL);
    ph_spool_file_t *idle = write_ev(&s1, &e, NULL);
    posthog__spool_park(&s1, idle);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 0);
    ck_assert_ptr_null(posthog__spool_take(&s2));
    ck_assert_uint_eq(loss.corrupt, 0);
    /* s2's look did not drop s1's lease (closing any fd of it would, with
     * POSIX locks) */
    ck_assert_int_eq(owned_by_live(inflight->path), 1);
    ck_assert_int_eq(owned_by_live(idle->path), 1);
    /* s2 cannot evict them either */
    s2.max_bytes = 3 * inflight->bytes;
    ph_spool_file_t *mine = write_ev(&s2, &e, &loss);
    ck_assert_uint_eq(loss.evicted_size, 0);
    ck_assert(exists(dir, base(inflight)) && exists(dir, base(idle)));
    /* s1 adopts nothing of s2's */
    ck_assert_uint_eq(posthog__spool_adopt(&s1, &loss), 0);
    ck_assert_uint_eq(posthog__spool_idle_events(&s1), 3);
    /* s1 releases its idle file: s2 may adopt it now, once */
    char idle_stem[64], untagged[80];
    stem_of(idle_stem, sizeof idle_stem, base(idle));
    snprintf(untagged, sizeof untagged, "%s.spool", idle_stem);
    posthog__spool_release_idle(&s1);
    ck_assert(exists(dir, untagged)); /* given up: nobody's tag */
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 3);
    ck_assert_uint_eq(posthog__spool_adopt(&s1, &loss), 0);
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 0);
    ph_spool_file_t *t = posthog__spool_take(&s2);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(owned_by_live(t->path), 1);
    posthog__spool_remove(&s2, t);
    posthog__spool_remove(&s2, mine);
    posthog__spool_remove(&s1, inflight);
    ck_assert_int_eq(count_entries(dir, ""), 0);
    posthog__spool_close(&s1);
    posthog__spool_close(&s2);
    rm_rf(dir);
    free(dir);
    free_events(&e);
}
END_TEST

/* Two spools of one process race to adopt the same files: the ownership
 * check and the lock used not to be one step (and POSIX locks do not
 * exclude a second client of the same process), so both could take a file
 * and send it twice. Exactly one wins, every round. */
typedef struct {
    ph_spool_t *s;
    pthread_barrier_t *go;
    uint64_t adopted;
} racer_t;

static void *racer(void *arg) {
    racer_t *r = arg;
    ph_spool_loss_t loss = {0};
    pthread_barrier_wait(r->go);
    r->adopted = posthog__spool_adopt(r->s, &loss);
    return NULL;
}

START_TEST(two_spools_race_for_files) {
    enum { ROUNDS = 200, FILES = 3 };
    char *dir = make_dir();
    evset_t e = make_events(2, 1);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    ph_spool_t s1, s2;
    ck_assert_int_eq(posthog__spool_open(&s1, dir, BIG, 0, NULL, 0), 0);
    ck_assert_int_eq(posthog__spool_open(&s2, dir, BIG, 0, NULL, 0), 0);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    int doubled = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < FILES; k++) {
            char name[64];
            snprintf(name, sizeof name, "ph-%013d-0000000001-%010d.spool", round + 1, k);
            put_file(dir, name, img, n);
        }
        racer_t r[2] = {{&s1, &go, 0}, {&s2, &go, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, racer, &r[i]), 0);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        if (r[0].adopted + r[1].adopted != FILES * e.n) doubled++;
        ck_assert_uint_eq(posthog__spool_idle_events(&s1) + posthog__spool_idle_events(&s2),
                          r[0].adopted + r[1].adopted);
        ph_spool_t *sp[2] = {&s1, &s2};
        int taken = 0;
        for (int i = 0; i < 2; i++) {
            ph_spool_file_t *f;
            while ((f = posthog__spool_take(sp[i]))) {
                posthog__spool_remove(sp[i], f);
                taken++;
            }
        }
        ck_assert_int_ge(taken, FILES);
        ck_assert_int_eq(count_entries(dir, "ph-"), 0);
    }
    ck_assert_msg(doubled == 0, "a file was adopted by both spools in %d of %d rounds", doubled,
                  ROUNDS);
    pthread_barrier_destroy(&go);
    posthog__spool_close(&s1);
    posthog__spool_close(&s2);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

/* After release_all (posthog_shutdown) the spool owns nothing: another one
 * adopts its idle files at once, and what it writes afterwards too. */
START_TEST(release_all_gives_everything_up) {
    char *dir = make_dir();
    evset_t e = make_events(2, 1);
    ph_spool_t s1, s2;
    ck_assert_int_eq(posthog__spool_open(&s1, dir, BIG, 0, NULL, 0), 0);
    ck_assert_int_eq(posthog__spool_open(&s2, dir, BIG, 0, NULL, 0), 0);
    for (int i = 0; i < 3; i++) posthog__spool_park(&s1, write_ev(&s1, &e, NULL));
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 0); /* s1's */
    posthog__spool_release_all(&s1);
    ck_assert_int_eq(count_entries(dir, ".lease-"), 1); /* s2's only */
    ck_assert_uint_eq(posthog__spool_idle_events(&s1), 0);
    ph_spool_file_t *late = write_ev(&s1, &e, NULL); /* a late durable capture */
    posthog__spool_park(&s1, late);                   /* is not kept */
    ck_assert_uint_eq(posthog__spool_idle_events(&s1), 0);
    ck_assert_uint_eq(posthog__spool_adopt(&s1, &loss), 0); /* takes nothing any more */
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 8);
    ph_spool_file_t *f;
    while ((f = posthog__spool_take(&s2))) posthog__spool_remove(&s2, f);
    ck_assert_int_eq(count_entries(dir, ""), 0);
    posthog__spool_close(&s1);
    posthog__spool_close(&s2);
    ck_assert_int_eq(count_entries(dir, ".lease-"), 0);
    rm_rf(dir);
    free(dir);
    free_events(&e);
}
END_TEST

/* The directory is refused unless only its owner, this user, can write it,
 * and a symlink is refused; the reason says what is wrong. */
START_TEST(unsafe_directories_refused) {
    char *dir = make_dir();
    char p[512], err[256];
    ph_spool_t s;
    snprintf(p, sizeof p, "%s/link", dir);
    ck_assert_int_eq(symlink(dir, p), 0);
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, err, sizeof err), -1);
    ck_assert_int_eq(errno, ELOOP);
    ck_assert_msg(strstr(err, "symbolic link") != NULL, "%s", err);
    snprintf(p, sizeof p, "%s/wide", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_int_eq(chmod(p, 0722), 0);
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, err, sizeof err), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_msg(strstr(err, "writable by group or others (mode 0722)") != NULL, "%s", err);
    ck_assert_int_eq(count_entries(p, ""), 0); /* nothing written into it */
    ck_assert_int_eq(chmod(p, 0700), 0);
    ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, err, sizeof err), 0);
    posthog__spool_close(&s);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(p, 65534, 65534), 0);
        ck_assert_int_eq(posthog__spool_open(&s, p, BIG, 0, err, sizeof err), -1);
        ck_assert_msg(strstr(err, "owned by uid 65534") != NULL, "%s", err);
    }
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(release_idle_then_adopt) {
    char *dir = make_dir();
    evset_t e = make_events(2, 1);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    for (int i = 0; i < 3; i++) posthog__spool_park(&s, write_ev(&s, &e, NULL));
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 6);
    posthog__spool_close(&s); /* releases: files stay on disk */
    ck_assert_int_eq(count_entries(dir, "ph-"), 3);
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 6);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free_events(&e);
}
END_TEST

START_TEST(park_take_oldest_first) {
    char *dir = make_dir();
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ph_spool_file_t *f[6];
    for (uint32_t i = 0; i < 6; i++) {
        evset_t e = make_events(i + 1, 1);
        f[i] = write_ev(&s, &e, NULL);
        free_events(&e);
        if (i == 2) usleep(2000); /* a later millisecond too */
    }
    for (int i = 1; i < 6; i++) ck_assert(strcmp(base(f[i - 1]), base(f[i])) < 0);
    static const int order[] = {3, 0, 5, 1, 4, 2};
    uint64_t sum = 0;
    for (int i = 0; i < 6; i++) {
        posthog__spool_park(&s, f[order[i]]);
        sum += (uint64_t)order[i] + 1;
        ck_assert_uint_eq(posthog__spool_idle_events(&s), sum);
    }
    for (int i = 0; i < 6; i++) {
        ph_spool_file_t *t = posthog__spool_take(&s);
        ck_assert_ptr_eq(t, f[i]);
        ck_assert_ptr_null(t->next);
        sum -= (uint64_t)i + 1;
        ck_assert_uint_eq(posthog__spool_idle_events(&s), sum);
        posthog__spool_remove(&s, t);
    }
    ck_assert_ptr_null(posthog__spool_take(&s));
    /* adopted files come out in name order, mixed with our own */
    evset_t e = make_events(1, 1);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    put_file(dir, "ph-0000000000005-9-000001.spool", img, n);
    put_file(dir, "ph-0000000000003-9-000001.spool", img, n);
    ph_spool_file_t *own = write_ev(&s, &e, NULL);
    posthog__spool_park(&s, own);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 2);
    ph_spool_file_t *t = posthog__spool_take(&s);
    char stem[64];
    stem_of(stem, sizeof stem, base(t));
    ck_assert_str_eq(stem, "ph-0000000000003-9-000001");
    posthog__spool_remove(&s, t);
    t = posthog__spool_take(&s);
    stem_of(stem, sizeof stem, base(t));
    ck_assert_str_eq(stem, "ph-0000000000005-9-000001");
    posthog__spool_remove(&s, t);
    ck_assert_ptr_eq(posthog__spool_take(&s), own);
    posthog__spool_remove(&s, own);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

/* ------------------------------------------------------------ faults */

static int fault_calls, fault_at;
static int fail_nth(void) {
    if (++fault_calls == fault_at) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

START_TEST(fault_injection) {
    char *dir = make_dir();
    evset_t e = make_events(3, 100);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    struct {
        const char *name;
        int (**hook)(void);
        int nth;
    } cases[] = {
        {"open", &posthog__spool_faults.before_open, 1},
        {"write", &posthog__spool_faults.before_write, 1},
        {"fsync file", &posthog__spool_faults.before_fsync, 1},
        {"fsync dir", &posthog__spool_faults.before_fsync, 2},
        {"rename", &posthog__spool_faults.before_rename, 1},
    };
    for (int round = 0; round < 2; round++) {
        uint64_t bytes_before = posthog__spool_bytes(&s);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            fault_calls = 0;
            fault_at = cases[i].nth;
            *cases[i].hook = fail_nth;
            ph_spool_loss_t loss = {0};
            errno = 0;
            ph_spool_file_t *f =
                posthog__spool_write(&s, (const char *const *)e.ev, e.len, e.n, &loss);
            int err = errno;
            *cases[i].hook = NULL;
            ck_assert_msg(f == NULL, "%s: write succeeded", cases[i].name);
            ck_assert_msg(err == ENOSPC, "%s: errno %d (%s)", cases[i].name, err, strerror(err));
            ck_assert_msg(fault_calls >= cases[i].nth, "%s: hook not reached", cases[i].name);
            ck_assert_msg(count_entries(dir, "") == round, "%s: %d entries left", cases[i].name,
                          count_entries(dir, ""));
            ck_assert_uint_eq(posthog__spool_idle_events(&s), (uint64_t)round * 3);
            ck_assert_uint_eq(posthog__spool_bytes(&s), bytes_before);
        }
        /* without faults it works again; the second round has one file in place */
        if (!round) posthog__spool_park(&s, write_ev(&s, &e, NULL));
    }
    /* nothing registered by the failed writes: a second spool adopts exactly
     * the one good file after it is released */
    posthog__spool_release_idle(&s);
    ph_spool_t s2;
    ck_assert_int_eq(posthog__spool_open(&s2, dir, BIG, 0, NULL, 0), 0);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 3);
    posthog__spool_close(&s2);
    posthog__spool_close(&s);
    memset(&posthog__spool_faults, 0, sizeof posthog__spool_faults);
    rm_rf(dir);
    free(dir);
    free_events(&e);
}
END_TEST

/* ------------------------------------------------------------ segments */

static ph_spool_file_t *append_ev(ph_spool_t *s, const evset_t *e, bool sync,
                                  ph_spool_loss_t *loss) {
    ph_spool_loss_t l = {0};
    ph_spool_file_t *f = posthog__spool_append(s, (const char *const *)e->ev, e->len, e->n, sync,
                                               loss ? loss : &l);
    ck_assert_msg(f != NULL, "spool_append failed: %s", strerror(errno));
    return f;
}

/* The one ph-* file of dir (Check fails unless there is exactly one). */
static void only_file(const char *dir, char *out, size_t cap) {
    ck_assert_int_eq(count_entries(dir, "ph-"), 1);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "ph-", 3)) snprintf(out, cap, "%s/%s", dir, e->d_name);
    closedir(d);
}

START_TEST(segment_done_markers_and_adopt) {
    enum { B = 5 };
    char *dir = make_dir();
    evset_t e[B];
    for (int k = 0; k < B; k++) e[k] = make_events(3, (size_t)k * 7 + 1);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ph_spool_file_t *f[B];
    for (int k = 0; k < B; k++) f[k] = append_ev(&s, &e[k], false, NULL);
    ck_assert_int_eq(count_entries(dir, "ph-"), 1); /* one segment, not a file per batch */
    for (int k = 0; k < B; k++) {
        ck_assert_ptr_eq(f[k]->seg, f[0]->seg);
        sink_t k2 = SINK_INIT;
        ph_spool_loss_t loss = {0};
        ck_assert_int_eq(posthog__spool_read(f[k], sink_fn, &k2, &loss), 3);
        assert_prefix(&k2, &e[k], 3);
        ck_assert_uint_eq(loss.corrupt, 0);
        sink_clear(&k2);
    }
    posthog__spool_remove(&s, f[1]); /* delivered: marked done */
    posthog__spool_remove(&s, f[3]);
    for (int k = 0; k < B; k++)
        if (k != 1 && k != 3) posthog__spool_park(&s, f[k]);
    ck_assert_int_eq(count_entries(dir, "ph-"), 1);
    char path[512];
    only_file(dir, path, sizeof path);
    size_t n;
    unsigned char *img = slurp(path, &n);
    sink_t all = SINK_INIT;
    ph_spool_loss_t loss = {0};
    ck_assert_int_eq(posthog__spool_parse(img, n, sink_fn, &all, &loss), 9);
    ck_assert_uint_eq(loss.corrupt, 0);
    sink_clear(&all);
    free(img);
    posthog__spool_close(&s); /* as if the process ended: nobody's now */

    ph_spool_t s2;
    ck_assert_int_eq(posthog__spool_open(&s2, dir, BIG, 0, NULL, 0), 0);
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 9);
    for (int k = 0; k < B; k++) {
        if (k == 1 || k == 3) continue;
        ph_spool_file_t *g = posthog__spool_take(&s2); /* in the order written */
        ck_assert_ptr_nonnull(g);
        sink_t k2 = SINK_INIT;
        ck_assert_int_eq(posthog__spool_read(g, sink_fn, &k2, &loss), 3);
        assert_prefix(&k2, &e[k], 3);
        sink_clear(&k2);
        posthog__spool_remove(&s2, g);
    }
    ck_assert_ptr_null(posthog__spool_take(&s2));
    ck_assert_int_eq(count_entries(dir, "ph-"), 0); /* the last batch done unlinks it */
    ck_assert_uint_eq(posthog__spool_bytes(&s2), 0);
    ck_assert_uint_eq(loss.corrupt, 0);
    posthog__spool_close(&s2);
    for (int k = 0; k < B; k++) free_events(&e[k]);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* An old one-batch file (version 1) and a segment whose tail is torn, side
 * by side: both are adopted; the torn batch loses what is missing (counted),
 * the tail is cut, and done markers appended afterwards are honoured. */
START_TEST(segment_torn_tail_and_old_file) {
    char *dir = make_dir();
    evset_t old = make_events(4, 3), e = make_events(3, 50);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    posthog__spool_park(&s, write_ev(&s, &old, NULL)); /* the previous version's format */
    for (int k = 0; k < 3; k++) posthog__spool_park(&s, append_ev(&s, &e, true, NULL));
    ck_assert_int_eq(count_entries(dir, "ph-"), 2);
    char seg[512] = "";
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        size_t n;
        if (strncmp(de->d_name, "ph-", 3)) continue;
        unsigned char *b = slurp(p, &n);
        if (b[4] == PH_SPOOL_VERSION_SEG) snprintf(seg, sizeof seg, "%s", p);
        free(b);
    }
    closedir(d);
    ck_assert(seg[0]);
    posthog__spool_close(&s);
    struct stat st;
    ck_assert_int_eq(stat(seg, &st), 0);
    ck_assert_int_eq(truncate(seg, st.st_size - 5), 0); /* inside the last event */

    ph_spool_t s2;
    ph_spool_loss_t loss = {0};
    ck_assert_int_eq(posthog__spool_open(&s2, dir, BIG, 0, NULL, 0), 0);
    ck_assert_uint_eq(posthog__spool_adopt(&s2, &loss), 4 + 9);
    long got = 0;
    ph_spool_file_t *g;
    int units = 0;
    while ((g = posthog__spool_take(&s2))) {
        long r = posthog__spool_read(g, NULL, NULL, &loss);
        ck_assert_int_ge(r, 0);
        got += r;
        units++;
        if (units == 3) break; /* the old file and two batches; the torn one stays */
        posthog__spool_remove(&s2, g);
        g = NULL;
    }
    ck_assert_int_eq(got, 4 + 3 + 3);
    ck_assert_uint_eq(loss.corrupt, 0);
    ph_spool_file_t *torn = posthog__spool_take(&s2);
    ck_assert_ptr_nonnull(torn);
    ck_assert_int_eq(posthog__spool_read(torn, NULL, NULL, &loss), 2);
    ck_assert_uint_eq(loss.corrupt, 1); /* the torn event */
    /* the tail was cut, so the done marker of the batch delivered is read */
    only_file(dir, seg, sizeof seg); /* renamed to its new owner */
    size_t n;
    unsigned char *img = slurp(seg, &n);
    ph_spool_loss_t l2 = {0};
    ck_assert_int_eq(posthog__spool_parse(img, n, NULL, NULL, &l2), 3 + 2);
    ck_assert_uint_eq(l2.corrupt, 1);
    free(img);
    posthog__spool_remove(&s2, g);
    img = slurp(seg, &n);
    l2 = (ph_spool_loss_t){0};
    ck_assert_int_eq(posthog__spool_parse(img, n, NULL, NULL, &l2), 2);
    ck_assert_uint_eq(l2.corrupt, 1);
    free(img);
    posthog__spool_remove(&s2, torn);
    ck_assert_int_eq(count_entries(dir, "ph-"), 0);
    posthog__spool_close(&s2);
    free_events(&old);
    free_events(&e);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* At most max_files segments: the oldest (all idle) is evicted, counted. */
START_TEST(segment_rotation_and_max_files) {
    enum { UNITS = 10 };
    char *dir = make_dir();
    evset_t e = make_events(4, 10000); /* about 40 KiB a batch */
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    posthog__spool_set_segments(&s, 3, 0);
    s.seg_bytes = PH_SPOOL_MIN_SEGMENT; /* rotated after every batch */
    ph_spool_loss_t loss = {0};
    for (int k = 0; k < UNITS; k++) {
        posthog__spool_park(&s, append_ev(&s, &e, false, &loss));
        ck_assert_int_le(count_entries(dir, "ph-"), 3);
    }
    ck_assert_int_eq(count_entries(dir, "ph-"), 3);
    ck_assert_uint_eq(loss.evicted_size, (UNITS - 3) * 4);
    ck_assert_uint_eq(loss.own_evicted, (UNITS - 3) * 4);
    ck_assert_uint_eq(posthog__spool_idle_events(&s), 3 * 4);
    posthog__spool_close(&s);
    free_events(&e);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* Bytes of the ph-* files of dir. */
static uint64_t dir_bytes(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "ph-", 3)) continue;
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!stat(p, &st)) n += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

/* max_bytes holds with segments: the oldest batches are evicted (counted)
 * before an append, whole segments unlinked, the current one included. */
START_TEST(segment_max_bytes) {
    enum { UNITS = 20, PER = 4, MAXB = 200 << 10 };
    char *dir = make_dir();
    evset_t e = make_events(PER, 10000); /* about 40 KiB a batch */
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, MAXB, 0, NULL, 0), 0);
    posthog__spool_set_segments(&s, 4, 0); /* segments of 100 KiB */
    ph_spool_loss_t loss = {0};
    for (int k = 0; k < UNITS; k++) {
        posthog__spool_park(&s, append_ev(&s, &e, false, &loss));
        ck_assert_uint_le(dir_bytes(dir), MAXB);
        ck_assert_uint_eq(posthog__spool_bytes(&s), dir_bytes(dir));
        ck_assert_int_le(count_entries(dir, "ph-"), 4);
    }
    ck_assert_uint_gt(loss.evicted_size, 0);
    ck_assert_uint_eq(loss.evicted_size + posthog__spool_idle_events(&s), UNITS * PER);
    /* what is left is read back whole, newest batches last */
    ph_spool_file_t *f;
    uint64_t got = 0;
    while ((f = posthog__spool_take(&s))) {
        got += (uint64_t)posthog__spool_read(f, NULL, NULL, &loss);
        posthog__spool_remove(&s, f);
    }
    ck_assert_uint_eq(got + loss.evicted_size, UNITS * PER);
    ck_assert_uint_eq(loss.corrupt, 0);
    ck_assert_int_eq(count_entries(dir, "ph-"), 0);
    posthog__spool_close(&s);
    free_events(&e);
    rm_rf(dir);
    free(dir);
}
END_TEST

static _Atomic int seg_fsyncs;
static int count_seg_fsync(void) {
    atomic_fetch_add(&seg_fsyncs, 1);
    return 0;
}

/* Lazy appends are fsynced at most once per interval (the tick runs the
 * one due); a sync append always is. */
START_TEST(segment_fsync_interval) {
    char *dir = make_dir();
    evset_t e = make_events(2, 10);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    posthog__spool_set_segments(&s, 32, 60000);
    posthog__spool_faults.before_fsync = count_seg_fsync;
    atomic_store(&seg_fsyncs, 0);
    posthog__spool_park(&s, append_ev(&s, &e, false, NULL));
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 2); /* the first: the file, and its name */
    for (int k = 0; k < 50; k++) posthog__spool_park(&s, append_ev(&s, &e, false, NULL));
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 2);
    int64_t wait = posthog__spool_tick(&s);
    ck_assert(wait > 0 && wait <= 60000);
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 2);
    posthog__test_step_wall_clock(60000);
    ck_assert_int_eq(posthog__spool_tick(&s), INT64_MAX); /* done: nothing waits */
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 3);
    posthog__spool_park(&s, append_ev(&s, &e, true, NULL)); /* durable on return */
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 4);
    posthog__spool_park(&s, append_ev(&s, &e, false, NULL));
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 4);
    posthog__test_step_wall_clock(-60000); /* set back: due at once, not an hour late */
    ck_assert_int_eq(posthog__spool_tick(&s), INT64_MAX);
    ck_assert_int_eq(atomic_load(&seg_fsyncs), 5);
    posthog__spool_faults.before_fsync = NULL;
    posthog__spool_close(&s);
    free_events(&e);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* The library and its tests are built with large-file support (a 64-bit
 * off_t and ino_t on 32-bit systems too): without it readdir() fails with
 * EOVERFLOW for 64-bit inode numbers and the spool never finds its files
 * (armhf). */
START_TEST(large_file_support) {
    ck_assert_uint_eq(sizeof(off_t), 8);
    ck_assert_uint_eq(sizeof(ino_t), 8);
    ck_assert_uint_eq(sizeof(time_t), 8); /* _TIME_BITS=64: dates past 2038 */
    /* and a listing finds every file */
    char *dir = make_dir();
    evset_t e = make_events(2, 1);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    char name[64];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "ph-00000000000%02d-9-000001.spool", i);
        put_file(dir, name, img, n);
    }
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 80);
    int err = 0;
    uint64_t total = 1;
    ck_assert_uint_eq(posthog__spool_scan_failures(&s, &err, &total), 0);
    ck_assert_uint_eq(total, 0);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

static int fail_scan(void) {
    errno = EOVERFLOW;
    return -1;
}

/* A directory listing that fails is counted and its errno kept, reported
 * once (posthog__spool_scan_failures, which the flusher logs), and the
 * next listing that works finds the files. */
START_TEST(scan_failure_counted) {
    char *dir = make_dir();
    evset_t e = make_events(3, 1);
    size_t n;
    unsigned char *img = build_image(&e, &n, posthog__now_ms());
    put_file(dir, "ph-0000000000003-9-000001.spool", img, n);
    put_file(dir, "ph-0000000000005-9-000001.spool", img, n);
    ph_spool_t s;
    ck_assert_int_eq(posthog__spool_open(&s, dir, BIG, 0, NULL, 0), 0);
    int err = 0;
    uint64_t total = 0;
    ck_assert_uint_eq(posthog__spool_scan_failures(&s, &err, &total), 0);
    posthog__spool_faults.before_scan = fail_scan;
    ph_spool_loss_t loss = {0};
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 0);
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 0);
    posthog__spool_faults.before_scan = NULL;
    ck_assert_uint_eq(posthog__spool_scan_failures(&s, &err, &total), 2);
    ck_assert_int_eq(err, EOVERFLOW);
    ck_assert_uint_eq(total, 2);
    ck_assert_uint_eq(posthog__spool_scan_failures(&s, &err, &total), 0); /* reported once */
    ck_assert_uint_eq(total, 2);
    ck_assert_uint_eq(posthog__spool_adopt(&s, &loss), 6);
    ck_assert_uint_eq(posthog__spool_scan_failures(&s, &err, &total), 0);
    ck_assert_uint_eq(total, 2);
    posthog__spool_close(&s);
    rm_rf(dir);
    free(dir);
    free(img);
    free_events(&e);
}
END_TEST

/* A write that fails must not evict data for nothing... is documented as
 * "first evicts": this test pins that eviction happens before the write. */

static Suite *suite(void) {
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("spool");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, roundtrip_sizes);
    tcase_add_test(tc, parse_callback_stop);
    tcase_add_test(tc, truncate_every_offset_parse);
    tcase_add_test(tc, truncate_every_offset_files);
    tcase_add_test(tc, bitflip_every_byte);
    tcase_add_test(tc, bad_lengths_and_magics);
    tcase_add_test(tc, non_object_payload_skipped);
    tcase_add_test(tc, bad_file_headers);
    tcase_add_test(tc, stray_files_and_temp_files);
    tcase_add_test(tc, bytes_count_only_spool_files);
    tcase_add_test(tc, open_errors);
    tcase_add_test(tc, max_bytes_eviction_order);
    tcase_add_test(tc, max_age_on_adopt);
    tcase_add_test(tc, other_process_files_not_adopted_until_it_dies);
    tcase_add_test(tc, forked_spool_gets_its_own_tag);
    tcase_add_test(tc, two_spools_one_process);
    tcase_add_test(tc, two_spools_race_for_files);
    tcase_add_test(tc, release_all_gives_everything_up);
    tcase_add_test(tc, unsafe_directories_refused);
    tcase_add_test(tc, release_idle_then_adopt);
    tcase_add_test(tc, park_take_oldest_first);
    tcase_add_test(tc, fault_injection);
    tcase_add_test(tc, segment_done_markers_and_adopt);
    tcase_add_test(tc, segment_torn_tail_and_old_file);
    tcase_add_test(tc, segment_rotation_and_max_files);
    tcase_add_test(tc, segment_fsync_interval);
    tcase_add_test(tc, segment_max_bytes);
    tcase_add_test(tc, large_file_support);
    tcase_add_test(tc, scan_failure_counted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
