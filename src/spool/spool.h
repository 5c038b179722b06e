/*
 * spool: the disk-backed retry buffer.
 *
 * A spool directory (option storage_path, created 0700) holds one file per
 * batch of events, named ph-<created_ms>-<pid>-<seq>.spool (0600), written
 * as: temp file, fsync, rename, fsync of the directory. The format is in
 * docs/spool-format.md:
 *
 *   file   := header record*
 *   header := "PHSP" u16 version(1) u16 flags u32 count u64 created_ms  (20 bytes, LE)
 *   record := u32 magic(0x52485050 "PPHR") u32 len u32 crc32(payload) payload[len]
 *
 * Each payload is one event as the JSON object PostHog receives (uuid and
 * timestamp included, never sent_at). Readers skip a record whose CRC does
 * not match and stop at a torn or malformed tail; both are counted.
 *
 * Ownership across processes: a file is sent by the process that holds a
 * POSIX write lock (fcntl F_SETLK) on it. POSIX locks are per process, are
 * released when the process dies, and are not inherited by fork(), so a
 * dead process's files are adopted by the next one and a forked child
 * never touches its parent's. Within one process an in-memory registry
 * keeps two clients from taking the same file (and from closing each
 * other's locks: closing any descriptor drops the process's locks).
 *
 * Only the flusher thread and durable-capture leaders call into this
 * module; a ph_spool_t's mutable fields are guarded by its mutex.
 */
#ifndef POSTHOG_SPOOL_H
#define POSTHOG_SPOOL_H

#include <pthread.h>
#include <sys/types.h>

#include "common.h"

#define PH_SPOOL_MAGIC "PHSP"
#define PH_SPOOL_VERSION 1
#define PH_SPOOL_HDR 20
#define PH_SPOOL_REC_MAGIC 0x52485050u
#define PH_SPOOL_REC_HDR 12
#define PH_SPOOL_MAX_RECORD (8u << 20)

/* A spool file this process owns (locked). */
typedef struct ph_spool_file {
    char *path;
    int fd;               /* open, with the POSIX lock held */
    uint64_t bytes;
    uint32_t count;       /* events according to the header */
    int64_t created_ms;
    struct ph_spool_file *next;
} ph_spool_file_t;

/* Fault injection for tests: return non-zero to make the call fail with errno. */
typedef struct {
    int (*before_write)(void);
    int (*before_fsync)(void);
    int (*before_rename)(void);
    int (*before_open)(void);
    int (*before_read)(const char *path); /* reading a file's events (read, split) */
} ph_spool_faults_t;
extern ph_spool_faults_t posthog__spool_faults;

typedef struct {
    char *dir;
    uint64_t max_bytes;
    int64_t max_age_ms;
    pthread_mutex_t mu;
    uint64_t seq;             /* [mu] file name sequence */
    uint64_t bytes_on_disk;   /* [mu] approximate total of *.spool files */
    ph_spool_file_t *idle;    /* [mu] owned files waiting to be sent, oldest first */
    uint64_t idle_events;     /* [mu] events in `idle` */
} ph_spool_t;

/* What happened to events while reading or evicting. */
typedef struct {
    uint32_t corrupt;      /* records skipped: bad CRC, torn tail, bad header */
    uint32_t evicted_size; /* events evicted to stay under max_bytes */
    uint32_t evicted_age;  /* events evicted for being older than max_age */
    uint32_t own_evicted;  /* of evicted_size: events from files this process owned */
} ph_spool_loss_t;

/* Creates (0700) or opens the directory. 0 ok, -1 with errno. */
int posthog__spool_open(ph_spool_t *s, const char *dir, uint64_t max_bytes, int64_t max_age_ms);
void posthog__spool_close(ph_spool_t *s);

/*
 * Writes `count` events (JSON texts, lengths in lens[]) as one durable
 * file and returns it locked (the caller owns it), or NULL with errno set.
 * First evicts the oldest data to stay under max_bytes: this process's
 * idle files, then files nobody owns (counted in *loss).
 */
ph_spool_file_t *posthog__spool_write(ph_spool_t *s, const char *const *events,
                                      const size_t *lens, uint32_t count, ph_spool_loss_t *loss);

/*
 * Scans the directory for files nobody owns (not locked by a live process
 * nor by this one), locks them and parks them (idle list). Files older
 * than max_age are deleted and counted; stale temp files of dead
 * processes are removed. Returns the number of events adopted.
 */
uint64_t posthog__spool_adopt(ph_spool_t *s, ph_spool_loss_t *loss);

/* Puts an owned file on the idle list (kept oldest first). */
void posthog__spool_park(ph_spool_t *s, ph_spool_file_t *f);
/* Takes the oldest idle file (the caller now sends it), or NULL. */
ph_spool_file_t *posthog__spool_take(ph_spool_t *s);
/* Events in idle files. */
uint64_t posthog__spool_idle_events(ph_spool_t *s);
/* Closes every idle file, leaving it on disk for a later process. */
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

/* Deletes a file this process owns (delivered or permanently rejected). */
void posthog__spool_remove(ph_spool_t *s, ph_spool_file_t *f);
/* Gives up ownership without deleting (the events stay for later). */
void posthog__spool_release(ph_spool_t *s, ph_spool_file_t *f);
uint64_t posthog__spool_bytes(ph_spool_t *s);

/* In a forked child: forget the files the parent owned (no close, no
 * unlink); `s` may be NULL. */
void posthog__spool_fork_child(ph_spool_t *s);

/* Parses a whole file image (for the fuzzer and tests). */
long posthog__spool_parse(const unsigned char *data, size_t n, ph_spool_event_fn fn, void *ud,
                          ph_spool_loss_t *loss);

#endif
