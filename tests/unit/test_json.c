/*
 * Unit tests of src/capture/json.c: UTF-8 validation, string escaping, the strict
 * validator with its key spans, and a differential check of the validator
 * against cJSON on random mutations of valid documents.
 */
#include <check.h>
#include <stdint.h>
#include <stdbool.h>
#include <math.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "test_scale.h"

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t xrand(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static bool u8(const char *s, size_t n) { return posthog__utf8_valid(s, n); }
#define U8_OK(lit) ck_assert_msg(u8(lit, sizeof(lit) - 1), "should be valid: %s", #lit)
#define U8_BAD(lit) ck_assert_msg(!u8(lit, sizeof(lit) - 1), "should be invalid: %s", #lit)

/* Reference decoder (RFC 3629 by the table of well-formed byte sequences):
 * length of the valid sequence at s, 0 if invalid. */
static size_t ref_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    unsigned lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}
static bool ref_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t l = ref_seq(s + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* Encodes a code point as UTF-8; returns the length. */
static size_t enc_utf8(unsigned cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Escapes s into a buffer with a canary after escaped_len bytes and
 * checks that escape() writes exactly escaped_len bytes. Returns malloc()ed
 * NUL-terminated "quoted" text. */
static char *escape_checked(const char *s, size_t n) {
    size_t el = posthog__json_escaped_len(s, n);
    /* room for the worst case so a wrong escaped_len is reported, not a crash */
    size_t room = 6 * n + 16;
    char *buf = malloc(room + 3);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 0x5A, room + 3);
    buf[0] = '"';
    size_t w = posthog__json_escape(buf + 1, s, n);
    ck_assert_msg(w == el, "escape wrote %zu bytes, escaped_len said %zu", w, el);
    ck_assert_msg((unsigned char)buf[1 + el] == 0x5A, "escape wrote past escaped_len");
    buf[1 + w] = '"';
    buf[2 + w] = '\0';
    return buf;
}

/* Parses "quoted" with cJSON and checks the decoded string equals s. */
static void check_roundtrip(const char *s, size_t n) {
    char *q = escape_checked(s, n);
    cJSON *j = cJSON_Parse(q);
    ck_assert_msg(j != NULL, "cJSON rejected escaped text %s", q);
    ck_assert(cJSON_IsString(j));
    ck_assert_msg(strlen(j->valuestring) == n && memcmp(j->valuestring, s, n) == 0,
                  "round trip changed the string: %s", q);
    /* our own validator must accept it too */
    ck_assert_int_eq(posthog__json_validate(q, strlen(q), NULL, NULL), POSTHOG_OK);
    cJSON_Delete(j);
    free(q);
}

static posthog_status_t val(const char *s) { return posthog__json_validate(s, strlen(s), NULL, NULL); }

/* ------------------------------------------------------------ UTF-8 */

START_TEST(utf8_valid_sequences) {
    U8_OK("");
    U8_OK("plain ascii");
    U8_OK("\xC2\x80");             /* U+0080 */
    U8_OK("\xC3\xA9t\xC3\xA9");    /* été */
    U8_OK("\xDF\xBF");             /* U+07FF */
    U8_OK("\xE0\xA0\x80");         /* U+0800 */
    U8_OK("\xE2\x82\xAC");         /* € */
    U8_OK("\xED\x9F\xBF");         /* U+D7FF, last before surrogates */
    U8_OK("\xEE\x80\x80");         /* U+E000, first after surrogates */
    U8_OK("\xEF\xBF\xBF");         /* U+FFFF */
    U8_OK("\xF0\x90\x80\x80");     /* U+10000 */
    U8_OK("\xF0\x9D\x84\x9E");     /* U+1D11E */
    U8_OK("\xF4\x8F\xBF\xBF");     /* U+10FFFF */
    U8_OK("abcdefghijklmnop\xF0\x9F\x98\x80xyz");
    /* NUL is a valid code point when the length says so */
    ck_assert(u8("a\0b", 3));
    /* The length bounds the check: a bad byte after n is not looked at */
    ck_assert(u8("abc\xFF", 3));
}
END_TEST

START_TEST(utf8_invalid_sequences) {
    /* overlongs */
    U8_BAD("\xC0\x80");
    U8_BAD("\xC0\xAF");
    U8_BAD("\xC1\xBF");
    U8_BAD("\xE0\x80\x80");
    U8_BAD("\xE0\x9F\xBF");
    U8_BAD("\xF0\x80\x80\x80");
    U8_BAD("\xF0\x8F\xBF\xBF");
    /* surrogates U+D800..U+DFFF */
    U8_BAD("\xED\xA0\x80");
    U8_BAD("\xED\xAD\xBF");
    U8_BAD("\xED\xBF\xBF");
    U8_BAD("\xED\xA0\xBD\xED\xB8\x80"); /* CESU-8 pair */
    /* > U+10FFFF */
    U8_BAD("\xF4\x90\x80\x80");
    U8_BAD("\xF5\x80\x80\x80");
    U8_BAD("\xF7\xBF\xBF\xBF");
    U8_BAD("\xF8\x88\x80\x80\x80");
    U8_BAD("\xFC\x84\x80\x80\x80\x80");
    /* truncated */
    U8_BAD("\xC3");
    U8_BAD("\xE2\x82");
    U8_BAD("\xF0\x9D\x84");
    U8_BAD("abc\xE2\x82");
    U8_BAD("abcdefghijk\xF0\x9F\x98");
    U8_BAD("\xE2\x82" "A");
    U8_BAD("\xC3" "A");
    U8_BAD("\xF0\x9F\x98" "A");
    /* continuation byte where a lead is expected */
    U8_BAD("\x80");
    U8_BAD("a\xBF" "b");
    U8_BAD("\xC3\xA9\xA9");
    /* lead byte followed by a non-continuation */
    U8_BAD("\xC3\xC3");
    U8_BAD("\xE2\x28\xA1");
    U8_BAD("\xF0\x28\x8C\xBC");
}
END_TEST

START_TEST(utf8_every_high_byte_alone) {
    char buf[40];
    for (int b = 0x80; b <= 0xFF; b++) {
        buf[0] = (char)b;
        ck_assert_msg(!u8(buf, 1), "byte 0x%02x alone accepted", b);
        /* also behind the 8-byte ASCII fast path, at every alignment */
        for (size_t pre = 0; pre < 20; pre++) {
            memset(buf, 'a', pre);
            buf[pre] = (char)b;
            memset(buf + pre + 1, 'z', 12);
            ck_assert_msg(!u8(buf, pre + 13), "byte 0x%02x after %zu ASCII bytes accepted", b,
                          pre);
        }
    }
}
END_TEST

/* Every 1-, 2- and 3-byte string against the reference decoder, then
 * random 4- to 8-byte strings. */
START_TEST(utf8_exhaustive_vs_reference) {
    unsigned char s[8];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        ck_assert_int_eq(u8((char *)s, 1), ref_valid(s, 1));
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            ck_assert_int_eq(u8((char *)s, 2), ref_valid(s, 2));
            /* third bytes only matter behind 3/4-byte leads or ASCII */
            if (a < 0xE0 && a >= 0x80) continue;
            if (a < 0x80 && (b < 0x80 || b > 0xC3)) continue;
            for (unsigned c = 0x70; c < 0xD0; c++) {
                s[2] = (unsigned char)c;
                bool got = u8((char *)s, 3), want = ref_valid(s, 3);
                ck_assert_msg(got == want, "%02x %02x %02x: got %d want %d", a, b, c, got, want);
            }
        }
    }
    for (long k = 0, kn = ph_test_scale(300000); k < kn; k++) {
        uint64_t r = xrand();
        size_t n = 4 + (size_t)(r & 3);
        for (size_t i = 0; i < n; i++) {
            /* bias towards the interesting region */
            unsigned v = (unsigned)(xrand() >> 56);
            s[i] = (unsigned char)(i == 0 ? 0xE0 | (v & 0x17) : 0x70 + (v % 0x60));
        }
        ck_assert_int_eq(u8((char *)s, n), ref_valid(s, n));
    }
}
END_TEST

