/* fuzz_h5edit.h: a structure-aware mutator for HDF5 files, shared by fuzz_graphs and
 * fuzz_ckpt. The fuzz input is a list of edits applied, through the HDF5 API, to fresh
 * copies of VALID template files: replace a dataset (new type, rank, dims, contents),
 * overwrite a dataset's values, delete an object, set an attribute (new type/shape/value,
 * on any object, any name seen in the templates), delete an attribute. HDF5 itself only
 * ever reads well-formed files, so findings are in our reading layer, not in libhdf5.
 * Not a byte-level mutator: corrupt HDF5 metadata is out of scope (docs/reliability.md). */
#ifndef BGFM_FUZZ_H5EDIT_H
#define BGFM_FUZZ_H5EDIT_H

#include <hdf5.h>

#include "fuzz_util.h"

#define H5E_MAX_FILES 4
#define H5E_MAX_OBJS 256
#define H5E_MAX_NAMES 64
#define H5E_MAX_EDITS 8
#define H5E_MAX_DIM 9 /* dims drawn from 0..8 */

typedef struct h5e_obj {
    int file;
    int is_dset;
    char path[200];
} h5e_obj;

typedef struct h5e_set {
    int n_files;
    char tmpl[H5E_MAX_FILES][300]; /* the valid templates */
    char work[H5E_MAX_FILES][300]; /* the copies the target reads */
    int n_objs;
    h5e_obj obj[H5E_MAX_OBJS];
    int n_names;
    char names[H5E_MAX_NAMES][64]; /* every attribute name of the templates */
} h5e_set;

static inline herr_t h5e_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
    (void)loc;
    (void)info;
    h5e_set *s = op;
    for (int i = 0; i < s->n_names; i++)
        if (!strcmp(s->names[i], name)) return 0;
    if (s->n_names < H5E_MAX_NAMES && strlen(name) < sizeof s->names[0])
        snprintf(s->names[s->n_names++], sizeof s->names[0], "%s", name);
    return 0;
}

typedef struct h5e_visit {
    h5e_set *s;
    int file;
} h5e_visit;

static inline herr_t h5e_obj_cb(hid_t o, const char *name, const H5O_info_t *info, void *op) {
    h5e_visit *v = op;
    h5e_set *s = v->s;
    if (s->n_objs >= H5E_MAX_OBJS) return 0;
    h5e_obj *ob = &s->obj[s->n_objs++];
    ob->file = v->file;
    ob->is_dset = info->type == H5O_TYPE_DATASET;
    if (!strcmp(name, ".")) snprintf(ob->path, sizeof ob->path, "/");
    else snprintf(ob->path, sizeof ob->path, "/%s", name);
    hsize_t idx = 0;
    H5Aiterate_by_name(o, name, H5_INDEX_NAME, H5_ITER_INC, &idx, h5e_attr_cb, s, H5P_DEFAULT);
    return 0;
}

/* Register template file `tmpl`; the target reads work copy `work`. */
static inline void h5e_add_file(h5e_set *s, const char *tmpl, const char *work) {
    int k = s->n_files++;
    if (k >= H5E_MAX_FILES) abort();
    snprintf(s->tmpl[k], sizeof s->tmpl[k], "%s", tmpl);
    snprintf(s->work[k], sizeof s->work[k], "%s", work);
    hid_t f = H5Fopen(tmpl, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) abort();
    h5e_visit v = {s, k};
    if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, h5e_obj_cb, &v) < 0) abort();
    H5Fclose(f);
}

/* Types an edit may choose. */
static inline hid_t h5e_type(int t, size_t *size) {
    hid_t base;
    switch (t % 9) {
    case 0: base = H5T_STD_I8LE; break;
    case 1: base = H5T_STD_U8LE; break;
    case 2: base = H5T_STD_I32LE; break;
    case 3: base = H5T_STD_I64LE; break;
    case 4: base = H5T_IEEE_F32LE; break;
    case 5: base = H5T_IEEE_F64LE; break;
    case 6: base = H5T_STD_U64LE; break;
    case 7: { /* fixed-length string, 1..16 bytes */
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, (size_t)(1 + (t / 9) % 16));
        *size = H5Tget_size(st);
        return st;
    }
    default: { /* variable-length string: our readers must reject it, not crash */
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        *size = sizeof(char *);
        return st;
    }
    }
    *size = H5Tget_size(base);
    return H5Tcopy(base);
}

/* Buffer of n elements of `type` from the input (vlen strings: short fixed texts). */
static inline void *h5e_fill(fz_in *in, hid_t type, size_t size, hsize_t n, char (*vl)[8]) {
    size_t bytes = (size_t)n * size;
    uint8_t *buf = calloc(bytes ? bytes : 1, 1);
    if (!buf) abort();
    if (H5Tis_variable_str(type) > 0) {
        for (hsize_t i = 0; i < n && i < 64; i++) {
            fz_bytes(in, vl[i], 7);
            vl[i][7] = 0;
            char *ptr = vl[i];
            memcpy(buf + i * sizeof(char *), &ptr, sizeof ptr);
        }
    } else {
        fz_bytes(in, buf, bytes);
    }
    return buf;
}

static inline void h5e_parents(hid_t f, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(f, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0) H5Gclose(g);
        }
        *p = '/';
    }
}

