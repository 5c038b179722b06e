/*
 * spool: the disk-backed retry buffer.
 *
 * A spool directory (option storage_path, created 0700) holds segments:
 * files named ph-<created_ms>-<pid>-<seq>.<tag>.spool (0600) to which a
 * client appends batches (posthog__spool_append: a PPHB record and the
 * events), marking each done with a PPHD record once delivered or dropped
 * and unlinking the segment when all are; fsynced at once for durable
 * writes, at most every fsync_interval_ms otherwise. One-batch files
 * (version 1: the previous version's, the crash handler's,
 * posthog__spool_write) are read as one batch. The format is in
 * docs/spool-format.md:
 *
 *   file   := header record*                  (version 1)
 *   seg    := header (record | batch | done)*  (version 2)
 *   header := "PHSP" u16 version u16 flags u32 count u64 created_ms  (20 bytes, LE)
 *   record := u32 magic(0x52485050 "PPHR") u32 len u32 crc32(payload) payload[len]
 *   batch  := u32 magic("PPHB") u32 8 u32 crc32 u32 count u32 0
 *   done   := u32 magic("PPHD") u32 8 u32 crc32 u64 offset-of-its-PPHB
 *
 * Each payload is one event as the JSON object PostHog receives (uuid and
 * timestamp included, never sent_at). Readers skip a record whose CRC does
 * not match and stop at a torn or malformed tail; both are counted.
 *
 * Ownership: every ph_spool_t (one per client) has a random owner tag
 * (16 hex digits) and a lease, ".lease-<tag>", a file on which it holds a
 * write lock for as long as it owns anything: an open-file-description lock
 * (F_OFD_SETLK) where the system has them, so that two clients of one
 * process exclude each other, else a POSIX lock (F_SETLK) plus a process
 * registry of live tags. The files it writes are named with its tag, and it
 * takes over a file nobody owns (an untagged one, or one whose owner's lease
 * is gone or unlocked: that process died or released it) by renaming it to
 * its own tag: rename is atomic, so exactly one claimant wins. A client
 * thus holds two descriptors (the directory and its lease) however many
 * files it owns. A forked child closes its copy of the lease and gets a tag
 * of its own when it first needs one, so it never touches its parent's files
 * and never keeps its parent's lease alive.
 *
 * The directory: created 0700 when missing; an existing one must be a real
 * directory (not a symlink), owned by this process's user and not writable
 * by group or others, or it is refused. It is opened once; every file is
 * then opened, renamed and removed relative to that descriptor with
 * O_NOFOLLOW, so a chdir() does not move the spool and a symlink planted in
 * it is never followed. Every descriptor is O_CLOEXEC.
 *
 * Only the flusher thread, durable-capture leaders and posthog_shutdown
 * (release_all, once the flusher is gone) call into this module; a
 * ph_spool_t's mutable fields are guarded by its mutex.
 */
#ifndef POSTHOG_SPOOL_H
#define POSTHOG_SPOOL_H

#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>

#include "common.h"

#define PH_SPOOL_MAGIC "PHSP"
#define PH_SPOOL_VERSION 1     /* a file of one batch (written by posthog__spool_write) */
#define PH_SPOOL_VERSION_SEG 2 /* a segment: batches appended (posthog__spool_append) */
#define PH_SPOOL_BATCH_MAGIC 0x42485050u /* "PPHB": a batch starts (u32 count, u32 0) */
#define PH_SPOOL_DONE_MAGIC 0x44485050u  /* "PPHD": the batch at u64 offset is done */
#define PH_SPOOL_CTL_LEN 8               /* payload bytes of a PPHB or PPHD record */
/* A segment is rotated when it reaches max_bytes * 2 / max_files (at least this). */
#define PH_SPOOL_MIN_SEGMENT ((uint64_t)64 << 10)
#define PH_SPOOL_HDR 20
#define PH_SPOOL_REC_MAGIC 0x52485050u
#define PH_SPOOL_REC_HDR 12
#define PH_SPOOL_MAX_RECORD (8u << 20)

#define PH_SPOOL_TAG_LEN 16

/* A segment file this spool owns: batches appended one after the other,
 * each marked done (a PPHD record) when delivered or dropped; the file is
 * unlinked once every batch in it is done. Only the current segment has a
 * descriptor open (for appending). */
