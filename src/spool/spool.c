/*
 * spool: durable batch files (see spool.h for format and ownership).
 * Invariants: a ph_spool_file_t returned to a caller is named with its
 * spool's tag while that spool holds its lease, so no other client or
 * process touches it until posthog__spool_remove/_release (or the lease
 * goes); every file operation is relative to s->dfd and never follows a
 * symlink; no descriptor stays open but the directory and the lease.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_OFD_SETLK */
#endif
#include "spool.h"

#include "platform.h" /* PH_HAVE_OFD_LOCKS */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
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
#define LEASE_PREFIX ".lease-"
#define TMP_PREFIX ".tmp-"

/* ---------------------------------------------------------------- locks */

/*
 * A write lock on the whole file, without waiting. Open-file-description
 * locks belong to the open file, not to the process: a second open in this
 * process conflicts with them, and closing some other descriptor of the
 * same file releases nothing. Without them (POSIX locks are the
 * process's), the registry below stands in for the in-process exclusion.
 */
static int lock_fd(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
#if PH_HAVE_OFD_LOCKS
    return fcntl(fd, F_OFD_SETLK, &fl);
#else
    return fcntl(fd, F_SETLK, &fl);
#endif
}

#if !PH_HAVE_OFD_LOCKS
/* The tags whose lease this process holds: a POSIX lock would not keep a
 * second client of this process out, and closing its descriptor of a
 * lease would drop the owner's lock. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static char (*reg)[PH_SPOOL_TAG_LEN + 1];
static size_t reg_n, reg_cap;

static bool reg_has(const char *tag) {
    pthread_mutex_lock(&reg_mu);
    bool found = false;
    for (size_t k = 0; k < reg_n && !found; k++) found = !strcmp(reg[k], tag);
    pthread_mutex_unlock(&reg_mu);
    return found;
}

static int reg_add(const char *tag) {
    pthread_mutex_lock(&reg_mu);
    int rc = 0;
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 8;
        void *r = realloc(reg, cap * sizeof *reg);
        if (r) {
            reg = r;
            reg_cap = cap;
        } else {
            rc = -1;
        }
    }
    if (!rc) snprintf(reg[reg_n++], sizeof *reg, "%s", tag);
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

static void reg_del(const char *tag) {
    pthread_mutex_lock(&reg_mu);
    for (size_t k = 0; k < reg_n; k++)
        if (!strcmp(reg[k], tag)) {
            memcpy(reg[k], reg[--reg_n], sizeof *reg);
            break;
        }
    pthread_mutex_unlock(&reg_mu);
}
#else
static bool reg_has(const char *tag) {
    (void)tag;
    return false;
}
static int reg_add(const char *tag) {
    (void)tag;
    return 0;
}
static void reg_del(const char *tag) { (void)tag; }
#endif

void posthog__spool_fork_child(ph_spool_t *s) {
    /* The child owns nothing of its parent's. Its memory is a copy: the
     * parent's file list is abandoned without freeing anything shared. */
#if !PH_HAVE_OFD_LOCKS
    reg_n = 0;
    pthread_mutex_init(&reg_mu, NULL);
#endif
    if (s) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_mutex_init(&s->amu, NULL);
        s->idle = NULL;
        s->idle_events = 0;
        /* the parent's segments are its own: never appended to by the child */
        if (s->cur && s->cur->fd >= 0) close(s->cur->fd);
        s->cur = NULL;
        s->segs = NULL;
        s->nsegs = 0;
        /* an inherited copy of an open-file-description lock would keep the
         * parent's lease held after the parent died */
        if (s->lease_fd >= 0) close(s->lease_fd);
        s->lease_fd = -1;
        s->tag[0] = '\0';
    }
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

static int fsync_dir(ph_spool_t *s) { return FAULT(before_fsync) ? -1 : fsync(s->dfd); }

/* Every file of the spool is opened this way: relative to the directory,
 * never through a symlink, never inherited by an exec'd program; created
 * 0600. */