/* ------------------------------------------------------------ escaping */

START_TEST(escape_every_ascii_byte) {
    for (int c = 0; c < 0x80; c++) {
        char in[3] = {'a', (char)c, 'b'};
        char *q = escape_checked(in, 3);
        const char *mid = q + 2; /* after '"a' */
        char want[16];
        switch (c) {
        case '"': strcpy(want, "\\\""); break;
        case '\\': strcpy(want, "\\\\"); break;
        case '\b': strcpy(want, "\\b"); break;
        case '\f': strcpy(want, "\\f"); break;
        case '\n': strcpy(want, "\\n"); break;
        case '\r': strcpy(want, "\\r"); break;
        case '\t': strcpy(want, "\\t"); break;
        default:
            if (c < 0x20) snprintf(want, sizeof want, "\\u%04x", c);
            else snprintf(want, sizeof want, "%c", c);
        }
        size_t wl = strlen(want);
        ck_assert_msg(strncmp(mid, want, wl) == 0 && strcmp(mid + wl, "b\"") == 0,
                      "byte 0x%02x escaped as %s, want \"a%sb\"", c, q, want);
        free(q);
        if (c) check_roundtrip(in, 3);
    }
}
END_TEST

START_TEST(escape_backslash_and_quote) {
    /* The two characters JSON requires escaping besides controls. */
    ck_assert_uint_eq(posthog__json_escaped_len("\\", 1), 2);
    ck_assert_uint_eq(posthog__json_escaped_len("\"", 1), 2);
    check_roundtrip("C:\\path\\to\\file", 15);
    check_roundtrip("say \"hi\"", 8);
    check_roundtrip("\\\"\\\"", 4);
}
END_TEST

START_TEST(escape_plain_letters_unchanged) {
    /* Printable ASCII other than '"' and '\\' is copied as is. */
    char all[96];
    size_t n = 0;
    for (int c = 0x20; c < 0x7F; c++)
        if (c != '"' && c != '\\') all[n++] = (char)c;
    ck_assert_uint_eq(posthog__json_escaped_len(all, n), n);
    char *q = escape_checked(all, n);
    ck_assert(memcmp(q + 1, all, n) == 0);
    free(q);
    check_roundtrip("false if off", 12);
}
END_TEST

START_TEST(escape_nul_del_and_non_ascii) {
    char *q = escape_checked("a\0b", 3);
    ck_assert_str_eq(q, "\"a\\u0000b\"");
    free(q);
    q = escape_checked("\x7f", 1);
    ck_assert_str_eq(q, "\"\x7f\""); /* DEL needs no escape in JSON */
    free(q);
    check_roundtrip("\x7f", 1);
    const char *na = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
    q = escape_checked(na, strlen(na));
    ck_assert(memcmp(q + 1, na, strlen(na)) == 0); /* UTF-8 passes through raw */
    free(q);
    check_roundtrip(na, strlen(na));
}
END_TEST

START_TEST(escape_random_roundtrip) {
    char s[256];
    for (int k = 0; k < 5000; k++) {
        size_t n = 0, want = xrand() % 60;
        for (size_t i = 0; i < want; i++) {
            unsigned r = (unsigned)(xrand() % 10), cp;
            if (r < 3) cp = 1 + (unsigned)(xrand() % 0x7F); /* any ASCII but NUL */
            else if (r < 5) cp = 1 + (unsigned)(xrand() % 0x1F);
            else if (r < 6) cp = (xrand() & 1) ? '"' : '\\';
            else if (r < 8) cp = 0x80 + (unsigned)(xrand() % 0xF780);
            else cp = 0x10000 + (unsigned)(xrand() % 0x100000);
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
            n += enc_utf8(cp, s + n);
        }
        check_roundtrip(s, n);
    }
}
END_TEST

