/* test_model.c: the model trains: on block-structured synthetic graphs of two atlases
 * (one model, batches of one atlas at a time) the GMAE+GCL loss falls under AdamW;
 * a step is deterministic (same draws, bit-identical gradients). Gradient exactness is
 * tests/reference/model_torch.sh's job; layer backward passes are test_layers.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cblas.h>

#include "bgfm/model.h"
#include "bgfm/optim.h"
#include "bgfm/rng.h"
#include "test_part.h"

/* Graph g of N nodes: 4 communities sharing a latent signal; FC = Pearson, A = C > 0.3. */
static void make_graph(int N, int k, uint64_t g, float *fc, uint8_t *adj, float *rw) {
    enum { T = 60 };
    static double ts[64][T], lat[4][T];
    rng_stream r;
    rng_init(&r, 5, RNG_USER, g, (uint64_t)N, 0);
    for (int c = 0; c < 4; c++)
        for (int t = 0; t < T; t++) lat[c][t] = rng_normal(&r);
    for (int i = 0; i < N; i++) {
        double m = 0, s = 0;
        for (int t = 0; t < T; t++) m += ts[i][t] = 0.9 * lat[i * 4 / N][t] + rng_normal(&r);
        m /= T;
        for (int t = 0; t < T; t++) {
            ts[i][t] -= m;
            s += ts[i][t] * ts[i][t];
        }
        for (int t = 0; t < T; t++) ts[i][t] /= sqrt(s);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double c = 0;
            for (int t = 0; t < T; t++) c += ts[i][t] * ts[j][t];
            fc[i * N + j] = i == j ? 1.0f : (float)c;
            adj[i * N + j] = i != j && c > 0.3;
        }
    for (int i = 0; i < N; i++)
        for (int s = 0; s < k; s++) rw[i * k + s] = 0.1f * (float)s; /* constant: structure via A */
}

static void setup_readout(model *m, model_ws *ws, int B, int readout) {
    model_cfg c = {0};
    c.H = 32, c.nh = 4, c.F = 64, c.k = 3, c.L = 2, c.Ld = 1, c.P = 16, c.N_max = 24;
    c.readout = readout, c.rdim = 4, c.norm = readout == MODEL_READOUT_REGION;
    c.n_atlases = 2;
    strcpy(c.atlas[0], "a24"), strcpy(c.atlas[1], "b16");
    c.atlas_nodes[0] = 24, c.atlas_nodes[1] = 16;
    bgfm_err e = {0};
    assert_int_equal(model_init(m, &c, &e), 0);
    model_init_params(m, 42);
    assert_int_equal(model_ws_init(ws, m, B, &e), 0);
}

/* the pipeline's default: the region readout */
static void setup(model *m, model_ws *ws, int B) { setup_readout(m, ws, B, MODEL_READOUT_REGION); }

/* 160 AdamW steps over both atlases: the reconstruction loss falls by 20 %. Under valgrind
 * (BGFM_TEST_MEMCHECK, see test_threads_bit_identical) 24 steps run the same code paths
 * (both atlases, clipping, the warm-up and the decay of the schedule) and only finiteness
 * is checked: make test and the ASan suite check the fall. */
