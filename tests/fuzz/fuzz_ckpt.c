/* fuzz_ckpt.c: libFuzzer target for the checkpoint loader (stages/pretrain/ckpt.c):
 * ckpt_is_complete, ckpt_load with optimiser and state, ckpt_load of the model alone
 * (the probe's and init_path's call), and the streamed read of bgfm export
 * (ckpt_stream_*), which must deliver every float once and, when it accepts the file,
 * the same floats as ckpt_load. The input is a list of structure-aware
 * edits (fuzz_h5edit.h) applied to a valid checkpoint of a tiny model written at
 * start-up with ckpt_save. Not a fuzzer of libhdf5's file parser and not of saving. */
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "fuzz_h5edit.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static h5e_set set;
static char ckpt_path[300];

static void make_template(void) {
    model m;
    optim o;
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.H = 4, c.nh = 2, c.F = 4, c.k = 2, c.L = 1, c.Ld = 1, c.P = 2, c.N_max = 4;
    c.n_atlases = 2;
    snprintf(c.atlas[0], sizeof c.atlas[0], "a");
    snprintf(c.atlas[1], sizeof c.atlas[1], "b");
    c.atlas_nodes[0] = 3;
    c.atlas_nodes[1] = 4;
    bgfm_err e;
    bgfm_err_clear(&e);
    if (model_init(&m, &c, &e) || optim_init(&o, &m, &e)) goto fail;
    model_init_params(&m, 5);
    for (int64_t i = 0; i < m.n_params; i++) {
        o.m[i] = 0.01f * (float)i;
        o.v[i] = 0.001f * (float)i;
    }
    o.t = 3;
    ckpt_state st = {.step = 3, .epoch = 1, .pos = 2, .seed = 99, .config = (char *)"name: fuzz\n"};
    char tmpl[300];
    fz_path(tmpl, sizeof tmpl, "tmpl.h5");
    fz_path(ckpt_path, sizeof ckpt_path, "ckpt.h5");
    if (ckpt_save(tmpl, &m, &o, &st, &e)) goto fail;
    optim_free(&o);
    model_free(&m);
    h5e_add_file(&set, tmpl, ckpt_path);
    return;
fail:
    fprintf(stderr, "fuzz_ckpt: cannot write the template checkpoint: %s\n", e.msg);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) abort();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    make_template();
    return 0;
}

/* ckpt_piece_fn: pieces in range, each float once, into a copy of the parameters. */
typedef struct got {
    float *w;
    unsigned char *seen;
} got;

static int take(void *arg, const model_tensor *t, int64_t first, int64_t n, const float *x,
                bgfm_err *e) {
    (void)e;
    got *g = arg;
    if (first < 0 || n <= 0 || first + n > t->rows * (t->cols ? t->cols : 1)) abort();
    for (int64_t i = 0; i < n; i++)
        if (g->seen[t->off + first + i]++) abort();
    memcpy(g->w + t->off + first, x, (size_t)n * sizeof *x);
    return 0;
}

/* The streamed read; 0 and the floats in *w (owned) when it accepts the file. */
static int stream(model *m, float **w) {
    ckpt_stream s = {.f = -1, .fd = -1};
    ckpt_state st;
    memset(&st, 0, sizeof st);
    bgfm_err e;
    bgfm_err_clear(&e);
    got g = {NULL, NULL};
    int rc = ckpt_stream_open(&s, ckpt_path, m, &st, &e);
    if (!rc) {
        g.w = calloc((size_t)m->n_params, sizeof *g.w);
        g.seen = calloc((size_t)m->n_params, 1);
        if (!g.w || !g.seen) abort();
        rc = ckpt_stream_read(&s, m, take, &g, &e);
        for (int64_t i = 0; !rc && i < m->n_params; i++)
            if (g.seen[i] != 1) abort();
    }
    int crc = ckpt_stream_close(&s, &e);
    if (!rc) rc = crc;
    if (rc && (!e.msg[0] || e.code == 0)) abort();
    free(st.config);
    free(g.seen);
    if (rc) free(g.w);
    *w = rc ? NULL : g.w;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    h5e_apply(&set, data, size);
    (void)ckpt_is_complete(ckpt_path);
    model m;
    optim o;
    ckpt_state st;
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    memset(&st, 0, sizeof st);
    bgfm_err e;
    bgfm_err_clear(&e);
    int rc = ckpt_load(ckpt_path, &m, &o, &st, &e);
    if (rc && (!e.msg[0] || e.code == 0)) abort();
    if (!rc && (m.n_params < 1 || !m.w || !o.m || !st.config)) abort();
    free(st.config);
    optim_free(&o);
    model_free(&m);
    memset(&m, 0, sizeof m);
    bgfm_err_clear(&e);
    rc = ckpt_load(ckpt_path, &m, NULL, NULL, &e);
    if (rc && (!e.msg[0] || e.code == 0)) abort();
    model ms;
    float *w = NULL;
    if (stream(&ms, &w) == 0) { /* accepted: ckpt_load accepts it too, with the same floats */
        if (rc || ms.n_params != m.n_params ||
            memcmp(w, m.w, (size_t)m.n_params * sizeof *w) != 0)
            abort();
    }
    free(w);
    model_free(&ms);
    model_free(&m);
    return 0;
}