typedef struct ph_spool_seg {
    char *path;           /* absolute, for messages */
    const char *name;     /* points into path */
    int fd;               /* O_APPEND while it is the current segment, else -1 */
    uint64_t bytes;       /* its size */
    uint32_t live;        /* batches in it that are not done */
    int64_t created_ms;
    bool named;           /* its name is durable (the directory was fsynced since) */
    bool dirty;           /* appended to since its last fsync */
    struct ph_spool_seg *next;
} ph_spool_seg_t;

/* A unit of spooled events: a whole file of one batch (seg NULL), or one
 * batch in a segment (seg, off). No descriptor is kept open: the file is
 * opened when read. */
typedef struct ph_spool_file {
    char *path;           /* absolute, for messages */
    const char *name;     /* the name in the directory (points into path) */
    int dfd;              /* the spool's directory (borrowed) */
    uint64_t bytes;
    uint32_t count;       /* events according to the header */
    int64_t created_ms;
    ph_spool_seg_t *seg;  /* the segment holding this batch, or NULL (a file of its own) */
    uint64_t off;         /* in seg: offset of its PPHB record; bytes is its extent */
    struct ph_spool_file *next;
} ph_spool_file_t;

/* Fault injection for tests: return non-zero to make the call fail with errno. */
typedef struct {
    int (*before_write)(void);
    int (*before_fsync)(void);
    int (*before_rename)(void);
    int (*before_open)(void);
    int (*before_read)(const char *path); /* reading a file's events (read, split) */
    int (*before_scan)(void);             /* listing the directory (opendir/readdir) */
    int (*before_append)(void);           /* a batch appended to a segment, before its
                                             write (not the done records: those are
                                             writes too, never fsynced) */
} ph_spool_faults_t;
extern ph_spool_faults_t posthog__spool_faults;

typedef struct {
    char *dir;                /* absolute path of the directory */
    int dfd;                  /* the directory, opened once (O_NOFOLLOW) */
    uint64_t max_bytes;
    int64_t max_age_ms;
    pthread_mutex_t mu;
    char tag[PH_SPOOL_TAG_LEN + 1]; /* [mu] owner tag; "" until the lease exists */
    int lease_fd;             /* [mu] the locked lease, -1 when none */
    bool released;            /* [mu] posthog__spool_release_all ran: owns nothing more */
    uint64_t seq;             /* [mu] file name sequence */
    uint64_t bytes_on_disk;   /* [mu] approximate total of *.spool files */
    ph_spool_file_t *idle;    /* [mu] owned files waiting to be sent, oldest first */
    uint64_t idle_events;     /* [mu] events in `idle` */
    /* segments (posthog__spool_append); lock order: amu, then mu */
    pthread_mutex_t amu;      /* serialises every write to a segment */
    ph_spool_seg_t *segs;     /* [amu] this spool's segments, oldest first */
    ph_spool_seg_t *cur;      /* [amu] the one appended to, or NULL */
    uint32_t nsegs;           /* [amu] */
    uint32_t max_files;       /* segments at most (posthog__spool_set_segments) */
    uint64_t seg_bytes;       /* a segment is rotated at this size */
    int64_t fsync_interval_ms; /* lazy appends: fsync at most this often (0: every append) */
    int64_t synced_ms;        /* [amu] wall-clock ms of the last lazy fsync */
    _Atomic uint64_t scan_failures; /* directory listings that failed (opendir,
                                     * readdir, memory): files may have been missed */
    _Atomic uint64_t scan_reported; /* of those, already reported */
    _Atomic int scan_errno;   /* the last failure's errno */
} ph_spool_t;

/* What happened to events while reading or evicting. */
typedef struct {
    uint32_t corrupt;      /* records skipped: bad CRC, torn tail, bad header */
    uint32_t evicted_size; /* events evicted to stay under max_bytes */
    uint32_t evicted_age;  /* events evicted for being older than max_age */
    uint32_t own_evicted;  /* of evicted_size: events from files this process owned */
} ph_spool_loss_t;

#ifndef POSTHOG_NO_SPOOL
/* Creates (0700) or opens and checks the directory, and takes a lease.
 * 0 ok; -1 with errno and, when err is not NULL, what is wrong in err
 * (for instance "writable by group or others (mode 0777): ..."). */