static int open_at(int dfd, const char *name, int flags) {
    return openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static bool is_spool_name(const char *n) {
    size_t l = strlen(n);
    return l > 9 && !strncmp(n, "ph-", 3) && !strcmp(n + l - 6, ".spool");
}

static bool is_tag(const char *p, size_t n) {
    if (n != PH_SPOOL_TAG_LEN) return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return false;
    return true;
}

/* The owner tag of a name: "ph-...-<seq>.<tag>.spool", ".tmp-<tag>-..." or
 * ".lease-<tag>". Returns its start, or NULL for an untagged name (written
 * by the crash handler or by an older version). */
static const char *name_tag(const char *n) {
    size_t l = strlen(n);
    if (is_spool_name(n)) {
        if (l < 6 + 1 + PH_SPOOL_TAG_LEN + 3) return NULL;
        const char *t = n + l - 6 - PH_SPOOL_TAG_LEN;
        return t[-1] == '.' && is_tag(t, PH_SPOOL_TAG_LEN) ? t : NULL;
    }
    size_t pl = !strncmp(n, TMP_PREFIX, 5) ? 5 : !strncmp(n, LEASE_PREFIX, 7) ? 7 : 0;
    if (!pl || l < pl + PH_SPOOL_TAG_LEN || !is_tag(n + pl, PH_SPOOL_TAG_LEN)) return NULL;
    char end = n[pl + PH_SPOOL_TAG_LEN];
    return end == '\0' || end == '-' ? n + pl : NULL;
}

/* The name of a spool file with `tag` (or none: "" ) instead of its own. */
static void retag(char *out, size_t cap, const char *name, const char *tag) {
    const char *old = name_tag(name);
    size_t keep = old ? (size_t)(old - 1 - name) : strlen(name) - 6;
    snprintf(out, cap, "%.*s%s%s.spool", (int)keep, name, *tag ? "." : "", tag);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the directory's spool files (oldest first: the name
 * starts with the zero-padded creation time), and with `others` its temp
 * files and leases too. */
static void scan_failed(ph_spool_t *s, int err) {
    atomic_store(&s->scan_errno, err ? err : EIO);
    atomic_fetch_add(&s->scan_failures, 1);
}

uint64_t posthog__spool_scan_failures(ph_spool_t *s, int *err, uint64_t *total) {
    uint64_t all = atomic_load(&s->scan_failures);
    uint64_t before = atomic_exchange(&s->scan_reported, all);
    if (err) *err = atomic_load(&s->scan_errno);
    if (total) *total = all;
    return all > before ? all - before : 0;
}

/* A listing that fails (readdir's EOVERFLOW on a 32-bit build without
 * large-file support, EIO, no memory) is counted in scan_failures and the
 * names read so far are returned: never a silent "no files". */
static char **list_files(ph_spool_t *s, size_t *n_out, bool others) {
    *n_out = 0;
    int fd = FAULT(before_scan) ? -1 : openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        scan_failed(s, errno);
        if (fd >= 0) close(fd);
        return NULL;
    }
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int err = 0;
    for (;;) {
        errno = 0;
        if (!(e = readdir(d))) {
            err = errno; /* 0: the end */
            break;
        }
        bool other = !strncmp(e->d_name, TMP_PREFIX, 5) || !strncmp(e->d_name, LEASE_PREFIX, 7);
        if (!is_spool_name(e->d_name) && !(others && other)) continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 32;
            char **v2 = realloc(v, c2 * sizeof *v);
            if (!v2) {
                err = ENOMEM;
                break;
            }
            v = v2;
            cap = c2;
        }
        if (!(v[n] = strdup(e->d_name))) {
            err = ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (err) scan_failed(s, err);
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

/* Reads the header of a regular file in the directory: 0 ok (count,
 * created and its size filled), -1 bad or not there. */
static int read_header(int dfd, const char *name, uint32_t *count, int64_t *created,
                       uint64_t *size, int *version) {
    unsigned char h[PH_SPOOL_HDR];
    struct stat st;
    int fd = open_at(dfd, name, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return -1;
    int rc = -1;
    if (!fstat(fd, &st) && S_ISREG(st.st_mode) && pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h &&
        !memcmp(h, PH_SPOOL_MAGIC, 4) &&
        ((h[4] | h[5] << 8) == PH_SPOOL_VERSION || (h[4] | h[5] << 8) == PH_SPOOL_VERSION_SEG)) {
        if (version) *version = h[4] | h[5] << 8;
        *count = plausible_count(get32(h + 8), (uint64_t)st.st_size);
        *created = (int64_t)get64(h + 12);
        rc = 0;
    }
    if (size) *size = fstat(fd, &st) ? 0 : (uint64_t)st.st_size;
    close(fd);
    return rc;
}

/* ---------------------------------------------------------------- ownership */

/* A new owner tag. The process id is mixed in: a child forked without our
 * atfork handler (which reseeds the generator) would draw its parent's
 * next number. */
static void new_tag(char out[PH_SPOOL_TAG_LEN + 1]) {
    uint64_t r = posthog__rand_u64() ^ ((uint64_t)getpid() * UINT64_C(0x9E3779B97F4A7C15));
    snprintf(out, PH_SPOOL_TAG_LEN + 1, "%016llx", (unsigned long long)r);
}

/* Takes a lease with a new tag: created under a temp name and locked, then
 * linked to its name (which fails rather than replace a lease that exists),
 * so nobody ever sees a live owner's lease unlocked. [s->mu] */
static int take_lease(ph_spool_t *s) {
    if (s->lease_fd >= 0) return 0;
    if (s->released) {
        errno = EPERM;
        return -1;
    }
    for (int attempt = 0;; attempt++) {
        char tag[PH_SPOOL_TAG_LEN + 1], tmp[64], lease[64];
        new_tag(tag);
        snprintf(tmp, sizeof tmp, TMP_PREFIX "%s-lease", tag);
        snprintf(lease, sizeof lease, LEASE_PREFIX "%s", tag);
        int fd = open_at(s->dfd, tmp, O_RDWR | O_CREAT | O_EXCL);
        if (fd < 0) return -1;
        int rc = lock_fd(fd) || reg_add(tag) ? -1 : 0;
        if (!rc && linkat(s->dfd, tmp, s->dfd, lease, 0)) {
            rc = -1;
            reg_del(tag);
        }
        int e = errno;
        unlinkat(s->dfd, tmp, 0);
        if (!rc) {
            memcpy(s->tag, tag, sizeof tag);
            s->lease_fd = fd;
            return 0;
        }
        close(fd);
        errno = e;
        if (e != EEXIST || attempt == 3) return -1; /* EEXIST: that tag is taken, draw again */
    }
}

/* Copies this spool's tag, taking a lease first when it has none (a fresh
 * fork). After release_all the old tag is kept: what is written then is
 * nobody's. -1 when there is no tag at all. */
static int my_tag(ph_spool_t *s, char out[PH_SPOOL_TAG_LEN + 1]) {
    pthread_mutex_lock(&s->mu);
    int rc = s->lease_fd >= 0 || (s->released && s->tag[0]) ? 0 : take_lease(s);
    memcpy(out, s->tag, PH_SPOOL_TAG_LEN + 1);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Whether the owner with this tag holds its lease. Its lease gone or
 * lockable means it died or gave everything up: the lease is removed then
 * (the holder of the lock may, since nobody can take it meanwhile). */
static bool owner_alive(ph_spool_t *s, const char *tag) {
    if (reg_has(tag)) return true;
    char lease[64];
    snprintf(lease, sizeof lease, LEASE_PREFIX "%.*s", PH_SPOOL_TAG_LEN, tag);
    int fd = open_at(s->dfd, lease, O_RDWR | O_NONBLOCK);
    if (fd < 0) return errno != ENOENT; /* unknown: keep our hands off */
    bool alive = lock_fd(fd) != 0;
    if (!alive) unlinkat(s->dfd, lease, 0);
    close(fd); /* an OFD lock, or a POSIX lock on a file this process holds no lock on */
    return alive;
}

/* A few owners' answers per scan, so that a dead process's thousand files
 * cost one look at its lease. */
typedef struct {
    char tag[8][PH_SPOOL_TAG_LEN];
    bool alive[8];
    int n, next;
} owner_cache_t;

/* Whether `name` (a spool or temp file) belongs to nobody: untagged and not
 * locked by an older version's writer, or tagged by an owner that is gone.
 * `mine` is this spool's tag. */
static bool nobodys(ph_spool_t *s, const char *name, const char *mine, owner_cache_t *oc) {
    const char *t = name_tag(name);
    if (!t) {
        /* an older version locked its files with POSIX locks: respect a live one */
        int fd = open_at(s->dfd, name, O_RDWR | O_NONBLOCK);
        if (fd < 0) return false;
        struct stat st;
        bool free_ = !fstat(fd, &st) && S_ISREG(st.st_mode) && !lock_fd(fd);
        close(fd); /* we hold no other lock on this file: nothing of ours drops */
        return free_;
    }
    if (!memcmp(t, mine, PH_SPOOL_TAG_LEN)) return false;
    for (int i = 0; i < oc->n; i++)
        if (!memcmp(oc->tag[i], t, PH_SPOOL_TAG_LEN)) return !oc->alive[i];
    bool alive = owner_alive(s, t);
    int i = oc->n < 8 ? oc->n++ : (oc->next++ & 7);
    memcpy(oc->tag[i], t, PH_SPOOL_TAG_LEN);
    oc->alive[i] = alive;
    return !alive;
}

/* ---------------------------------------------------------------- open/close */

/* Opens the directory (creating it 0700) and checks that nobody but its
 * owner, this process's user, can change what is in it. -1 with errno and
 * the reason in err. */
static int open_dir(const char *dir, char *err, size_t errlen) {
    char why[200];
    int e, fd;
    struct stat st;
    why[0] = '\0';
    if (mkdir(dir, 0700) && errno != EEXIST) goto sys;
    if (!lstat(dir, &st) && S_ISLNK(st.st_mode)) {
        snprintf(why, sizeof why, "a symbolic link; the spool directory must be a real directory");
        e = ELOOP;
        goto refuse;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) goto sys;
    e = 0;
    if (fstat(fd, &st) || faccessat(fd, ".", R_OK | W_OK | X_OK, AT_EACCESS)) {
        e = errno;
    } else if (st.st_uid != geteuid()) {
        snprintf(why, sizeof why,
                 "owned by uid %lu, not by this process's user (uid %lu); the spool directory "
                 "must belong to the user that runs the client",
                 (unsigned long)st.st_uid, (unsigned long)geteuid());
        e = EPERM;
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, sizeof why,
                 "writable by group or others (mode %04lo); only its owner may write to the "
                 "spool directory (chmod go-w)",
                 (unsigned long)(st.st_mode & 07777));
        e = EPERM;
    }
    if (!e) return fd;
    close(fd);
    if (why[0]) goto refuse;
    errno = e;
sys:
    e = errno;
    snprintf(why, sizeof why, "%s", strerror(e));
refuse:
    if (err && errlen) snprintf(err, errlen, "%s", why);
    errno = e;
    return -1;
}

int posthog__spool_open(ph_spool_t *s, const char *dir, uint64_t max_bytes, int64_t max_age_ms,
                        char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->dfd = s->lease_fd = -1;
    int dfd = open_dir(dir, err, errlen);
    if (dfd < 0) return -1;
    /* absolute, so that a chdir() changes nothing (the crash handler
     * builds its paths from it) */
    char *abs = realpath(dir, NULL); /* the system's malloc: (free) */
    s->dir = strdup(abs ? abs : dir);
    (free)(abs);
    if (!s->dir) {
        close(dfd);
        errno = ENOMEM;
        return -1;
    }
    s->dfd = dfd;
    s->max_bytes = max_bytes;
    s->max_age_ms = max_age_ms;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->amu, NULL);
    posthog__spool_set_segments(s, 32, 0);
    pthread_mutex_lock(&s->mu);
    int rc = take_lease(s);
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "cannot create a lease in it: %s", strerror(e));
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->amu);
        close(dfd);
        free(s->dir);
        s->dir = NULL;
        errno = e;
        return -1;
    }
    size_t n;
    char **names = list_files(s, &n, false);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode))
            s->bytes_on_disk += (uint64_t)st.st_size;
    }
    free_list(names, n);
    return 0;
}

