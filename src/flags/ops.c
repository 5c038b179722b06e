/*
 * Property operators: one compiled filter against one property bag, with
 * the server's semantics (property_matching.rs match_property). Where the
 * server answers an error (a non-numeric value for gt, an invalid semver
 * requirement, ...) its caller treats the filter as not matching, so this
 * returns 0 there too. Inconclusive (-1) is kept for what only the server
 * can know: a property the caller did not pass (the server would read it
 * from its database), and values or patterns this engine cannot interpret
 * the way the server would. No allocation except inside regexec().
 */
#include <math.h>
#include <string.h>

#include "flags_int.h"

#define TEXT_MAX 512 /* the string form of a non-string value, on the stack */

static inline char lc(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static bool has_high(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return true;
    return false;
}

/* needle is already ASCII-lowered. */
static bool ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (!n) return true;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && lc(hay[i]) == needle[i]) i++;
        if (i == n) return true;
    }
    return false;
}

static bool ci_prefix(const char *hay, const char *needle) {
    for (; *needle; hay++, needle++)
        if (!*hay || lc(*hay) != *needle) return false;
    return true;
}

static bool ci_suffix(const char *hay, const char *needle) {
    size_t h = strlen(hay), n = strlen(needle);
    return n <= h && ci_prefix(hay + h - n, needle);
}

/* Rust's to_lowercase() equality. Exact for ASCII; when both sides hold
 * other characters and differ after ASCII folding, only full Unicode case
 * mapping could tell: -1. */
static int ci_equal(const char *lowered, const char *text) {
    const char *a = lowered, *b = text;
    while (*a && *b && *a == lc(*b)) a++, b++;
    if (!*a && !*b) return 1;
    return (has_high(lowered) && has_high(text)) ? -1 : 0;
}

static bool truthy(const cJSON *v) {
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (cJSON_IsString(v)) return v->valuestring && !strcasecmp(v->valuestring, "true");
    if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next)
            if (!truthy(e)) return false;
        return true;
    }
    return false;
}

static int exact(const ph_filter_t *f, const cJSON *v, ph_flag_cause_t *cause) {
    if (f->truthy_mode) return truthy(v) == f->truthy;
    char buf[TEXT_MAX];
    const char *text = posthog__flags_value_text(v, buf, sizeof buf);
    if (!text) {
        *cause = PH_INCONCLUSIVE_UNSUPPORTED_VALUE;
        return -1;
    }
    bool unknown = false;
    for (size_t i = 0; i < f->nstrs; i++) {
        int r = ci_equal(f->strs[i], text);
        if (r == 1) return 1;
        if (r < 0) unknown = true;
    }
    if (unknown) {
        *cause = PH_INCONCLUSIVE_NON_ASCII_CASE;
        return -1;
    }
    return 0;
}

static bool as_number(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    if (cJSON_IsString(v)) return posthog__flags_parse_f64(v->valuestring, out);
    return false; /* "true", "null", arrays: not numbers for the server either */
}

/* 1 parsed into *us, 0 definitely not a date, -1 a form only the server's
 * fallback parser (dateparser) might read. */
static int date_of(const cJSON *v, int64_t now_ms, int64_t *us) {
    double secs;
    if (cJSON_IsNumber(v)) {
        secs = v->valuedouble;
    } else if (cJSON_IsString(v) && v->valuestring) {
        const char *s = v->valuestring;
        if (!posthog__flags_parse_f64(s, &secs)) return posthog__flags_date_text(s, now_ms, us);
    } else {
        return 0;
    }
    if (!isfinite(secs) || ph_fabs(secs) > 1e13) return 0;
    double whole = ph_floor(secs);
    *us = (int64_t)whole * 1000000 + (int64_t)((secs - whole) * 1e6 + 0.5);
    return 1;
}

static int semver_op(const ph_filter_t *f, const cJSON *v) {
    char buf[TEXT_MAX];
    const char *text = posthog__flags_value_text(v, buf, sizeof buf);
    ph_semver_t sv;
    if (!text || !posthog__flags_semver_parse(text, strlen(text), &sv)) return 0;
    if (!f->sv_ok) return 0; /* invalid filter value: the server errors, i.e. no match */
    if (f->op >= PH_OP_SEMVER_TILDE) return posthog__flags_semver_in_range(&sv, &f->range);
    int c = posthog__flags_semver_cmp(&sv, &f->sv);
    switch (f->op) {
    case PH_OP_SEMVER_GT: return c > 0;
    case PH_OP_SEMVER_GTE: return c >= 0;
    case PH_OP_SEMVER_LT: return c < 0;
    case PH_OP_SEMVER_LTE: return c <= 0;
    case PH_OP_SEMVER_EQ: return c == 0;
    default: return c != 0;
    }
}

static int regex_op(const ph_filter_t *f, const cJSON *v, ph_flag_cause_t *cause) {
    if (f->re_state == PH_RE_INVALID) return 0; /* the server: false for regex and not_regex */
    if (f->re_state != PH_RE_OK) {
        *cause = PH_INCONCLUSIVE_REGEX_UNSUPPORTED;
        return -1;
    }
    char buf[TEXT_MAX];
    const char *text = posthog__flags_value_text(v, buf, sizeof buf);
    if (!text) {
        *cause = PH_INCONCLUSIVE_UNSUPPORTED_VALUE;
        return -1;
    }
    int r = regexec(&f->re, text, 0, NULL, 0);
    if (r != 0 && r != REG_NOMATCH) {
        *cause = PH_INCONCLUSIVE_REGEX_UNSUPPORTED;
        return -1;
    }
    return (r == 0) == (f->op == PH_OP_REGEX);
}

