/*
 * answers: scripted HTTP answers for the local ingestion server's
 * feature-flag endpoints (flags.c): parsing them from control requests,
 * rendering them back, and laying one over a fallback answer. No state of
 * its own; callers keep answers under their own lock.
 */
#include "answers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUEUE_MAX 10000 /* scripted answers per list */
#define DELAY_MAX_MS 600000

void ph_answer_free(ph_answer_t *c)
{
    free(c->body);
    free(c->headers);
    free(c->headers_json);
    memset(c, 0, sizeof *c);
}

void ph_answers_clear(ph_answers_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        ph_answer_free(&s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* A JSON string is taken as raw text; any other value is serialised. NULL
 * and 0 on success means JSON null. -1 with err set on failure. */
int ph_body_take(const cJSON *v, char **out, size_t *len, int *json, char *err, size_t errlen,
                 const char *where)
{
    *out = NULL;
    *len = 0;
    *json = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v)) {
        *out = strdup(v->valuestring);
    } else {
        *out = cJSON_PrintUnformatted(v);
        *json = 1;
    }
    if (!*out) {
        snprintf(err, errlen, "%s\"body\": out of memory", where);
        return -1;
    }
    *len = strlen(*out);
    return 0;
}

static int is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* "headers": {"Name": "value", ...}. Content-Type goes to c->content_type;
 * the headers httpd writes itself are refused. */
static int take_headers(const cJSON *h, ph_answer_t *c, char *err, size_t errlen, const char *where)
{
    if (!h || cJSON_IsNull(h))
        return 0;
    if (!cJSON_IsObject(h)) {
        snprintf(err, errlen,
                 "%s\"headers\" must be an object of strings, e.g. {\"X-Name\": \"value\"}", where);
        return -1;
    }
    ph_sbuf_t b = {0};
    const cJSON *it;
    cJSON_ArrayForEach(it, h) {
        const char *name = it->string;
        size_t i;
        for (i = 0; name[i] && is_tchar((unsigned char)name[i]); i++)
            ;
        if (!name[0] || name[i]) {
            snprintf(err, errlen, "%sheader name \"%.60s\" is not an HTTP token", where, name);
            goto fail;
        }
        if (!cJSON_IsString(it) || strpbrk(it->valuestring, "\r\n")) {
            snprintf(err, errlen, "%sheader \"%.60s\" must be a string without CR or LF", where,
                     name);
            goto fail;
        }
        if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
            strcasecmp(name, "Connection") == 0) {
            snprintf(err, errlen, "%sheader \"%s\" is set by the server and cannot be scripted",
                     where, name);
            goto fail;
        }
        if (strcasecmp(name, "Content-Type") == 0) {
            if (strlen(it->valuestring) >= sizeof c->content_type) {
                snprintf(err, errlen, "%s\"Content-Type\" must be at most %zu bytes", where,
                         sizeof c->content_type - 1);
                goto fail;
            }
            snprintf(c->content_type, sizeof c->content_type, "%s", it->valuestring);
            continue;
        }
        ph_sbuf_str(&b, name);
        ph_sbuf_add(&b, ": ", 2);
        ph_sbuf_str(&b, it->valuestring);
        ph_sbuf_add(&b, "\r\n", 2);
    }
    if (b.len > PH_ANSWER_HEADER_BYTES_MAX) {
        snprintf(err, errlen, "%s\"headers\" take %zu bytes as HTTP lines; at most %d allowed",
                 where, b.len, PH_ANSWER_HEADER_BYTES_MAX);
        goto fail;
    }
    if (b.failed || !(c->headers_json = cJSON_PrintUnformatted(h))) {
        snprintf(err, errlen, "%s\"headers\": out of memory", where);
        goto fail;
    }
    c->headers = ph_sbuf_take(&b, NULL);
    return 0;
fail:
    free(ph_sbuf_take(&b, NULL));
    return -1;
}

int ph_delay_take(const cJSON *v, int *out, char *err, size_t errlen, const char *where)
{
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > DELAY_MAX_MS ||
        v->valuedouble != (double)(int)v->valuedouble) {
        snprintf(err, errlen, "%s\"delay_ms\" must be an integer in 0..%d", where, DELAY_MAX_MS);
        return -1;
    }
    *out = v->valueint;
    return 0;
}

