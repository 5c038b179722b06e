/*
 * libposthog._accel: the optional compiled accelerator of the Python
 * binding's feature-flag calls (issue 10).
 *
 * ctypes costs about a microsecond per call in argument conversion, and
 * json.dumps of person_properties another; this module does both in C and
 * calls the public C API (posthog_get_feature_flag, posthog_evaluate_flags,
 * ...) directly. It is built with the stable ABI (Py_LIMITED_API 3.10), so
 * one build serves every CPython >= 3.10.
 *
 * It does not link against libposthog: flags.py hands it the addresses of
 * the C functions of the very library ctypes loaded (bundled copy,
 * $LIBPOSTHOG_PATH or a system one), so the client pointers it passes always
 * belong to that library.
 *
 * Behaviour is the ctypes path's, exactly (tests/test_flags_accel.py checks
 * it): every argument form, type or value this file does not handle itself
 * goes to the Python implementation (flags.FlagsMixin), either for the whole
 * call (non-str keys or ids, overridden... see *_slow) or just for the JSON
 * text of one dict (types the C converter below does not know). The JSON it
 * writes is byte for byte what _serialize.dumps_clean_fast writes.
 *
 * GIL: a call that may go to the network (not only_evaluate_locally) runs
 * the C call without the GIL, as ctypes does; a local-only call keeps it
 * (pure computation; callbacks into Python run on this thread).
 */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030A0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "posthog/posthog.h"

/* Py_XSETREF is not in the limited API before 3.12 */
#define SETREF(dst, src)                                                                   \
    do {                                                                                   \
        PyObject *old_ = (PyObject *)(dst);                                                \
        (dst) = (src);                                                                     \
        Py_XDECREF(old_);                                                                  \
    } while (0)

/* PyWeakref_GetObject and PyErr_Fetch are deprecated in newer headers but
 * part of the stable ABI this module targets (3.10). */
#if defined(__GNUC__)
#define NO_DEPRECATION_BEGIN                                                               \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")
#define NO_DEPRECATION_END _Pragma("GCC diagnostic pop")
#else
#define NO_DEPRECATION_BEGIN
#define NO_DEPRECATION_END
#endif

/* ------------------------------------------------------------------ C API */

typedef posthog_flag_state_t (*get_flag_fn)(posthog_client_t *, const char *, const char *,
                                            const posthog_flags_options_t *, char *, size_t);
typedef posthog_status_t (*evaluate_fn)(posthog_client_t *, const char *,
                                        const posthog_flags_options_t *, posthog_flags_t **);
typedef int (*flags_get_fn)(posthog_flags_t *, const char *, posthog_flag_t *);
typedef int (*flags_peek_fn)(const posthog_flags_t *, const char *, posthog_flag_t *);
typedef size_t (*flags_count_fn)(const posthog_flags_t *);
typedef const char *(*flags_key_fn)(const posthog_flags_t *, size_t);
typedef void (*flags_free_fn)(posthog_flags_t *);

static struct {
    get_flag_fn get_flag;
    evaluate_fn evaluate;
    flags_get_fn get;
    flags_peek_fn peek;
    flags_count_fn count;
    flags_key_fn key;
    flags_free_fn free;
} api;

/* ------------------------------------------------------------------ Python helpers
 * Set by setup() (flags.py). */

enum {
    H_SLOW_GET, H_SLOW_ENABLED, H_SLOW_PAYLOAD, H_SLOW_ALL, H_SLOW_ALL_PAYLOADS,
    H_DUMPS, H_JSON_OBJECT, H_DECODE_PAYLOAD, H_FAILED, H_STATUS_ERROR, H_PAYLOAD_MISMATCH,
    H_TLS, H_N
};
static const char *const helper_names[H_N] = {
    "get_feature_flag", "feature_enabled", "get_feature_flag_payload", "get_all_flags",
    "get_all_flags_and_payloads", "dumps", "json_object", "decode_payload", "failed",
    "status_error", "payload_mismatch", "tls",
};
static PyObject *helpers[H_N];
static PyObject *helper_str[H_SLOW_ALL_PAYLOADS + 1]; /* the five method names, interned */

/* types the JSON converter handles besides JSON's own (exact types only) */
static PyObject *t_datetime, *t_date, *t_decimal, *t_uuid;

static PyObject *s_disabled, *s_disable_geoip, *s_raise_after, *s_isoformat;
static PyObject *s_person_properties, *s_groups, *s_group_properties;

/* keyword arguments */
enum {
    K_GROUPS, K_PERSON, K_GROUP_PROPS, K_LOCAL, K_SEND, K_GEOIP, K_DEVICE, K_MATCH, K_FLAG_KEYS,
    K_N
};
static const char *const kw_names[K_N] = {
    "groups", "person_properties", "group_properties", "only_evaluate_locally",
    "send_feature_flag_events", "disable_geoip", "device_id", "match_value",
    "flag_keys_to_evaluate",
};
static PyObject *kw_str[K_N];
#define KW(k) (1u << (k))
#define KW_COMMON                                                                          \
    (KW(K_GROUPS) | KW(K_PERSON) | KW(K_GROUP_PROPS) | KW(K_LOCAL) | KW(K_GEOIP) | KW(K_DEVICE))

/* $feature_flag_called may be captured inside a call on this thread: the
 * drop callback (client._drop_trampoline) asks capture_depth() to tell a
 * capture-time drop from a delivery drop, as it reads _tls.capture for the
 * ctypes path. */
static _Thread_local int capture_depth;

/* ------------------------------------------------------------------ JSON text
 * Exactly _serialize.dumps_clean_fast's bytes for what it handles: compact
 * separators, ensure_ascii=False, insertion order, float repr, NaN/inf as
 * null, datetime/date isoformat(), Decimal as float, UUID as str, tuple and
 * set/frozenset as lists. Anything else (subclasses, non-str keys, lone
 * surrogates, undecodable bytes, nesting deeper than MAX_DEPTH) is
 * "unsupported": the caller asks the Python converter for the whole value. */

#define MAX_DEPTH 64
enum { J_OK = 0, J_ERR = -1, J_UNSUPPORTED = 1 };

typedef struct {
    char *p;
    size_t len, cap;
    char sbuf[768];
} jbuf_t;

static void jb_init(jbuf_t *b) {
    b->p = b->sbuf;
    b->len = 0;
    b->cap = sizeof b->sbuf;
}