int posthog__flags_match_property(const ph_filter_t *f, const cJSON *props, bool partial,
                                  const char *extra_key, const char *extra_val, int64_t now_ms,
                                  ph_flag_cause_t *cause) {
    if (f->op == PH_OP_UNKNOWN) {
        *cause = PH_INCONCLUSIVE_UNKNOWN_OPERATOR;
        return -1;
    }
    const cJSON *v = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, f->key) : NULL;
    cJSON virt;
    if (!v && extra_key && extra_val && !strcmp(f->key, extra_key)) {
        memset(&virt, 0, sizeof virt);
        virt.type = cJSON_String;
        virt.valuestring = (char *)extra_val;
        v = &virt;
    }
    if (!v && partial) {
        *cause = PH_INCONCLUSIVE_MISSING_PROPERTY;
        return -1;
    }
    if (f->op == PH_OP_IS_SET) return v != NULL;
    if (f->op == PH_OP_IS_NOT_SET) return v == NULL;
    if (!f->has_value) return 0;

    char buf[TEXT_MAX];
    const char *text;
    int r;
    switch (f->op) {
    case PH_OP_EXACT:
    case PH_OP_IS_NOT:
        if (f->matching_unknown) {
            *cause = PH_INCONCLUSIVE_CONFIG_VERSION;
            return -1;
        }
        if (!v) return f->op == PH_OP_IS_NOT;
        r = exact(f, v, cause);
        return r < 0 ? -1 : (r == (f->op == PH_OP_EXACT));
    case PH_OP_ICONTAINS:
    case PH_OP_NOT_ICONTAINS:
    case PH_OP_ICONTAINS_MULTI:
    case PH_OP_NOT_ICONTAINS_MULTI:
    case PH_OP_STARTS_WITH:
    case PH_OP_NOT_STARTS_WITH:
    case PH_OP_ENDS_WITH:
    case PH_OP_NOT_ENDS_WITH: {
        bool negative = f->op == PH_OP_NOT_ICONTAINS || f->op == PH_OP_NOT_ICONTAINS_MULTI ||
                        f->op == PH_OP_NOT_STARTS_WITH || f->op == PH_OP_NOT_ENDS_WITH;
        if (!v) return negative;
        if (!(text = posthog__flags_value_text(v, buf, sizeof buf))) {
            *cause = PH_INCONCLUSIVE_UNSUPPORTED_VALUE;
            return -1;
        }
        bool hit = false;
        for (size_t i = 0; i < f->nstrs && !hit; i++) {
            if (f->op == PH_OP_STARTS_WITH || f->op == PH_OP_NOT_STARTS_WITH)
                hit = ci_prefix(text, f->strs[i]);
            else if (f->op == PH_OP_ENDS_WITH || f->op == PH_OP_NOT_ENDS_WITH)
                hit = ci_suffix(text, f->strs[i]);
            else
                hit = ci_contains(text, f->strs[i]);
        }
        return hit != negative;
    }
    case PH_OP_REGEX:
    case PH_OP_NOT_REGEX:
        if (!v) return f->op == PH_OP_NOT_REGEX;
        return regex_op(f, v, cause);
    case PH_OP_GT:
    case PH_OP_GTE:
    case PH_OP_LT:
    case PH_OP_LTE: {
        double x;
        if (!v || !as_number(v, &x) || !f->num_ok) return 0;
        switch (f->op) {
        case PH_OP_GT: return x > f->num;
        case PH_OP_GTE: return x >= f->num;
        case PH_OP_LT: return x < f->num;
        default: return x <= f->num;
        }
    }
    case PH_OP_BETWEEN:
    case PH_OP_NOT_BETWEEN: {
        double x;
        if (!v) return f->op == PH_OP_NOT_BETWEEN;
        if (!f->num_ok || !as_number(v, &x) || isnan(x)) return 0;
        bool in = x >= f->lo && x <= f->hi;
        return in == (f->op == PH_OP_BETWEEN);
    }
    case PH_OP_SEMVER_GT:
    case PH_OP_SEMVER_GTE:
    case PH_OP_SEMVER_LT:
    case PH_OP_SEMVER_LTE:
    case PH_OP_SEMVER_EQ:
    case PH_OP_SEMVER_NEQ:
    case PH_OP_SEMVER_TILDE:
    case PH_OP_SEMVER_CARET:
    case PH_OP_SEMVER_WILDCARD:
        if (!v) return 0;
        return semver_op(f, v);
    case PH_OP_IS_DATE_EXACT:
    case PH_OP_IS_DATE_AFTER:
    case PH_OP_IS_DATE_BEFORE: {
        if (!v) return 0;
        int64_t have, want;
        int ok = date_of(v, now_ms, &have);
        if (ok < 0) {
            *cause = PH_INCONCLUSIVE_UNSUPPORTED_VALUE;
            return -1;
        }
        if (!ok) return 0;
        if (f->date_unsupported) {
            *cause = PH_INCONCLUSIVE_UNSUPPORTED_VALUE;
            return -1;
        }
        if (!f->date_ok) return 0;
        want = f->rel_unit ? posthog__flags_relative_to_us(f->rel_n, f->rel_unit, now_ms)
                           : f->date_us;
        if (f->op == PH_OP_IS_DATE_BEFORE) return have < want;
        if (f->op == PH_OP_IS_DATE_AFTER) return have > want;
        return have == want;
    }
    default:
        /* in/not_in outside a cohort filter, flag_evaluates_to outside a
         * flag filter: the server answers a validation error (no match) */
        return 0;
    }
}
