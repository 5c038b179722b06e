/*
 * spool: durable batch files (see spool.h for format and ownership).
 * Invariants: every ph_spool_file_t returned to a caller holds an open
 * descriptor with this process's POSIX write lock and is listed in the
 * process registry until posthog__spool_remove/_release; the registry is
 * consulted before this process opens any spool file, so one client never
 * drops another's lock by closing a second descriptor.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "json.h"
#include "util.h"

ph_spool_faults_t posthog__spool_faults;

#define FAULT(hook) (posthog__spool_faults.hook && posthog__spool_faults.hook())
#define STALE_TMP_MS 60000

/* ---------------------------------------------------------------- registry */

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id_t;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static file_id_t *reg;
static size_t reg_n, reg_cap;

static bool reg_has_locked(dev_t d, ino_t i) {
    for (size_t k = 0; k < reg_n; k++)
        if (reg[k].dev == d && reg[k].ino == i) return true;
    return false;
}

static int reg_add_locked(dev_t d, ino_t i) {
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 16;
        file_id_t *r = realloc(reg, cap * sizeof *r);
        if (!r) return -1;
        reg = r;
        reg_cap = cap;
    }
    reg[reg_n].dev = d;
    reg[reg_n].ino = i;
    reg_n++;
    return 0;
}

static void reg_del(dev_t d, ino_t i) {
    pthread_mutex_lock(&reg_mu);
    for (size_t k = 0; k < reg_n; k++)
        if (reg[k].dev == d && reg[k].ino == i) {
            reg[k] = reg[--reg_n];
            break;
        }
    pthread_mutex_unlock(&reg_mu);
}

void posthog__spool_fork_child(ph_spool_t *s) {
    /* The parent's locks did not come along: the child owns nothing. Its
     * registry memory is a copy, reset without freeing anything shared. */
    reg_n = 0;
    pthread_mutex_init(&reg_mu, NULL);
    if (s) {
        pthread_mutex_init(&s->mu, NULL);
        s->idle = NULL; /* the parent's: abandoned, never closed here */
        s->idle_events = 0;
    }
}

static int lock_fd(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return fcntl(fd, F_SETLK, &fl);
}

/* ---------------------------------------------------------------- helpers */

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = FAULT(before_fsync) ? -1 : fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static bool is_spool_name(const char *n) {
    size_t l = strlen(n);
    return l > 9 && !strncmp(n, "ph-", 3) && !strcmp(n + l - 6, ".spool");
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the directory's *.spool files (oldest first: the name
 * starts with the zero-padded creation time). */