static void jb_free(jbuf_t *b) {
    if (b->p != b->sbuf) PyMem_Free(b->p);
}

static __attribute__((noinline)) int jb_grow(jbuf_t *b, size_t more) {
    size_t cap = b->cap * 2;
    while (cap < b->len + more) cap *= 2;
    char *np;
    if (b->p == b->sbuf) {
        np = PyMem_Malloc(cap);
        if (np) memcpy(np, b->p, b->len);
    } else {
        np = PyMem_Realloc(b->p, cap);
    }
    if (!np) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static inline int jb_reserve(jbuf_t *b, size_t more) {
    return b->len + more <= b->cap ? 0 : jb_grow(b, more);
}

static inline int jb_put(jbuf_t *b, const char *s, size_t n) {
    if (jb_reserve(b, n)) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int jb_ch(jbuf_t *b, char c) {
    if (jb_reserve(b, 1)) return -1;
    b->p[b->len++] = c;
    return 0;
}

/* json's escape for ensure_ascii=False: " \ and the C0 controls. */
static int jb_string_utf8(jbuf_t *b, const char *s, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') break;
        i++;
    }
    if (i == n) { /* nothing to escape: the common case */
        if (jb_reserve(b, (size_t)n + 2)) return -1;
        char *o = b->p + b->len;
        o[0] = '"';
        memcpy(o + 1, s, (size_t)n);
        o[n + 1] = '"';
        b->len += (size_t)n + 2;
        return 0;
    }
    if (jb_reserve(b, (size_t)n * 6 + 2)) return -1; /* at most \u00XX each */
    char *o = b->p + b->len;
    *o++ = '"';
    memcpy(o, s, (size_t)i);
    o += i;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 0xf];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return 0;
}

/* a long long in decimal, as int.__repr__ */
static int jb_int(jbuf_t *b, long long x) {
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0) *--q = '-';
    return jb_put(b, q, (size_t)(e - q));
}

/* A str's UTF-8: J_UNSUPPORTED for lone surrogates (the Python path
 * escapes them), J_ERR on other errors. */
static int str_utf8(PyObject *s, const char **out, Py_ssize_t *n) {
    *out = PyUnicode_AsUTF8AndSize(s, n);
    if (*out) return J_OK;
    if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        return J_UNSUPPORTED;
    }
    return J_ERR;
}

static int jb_string(jbuf_t *b, PyObject *s) {
    const char *u;
    Py_ssize_t n;
    int r = str_utf8(s, &u, &n);
    if (r) return r;
    return jb_string_utf8(b, u, n) ? J_ERR : J_OK;
}

static int jb_double(jbuf_t *b, double d) {
    if (!isfinite(d)) return jb_put(b, "null", 4) ? J_ERR : J_OK;
    char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return J_ERR;
    int r = jb_put(b, s, strlen(s)) ? J_ERR : J_OK;
    PyMem_Free(s);
    return r;
}

/* str(v) (a method's result, e.g. isoformat()) as a JSON string */
static int jb_str_of(jbuf_t *b, PyObject *v) {
    if (!v) return J_ERR;
    int r = PyUnicode_CheckExact(v) ? jb_string(b, v) : J_UNSUPPORTED;
    Py_DECREF(v);
    return r;
}

static int jb_value(jbuf_t *b, PyObject *v, int depth);

static int jb_items(jbuf_t *b, PyObject *it, int depth) {
    if (!it) return J_ERR;
    if (jb_ch(b, '[')) {
        Py_DECREF(it);
        return J_ERR;
    }
    int first = 1, r = J_OK;
    PyObject *x;
    while ((x = PyIter_Next(it))) {
        if (!first && jb_ch(b, ',')) r = J_ERR;
        first = 0;
        if (r == J_OK) r = jb_value(b, x, depth + 1);
        Py_DECREF(x);
        if (r != J_OK) break;
    }
    Py_DECREF(it);
    if (r != J_OK) return r;
    if (PyErr_Occurred()) return J_ERR;
    return jb_ch(b, ']') ? J_ERR : J_OK;
}

static int jb_value(jbuf_t *b, PyObject *v, int depth) {
    if (depth > MAX_DEPTH) return J_UNSUPPORTED;
    PyObject *t = (PyObject *)Py_TYPE(v);
    if (t == (PyObject *)&PyUnicode_Type) return jb_string(b, v);
    if (v == Py_None) return jb_put(b, "null", 4) ? J_ERR : J_OK;
    if (v == Py_True) return jb_put(b, "true", 4) ? J_ERR : J_OK;
    if (v == Py_False) return jb_put(b, "false", 5) ? J_ERR : J_OK;
    if (t == (PyObject *)&PyLong_Type) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return J_ERR;
        if (!overflow) return jb_int(b, x) ? J_ERR : J_OK;
        PyObject *s = PyObject_Str(v); /* int.__repr__: json's own */
        if (!s) {
            /* e.g. past sys.set_int_max_str_digits: json fails as well */
            PyErr_Clear();
            return J_UNSUPPORTED;
        }
        const char *u;
        Py_ssize_t n;
        int r = str_utf8(s, &u, &n);
        if (r == J_OK && jb_put(b, u, (size_t)n)) r = J_ERR;
        Py_DECREF(s);
        return r;
    }
    if (t == (PyObject *)&PyFloat_Type) return jb_double(b, PyFloat_AsDouble(v));
    if (t == (PyObject *)&PyDict_Type) {
        if (jb_ch(b, '{')) return J_ERR;
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        int first = 1;
        while (PyDict_Next(v, &pos, &k, &x)) {
            if (!PyUnicode_CheckExact(k)) return J_UNSUPPORTED;
            if (!first && jb_ch(b, ',')) return J_ERR;
            first = 0;
            /* the dict may change under a method called below (isoformat()
             * of a subclass is not called: exact types only) */
            Py_INCREF(k);
            Py_INCREF(x);
            int r = jb_string(b, k);
            if (r == J_OK) r = jb_ch(b, ':') ? J_ERR : jb_value(b, x, depth + 1);
            Py_DECREF(k);
            Py_DECREF(x);
            if (r != J_OK) return r;
        }
        return jb_ch(b, '}') ? J_ERR : J_OK;
    }
    if (t == (PyObject *)&PyList_Type) {
        if (jb_ch(b, '[')) return J_ERR;
        for (Py_ssize_t i = 0; i < PyList_Size(v); i++) {
            PyObject *x = PyList_GetItem(v, i);
            if (!x) return J_ERR;
            if (i && jb_ch(b, ',')) return J_ERR;
            Py_INCREF(x);
            int r = jb_value(b, x, depth + 1);
            Py_DECREF(x);
            if (r != J_OK) return r;
        }
        return jb_ch(b, ']') ? J_ERR : J_OK;
    }
    if (t == (PyObject *)&PyTuple_Type || t == (PyObject *)&PySet_Type ||
        t == (PyObject *)&PyFrozenSet_Type)
        return jb_items(b, PyObject_GetIter(v), depth);
    if (t == t_datetime || t == t_date)
        return jb_str_of(b, PyObject_CallMethodObjArgs(v, s_isoformat, NULL));
    if (t == t_uuid) return jb_str_of(b, PyObject_Str(v));
    if (t == t_decimal) {
        double d = PyFloat_AsDouble(v); /* float(Decimal) */
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return J_UNSUPPORTED;
        }
        return jb_double(b, d);
    }
    if (t == (PyObject *)&PyBytes_Type) {
        char *s;
        Py_ssize_t n;
        if (PyBytes_AsStringAndSize(v, &s, &n)) return J_ERR;
        PyObject *u = PyUnicode_DecodeUTF8(s, n, "strict");
        if (!u) { /* the Python path logs the warning and sends null */
            PyErr_Clear();
            return J_UNSUPPORTED;
        }
        int r = jb_string(b, u);
        Py_DECREF(u);
        return r;
    }
    return J_UNSUPPORTED;
}

