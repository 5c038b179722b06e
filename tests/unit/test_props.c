/*
 * Unit tests of the public properties builder (src/capture/props.c): every setter,
 * nesting, key replacement, key rules, UTF-8, numbers, growth, reuse.
 * Output is always checked by parsing it with cJSON.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "props.h"

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint64_t xrand(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Parses the builder's JSON; fails the test when it is not valid JSON
 * for both cJSON and our own validator. */
static cJSON *parsed(posthog_props_t *p) {
    const char *j = posthog_props_json(p);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(posthog__json_validate(j, strlen(j), NULL, NULL) == POSTHOG_OK,
                  "validator rejects builder output: %.300s", j);
    cJSON *c = cJSON_Parse(j);
    ck_assert_msg(c != NULL, "cJSON rejects builder output: %.300s", j);
    return c;
}

/* The builder's JSON equals `want` (JSON text) structurally. */
static void assert_json_eq(posthog_props_t *p, const char *want) {
    cJSON *a = parsed(p), *b = cJSON_Parse(want);
    ck_assert_msg(b != NULL, "bad expected JSON in test: %s", want);
    ck_assert_msg(cJSON_Compare(a, b, 1), "got %.300s, want %s", posthog_props_json(p), want);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* Member names of the object in order, joined with '|'. */
static void key_order(posthog_props_t *p, char *out, size_t cap) {
    cJSON *c = parsed(p), *it;
    size_t n = 0;
    out[0] = '\0';
    cJSON_ArrayForEach(it, c) {
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "|" : "", it->string);
    }
    cJSON_Delete(c);
}

START_TEST(empty_builders) {
    posthog_props_t *o = posthog_props_new(), *a = posthog_props_new_array();
    ck_assert_str_eq(posthog_props_json(o), "{}");
    ck_assert_str_eq(posthog_props_json(a), "[]");
    ck_assert_uint_eq(posthog_props_count(o), 0);
    ck_assert(!posthog__props_is_array(o));
    ck_assert(posthog__props_is_array(a));
    size_t n = 99;
    posthog__props_inner(o, &n);
    ck_assert_uint_eq(n, 0);
    posthog_props_free(o);
    posthog_props_free(a);
    posthog_props_free(NULL);
    ck_assert_ptr_null(posthog_props_json(NULL));
    ck_assert_uint_eq(posthog_props_count(NULL), 0);
    posthog_props_clear(NULL);
}
END_TEST

