/* yamltree.h: YAML text -> a node tree with positions (libyaml), with the limits a
 * pipeline file needs (no anchors/aliases, one document, standard tags, depth and size
 * bounds), and the "FILE:LINE:COL: problem (key 'k'); did you mean 'x'?" message format.
 * Not the schema or the typed values (config.h). Non-collective. */
#ifndef BGFM_YAMLTREE_H
#define BGFM_YAMLTREE_H

#include <stdarg.h>
#include <stddef.h>

#include "bgfm/ctx.h"

typedef enum ynode_kind { YN_SCALAR, YN_MAP, YN_SEQ } ynode_kind;

/* A YAML node with its 1-based position. MAP children alternate key, value. */
typedef struct ynode {
    ynode_kind kind;
    int line, col;
    int quoted; /* scalar written quoted, as a block scalar, or tagged !!str */
    char *s;    /* scalar text */
    int nk, cap;
    struct ynode **kids;
} ynode;

/* Parse buf (len bytes) into *root (a mapping). BGFM_EUSAGE with FILE:LINE:COL on any
 * syntax error or refused construct, BGFM_ENOMEM on allocation failure. */
int yamltree_build(const char *file, const char *buf, size_t len, ynode **root, bgfm_err *e);
void ynode_free(ynode *n); /* accepts NULL */
/* 1 for a null scalar (empty, ~, null, Null, NULL written unquoted). */
int ynode_is_null(const ynode *n);

/* Record a BGFM_EUSAGE error "FILE:LINE:COL: <fmt>[ (key 'key')][; did you mean 'near'?]". */
int yamltree_vfail(bgfm_err *e, const char *file, int line, int col, const char *key,
                   const char *near, const char *fmt, va_list ap);
int yamltree_fail(bgfm_err *e, const char *file, int line, int col, const char *key,
                  const char *near, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

#endif