/* ------------------------------------------------------------------ call arguments */

/* The JSON texts and strings of one call; pointers valid while it lives. */
typedef struct {
    jbuf_t json;
    size_t off[3];          /* offsets of the three dicts' texts in json, or SIZE_MAX */
    PyObject *keep[3];      /* texts made by the Python converter (bytes) */
    posthog_flags_options_t o;
    const char *did;
} call_t;

static void call_init(call_t *c) {
    jb_init(&c->json);
    for (int i = 0; i < 3; i++) c->off[i] = SIZE_MAX, c->keep[i] = NULL;
    memset(&c->o, 0, sizeof c->o);
    c->did = NULL;
}

static void call_free(call_t *c) {
    jb_free(&c->json);
    for (int i = 0; i < 3; i++) Py_XDECREF(c->keep[i]);
}

/* One of person_properties / groups / group_properties: None -> NULL; an
 * exact dict -> C, else (or for values C does not handle) what the Python
 * path does (_serialize.dumps_clean_fast / flags._json_object, which raises
 * TypeError for a non-mapping). 0 or -1 (exception set). */
static int call_dict(call_t *c, int slot, PyObject *v, PyObject *name) {
    if (!v || v == Py_None) return 0;
    if (Py_TYPE(v) == &PyDict_Type) {
        size_t start = c->json.len;
        int r = jb_value(&c->json, v, 0);
        if (r == J_OK) {
            if (jb_ch(&c->json, '\0')) return -1;
            c->off[slot] = start;
            return 0;
        }
        if (r == J_ERR) return -1;
        c->json.len = start;
        c->keep[slot] = PyObject_CallFunctionObjArgs(helpers[H_DUMPS], v, NULL);
    } else {
        c->keep[slot] = PyObject_CallFunctionObjArgs(helpers[H_JSON_OBJECT], v, name, NULL);
    }
    if (!c->keep[slot]) return -1;
    if (c->keep[slot] == Py_None) Py_CLEAR(c->keep[slot]);
    else if (!PyBytes_Check(c->keep[slot])) {
        PyErr_SetString(PyExc_TypeError, "libposthog: the JSON converter returned no bytes");
        return -1;
    }
    return 0;
}

static void call_pointers(call_t *c) {
    const char **dst[3] = {&c->o.person_properties_json, &c->o.groups_json,
                           &c->o.group_properties_json};
    for (int i = 0; i < 3; i++) {
        if (c->keep[i]) *dst[i] = PyBytes_AsString(c->keep[i]);
        else if (c->off[i] != SIZE_MAX) *dst[i] = c->json.p + c->off[i];
    }
}

/* An exact str's UTF-8 without NUL (and not empty unless allow_empty):
 * 1 and *out set, 0 when the Python path must take the call (another type,
 * NUL, surrogates, empty), -1 on error. */
static int plain_str(PyObject *v, const char **out, int allow_empty) {
    if (!PyUnicode_CheckExact(v)) return 0;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(v, &n);
    if (!u) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    if ((!n && !allow_empty) || (size_t)n != strlen(u)) return 0;
    *out = u;
    return 1;
}

static int tristate(PyObject *v) {
    if (!v || v == Py_None) return POSTHOG_UNSET;
    int t = PyObject_IsTrue(v);
    if (t < 0) return -1;
    return t ? POSTHOG_TRUE : POSTHOG_FALSE;
}

/* ------------------------------------------------------------------ the Flags object */

typedef struct {
    PyObject_HEAD
    PyObject *wclient;       /* weakref to the Posthog object */
    posthog_client_t *ptr;   /* its C client (valid while the Posthog object lives) */
    int before_send;         /* the client has a before_send hook (raise_after) */
} Flags;

/* kwnames against the keyword names: vals[K] set for each given; 0, or 1
 * when a name is not one of `allowed` (the Python path raises the
 * TypeError). */
static int parse_kw(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, unsigned allowed,
                    PyObject **vals) {
    for (int k = 0; k < K_N; k++) vals[k] = NULL;
    if (!kwnames) return 0;
    Py_ssize_t n = PyTuple_Size(kwnames);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GetItem(kwnames, i);
        int k;
        for (k = 0; k < K_N; k++)
            if (name == kw_str[k]) break;
        if (k == K_N)
            for (k = 0; k < K_N; k++)
                if (PyUnicode_Compare(name, kw_str[k]) == 0) break;
        if (k == K_N || !(allowed & KW(k)) || vals[k]) return 1;
        vals[k] = args[nargs + i];
    }
    return 0;
}

/* The live Posthog object (borrowed), or NULL when it was collected. The
 * methods call their _impl with a strong reference (client_call). */
static PyObject *client_of(Flags *self) {
    NO_DEPRECATION_BEGIN
    PyObject *c = PyWeakref_GetObject(self->wclient);
    NO_DEPRECATION_END
    return (c && c != Py_None && self->ptr) ? c : NULL;
}