static void forget(ph_spool_file_t *f);
static void seg_seal(ph_spool_t *s);

void posthog__spool_release_all(ph_spool_t *s) {
    if (!s->dir) return;
    /* the current segment is made durable and closed: from now on it is
     * anybody's, and nothing more is appended to it */
    pthread_mutex_lock(&s->amu);
    seg_seal(s);
    pthread_mutex_lock(&s->mu);
    ph_spool_file_t *f = s->idle;
    s->idle = NULL;
    s->idle_events = 0;
    s->released = true;
    if (s->lease_fd >= 0) {
        /* unlinked before it is unlocked: whoever looks finds it gone */
        char lease[64];
        snprintf(lease, sizeof lease, LEASE_PREFIX "%s", s->tag);
        unlinkat(s->dfd, lease, 0);
        reg_del(s->tag);
        close(s->lease_fd);
        s->lease_fd = -1;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->amu);
    while (f) {
        ph_spool_file_t *next = f->next;
        forget(f);
        f = next;
    }
}

void posthog__spool_close(ph_spool_t *s) {
    if (!s->dir) return;
    posthog__spool_release_all(s);
    while (s->segs) { /* left on disk: nobody's now */
        ph_spool_seg_t *g = s->segs;
        s->segs = g->next;
        free(g->path);
        free(g);
    }
    s->nsegs = 0;
    pthread_mutex_destroy(&s->amu);
    close(s->dfd);
    s->dfd = -1;
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

static void seg_done(ph_spool_t *s, ph_spool_seg_t *g, uint64_t off, bool mu_held);
static uint32_t seg_scan_live(ph_spool_t *s, const char *name);

/* Deletes the oldest data until `need` more bytes fit: our idle files,
 * then files nobody owns. A batch in a segment is marked done; the
 * segment's space comes back once all of its batches are (the current
 * one's too: it is then unlinked). [s->amu, s->mu held] */
static void evict_for(ph_spool_t *s, uint64_t need, const char *mine, ph_spool_loss_t *loss) {
    ph_spool_file_t **pf = &s->idle;
    while (*pf && s->bytes_on_disk + need > s->max_bytes) {
        ph_spool_file_t *f = *pf;
        if (f->seg) {
            *pf = f->next;
            s->idle_events -= PH_MIN(s->idle_events, f->count);
            loss->evicted_size += f->count;
            loss->own_evicted += f->count;
            seg_done(s, f->seg, f->off, true);
            forget(f);
            continue;
        }
        if (unlinkat(s->dfd, f->name, 0)) return; /* still on disk, still ours: not lost */
        *pf = f->next;
        s->idle_events -= PH_MIN(s->idle_events, f->count);
        s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, f->bytes);
        loss->evicted_size += f->count;
        loss->own_evicted += f->count;
        forget(f);
    }
    if (s->bytes_on_disk + need <= s->max_bytes) return;
    size_t n;
    char **names = list_files(s, &n, false);
    owner_cache_t oc = {.n = 0};
    for (size_t i = 0; i < n && s->bytes_on_disk + need > s->max_bytes; i++) {
        struct stat st;
        if (fstatat(s->dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
            !nobodys(s, names[i], mine, &oc))
            continue;
        uint32_t count = 0;
        int64_t created;
        uint64_t size = 0;
        int version = 0;
        if (read_header(s->dfd, names[i], &count, &created, &size, &version)) count = 1;
        else if (version == PH_SPOOL_VERSION_SEG) count = seg_scan_live(s, names[i]);
        /* whoever removes or claims it first wins; the loser gets ENOENT */
        if (!unlinkat(s->dfd, names[i], 0)) {
            loss->evicted_size += count;
            s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, size);
        }
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

/* A file record for `name` in s's directory; NULL without memory. */
static ph_spool_file_t *file_new(ph_spool_t *s, const char *name) {
    ph_spool_file_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = path_join(s->dir, name);
    if (!f->path) {
        free(f);
        return NULL;
    }
    f->name = f->path + strlen(s->dir) + 1;
    f->dfd = s->dfd;
    return f;
}

ph_spool_file_t *posthog__spool_write(ph_spool_t *s, const char *const *events,
                                      const size_t *lens, uint32_t count, ph_spool_loss_t *loss) {
    uint64_t size = PH_SPOOL_HDR;
    for (uint32_t i = 0; i < count; i++) size += PH_SPOOL_REC_HDR + lens[i];
    if (size > s->max_bytes) {
        errno = EFBIG;
        return NULL;
    }
    char tag[PH_SPOOL_TAG_LEN + 1];
    if (my_tag(s, tag)) return NULL;
    unsigned char *buf = malloc(size);
    if (!buf) {
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

    char tmp[64], name[96];
    snprintf(tmp, sizeof tmp, TMP_PREFIX "%s-%llu", tag, (unsigned long long)seq);
    /* fixed-width fields, so that names sort by time, then pid, then sequence */
    snprintf(name, sizeof name, "ph-%013lld-%010ld-%010llu.%s.spool", (long long)now,
             (long)getpid(), (unsigned long long)seq, tag);
    ph_spool_file_t *f = file_new(s, name);
    int fd = -1, err = ENOMEM;
    if (!f) goto fail;
    if (FAULT(before_open)) goto fail_errno;
    /* the temp file carries our tag: nobody removes it while our lease lives */
    fd = open_at(s->dfd, tmp, O_RDWR | O_CREAT | O_EXCL);
    if (fd < 0) goto fail_errno;
    if (write_all(fd, buf, size)) goto fail_errno_tmp;
    if (FAULT(before_fsync) || fsync(fd)) goto fail_errno_tmp;
    /* room is made only now that the new data is safely written, so a
     * failed write never costs the oldest events */
    pthread_mutex_lock(&s->amu);
    pthread_mutex_lock(&s->mu);
    evict_for(s, size, tag, loss);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->amu);
    if (FAULT(before_rename) || renameat(s->dfd, tmp, s->dfd, name)) goto fail_errno_tmp;
    if (fsync_dir(s)) goto fail_errno_renamed;
    close(fd);
    f->bytes = size;
    f->count = count;
    f->created_ms = now;
    pthread_mutex_lock(&s->mu);
    s->bytes_on_disk += size;
    pthread_mutex_unlock(&s->mu);
    free(buf);
    return f;

fail_errno_renamed:
    err = errno;
    unlinkat(s->dfd, name, 0);
    goto fail_close;
fail_errno_tmp:
    err = errno ? errno : EIO;
    unlinkat(s->dfd, tmp, 0);
    goto fail_close;
fail_errno:
    err = errno ? errno : EIO;
fail_close:
    if (fd >= 0) close(fd);
fail:
    free(buf);
    if (f) free(f->path);
    free(f);
    errno = err;
    return NULL;
}

/* ---------------------------------------------------------------- segments */

void posthog__spool_set_segments(ph_spool_t *s, uint32_t max_files, int64_t fsync_interval_ms) {
    s->max_files = max_files < 2 ? 2 : max_files;
    s->seg_bytes = PH_MAX(s->max_bytes / s->max_files * 2, PH_SPOOL_MIN_SEGMENT);
    s->fsync_interval_ms = fsync_interval_ms < 0 ? 0 : fsync_interval_ms;
}

/* Whether a lazy fsync may run now (wall clock, so that tests can step
 * it; a clock set back makes it due at once rather than late). [amu] */
static bool sync_due(const ph_spool_t *s, int64_t now) {
    return s->fsync_interval_ms <= 0 || now < s->synced_ms ||
           now - s->synced_ms >= s->fsync_interval_ms;
}

/* A PPHB or PPHD record (20 bytes). */
static void ctl_record(unsigned char *o, uint32_t magic, uint64_t v) {
    put32(o, magic);
    put32(o + 4, PH_SPOOL_CTL_LEN);
    put64(o + 12, v);
    put32(o + 8, (uint32_t)crc32(0, o + 12, PH_SPOOL_CTL_LEN));
}

/* Unlinks a segment none of whose batches is pending and forgets it. [amu] */
static void seg_drop(ph_spool_t *s, ph_spool_seg_t *g, bool mu_held) {
    if (g->fd >= 0) close(g->fd);
    bool gone = !unlinkat(s->dfd, g->name, 0);
    if (!mu_held) pthread_mutex_lock(&s->mu);
    if (gone) s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, g->bytes);
    if (!mu_held) pthread_mutex_unlock(&s->mu);
    for (ph_spool_seg_t **p = &s->segs; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            s->nsegs--;
            break;
        }
    if (s->cur == g) s->cur = NULL;
    free(g->path);
    free(g);
}

/* The batch at `off` of segment g is delivered or dropped: a PPHD record
 * says so (not fsynced: a power loss may send it again, never lose it);
 * the last one unlinks the segment instead. [amu] */
static void seg_done(ph_spool_t *s, ph_spool_seg_t *g, uint64_t off, bool mu_held) {
    if (g->live) g->live--;
    if (!g->live) { /* nothing in it is pending (also the current one) */
        seg_drop(s, g, mu_held);
        return;
    }
    unsigned char r[PH_SPOOL_REC_HDR + PH_SPOOL_CTL_LEN];
    ctl_record(r, PH_SPOOL_DONE_MAGIC, off);
    int fd = g->fd >= 0 ? g->fd : open_at(s->dfd, g->name, O_WRONLY | O_APPEND);
    if (fd < 0) return;
    if (!write_all(fd, r, sizeof r)) {
        g->bytes += sizeof r;
        g->dirty = true;
        if (!mu_held) pthread_mutex_lock(&s->mu);
        s->bytes_on_disk += sizeof r;
        if (!mu_held) pthread_mutex_unlock(&s->mu);
    }
    if (fd != g->fd) close(fd);
}

/* fsyncs the current segment (and the directory once, for its name). [amu] */
static int seg_sync(ph_spool_t *s, ph_spool_seg_t *g) {
    if (g->fd < 0 || (!g->dirty && g->named)) return 0;
    if (g->dirty) {
        if (FAULT(before_fsync) || fsync(g->fd)) return -1;
        g->dirty = false;
    }
    if (!g->named) {
        if (fsync_dir(s)) return -1;
        g->named = true;
    }
    return 0;
}

/* Ends the current segment: made durable and closed (nothing more is
 * appended); unlinked when nothing in it is pending. [amu] */
static void seg_seal(ph_spool_t *s) {
    ph_spool_seg_t *g = s->cur;
    if (!g) return;
    (void)seg_sync(s, g); /* best effort: its batches were written */
    close(g->fd);
    g->fd = -1;
    s->cur = NULL;
    if (!g->live) seg_drop(s, g, false);
}

/* Room for a new segment under max_files: the oldest segment whose pending
 * batches are all idle is evicted (counted). false when none can be. [amu, mu] */
static bool evict_oldest_seg(ph_spool_t *s, ph_spool_loss_t *loss) {
    for (ph_spool_seg_t *g = s->segs; g; g = g->next) {
        if (g == s->cur) continue;
        uint32_t idle = 0;
        for (ph_spool_file_t *f = s->idle; f; f = f->next) idle += f->seg == g;
        if (idle != g->live) continue; /* some of it is being sent */
        for (ph_spool_file_t **p = &s->idle; *p;) {
            ph_spool_file_t *f = *p;
            if (f->seg != g) {
                p = &f->next;
                continue;
            }
            *p = f->next;
            s->idle_events -= PH_MIN(s->idle_events, f->count);
            loss->evicted_size += f->count;
            loss->own_evicted += f->count;
            forget(f);
        }
        g->live = 0;
        seg_drop(s, g, true);
        return true;
    }
    return false;
}

/* A new current segment: its header written under a temp name, then
 * renamed (a segment with a final name always has a header). [amu] */
static ph_spool_seg_t *seg_create(ph_spool_t *s, const char *tag, int64_t now) {
    pthread_mutex_lock(&s->mu);
    uint64_t seq = ++s->seq;
    pthread_mutex_unlock(&s->mu);
    char tmp[64], name[96];
    snprintf(tmp, sizeof tmp, TMP_PREFIX "%s-%llu", tag, (unsigned long long)seq);
    snprintf(name, sizeof name, "ph-%013lld-%010ld-%010llu.%s.spool", (long long)now,
             (long)getpid(), (unsigned long long)seq, tag);
    ph_spool_seg_t *g = calloc(1, sizeof *g);
    if (!g || !(g->path = path_join(s->dir, name))) {
        free(g);
        errno = ENOMEM;
        return NULL;
    }
    g->name = g->path + strlen(s->dir) + 1;
    unsigned char h[PH_SPOOL_HDR] = {0};
    memcpy(h, PH_SPOOL_MAGIC, 4);
    h[4] = PH_SPOOL_VERSION_SEG;
    put64(h + 12, (uint64_t)now);
    int fd = -1;
    if (FAULT(before_open)) goto fail;
    fd = open_at(s->dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_APPEND);
    if (fd < 0) goto fail;
    if (write_all(fd, h, sizeof h) || FAULT(before_rename) ||
        renameat(s->dfd, tmp, s->dfd, name)) {
        int e = errno ? errno : EIO;
        unlinkat(s->dfd, tmp, 0);
        close(fd);
        errno = e;
        goto fail;
    }
    g->fd = fd;
    g->bytes = PH_SPOOL_HDR;
    g->created_ms = now;
    g->dirty = true;
    ph_spool_seg_t **p = &s->segs;
    while (*p) p = &(*p)->next;
    *p = g;
    s->nsegs++;
    pthread_mutex_lock(&s->mu);
    s->bytes_on_disk += PH_SPOOL_HDR;
    pthread_mutex_unlock(&s->mu);
    return g;
fail:;
    int e = errno ? errno : EIO;
    free(g->path);
    free(g);
    errno = e;
    return NULL;
}

ph_spool_file_t *posthog__spool_append(ph_spool_t *s, const char *const *events,
                                       const size_t *lens, uint32_t count, bool sync,
                                       ph_spool_loss_t *loss) {
    uint64_t size = PH_SPOOL_REC_HDR + PH_SPOOL_CTL_LEN;
    for (uint32_t i = 0; i < count; i++) size += PH_SPOOL_REC_HDR + lens[i];
    if (size + PH_SPOOL_HDR > s->max_bytes) {
        errno = EFBIG;
        return NULL;
    }
    char tag[PH_SPOOL_TAG_LEN + 1];
    if (my_tag(s, tag)) return NULL;
    pthread_mutex_lock(&s->amu);
    pthread_mutex_lock(&s->mu);
    bool released = s->released;
    pthread_mutex_unlock(&s->mu);
    if (released) { /* nobody's from now on: a complete file of its own */
        pthread_mutex_unlock(&s->amu);
        return posthog__spool_write(s, events, lens, count, loss);
    }
    unsigned char *buf = malloc(size);
    if (!buf) {
        pthread_mutex_unlock(&s->amu);
        errno = ENOMEM;
        return NULL;
    }
    ctl_record(buf, PH_SPOOL_BATCH_MAGIC, count);
    unsigned char *o = buf + PH_SPOOL_REC_HDR + PH_SPOOL_CTL_LEN;
    for (uint32_t i = 0; i < count; i++) {
        put32(o, PH_SPOOL_REC_MAGIC);
        put32(o + 4, (uint32_t)lens[i]);
        put32(o + 8, (uint32_t)crc32(0, (const Bytef *)events[i], (uInt)lens[i]));
        memcpy(o + 12, events[i], lens[i]);
        o += PH_SPOOL_REC_HDR + lens[i];
    }
    int64_t now = posthog__now_ms();
    ph_spool_file_t *f = NULL;
    int err = 0;
    ph_spool_seg_t *g = s->cur;
    if (g && g->bytes > PH_SPOOL_HDR && g->bytes + size > s->seg_bytes) seg_seal(s);
    /* Room first (a segment's space comes back only when all of it is
     * done, so this cannot wait until the batch is written as a one-batch
     * file's can): the oldest data goes, then at most max_files segments. */
    pthread_mutex_lock(&s->mu);
    evict_for(s, size + (s->cur ? 0 : PH_SPOOL_HDR), tag, loss);
    if (!s->cur)
        while (s->nsegs >= s->max_files && evict_oldest_seg(s, loss)) {
        }
    pthread_mutex_unlock(&s->mu);
    if (!s->cur) {
        if (!(s->cur = seg_create(s, tag, now))) {
            err = errno;
            goto out;
        }
    }
    g = s->cur;
    uint64_t off = g->bytes;
    if (!(f = file_new(s, g->name))) {
        err = ENOMEM;
        goto out;
    }
    if (FAULT(before_append) || write_all(g->fd, buf, size)) {
        err = errno ? errno : EIO;
        if (ftruncate(g->fd, (off_t)off)) { /* a torn tail: readers stop there */
        }
        goto fail;
    }
    g->bytes += size;
    g->live++;
    g->dirty = true;
    pthread_mutex_lock(&s->mu);
    s->bytes_on_disk += size;
    pthread_mutex_unlock(&s->mu);
    if (sync || sync_due(s, now)) {
        if (seg_sync(s, g)) {
            err = errno ? errno : EIO;
            if (sync) { /* not durable: the caller keeps the events; undo */
                seg_done(s, g, off, false);
                goto fail;
            }
        }
        if (!sync || s->fsync_interval_ms <= 0) s->synced_ms = now;
    }
    f->seg = g;
    f->off = off;
    f->bytes = size;
    f->count = count;
    f->created_ms = now;
    goto out;
fail:
    if (f) forget(f);
    f = NULL;
out:
    pthread_mutex_unlock(&s->amu);
    free(buf);
    if (!f) errno = err;
    return f;
}

int64_t posthog__spool_tick(ph_spool_t *s) {
    int64_t wait = INT64_MAX;
    /* never wait behind a durable capture's fsync (which syncs the file
     * anyway): look again a little later */
    if (pthread_mutex_trylock(&s->amu)) return 10;
    ph_spool_seg_t *g = s->cur;
    if (g && (g->dirty || !g->named)) {
        int64_t now = posthog__now_ms();
        if (sync_due(s, now)) {
            s->synced_ms = now;
            if (seg_sync(s, g)) wait = s->fsync_interval_ms; /* try again later */
        } else {
            wait = s->synced_ms + s->fsync_interval_ms - now;
        }
    }
    pthread_mutex_unlock(&s->amu);
    return wait;
}

/* A window on a file for reading its records with few system calls. */
typedef struct {
    int fd;
    uint64_t size, base;
    size_t len;
    unsigned char buf[1 << 16];
} win_t;

static int pread_full(int fd, void *buf, size_t n, uint64_t off);

static const unsigned char *win_get(win_t *w, uint64_t off, size_t n) {
    if (off > w->size || n > w->size - off || n > sizeof w->buf) return NULL;
    if (off >= w->base && off + n <= w->base + w->len) return w->buf + (off - w->base);
    size_t got = (size_t)PH_MIN((uint64_t)sizeof w->buf, w->size - off);
    if (pread_full(w->fd, w->buf, got, off)) {
        w->len = 0;
        return NULL;
    }
    w->base = off;
    w->len = got;
    return w->buf;
}

/* A batch found in a segment. */
typedef struct {
    uint64_t off, end;
    uint32_t count;
} seg_unit_t;

typedef struct {
    seg_unit_t *u;
    size_t nu, capu;
    uint64_t *done;
    size_t nd, capd;
    uint64_t valid_end; /* where the intact records end */
    uint32_t orphans;   /* event records outside any batch */
    bool torn;
    bool open_short;    /* torn inside a batch that is short of its count */
} seg_map_t;

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_done(const seg_map_t *m, uint64_t off) {
    return m->nd && bsearch(&off, m->done, m->nd, sizeof *m->done, u64_cmp);
}

/* Reads a segment's record headers (not the events): its batches, the done
 * markers, where it is torn. -1 out of memory or a read error. */
static int seg_map(int fd, uint64_t size, seg_map_t *m) {
    memset(m, 0, sizeof *m);
    win_t *w = malloc(sizeof *w);
    if (!w) return -1;
    w->fd = fd;
    w->size = size;
    w->base = w->len = 0;
    uint64_t i = PH_SPOOL_HDR;
    long cur = -1;
    uint32_t seen = 0;
    int rc = 0;
    while (i < size) {
        const unsigned char *h = win_get(w, i, PH_SPOOL_REC_HDR);
        uint32_t magic = h ? get32(h) : 0, len = h ? get32(h + 4) : 0, crc = h ? get32(h + 8) : 0;
        if (!h || len > PH_SPOOL_MAX_RECORD || len > size - i - PH_SPOOL_REC_HDR ||
            (magic != PH_SPOOL_REC_MAGIC && magic != PH_SPOOL_BATCH_MAGIC &&
             magic != PH_SPOOL_DONE_MAGIC)) {
            m->torn = true;
            m->open_short = cur >= 0 && seen < m->u[cur].count;
            break;
        }
        if (magic == PH_SPOOL_REC_MAGIC) {
            if (cur >= 0) {
                m->u[cur].end = i + PH_SPOOL_REC_HDR + len;
                seen++;
            } else {
                m->orphans++;
            }
        } else {
            const unsigned char *p = win_get(w, i + PH_SPOOL_REC_HDR, len);
            bool ok = p && len == PH_SPOOL_CTL_LEN && (uint32_t)crc32(0, p, len) == crc;
            cur = -1;
            if (ok && magic == PH_SPOOL_BATCH_MAGIC) {
                if (m->nu == m->capu) {
                    size_t c = m->capu ? m->capu * 2 : 64;
                    void *v = realloc(m->u, c * sizeof *m->u);
                    if (!v) {
                        rc = -1;
                        break;
                    }
                    m->u = v;
                    m->capu = c;
                }
                m->u[m->nu] = (seg_unit_t){i, i + PH_SPOOL_REC_HDR + len, get32(p)};
                cur = (long)m->nu++;
                seen = 0;
            } else if (ok) {
                if (m->nd == m->capd) {
                    size_t c = m->capd ? m->capd * 2 : 64;
                    void *v = realloc(m->done, c * sizeof *m->done);
                    if (!v) {
                        rc = -1;
                        break;
                    }
                    m->done = v;
                    m->capd = c;
                }
                m->done[m->nd++] = get64(p);
            }
        }
        i += PH_SPOOL_REC_HDR + len;
    }
    m->valid_end = i;
    free(w);
    if (m->nd) qsort(m->done, m->nd, sizeof *m->done, u64_cmp);
    return rc;
}

static void seg_map_free(seg_map_t *m) {
    free(m->u);
    free(m->done);
}

/* Events pending in a segment nobody owns (for what its eviction costs). */
static uint32_t seg_scan_live(ph_spool_t *s, const char *name) {
    int fd = open_at(s->dfd, name, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return 0;
    struct stat st;
    seg_map_t m = {0};
    uint32_t n = 0;
    if (!fstat(fd, &st) && !seg_map(fd, (uint64_t)st.st_size, &m)) {
        for (size_t k = 0; k < m.nu; k++)
            if (!is_done(&m, m.u[k].off)) n += PH_MIN(m.u[k].count, 1u << 24);
        n += m.orphans;
    }
    seg_map_free(&m);
    close(fd);
    return n ? n : 1;
}

/* A claimed segment (already renamed to our tag): its pending batches are
 * parked. A torn tail is cut off first, so the done markers appended from
 * now on are read. Returns the events adopted. [amu] */
static uint64_t seg_adopt(ph_spool_t *s, const char *name, int64_t created, int64_t now,
                          ph_spool_loss_t *loss) {
    int fd = open_at(s->dfd, name, O_RDWR | O_NONBLOCK);
    struct stat st;
    seg_map_t m = {0};
    if (fd < 0 || fstat(fd, &st) || seg_map(fd, (uint64_t)st.st_size, &m)) {
        if (fd >= 0) {
            seg_map_free(&m);
            close(fd);
        }
        return 0; /* ours now, tried again at the next scan of a later owner */
    }
    if (m.torn) {
        if (ftruncate(fd, (off_t)m.valid_end)) {
        }
        if (!m.open_short) loss->corrupt++;
    }
    loss->corrupt += m.orphans;
    close(fd);
    uint64_t events = 0;
    uint32_t live = 0;
    bool expired = s->max_age_ms > 0 && created < now - s->max_age_ms;
    for (size_t k = 0; k < m.nu; k++)
        if (!is_done(&m, m.u[k].off)) {
            live++;
            events += PH_MIN(m.u[k].count, 1u << 24);
        }
    ph_spool_seg_t *g = live && !expired ? calloc(1, sizeof *g) : NULL;
    if (g && !(g->path = path_join(s->dir, name))) {
        free(g);
        g = NULL;
    }
    if (!g) {
        if (expired) loss->evicted_age += (uint32_t)PH_MIN(events, UINT32_MAX);
        else if (live) { /* out of memory: give it back for later */
            char back[128];
            retag(back, sizeof back, name, "");
            renameat(s->dfd, name, s->dfd, back);
            seg_map_free(&m);
            return 0;
        }
        unlinkat(s->dfd, name, 0);
        seg_map_free(&m);
        return 0;
    }
    g->name = g->path + strlen(s->dir) + 1;
    g->fd = -1;
    g->bytes = m.valid_end;
    g->created_ms = created;
    g->named = true;
    ph_spool_seg_t **p = &s->segs;
    while (*p) p = &(*p)->next;
    *p = g;
    s->nsegs++;
    uint64_t adopted = 0;
    for (size_t k = 0; k < m.nu; k++) {
        if (is_done(&m, m.u[k].off)) continue;
        ph_spool_file_t *f = file_new(s, name);
        if (!f) continue; /* out of memory: it stays pending in the segment, for later */
        f->seg = g;
        f->off = m.u[k].off;
        f->bytes = m.u[k].end - m.u[k].off;
        f->count = PH_MIN(m.u[k].count, 1u << 24);
        f->created_ms = created;
        g->live++;
        posthog__spool_park(s, f);
        adopted += f->count;
    }
    seg_map_free(&m);
    if (!g->live) seg_drop(s, g, false);
    return adopted;
}

/* ---------------------------------------------------------------- adopt */

/* A temp file or lease in the directory: a dead owner's stale temp file
 * is removed; owner_alive removes a dead owner's lease. */
static void sweep_other(ph_spool_t *s, const char *name, const char *mine, owner_cache_t *oc,
                        int64_t now) {
    const char *t = name_tag(name);
    if (name[1] == 'l') { /* .lease-<tag> */
        if (t && memcmp(t, mine, PH_SPOOL_TAG_LEN)) (void)nobodys(s, name, mine, oc);
        return;
    }
    /* .tmp-<tag>-<n>; untagged ones (.tmp-<pid>-...) are the crash
     * handler's or an older version's: lock-probed by nobodys */
    if (t && !memcmp(t, mine, PH_SPOOL_TAG_LEN)) return; /* ours: being written */
    struct stat st;
    if (fstatat(s->dfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) return;
    if ((int64_t)st.st_mtime * 1000 >= now - STALE_TMP_MS) return; /* maybe being written */
    if (nobodys(s, name, mine, oc)) unlinkat(s->dfd, name, 0);
}

uint64_t posthog__spool_adopt(ph_spool_t *s, ph_spool_loss_t *loss) {
    char mine[PH_SPOOL_TAG_LEN + 1];
    if (my_tag(s, mine)) return 0;
    pthread_mutex_lock(&s->mu);
    bool released = s->released;
    /* a fresh mtime: a cleaner of old files (tmpfiles.d) never takes a live
     * owner's lease, which would hand its files to others */
    if (s->lease_fd >= 0) futimens(s->lease_fd, NULL);
    pthread_mutex_unlock(&s->mu);
    size_t n;
    char **names = list_files(s, &n, true);
    uint64_t adopted = 0;
    int64_t now = posthog__now_ms();
    uint64_t total = 0;
    owner_cache_t oc = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        if (name[0] == '.') {
            sweep_other(s, name, mine, &oc, now);
            continue;
        }
        struct stat st;
        if (fstatat(s->dfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) continue;
        total += (uint64_t)st.st_size;
        if (released || !nobodys(s, name, mine, &oc)) continue;
        /* claim it: of several claimants exactly one rename succeeds */
        char claimed[128];
        retag(claimed, sizeof claimed, name, mine);
        if (renameat(s->dfd, name, s->dfd, claimed)) continue;
        uint32_t count = 0;
        int64_t created = 0;
        uint64_t size = 0;
        int version = 0;
        if (read_header(s->dfd, claimed, &count, &created, &size, &version)) {
            /* not a spool file we can read: count it as one corrupt record */
            loss->corrupt++;
            unlinkat(s->dfd, claimed, 0);
            total -= PH_MIN(total, (uint64_t)st.st_size);
            continue;
        }
        if (version == PH_SPOOL_VERSION_SEG) {
            pthread_mutex_lock(&s->amu);
            adopted += seg_adopt(s, claimed, created, now, loss);
            pthread_mutex_unlock(&s->amu);
            struct stat st2; /* gone when nothing in it was pending, cut when torn */
            total -= PH_MIN(total, (uint64_t)st.st_size);
            if (!fstatat(s->dfd, claimed, &st2, AT_SYMLINK_NOFOLLOW)) total += (uint64_t)st2.st_size;
            continue;
        }
        if (s->max_age_ms > 0 && created < now - s->max_age_ms) {
            loss->evicted_age += count;
            unlinkat(s->dfd, claimed, 0);
            total -= PH_MIN(total, (uint64_t)st.st_size);
            continue;
        }
        ph_spool_file_t *f = file_new(s, claimed);
        if (!f) { /* out of memory: give it back for later */
            char back[128];
            retag(back, sizeof back, claimed, "");
            renameat(s->dfd, claimed, s->dfd, back);
            continue;
        }
        f->bytes = size;
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
    if (s->released) { /* after release_all the spool owns nothing: it stays for others */
        pthread_mutex_unlock(&s->mu);
        forget(f);
        return;
    }
    ph_spool_file_t **p = &s->idle;
    /* names sort by creation time, then pid and sequence */
    while (*p) {
        int d = strcmp((*p)->name, f->name);
        if (d > 0 || (!d && (*p)->off > f->off)) break;
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

/* Gives a file up: untagged, anybody may claim it. [no lock needed: f is
 * no longer listed] */
static void give_up(ph_spool_t *s, ph_spool_file_t *f) {
    char back[128];
    ph_spool_seg_t *g = f->seg;
    if (g) {
        /* a batch in a segment: the segment is given up with its last
         * pending batch (and never the one appended to) */
        pthread_mutex_lock(&s->amu);
        if (g->live) g->live--;
        if (!g->live && g != s->cur) {
            retag(back, sizeof back, g->name, "");
            renameat(f->dfd, g->name, f->dfd, back);
            for (ph_spool_seg_t **p = &s->segs; *p; p = &(*p)->next)
                if (*p == g) {
                    *p = g->next;
                    s->nsegs--;
                    break;
                }
            free(g->path);
            free(g);
        }
        pthread_mutex_unlock(&s->amu);
        forget(f);
        return;
    }
    retag(back, sizeof back, f->name, "");
    renameat(f->dfd, f->name, f->dfd, back); /* failing, it is nobody's once our lease ends */
    forget(f);
}

void posthog__spool_release_idle(ph_spool_t *s) {
    pthread_mutex_lock(&s->amu);
    seg_seal(s); /* so that its batches can be given up too */
    pthread_mutex_unlock(&s->amu);
    pthread_mutex_lock(&s->mu);
    ph_spool_file_t *f = s->idle;
    s->idle = NULL;
    s->idle_events = 0;
    pthread_mutex_unlock(&s->mu);
    while (f) {
        ph_spool_file_t *next = f->next;
        give_up(s, f);
        f = next;
    }
}

/* ---------------------------------------------------------------- read */

/* A record's payload is intact: its CRC matches and it is a JSON object. */
static bool record_ok(const char *p, uint32_t len, uint32_t crc) {
    int type = 0;
    return (uint32_t)crc32(0, (const Bytef *)p, len) == crc &&
           posthog__json_validate_event(p, len, &type, NULL) == POSTHOG_OK &&
           type == PH_JSON_OBJECT;
}

/* The records of a segment from `i` on (see seg_map for the rules): events
 * of batches not marked done in `m` go to fn. A batch short of its count
 * (a torn tail) loses the difference; an event outside any batch is
 * corrupt. */
static long walk_seg(const unsigned char *data, size_t n, size_t i, const seg_map_t *m,
                     ph_spool_event_fn fn, void *ud, ph_spool_loss_t *loss) {
    uint32_t good = 0, bad = 0, count = 0, seen = 0;
    bool open = false, done = false;
#define CLOSE_UNIT()                                                                            \
    do {                                                                                        \
        if (open && !done && seen < count && count - seen < (1u << 24)) bad += count - seen;    \
        open = false;                                                                           \
    } while (0)
    while (i < n) {
        uint32_t magic = n - i >= PH_SPOOL_REC_HDR ? get32(data + i) : 0;
        uint32_t len = magic ? get32(data + i + 4) : 0, crc = magic ? get32(data + i + 8) : 0;
        if (!magic || len > PH_SPOOL_MAX_RECORD || len > n - i - PH_SPOOL_REC_HDR ||
            (magic != PH_SPOOL_REC_MAGIC && magic != PH_SPOOL_BATCH_MAGIC &&
             magic != PH_SPOOL_DONE_MAGIC)) {
            /* torn or malformed tail: nothing after it can be trusted */
            if (!(open && !done && seen < count)) bad++;
            break;
        }
        const unsigned char *p = data + i + PH_SPOOL_REC_HDR;
        if (magic == PH_SPOOL_REC_MAGIC) {
            if (!open) {
                bad++;
            } else if (!done) {
                seen++;
                if (!record_ok((const char *)p, len, crc)) {
                    bad++;
                } else {
                    if (fn && fn((const char *)p, len, ud)) {
                        loss->corrupt += bad;
                        return good;
                    }
                    good++;
                }
            }
        } else {
            CLOSE_UNIT();
            if (magic == PH_SPOOL_BATCH_MAGIC && len == PH_SPOOL_CTL_LEN &&
                (uint32_t)crc32(0, p, len) == crc) {
                open = true;
                done = m && is_done(m, i);
                count = get32(p);
                seen = 0;
            }
        }
        i += PH_SPOOL_REC_HDR + len;
    }
    CLOSE_UNIT();
#undef CLOSE_UNIT
    loss->corrupt += bad;
    return good;
}

/* A whole segment image: the done markers first, then the pending events. */
static long parse_seg(const unsigned char *data, size_t n, ph_spool_event_fn fn, void *ud,
                      ph_spool_loss_t *loss) {
    seg_map_t m = {0};
    for (size_t i = PH_SPOOL_HDR; n - i >= PH_SPOOL_REC_HDR && i < n;) {
        uint32_t magic = get32(data + i), len = get32(data + i + 4);
        if (len > PH_SPOOL_MAX_RECORD || len > n - i - PH_SPOOL_REC_HDR ||
            (magic != PH_SPOOL_REC_MAGIC && magic != PH_SPOOL_BATCH_MAGIC &&
             magic != PH_SPOOL_DONE_MAGIC))
            break;
        const unsigned char *p = data + i + PH_SPOOL_REC_HDR;
        if (magic == PH_SPOOL_DONE_MAGIC && len == PH_SPOOL_CTL_LEN &&
            (uint32_t)crc32(0, p, len) == get32(data + i + 8)) {
            if (m.nd == m.capd) {
                size_t c = m.capd ? m.capd * 2 : 16;
                void *v = realloc(m.done, c * sizeof *m.done);
                if (!v) break; /* out of memory: those batches are read as pending */
                m.done = v;
                m.capd = c;
            }
            m.done[m.nd++] = get64(p);
        }
        i += PH_SPOOL_REC_HDR + len;
    }
    if (m.nd) qsort(m.done, m.nd, sizeof *m.done, u64_cmp);
    long rc = walk_seg(data, n, PH_SPOOL_HDR, &m, fn, ud, loss);
    free(m.done);
    return rc;
}

long posthog__spool_parse(const unsigned char *data, size_t n, ph_spool_event_fn fn, void *ud,
                          ph_spool_loss_t *loss) {
    if (n >= PH_SPOOL_HDR && !memcmp(data, PH_SPOOL_MAGIC, 4) &&
        (data[4] | data[5] << 8) == PH_SPOOL_VERSION_SEG)
        return parse_seg(data, n, fn, ud, loss);
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
    int fd = open_at(f->dfd, f->seg ? f->seg->name : f->name, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat st;
    if (posthog__spool_faults.before_read && posthog__spool_faults.before_read(f->path)) {
        close(fd);
        return -1;
    }
    unsigned char *buf = NULL;
    size_t n = 0, got = 0;
    uint64_t at = f->seg ? f->off : 0; /* a batch in a segment: its extent only */
    if (!fstat(fd, &st) && S_ISREG(st.st_mode) &&
        (!f->seg || f->off + f->bytes <= (uint64_t)st.st_size)) {
        n = f->seg ? (size_t)f->bytes : (size_t)st.st_size;
        buf = malloc(n ? n : 1);
    }
    while (buf && got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(at + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got < n) { /* read error, or truncated under us: try again later */
        free(buf);
        return -1;
    }
    long rc = f->seg ? walk_seg(buf, got, 0, NULL, fn, ud, loss)
                     : posthog__spool_parse(buf, got, fn, ud, loss);
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
    bool seg; /* parts of a batch in a segment are appended (durably) */
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
    ph_spool_file_t *f = pt->seg ? posthog__spool_append(s, pt->ev, pt->lens, pt->n, true, loss)
                                 : posthog__spool_write(s, pt->ev, pt->lens, pt->n, loss);
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
    int fd = open_at(f->dfd, f->seg ? f->seg->name : f->name, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return -1;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || pread_full(fd, h, sizeof h, 0)) {
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, i = PH_SPOOL_HDR;
    uint32_t count = get32(h + 8), good = 0, bad = 0;
    bool header_ok = !memcmp(h, PH_SPOOL_MAGIC, 4) && (h[4] | h[5] << 8) == PH_SPOOL_VERSION;
    if (f->seg) { /* a batch in a segment: its PPHB record, then its events */
        unsigned char b[PH_SPOOL_REC_HDR + PH_SPOOL_CTL_LEN];
        if (f->off + f->bytes > size || pread_full(fd, b, sizeof b, f->off)) {
            close(fd);
            return -1;
        }
        header_ok = get32(b) == PH_SPOOL_BATCH_MAGIC && get32(b + 4) == PH_SPOOL_CTL_LEN &&
                    (uint32_t)crc32(0, b + PH_SPOOL_REC_HDR, PH_SPOOL_CTL_LEN) == get32(b + 8);
        count = get32(b + PH_SPOOL_REC_HDR);
        i = f->off + sizeof b;
        size = f->off + f->bytes;
    }
    split_part_t pt = {.seg = f->seg != NULL};
    ph_spool_file_t *parts = NULL;
    ph_spool_loss_t mine = {0}; /* reported only once the split is done */
    int rc = 0;
    while (header_ok && i < size) {
        unsigned char rh[PH_SPOOL_REC_HDR];
        if (size - i < PH_SPOOL_REC_HDR || pread_full(fd, rh, sizeof rh, i) ||
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
        if (pread_full(fd, pt.data + pt.len, len, i + PH_SPOOL_REC_HDR)) {
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
    close(fd);
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
    free(f->path);
    free(f);
}

void posthog__spool_remove(ph_spool_t *s, ph_spool_file_t *f) {
    if (!f) return;
    if (f->seg) {
        pthread_mutex_lock(&s->amu);
        seg_done(s, f->seg, f->off, false);
        pthread_mutex_unlock(&s->amu);
        forget(f);
        return;
    }
    if (!unlinkat(f->dfd, f->name, 0)) {
        pthread_mutex_lock(&s->mu);
        s->bytes_on_disk -= PH_MIN(s->bytes_on_disk, f->bytes);
        pthread_mutex_unlock(&s->mu);
    }
    forget(f);
}

void posthog__spool_release(ph_spool_t *s, ph_spool_file_t *f) {
    if (f) give_up(s, f);
}