int posthog__spool_open(ph_spool_t *s, const char *dir, uint64_t max_bytes, int64_t max_age_ms,
                        char *err, size_t errlen);
/* Releases everything (posthog__spool_release_all), closes the directory. */
void posthog__spool_close(ph_spool_t *s);
/* Gives up every file: the idle ones are forgotten (left on disk) and the
 * lease is removed, so any other client or process may adopt them now.
 * Files written later are nobody's either. For posthog_shutdown. */
void posthog__spool_release_all(ph_spool_t *s);

/*
 * Writes `count` events (JSON texts, lengths in lens[]) as one durable
 * file and returns it locked (the caller owns it), or NULL with errno set.
 * First evicts the oldest data to stay under max_bytes: this process's
 * idle files, then files nobody owns (counted in *loss).
 */
ph_spool_file_t *posthog__spool_write(ph_spool_t *s, const char *const *events,
                                      const size_t *lens, uint32_t count, ph_spool_loss_t *loss);

/* Segment settings: at most max_files segments of this spool (the oldest
 * is evicted, counted, to make room for a new one), rotated at
 * max(max_bytes * 2 / max_files, PH_SPOOL_MIN_SEGMENT); lazy appends are
 * fsynced at most every fsync_interval_ms (0: at every append). */
void posthog__spool_set_segments(ph_spool_t *s, uint32_t max_files, int64_t fsync_interval_ms);

/*
 * Appends `count` events as one batch to this spool's current segment
 * (a new one when there is none or it is full) and returns the batch, owned
 * by the caller, or NULL with errno set. `sync`: durable before the call
 * returns (fsync of the segment, and of the directory for a new one);
 * otherwise it is written (it survives the process being killed) and
 * fsynced within fsync_interval_ms (posthog__spool_tick). Evicts as
 * posthog__spool_write does. After release_all it writes a file of its own.
 */
ph_spool_file_t *posthog__spool_append(ph_spool_t *s, const char *const *events,
                                       const size_t *lens, uint32_t count, bool sync,
                                       ph_spool_loss_t *loss);
/* Runs a lazy fsync that is due. Returns the ms until the next one is
 * due, INT64_MAX when nothing waits for one. */
int64_t posthog__spool_tick(ph_spool_t *s);

/*
 * Scans the directory for files nobody owns (untagged, or of an owner whose
 * lease is gone), claims them (renamed to this spool's tag) and parks them
 * (idle list). Files older than max_age are deleted and counted; stale temp
 * files and leases of dead owners are removed. Returns the number of events
 * adopted.
 */
uint64_t posthog__spool_adopt(ph_spool_t *s, ph_spool_loss_t *loss);

/* Puts an owned file on the idle list (kept oldest first). */
void posthog__spool_park(ph_spool_t *s, ph_spool_file_t *f);
/* Takes the oldest idle file (the caller now sends it), or NULL. */
ph_spool_file_t *posthog__spool_take(ph_spool_t *s);
/* Events in idle files. */
uint64_t posthog__spool_idle_events(ph_spool_t *s);
/* Gives up every idle file (renamed untagged), leaving it on disk for
 * another client or process. */
void posthog__spool_release_idle(ph_spool_t *s);

/*
 * Reads a file's events: calls fn for each intact record in order.
 * Corrupt records are skipped and counted in loss->corrupt. Returns the
 * number of intact events, or -1 if the file could not be read.
 */
typedef int (*ph_spool_event_fn)(const char *json, size_t len, void *ud);
long posthog__spool_read(ph_spool_file_t *f, ph_spool_event_fn fn, void *ud, ph_spool_loss_t *loss);

/*
 * A file too large to load as one batch: rewrites an owned file's intact
 * events as files of at most part_bytes each (a larger event alone in
 * one), parks them, and deletes the original. Reads one record at a time
 * (memory: one part). Records that do not check out are counted in
 * loss->corrupt, as posthog__spool_read does; space made for the parts in
 * loss->evicted_*. Returns the events written, or -1 (nothing changed:
 * parts already written are deleted, the original stays).
 */
long posthog__spool_split(ph_spool_t *s, ph_spool_file_t *f, uint64_t part_bytes,
                          ph_spool_loss_t *loss);

