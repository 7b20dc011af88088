/* ckpt.c: checkpoint files (ckpt.h): tensors by name, architecture attributes,
 * optimiser moments, resume state, atomic rename. Not the decision of when to save. */
#include "bgfm/ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bgfm/h5io.h"


int ckpt_write_tensors(hid_t f, const model *m, const char *group, const float *buf, bgfm_err *e) {
    char path[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        hsize_t dims[2] = {(hsize_t)t->rows, (hsize_t)t->cols};
        snprintf(path, sizeof path, "%s/%s", group, t->name);
        int rc = h5io_write_small(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->cols ? 2 : 1, dims,
                                  buf + t->off, 0, e);
        if (rc) return rc;
    }
    return 0;
}

int ckpt_read_tensors(hid_t f, const model *m, const char *group, float *buf, const char *file,
                      bgfm_err *e) {
    char path[256];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        snprintf(path, sizeof path, "%s/%s", group, t->name);
        int rank = 0;
        hsize_t dims[8] = {0};
        if (!h5io_exists(f, path))
            return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s is missing; is it a bgfm checkpoint?",
                             file, path);
        int rc = h5io_dims(f, path, &rank, dims, e);
        if (rc) return rc;
        if (rank != (t->cols ? 2 : 1) || (int64_t)dims[0] != t->rows ||
            (t->cols && (int64_t)dims[1] != t->cols))
            return bgfm_fail(e, BGFM_EDATA, "%s: tensor %s has the wrong shape for the model "
                             "described by its attributes", file, path);
        rc = h5io_read_all(f, path, H5T_NATIVE_FLOAT, buf + t->off, e);
        if (rc) return rc;
    }
    return 0;
}

int ckpt_write_arch(hid_t f, const char *group, const model *m, bgfm_err *e) {
    const model_cfg *c = &m->cfg;
    char names[MODEL_MAX_ATLASES * 65] = "";
    int64_t nodes[MODEL_MAX_ATLASES];
    for (int a = 0; a < c->n_atlases; a++) {
        if (a) strcat(names, ",");
        strcat(names, c->atlas[a]);
        nodes[a] = c->atlas_nodes[a];
    }
    int rc = h5io_attr_set_str(f, group, "atlases", names, e);
    if (!rc) {
        hsize_t d[1] = {(hsize_t)c->n_atlases};
        hid_t sp = H5Screate_simple(1, d, NULL);
        hid_t a = H5Acreate_by_name(f, group, "atlas_nodes", H5T_STD_I64LE, sp, H5P_DEFAULT,
                                    H5P_DEFAULT, H5P_DEFAULT);
        if (sp < 0 || a < 0 || H5Awrite(a, H5T_NATIVE_INT64, nodes) < 0)
            rc = bgfm_fail(e, BGFM_EIO, "writing attribute atlas_nodes of %s", group);
        if (a >= 0) H5Aclose(a);
        if (sp >= 0) H5Sclose(sp);
    }
    const char *k[] = {"H", "nh", "F", "k", "L", "Ld", "P", "N_max", "D_in"};
    int64_t v[] = {c->H, c->nh, c->F, c->k, c->L, c->Ld, c->P, c->N_max, m->D_in};
    for (int i = 0; i < 9 && !rc; i++) rc = h5io_attr_set_i64(f, group, k[i], &v[i], 1, e);
    return rc;
}

int ckpt_read_arch(hid_t f, const char *group, model_cfg *c, const char *file, bgfm_err *e) {
    memset(c, 0, sizeof *c);
    char *names = NULL;
    int rc = h5io_attr_get_str(f, group, "atlases", &names, e);
    if (rc) return rc;
    int n = 0;
    for (char *s = names, *tok; (tok = strsep(&s, ",")) != NULL;) {
        if (n == MODEL_MAX_ATLASES || strlen(tok) >= sizeof c->atlas[0]) {
            free(names);
            return bgfm_fail(e, BGFM_EDATA, "%s: bad atlases attribute on %s", file, group);
        }
        snprintf(c->atlas[n++], sizeof c->atlas[0], "%s", tok);
    }
    free(names);
    c->n_atlases = n;
    int64_t nodes[MODEL_MAX_ATLASES];
    int cnt = MODEL_MAX_ATLASES;
    rc = h5io_attr_get_i64(f, group, "atlas_nodes", nodes, &cnt, e);
    if (rc) return rc;
    if (cnt != n) return bgfm_fail(e, BGFM_EDATA, "%s: atlas_nodes and atlases differ in length", file);
    for (int a = 0; a < n; a++) c->atlas_nodes[a] = (int)nodes[a];
    const char *k[] = {"H", "nh", "F", "k", "L", "Ld", "P", "N_max"};
    int *dst[] = {&c->H, &c->nh, &c->F, &c->k, &c->L, &c->Ld, &c->P, &c->N_max};
    for (int i = 0; i < 8; i++) {
        int64_t v = 0;
        int one = 1;
        rc = h5io_attr_get_i64(f, group, k[i], &v, &one, e);
        if (rc) return rc;
        *dst[i] = (int)v;
    }
    return model_cfg_check(c, file, e);
}