static PyObject *call_with(PyObject *fn, PyObject *client, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames, int override, PyObject *value);

/* The method `which` as the client's class has it now, when that is not
 * FlagsMixin's (patched on the class after the client was made, e.g. by
 * mock.patch.object(Posthog, "feature_enabled")): a new reference; NULL
 * when it is FlagsMixin's (or on error, with the exception set). */
static PyObject *replaced(PyObject *client, int which) {
    PyObject *cur = PyObject_GetAttr((PyObject *)Py_TYPE(client), helper_str[which]);
    if (!cur || cur != helpers[which]) return cur;
    Py_DECREF(cur);
    return NULL;
}

/* The call as the client's class would answer it when it or a method it
 * uses (`uses`, or -1) was replaced on the class: 1 and *out (NULL on
 * error), else 0. */
static int class_patched(PyObject *client, int which, int uses, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames, PyObject **out) {
    PyObject *cur = replaced(client, which);
    if (!cur && !PyErr_Occurred() && uses >= 0) {
        cur = replaced(client, uses);
        if (cur) { /* FlagsMixin's own method, which calls the replaced one */
            Py_DECREF(cur);
            cur = helpers[which];
            Py_INCREF(cur);
        }
    }
    if (!cur) {
        if (!PyErr_Occurred()) return 0;
        *out = NULL;
        return 1;
    }
    *out = call_with(cur, client, args, nargs, kwnames, -1, NULL);
    Py_DECREF(cur);
    return 1;
}

/* helpers[fn](client, *args, **kwargs), with kwargs[override] = value when
 * override >= 0. */
static PyObject *slow(int fn, PyObject *client, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, int override, PyObject *value) {
    return call_with(helpers[fn], client, args, nargs, kwnames, override, value);
}

static PyObject *call_with(PyObject *fn, PyObject *client, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, int override, PyObject *value) {
    PyObject *t = PyTuple_New(nargs + 1), *kw = NULL, *r = NULL;
    if (!t) return NULL;
    Py_INCREF(client);
    PyTuple_SetItem(t, 0, client);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SetItem(t, i + 1, args[i]);
    }
    Py_ssize_t nk = kwnames ? PyTuple_Size(kwnames) : 0;
    if (nk || override >= 0) {
        if (!(kw = PyDict_New())) goto out;
        for (Py_ssize_t i = 0; i < nk; i++)
            if (PyDict_SetItem(kw, PyTuple_GetItem(kwnames, i), args[nargs + i])) goto out;
        if (override >= 0 && PyDict_SetItem(kw, kw_str[override], value)) goto out;
    }
    r = PyObject_Call(fn, t, kw);
out:
    Py_DECREF(t);
    Py_XDECREF(kw);
    return r;
}

/* The Python path's `except Exception as e: if self.debug: raise;
 * log.error("[FEATURE FLAGS] %s", e); return default` (helpers "failed"):
 * returns a new reference to dflt, or NULL with the exception set. */
static PyObject *failed(PyObject *client, PyObject *dflt) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
    PyObject *t, *v, *tb;
    NO_DEPRECATION_BEGIN
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    NO_DEPRECATION_END
    if (tb && v) PyException_SetTraceback(v, tb);
    PyObject *r = v ? PyObject_CallFunctionObjArgs(helpers[H_FAILED], client, v, NULL) : NULL;
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    if (!r) return NULL;
    Py_DECREF(r);
    Py_INCREF(dflt);
    return dflt;
}

/* Options common to every call; 0, 1 (the Python path takes the call) or
 * -1 (exception set). */
static PyObject *client_attr(PyObject *client, PyObject *name);

static int common_options(Flags *self, PyObject *client, PyObject **kv, call_t *c) {
    (void)self;
    if (call_dict(c, 0, kv[K_PERSON], s_person_properties) ||
        call_dict(c, 1, kv[K_GROUPS], s_groups) ||
        call_dict(c, 2, kv[K_GROUP_PROPS], s_group_properties))
        return -1;
    if (kv[K_DEVICE] && kv[K_DEVICE] != Py_None) {
        int r = plain_str(kv[K_DEVICE], &c->o.device_id, 1);
        if (r <= 0) return r < 0 ? -1 : 1;
    }
    PyObject *geo = kv[K_GEOIP];
    PyObject *own = NULL;
    if (!geo || geo == Py_None) geo = own = client_attr(client, s_disable_geoip);
    if (!geo) return -1;
    int t = tristate(geo);
    Py_XDECREF(own);
    if (t < 0) return -1;
    c->o.disable_geoip = (posthog_tristate_t)t;
    if (kv[K_LOCAL]) {
        int l = PyObject_IsTrue(kv[K_LOCAL]);
        if (l < 0) return -1;
        c->o.only_evaluate_locally = l;
    }
    call_pointers(c);
    return 0;
}

/* client.<name> (a new reference, NULL with the exception set): from the
 * instance __dict__ when it is there (a plain attribute, as Posthog sets
 * them: no class lookup), else by the normal attribute lookup. */
static PyObject *client_attr(PyObject *client, PyObject *name) {
    PyObject *d = PyObject_GenericGetDict(client, NULL);
    if (!d) {
        PyErr_Clear();
        return PyObject_GetAttr(client, name);
    }
    PyObject *v = PyDict_GetItemWithError(d, name);
    Py_DECREF(d);
    if (v) {
        Py_INCREF(v);
        return v;
    }
    if (PyErr_Occurred()) return NULL;
    return PyObject_GetAttr(client, name);
}

/* client.disabled: 1, 0, or -1 (exception set) */
static int is_disabled(PyObject *client) {
    PyObject *d = client_attr(client, s_disabled);
    if (!d) return -1;
    int r = PyObject_IsTrue(d);
    Py_DECREF(d);
    return r;
}

/* Around a C call that may capture $feature_flag_called: the capture path's
 * per-thread state, as flags._Snapshot.read sets it. enter: 0 or -1. */
static int events_enter(Flags *self) {
    capture_depth++;
    if (self->before_send && PyObject_SetAttr(helpers[H_TLS], s_raise_after, Py_None)) {
        capture_depth--;
        return -1;
    }
    return 0;
}

/* 0, or -1 with the exception before_send raised (KeyboardInterrupt,
 * SystemExit...) set again, or another error. */