START_TEST(append_string_quotes_and_limit) {
    ph_buf_t b;
    posthog__buf_init(&b, 64);
    ck_assert_int_eq(posthog__json_append_string(&b, "a\"b\\c\n", 6), 0);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\"");
    ck_assert_uint_eq(b.len, strlen(b.data));
    ck_assert_int_eq(posthog__json_append_string(&b, "", 0), 0);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\"\"\"");
    /* over the maximum: -1, buffer unchanged */
    size_t before = b.len;
    char big[80];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(posthog__json_append_string(&b, big, sizeof big), -1);
    ck_assert_uint_eq(b.len, before);
    posthog__buf_free(&b);
    posthog__buf_free(&b); /* idempotent */
}
END_TEST

START_TEST(append_string_many_f) {
    /* append_string reserves escaped_len bytes and escape() writes them:
     * the two must agree for every byte or the buffer overflows. */
    char s[2000];
    memset(s, 'f', sizeof s);
    ph_buf_t b;
    posthog__buf_init(&b, 1 << 20);
    ck_assert_int_eq(posthog__json_append_string(&b, s, sizeof s), 0);
    ck_assert_uint_eq(b.len, sizeof s + 2);
    ck_assert_uint_eq(strlen(b.data), b.len);
    cJSON *j = cJSON_Parse(b.data);
    ck_assert(j && cJSON_IsString(j) && strlen(j->valuestring) == sizeof s);
    cJSON_Delete(j);
    posthog__buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------ validator */

typedef struct {
    const char *doc;
    posthog_status_t want;
    int type;
} vcase_t;

static const vcase_t vcases[] = {
    {"{}", POSTHOG_OK, PH_JSON_OBJECT},
    {"[]", POSTHOG_OK, PH_JSON_ARRAY},
    {" \t\r\n{ } \n", POSTHOG_OK, PH_JSON_OBJECT},
    {"\"s\"", POSTHOG_OK, PH_JSON_STRING},
    {"0", POSTHOG_OK, PH_JSON_NUMBER},
    {"-0", POSTHOG_OK, PH_JSON_NUMBER},
    {"-0.0e-0", POSTHOG_OK, PH_JSON_NUMBER},
    {"12.5E+3", POSTHOG_OK, PH_JSON_NUMBER},
    {"1e999", POSTHOG_E_INVALID_JSON, 0}, /* beyond a double: capture refuses it */
    {"true", POSTHOG_OK, PH_JSON_LITERAL},
    {"false", POSTHOG_OK, PH_JSON_LITERAL},
    {"null", POSTHOG_OK, PH_JSON_LITERAL},
    {"{\"a\":1,\"b\":[true,false,null,{\"c\":\"d\"}],\"e\":{}}", POSTHOG_OK, PH_JSON_OBJECT},
    {"[1,[2,[3,[4]]],{}]", POSTHOG_OK, PH_JSON_ARRAY},
    {"{\"\":\"\"}", POSTHOG_OK, PH_JSON_OBJECT},
    {"{\"a\":1,\"a\":2}", POSTHOG_OK, PH_JSON_OBJECT}, /* duplicates are legal JSON */
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"", POSTHOG_OK, PH_JSON_STRING},
    {"\"\\u0000\"", POSTHOG_OK, PH_JSON_STRING},
    {"\"caf\xC3\xA9\"", POSTHOG_OK, PH_JSON_STRING},
    {"\"\x7f\"", POSTHOG_OK, PH_JSON_STRING},
    {"[ 1 , 2 ]", POSTHOG_OK, PH_JSON_ARRAY},
    /* invalid */
    {"", POSTHOG_E_INVALID_JSON, 0},
    {"   ", POSTHOG_E_INVALID_JSON, 0},
    {"{", POSTHOG_E_INVALID_JSON, 0},
    {"}", POSTHOG_E_INVALID_JSON, 0},
    {"[", POSTHOG_E_INVALID_JSON, 0},
    {"]", POSTHOG_E_INVALID_JSON, 0},
    {"[1,]", POSTHOG_E_INVALID_JSON, 0},
    {"[,1]", POSTHOG_E_INVALID_JSON, 0},
    {"[1,,2]", POSTHOG_E_INVALID_JSON, 0},
    {"{\"a\":1,}", POSTHOG_E_INVALID_JSON, 0},
    {"{,}", POSTHOG_E_INVALID_JSON, 0},
    {"{\"a\"}", POSTHOG_E_INVALID_JSON, 0},
    {"{\"a\":}", POSTHOG_E_INVALID_JSON, 0},
    {"{\"a\" 1}", POSTHOG_E_INVALID_JSON, 0},
    {"{a:1}", POSTHOG_E_INVALID_JSON, 0},
    {"{'a':1}", POSTHOG_E_INVALID_JSON, 0},
    {"{1:1}", POSTHOG_E_INVALID_JSON, 0},
    {"[1 2]", POSTHOG_E_INVALID_JSON, 0},
    {"{\"a\":1 \"b\":2}", POSTHOG_E_INVALID_JSON, 0},
    {"[}", POSTHOG_E_INVALID_JSON, 0},
    {"{]", POSTHOG_E_INVALID_JSON, 0},
    {"01", POSTHOG_E_INVALID_JSON, 0},
    {"-01", POSTHOG_E_INVALID_JSON, 0},
    {"00", POSTHOG_E_INVALID_JSON, 0},
    {"1.", POSTHOG_E_INVALID_JSON, 0},
    {".5", POSTHOG_E_INVALID_JSON, 0},
    {"-.5", POSTHOG_E_INVALID_JSON, 0},
    {"+1", POSTHOG_E_INVALID_JSON, 0},
    {"-", POSTHOG_E_INVALID_JSON, 0},
    {"1e", POSTHOG_E_INVALID_JSON, 0},
    {"1e+", POSTHOG_E_INVALID_JSON, 0},
    {"1.e5", POSTHOG_E_INVALID_JSON, 0},
    {"0x10", POSTHOG_E_INVALID_JSON, 0},
    {"NaN", POSTHOG_E_INVALID_JSON, 0},
    {"Infinity", POSTHOG_E_INVALID_JSON, 0},
    {"tru", POSTHOG_E_INVALID_JSON, 0},
    {"True", POSTHOG_E_INVALID_JSON, 0},
    {"nul", POSTHOG_E_INVALID_JSON, 0},
    {"nulll", POSTHOG_E_INVALID_JSON, 0},
    {"\"abc", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\x41\"", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\a\"", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\'\"", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\u12\"", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\u12G4\"", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\", POSTHOG_E_INVALID_JSON, 0},
    {"\"\\uD800\"", POSTHOG_E_INVALID_JSON, 0},          /* lone high surrogate */
    {"\"\\uDBFF\\u0041\"", POSTHOG_E_INVALID_JSON, 0},   /* high + non-low */
    {"\"\\uDC00\"", POSTHOG_E_INVALID_JSON, 0},          /* lone low surrogate */
    {"\"\\uDE00\\uD83D\"", POSTHOG_E_INVALID_JSON, 0},   /* reversed pair */
    {"\"\\uD83D\"x", POSTHOG_E_INVALID_JSON, 0},
    {"\"a\tb\"", POSTHOG_E_INVALID_JSON, 0},             /* raw control char */
    {"\"a\nb\"", POSTHOG_E_INVALID_JSON, 0},
    {"\"\x01\"", POSTHOG_E_INVALID_JSON, 0},
    {"{} x", POSTHOG_E_INVALID_JSON, 0},
    {"{}{}", POSTHOG_E_INVALID_JSON, 0},
    {"1 2", POSTHOG_E_INVALID_JSON, 0},
    {"[1]]", POSTHOG_E_INVALID_JSON, 0},
    {"\"a\"\"b\"", POSTHOG_E_INVALID_JSON, 0},
    {"\f{}", POSTHOG_E_INVALID_JSON, 0},  /* form feed is not JSON whitespace */
    {"{}\v", POSTHOG_E_INVALID_JSON, 0},
    {"\xEF\xBB\xBF{}", POSTHOG_E_INVALID_JSON, 0}, /* a BOM is not whitespace */
    {"\"\xC3\"", POSTHOG_E_INVALID_UTF8, 0},
    {"\"\xED\xA0\x80\"", POSTHOG_E_INVALID_UTF8, 0},
    {"\"\xC0\xAF\"", POSTHOG_E_INVALID_UTF8, 0},
    {"\"\xF4\x90\x80\x80\"", POSTHOG_E_INVALID_UTF8, 0},
    {"{\"k\xFF\":1}", POSTHOG_E_INVALID_UTF8, 0},
};

START_TEST(validate_table) {
    for (size_t i = 0; i < sizeof vcases / sizeof vcases[0]; i++) {
        const vcase_t *c = &vcases[i];
        int type = -1;
        posthog_status_t st = posthog__json_validate(c->doc, strlen(c->doc), &type, NULL);
        ck_assert_msg(st == c->want, "case %zu '%s': got %d want %d", i, c->doc, st, c->want);
        if (c->want == POSTHOG_OK)
            ck_assert_msg(type == c->type, "case %zu '%s': type %d want %d", i, c->doc, type,
                          c->type);
    }
}
END_TEST

START_TEST(validate_uses_length_not_nul) {
    /* n bounds the scan: a valid prefix passed with its length is fine ... */
    ck_assert_int_eq(posthog__json_validate("{}garbage", 2, NULL, NULL), POSTHOG_OK);
    ck_assert_int_eq(posthog__json_validate("truex", 4, NULL, NULL), POSTHOG_OK);
    /* ... cut-off values are not */
    ck_assert_int_eq(posthog__json_validate("true", 3, NULL, NULL), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog__json_validate("\"ab\"", 3, NULL, NULL), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog__json_validate("\"\\u0041\"", 6, NULL, NULL),
                     POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog__json_validate("12", 1, NULL, NULL), POSTHOG_OK);
    /* an embedded NUL is not whitespace */
    ck_assert_int_eq(posthog__json_validate("{}\0", 3, NULL, NULL), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(posthog__json_validate("\"a\0b\"", 5, NULL, NULL), POSTHOG_E_INVALID_JSON);
}
END_TEST

static char *nested(int depth, char open, char close, const char *inner) {
    size_t il = strlen(inner);
    char *s = malloc((size_t)depth * 8 + il + 1);
    size_t n = 0;
    for (int i = 0; i < depth; i++) {
        if (open == '{') {
            memcpy(s + n, "{\"k\":", 5);
            n += 5;
        } else {
            s[n++] = open;
        }
    }
    /* innermost object needs a value */
    memcpy(s + n, inner, il);
    n += il;
    for (int i = 0; i < depth; i++) s[n++] = close;
    s[n] = '\0';
    return s;
}

START_TEST(validate_depth_limit) {
    ck_assert_int_eq(PH_JSON_MAX_DEPTH, 64);
    char *a64 = nested(64, '[', ']', "");
    char *a65 = nested(65, '[', ']', "");
    char *o64 = nested(64, '{', '}', "1");
    char *o65 = nested(65, '{', '}', "1");
    char *a64v = nested(64, '[', ']', "1,\"x\"");
    ck_assert_int_eq(val(a64), POSTHOG_OK);
    ck_assert_int_eq(val(a64v), POSTHOG_OK);
    ck_assert_int_eq(val(o64), POSTHOG_OK);
    ck_assert_int_eq(val(a65), POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(val(o65), POSTHOG_E_INVALID_JSON);
    /* mixed: 63 arrays + 1 object = 64 containers; +1 more = 65 */
    char *m = nested(63, '[', ']', "{}");
    ck_assert_int_eq(val(m), POSTHOG_OK);
    free(m);
    m = nested(64, '[', ']', "{}");
    ck_assert_int_eq(val(m), POSTHOG_E_INVALID_JSON);
    free(m);
    /* depth is about nesting, not about the number of containers */
    char wide[4096];
    size_t n = 0;
    wide[n++] = '[';
    for (int i = 0; i < 500; i++) {
        memcpy(wide + n, "[],", 3);
        n += 3;
    }
    wide[n - 1] = ']';
    wide[n] = '\0';
    ck_assert_int_eq(val(wide), POSTHOG_OK);
    /* very deep hostile input does not crash */
    char *deep = nested(100000, '[', ']', "");
    ck_assert_int_eq(val(deep), POSTHOG_E_INVALID_JSON);
    free(deep);
    free(a64);
    free(a65);
    free(o64);
    free(o65);
    free(a64v);
}
END_TEST

static bool span_is(const char *doc, const ph_json_keys_t *k, size_t i, const char *want) {
    return k->len[i] == strlen(want) && memcmp(doc + k->off[i], want, k->len[i]) == 0;
}

START_TEST(validate_keys_spans) {
    const char *doc = " { \"a\" : 1 , \"b\\\"q\":{\"nested\":[1,{\"deep\":2}]},\"\":null,"
                      "\"caf\xC3\xA9\":\"v\"\n} ";
    ph_json_keys_t k;
    int type = 0;
    ck_assert_int_eq(posthog__json_validate(doc, strlen(doc), &type, &k), POSTHOG_OK);
    ck_assert_int_eq(type, PH_JSON_OBJECT);
    ck_assert_uint_eq(k.count, 4);
    ck_assert(!k.overflow);
    ck_assert(span_is(doc, &k, 0, "a"));
    ck_assert(span_is(doc, &k, 1, "b\\\"q")); /* raw escaped form */
    ck_assert(span_is(doc, &k, 2, ""));
    ck_assert(span_is(doc, &k, 3, "caf\xC3\xA9"));
    /* inner: after '{' to before '}', whitespace trimmed */
    const char *open = strchr(doc, '{');
    const char *want_start = open + 2; /* skip the space */
    ck_assert_uint_eq(k.inner_off, (size_t)(want_start - doc));
    const char *last = strrchr(doc, '}');
    ck_assert_uint_eq(k.inner_off + k.inner_len, (size_t)(last - 1 - doc)); /* before '\n' */
    ck_assert(memcmp(doc + k.inner_off, "\"a\"", 3) == 0);
    ck_assert(memcmp(doc + k.inner_off + k.inner_len - 3, "\"v\"", 3) == 0);

    /* keys_has: top-level keys only, raw escaped form */
    ck_assert(posthog__json_keys_has(&k, doc, "a", 1));
    ck_assert(posthog__json_keys_has(&k, doc, "b\\\"q", 4));
    ck_assert(posthog__json_keys_has(&k, doc, "", 0));
    ck_assert(posthog__json_keys_has(&k, doc, "caf\xC3\xA9", 5));
    ck_assert(!posthog__json_keys_has(&k, doc, "nested", 6));
    ck_assert(!posthog__json_keys_has(&k, doc, "deep", 4));
    ck_assert(!posthog__json_keys_has(&k, doc, "v", 1));
    ck_assert(!posthog__json_keys_has(&k, doc, "b", 1));
    ck_assert(!posthog__json_keys_has(&k, doc, "ab", 2));

    /* inner_has_key agrees on the same text */
    const char *in = doc + k.inner_off;
    size_t il = k.inner_len;
    ck_assert(posthog__json_inner_has_key(in, il, "a", 1));
    ck_assert(posthog__json_inner_has_key(in, il, "b\\\"q", 4));
    ck_assert(posthog__json_inner_has_key(in, il, "", 0));
    ck_assert(posthog__json_inner_has_key(in, il, "caf\xC3\xA9", 5));
    ck_assert(!posthog__json_inner_has_key(in, il, "nested", 6));
    ck_assert(!posthog__json_inner_has_key(in, il, "deep", 4));
    ck_assert(!posthog__json_inner_has_key(in, il, "v", 1));
}
END_TEST

START_TEST(validate_keys_empty_and_non_objects) {
    ph_json_keys_t k;
    memset(&k, 0x7F, sizeof k);
    ck_assert_int_eq(posthog__json_validate("{ }", 3, NULL, &k), POSTHOG_OK);
    ck_assert_uint_eq(k.count, 0);
    ck_assert(!k.overflow);
    ck_assert_uint_eq(k.inner_len, 0);
    ck_assert(!posthog__json_keys_has(&k, "{ }", "a", 1));
    memset(&k, 0x7F, sizeof k);
    ck_assert_int_eq(posthog__json_validate("[{\"a\":1}]", 9, NULL, &k), POSTHOG_OK);
    ck_assert_uint_eq(k.count, 0); /* keys of nested objects are not reported */
    ck_assert_uint_eq(k.inner_len, 0);
    ck_assert_int_eq(posthog__json_validate("\"x\"", 3, NULL, &k), POSTHOG_OK);
    ck_assert_uint_eq(k.count, 0);
    ck_assert(posthog__json_inner_has_key("", 0, "a", 1) == false);
}
END_TEST

START_TEST(validate_keys_overflow) {
    for (int members = 30; members <= 100; members++) {
        char doc[8192];
        size_t n = 0;
        doc[n++] = '{';
        for (int i = 0; i < members; i++)
            n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"key%d\":{\"in%d\":[%d,\"s,}\"]}",
                                  i ? "," : "", i, i, i);
        doc[n++] = '}';
        doc[n] = '\0';
        ph_json_keys_t k;
        ck_assert_int_eq(posthog__json_validate(doc, n, NULL, &k), POSTHOG_OK);
        ck_assert_uint_eq(k.count, (size_t)members);
        ck_assert_int_eq(k.overflow, members > PH_JSON_INLINE_KEYS);
        for (int i = 0; i < members && i < PH_JSON_INLINE_KEYS; i++) {
            char kk[16];
            snprintf(kk, sizeof kk, "key%d", i);
            ck_assert(span_is(doc, &k, (size_t)i, kk));
        }
        for (int i = 0; i < members; i++) {
            char kk[16];
            int kl = snprintf(kk, sizeof kk, "key%d", i);
            ck_assert_msg(posthog__json_keys_has(&k, doc, kk, (size_t)kl), "%d/%d", i, members);
            ck_assert(posthog__json_inner_has_key(doc + k.inner_off, k.inner_len, kk, (size_t)kl));
            kl = snprintf(kk, sizeof kk, "in%d", i); /* nested key: never top-level */
            ck_assert(!posthog__json_keys_has(&k, doc, kk, (size_t)kl));
        }
        ck_assert(!posthog__json_keys_has(&k, doc, "key", 3));
        ck_assert(!posthog__json_keys_has(&k, doc, "s,}", 3));
        ck_assert(!posthog__json_keys_has(&k, doc, "key100", 6));
    }
}
END_TEST

/* ------------------------------------------------------------ differential vs cJSON */

static const char *seeds[] = {
    ("{\"event\":\"signed_up\",\"props\":{\"plan\":\"pro\",\"n\":12,\"ok\":true,\"x\":null},"
     "\"list\":[1,-2.5,3e10,\"s\\n\\u00e9\",[],{}]}"),
    "[{\"a\":[{\"b\":[{\"c\":0}]}]},\"\\\"q\\\"\",false,null,-0.5E-3]",
    "{\"k\":\"caf\xC3\xA9 \xE2\x82\xAC\",\"u\":\"\\uD83D\\uDE00\",\"e\":\"\"}",
    " { \"spaced\" : [ 1 , 2 , 3 ] , \"t\" : true } ",
    "\"just a string\"",
    "12345",
};

/* Mutation alphabet: JSON punctuation, digits, letters of literals,
 * escapes and whitespace. No control bytes other than \t\n\r and no bytes
 * >= 0x80, which would only exercise cJSON's known laxness. */
static const char alphabet[] = "{}[],:\"\\ \t\n\r0123456789.-+eEtrufalsn/bx";

/* Known cJSON (1.7.x) laxness, each of which our strict validator rejects.
 * A disagreement is only allowed when one of these features is present:
 *  1. numbers are parsed with strtod: leading zeros ("01", "-01"), a '.'
 *     without digits after it ("1.", "1.e5") or before it ("-.5") pass;
 *  2. it does not validate UTF-8 inside strings (deletions can cut a
 *     multi-byte sequence);
 *  3. it accepts raw control characters (0x00-0x1F) inside strings;
 *  4. its parse_hex4 returns 0 for a non-hex digit instead of failing, so
 *     "\u12G4" or "\uD83\" decode as U+0000 instead of being rejected;
 *  5. its nesting limit is 1000, ours 64 (the seeds are far shallower, so
 *     this cannot arise here). */
static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool has_bad_u_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u') {
            for (size_t k = 0; k < 4; k++)
                if (i + 2 + k >= n || !is_hex(s[i + 2 + k])) return true;
        }
        i++; /* skip the escaped char */
    }
    return false;
}
static bool cjson_lax_number(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bool num_start = i == 0 || !((s[i - 1] >= '0' && s[i - 1] <= '9') || s[i - 1] == '.' ||
                                     s[i - 1] == 'e' || s[i - 1] == 'E');
        if (s[i] == '0' && num_start && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
            return true;
        if (s[i] == '.') {
            bool before = i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9';
            bool after = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
            if (!before || !after) return true;
        }
    }
    return false;
}

