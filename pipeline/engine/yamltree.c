/* yamltree.c: the pipeline file's YAML (libyaml events) read into a small node tree
 * with 1-based positions, refusing anchors/aliases, extra documents, odd tags, deep
 * nesting; and the FILE:LINE:COL message format. Not the schema (config.c). */
#include "bgfm/yamltree.h"

#include <stdarg.h>
#include <string.h>
#include <yaml.h>

#include "bgfm/config.h"

int yamltree_vfail(bgfm_err *e, const char *file, int line, int col, const char *key,
                    const char *near, const char *fmt, va_list ap) {
    char what[1200];
    vsnprintf(what, sizeof what, fmt, ap);
    char keytxt[400] = "", neartxt[200] = "";
    if (key) snprintf(keytxt, sizeof keytxt, " (key '%.380s')", key);
    if (near) snprintf(neartxt, sizeof neartxt, "; did you mean '%.150s'?", near);
    return bgfm_fail(e, BGFM_EUSAGE, "%.300s:%d:%d: %s%s%s", file, line, col, what, keytxt,
                     neartxt);
}

int yamltree_fail(bgfm_err *e, const char *file, int line, int col, const char *key,
                  const char *near, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = yamltree_vfail(e, file, line, col, key, near, fmt, ap);
    va_end(ap);
    return rc;
}



void ynode_free(ynode *n) {
    if (!n) return;
    for (int i = 0; i < n->nk; i++) ynode_free(n->kids[i]);
    free(n->kids);
    free(n->s);
    free(n);
}

static int ynode_add(ynode *parent, ynode *kid, bgfm_err *e) {
    if (parent->nk == parent->cap) {
        int cap = parent->cap ? 2 * parent->cap : 8;
        ynode **k = bgfm_malloc(e, (size_t)cap * sizeof *k, "YAML node list");
        if (!k) return BGFM_ENOMEM;
        if (parent->nk) memcpy(k, parent->kids, (size_t)parent->nk * sizeof *k);
        free(parent->kids);
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->nk++] = kid;
    return 0;
}

int ynode_is_null(const ynode *n) {
    if (n->kind != YN_SCALAR || n->quoted) return 0;
    return !strcmp(n->s, "") || !strcmp(n->s, "~") || !strcmp(n->s, "null") ||
           !strcmp(n->s, "Null") || !strcmp(n->s, "NULL");
}

/* Standard scalar tags are accepted (!!str makes a scalar a string as quotes do);
 * collections may carry only their own standard tag. */