static int events_leave(Flags *self) {
    capture_depth--;
    if (!self->before_send) return 0;
    PyObject *tls = helpers[H_TLS];
    PyObject *pending = PyObject_GetAttr(tls, s_raise_after);
    if (!pending) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    if (PyObject_SetAttr(tls, s_raise_after, Py_None)) {
        Py_DECREF(pending);
        return -1;
    }
    if (pending == Py_None) {
        Py_DECREF(pending);
        return 0;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(pending), pending);
    Py_DECREF(pending);
    return -1;
}

#define VARIANT_CAP 1024

static PyObject *flag_value(const posthog_flag_t *f);
static PyObject *flag_payload(const posthog_flag_t *f);
static int evaluate(Flags *self, const char *did, call_t *c, posthog_flags_t **out);

static int given(PyObject *v) { return v && v != Py_None; }

enum { M_VALUE, M_ENABLED };

/* get_feature_flag / feature_enabled */
static PyObject *one_flag_impl(Flags *self, PyObject *client, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames, int mode) {
    int slow_fn = mode == M_VALUE ? H_SLOW_GET : H_SLOW_ENABLED;
    PyObject *patched;
    if (class_patched(client, slow_fn, mode == M_VALUE ? -1 : H_SLOW_GET, args, nargs, kwnames,
                      &patched))
        return patched;
    PyObject *kv[K_N];
    if (nargs != 2 || parse_kw(args, nargs, kwnames, KW_COMMON | KW(K_SEND), kv))
        return slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
    const char *key, *did;
    int r = plain_str(args[0], &key, 0);
    if (r > 0) r = plain_str(args[1], &did, 0);
    if (r < 0) return NULL;
    if (!r) return slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
    Py_INCREF(client); /* callbacks run Python: keep it alive */
    PyObject *out = NULL;
    int dis = is_disabled(client);
    if (dis) {
        out = dis < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
        Py_DECREF(client);
        return out;
    }
    posthog_flags_t *f = NULL;
    call_t c;
    call_init(&c);
    int send = tristate(kv[K_SEND]);
    r = send < 0 ? -1 : common_options(self, client, kv, &c);
    if (r == 1) {
        out = slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
        goto done;
    }
    if (r < 0) goto fail;
    c.o.send_feature_flag_events = (posthog_tristate_t)send;
    int events = send != POSTHOG_FALSE;
    if (given(kv[K_GROUPS]) || given(kv[K_GROUP_PROPS]) || given(kv[K_DEVICE])) {
        /* the Python path's snapshot read (_one: posthog_evaluate_flags for
         * [key], then posthog_flags_get), with its errors and logging */
        const char *keys[2] = {key, NULL};
        c.o.flag_keys = keys;
        if (evaluate(self, did, &c, &f)) goto fail;
        posthog_flag_t fl;
        int found = 0;
        if (f) {
            if (events_enter(self)) goto fail;
            found = api.get(f, key, &fl);
            if (events_leave(self)) goto done;
        }
        if (!found) {
            out = Py_None;
            Py_INCREF(out);
            goto done;
        }
        PyObject *p = flag_payload(&fl); /* decoded (and logged) as _record does */
        if (!p) goto fail;
        Py_DECREF(p);
        if (mode == M_ENABLED) {
            out = fl.enabled ? Py_True : Py_False;
            Py_INCREF(out);
        } else {
            out = flag_value(&fl);
        }
        if (!out) goto fail;
        goto done;
    }
    char variant[VARIANT_CAP];
    posthog_flag_state_t st;
    if (events && events_enter(self)) goto fail;
    if (c.o.only_evaluate_locally) {
        st = api.get_flag(self->ptr, key, did, &c.o, variant, sizeof variant);
    } else {
        Py_BEGIN_ALLOW_THREADS
        st = api.get_flag(self->ptr, key, did, &c.o, variant, sizeof variant);
        Py_END_ALLOW_THREADS
    }
    if (events && events_leave(self)) goto done; /* before_send's BaseException */
    if (st == POSTHOG_FLAG_ENABLED) {
        size_t n = strlen(variant);
        if (!n || mode == M_ENABLED) {
            out = Py_True;
            Py_INCREF(out);
        } else if (n >= sizeof variant - 1) {
            /* maybe truncated: read it whole, without a second event */
            out = slow(slow_fn, client, args, nargs, kwnames, K_SEND, Py_False);
        } else {
            out = PyUnicode_DecodeUTF8(variant, (Py_ssize_t)n, "replace");
        }
    } else {
        out = st == POSTHOG_FLAG_DISABLED ? Py_False : Py_None;
        Py_INCREF(out);
    }
    goto done;
fail:
    out = failed(client, Py_None);
done:
    if (f) api.free(f);
    call_free(&c);
    Py_DECREF(client);
    return out;
}

static PyObject *one_flag(Flags *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                          int mode) {
    PyObject *client = client_of(self);
    if (!client) Py_RETURN_NONE; /* collected: its C client is gone */
    Py_INCREF(client);
    PyObject *r = one_flag_impl(self, client, args, nargs, kwnames, mode);
    Py_DECREF(client);
    return r;
}

static PyObject *Flags_get_feature_flag(Flags *self, PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kwnames) {
    return one_flag(self, args, nargs, kwnames, M_VALUE);
}

static PyObject *Flags_feature_enabled(Flags *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames) {
    return one_flag(self, args, nargs, kwnames, M_ENABLED);
}

/* A flag's value as flags._Record.value: False, the variant, or True. */
static PyObject *flag_value(const posthog_flag_t *f) {
    if (!f->enabled) {
        Py_INCREF(Py_False);
        return Py_False;
    }
    if (f->variant) return PyUnicode_DecodeUTF8(f->variant, (Py_ssize_t)strlen(f->variant), "replace");
    Py_INCREF(Py_True);
    return Py_True;
}

/* flags._decode_payload(payload_json) (None when there is none) */
static PyObject *flag_payload(const posthog_flag_t *f) {
    if (!f->payload_json) {
        Py_INCREF(Py_None);
        return Py_None;
    }
    PyObject *b = PyBytes_FromString(f->payload_json);
    if (!b) return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(helpers[H_DECODE_PAYLOAD], b, NULL);
    Py_DECREF(b);
    return r;
}

static PyObject *status_error(posthog_status_t st) {
    PyObject *n = PyLong_FromLong((long)st);
    if (!n) return NULL;
    PyObject *e = PyObject_CallFunctionObjArgs(helpers[H_STATUS_ERROR], n, NULL);
    Py_DECREF(n);
    if (e) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return NULL;
}

