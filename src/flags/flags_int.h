/*
 * The compiled definitions: shared by compile.c, match.c, ops.c, values.c
 * and store.c, nobody else. Everything here is written once by the
 * compiler and only read afterwards (the reference count and the retire
 * link are the only mutable members, both atomic).
 */
#ifndef POSTHOG_FLAGS_INT_H
#define POSTHOG_FLAGS_INT_H

#include <regex.h>
#include <stdatomic.h>

#include "common.h"
#include "flags.h"

/* Dependency closures up to this many flags are memoised on the stack. */
#define PH_FLAGS_STACK_MEMO 32
/* Cohorts may reference cohorts; deeper nesting (or a cycle) is inconclusive. */
#define PH_FLAGS_MAX_DEPTH 16

typedef enum {
    PH_OP_EXACT,
    PH_OP_IS_NOT,
    PH_OP_IS_SET,
    PH_OP_IS_NOT_SET,
    PH_OP_ICONTAINS,
    PH_OP_NOT_ICONTAINS,
    PH_OP_ICONTAINS_MULTI,
    PH_OP_NOT_ICONTAINS_MULTI,
    PH_OP_STARTS_WITH,
    PH_OP_NOT_STARTS_WITH,
    PH_OP_ENDS_WITH,
    PH_OP_NOT_ENDS_WITH,
    PH_OP_REGEX,
    PH_OP_NOT_REGEX,
    PH_OP_GT,
    PH_OP_GTE,
    PH_OP_LT,
    PH_OP_LTE,
    PH_OP_BETWEEN,
    PH_OP_NOT_BETWEEN,
    PH_OP_SEMVER_GT,
    PH_OP_SEMVER_GTE,
    PH_OP_SEMVER_LT,
    PH_OP_SEMVER_LTE,
    PH_OP_SEMVER_EQ,
    PH_OP_SEMVER_NEQ,
    PH_OP_SEMVER_TILDE,
    PH_OP_SEMVER_CARET,
    PH_OP_SEMVER_WILDCARD,
    PH_OP_IS_DATE_EXACT,
    PH_OP_IS_DATE_AFTER,
    PH_OP_IS_DATE_BEFORE,
    PH_OP_IN,
    PH_OP_NOT_IN,
    PH_OP_FLAG_EVALUATES_TO,
    PH_OP_UNKNOWN,
} ph_op_t;

typedef enum {
    PH_PT_PERSON,
    PH_PT_GROUP,
    PH_PT_COHORT,
    PH_PT_FLAG,
    PH_PT_UNKNOWN, /* behavioral, person_metadata, anything else */
} ph_ptype_t;

/* A parsed semantic version: numeric core plus the pre-release
 * identifiers (build metadata is ignored, as by the semver crate's
 * ordering). */
typedef struct {
    uint64_t major, minor, patch;
    const char *pre; /* pre-release text without '-', or NULL; borrows the parsed text */
    size_t pre_len;
    const char *build; /* build metadata without '+', or NULL */
    size_t build_len;
} ph_semver_t;

/* A semver range [lo, hi); hi_set false means unbounded above. */
typedef struct {
    ph_semver_t lo, hi;
    bool hi_set;
} ph_semver_range_t;

typedef enum {
    PH_RE_NONE,        /* not a regex filter */
    PH_RE_OK,          /* re compiled */
    PH_RE_INVALID,     /* invalid for the server too: regex -> false, not_regex -> true */
    PH_RE_UNSUPPORTED, /* the server accepts it, POSIX cannot: inconclusive */
} ph_re_state_t;