static int tag_ok(const yaml_char_t *tag, int scalar, int *as_str) {
    static const char *const scalar_tags[] = {"tag:yaml.org,2002:str", "tag:yaml.org,2002:int",
                                              "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                                              "tag:yaml.org,2002:null"};
    if (!tag) return 1;
    const char *t = (const char *)tag;
    if (scalar) {
        for (int i = 0; i < 5; i++)
            if (!strcmp(t, scalar_tags[i])) {
                if (i == 0) *as_str = 1;
                return 1;
            }
        return 0;
    }
    return !strcmp(t, "tag:yaml.org,2002:map") || !strcmp(t, "tag:yaml.org,2002:seq");
}

/* Line and column (1-based) of a byte offset, for reader errors that carry no mark. */
static void offset_pos(const char *buf, size_t len, size_t off, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int syntax_fail(const char *file, const char *buf, size_t len, const yaml_parser_t *ps,
                       bgfm_err *e) {
    const char *prob = ps->problem ? ps->problem : "unknown problem";
    if (ps->error == YAML_MEMORY_ERROR)
        return bgfm_fail(e, BGFM_ENOMEM, "%s: out of memory while parsing YAML", file);
    if (ps->error == YAML_READER_ERROR) {
        int l, c;
        offset_pos(buf, len, ps->problem_offset, &l, &c);
        return yamltree_fail(e, file, l, c, NULL, NULL,
                        "YAML syntax error: %s (the file must be UTF-8 text)", prob);
    }
    int l = (int)ps->problem_mark.line + 1, c = (int)ps->problem_mark.column + 1;
    if (ps->context)
        return yamltree_fail(e, file, l, c, NULL, NULL, "YAML syntax error: %s (%s at line %d, column %d)",
                        prob, ps->context, (int)ps->context_mark.line + 1,
                        (int)ps->context_mark.column + 1);
    return yamltree_fail(e, file, l, c, NULL, NULL, "YAML syntax error: %s", prob);
}

typedef struct tree_state {
    const char *file;
    ynode *stack[CONFIG_MAX_DEPTH];
    int depth;
    int ndocs;
    ynode *root;
} tree_state;

/* Add one parser event to the tree, refusing what a pipeline file never needs:
 * anchors and aliases (no alias bombs), unusual tags, a second document, deep nesting. */
static int tree_event(tree_state *t, const yaml_event_t *ev, bgfm_err *e) {
    const char *f = t->file;
    int l = (int)ev->start_mark.line + 1, c = (int)ev->start_mark.column + 1;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    ynode_kind kind = YN_SCALAR;
    switch (ev->type) {
    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_STREAM_END_EVENT:
    case YAML_DOCUMENT_END_EVENT: return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (t->ndocs > 0)
            return yamltree_fail(e, f, l, c, NULL, NULL,
                            "a second YAML document: a pipeline file holds exactly one (remove "
                            "the '---' line and what follows it)");
        if (ev->data.document_start.tag_directives.start !=
            ev->data.document_start.tag_directives.end)
            return yamltree_fail(e, f, l, c, NULL, NULL, "%%TAG directives are not supported");
        t->ndocs++;
        return 0;
    case YAML_ALIAS_EVENT:
        return yamltree_fail(e, f, l, c, NULL, NULL,
                        "YAML alias '*%s' is not allowed: anchors and aliases are rejected "
                        "(they can expand a small file into a huge one); write the value out",
                        (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        kind = YN_SCALAR;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        kind = YN_SEQ;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        kind = YN_MAP;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        BGFM_ASSERT(t->depth > 0);
        t->depth--;
        return 0;
    }
    if (anchor)
        return yamltree_fail(e, f, l, c, NULL, NULL,
                        "YAML anchor '&%s' is not allowed: anchors and aliases are rejected "
                        "(they can expand a small file into a huge one); write the value out",
                        (const char *)anchor);
    int as_str = 0;
    if (!tag_ok(tag, kind == YN_SCALAR, &as_str))
        return yamltree_fail(e, f, l, c, NULL, NULL,
                        "YAML tag '%s' is not allowed (only the standard scalar tags !!str, !!int, "
                        "!!float, !!bool and !!null are)", (const char *)tag);
    if (kind != YN_SCALAR && t->depth >= CONFIG_MAX_DEPTH)
        return yamltree_fail(e, f, l, c, NULL, NULL, "YAML nesting deeper than %d levels",
                        CONFIG_MAX_DEPTH);
    ynode *n = bgfm_calloc(e, 1, sizeof *n, "YAML node");
    if (!n) return BGFM_ENOMEM;
    n->kind = kind;
    n->line = l;
    n->col = c;
    if (kind == YN_SCALAR) {
        size_t len = ev->data.scalar.length;
        if (memchr(ev->data.scalar.value, 0, len)) {
            free(n);
            return yamltree_fail(e, f, l, c, NULL, NULL, "a NUL character inside a value");
        }
        n->s = bgfm_malloc(e, len + 1, "YAML scalar");
        if (!n->s) {
            free(n);
            return BGFM_ENOMEM;
        }
        memcpy(n->s, ev->data.scalar.value, len);
        n->s[len] = '\0';
        n->quoted = as_str || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    }
    if (t->depth == 0) {
        BGFM_ASSERT(t->root == NULL);
        t->root = n;
    } else if (ynode_add(t->stack[t->depth - 1], n, e)) {
        ynode_free(n);
        return BGFM_ENOMEM;
    }
    if (kind != YN_SCALAR) t->stack[t->depth++] = n;
    return 0;
}

int yamltree_build(const char *file, const char *buf, size_t len, ynode **root, bgfm_err *e) {
    *root = NULL;
    yaml_parser_t ps;
    if (!yaml_parser_initialize(&ps))
        return bgfm_fail(e, BGFM_ENOMEM, "%s: cannot initialise the YAML parser", file);
    yaml_parser_set_input_string(&ps, (const unsigned char *)buf, len);
    tree_state t;
    memset(&t, 0, sizeof t);
    t.file = file;
    int rc = 0, done = 0;
    while (!done && !rc) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps, &ev)) {
            rc = syntax_fail(file, buf, len, &ps, e);
            break;
        }
        rc = tree_event(&t, &ev, e);
        if (ev.type == YAML_STREAM_END_EVENT) done = 1;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ps);
    if (rc) {
        ynode_free(t.root);
        return rc;
    }
    if (!t.root || ynode_is_null(t.root))
        rc = yamltree_fail(e, file, 1, 1, NULL, NULL,
                      "the pipeline file is empty (it needs name:, inputs:, atlases: and stages:)");
    else if (t.root->kind != YN_MAP)
        rc = yamltree_fail(e, file, t.root->line, t.root->col, NULL, NULL,
                      "the pipeline file must be a mapping of keys (name:, inputs:, atlases:, "
                      "stages:, ...)");
    if (rc) {
        ynode_free(t.root);
        return rc;
    }
    *root = t.root;
    return 0;
}