START_TEST(every_setter_object) {
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_string(p, "s", "hello"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_stringn(p, "sn", "a\0b", 3), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_stringn(p, "sn2", "abcdef", 3), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(p, "snull", NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_int(p, "i", -42), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(p, "d", 2.5), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(p, "dint", 3.0), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_bool(p, "t", 7), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_bool(p, "f", 0), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_null(p, "n"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_json(p, "j", " {\"x\":[1,2,{\"y\":null}]} \n"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_json(p, "js", "\"str\""), POSTHOG_OK);
    ck_assert_uint_eq(posthog_props_count(p), 12);
    assert_json_eq(p, "{\"s\":\"hello\",\"sn\":\"a\\u0000b\",\"sn2\":\"abc\",\"snull\":null,"
                      "\"i\":-42,\"d\":2.5,\"dint\":3,\"t\":true,\"f\":false,\"n\":null,"
                      "\"j\":{\"x\":[1,2,{\"y\":null}]},\"js\":\"str\"}");
    /* exact text: order kept, set_json trimmed, NUL escaped */
    ck_assert_str_eq(posthog_props_json(p),
                     "{\"s\":\"hello\",\"sn\":\"a\\u0000b\",\"sn2\":\"abc\",\"snull\":null,"
                     "\"i\":-42,\"d\":2.5,\"dint\":3.0,\"t\":true,\"f\":false,\"n\":null,"
                     "\"j\":{\"x\":[1,2,{\"y\":null}]},\"js\":\"str\"}");
    posthog_props_free(p);
}
END_TEST

START_TEST(every_setter_array) {
    posthog_props_t *a = posthog_props_new_array();
    ck_assert_int_eq(posthog_props_set_string(a, NULL, "x"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_int(a, NULL, 1), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(a, NULL, -0.25), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_bool(a, NULL, 1), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_null(a, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_json(a, NULL, "[]"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(a, NULL, "x"), POSTHOG_OK); /* duplicates kept */
    ck_assert_uint_eq(posthog_props_count(a), 7);
    ck_assert_str_eq(posthog_props_json(a), "[\"x\",1,-0.25,true,null,[],\"x\"]");
    posthog_props_free(a);
}
END_TEST

START_TEST(key_rules) {
    posthog_props_t *o = posthog_props_new(), *a = posthog_props_new_array();
    ck_assert_int_eq(posthog_props_set_int(o, "k", 1), POSTHOG_OK);
    /* object: key required and non-empty */
    ck_assert_int_eq(posthog_props_set_int(o, NULL, 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_int(o, "", 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_string(o, "", "v"), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_null(o, NULL), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_json(o, NULL, "1"), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_double(o, NULL, 1.5), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_bool(o, "", 1), POSTHOG_E_INVALID_ARG);
    /* array: key must be NULL (even "") */
    ck_assert_int_eq(posthog_props_set_int(a, "k", 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_int(a, "", 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_string(a, "k", "v"), POSTHOG_E_INVALID_ARG);
    /* NULL builder */
    ck_assert_int_eq(posthog_props_set_int(NULL, "k", 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_string(NULL, "k", "v"), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_double(NULL, "k", 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_bool(NULL, "k", 1), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_null(NULL, "k"), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_json(NULL, "k", "1"), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_props(NULL, "k", a), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_props(o, "k", NULL), POSTHOG_E_INVALID_ARG);
    ck_assert_int_eq(posthog_props_set_props(o, "self", o), POSTHOG_E_INVALID_ARG);
    /* nothing changed */
    ck_assert_str_eq(posthog_props_json(o), "{\"k\":1}");
    ck_assert_str_eq(posthog_props_json(a), "[]");
    ck_assert_uint_eq(posthog_props_count(o), 1);
    ck_assert_uint_eq(posthog_props_count(a), 0);
    posthog_props_free(o);
    posthog_props_free(a);
}
END_TEST

/* has_key on keys without escapes (the byte-compare path), also after a
 * clear of a builder that had an escaped key, and an escaped lookup. */
START_TEST(has_key_plain_and_escaped_lookups) {
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_int(p, "tab\there", 1), POSTHOG_OK);
    posthog_props_clear(p);
    const char *keys[] = {"plan", "$set", "$set_once", "count", "caf\xC3\xA9"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_int_eq(posthog_props_set_int(p, keys[i], (int64_t)i), POSTHOG_OK);
    ck_assert(posthog__props_has_key(p, "$set", 4));
    ck_assert(posthog__props_has_key(p, "$set_once", 9));
    ck_assert(!posthog__props_has_key(p, "$se", 3));
    ck_assert(!posthog__props_has_key(p, "$set_onc", 8));
    ck_assert(!posthog__props_has_key(p, "tab\\there", 10)); /* cleared */
    ck_assert(posthog__props_has_key(p, "\\u0024set", 9));    /* escaped lookup, decoded */
    ck_assert(posthog__props_has_key(p, "caf\\u00e9", 9));
    ck_assert(posthog__props_has_key(p, "caf\xC3\xA9", 5));
    posthog_props_free(p);
}
END_TEST

START_TEST(keys_needing_escapes) {
    posthog_props_t *p = posthog_props_new();
    const char *keys[] = {"a\"b", "back\\slash", "tab\there", "nl\n", "\x01", "caf\xC3\xA9",
                          "$set", "fff", "/"};
    size_t nk = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < nk; i++)
        ck_assert_int_eq(posthog_props_set_int(p, keys[i], (int64_t)i), POSTHOG_OK);
    cJSON *c = parsed(p);
    ck_assert_int_eq(cJSON_GetArraySize(c), (int)nk);
    for (size_t i = 0; i < nk; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[i]);
        ck_assert_msg(v && cJSON_IsNumber(v) && v->valuedouble == (double)i, "key %zu", i);
    }
    cJSON_Delete(c);
    /* has_key takes the escaped form and compares decoded values */
    ck_assert(posthog__props_has_key(p, "a\\\"b", 4));
    ck_assert(posthog__props_has_key(p, "back\\\\slash", 11));
    ck_assert(posthog__props_has_key(p, "tab\\there", 9));
    ck_assert(posthog__props_has_key(p, "\\u0001", 6));
    ck_assert(posthog__props_has_key(p, "$set", 4));
    ck_assert(!posthog__props_has_key(p, "$se", 3));
    ck_assert(posthog__props_has_key(p, "a\\u0022b", 8));
    ck_assert(posthog__props_has_key(p, "\\u0024set", 9));
    ck_assert(!posthog__props_has_key(p, "a\\\"c", 4));
    /* setting an escaped key again replaces it */
    ck_assert_int_eq(posthog_props_set_string(p, "a\"b", "new"), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(p, "back\\slash", "new2"), POSTHOG_OK);
    ck_assert_uint_eq(posthog_props_count(p), nk);
    c = parsed(p);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "a\"b")->valuestring, "new");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "back\\slash")->valuestring, "new2");
    cJSON_Delete(c);
    posthog_props_free(p);
}
END_TEST

static posthog_props_t *abcde(void) {
    posthog_props_t *p = posthog_props_new();
    const char *k[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(posthog_props_set_int(p, k[i], i), POSTHOG_OK);
    return p;
}

START_TEST(replace_first_middle_last) {
    char order[256];
    /* first */
    posthog_props_t *p = abcde();
    ck_assert_int_eq(posthog_props_set_string(p, "a", "A"), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"b\":1,\"c\":2,\"d\":3,\"e\":4,\"a\":\"A\"}");
    ck_assert_uint_eq(posthog_props_count(p), 5);
    key_order(p, order, sizeof order);
    ck_assert_str_eq(order, "b|c|d|e|a");
    /* and the new first member can itself be replaced */
    ck_assert_int_eq(posthog_props_set_null(p, "b"), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"c\":2,\"d\":3,\"e\":4,\"a\":\"A\",\"b\":null}");
    ck_assert(posthog__props_has_key(p, "c", 1));
    ck_assert(posthog__props_has_key(p, "b", 1));
    posthog_props_free(p);
    /* middle */
    p = abcde();
    ck_assert_int_eq(posthog_props_set_bool(p, "c", 1), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"a\":0,\"b\":1,\"d\":3,\"e\":4,\"c\":true}");
    posthog_props_free(p);
    /* last */
    p = abcde();
    ck_assert_int_eq(posthog_props_set_json(p, "e", "{\"z\":1}"), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"a\":0,\"b\":1,\"c\":2,\"d\":3,\"e\":{\"z\":1}}");
    ck_assert_int_eq(posthog_props_set_int(p, "e", 9), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"a\":0,\"b\":1,\"c\":2,\"d\":3,\"e\":9}");
    posthog_props_free(p);
    /* single member replaced repeatedly */
    p = posthog_props_new();
    for (int i = 0; i < 50; i++) ck_assert_int_eq(posthog_props_set_int(p, "only", i), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"only\":49}");
    ck_assert_uint_eq(posthog_props_count(p), 1);
    posthog_props_free(p);
    /* a key that is a prefix of another is a different key */
    p = posthog_props_new();
    posthog_props_set_int(p, "ab", 1);
    posthog_props_set_int(p, "a", 2);
    posthog_props_set_int(p, "abc", 3);
    ck_assert_uint_eq(posthog_props_count(p), 3);
    ck_assert_str_eq(posthog_props_json(p), "{\"ab\":1,\"a\":2,\"abc\":3}");
    posthog_props_free(p);
}
END_TEST

/* Random sets of 24 keys against a model: an ordered list where setting a
 * key moves it to the end with its new value. Crosses the inline member
 * capacity and the inline text buffer repeatedly. */
START_TEST(replace_random_vs_model) {
    enum { NK = 24 };
    for (int round = 0; round < 40; round++) {
        posthog_props_t *p = posthog_props_new();
        int order[NK], norder = 0;
        int64_t value[NK];
        size_t vlen[NK];
        for (int op = 0; op < 300; op++) {
            int k = (int)(xrand() % NK);
            char key[16];
            snprintf(key, sizeof key, "key_%d", k);
            int64_t v = (int64_t)(xrand() % 100000);
            size_t slen = (size_t)(xrand() % 40);
            posthog_status_t st;
            if (slen > 30) {
                char s[64];
                memset(s, 'a' + (int)(v % 26), slen);
                s[slen] = '\0';
                st = posthog_props_set_string(p, key, s);
            } else {
                slen = 0;
                st = posthog_props_set_int(p, key, v);
            }
            ck_assert_int_eq(st, POSTHOG_OK);
            int at = -1;
            for (int i = 0; i < norder; i++)
                if (order[i] == k) at = i;
            if (at >= 0) {
                memmove(order + at, order + at + 1, (size_t)(norder - at - 1) * sizeof(int));
                norder--;
            }
            order[norder++] = k;
            value[k] = v;
            vlen[k] = slen;
            ck_assert_uint_eq(posthog_props_count(p), (size_t)norder);
            if (op % 7 == 0 || op == 299) {
                cJSON *c = parsed(p), *it;
                int i = 0;
                cJSON_ArrayForEach(it, c) {
                    char want[16];
                    snprintf(want, sizeof want, "key_%d", order[i]);
                    ck_assert_str_eq(it->string, want);
                    if (vlen[order[i]]) {
                        ck_assert(cJSON_IsString(it));
                        ck_assert_uint_eq(strlen(it->valuestring), vlen[order[i]]);
                        ck_assert_int_eq(it->valuestring[0], 'a' + (int)(value[order[i]] % 26));
                    } else {
                        ck_assert(cJSON_IsNumber(it));
                        ck_assert(it->valuedouble == (double)value[order[i]]);
                    }
                    i++;
                }
                ck_assert_int_eq(i, norder);
                cJSON_Delete(c);
                for (int kk = 0; kk < NK; kk++) {
                    char key2[16];
                    int kl = snprintf(key2, sizeof key2, "key_%d", kk);
                    bool present = false;
                    for (int j = 0; j < norder; j++) present |= order[j] == kk;
                    ck_assert_int_eq(posthog__props_has_key(p, key2, (size_t)kl), present);
                }
            }
        }
        posthog_props_free(p);
    }
}
END_TEST

START_TEST(invalid_utf8_rejected_unchanged) {
    posthog_props_t *p = posthog_props_new();
    posthog_props_set_int(p, "keep", 1);
    const char *bad[] = {"\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ok\xFF"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(posthog_props_set_string(p, "k", bad[i]), POSTHOG_E_INVALID_UTF8);
        ck_assert_int_eq(posthog_props_set_stringn(p, "k", bad[i], strlen(bad[i])),
                         POSTHOG_E_INVALID_UTF8);
        ck_assert_int_eq(posthog_props_set_int(p, bad[i], 1), POSTHOG_E_INVALID_UTF8);
        ck_assert_int_eq(posthog_props_set_string(p, bad[i], "v"), POSTHOG_E_INVALID_UTF8);
        ck_assert_int_eq(posthog_props_set_json(p, "k", "\"\xC3\""), POSTHOG_E_INVALID_UTF8);
        /* replacing an existing key with a bad value keeps the old one */
        ck_assert_int_eq(posthog_props_set_string(p, "keep", bad[i]), POSTHOG_E_INVALID_UTF8);
    }
    ck_assert_str_eq(posthog_props_json(p), "{\"keep\":1}");
    /* the length bounds the check */
    ck_assert_int_eq(posthog_props_set_stringn(p, "k", "ok\xFF", 2), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"keep\":1,\"k\":\"ok\"}");
    posthog_props_free(p);
}
END_TEST

START_TEST(non_finite_doubles_are_null) {
    posthog_props_t *p = posthog_props_new();
    ck_assert_int_eq(posthog_props_set_double(p, "nan", NAN), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(p, "inf", INFINITY), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(p, "ninf", -INFINITY), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_double(p, "nnan", -NAN), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p),
                     "{\"nan\":null,\"inf\":null,\"ninf\":null,\"nnan\":null}");
    posthog_props_free(p);
}
END_TEST

static double random_double(void) {
    for (;;) {
        uint64_t bits = xrand();
        double d;
        switch (xrand() % 4) {
        case 0: /* any finite bit pattern */
            memcpy(&d, &bits, sizeof d);
            break;
        case 1: /* integers in and around the exact range */
            d = (double)(int64_t)(bits >> (xrand() % 64)) * ((bits & 1) ? -1 : 1);
            break;
        case 2: /* ordinary magnitudes */
            d = ((double)(bits >> 11) / 9007199254740992.0 - 0.5) * pow(10, (int)(xrand() % 40) - 20);
            break;
        default: /* short decimals */
            d = (double)(int64_t)(bits % 2000001 - 1000000) / 1000.0;
        }
        if (isfinite(d)) return d;
    }
}

START_TEST(doubles_round_trip) {
    const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.2, 0.1 + 0.2, 1.0 / 3.0, 1e-300,
                            -1e300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                            9007199254740992.0, 9007199254740993.0, 123456789012345.0,
                            999999999999999.0, 1e15, 1e16, 4503599627370495.5, 0.5, 1e21,
                            9.223372036854775807e18, -9.223372036854775808e18, 1.8446744073709552e19};
    posthog_props_t *a = posthog_props_new_array();
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        ck_assert_int_eq(posthog_props_set_double(a, NULL, fixed[i]), POSTHOG_OK);
    for (int i = 0; i < 20000; i++) {
        double d = random_double();
        posthog_props_clear(a);
        ck_assert_int_eq(posthog_props_set_double(a, NULL, d), POSTHOG_OK);
        const char *j = posthog_props_json(a);
        ck_assert_int_eq(posthog__json_validate(j, strlen(j), NULL, NULL), POSTHOG_OK);
        char *end;
        double back = strtod(j + 1, &end);
        ck_assert_msg(*end == ']', "trailing text in %s", j);
        /* == as the contract says; -0.0 may come back as 0 (equal) */
        ck_assert_msg(back == d, "%.17g became %s", d, j);
    }
    /* the fixed list, all in one array */
    posthog_props_clear(a);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        ck_assert_int_eq(posthog_props_set_double(a, NULL, fixed[i]), POSTHOG_OK);
    cJSON *c = parsed(a), *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, c) {
        ck_assert_msg(it->valuedouble == fixed[i], "%.17g", fixed[i]);
        i++;
    }
    ck_assert_uint_eq(i, sizeof fixed / sizeof fixed[0]);
    cJSON_Delete(c);
    posthog_props_free(a);
}
END_TEST

START_TEST(int64_extremes) {
    posthog_props_t *p = posthog_props_new();
    posthog_props_set_int(p, "min", INT64_MIN);
    posthog_props_set_int(p, "max", INT64_MAX);
    posthog_props_set_int(p, "zero", 0);
    posthog_props_set_int(p, "m1", -1);
    ck_assert_str_eq(posthog_props_json(p), "{\"min\":-9223372036854775808,"
                                            "\"max\":9223372036854775807,\"zero\":0,\"m1\":-1}");
    posthog_props_free(p);
    posthog_props_t *a = posthog_props_new_array();
    for (int i = 0; i < 2000; i++) {
        int64_t v = (int64_t)xrand();
        posthog_props_clear(a);
        posthog_props_set_int(a, NULL, v);
        char want[32];
        snprintf(want, sizeof want, "[%lld]", (long long)v);
        ck_assert_str_eq(posthog_props_json(a), want);
    }
    posthog_props_free(a);
}
END_TEST

START_TEST(set_json_validation) {
    posthog_props_t *p = posthog_props_new();
    const char *good[] = {"1", "-0.5e3", "true", "null", "\"s\"", "[]", "{}", " [1, {\"a\": []}] ",
                          "\t\r\n\"x\"\n"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(posthog_props_set_json(p, "k", good[i]) == POSTHOG_OK, "%s", good[i]);
    const char *bad[] = {"", " ", "{", "[1,]", "01", "{\"a\":1}x", "tru", "'s'", "\"\\uD800\"",
                         "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(posthog_props_set_json(p, "k", bad[i]) == POSTHOG_E_INVALID_JSON, "%s",
                      bad[i]);
    ck_assert_int_eq(posthog_props_set_json(p, "k", NULL), POSTHOG_E_INVALID_ARG);
    /* last good one won, whitespace trimmed */
    ck_assert_str_eq(posthog_props_json(p), "{\"k\":\"x\"}");
    ck_assert_int_eq(posthog_props_set_json(p, "k", " [1, {\"a\": []}] "), POSTHOG_OK);
    ck_assert_str_eq(posthog_props_json(p), "{\"k\":[1, {\"a\": []}]}");
    posthog_props_free(p);
}
END_TEST

START_TEST(nesting_props) {
    posthog_props_t *root = posthog_props_new();
    posthog_props_t *child = posthog_props_new();
    posthog_props_t *arr = posthog_props_new_array();
    posthog_props_t *empty_o = posthog_props_new(), *empty_a = posthog_props_new_array();
    posthog_props_set_string(child, "plan", "pro");
    posthog_props_set_int(child, "seats", 3);
    posthog_props_set_int(arr, NULL, 1);
    posthog_props_set_string(arr, NULL, "two");
    ck_assert_int_eq(posthog_props_set_props(arr, NULL, child), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_props(root, "org", child), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_props(root, "list", arr), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_props(root, "eo", empty_o), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_props(root, "ea", empty_a), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_props(arr, "k", child), POSTHOG_E_INVALID_ARG);
    ck_assert_str_eq(posthog_props_json(root),
                     "{\"org\":{\"plan\":\"pro\",\"seats\":3},"
                     "\"list\":[1,\"two\",{\"plan\":\"pro\",\"seats\":3}],\"eo\":{},\"ea\":[]}");
    /* the child was copied: changing or freeing it later does not matter */
    posthog_props_set_int(child, "seats", 99);
    posthog_props_free(child);
    posthog_props_free(arr);
    assert_json_eq(root, "{\"org\":{\"plan\":\"pro\",\"seats\":3},"
                         "\"list\":[1,\"two\",{\"plan\":\"pro\",\"seats\":3}],\"eo\":{},\"ea\":[]}");
    /* deep nesting through builders */
    posthog_props_t *cur = posthog_props_new();
    posthog_props_set_int(cur, "leaf", 1);
    for (int d = 0; d < 30; d++) {
        posthog_props_t *up = (d & 1) ? posthog_props_new() : posthog_props_new_array();
        ck_assert_int_eq(posthog_props_set_props(up, (d & 1) ? "n" : NULL, cur), POSTHOG_OK);
        posthog_props_free(cur);
        cur = up;
    }
    cJSON *c = parsed(cur);
    cJSON_Delete(c);
    /* replace a nested member with a nested one */
    ck_assert_int_eq(posthog_props_set_props(root, "org", cur), POSTHOG_OK);
    c = parsed(root);
    ck_assert_int_eq(cJSON_GetArraySize(c), 4);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(c, "org"))); /* level 29 is an object */
    cJSON_Delete(c);
    posthog_props_free(cur);
    posthog_props_free(empty_o);
    posthog_props_free(empty_a);
    posthog_props_free(root);
}
END_TEST

START_TEST(growth_many_members_and_long_strings) {
    posthog_props_t *p = posthog_props_new();
    char key[32], val[64];
    for (int i = 0; i < 700; i++) {
        snprintf(key, sizeof key, "member_%04d", i);
        snprintf(val, sizeof val, "value-%d-\xC3\xA9\"\\", i);
        ck_assert_int_eq(posthog_props_set_string(p, key, val), POSTHOG_OK);
    }
    char *big = malloc(300001);
    for (int i = 0; i < 300000; i++) big[i] = (char)('a' + i % 26);
    big[300000] = '\0';
    big[1000] = '\n';
    ck_assert_int_eq(posthog_props_set_string(p, "big", big), POSTHOG_OK);
    /* replace early members after growth */
    ck_assert_int_eq(posthog_props_set_int(p, "member_0000", -1), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_int(p, "member_0350", -2), POSTHOG_OK);
    ck_assert_uint_eq(posthog_props_count(p), 701);
    cJSON *c = parsed(p);
    ck_assert_int_eq(cJSON_GetArraySize(c), 701);
    for (int i = 1; i < 700; i++) {
        if (i == 350) continue;
        snprintf(key, sizeof key, "member_%04d", i);
        snprintf(val, sizeof val, "value-%d-\xC3\xA9\"\\", i);
        cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
        ck_assert_msg(v && cJSON_IsString(v) && strcmp(v->valuestring, val) == 0, "%s", key);
    }
    ck_assert_str_eq(cJSON_GetObjectItem(c, "big")->valuestring, big);
    ck_assert(cJSON_GetObjectItem(c, "member_0000")->valuedouble == -1);
    /* the last two members are the replaced ones */
    cJSON *last = cJSON_GetArrayItem(c, 700), *prev = cJSON_GetArrayItem(c, 699);
    ck_assert_str_eq(last->string, "member_0350");
    ck_assert_str_eq(prev->string, "member_0000");
    cJSON_Delete(c);
    size_t inner_len;
    const char *inner = posthog__props_inner(p, &inner_len);
    ck_assert_uint_eq(inner_len + 2, strlen(posthog_props_json(p)));
    ck_assert(inner[0] == '"');

    /* clear keeps the kind, empties, and the builder is reusable */
    posthog_props_clear(p);
    ck_assert_str_eq(posthog_props_json(p), "{}");
    ck_assert_uint_eq(posthog_props_count(p), 0);
    ck_assert(!posthog__props_has_key(p, "big", 3));
    ck_assert_int_eq(posthog_props_set_int(p, "again", 1), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_string(p, "big", big), POSTHOG_OK);
    ck_assert_int_eq(posthog_props_set_int(p, "again", 2), POSTHOG_OK);
    c = parsed(p);
    ck_assert_int_eq(cJSON_GetArraySize(c), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(c, 0)->string, "big");
    cJSON_Delete(c);
    posthog_props_free(p);

    posthog_props_t *a = posthog_props_new_array();
    for (int i = 0; i < 5000; i++) ck_assert_int_eq(posthog_props_set_int(a, NULL, i), POSTHOG_OK);
    c = parsed(a);
    ck_assert_int_eq(cJSON_GetArraySize(c), 5000);
    ck_assert(cJSON_GetArrayItem(c, 4999)->valuedouble == 4999);
    cJSON_Delete(c);
    posthog_props_clear(a);
    ck_assert_str_eq(posthog_props_json(a), "[]");
    posthog_props_set_null(a, NULL);
    ck_assert_str_eq(posthog_props_json(a), "[null]");
    posthog_props_free(a);
    free(big);
}
END_TEST

START_TEST(json_pointer_valid_until_change) {
    /* posthog_props_json is idempotent and the builder keeps working after it */
    posthog_props_t *p = posthog_props_new();
    posthog_props_set_int(p, "a", 1);
    ck_assert_str_eq(posthog_props_json(p), "{\"a\":1}");
    ck_assert_str_eq(posthog_props_json(p), "{\"a\":1}");
    posthog_props_set_int(p, "b", 2);
    ck_assert_str_eq(posthog_props_json(p), "{\"a\":1,\"b\":2}");
    size_t n;
    const char *in = posthog__props_inner(p, &n);
    ck_assert_uint_eq(n, 11);
    ck_assert(memcmp(in, "\"a\":1,\"b\":2", 11) == 0);
    posthog_props_free(p);
}
END_TEST

static Suite *props_suite(void) {
    Suite *s = suite_create("props");
    TCase *t = tcase_create("props");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, empty_builders);
    tcase_add_test(t, every_setter_object);
    tcase_add_test(t, every_setter_array);
    tcase_add_test(t, key_rules);
    tcase_add_test(t, keys_needing_escapes);
    tcase_add_test(t, has_key_plain_and_escaped_lookups);
    tcase_add_test(t, replace_first_middle_last);
    tcase_add_test(t, replace_random_vs_model);
    tcase_add_test(t, invalid_utf8_rejected_unchanged);
    tcase_add_test(t, non_finite_doubles_are_null);
    tcase_add_test(t, doubles_round_trip);
    tcase_add_test(t, int64_extremes);
    tcase_add_test(t, set_json_validation);
    tcase_add_test(t, nesting_props);
    tcase_add_test(t, growth_many_members_and_long_strings);
    tcase_add_test(t, json_pointer_valid_until_change);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(props_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