/* One compiled property filter. */
typedef struct {
    char *key;           /* property key, cohort id text or flag key */
    char *op_name;       /* the operator as written (for "detail") */
    ph_op_t op;
    ph_ptype_t type;
    bool negation;
    int32_t group_type_index; /* type group: -1 when absent */
    bool has_value;      /* "value" present and not null */
    cJSON *value;        /* a private copy of "value" (NULL when absent) */
    /* exact/is_not: lower-cased string forms of the value (one, or one per
     * array element) and the truthy/falsy rule of the server. */
    char **strs;
    size_t nstrs;
    bool value_is_array;
    bool matching_unknown; /* an unknown property_matching_version: exact/is_not undecidable */
    bool truthy_mode;    /* the value is a bool, "true"/"false" (any case) or an array of those */
    bool truthy;         /* its truth (arrays: all elements true) */
    /* numeric operators */
    bool num_ok;
    double num, lo, hi;
    /* semver operators */
    bool sv_ok;
    ph_semver_t sv;
    ph_semver_range_t range;
    char *sv_text;       /* owns sv.pre / range.*.pre */
    /* date operators: absolute (UTC microseconds) or relative */
    bool date_ok;
    bool date_unsupported;
    int64_t date_us;
    int32_t rel_n;       /* relative dates: "-7d" -> 7 and 'd'; rel_unit 0 = absolute */
    char rel_unit;
    /* regex */
    ph_re_state_t re_state;
    regex_t re;
    /* type cohort: index into defs->cohorts, or -1 when not sent (static);
     * cohort_id: the id as text (for "detail") */
    int32_t cohort;
    char *cohort_id;
    /* type flag: index of the flag depended on, or -1 when missing */
    int32_t dep_flag;
    bool dep_malformed;  /* wrong operator or value: a definitive false */
    bool dep_cycle;      /* the server sent an empty dependency_chain: a cycle */
    bool dep_expect_bool;
    bool dep_expect;     /* expected boolean */
    const char *dep_expect_str; /* expected variant (points into value) */
} ph_filter_t;

/* A cohort tree node: AND/OR of children, or a leaf filter. */
typedef struct ph_pgroup {
    bool is_leaf;
    bool is_or;
    bool bad_type;       /* "type" neither AND nor OR */
    bool negation;       /* leaf: result XOR negation */
    struct ph_pgroup *kids;
    size_t nkids;
    ph_filter_t leaf;
} ph_pgroup_t;

typedef struct {
    char *id;            /* the cohort id as text */
    ph_pgroup_t root;
} ph_cohort_t;

typedef struct {
    ph_filter_t *props;
    size_t nprops;
    bool has_rollout;
    double rollout;      /* percent; 100 when absent */
    char *variant;       /* override, or NULL */
    bool variant_valid;  /* names an existing variant */
    int32_t agg;         /* -2: inherit the flag's; -1: person; >= 0 group type index */
} ph_condition_t;

typedef struct {
    char *key;
    double pct;
    double lo, hi;       /* cumulative [lo, hi) as the server sums them */
    char *payload;       /* JSON text or NULL */
} ph_variant_t;

typedef struct {
    char *key;
    int64_t id;
    bool active;
    bool deleted;
    bool eec;            /* ensure_experience_continuity */
    bool bucket_device;  /* bucketing_identifier == "device_id" */
    bool early_exit;
    bool bad_version;    /* filters.version present and != 1 */
    bool malformed;
    int8_t has_experiment; /* 1, 0, -1 absent */
    int32_t agg;         /* -1 person, else group type index */
    char *prefix;        /* "<key>." for the hash */
    size_t prefix_len;
    ph_condition_t *conds;
    size_t nconds;
    ph_variant_t *variants;
    size_t nvariants;
    char *payload_true;  /* payloads["true"] */
    /* early access and legacy super groups */
    bool enrollment;
    char *enroll_key;    /* "$feature_enrollment/<key>" */
    ph_condition_t *super_cond; /* super_groups[0] or NULL */
    /* holdout */
    bool has_holdout;
    double holdout_pct;
    char *holdout_variant; /* "holdout-<id>" */
    char *holdout_payload; /* payloads["holdout-<id>"] */
    /* dependencies: every flag this one reads (transitively), in an order
     * where each comes after its own dependencies; the flag itself is not
     * in the list. in_cycle: the flag sits on (or reaches) a cycle. */
    int32_t *closure;
    size_t nclosure;
    bool in_cycle;
    bool dep_missing;    /* reaches a flag that is not in the definitions */
    const char *malformed_detail;
} ph_flag_t;

