/* json.h: the little JSON we write (manifests, metrics.jsonl, inspect --json, probe
 * reports), one-field look-ups in our own manifests, and a small reader for our own
 * reports (bgfm report). Not a general JSON library. */
#ifndef BGFM_JSON_H
#define BGFM_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "bgfm/ctx.h"

/* Write s as a JSON string literal (quotes included), escaping as RFC 8259 asks. */
void json_write_str(FILE *f, const char *s);
/* Write a finite double in shortest round-trip form; NaN/Inf are written as null. */
void json_write_num(FILE *f, double v);
/* Find "key": "value" at any depth of a text we wrote ourselves and copy value
 * (unescaped; our values never contain escapes) into out. Returns 1 if found. */
int json_find_str(const char *text, const char *key, char *out, size_t n);
/* The same for "key": NUMBER. Returns 1 if found. */
int json_find_num(const char *text, const char *key, double *out);

/* A parsed JSON value (json_parse). Objects keep their members in file order. */
typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } json_kind;
typedef struct json_node {
    json_kind k;
    double num;             /* JSON_NUM, JSON_BOOL (0/1) */
    char *str;              /* JSON_STR */
    int n;                  /* items / members */
    char **keys;            /* JSON_OBJ: n member names */
    struct json_node *kid;  /* n items / member values */
} json_node;
/* Parse text[0..len) (one value, nesting at most 64 deep); 0, or -1 on a syntax error or
 * an allocation failure (out is then empty). Free with json_free. */
int json_parse(const char *text, size_t len, json_node *out);
/* json_parse telling the two failures apart: BGFM_ENOMEM with e set when an allocation
 * failed, -1 (e untouched) on a syntax error. */
int json_parse_e(const char *text, size_t len, json_node *out, bgfm_err *e);
void json_free(json_node *v);
/* Member `key` of an object, or NULL (also when v is NULL or not an object). */
const json_node *json_get(const json_node *v, const char *key);
/* The number at member `key`, or NaN. */
double json_num(const json_node *v, const char *key);

#endif