static char **list_files(const char *dir, size_t *n_out, bool tmp_too) {
    DIR *d = opendir(dir);
    *n_out = 0;
    if (!d) return NULL;
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_spool_name(e->d_name) && !(tmp_too && !strncmp(e->d_name, ".tmp-", 5))) continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 32;
            char **v2 = realloc(v, c2 * sizeof *v);
            if (!v2) break;
            v = v2;
            cap = c2;
        }
        if (!(v[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, name_cmp);
    *n_out = n;
    return v;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The header's count is not checksummed: for what is pending or evicted,
 * never believe more records than the file could hold (each takes at
 * least a record header and "{}"). The parser still counts a torn tail's
 * missing records as lost (up to 2^24). */
static uint32_t plausible_count(uint32_t count, uint64_t file_bytes) {
    uint64_t most = file_bytes > PH_SPOOL_HDR ? (file_bytes - PH_SPOOL_HDR) / (PH_SPOOL_REC_HDR + 2) : 0;
    return count > most ? (uint32_t)most : count;
}

/* Reads the header of an open file: 0 ok (count/created filled), -1 bad. */
static int read_header(int fd, uint32_t *count, int64_t *created) {
    unsigned char h[PH_SPOOL_HDR];
    struct stat st;
    if (fstat(fd, &st) || pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) return -1;
    if (memcmp(h, PH_SPOOL_MAGIC, 4) || (h[4] | h[5] << 8) != PH_SPOOL_VERSION) return -1;
    *count = plausible_count(get32(h + 8), (uint64_t)st.st_size);
    *created = (int64_t)get64(h + 12);
    return 0;
}

/* ---------------------------------------------------------------- open/close */

int posthog__spool_open(ph_spool_t *s, const char *dir, uint64_t max_bytes, int64_t max_age_ms) {
    memset(s, 0, sizeof *s);
    if (mkdir(dir, 0700) && errno != EEXIST) return -1;
    struct stat st;
    if (stat(dir, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    if (access(dir, R_OK | W_OK | X_OK)) return -1;
    s->dir = strdup(dir);
    if (!s->dir) return -1;
    s->max_bytes = max_bytes;
    s->max_age_ms = max_age_ms;
    pthread_mutex_init(&s->mu, NULL);
    size_t n;
    char **names = list_files(dir, &n, false);
    for (size_t i = 0; i < n; i++) {
        char *p = path_join(dir, names[i]);
        if (p && !stat(p, &st) && S_ISREG(st.st_mode)) s->bytes_on_disk += (uint64_t)st.st_size;
        free(p);
    }
    free_list(names, n);
    return 0;
}

void posthog__spool_close(ph_spool_t *s) {
    if (!s->dir) return;
    posthog__spool_release_idle(s);
    free(s->dir);
    s->dir = NULL;
    pthread_mutex_destroy(&s->mu);
}

uint64_t posthog__spool_bytes(ph_spool_t *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t b = s->bytes_on_disk;
    pthread_mutex_unlock(&s->mu);
    return b;
}

/* ---------------------------------------------------------------- eviction */

/*
 * Takes a file nobody owns: not in this process's registry and lockable.
 * Returns the locked fd (and its stat), or -1. The caller must either
 * register it or close it.
 */
static int take_unowned(const char *path, struct stat *st) {
    if (stat(path, st)) return -1;
    pthread_mutex_lock(&reg_mu);
    bool mine = reg_has_locked(st->st_dev, st->st_ino);
    pthread_mutex_unlock(&reg_mu);
    if (mine) return -1;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st2;
    if (fstat(fd, &st2) || st2.st_ino != st->st_ino || lock_fd(fd)) {
        close(fd); /* we held no lock on it: closing drops nothing of ours */
        return -1;
    }
    *st = st2;
    return fd;
}

static void forget(ph_spool_file_t *f);

/* Deletes the oldest data until `need` more bytes fit: our idle files,
 * then files nobody owns. [s->mu held] */
static void evict_for(ph_spool_t *s, uint64_t need, ph_spool_loss_t *loss) {
    while (s->idle && s->bytes_on_disk + need > s->max_bytes) {
        ph_spool_file_t *f = s->idle;
        if (unlink(f->path)) return; /* still on disk, still ours: not lost */
        s->idle = f->next;
        s->idle_events -= PH_MIN(s->idle_events, f->count);
        s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, f->bytes);
        loss->evicted_size += f->count;
        loss->own_evicted += f->count;
        forget(f);
    }
    if (s->bytes_on_disk + need <= s->max_bytes) return;
    size_t n;
    char **names = list_files(s->dir, &n, false);
    for (size_t i = 0; i < n && s->bytes_on_disk + need > s->max_bytes; i++) {
        char *p = path_join(s->dir, names[i]);
        struct stat st;
        int fd = p ? take_unowned(p, &st) : -1;
        if (fd >= 0) {
            uint32_t count = 0;
            int64_t created;
            if (read_header(fd, &count, &created)) count = 1;
            if (!unlink(p)) {
                loss->evicted_size += count;
                s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, (uint64_t)st.st_size);
            }
            close(fd);
        }
        free(p);
    }
    free_list(names, n);
}

/* ---------------------------------------------------------------- write */

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        if (FAULT(before_write)) return -1;
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

ph_spool_file_t *posthog__spool_write(ph_spool_t *s, const char *const *events,
                                      const size_t *lens, uint32_t count, ph_spool_loss_t *loss) {
    uint64_t size = PH_SPOOL_HDR;
    for (uint32_t i = 0; i < count; i++) size += PH_SPOOL_REC_HDR + lens[i];
    if (size > s->max_bytes) {
        errno = EFBIG;
        return NULL;
    }
    unsigned char *buf = malloc(size);
    ph_spool_file_t *f = calloc(1, sizeof *f);
    if (!buf || !f) {
        free(buf);
        free(f);
        errno = ENOMEM;
        return NULL;
    }
    int64_t now = posthog__now_ms();
    memcpy(buf, PH_SPOOL_MAGIC, 4);
    buf[4] = PH_SPOOL_VERSION;
    buf[5] = 0;
    buf[6] = buf[7] = 0;
    put32(buf + 8, count);
    put64(buf + 12, (uint64_t)now);
    unsigned char *o = buf + PH_SPOOL_HDR;
    for (uint32_t i = 0; i < count; i++) {
        put32(o, PH_SPOOL_REC_MAGIC);
        put32(o + 4, (uint32_t)lens[i]);
        put32(o + 8, (uint32_t)crc32(0, (const Bytef *)events[i], (uInt)lens[i]));
        memcpy(o + 12, events[i], lens[i]);
        o += PH_SPOOL_REC_HDR + lens[i];
    }

    pthread_mutex_lock(&s->mu);
    uint64_t seq = ++s->seq;
    pthread_mutex_unlock(&s->mu);

    char tmpname[64], name[96];
    snprintf(tmpname, sizeof tmpname, ".tmp-%ld-%llu", (long)getpid(), (unsigned long long)seq);
    /* fixed-width fields, so that names sort by time, then pid, then sequence */
    snprintf(name, sizeof name, "ph-%013lld-%010ld-%010llu.spool", (long long)now, (long)getpid(),
             (unsigned long long)seq);
    char *tmp = path_join(s->dir, tmpname);
    f->path = path_join(s->dir, name);
    int fd = -1, err = ENOMEM;
    struct stat st;
    if (!tmp || !f->path) goto fail;
    if (FAULT(before_open)) goto fail_errno;
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || lock_fd(fd) || write_all(fd, buf, size)) goto fail_errno;
    if (FAULT(before_fsync) || fsync(fd)) goto fail_errno;
    /* room is made only now that the new data is safely written, so a
     * failed write never costs the oldest events */
    pthread_mutex_lock(&s->mu);
    evict_for(s, size, loss);
    pthread_mutex_unlock(&s->mu);
    if (FAULT(before_rename) || rename(tmp, f->path)) goto fail_errno;
    if (fsync_dir(s->dir)) goto fail_errno_renamed;
    if (fstat(fd, &st)) goto fail_errno_renamed;
    pthread_mutex_lock(&reg_mu);
    int rr = reg_add_locked(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&reg_mu);
    if (rr) goto fail_errno_renamed;
    f->fd = fd;
    f->bytes = size;
    f->count = count;
    f->created_ms = now;
    pthread_mutex_lock(&s->mu);
    s->bytes_on_disk += size;
    pthread_mutex_unlock(&s->mu);
    free(tmp);
    free(buf);
    return f;

fail_errno_renamed:
    err = errno;
    unlink(f->path);
    goto fail_close;
fail_errno:
    err = errno ? errno : EIO;
    if (tmp) unlink(tmp);
fail_close:
    if (fd >= 0) close(fd);
fail:
    free(tmp);
    free(buf);
    free(f->path);
    free(f);
    errno = err;
    return NULL;
}

/* ---------------------------------------------------------------- adopt */

uint64_t posthog__spool_adopt(ph_spool_t *s, ph_spool_loss_t *loss) {
    size_t n;
    char **names = list_files(s->dir, &n, true);
    uint64_t adopted = 0;
    int64_t now = posthog__now_ms();
    uint64_t total = 0;
    char own_tmp[32];
    size_t own_tmp_len = (size_t)snprintf(own_tmp, sizeof own_tmp, ".tmp-%ld-", (long)getpid());
    for (size_t i = 0; i < n; i++) {
        char *p = path_join(s->dir, names[i]);
        if (!p) continue;
        struct stat st;
        bool tmpfile = names[i][0] == '.';
        if (tmpfile) {
            /* Our own temp files are being written right now: opening and
             * closing one would drop the writer's POSIX lock (locks are the
             * process's, and any close releases them). */
            if (!strncmp(names[i], own_tmp, own_tmp_len)) {
                free(p);
                continue;
            }
            /* a temp file from a writer that died before its rename */
            int fd = take_unowned(p, &st);
            if (fd >= 0) {
                if ((int64_t)st.st_mtime * 1000 < now - STALE_TMP_MS) unlink(p);
                close(fd);
            }
            free(p);
            continue;
        }
        if (stat(p, &st) || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        total += (uint64_t)st.st_size;
        int fd = take_unowned(p, &st);
        if (fd < 0) {
            free(p);
            continue;
        }
        uint32_t count = 0;
        int64_t created = 0;
        if (read_header(fd, &count, &created)) {
            /* not a spool file we can read: count it as one corrupt record */
            loss->corrupt++;
            unlink(p);
            total -= PH_MIN(total, (uint64_t)st.st_size);
            close(fd);
            free(p);
            continue;
        }
        if (s->max_age_ms > 0 && created < now - s->max_age_ms) {
            loss->evicted_age += count;
            unlink(p);
            total -= PH_MIN(total, (uint64_t)st.st_size);
            close(fd);
            free(p);
            continue;
        }
        ph_spool_file_t *f = calloc(1, sizeof *f);
        pthread_mutex_lock(&reg_mu);
        int rr = f ? reg_add_locked(st.st_dev, st.st_ino) : -1;
        pthread_mutex_unlock(&reg_mu);
        if (rr) {
            free(f);
            close(fd);
            free(p);
            continue;
        }
        f->path = p;
        f->fd = fd;
        f->bytes = (uint64_t)st.st_size;
        f->count = count;
        f->created_ms = created;
        posthog__spool_park(s, f);
        adopted += count;
    }
    free_list(names, n);
    pthread_mutex_lock(&s->mu);
    s->bytes_on_disk = total;
    pthread_mutex_unlock(&s->mu);
    return adopted;
}

void posthog__spool_park(ph_spool_t *s, ph_spool_file_t *f) {
    pthread_mutex_lock(&s->mu);
    ph_spool_file_t **p = &s->idle;
    /* names sort by creation time, then pid and sequence */
    const char *base = strrchr(f->path, '/');
    base = base ? base + 1 : f->path;
    while (*p) {
        const char *b2 = strrchr((*p)->path, '/');
        if (strcmp(b2 ? b2 + 1 : (*p)->path, base) > 0) break;
        p = &(*p)->next;
    }
    f->next = *p;
    *p = f;
    s->idle_events += f->count;
    pthread_mutex_unlock(&s->mu);
}

ph_spool_file_t *posthog__spool_take(ph_spool_t *s) {
    pthread_mutex_lock(&s->mu);
    ph_spool_file_t *f = s->idle;
    if (f) {
        s->idle = f->next;
        s->idle_events -= PH_MIN(s->idle_events, f->count);
        f->next = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return f;
}

uint64_t posthog__spool_idle_events(ph_spool_t *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->idle_events;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void posthog__spool_release_idle(ph_spool_t *s) {
    pthread_mutex_lock(&s->mu);
    ph_spool_file_t *f = s->idle;
    s->idle = NULL;
    s->idle_events = 0;
    pthread_mutex_unlock(&s->mu);
    while (f) {
        ph_spool_file_t *next = f->next;
        forget(f);
        f = next;
    }
}

/* ---------------------------------------------------------------- read */

/* A record's payload is intact: its CRC matches and it is a JSON object. */
static bool record_ok(const char *p, uint32_t len, uint32_t crc) {
    int type = 0;
    return (uint32_t)crc32(0, (const Bytef *)p, len) == crc &&
           posthog__json_validate(p, len, &type, NULL) == POSTHOG_OK && type == PH_JSON_OBJECT;
}

long posthog__spool_parse(const unsigned char *data, size_t n, ph_spool_event_fn fn, void *ud,
                          ph_spool_loss_t *loss) {
    if (n < PH_SPOOL_HDR || memcmp(data, PH_SPOOL_MAGIC, 4) ||
        (data[4] | data[5] << 8) != PH_SPOOL_VERSION) {
        loss->corrupt++;
        return 0;
    }
    uint32_t count = get32(data + 8); /* trusted for torn tails, bounded below */
    size_t i = PH_SPOOL_HDR;
    uint32_t good = 0, bad = 0;
    while (i < n) {
        if (n - i < PH_SPOOL_REC_HDR || get32(data + i) != PH_SPOOL_REC_MAGIC) {
            bad++; /* torn or malformed tail: nothing after it can be trusted */
            break;
        }
        uint32_t len = get32(data + i + 4), crc = get32(data + i + 8);
        if (len > PH_SPOOL_MAX_RECORD || len > n - i - PH_SPOOL_REC_HDR) {
            bad++;
            break;
        }
        const char *p = (const char *)data + i + PH_SPOOL_REC_HDR;
        if (!record_ok(p, len, crc)) {
            bad++;
        } else {
            if (fn && fn(p, len, ud)) break;
            good++;
        }
        i += PH_SPOOL_REC_HDR + len;
    }
    /* The header says how many records were written: a torn tail loses the
     * difference even when no damaged record was seen. */
    if (count > good + bad && count - good < (1u << 24)) bad = count - good;
    loss->corrupt += bad;
    return good;
}

long posthog__spool_read(ph_spool_file_t *f, ph_spool_event_fn fn, void *ud,
                         ph_spool_loss_t *loss) {
    struct stat st;
    if (posthog__spool_faults.before_read && posthog__spool_faults.before_read(f->path)) return -1;
    if (fstat(f->fd, &st)) return -1;
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(f->fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got < n) { /* read error, or truncated under us: try again later */
        free(buf);
        return -1;
    }
    long rc = posthog__spool_parse(buf, got, fn, ud, loss);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- split */

static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Events read from a file, waiting to be written as one part. */
typedef struct {
    char *data;
    size_t len, cap;
    const char **ev;
    size_t *lens;
    uint32_t n, ncap;
} split_part_t;

static int split_flush(ph_spool_t *s, split_part_t *pt, ph_spool_file_t **parts,
                       ph_spool_loss_t *loss) {
    if (!pt->n) return 0;
    /* the texts are at offsets of data: point into it now that it is final */
    size_t off = 0;
    for (uint32_t i = 0; i < pt->n; i++) {
        size_t l = pt->lens[i];
        pt->ev[i] = pt->data + off;
        off += l;
    }
    ph_spool_file_t *f = posthog__spool_write(s, pt->ev, pt->lens, pt->n, loss);
    if (!f) return -1;
    f->next = *parts;
    *parts = f;
    pt->len = 0;
    pt->n = 0;
    return 0;
}

long posthog__spool_split(ph_spool_t *s, ph_spool_file_t *f, uint64_t part_bytes,
                          ph_spool_loss_t *loss) {
    struct stat st;
    unsigned char h[PH_SPOOL_HDR];
    if (posthog__spool_faults.before_read && posthog__spool_faults.before_read(f->path)) return -1;
    if (fstat(f->fd, &st) || pread_full(f->fd, h, sizeof h, 0)) return -1;
    uint64_t size = (uint64_t)st.st_size, i = PH_SPOOL_HDR;
    uint32_t count = get32(h + 8), good = 0, bad = 0;
    bool header_ok = !memcmp(h, PH_SPOOL_MAGIC, 4) && (h[4] | h[5] << 8) == PH_SPOOL_VERSION;
    split_part_t pt = {0};
    ph_spool_file_t *parts = NULL;
    ph_spool_loss_t mine = {0}; /* reported only once the split is done */
    int rc = 0;
    while (header_ok && i < size) {
        unsigned char rh[PH_SPOOL_REC_HDR];
        if (size - i < PH_SPOOL_REC_HDR || pread_full(f->fd, rh, sizeof rh, i) ||
            get32(rh) != PH_SPOOL_REC_MAGIC) {
            bad++; /* torn or malformed tail, as posthog__spool_parse */
            break;
        }
        uint32_t len = get32(rh + 4), crc = get32(rh + 8);
        if (len > PH_SPOOL_MAX_RECORD || len > size - i - PH_SPOOL_REC_HDR) {
            bad++;
            break;
        }
        /* a full part goes to disk; the next starts with this record */
        if (pt.n && PH_SPOOL_HDR + pt.len + (uint64_t)PH_SPOOL_REC_HDR * (pt.n + 1) + len >
                        part_bytes &&
            (rc = split_flush(s, &pt, &parts, &mine)))
            break;
        if (pt.len + len > pt.cap) {
            size_t cap = PH_MAX(pt.cap * 2, pt.len + len);
            char *d = realloc(pt.data, cap ? cap : 1);
            if (!d) {
                rc = -1;
                break;
            }
            pt.data = d;
            pt.cap = cap;
        }
        if (pt.n == pt.ncap) {
            uint32_t nc = pt.ncap ? pt.ncap * 2 : 256;
            const char **ev = realloc(pt.ev, nc * sizeof *ev);
            if (ev) pt.ev = ev;
            size_t *ls = ev ? realloc(pt.lens, nc * sizeof *ls) : NULL;
            if (!ls) {
                rc = -1;
                break;
            }
            pt.lens = ls;
            pt.ncap = nc;
        }
        if (pread_full(f->fd, pt.data + pt.len, len, i + PH_SPOOL_REC_HDR)) {
            rc = -1; /* a read error: try again later */
            break;
        }
        if (record_ok(pt.data + pt.len, len, crc)) {
            pt.lens[pt.n++] = len;
            pt.len += len;
            good++;
        } else {
            bad++;
        }
        i += PH_SPOOL_REC_HDR + (uint64_t)len;
    }
    if (!rc) rc = split_flush(s, &pt, &parts, &mine);
    free(pt.data);
    free(pt.ev);
    free(pt.lens);
    /* files evicted to make room are gone either way */
    loss->evicted_size += mine.evicted_size;
    loss->evicted_age += mine.evicted_age;
    loss->own_evicted += mine.own_evicted;
    if (rc) { /* undo: the original stays as it was */
        while (parts) {
            ph_spool_file_t *n = parts->next;
            posthog__spool_remove(s, parts);
            parts = n;
        }
        return -1;
    }
    if (!header_ok) bad++;
    if (count > good + bad && count - good < (1u << 24)) bad = count - good;
    loss->corrupt += mine.corrupt + bad;
    while (parts) {
        ph_spool_file_t *n = parts->next;
        posthog__spool_park(s, parts);
        parts = n;
    }
    posthog__spool_remove(s, f);
    return good;
}

/* ---------------------------------------------------------------- remove/release */

static void forget(ph_spool_file_t *f) {
    struct stat st;
    if (!fstat(f->fd, &st)) reg_del(st.st_dev, st.st_ino);
    close(f->fd);
    free(f->path);
    free(f);
}

void posthog__spool_remove(ph_spool_t *s, ph_spool_file_t *f) {
    if (!f) return;
    if (!unlink(f->path)) {
        pthread_mutex_lock(&s->mu);
        s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, f->bytes);
        pthread_mutex_unlock(&s->mu);
    }
    forget(f);
}

void posthog__spool_release(ph_spool_t *s, ph_spool_file_t *f) {
    (void)s;
    if (f) forget(f);
}