struct ph_flags_defs {
    _Atomic int64_t refs;
    struct ph_flags_defs *_Atomic retire_next; /* store.c's retire stack */
    ph_flag_t *flags;
    size_t nflags;
    int32_t *index;      /* open-addressed table of flag indices, -1 empty */
    size_t index_cap;    /* power of two */
    ph_cohort_t *cohorts;
    size_t ncohorts;
    char **group_names;  /* group_type_mapping, by index (NULL gaps) */
    size_t ngroup_names;
    bool uses_regex;
    bool minimal_events;
    int32_t *order;      /* every flag, dependencies first */
    int32_t *by_key;     /* every flag, by key (strcmp), ties in definitions order */
};

/* Without libm (the library does not link it): the few helpers needed,
 * for |x| below 2^62. */
static inline double ph_fabs(double x) { return x < 0 ? -x : x; }
static inline double ph_floor(double x) {
    double t = (double)(int64_t)x; /* truncates toward zero */
    return t > x ? t - 1.0 : t;
}

/* store.c's state (here so the tests can inspect the hazard slots). */
#define HAZARDS 64 /* concurrent acquires before one has to wait */

typedef struct {
    PH_ALIGNED_CL ph_flags_defs_t *_Atomic p;
    char pad[PH_CACHELINE - sizeof(void *)];
} hazard_t;

struct ph_flags_store {
    PH_ALIGNED_CL ph_flags_defs_t *_Atomic cur;
    ph_flags_defs_t *_Atomic retired; /* a Treiber stack through retire_next */
    _Atomic size_t pending;
    _Atomic uint64_t generation;
    hazard_t hz[HAZARDS];
};

/* values.c */
bool posthog__flags_parse_f64(const char *s, double *out);
/* The server's string form of a JSON value (strings as they are, others as
 * JSON text); writes into buf (NUL-terminated) and returns it, or returns
 * the string itself for strings. NULL if it does not fit. */
const char *posthog__flags_value_text(const cJSON *v, char *buf, size_t cap);
bool posthog__flags_semver_parse(const char *s, size_t n, ph_semver_t *out);
int posthog__flags_semver_cmp(const ph_semver_t *a, const ph_semver_t *b);
/* tilde/caret/wildcard requirement -> range. Returns false when invalid. */
bool posthog__flags_semver_range(ph_op_t op, const char *s, ph_semver_range_t *out);
bool posthog__flags_semver_in_range(const ph_semver_t *v, const ph_semver_range_t *r);
/* Absolute date text -> UTC microseconds: 1 ok, 0 not a form we know,
 * -1 a YYYY-MM-DD that is no calendar date. */
int posthog__flags_parse_date(const char *s, int64_t *us);
/* "-7d"-style relative dates: 1 with n and unit, 0 another form, -1 the
 * form with a number of 10000 or more. */
int posthog__flags_parse_relative(const char *s, int32_t *n, char *unit);
/* The verdict on a date text: 1 parsed (*us; relative ones against now_ms),
 * 0 definitely not a date for the server, -1 only the server's fallback
 * parser could tell. */
int posthog__flags_date_text(const char *s, int64_t now_ms, int64_t *us);
int64_t posthog__flags_relative_to_us(int32_t n, char unit, int64_t now_ms);
/* Python/Rust regex syntax -> POSIX ERE. Returns 1 translated, 0 not
 * expressible in POSIX (lookaround, backreferences, ...), -1 invalid. */
int posthog__flags_regex_translate(const char *pat, char *out, size_t cap, bool *icase);

/* ops.c: one filter against one property bag.
 * Returns 1 match, 0 no match, -1 inconclusive (*cause set). */
/* partial: the bag holds only what the caller passed, so a missing key is
 * inconclusive (the server would read its database); false: the bag is
 * all there is (a group the caller did not pass has no properties). */
int posthog__flags_match_property(const ph_filter_t *f, const cJSON *props, bool partial,
                                  const char *extra_key, const char *extra_val, int64_t now_ms,
                                  ph_flag_cause_t *cause);

/* compile.c */
void posthog__flags_defs_free(ph_flags_defs_t *d);

#endif