int ckpt_save(const char *path, const model *m, const optim *o, const ckpt_state *st,
              bgfm_err *e) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return bgfm_fail(e, BGFM_EUSAGE, "checkpoint path too long: %s", path);
    hid_t f = h5io_create(MPI_COMM_SELF, tmp, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    int rc = h5io_attr_set_str(f, NULL, "format", "bgfm-checkpoint", e);
    int64_t ver = CKPT_FORMAT_VERSION;
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "format_version", &ver, 1, e);
    if (!rc) rc = ckpt_write_tensors(f, m, "/model", m->w, e);
    if (!rc) rc = ckpt_write_arch(f, "/model", m, e);
    if (!rc && o) rc = ckpt_write_tensors(f, m, "/optim/m", o->m, e);
    if (!rc && o) rc = ckpt_write_tensors(f, m, "/optim/v", o->v, e);
    if (!rc && o) rc = h5io_attr_set_i64(f, "/optim", "t", &o->t, 1, e);
    if (!rc && st) {
        hsize_t none[1] = {0};
        int64_t v[4] = {st->step, st->epoch, st->pos, (int64_t)st->seed};
        const char *k[4] = {"/state/step", "/state/epoch", "/state/position", "/state/seed"};
        for (int i = 0; i < 4 && !rc; i++)
            rc = h5io_write_small(f, k[i], H5T_STD_I64LE, H5T_NATIVE_INT64, 0, none, &v[i], 0, e);
        if (!rc)
            rc = h5io_attr_set_str(f, "/state", "generator",
                                   "philox4x32-10 counter-based; draws keyed by (seed, purpose, "
                                   "epoch or step, global graph index): state = (seed, step, "
                                   "epoch, position)", e);
        if (!rc) rc = h5io_attr_set_str(f, "/state", "config", st->config ? st->config : "", e);
    }
    int64_t one = 1;
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "complete", &one, 1, e); /* completion mark, last */
    int rc2 = h5io_close(&f, tmp, e);
    if (!rc) rc = rc2;
    if (!rc && rename(tmp, path) != 0)
        rc = bgfm_fail(e, BGFM_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) remove(tmp);
    return rc;
}

int ckpt_is_complete(const char *path) {
    bgfm_err e = {0};
    hid_t f = h5io_open(MPI_COMM_SELF, path, &e);
    if (f < 0) return 0;
    int64_t v = 0;
    int one = 1;
    int ok = h5io_attr_exists(f, NULL, "complete") && !h5io_attr_get_i64(f, NULL, "complete", &v, &one, &e) && v == 1;
    h5io_close(&f, path, &e);
    return ok;
}

int ckpt_load(const char *path, model *m, optim *o, ckpt_state *st, bgfm_err *e) {
    hid_t f = h5io_open(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    model_cfg c;
    int rc = 0;
    int64_t done = 0;
    int one = 1;
    if (!h5io_attr_exists(f, NULL, "complete") || h5io_attr_get_i64(f, NULL, "complete", &done, &one, e) || done != 1)
        rc = bgfm_fail(e, BGFM_EDATA, "%s is not a complete checkpoint (no completion mark); "
                       "use another one or start from scratch", path);
    if (!rc) rc = ckpt_read_arch(f, "/model", &c, path, e);
    if (!rc) rc = model_init(m, &c, e);
    if (!rc) rc = ckpt_read_tensors(f, m, "/model", m->w, path, e);
    if (!rc && o) {
        rc = optim_init(o, m, e);
        if (!rc && !h5io_exists(f, "/optim/m"))
            rc = bgfm_fail(e, BGFM_EDATA, "%s has no optimiser state (/optim)", path);
        if (!rc) rc = ckpt_read_tensors(f, m, "/optim/m", o->m, path, e);
        if (!rc) rc = ckpt_read_tensors(f, m, "/optim/v", o->v, path, e);
        one = 1;
        if (!rc) rc = h5io_attr_get_i64(f, "/optim", "t", &o->t, &one, e);
    }
    if (!rc && st) {
        memset(st, 0, sizeof *st);
        int64_t v[4] = {0};
        const char *k[4] = {"/state/step", "/state/epoch", "/state/position", "/state/seed"};
        for (int i = 0; i < 4 && !rc; i++) rc = h5io_read_all(f, k[i], H5T_NATIVE_INT64, &v[i], e);
        st->step = v[0];
        st->epoch = v[1];
        st->pos = v[2];
        st->seed = (uint64_t)v[3];
        if (!rc) rc = h5io_attr_get_str(f, "/state", "config", &st->config, e);
    }
    h5io_close(&f, path, e);
    return rc;
}
