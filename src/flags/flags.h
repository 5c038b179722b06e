/*
 * flags/: the local-evaluation engine of feature flags (issue 10).
 *
 * What it owns
 *   - compile.c   `/flags/definitions` JSON -> an immutable ph_flags_defs_t:
 *                 flags by key (open-addressed hash), parsed numbers, dates,
 *                 semvers, compiled regexes, cohort trees, variant tables,
 *                 payloads and the dependency order (cycles found here).
 *   - match.c     the matcher: one flag or all flags for one context.
 *   - ops.c       every property operator of PostHog's server.
 *   - values.c    parsers shared by compile and match (numbers, dates,
 *                 semver, regex translation).
 *   - store.c     publish/retire of the compiled structure: readers take
 *                 no lock; old versions are freed when no reader holds them.
 *   - sha1.c      SHA-1 and the bucketing hash.
 * Not here yet (the lead adds them on top of this API): network loading
 * and polling, remote /flags, the $feature_flag_called tracker, public
 * posthog_* calls and the bindings.
 *
 * Threads and locks
 *   A ph_flags_defs_t is immutable once compiled and may be read by any
 *   number of threads. ph_flags_store_t has no lock at all: acquire,
 *   release and publish are a few atomic operations each, so a fork() can
 *   leave nothing locked (the child should still call
 *   posthog__flags_store_fork_child). Evaluation allocates nothing unless
 *   a flag uses a regex (glibc's regexec allocates) or has a dependency
 *   closure deeper than PH_FLAGS_STACK_MEMO flags.
 *
 * Semantics
 *   The server (PostHog's Rust flags service) is the reference; where the
 *   SDKs disagree with it we follow the server, listed in docs/flags.md.
 *   What cannot be decided locally (static cohorts, unknown operators,
 *   config versions, missing properties, experience continuity, ...) gives
 *   PH_FLAG_INCONCLUSIVE with a cause, so the caller can ask /flags.
 */
#ifndef POSTHOG_FLAGS_H
#define POSTHOG_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* ------------------------------------------------------------ results */

typedef enum {
    PH_FLAG_FALSE = 0,        /* decided: off */
    PH_FLAG_TRUE = 1,         /* decided: on, no variant */
    PH_FLAG_VARIANT = 2,      /* decided: on, result.variant names the variant */
    PH_FLAG_INCONCLUSIVE = 3, /* not decidable locally: see result.cause */
} ph_flag_value_t;

/* The server's reason codes (flag_match_reason.rs). */
typedef enum {
    PH_REASON_NONE = 0, /* inconclusive results */
    PH_REASON_CONDITION_MATCH,
    PH_REASON_NO_CONDITION_MATCH,
    PH_REASON_OUT_OF_ROLLOUT_BOUND,
    PH_REASON_NO_GROUP_TYPE,
    PH_REASON_SUPER_CONDITION_VALUE,
    PH_REASON_HOLDOUT_CONDITION_VALUE,
    PH_REASON_FLAG_DISABLED,
    PH_REASON_MISSING_DEPENDENCY,
} ph_flag_reason_t;

/* Why a result is inconclusive. */
typedef enum {
    PH_INCONCLUSIVE_NONE = 0,
    PH_INCONCLUSIVE_UNKNOWN_FLAG,       /* key not in the definitions */
    PH_INCONCLUSIVE_CONFIG_VERSION,     /* filters.version is not 1 (opaque v2 config), or
                                           exact/is_not under an unknown
                                           property_matching_version */
    PH_INCONCLUSIVE_EXPERIENCE_CONTINUITY, /* ensure_experience_continuity needs the server's overrides */
    PH_INCONCLUSIVE_STATIC_COHORT,      /* cohort id not in the definitions (static or missing) */
    PH_INCONCLUSIVE_UNKNOWN_OPERATOR,   /* operator this engine does not know */
    PH_INCONCLUSIVE_UNKNOWN_PROPERTY_TYPE, /* e.g. behavioral, person_metadata, bad cohort type */
    PH_INCONCLUSIVE_MISSING_PROPERTY,   /* a property the condition reads was not passed */
    PH_INCONCLUSIVE_MISSING_BUCKETING_ID, /* device_id bucketing, no device id, variant needed */
    PH_INCONCLUSIVE_REGEX_UNSUPPORTED,  /* valid for the server, not for POSIX regex */
    PH_INCONCLUSIVE_UNSUPPORTED_VALUE,  /* a value the server may parse and we cannot */
    PH_INCONCLUSIVE_NON_ASCII_CASE,     /* case-insensitive compare of non-ASCII text */
    PH_INCONCLUSIVE_DEPENDENCY,         /* a flag this one depends on is inconclusive */
    PH_INCONCLUSIVE_COHORT_DEPTH,       /* cohorts nested deeper than PH_FLAGS_MAX_DEPTH */
    PH_INCONCLUSIVE_MALFORMED,          /* the flag's definition could not be compiled */
} ph_flag_cause_t;

