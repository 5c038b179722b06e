/*
 * Lazily parsed JSON arguments of an evaluation (person properties passed
 * as text through the public API). Many flags never read them (a rollout
 * flag, a group flag), so the text, validated by the caller, is turned
 * into a tree only when a matcher first asks for it, and then into a
 * caller-provided arena of cJSON nodes instead of one heap allocation per
 * node: no allocation and nothing to free for the usual handful of
 * properties. The tree is an ordinary read-only cJSON tree (the matcher
 * uses cJSON's accessors); only cJSON_Delete must never see it.
 */
#include <string.h>

#include "flags_int.h"
#include "json.h"

typedef struct {
    const unsigned char *s;
    size_t n, i;
    ph_flags_lazy_t *l;
    bool full;
} build_t;

static void *arena_take(build_t *b, size_t size) {
    size_t at = (b->l->used + 7u) & ~(size_t)7u;
    if (at > sizeof b->l->arena || sizeof b->l->arena - at < size) {
        b->full = true;
        return NULL;
    }
    b->l->used = at + size;
    return b->l->arena + at;
}

static void ws(build_t *b) {
    while (b->i < b->n && (b->s[b->i] == ' ' || b->s[b->i] == '\t' || b->s[b->i] == '\n' ||
                           b->s[b->i] == '\r'))
        b->i++;
}

/* At the opening quote: the decoded, NUL-terminated string in the arena. */
static char *string(build_t *b) {
    size_t start = ++b->i;
    /* validated text: the body ends at the first '"' not escaped */
    for (;;) {
        const unsigned char *q = memchr(b->s + b->i, '"', b->n - b->i);
        if (!q) return NULL;
        size_t at = (size_t)(q - b->s), bs = 0;
        while (at - bs > start && b->s[at - bs - 1] == '\\') bs++;
        b->i = at + 1;
        if (!(bs & 1)) break; /* an even run of backslashes escapes itself */
    }
    size_t len = b->i - 1 - start;
    bool esc = memchr(b->s + start, '\\', len) != NULL;
    char *out = arena_take(b, len + 1);
    if (!out) return NULL;
    if (esc) len = posthog__json_unescape(out, (const char *)b->s + start, len);
    else memcpy(out, b->s + start, len);
    out[len] = '\0';
    return out;
}

static cJSON *value(build_t *b, int depth);

static cJSON *container(build_t *b, cJSON *node, bool object, int depth) {
    b->i++; /* '{' or '[' */
    cJSON *last = NULL;
    for (;;) {
        ws(b);
        if (b->i >= b->n) return NULL;
        if (b->s[b->i] == (object ? '}' : ']')) {
            b->i++;
            break;
        }
        if (b->s[b->i] == ',') {
            b->i++;
            ws(b);
        }
        char *key = NULL;
        if (object) {
            if (!(key = string(b))) return NULL;
            ws(b);
            b->i++; /* ':' */
        }
        cJSON *kid = value(b, depth + 1);
        if (!kid) return NULL;
        kid->string = key;
        if (last) {
            last->next = kid;
            kid->prev = last;
        } else {
            node->child = kid;
        }
        last = kid;
    }
    if (node->child) node->child->prev = last; /* cJSON keeps the tail there */
    return node;
}

static cJSON *value(build_t *b, int depth) {
    ws(b);
    if (b->i >= b->n || depth > PH_JSON_MAX_DEPTH) return NULL;
    cJSON *node = arena_take(b, sizeof *node);
    if (!node) return NULL;
    memset(node, 0, sizeof *node);
    switch (b->s[b->i]) {
    case '{': node->type = cJSON_Object; return container(b, node, true, depth);
    case '[': node->type = cJSON_Array; return container(b, node, false, depth);
    case '"':
        node->type = cJSON_String;
        return (node->valuestring = string(b)) ? node : NULL;
    case 't': node->type = cJSON_True; node->valueint = 1; b->i += 4; return node;
    case 'f': node->type = cJSON_False; b->i += 5; return node;
    case 'n': node->type = cJSON_NULL; b->i += 4; return node;
    default: {
        size_t start = b->i;
        while (b->i < b->n && (strchr("+-.eE", b->s[b->i]) || (b->s[b->i] >= '0' && b->s[b->i] <= '9')))
            b->i++;
        double d = posthog__json_number((const char *)b->s + start, b->i - start);
        node->type = cJSON_Number;
        node->valuedouble = d;
        /* as cJSON: valueint saturates */
        node->valueint = d >= 2147483647.0 ? 2147483647 : d <= -2147483648.0 ? (-2147483647 - 1) : (int)d;
        return node;
    }
    }
}

void posthog__flags_lazy_init(ph_flags_lazy_t *l, const char *json, size_t len, bool checked) {
    l->json = json;
    l->len = len;
    l->checked = checked;
    l->invalid = false;
    l->tree = NULL;
    l->heap = NULL;
    l->parsed = false;
    l->used = 0;
}

const cJSON *posthog__flags_lazy_get(ph_flags_lazy_t *l) {
    if (!l || !l->json) return NULL;
    if (l->parsed) return l->tree;
    l->parsed = true;
    int type = 0;
    if (!l->checked && (posthog__json_check(l->json, l->len, PH_JSON_MAX_DEPTH, &type, NULL, NULL) !=
                            POSTHOG_OK ||
                        type != PH_JSON_OBJECT)) {
        l->invalid = true;
        return NULL;
    }
    build_t b = {(const unsigned char *)l->json, l->len, 0, l, false};
    cJSON *t = value(&b, 1);
    if (t && !b.full) return l->tree = t;
    /* more than the arena holds: an ordinary heap tree */
    l->heap = cJSON_ParseWithLength(l->json, l->len);
    return l->tree = l->heap;
}

void posthog__flags_lazy_free(ph_flags_lazy_t *l) {
    if (!l) return;
    cJSON_Delete(l->heap);
    l->heap = NULL;
    l->tree = NULL;
    l->parsed = false;
    l->used = 0;
}