static void test_loss_falls(void **st) {
    (void)st;
    enum { B = 8, G = 32 };
    const int steps = test_memcheck() ? 24 : 160;
    model m;
    model_ws ws;
    optim o;
    bgfm_err e = {0};
    setup(&m, &ws, B);
    assert_int_equal(optim_init(&o, &m, &e), 0);
    static float fc[2][G][24 * 24], rw[2][G][24 * 3];
    static uint8_t adj[2][G][24 * 24];
    int Ns[2] = {24, 16};
    for (int a = 0; a < 2; a++)
        for (int g = 0; g < G; g++) make_graph(Ns[a], 3, (uint64_t)(a * G + g), fc[a][g], adj[a][g], rw[a][g]);
    optim_cfg oc = {3e-3, 0.9, 0.999, 1e-8, 1e-4, 5.0, 5, 160};
    model_hp hp = {.mode = MODEL_GMAE_GCL, .lambda_rec = 1.0, .lambda_adj = 0.1, .lambda_cl = 0.01,
                   .tau_cl = 0.2, .mask_ratio = 0.4, .p_node = 0.1, .p_edge = 0.1, .p_drop = 0.1f,
                   .mask_columns = 1, .seed = 7, .epoch = 0, .step = 0};
    double first = 0, last = 0;
    static float bfc[B * 24 * 24], brw[B * 24 * 3];
    static uint8_t badj[B * 24 * 24];
    for (int s = 0; s < steps; s++) {
        int a = s % 2, b0 = (s / 2 * B) % G, N = Ns[a];
        int64_t gi[B];
        for (int i = 0; i < B; i++) {
            gi[i] = a * G + b0 + i;
            memcpy(bfc + i * N * N, fc[a][b0 + i], sizeof(float) * (size_t)(N * N));
            memcpy(badj + i * N * N, adj[a][b0 + i], (size_t)(N * N));
            memcpy(brw + i * N * 3, rw[a][b0 + i], sizeof(float) * (size_t)(N * 3));
        }
        model_batch bt = {a, B, N, bfc, badj, brw, gi, NULL, NULL, NULL};
        hp.epoch = s / 8;
        hp.step = s;
        model_losses ls;
        model_step(&m, &ws, &bt, &hp, &ls);
        assert_true(isfinite(ls.total));
        optim_clip(m.g, m.n_params, oc.clip);
        optim_adamw(&o, m.w, m.g, optim_lr(&oc, s), &oc);
        if (s < 20) first += ls.rec / 20;
        if (s >= steps - 20) last += ls.rec / 20;
    }
    print_message("reconstruction loss: first 20 steps %.4f, last 20 steps %.4f\n", first, last);
    if (steps == 160)
        assert_true(last < 0.8 * first);
    else
        print_message("under memcheck: %d steps, the fall is checked by make test\n", steps);
    optim_free(&o);
    model_ws_free(&ws);
    model_free(&m);
}

static void test_deterministic_step(void **st) {
    (void)st;
    enum { B = 3 };
    model m;
    model_ws ws;
    setup(&m, &ws, B);
    static float fc[B * 256], rw[B * 48];
    static uint8_t adj[B * 256];
    for (int i = 0; i < B; i++) make_graph(16, 3, (uint64_t)i, fc + i * 256, adj + i * 256, rw + i * 48);
    int64_t gi[B] = {3, 9, 4};
    model_batch bt = {1, B, 16, fc, adj, rw, gi, NULL, NULL, NULL};
    model_hp hp = {.mode = MODEL_GMAE_GCL, .lambda_rec = 1.0, .lambda_adj = 0.1, .lambda_cl = 0.01,
                   .tau_cl = 0.2, .mask_ratio = 0.4, .p_node = 0.1, .p_edge = 0.1, .p_drop = 0.1f,
                   .mask_columns = 1, .seed = 7, .epoch = 2, .step = 5};
    model_losses l1, l2;
    model_step(&m, &ws, &bt, &hp, &l1);
    float *g1 = malloc(sizeof(float) * (size_t)m.n_params);
    memcpy(g1, m.g, sizeof(float) * (size_t)m.n_params);
    model_step(&m, &ws, &bt, &hp, &l2);
    assert_true(l1.total == l2.total);
    assert_memory_equal(g1, m.g, sizeof(float) * (size_t)m.n_params);
    /* the other atlas's node embeddings get no gradient */
    const model_tensor *t = model_find(&m, "embed/node/a24");
    assert_non_null(t);
    for (int64_t i = 0; i < t->rows * t->cols; i++) assert_true(m.g[t->off + i] == 0.0f);
    free(g1);
    model_ws_free(&ws);
    model_free(&m);
}

/* The loops between the GEMMs run on as many threads as OpenBLAS (par.h): the step's
 * losses and gradients must not depend on that count. Odd batch (uneven split; B*T
 * rows enough for layer_gemm to cut the big products), every mode and decoder input,
 * dropout on, both atlases, both readouts. Under valgrind (tests/valgrind.sh sets
 * BGFM_TEST_MEMCHECK; a step there costs 300 times its native time) the memory check needs
 * every code path, not every combination: 1 and 3 threads, and the two cells that pair the
 * atlases with the readouts (every mode and decoder input in each). */