typedef struct {
    ph_flag_value_t value;
    ph_flag_reason_t reason;
    ph_flag_cause_t cause;    /* PH_INCONCLUSIVE_NONE unless value is INCONCLUSIVE */
    int32_t condition_index;  /* the condition that decided, or -1 */
    /* The strings below borrow from the ph_flags_defs_t the result came
     * from: valid while the caller holds that version. */
    const char *key;          /* the flag key (NULL for an unknown flag) */
    const char *variant;      /* PH_FLAG_VARIANT only, else NULL */
    const char *payload;      /* JSON text of the payload, or NULL */
    const char *detail;       /* inconclusive: the property key, operator or
                                 cohort id concerned, or NULL */
    int64_t flag_id;          /* the definition's id, -1 when unknown */
    int8_t has_experiment;    /* the definition's has_experiment: 1, 0, or -1
                                 when absent (the minimal-event gate needs
                                 an explicit false) */
} ph_flag_result_t;

/* ------------------------------------------------------------ context */

/*
 * The subject of one evaluation. Everything is borrowed for the call.
 * person_properties: JSON object or NULL. groups: object {group type:
 * group key (string or number)} or NULL. group_properties: object {group
 * type: {properties}} or NULL. device_id: NULL falls back to
 * person_properties.$device_id (as the server does).
 * now_ms: the clock for relative dates ("-7d"); 0 means the real clock.
 * Like the SDKs, `distinct_id` resolves to the distinct id when the person
 * properties lack it, and `$group_key` to the group's key.
 */
/*
 * Person properties given as JSON text and parsed only when a matcher reads
 * them, into the arena (heap only when it does not fit). Lives on the
 * caller's stack; one may serve many evaluations of one subject; not
 * thread-safe; free with posthog__flags_lazy_free. Unless the caller says
 * the text was checked already, it is checked when first read (one JSON
 * object, nesting as capture allows); if it is not, `invalid` is set, the
 * matchers see no properties and the caller must discard the results.
 */
typedef struct {
    const char *json;
    size_t len;
    bool checked;   /* the caller validated json */
    bool invalid;   /* read, and not one valid JSON object */
    bool parsed;
    const cJSON *tree;
    cJSON *heap;
    size_t used;
    _Alignas(16) unsigned char arena[2048];
} ph_flags_lazy_t;

void posthog__flags_lazy_init(ph_flags_lazy_t *l, const char *json, size_t len, bool checked);
/* The tree (NULL when no text was given or it is invalid); parses on first
 * use. */
const cJSON *posthog__flags_lazy_get(ph_flags_lazy_t *l);
void posthog__flags_lazy_free(ph_flags_lazy_t *l);

typedef struct {
    const char *distinct_id;
    const char *device_id;
    const cJSON *person_properties; /* or, when NULL, person_lazy's */
    const cJSON *groups;
    const cJSON *group_properties;
    int64_t now_ms;
    ph_flags_lazy_t *person_lazy;   /* person properties as text, when
                                       person_properties is NULL */
} ph_flags_ctx_t;

/* ------------------------------------------------------------ definitions */

typedef struct ph_flags_defs ph_flags_defs_t;

/*
 * Compile a `/flags/definitions` body ({"flags": [...], "group_type_mapping":
 * {...}, "cohorts": {...}}). Borrows json (len bytes, need not be
 * NUL-terminated). Returns a new version with one reference, or NULL with a
 * message in err (NULL allowed) naming what was wrong: the body is not JSON,
 * not an object, or "flags" is not an array. A single bad flag does not
 * fail the whole body: that flag evaluates as inconclusive
 * (PH_INCONCLUSIVE_MALFORMED) and the others work.
 */
ph_flags_defs_t *posthog__flags_compile(const char *json, size_t len, char *err, size_t errlen);
/* The same from a parsed tree. Borrows root (the result copies what it needs). */
ph_flags_defs_t *posthog__flags_compile_tree(const cJSON *root, char *err, size_t errlen);

