/* json.h: the little JSON we write (manifests, metrics.jsonl, inspect --json, probe
 * reports) and the one field we read back from our own manifests.
 * Not a general JSON parser. */
#ifndef BGFM_JSON_H
#define BGFM_JSON_H

#include <stdio.h>

/* Write s as a JSON string literal (quotes included), escaping as RFC 8259 asks. */
void json_write_str(FILE *f, const char *s);
/* Write a finite double in shortest round-trip form; NaN/Inf are written as null. */
void json_write_num(FILE *f, double v);
/* Find "key": "value" at any depth of a text we wrote ourselves and copy value
 * (unescaped; our values never contain escapes) into out. Returns 1 if found. */
int json_find_str(const char *text, const char *key, char *out, size_t n);

#endif