static bool has_raw_control_in_string(const char *s, size_t n) {
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        if (in && s[i] == '\\') {
            i++;
            continue;
        }
        if (s[i] == '"') in = !in;
        else if (in && (unsigned char)s[i] < 0x20) return true;
    }
    return false;
}

static bool cjson_accepts(const char *s, size_t n) {
    /* require_null_terminated=1 rejects trailing garbage (plain cJSON_Parse
     * would ignore it); the length includes the NUL so that check works. */
    char *copy = malloc(n + 1);
    memcpy(copy, s, n);
    copy[n] = '\0';
    if (memchr(s, '\0', n)) { /* cJSON would stop at the NUL */
        free(copy);
        return false;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(copy, n + 1, &end, 1);
    bool ok = j != NULL;
    cJSON_Delete(j);
    free(copy);
    return ok;
}

static bool tree_has_inf(const cJSON *j) {
    for (; j; j = j->next) {
        if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) return true;
        if (tree_has_inf(j->child)) return true;
    }
    return false;
}

/* cJSON takes numbers beyond the double range (as inf); the validator, like
 * PostHog's capture service, refuses them. */
static bool cjson_number_out_of_range(const char *s, size_t n) {
    cJSON *j = cJSON_ParseWithLength(s, n);
    bool r = j && tree_has_inf(j);
    cJSON_Delete(j);
    return r;
}