/* posthog_evaluate_flags with the call's options (GIL released unless
 * local only); 0 and *out, or -1 with the exception set */
static int evaluate(Flags *self, const char *did, call_t *c, posthog_flags_t **out) {
    posthog_status_t st;
    *out = NULL;
    if (c->o.only_evaluate_locally) {
        st = api.evaluate(self->ptr, did, &c->o, out);
    } else {
        Py_BEGIN_ALLOW_THREADS
        st = api.evaluate(self->ptr, did, &c->o, out);
        Py_END_ALLOW_THREADS
    }
    if (st != POSTHOG_OK) {
        if (*out) api.free(*out);
        *out = NULL;
        status_error(st);
        return -1;
    }
    return 0;
}

/* get_feature_flag_payload(key, distinct_id, *, match_value, groups,
 * person_properties, group_properties, only_evaluate_locally,
 * send_feature_flag_events=False, disable_geoip, device_id) */
static PyObject *payload_impl(Flags *self, PyObject *client, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *patched;
    if (class_patched(client, H_SLOW_PAYLOAD, -1, args, nargs, kwnames, &patched)) return patched;
    PyObject *kv[K_N];
    if (nargs != 2 || parse_kw(args, nargs, kwnames, KW_COMMON | KW(K_SEND) | KW(K_MATCH), kv))
        return slow(H_SLOW_PAYLOAD, client, args, nargs, kwnames, -1, NULL);
    const char *key, *did;
    int r = plain_str(args[0], &key, 0);
    if (r > 0) r = plain_str(args[1], &did, 0);
    if (r < 0) return NULL;
    if (!r) return slow(H_SLOW_PAYLOAD, client, args, nargs, kwnames, -1, NULL);
    int fire = kv[K_SEND] ? PyObject_IsTrue(kv[K_SEND]) : 0; /* bool(), outside the try */
    if (fire < 0) return NULL;
    Py_INCREF(client);
    PyObject *out = NULL, *value = NULL, *payload = NULL;
    posthog_flags_t *f = NULL;
    call_t c;
    call_init(&c);
    int dis = is_disabled(client);
    if (dis) {
        out = dis < 0 ? NULL : (Py_INCREF(Py_None), Py_None);
        goto done;
    }
    r = common_options(self, client, kv, &c);
    if (r == 1) {
        out = slow(H_SLOW_PAYLOAD, client, args, nargs, kwnames, -1, NULL);
        goto done;
    }
    if (r < 0) goto fail;
    const char *keys[2] = {key, NULL};
    c.o.flag_keys = keys;
    c.o.send_feature_flag_events = fire ? POSTHOG_TRUE : POSTHOG_FALSE;
    if (evaluate(self, did, &c, &f)) goto fail;
    posthog_flag_t fl;
    int found = 0;
    if (!f) {
        /* no snapshot: nothing to read (the Python path's _Snapshot(0)) */
    } else if (fire) { /* _Snapshot.read: posthog_flags_get, with the event */
        if (events_enter(self)) goto fail;
        found = api.get(f, key, &fl);
        if (events_leave(self)) goto done;
        if (found && !(payload = flag_payload(&fl))) goto fail;
    } else { /* _Snapshot.records().get(key): every flag read (payloads decoded) */
        size_t n = api.count(f);
        for (size_t i = 0; i < n; i++) {
            const char *k = api.key(f, i);
            posthog_flag_t x;
            if (!k || !api.peek(f, k, &x)) continue;
            PyObject *p = flag_payload(&x);
            if (!p) goto fail;
            if (strcmp(x.key ? x.key : "", key) == 0) {
                SETREF(payload, p);
                fl = x;
                found = 1;
            } else {
                Py_DECREF(p);
            }
        }
    }
    if (!found) {
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    PyObject *match = kv[K_MATCH];
    if (match && match != Py_None) {
        if (!(value = flag_value(&fl))) goto fail;
        /* outside the Python path's try: an error here is the caller's */
        int ne = PyObject_RichCompareBool(match, value, Py_NE);
        if (ne < 0) goto done;
        if (ne) {
            PyObject *k = PyUnicode_FromString(key);
            PyObject *l = k ? PyObject_CallFunctionObjArgs(helpers[H_PAYLOAD_MISMATCH], k, value,
                                                           match, NULL)
                            : NULL;
            Py_XDECREF(k);
            if (!l) goto done;
            Py_DECREF(l);
            out = Py_None;
            Py_INCREF(out);
            goto done;
        }
    }
    out = payload;
    payload = NULL;
    goto done;
fail:
    out = failed(client, Py_None);
done:
    if (f) api.free(f);
    Py_XDECREF(value);
    Py_XDECREF(payload);
    call_free(&c);
    Py_DECREF(client);
    return out;
}

static PyObject *Flags_get_feature_flag_payload(Flags *self, PyObject *const *args,
                                                Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *client = client_of(self);
    if (!client) Py_RETURN_NONE;
    Py_INCREF(client);
    PyObject *r = payload_impl(self, client, args, nargs, kwnames);
    Py_DECREF(client);
    return r;
}

/* {"featureFlags": {}, "featureFlagPayloads": {}} or {} */
static PyObject *empty_all(int both) {
    if (!both) return PyDict_New();
    PyObject *d = PyDict_New(), *a = PyDict_New(), *b = PyDict_New();
    if (!d || !a || !b || PyDict_SetItemString(d, "featureFlags", a) ||
        PyDict_SetItemString(d, "featureFlagPayloads", b)) {
        Py_XDECREF(d);
        d = NULL;
    }
    Py_XDECREF(a);
    Py_XDECREF(b);
    return d;
}

/* get_all_flags / get_all_flags_and_payloads(distinct_id, *, groups,
 * person_properties, group_properties, only_evaluate_locally, disable_geoip,
 * flag_keys_to_evaluate, device_id) */
static PyObject *all_flags_impl(Flags *self, PyObject *client, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames, int both) {
    int slow_fn = both ? H_SLOW_ALL_PAYLOADS : H_SLOW_ALL;
    PyObject *patched;
    if (class_patched(client, slow_fn, both ? -1 : H_SLOW_ALL_PAYLOADS, args, nargs, kwnames,
                      &patched))
        return patched;
    PyObject *kv[K_N];
    if (nargs != 1 || parse_kw(args, nargs, kwnames, KW_COMMON | KW(K_FLAG_KEYS), kv))
        return slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
    const char *did;
    int r = plain_str(args[0], &did, 0);
    if (r < 0) return NULL;
    if (!r) return slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
    /* flag_keys_to_evaluate: None or a list of plain str */
    PyObject *fk = kv[K_FLAG_KEYS];
    const char **keys = NULL, *kbuf[17];
    if (fk && fk != Py_None) {
        if (Py_TYPE(fk) != &PyList_Type)
            return slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
        Py_ssize_t n = PyList_Size(fk);
        keys = n < 17 ? kbuf : PyMem_Malloc(sizeof *keys * (size_t)(n + 1));
        if (!keys) return PyErr_NoMemory();
        for (Py_ssize_t i = 0; i < n; i++) {
            r = plain_str(PyList_GetItem(fk, i), &keys[i], 1);
            if (r <= 0) {
                if (keys != kbuf) PyMem_Free(keys);
                return r < 0 ? NULL : slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
            }
        }
        keys[n] = NULL;
    }
    Py_INCREF(client);
    PyObject *out = NULL, *values = NULL, *payloads = NULL;
    posthog_flags_t *f = NULL;
    call_t c;
    call_init(&c);
    int dis = is_disabled(client);
    if (dis) {
        out = dis < 0 ? NULL : empty_all(both);
        goto done;
    }
    r = common_options(self, client, kv, &c);
    if (r == 1) {
        out = slow(slow_fn, client, args, nargs, kwnames, -1, NULL);
        goto done;
    }
    if (r < 0) goto fail;
    c.o.flag_keys = keys;
    c.o.send_feature_flag_events = POSTHOG_FALSE;
    if (evaluate(self, did, &c, &f)) goto fail;
    if (!(values = PyDict_New()) || !(payloads = PyDict_New())) goto fail;
    size_t n = f ? api.count(f) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = api.key(f, i);
        posthog_flag_t x;
        if (!k || !api.peek(f, k, &x)) continue;
        const char *name = x.key ? x.key : "";
        PyObject *key = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace");
        PyObject *v = key ? flag_value(&x) : NULL;
        PyObject *p = v ? flag_payload(&x) : NULL;
        if (both && p && p != Py_None) {
            /* get_all_flags_and_payloads: the payload's JSON text, as
             * posthog-python returns it (and flags.py's slow path) */
            Py_DECREF(p);
            p = PyUnicode_DecodeUTF8(x.payload_json, (Py_ssize_t)strlen(x.payload_json),
                                     "replace");
        }
        int bad = !p || PyDict_SetItem(values, key, v) ||
                  (x.enabled && p != Py_None && PyDict_SetItem(payloads, key, p));
        Py_XDECREF(key);
        Py_XDECREF(v);
        Py_XDECREF(p);
        if (bad) goto fail;
    }
    if (!both) {
        out = values;
        values = NULL;
    } else {
        if (!(out = PyDict_New()) || PyDict_SetItemString(out, "featureFlags", values) ||
            PyDict_SetItemString(out, "featureFlagPayloads", payloads)) {
            Py_CLEAR(out);
            goto fail;
        }
    }
    goto done;
fail:
    {
        PyObject *e = empty_all(both);
        if (!e) {
            out = NULL;
            goto done;
        }
        out = failed(client, e);
        Py_DECREF(e);
    }
done:
    if (f) api.free(f);
    if (keys && keys != kbuf) PyMem_Free(keys);
    Py_XDECREF(values);
    Py_XDECREF(payloads);
    call_free(&c);
    Py_DECREF(client);
    return out;
}