/* Apply one edit to the open files. */
static inline void h5e_edit(h5e_set *s, hid_t *f, fz_in *in) {
    int op = fz_u8(in) % 5;
    const h5e_obj *ob = &s->obj[fz_u8(in) % s->n_objs];
    hid_t file = f[ob->file];
    char vl[64][8];
    switch (op) {
    case 0: { /* replace: new type, rank 0..3, dims 0..8 (the path may be a group) */
        size_t size = 0;
        hid_t t = h5e_type(fz_u8(in), &size);
        int rank = fz_u8(in) % 4;
        hsize_t dims[3] = {1, 1, 1}, n = 1;
        for (int i = 0; i < rank; i++) {
            dims[i] = fz_u8(in) % H5E_MAX_DIM;
            n *= dims[i];
        }
        if (H5Tis_variable_str(t) > 0 && n > 64) n = 0, dims[0] = 0;
        if (strcmp(ob->path, "/") && H5Lexists(file, ob->path, H5P_DEFAULT) > 0)
            H5Ldelete(file, ob->path, H5P_DEFAULT);
        h5e_parents(file, ob->path);
        hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
        hid_t d = H5Dcreate2(file, ob->path, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d >= 0) {
            void *buf = h5e_fill(in, t, size, n, vl);
            if (n) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            free(buf);
            H5Dclose(d);
        }
        H5Sclose(sp);
        H5Tclose(t);
        break;
    }
    case 1: { /* overwrite the values of an existing dataset, keeping type and shape */
        if (!ob->is_dset || H5Lexists(file, ob->path, H5P_DEFAULT) <= 0) break;
        hid_t d = H5Dopen2(file, ob->path, H5P_DEFAULT);
        if (d < 0) break;
        hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        size_t size = H5Tget_size(t);
        if (n > 0 && n < (1 << 16) && H5Tis_variable_str(t) <= 0) {
            uint8_t *buf = calloc((size_t)n, size);
            if (!buf) abort();
            H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            size_t off = ((size_t)fz_u8(in) * size) % ((size_t)n * size);
            size_t len = 1 + fz_u8(in) % 16;
            if (len > (size_t)n * size - off) len = (size_t)n * size - off;
            fz_bytes(in, buf + off, len);
            H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            free(buf);
        }
        H5Tclose(t);
        H5Sclose(sp);
        H5Dclose(d);
        break;
    }
    case 2: /* delete the object */
        if (strcmp(ob->path, "/") && H5Lexists(file, ob->path, H5P_DEFAULT) > 0)
            H5Ldelete(file, ob->path, H5P_DEFAULT);
        break;
    case 3: { /* set an attribute: any known name, new type, scalar or 1-D 0..8 */
        if (!s->n_names) break;
        const char *name = s->names[fz_u8(in) % s->n_names];
        size_t size = 0;
        hid_t t = h5e_type(fz_u8(in), &size);
        int shape = fz_u8(in);
        hsize_t dim = (hsize_t)(shape / 2) % H5E_MAX_DIM, n = (shape & 1) ? dim : 1;
        if (strcmp(ob->path, "/") && H5Lexists(file, ob->path, H5P_DEFAULT) <= 0) {
            H5Tclose(t);
            break;
        }
        if (H5Aexists_by_name(file, ob->path, name, H5P_DEFAULT) > 0)
            H5Adelete_by_name(file, ob->path, name, H5P_DEFAULT);
        hid_t sp = (shape & 1) ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate_by_name(file, ob->path, name, t, sp, H5P_DEFAULT, H5P_DEFAULT,
                                    H5P_DEFAULT);
        if (a >= 0) {
            void *buf = h5e_fill(in, t, size, n, vl);
            if (n) H5Awrite(a, t, buf);
            free(buf);
            H5Aclose(a);
        }
        H5Sclose(sp);
        H5Tclose(t);
        break;
    }
    default: { /* delete an attribute */
        if (!s->n_names) break;
        const char *name = s->names[fz_u8(in) % s->n_names];
        if ((!strcmp(ob->path, "/") || H5Lexists(file, ob->path, H5P_DEFAULT) > 0) &&
            H5Aexists_by_name(file, ob->path, name, H5P_DEFAULT) > 0)
            H5Adelete_by_name(file, ob->path, name, H5P_DEFAULT);
        break;
    }
    }
}

/* Fresh copies of the templates with the input's edits applied. */
static inline void h5e_apply(h5e_set *s, const uint8_t *data, size_t size) {
    hid_t f[H5E_MAX_FILES];
    for (int i = 0; i < s->n_files; i++) {
        fz_copy(s->tmpl[i], s->work[i]);
        f[i] = -1;
    }
    fz_in in = {data, size};
    if (in.n > 0)
        for (int i = 0; i < s->n_files; i++) {
            f[i] = H5Fopen(s->work[i], H5F_ACC_RDWR, H5P_DEFAULT);
            if (f[i] < 0) abort();
        }
    for (int k = 0; k < H5E_MAX_EDITS && in.n > 0; k++) h5e_edit(s, f, &in);
    for (int i = 0; i < s->n_files; i++)
        if (f[i] >= 0) H5Fclose(f[i]);
}

#endif