/* Numbers the capture service cannot parse make it refuse a whole batch:
 * the validator refuses them at capture. */
START_TEST(validate_number_range) {
    static const char *const bad[] = {"1e400", "-1e309", "[0.5E+999]", "{\"a\":2e308}",
                                      "1.8e308"};
    static const char *const good[] = {"1e308", "1.7976931348623157e308", "-1.7e308", "1e-400",
                                       "123456789012345678901234567890", "0.000001E-5", "12e2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(val(bad[i]) == POSTHOG_E_INVALID_JSON, "accepted %s", bad[i]);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(val(good[i]) == POSTHOG_OK, "refused %s", good[i]);
    /* a 400-digit integer overflows a double; 300 digits do not */
    char big[512];
    big[0] = '1';
    memset(big + 1, '0', 399);
    big[400] = '\0';
    ck_assert_int_eq(val(big), POSTHOG_E_INVALID_JSON);
    big[300] = '\0';
    ck_assert_int_eq(val(big), POSTHOG_OK);
}
END_TEST

START_TEST(validate_vs_cjson_mutations) {
    size_t nseeds = sizeof seeds / sizeof seeds[0];
    for (size_t i = 0; i < nseeds; i++) {
        ck_assert_int_eq(val(seeds[i]), POSTHOG_OK);
        ck_assert(cjson_accepts(seeds[i], strlen(seeds[i])));
    }
    int agree_ok = 0, agree_bad = 0, lax = 0;
    char doc[512];
    const long itn = ph_test_scale(6000);
    for (long iter = 0; iter < itn; iter++) {
        const char *seed = seeds[xrand() % nseeds];
        size_t n = strlen(seed);
        memcpy(doc, seed, n);
        int muts = 1 + (int)(xrand() % 3);
        for (int m = 0; m < muts; m++) {
            size_t pos = n ? (size_t)(xrand() % n) : 0;
            char ch = alphabet[xrand() % (sizeof alphabet - 1)];
            switch (xrand() % 3) {
            case 0: /* replace */
                if (n) doc[pos] = ch;
                break;
            case 1: /* insert */
                memmove(doc + pos + 1, doc + pos, n - pos);
                doc[pos] = ch;
                n++;
                break;
            default: /* delete */
                if (n) {
                    memmove(doc + pos, doc + pos + 1, n - pos - 1);
                    n--;
                }
            }
        }
        doc[n] = '\0';
        bool ours = posthog__json_validate(doc, n, NULL, NULL) == POSTHOG_OK;
        bool theirs = cjson_accepts(doc, n);
        if (ours == theirs) {
            if (ours) agree_ok++;
            else agree_bad++;
            continue;
        }
        /* We accept only what cJSON accepts. */
        ck_assert_msg(!ours, "validator accepts what cJSON rejects: '%s'", doc);
        bool explained = cjson_lax_number(doc, n) || cjson_number_out_of_range(doc, n) ||
                         !posthog__utf8_valid(doc, n) ||
                         has_raw_control_in_string(doc, n) || has_bad_u_escape(doc, n);
        ck_assert_msg(explained, "cJSON accepts, validator rejects, unexplained: '%s'", doc);
        lax++;
    }
    /* the mutations must exercise both outcomes (about 5% and 35%+ of them) */
    ck_assert_int_gt(agree_ok, itn / 20);
    ck_assert_int_gt(agree_bad, itn / 3);
    (void)lax;
}
END_TEST

/* ------------------------------------------------------------ errors, depth, strings */

/* The validator says what failed and where, and the text names the limit. */
START_TEST(check_reports_what_failed) {
    ph_json_err_t e;
    char msg[256];
    char *deep = nested(PH_JSON_MAX_DEPTH + 1, '[', ']', "");
    ck_assert_int_eq(posthog__json_check(deep, strlen(deep), PH_JSON_MAX_DEPTH, NULL, NULL, &e),
                     POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(e.kind, PH_JERR_DEPTH);
    ck_assert_uint_eq(e.off, PH_JSON_MAX_DEPTH);
    posthog__json_err_text(&e, "properties_json", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "properties_json") && strstr(msg, "at most 64 levels"), "%s", msg);
    /* whole events get two more levels: the event and its properties */
    ck_assert_int_eq(PH_EVENT_MAX_DEPTH, PH_JSON_MAX_DEPTH + 2);
    ck_assert_int_eq(posthog__json_validate_event(deep, strlen(deep), NULL, NULL), POSTHOG_OK);
    free(deep);
    deep = nested(PH_EVENT_MAX_DEPTH + 1, '{', '}', "1");
    ck_assert_int_eq(posthog__json_validate_event(deep, strlen(deep), NULL, NULL),
                     POSTHOG_E_INVALID_JSON);
    free(deep);
    const char *num = "{\"a\":[1,1e400]}";
    ck_assert_int_eq(posthog__json_check(num, strlen(num), 8, NULL, NULL, &e),
                     POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(e.kind, PH_JERR_NUMBER);
    ck_assert_uint_eq(e.off, 8);
    posthog__json_err_text(&e, "set_json", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "set_json") && strstr(msg, "range of a double"), "%s", msg);
    const char *syn = "{\"a\":tru}";
    ck_assert_int_eq(posthog__json_check(syn, strlen(syn), 8, NULL, NULL, &e),
                     POSTHOG_E_INVALID_JSON);
    ck_assert_int_eq(e.kind, PH_JERR_SYNTAX);
    ck_assert_uint_eq(e.off, 5);
    const char *u8 = "{\"a\":\"\xC3\"}";
    ck_assert_int_eq(posthog__json_check(u8, strlen(u8), 8, NULL, NULL, &e),
                     POSTHOG_E_INVALID_UTF8);
    ck_assert_int_eq(e.kind, PH_JERR_UTF8);
}
END_TEST

START_TEST(depth_of_text) {
    ck_assert_int_eq(posthog__json_depth("1", 1), 0);
    ck_assert_int_eq(posthog__json_depth("{}", 2), 1);
    ck_assert_int_eq(posthog__json_depth("{\"a\":[{}],\"b\":[]}", 17), 3);
    /* brackets inside strings do not count, escaped quotes do not end them */
    const char *s = "{\"[[\\\"{{\":\"]]\"";
    ck_assert_int_eq(posthog__json_depth(s, strlen(s)), 1);
    /* an unclosed builder text counts as closed */
    ck_assert_int_eq(posthog__json_depth("{\"a\":{\"b\":1}", 12), 2);
}
END_TEST

/* Keys compare by their decoded value. */
START_TEST(str_eq_decodes) {
#define EQ(a, b) posthog__json_str_eq(a, strlen(a), b, strlen(b))
    ck_assert(EQ("plan", "plan"));
    ck_assert(EQ("pl\\u0061n", "plan"));
    ck_assert(EQ("plan", "\\u0070\\u006C\\u0061\\u006e"));
    ck_assert(EQ("\\u0024lib", "$lib"));
    ck_assert(EQ("a\\/b", "a/b"));
    ck_assert(EQ("tab\\t", "tab\\u0009"));
    ck_assert(EQ("caf\xC3\xA9", "caf\\u00e9"));
    ck_assert(EQ("\xE2\x82\xAC", "\\u20AC"));
    ck_assert(EQ("\xF0\x9F\x98\x80", "\\ud83d\\ude00"));
    ck_assert(EQ("q\\\"", "q\\u0022"));
    ck_assert(!EQ("plan", "plans"));
    ck_assert(!EQ("pl\\u0061n", "pla"));
    ck_assert(!EQ("pl\\u0061n", "plbn"));
    ck_assert(!EQ("a\\\\b", "a\\/b"));
    ck_assert(!EQ("", "\\u0000"));
#undef EQ
    char out[32];
    const char *raw = "x\\u00e9\\n\\ud83d\\ude00\\\\";
    size_t n = posthog__json_unescape(out, raw, strlen(raw));
    ck_assert_uint_eq(n, 1 + 2 + 1 + 4 + 1);
    ck_assert(memcmp(out, "x\xC3\xA9\n\xF0\x9F\x98\x80\\", n) == 0);
}
END_TEST

/* The key helpers of validated objects use decoded comparison too. */
START_TEST(keys_has_decodes) {
    const char *doc = "{\"pl\\u0061n\":1,\"x\":2}";
    ph_json_keys_t k;
    ck_assert_int_eq(posthog__json_validate(doc, strlen(doc), NULL, &k), POSTHOG_OK);
    ck_assert(posthog__json_keys_has(&k, doc, "plan", 4));
    ck_assert(!posthog__json_keys_has(&k, doc, "pla", 3));
    ck_assert(posthog__json_inner_has_key(doc + k.inner_off, k.inner_len, "plan", 4));
    ck_assert(posthog__json_inner_has_key(doc + k.inner_off, k.inner_len, "\\u0078", 6));
}
END_TEST

/* ------------------------------------------------------------ buf */

START_TEST(buf_limits) {
    ph_buf_t b;
    posthog__buf_init(&b, 10);
    ck_assert_int_eq(posthog__buf_append(&b, "0123456789", 10), 0);
    ck_assert_str_eq(b.data, "0123456789");
    ck_assert_int_eq(posthog__buf_append(&b, "x", 1), -1);
    ck_assert_uint_eq(b.len, 10);
    ck_assert_int_eq(posthog__buf_reserve(&b, SIZE_MAX), -1);
    ck_assert_int_eq(posthog__buf_append(&b, "", 0), 0);
    posthog__buf_free(&b);
    posthog__buf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++) ck_assert_int_eq(ph_buf_putc(&b, (char)('a' + i % 26)), 0);
    ck_assert_uint_eq(b.len, 100000);
    ck_assert_uint_eq(strlen(b.data), 100000);
    ck_assert_int_eq(b.data[99999], 'a' + 99999 % 26);
    posthog__buf_free(&b);
}
END_TEST