static void test_threads_bit_identical(void **st) {
    (void)st;
    enum { B = 13 };
    static float fc[B * 576], rw[B * 72];
    static uint8_t adj[B * 576];
    /* every mode; then decoders that read the graph embedding (model.md section 3) */
    const int modes[5] = {MODEL_GMAE, MODEL_GCL, MODEL_GMAE_GCL, MODEL_GMAE, MODEL_GMAE_GCL};
    const int decs[5] = {MODEL_DEC_NODES, MODEL_DEC_NODES, MODEL_DEC_NODES, MODEL_DEC_GRAPH,
                         MODEL_DEC_NODES_GRAPH};
    int nt0 = openblas_get_num_threads();
    const int memcheck = test_memcheck();
    for (int cell = 0; cell < 4; cell += memcheck ? 3 : 1) {
        int atlas = cell & 1, readout = cell >> 1;
        int N = atlas ? 16 : 24;
        for (int i = 0; i < B; i++)
            make_graph(N, 3, (uint64_t)(i + 7), fc + i * N * N, adj + i * N * N, rw + i * N * 3);
        int64_t gi[B] = {3, 9, 4, 0, 11, 12, 1, 2, 5, 6, 7, 8, 10};
        model_batch bt = {atlas, B, N, fc, adj, rw, gi, NULL, NULL, NULL};
        for (int mi = 0; mi < 5; mi++) {
            model_hp hp = {.mode = modes[mi], .lambda_rec = 1.0, .lambda_adj = 0.1, .lambda_cl = 0.01,
                           .tau_cl = 0.2, .mask_ratio = 0.4, .p_node = 0.1, .p_edge = 0.1, .p_drop = 0.1f,
                           .mask_columns = 1, .seed = 7, .epoch = 2, .step = 5,
                           .dec_input = decs[mi]};
            float *g1 = NULL;
            model_losses l1 = {0};
            for (int th = 1; th <= 3; th += memcheck ? 2 : 1) {
                openblas_set_num_threads(th);
                model m;
                model_ws ws;
                setup_readout(&m, &ws, B, readout);
                assert_int_equal(ws.nthr, openblas_get_num_threads());
                model_losses l;
                model_step(&m, &ws, &bt, &hp, &l);
                if (th == 1) {
                    g1 = malloc(sizeof(float) * (size_t)m.n_params);
                    assert_non_null(g1);
                    memcpy(g1, m.g, sizeof(float) * (size_t)m.n_params);
                    l1 = l;
                } else {
                    assert_true(l.total == l1.total && l.rec == l1.rec && l.adj == l1.adj &&
                                l.cl == l1.cl);
                    assert_memory_equal(g1, m.g, sizeof(float) * (size_t)m.n_params);
                }
                model_ws_free(&ws);
                model_free(&m);
            }
            free(g1);
        }
    }
    openblas_set_num_threads(nt0);
}

static void test_optim(void **st) {
    (void)st;
    optim_cfg c = {1e-2, 0.9, 0.999, 1e-8, 0.1, 1.0, 10, 110};
    assert_true(fabs(optim_lr(&c, 0) - 1e-3) < 1e-12);
    assert_true(fabs(optim_lr(&c, 9) - 1e-2) < 1e-12);
    assert_true(fabs(optim_lr(&c, 60) - 5e-3) < 1e-12);
    assert_true(fabs(optim_lr(&c, 110)) < 1e-12);
    float g[2] = {3.0f, 4.0f};
    assert_true(fabs(optim_clip(g, 2, 1.0) - 5.0) < 1e-9);
    assert_true(fabsf(g[0] - 0.6f) < 1e-5f && fabsf(g[1] - 0.8f) < 1e-5f);
    assert_true(fabs(optim_mask_ratio(0.2, 0.6, 2, 5) - 0.4) < 1e-12);
    /* AdamW step 1: w - lr*wd*w (decayed only) - lr * g/|g| (bias-corrected) */
    optim o = {0};
    float m1[2] = {0}, v1[2] = {0}, w[2] = {1.0f, 1.0f}, gg[2] = {0.5f, -2.0f};
    uint8_t dec[2] = {1, 0};
    o.n = 2, o.m = m1, o.v = v1, o.decay = dec;
    optim_adamw(&o, w, gg, 0.1, &c);
    assert_true(fabsf(w[0] - (1.0f - 0.01f - 0.1f)) < 1e-5f);
    assert_true(fabsf(w[1] - (1.0f + 0.1f)) < 1e-5f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_falls),
        cmocka_unit_test(test_deterministic_step),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_optim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
