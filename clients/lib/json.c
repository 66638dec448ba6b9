/*  json: one JSON object (a line of JSON Lines) -> a record's field list
 *  and its msgpack encoding. jansson parses; proto encodes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "amity/client.h"
#include "amity/proto.h"
#include "client_int.h"

struct amity_json_doc {
    json_t *root;                   /* the parsed object; fields borrow from it */
    char *dumped[AMITY_FIELDS_MAX]; /* compact JSON text of nested x- values */
    size_t n_dumped;                /* used entries of dumped */
    amity_fields_t fields;          /* the field list (views into root and dumped) */
};

static void s_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_why(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && why_len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
}

static bool
s_is_x_field(const char *name, size_t len)
{
    return len >= 2 && name[0] == 'x' && name[1] == '-';
}

/* Shortens a field name for messages (names come from the input). */
static void
s_name_quote(char *dst, size_t dst_len, const char *name, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < dst_len && i < 64; i++) {
        unsigned char c = (unsigned char)name[i];
        dst[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

int
amity_json_doc_parse(amity_json_doc_t **out, const char *json, size_t len, char *why,
                     size_t why_len)
{
    amity_json_doc_t *self;
    json_error_t err;
    const char *key;
    size_t key_len;
    json_t *value;
    char name[80];
    int rc;

    AMITY_ASSERT(out != NULL && (json != NULL || len == 0));
    *out = NULL;
    if (why != NULL && why_len > 0) {
        why[0] = '\0';
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (self->root == NULL) {
        s_why(why, why_len, "json: %s (column %d)", err.text,
              err.column > 0 ? err.column : err.position + 1);
        rc = AMITY_EINVAL;
        goto fail;
    }
    if (!json_is_object(self->root)) {
        s_why(why, why_len, "record: not a JSON object");
        rc = AMITY_EINVAL;
        goto fail;
    }
    if (json_object_size(self->root) > AMITY_FIELDS_MAX) {
        s_why(why, why_len, "record: more than %d fields", AMITY_FIELDS_MAX);
        rc = AMITY_EINVAL;
        goto fail;
    }
    json_object_keylen_foreach(self->root, key, key_len, value)
    {
        amity_field_t *f = &self->fields.fields[self->fields.n_fields];

        f->name = key;
        f->name_len = key_len;
        switch (json_typeof(value)) {
        case JSON_NULL:
            f->val.type = AMITY_VAL_NIL;
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            f->val.type = AMITY_VAL_BOOL;
            f->val.as.b = json_is_true(value);
            break;
        case JSON_INTEGER: {
            json_int_t i = json_integer_value(value);
            if (i >= 0) {
                f->val.type = AMITY_VAL_UINT;
                f->val.as.u = (uint64_t)i;
            } else {
                f->val.type = AMITY_VAL_INT;
                f->val.as.i = (int64_t)i;
            }
            break;
        }
        case JSON_REAL:
            f->val.type = AMITY_VAL_FLOAT;
            f->val.as.f = json_real_value(value);
            break;
        case JSON_STRING:
            f->val.type = AMITY_VAL_STR;
            f->val.as.s.ptr = json_string_value(value);
            f->val.as.s.len = json_string_length(value);
            break;
        case JSON_ARRAY:
        case JSON_OBJECT: {
            char *text;
            if (!s_is_x_field(key, key_len)) {
                s_name_quote(name, sizeof(name), key, key_len);
                s_why(why, why_len, "%s: nested arrays and objects are allowed only in x- fields",
                      name);
                rc = AMITY_EINVAL;
                goto fail;
            }
            text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
            if (text == NULL) {
                rc = AMITY_ENOMEM;
                goto fail;
            }
            self->dumped[self->n_dumped++] = text;
            f->val.type = AMITY_VAL_STR;
            f->val.as.s.ptr = text;
            f->val.as.s.len = strlen(text);
            break;
        }
        default:
            s_name_quote(name, sizeof(name), key, key_len);
            s_why(why, why_len, "%s: unsupported JSON value", name);
            rc = AMITY_EINVAL;
            goto fail;
        }
        self->fields.n_fields++;
    }
    *out = self;
    return 0;

fail:
    amity_json_doc_destroy(&self);
    return rc;
}

const amity_fields_t *
amity_json_doc_fields(const amity_json_doc_t *self)
{
    AMITY_ASSERT(self != NULL);
    return &self->fields;
}

void
amity_json_doc_destroy(amity_json_doc_t **self_p)
{
    amity_json_doc_t *self;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    for (size_t i = 0; i < self->n_dumped; i++) {
        free(self->dumped[i]);
    }
    json_decref(self->root);
    free(self);
    *self_p = NULL;
}

const char *
amity_json_id(const char *json, size_t len, char *buf, size_t buf_len)
{
    json_t *root;
    json_t *id;
    size_t n = 0;

    AMITY_ASSERT(buf != NULL && buf_len >= 2);
    root =
        json != NULL ? json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL) : NULL;
    id = json_is_object(root) ? json_object_get(root, "id") : NULL;
    if (json_is_string(id)) {
        const char *s = json_string_value(id);
        size_t s_len = json_string_length(id);

        for (n = 0; n < s_len && n + 1 < buf_len && n < AMITY_ID_MAX; n++) {
            unsigned char c = (unsigned char)s[n];
            buf[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
    }
    if (n == 0) {
        buf[n++] = '-';
    }
    buf[n] = '\0';
    json_decref(root);
    return buf;
}

int
amity_json_record(const char *json, size_t len, amity_buf_t *out, char *why, size_t why_len)
{
    amity_json_doc_t *doc = NULL;
    int rc;

    AMITY_ASSERT(out != NULL);
    rc = amity_json_doc_parse(&doc, json, len, why, why_len);
    if (rc != 0) {
        return rc;
    }
    rc = amity_fields_encode(amity_json_doc_fields(doc), out);
    if (rc != 0 && why != NULL && why_len > 0) {
        snprintf(why, why_len, "record: cannot be encoded (%s)", amity_strerror(rc));
    }
    amity_json_doc_destroy(&doc);
    return rc;
}