/* The one-pass escaper (8 bytes at a time: capture's fast path) against
 * the byte-at-a-time reference: every length 0..40 (every tail length and
 * offset), each with one special byte (control, quote, backslash, 0x7f, a
 * UTF-8 sequence, an invalid byte) at every position. Its word arithmetic
 * once assumed little-endian order: on s390x most of these differed. */
START_TEST(escape_valid_matches_reference) {
    static const char *const specials[] = {"\n", "\"", "\\", "\x01", "\x1f", "\x7f", "\xC3\xA9",
                                           "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xFF", "\xC3"};
    char in[64], want[512], got[512 + 8];
    int cases = 0;
    for (size_t n = 0; n <= 40; n++) {
        for (size_t sp = 0; sp <= sizeof specials / sizeof specials[0]; sp++) {
            for (size_t at = 0; at < (sp ? n : 1); at++) {
                for (size_t i = 0; i < n; i++) in[i] = (char)('a' + (i * 7 + n) % 26);
                size_t len = n;
                bool valid = true;
                if (sp) {
                    const char *x = specials[sp - 1];
                    size_t xl = strlen(x);
                    if (at + xl > n) continue;
                    memcpy(in + at, x, xl);
                    valid = !(xl == 1 && (unsigned char)x[0] >= 0x80); /* \xFF, lone \xC3 */
                }
                size_t wl = posthog__json_escaped_len(in, len);
                ck_assert_uint_lt(wl, sizeof want);
                ck_assert_uint_eq(posthog__json_escape(want, in, len), wl);
                size_t gl = posthog__json_escaped_len_valid(in, len);
                memset(got, '#', sizeof got);
                size_t gw = posthog__json_escape_valid(got, in, len);
                if (!valid) {
                    ck_assert_msg(gl == SIZE_MAX && gw == SIZE_MAX, "n=%zu special=%zu at=%zu accepted",
                                  n, sp, at);
                } else {
                    ck_assert_msg(gl == wl, "n=%zu special=%zu at=%zu: length %zu, want %zu", n, sp, at,
                                  gl, wl);
                    ck_assert_msg(gw == wl && memcmp(got, want, wl) == 0,
                                  "n=%zu special=%zu at=%zu: \"%.*s\", want \"%.*s\"", n, sp, at,
                                  (int)(gw < 512 ? gw : 0), got, (int)wl, want);
                }
                cases++;
            }
        }
    }
    ck_assert_int_gt(cases, 3000);
}
END_TEST