/* {"status", "body", "headers", "delay_ms", "hang"}, all optional. */
int ph_answer_take(const cJSON *it, ph_answer_t *c, char *err, size_t errlen, const char *where)
{
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(it)) {
        snprintf(err, errlen, "%smust be an object like {\"status\": 200, \"body\": {...}}", where);
        return -1;
    }
    const cJSON *k;
    cJSON_ArrayForEach(k, it) {
        if (strcmp(k->string, "status") && strcmp(k->string, "body") &&
            strcmp(k->string, "headers") && strcmp(k->string, "delay_ms") &&
            strcmp(k->string, "hang")) {
            snprintf(err, errlen,
                     "%sunknown key \"%.60s\" (allowed: \"status\", \"body\", \"headers\", "
                     "\"delay_ms\", \"hang\")",
                     where, k->string);
            return -1;
        }
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");
    const cJSON *hang = cJSON_GetObjectItemCaseSensitive(it, "hang");
    if (st && !cJSON_IsNull(st)) {
        if (!cJSON_IsNumber(st) || st->valuedouble < 200 || st->valuedouble > 599 ||
            st->valuedouble != (double)(int)st->valuedouble) {
            snprintf(err, errlen, "%s\"status\" must be an integer in 200..599", where);
            return -1;
        }
        c->status = st->valueint;
    }
    if (hang && !cJSON_IsBool(hang)) {
        snprintf(err, errlen, "%s\"hang\" must be a boolean", where);
        return -1;
    }
    c->hang = cJSON_IsTrue(hang);
    if (ph_delay_take(cJSON_GetObjectItemCaseSensitive(it, "delay_ms"), &c->delay_ms, err, errlen,
                   where) < 0 ||
        take_headers(cJSON_GetObjectItemCaseSensitive(it, "headers"), c, err, errlen, where) < 0 ||
        ph_body_take(cJSON_GetObjectItemCaseSensitive(it, "body"), &c->body, &c->body_len,
                  &c->body_json, err, errlen, where) < 0) {
        ph_answer_free(c);
        return -1;
    }
    return 0;
}

/* "responses": [...] into *out (replacing nothing yet). */
int ph_answers_take(const cJSON *arr, ph_answers_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!arr || cJSON_IsNull(arr))
        return 0;
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n > QUEUE_MAX) {
        snprintf(err, errlen, "\"responses\" must be an array of at most %d answers", QUEUE_MAX);
        return -1;
    }
    if (n == 0)
        return 0;
    out->v = calloc((size_t)n, sizeof *out->v);
    if (!out->v) {
        snprintf(err, errlen, "\"responses\": out of memory");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        char where[48];
        snprintf(where, sizeof where, "\"responses\"[%zu]: ", out->n);
        if (ph_answer_take(it, &out->v[out->n], err, errlen, where) < 0) {
            ph_answers_clear(out);
            return -1;
        }
        out->n++;
    }
    return 0;
}

/* Refuses keys other than the allowed ones (a typo must not pass silently). */
int ph_known_keys(const cJSON *root, const char *const *allowed, const char *list, char *err,
                  size_t errlen)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, root) {
        size_t i;
        for (i = 0; allowed[i] && strcmp(allowed[i], k->string) != 0; i++)
            ;
        if (!allowed[i]) {
            snprintf(err, errlen, "unknown key \"%.60s\" (allowed: %s)", k->string, list);
            return -1;
        }
    }
    return 0;
}

void ph_body_render(ph_sbuf_t *b, const char *body, size_t len, int json)
{
    if (!body)
        ph_sbuf_str(b, "null");
    else if (json)
        ph_sbuf_add(b, body, len);
    else
        ph_sbuf_json_str(b, body, len);
}

void ph_answer_render(ph_sbuf_t *b, const ph_answer_t *c)
{
    ph_sbuf_str(b, "{\"status\":");
    if (c->status)
        ph_sbuf_fmt_u64(b, (unsigned long long)c->status);
    else
        ph_sbuf_str(b, "null");
    ph_sbuf_str(b, ",\"body\":");
    ph_body_render(b, c->body, c->body_len, c->body_json);
    ph_sbuf_str(b, ",\"headers\":");
    ph_sbuf_str(b, c->headers_json ? c->headers_json : "{}");
    ph_sbuf_str(b, ",\"delay_ms\":");
    ph_sbuf_fmt_u64(b, (unsigned long long)c->delay_ms);
    ph_sbuf_str(b, c->hang ? ",\"hang\":true}" : ",\"hang\":false}");
}

void ph_answers_render(ph_sbuf_t *b, const ph_answers_t *s)
{
    ph_sbuf_add(b, "[", 1);
    for (size_t i = s->next; i < s->n; i++) {
        if (i > s->next)
            ph_sbuf_add(b, ",", 1);
        ph_answer_render(b, &s->v[i]);
    }
    ph_sbuf_add(b, "]", 1);
}

static int is2xx(int status)
{
    return status >= 200 && status < 300;
}

/* The answer of scripted entry c laid over the fallback answer fb. No
 * status and no body: fb as is. A body without a status: fb's status. A
 * status without a body: nothing for 204 and 304; for another 2xx, fb's body
 * when fb is a 2xx, else ok_body; for any other status an injected-fault
 * body written into fault. A Content-Type header of c wins. */
ph_pick_t ph_answer_pick(const ph_answer_t *c, ph_pick_t fb, const char *ok_body, char *fault,
                         size_t faultlen)
{
    ph_pick_t p = fb;
    if (c->status)
        p.status = c->status;
    if (c->body) {
        p.body = c->body;
        p.len = c->body_len;
        p.ctype = "application/json";
    } else if (c->status) {
        p.ctype = "application/json";
        if (p.status == 204 || p.status == 304) {
            p.body = "";
        } else if (is2xx(p.status)) {
            if (!is2xx(fb.status))
                p.body = ok_body;
            p.ctype = is2xx(fb.status) ? fb.ctype : "application/json";
        } else {
            snprintf(fault, faultlen, "{\"type\":\"injected_fault\",\"status\":%d}", p.status);
            p.body = fault;
        }
        if (p.body != fb.body)
            p.len = strlen(p.body);
    }
    if (c->content_type[0])
        p.ctype = c->content_type;
    return p;
}

