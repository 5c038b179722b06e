/*
 * props: the public posthog_props_t builder. It serialises as it goes:
 * the object's members are kept as JSON text ("{" + members), with the
 * span of every member so a repeated key replaces the earlier value.
 * Small builders live entirely in the struct's inline storage.
 */
#ifndef POSTHOG_PROPS_H
#define POSTHOG_PROPS_H

#include "common.h"

/* The members' text without the enclosing braces/brackets; "" when empty. */
const char *posthog__props_inner(const posthog_props_t *p, size_t *len);
bool posthog__props_is_array(const posthog_props_t *p);
/* Whether an object builder has `key` (raw escaped form). */
bool posthog__props_has_key(const posthog_props_t *p, const char *key, size_t klen);

/* Whether any key of an object builder satisfies pred (raw escaped form). */
bool posthog__props_any_key(const posthog_props_t *p, bool (*pred)(const char *, size_t));

#endif