static Suite *json_suite(void) {
    Suite *s = suite_create("json");
    TCase *t = tcase_create("utf8");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, utf8_valid_sequences);
    tcase_add_test(t, utf8_invalid_sequences);
    tcase_add_test(t, utf8_every_high_byte_alone);
    tcase_add_test(t, utf8_exhaustive_vs_reference);
    suite_add_tcase(s, t);
    t = tcase_create("escape");
    tcase_add_test(t, escape_every_ascii_byte);
    tcase_add_test(t, escape_backslash_and_quote);
    tcase_add_test(t, escape_plain_letters_unchanged);
    tcase_add_test(t, escape_nul_del_and_non_ascii);
    tcase_add_test(t, escape_random_roundtrip);
    tcase_add_test(t, escape_valid_matches_reference);
    tcase_add_test(t, append_string_quotes_and_limit);
    tcase_add_test(t, append_string_many_f);
    suite_add_tcase(s, t);
    t = tcase_create("validate");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, validate_table);
    tcase_add_test(t, validate_uses_length_not_nul);
    tcase_add_test(t, validate_depth_limit);
    tcase_add_test(t, validate_keys_spans);
    tcase_add_test(t, validate_keys_empty_and_non_objects);
    tcase_add_test(t, validate_keys_overflow);
    tcase_add_test(t, validate_number_range);
    tcase_add_test(t, validate_vs_cjson_mutations);
    tcase_add_test(t, buf_limits);
    tcase_add_test(t, check_reports_what_failed);
    tcase_add_test(t, depth_of_text);
    tcase_add_test(t, str_eq_decodes);
    tcase_add_test(t, keys_has_decodes);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(json_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