static PyObject *all_flags(Flags *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                           int both) {
    PyObject *client = client_of(self);
    if (!client) return empty_all(both);
    Py_INCREF(client);
    PyObject *r = all_flags_impl(self, client, args, nargs, kwnames, both);
    Py_DECREF(client);
    return r;
}

static PyObject *Flags_get_all_flags(Flags *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
    return all_flags(self, args, nargs, kwnames, 0);
}

static PyObject *Flags_get_all_flags_and_payloads(Flags *self, PyObject *const *args,
                                                  Py_ssize_t nargs, PyObject *kwnames) {
    return all_flags(self, args, nargs, kwnames, 1);
}

static PyObject *Flags_detach(Flags *self, PyObject *unused) {
    (void)unused;
    self->ptr = NULL;
    Py_RETURN_NONE;
}

static int Flags_init(Flags *self, PyObject *args, PyObject *kwds) {
    PyObject *client, *ptr;
    int before_send = 0;
    static char *names[] = {"client", "ptr", "before_send", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|p", names, &client, &ptr, &before_send))
        return -1;
    if (!api.get_flag) {
        PyErr_SetString(PyExc_RuntimeError, "libposthog._accel: setup() was not called");
        return -1;
    }
    void *p = PyLong_AsVoidPtr(ptr);
    if (!p) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "libposthog._accel: the client pointer is NULL");
        return -1;
    }
    PyObject *w = PyWeakref_NewRef(client, NULL);
    if (!w) return -1;
    SETREF(self->wclient, w);
    self->ptr = p;
    self->before_send = before_send;
    return 0;
}