/* Directory listings that failed since the last call (never silent: the
 * flusher logs them), with the last errno in *err; the running total of
 * failures in *total. */
uint64_t posthog__spool_scan_failures(ph_spool_t *s, int *err, uint64_t *total);

/* Deletes a file this process owns (delivered or permanently rejected). */
void posthog__spool_remove(ph_spool_t *s, ph_spool_file_t *f);
/* Gives up ownership without deleting (the events stay for later). */
void posthog__spool_release(ph_spool_t *s, ph_spool_file_t *f);
uint64_t posthog__spool_bytes(ph_spool_t *s);

/* In a forked child: forget the files the parent owned (no unlink) and
 * close the copy of its lease; the child gets its own tag when it first
 * writes or adopts. `s` may be NULL. Only async-signal-safe calls. */
void posthog__spool_fork_child(ph_spool_t *s);

/* Parses a whole file image (for the fuzzer and tests). */
long posthog__spool_parse(const unsigned char *data, size_t n, ph_spool_event_fn fn, void *ud,
                          ph_spool_loss_t *loss);

#else /* POSTHOG_NO_SPOOL */
/*
 * Built without the spool (-DPOSTHOG_WITH_SPOOL=OFF): posthog_client_new
 * refuses storage_path, so a client never has a spool (c->spool is NULL)
 * and none of these is reached; they fail like an unusable directory.
 */
#include <errno.h>
static inline int posthog__spool_open(ph_spool_t *s, const char *dir, uint64_t max_bytes,
                                      int64_t max_age_ms, char *err, size_t errlen) {
    (void)s, (void)dir, (void)max_bytes, (void)max_age_ms;
    if (err && errlen) snprintf(err, errlen, "this build has no disk spool");
    errno = ENOTSUP;
    return -1;
}
static inline void posthog__spool_close(ph_spool_t *s) { (void)s; }
static inline void posthog__spool_release_all(ph_spool_t *s) { (void)s; }
static inline void posthog__spool_set_segments(ph_spool_t *s, uint32_t m, int64_t i) {
    (void)s, (void)m, (void)i;
}
static inline ph_spool_file_t *posthog__spool_append(ph_spool_t *s, const char *const *events,
                                                     const size_t *lens, uint32_t count,
                                                     bool sync, ph_spool_loss_t *loss) {
    (void)s, (void)events, (void)lens, (void)count, (void)sync, (void)loss;
    errno = ENOTSUP;
    return NULL;
}
static inline int64_t posthog__spool_tick(ph_spool_t *s) {
    (void)s;
    return INT64_MAX;
}
static inline uint64_t posthog__spool_adopt(ph_spool_t *s, ph_spool_loss_t *loss) {
    (void)s, (void)loss;
    return 0;
}
static inline void posthog__spool_park(ph_spool_t *s, ph_spool_file_t *f) { (void)s, (void)f; }
static inline ph_spool_file_t *posthog__spool_take(ph_spool_t *s) {
    (void)s;
    return NULL;
}
static inline uint64_t posthog__spool_idle_events(ph_spool_t *s) {
    (void)s;
    return 0;
}
typedef int (*ph_spool_event_fn)(const char *json, size_t len, void *ud);
static inline long posthog__spool_read(ph_spool_file_t *f, ph_spool_event_fn fn, void *ud,
                                       ph_spool_loss_t *loss) {
    (void)f, (void)fn, (void)ud, (void)loss;
    return -1;
}
static inline long posthog__spool_split(ph_spool_t *s, ph_spool_file_t *f, uint64_t part_bytes,
                                        ph_spool_loss_t *loss) {
    (void)s, (void)f, (void)part_bytes, (void)loss;
    return -1;
}
static inline void posthog__spool_remove(ph_spool_t *s, ph_spool_file_t *f) { (void)s, (void)f; }
static inline uint64_t posthog__spool_bytes(ph_spool_t *s) {
    (void)s;
    return 0;
}
static inline void posthog__spool_fork_child(ph_spool_t *s) { (void)s; }
static inline uint64_t posthog__spool_scan_failures(ph_spool_t *s, int *err, uint64_t *total) {
    (void)s, (void)err;
    if (total) *total = 0;
    return 0;
}
#endif /* POSTHOG_NO_SPOOL */

#endif