/* Reference counting for callers that keep a version beyond one call. */
void posthog__flags_defs_ref(ph_flags_defs_t *d);
/* Drop one reference; the last one frees the version. NULL is a no-op.
 * Do not use on versions published into a store: use store release. */
void posthog__flags_defs_unref(ph_flags_defs_t *d);

size_t posthog__flags_count(const ph_flags_defs_t *d);
/* The key of flag i (0 <= i < count), in definitions order. */
const char *posthog__flags_key(const ph_flags_defs_t *d, size_t i);
/* The index of the j-th flag by key (strcmp order; of duplicate keys the
 * first defined comes first), 0 <= j < count. */
size_t posthog__flags_by_key(const ph_flags_defs_t *d, size_t j);
/* Index of key, or -1. Borrows key. */
long posthog__flags_find(const ph_flags_defs_t *d, const char *key);
/* Whether any flag uses a regex (then evaluation may allocate). */
bool posthog__flags_uses_regex(const ph_flags_defs_t *d);
/* "minimal_flag_called_events" from the definitions. */
bool posthog__flags_minimal_events(const ph_flags_defs_t *d);

/* ------------------------------------------------------------ matcher */

/*
 * Evaluate one flag by key. Borrows d, key and ctx (NULL: an empty
 * context); fills *out (whose strings borrow from d). An unknown key (or a
 * NULL d) gives PH_FLAG_INCONCLUSIVE with cause PH_INCONCLUSIVE_UNKNOWN_FLAG.
 * Thread-safe; takes no lock.
 */
void posthog__flags_evaluate(const ph_flags_defs_t *d, const char *key, const ph_flags_ctx_t *ctx,
                             ph_flag_result_t *out);
/* The same by index (0 <= i < count). */
void posthog__flags_evaluate_index(const ph_flags_defs_t *d, size_t i, const ph_flags_ctx_t *ctx,
                                   ph_flag_result_t *out);
/*
 * Evaluate every flag: out must hold posthog__flags_count(d) results, in
 * definitions order. Each dependency is evaluated once (out doubles as the
 * memo). Thread-safe; takes no lock; no allocation without regexes.
 */
void posthog__flags_evaluate_all(const ph_flags_defs_t *d, const ph_flags_ctx_t *ctx,
                                 ph_flag_result_t *out);

/* Static names, for logs and the $feature_flag_reason property. */
const char *posthog__flags_reason_code(ph_flag_reason_t r);        /* "condition_match" */
const char *posthog__flags_reason_description(ph_flag_reason_t r); /* "Matched condition set" */
const char *posthog__flags_cause_name(ph_flag_cause_t c);          /* "static_cohort" */

/* ------------------------------------------------------------ store */

/*
 * The published version. Readers: acquire, evaluate, release; lock-free.
 * Writers: publish a new version (lock-free too; concurrent publishers are
 * fine, the last exchange wins); the previous one is freed as soon as no
 * reader holds it (by the last releasing reader or by a later publish).
 */
typedef struct ph_flags_store ph_flags_store_t;

ph_flags_store_t *posthog__flags_store_new(void);
/* Frees the store and its current version. Precondition: no reader holds a
 * version and no thread uses the store. NULL is a no-op. */
void posthog__flags_store_free(ph_flags_store_t *s);
/* Publish d (takes ownership of the caller's reference, also when d is
 * NULL, which unpublishes: e.g. after a 402 quota answer). Returns the
 * number of this publish (1, 2, ...; with concurrent publishers a higher
 * number does not mean a later exchange). */
uint64_t posthog__flags_store_publish(ph_flags_store_t *s, ph_flags_defs_t *d);
/* The current version with a reference held for the caller, or NULL when
 * nothing is published. Lock-free; pair with posthog__flags_store_release. */
const ph_flags_defs_t *posthog__flags_store_acquire(ph_flags_store_t *s);
void posthog__flags_store_release(ph_flags_store_t *s, const ph_flags_defs_t *d);
/* Versions retired but not yet freed (for tests and stats). */
size_t posthog__flags_store_pending(ph_flags_store_t *s);
/*
 * In a fork() child (from the client's atfork child handler, before any
 * other use): clears the hazard slots, which in the child can only belong
 * to threads that do not exist there (a reader of the parent caught
 * mid-acquire would otherwise pin a slot, and the version it names, for
 * good). Versions that parent threads held stay allocated in the child
 * (their references are never released there): bounded by the number of
 * such threads. NULL is a no-op.
 */
void posthog__flags_store_fork_child(ph_flags_store_t *s);

#endif