static void Flags_dealloc(Flags *self) {
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(self->wclient);
    freefunc fr = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    fr(self);
    Py_DECREF(tp);
}

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef Flags_methods[] = {
    {"get_feature_flag", (PyCFunction)(void (*)(void))Flags_get_feature_flag, FASTKW,
     "get_feature_flag($self, key, distinct_id, *, groups=None, person_properties=None, group_properties=None, only_evaluate_locally=False, send_feature_flag_events=None, disable_geoip=None, device_id=None)\n--\n\nPosthog.get_feature_flag, compiled (same arguments and results)."},
    {"feature_enabled", (PyCFunction)(void (*)(void))Flags_feature_enabled, FASTKW,
     "feature_enabled($self, key, distinct_id, *, groups=None, person_properties=None, group_properties=None, only_evaluate_locally=False, send_feature_flag_events=None, disable_geoip=None, device_id=None)\n--\n\nPosthog.feature_enabled, compiled (same arguments and results)."},
    {"get_feature_flag_payload", (PyCFunction)(void (*)(void))Flags_get_feature_flag_payload,
     FASTKW, "get_feature_flag_payload($self, key, distinct_id, *, match_value=None, groups=None, person_properties=None, group_properties=None, only_evaluate_locally=False, send_feature_flag_events=False, disable_geoip=None, device_id=None)\n--\n\nPosthog.get_feature_flag_payload, compiled (same arguments and results)."},
    {"get_all_flags", (PyCFunction)(void (*)(void))Flags_get_all_flags, FASTKW,
     "get_all_flags($self, distinct_id, *, groups=None, person_properties=None, group_properties=None, only_evaluate_locally=False, disable_geoip=None, flag_keys_to_evaluate=None, device_id=None)\n--\n\nPosthog.get_all_flags, compiled (same arguments and results)."},
    {"get_all_flags_and_payloads", (PyCFunction)(void (*)(void))Flags_get_all_flags_and_payloads,
     FASTKW, "get_all_flags_and_payloads($self, distinct_id, *, groups=None, person_properties=None, group_properties=None, only_evaluate_locally=False, disable_geoip=None, flag_keys_to_evaluate=None, device_id=None)\n--\n\nPosthog.get_all_flags_and_payloads, compiled (same arguments and results)."},
    {"detach", (PyCFunction)Flags_detach, METH_NOARGS,
     "Forget the C client (it is being freed): later calls answer as for a gone client."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Flags_slots[] = {
    {Py_tp_init, (void *)Flags_init},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)Flags_dealloc},
    {Py_tp_methods, Flags_methods},
    {Py_tp_doc, (void *)"Flags(client, ptr, before_send=False): the compiled flag calls of "
                        "one Posthog client (see flags.py)."},
    {0, NULL},
};

static PyType_Spec Flags_spec = {
    "libposthog._accel.Flags", sizeof(Flags), 0, Py_TPFLAGS_DEFAULT, Flags_slots,
};

/* ------------------------------------------------------------------ module functions */

/* setup(addresses: dict name -> int, helpers: dict name -> object) */
static PyObject *mod_setup(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *addrs, *hs;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &addrs, &PyDict_Type, &hs)) return NULL;
    static const char *const fn_names[] = {
        "posthog_get_feature_flag", "posthog_evaluate_flags", "posthog_flags_get",
        "posthog_flags_peek", "posthog_flags_count", "posthog_flags_key", "posthog_flags_free",
    };
    void *p[7];
    for (int i = 0; i < 7; i++) {
        PyObject *a = PyDict_GetItemString(addrs, fn_names[i]);
        if (!a) return PyErr_Format(PyExc_KeyError, "libposthog._accel.setup: no address for %s",
                                    fn_names[i]);
        p[i] = PyLong_AsVoidPtr(a);
        if (!p[i]) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "libposthog._accel.setup: %s is NULL", fn_names[i]);
            return NULL;
        }
    }
    PyObject *h[H_N];
    for (int i = 0; i < H_N; i++) {
        h[i] = PyDict_GetItemString(hs, helper_names[i]);
        if (!h[i]) return PyErr_Format(PyExc_KeyError, "libposthog._accel.setup: no helper %s",
                                       helper_names[i]);
    }
    for (int i = 0; i < H_N; i++) {
        Py_INCREF(h[i]);
        SETREF(helpers[i], h[i]);
    }
    api.get_flag = (get_flag_fn)p[0];
    api.evaluate = (evaluate_fn)p[1];
    api.get = (flags_get_fn)p[2];
    api.peek = (flags_peek_fn)p[3];
    api.count = (flags_count_fn)p[4];
    api.key = (flags_key_fn)p[5];
    api.free = (flags_free_fn)p[6];
    Py_RETURN_NONE;
}

static PyObject *mod_dumps(PyObject *m, PyObject *v) {
    (void)m;
    jbuf_t b;
    jb_init(&b);
    int r = jb_value(&b, v, 0);
    PyObject *out = r == J_OK ? PyBytes_FromStringAndSize(b.p, (Py_ssize_t)b.len)
                  : r == J_UNSUPPORTED ? (Py_INCREF(Py_None), Py_None) : NULL;
    jb_free(&b);
    return out;
}

static PyObject *mod_capture_depth(PyObject *m, PyObject *unused) {
    (void)m;
    (void)unused;
    return PyLong_FromLong(capture_depth);
}

static PyMethodDef mod_methods[] = {
    {"setup", mod_setup, METH_VARARGS,
     "setup(addresses, helpers): the C functions of the loaded libposthog (by name) and the "
     "Python helpers of flags.py."},
    {"dumps", mod_dumps, METH_O,
     "dumps(value) -> bytes: the JSON text _serialize.dumps_clean_fast gives, or None when the "
     "value holds a type the C converter leaves to Python."},
    {"capture_depth", mod_capture_depth, METH_NOARGS,
     "Calls on this thread now inside a C flag call that may capture $feature_flag_called."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "libposthog._accel",
    "Compiled fast paths of the feature-flag calls (see _accel.c).", -1, mod_methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *type_from(const char *module, const char *name) {
    PyObject *m = PyImport_ImportModule(module);
    if (!m) return NULL;
    PyObject *t = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return t;
}

PyMODINIT_FUNC PyInit__accel(void) {
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    for (int k = 0; k < K_N; k++)
        if (!(kw_str[k] = PyUnicode_InternFromString(kw_names[k]))) goto fail;
    for (int h = 0; h <= H_SLOW_ALL_PAYLOADS; h++)
        if (!(helper_str[h] = PyUnicode_InternFromString(helper_names[h]))) goto fail;
    if (!(s_disabled = PyUnicode_InternFromString("disabled")) ||
        !(s_disable_geoip = PyUnicode_InternFromString("disable_geoip")) ||
        !(s_raise_after = PyUnicode_InternFromString("raise_after")) ||
        !(s_isoformat = PyUnicode_InternFromString("isoformat")) ||
        !(s_person_properties = PyUnicode_InternFromString("person_properties")) ||
        !(s_groups = PyUnicode_InternFromString("groups")) ||
        !(s_group_properties = PyUnicode_InternFromString("group_properties")))
        goto fail;
    if (!(t_datetime = type_from("datetime", "datetime")) ||
        !(t_date = type_from("datetime", "date")) || !(t_decimal = type_from("decimal", "Decimal")) ||
        !(t_uuid = type_from("uuid", "UUID")))
        goto fail;
    PyObject *tp = PyType_FromSpec(&Flags_spec);
    if (!tp || PyModule_AddObject(m, "Flags", tp)) {
        Py_XDECREF(tp);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "VARIANT_CAP", VARIANT_CAP)) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
