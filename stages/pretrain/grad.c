/* grad.c: `bgfm grad` (model.md section 7): reads graphs through graphs.h, builds or
 * loads a model, runs one deterministic step and writes the dump (grad.h).
 * Not a trainer and not a checker: tests/reference/model_torch.py checks the dump. */
#include "bgfm/grad.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/ckpt.h"
#include "bgfm/cli.h"
#include "bgfm/graphs.h"
#include "bgfm/h5io.h"
#include "bgfm/head.h"
#include "bgfm/norm.h"
#include "bgfm/rng.h"

static int put(hid_t f, const char *path, hid_t ft, hid_t mt, int rank, const hsize_t *d,
               const void *buf, bgfm_err *e) {
    return h5io_write_small(f, path, ft, mt, rank, d, buf, 0, e);
}

int grad_dump_write(const char *path, const model *m, const model_ws *ws, const model_batch *bt,
                    const model_hp *hp, const model_losses *ls, bgfm_err *e) {
    hid_t f = h5io_create(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    int B = bt->B, N = bt->N, k = m->cfg.k, mode = hp->mode;
    hsize_t bnn[3] = {(hsize_t)B, (hsize_t)N, (hsize_t)N}, bn[2] = {(hsize_t)B, (hsize_t)N};
    hsize_t bnk[3] = {(hsize_t)B, (hsize_t)N, (hsize_t)k}, none[1] = {0};
    float *noise = bgfm_calloc(e, (size_t)B * (size_t)N * (size_t)N, sizeof(float), "noise dump");
    int rc = noise ? 0 : BGFM_ENOMEM;
    if (!rc) rc = h5io_attr_set_str(f, NULL, "format", "bgfm-grad-dump", e);
    int64_t ver = 1;
    if (!rc) rc = h5io_attr_set_i64(f, NULL, "format_version", &ver, 1, e);
    if (!rc) rc = h5io_attr_set_str(f, NULL, "atlas", m->cfg.atlas[bt->atlas], e);
    if (!rc) rc = ckpt_write_tensors(f, m, "/params", m->w, e);
    if (!rc) rc = ckpt_write_arch(f, "/params", m, e);
    if (!rc) rc = ckpt_write_tensors(f, m, "/grad", m->g, e);
    double lv[4] = {ls->total, ls->rec, ls->adj, ls->cl};
    const char *ln[4] = {"/loss/total", "/loss/rec", "/loss/adj", "/loss/cl"};
    for (int i = 0; i < 4 && !rc; i++)
        rc = put(f, ln[i], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, none, &lv[i], e);
    if (!rc) rc = h5io_attr_set_str(f, "/loss", "mode", model_mode_name(mode), e);
    if (!rc) rc = h5io_attr_set_str(f, "/loss", "decoder_input", model_dec_input_name(hp->dec_input), e);
    if (!rc) rc = h5io_attr_set_str(f, "/loss", "rec_target",
                                    hp->rec_partner && bt->fc_b ? "partner" : "graph", e);
    const char *an[] = {"lambda_rec", "lambda_adj", "lambda_cl", "tau_cl", "mask_ratio", "p_node",
                        "p_edge"};
    double av[] = {hp->lambda_rec, hp->lambda_adj, hp->lambda_cl, hp->tau_cl, hp->mask_ratio,
                   hp->p_node, hp->p_edge};
    for (int i = 0; i < 7 && !rc; i++) rc = h5io_attr_set_f64(f, "/loss", an[i], &av[i], 1, e);
    int64_t iv[] = {B, N, ws->M, hp->mask_columns, (int64_t)hp->seed, hp->epoch};
    const char *in[] = {"B", "N", "M", "mask_columns", "seed", "epoch"};
    for (int i = 0; i < 6 && !rc; i++) rc = h5io_attr_set_i64(f, "/loss", in[i], &iv[i], 1, e);
    if (!rc) rc = put(f, "/inputs/fc", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, bnn, bt->fc, e);
    if (!rc) rc = put(f, "/inputs/adj", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, bnn, bt->adj, e);
    if (!rc) rc = put(f, "/inputs/rwse", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, bnk, bt->rwse, e);
    if (!rc) rc = put(f, "/inputs/graph_index", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, bn, bt->gidx, e);
    if (!rc && bt->fc_b) { /* view b's source graphs (--partners) */
        rc = put(f, "/inputs/fc_b", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, bnn, bt->fc_b, e);
        if (!rc) rc = put(f, "/inputs/adj_b", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, bnn, bt->adj_b, e);
        if (!rc) rc = put(f, "/inputs/rwse_b", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, bnk, bt->rwse_b, e);
    }
    if (!rc) rc = put(f, "/draws/mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, bn, ws->mask, e);
    /* corrupted views: flags, the noise where corrupt (read back from the view's input) */
    for (int v = 0; v < 2 && !rc; v++) {
        const model_run *r = v ? &ws->eb : &ws->ea;
        if (v == 1 ? !(mode & MODEL_GCL) : mode != MODEL_GCL) continue;
        const char *s = v ? "b" : "a";
        char p[64];
        memset(noise, 0, (size_t)B * (size_t)N * (size_t)N * sizeof(float));
        for (int64_t i = 0; i < (int64_t)B * N; i++)
            if (r->corrupt[i]) memcpy(noise + i * N, r->X + i * N, (size_t)N * sizeof(float));
        snprintf(p, sizeof p, "/draws/corrupt_%s", s);
        rc = put(f, p, H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, bn, r->corrupt, e);
        snprintf(p, sizeof p, "/draws/noise_%s", s);
        if (!rc) rc = put(f, p, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, bnn, noise, e);
        snprintf(p, sizeof p, "/draws/edge_keep_%s", s);
        if (!rc) rc = put(f, p, H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, bnn, r->keep, e);
    }
    free(noise);
    int rc2 = h5io_close(&f, path, e);
    return rc ? rc : rc2;
}

/* ---- the command ------------------------------------------------------------------ */
typedef struct grad_args {
    const char *graphs, *atlas, *indices, *partners, *ckpt, *out, *mode;
    const char *task, *targets; /* adaptation: classify|regress and one target per graph */
    const char *prompt;         /* with --task: graph prompts, full|frozen encoder */
    double margin;              /* the edge prompt's margin */
    int64_t init_seed, seed, epoch;
    int has_init, has_seed;
    model_cfg cfg;
    model_hp hp;
} grad_args;

static int parse_indices(const char *opt, const char *s, int64_t **out, int *n, bgfm_err *e) {
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int64_t *v = bgfm_malloc(e, (size_t)cap * sizeof *v, "graph indices");
    if (!v) return BGFM_ENOMEM;
    char *dup = bgfm_strdup(e, s);
    if (!dup) {
        free(v);
        return BGFM_ENOMEM;
    }
    int k = 0, rc = 0;
    for (char *p = dup, *tok; (tok = strsep(&p, ",")) != NULL && !rc;)
        rc = cli_parse_i64(opt, tok, 0, INT64_MAX, &v[k++], e);
    free(dup);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

static const char *grad_usage =
    "usage: bgfm grad --graphs FILE --atlas NAME --indices i,j,... (--checkpoint FILE | --init "
    "SEED)\n"
    "                 --out OUT.h5 [--mode gmae|gcl|gmae+gcl] [--seed S] [--epoch E]\n"
    "                 [--hidden 128] [--heads 4] [--ffn 256] [--layers 2] [--decoder-layers 1]\n"
    "                 [--proj 128] [--n-max 400] [--mask-ratio 0.4] [--p-node 0.1] [--p-edge 0.1]\n"
    "                 [--tau-cl 0.2] [--lambda-rec 1] [--lambda-adj 0.1] [--lambda-cl 0.01]\n"
    "                 [--readout region|mean] [--readout-dim 8] [--partners i,j,...]\n"
    "                 [--input-norm population|none] [--decoder-input nodes|nodes+graph|graph]\n"
    "                 [--rec-target graph|partner]\n"
    "                 [--task classify|regress --targets t0,t1,...]\n"
    "                 [--prompt full|frozen] [--prompt-margin 6]\n"
    "One deterministic forward+backward (dropout off) on graphs `indices` (global indices in\n"
    "the store, all of atlas NAME), written as model.md section 7 / docs/formats.md.\n"
    "--partners: one graph per index (same atlas) that GCL's view b is made from (a positive\n"
    "partner: another window of the same scan); default: the graph itself.\n"
    "--init SEED builds a fresh model over every atlas of the store (its input normalisation\n"
    "fitted on every graph of the store, as pretraining does on the graphs it reads); draws use --seed\n"
    "(default: the init seed, or the checkpoint's seed).\n"
    "--task: the adaptation step instead (docs/adapt.md): the encoder on the full graphs, the\n"
    "readout, a task head (head/W, head/b drawn from the seed) and the mean cross-entropy\n"
    "against class indices or squared error against values (--targets, one per graph).\n"
    "--prompt (with --task): graph prompts in front of the encoder (prompt/feat, prompt/edge\n"
    "drawn from the seed; docs/adapt.md \"prompt\"); frozen: the encoder gets no gradients.\n";

static int parse_grad(int argc, char **argv, grad_args *a, bgfm_err *e) {
    memset(a, 0, sizeof *a);
    model_cfg *c = &a->cfg;
    c->H = 128, c->nh = 4, c->F = 256, c->L = 2, c->Ld = 1, c->P = 128, c->N_max = 400;
    c->readout = MODEL_READOUT_REGION, c->rdim = 8, c->norm = 1;
    model_hp *h = &a->hp;
    h->mode = MODEL_GMAE_GCL, h->lambda_rec = 1.0, h->lambda_adj = 0.1, h->lambda_cl = 0.01;
    a->margin = 6.0;
    h->tau_cl = 0.2, h->mask_ratio = 0.4, h->p_node = 0.1, h->p_edge = 0.1, h->mask_columns = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc)
            return bgfm_fail(e, BGFM_EUSAGE, "grad: option %s needs a value\n%s", o, grad_usage);
        const char *v = argv[++i];
        int64_t t = 0;
        int rc = 0;
        struct { const char *name; int *dst; } ints[] = {
            {"--hidden", &c->H}, {"--heads", &c->nh}, {"--ffn", &c->F}, {"--layers", &c->L},
            {"--decoder-layers", &c->Ld}, {"--proj", &c->P}, {"--n-max", &c->N_max},
            {"--readout-dim", &c->rdim}};
        struct { const char *name; double *dst; double lo, hi; } reals[] = {
            {"--mask-ratio", &h->mask_ratio, 0, 1}, {"--p-node", &h->p_node, 0, 1},
            {"--p-edge", &h->p_edge, 0, 1}, {"--tau-cl", &h->tau_cl, 1e-6, 1e6},
            {"--lambda-rec", &h->lambda_rec, 0, 1e6}, {"--lambda-adj", &h->lambda_adj, 0, 1e6},
            {"--lambda-cl", &h->lambda_cl, 0, 1e6}, {"--prompt-margin", &a->margin, 0, 50}};
        int done = 0;
        for (size_t j = 0; j < sizeof ints / sizeof ints[0] && !done; j++)
            if (!strcmp(o, ints[j].name)) {
                rc = cli_parse_i64(o, v, 1, 100000, &t, e);
                *ints[j].dst = (int)t;
                done = 1;
            }
        for (size_t j = 0; j < sizeof reals / sizeof reals[0] && !done; j++)
            if (!strcmp(o, reals[j].name)) {
                rc = cli_parse_f64(o, v, reals[j].lo, reals[j].hi, reals[j].dst, e);
                done = 1;
            }
        if (done) {
            if (rc) return rc;
        } else if (!strcmp(o, "--graphs")) a->graphs = v;
        else if (!strcmp(o, "--atlas")) a->atlas = v;
        else if (!strcmp(o, "--indices")) a->indices = v;
        else if (!strcmp(o, "--partners")) a->partners = v;
        else if (!strcmp(o, "--input-norm")) {
            if (strcmp(v, "population") && strcmp(v, "none"))
                return bgfm_fail(e, BGFM_EUSAGE, "grad: --input-norm must be population or none, "
                                 "not '%s'", v);
            c->norm = !strcmp(v, "population");
        }
        else if (!strcmp(o, "--decoder-input")) {
            if ((h->dec_input = model_dec_input_parse(v)) < 0)
                return bgfm_fail(e, BGFM_EUSAGE, "grad: --decoder-input must be nodes, "
                                 "nodes+graph or graph, not '%s'", v);
        }
        else if (!strcmp(o, "--rec-target")) {
            if (strcmp(v, "graph") && strcmp(v, "partner"))
                return bgfm_fail(e, BGFM_EUSAGE, "grad: --rec-target must be graph or partner, "
                                 "not '%s'", v);
            h->rec_partner = !strcmp(v, "partner");
        }
        else if (!strcmp(o, "--checkpoint")) a->ckpt = v;
        else if (!strcmp(o, "--out")) a->out = v;
        else if (!strcmp(o, "--mode")) a->mode = v;
        else if (!strcmp(o, "--task")) a->task = v;
        else if (!strcmp(o, "--targets")) a->targets = v;
        else if (!strcmp(o, "--prompt")) a->prompt = v;
        else if (!strcmp(o, "--readout")) {
            if ((c->readout = model_readout_parse(v)) < 0)
                return bgfm_fail(e, BGFM_EUSAGE, "grad: --readout must be region or mean, not '%s'", v);
        }
        else if (!strcmp(o, "--init")) {
            a->has_init = 1;
            if ((rc = cli_parse_i64(o, v, 0, INT64_MAX, &a->init_seed, e))) return rc;
        } else if (!strcmp(o, "--seed")) {
            a->has_seed = 1;
            if ((rc = cli_parse_i64(o, v, 0, INT64_MAX, &a->seed, e))) return rc;
        } else if (!strcmp(o, "--epoch")) {
            if ((rc = cli_parse_i64(o, v, 0, INT64_MAX, &a->epoch, e))) return rc;
        } else
            return bgfm_fail(e, BGFM_EUSAGE, "grad: unknown option %s\n%s", o, grad_usage);
    }
    if (!a->graphs || !a->atlas || !a->indices || !a->out || (!a->ckpt == !a->has_init))
        return bgfm_fail(e, BGFM_EUSAGE,
                         "grad: --graphs, --atlas, --indices, --out and exactly one of "
                         "--checkpoint / --init are required\n%s", grad_usage);
    if (a->task && ((strcmp(a->task, "classify") && strcmp(a->task, "regress")) || !a->targets))
        return bgfm_fail(e, BGFM_EUSAGE, "grad: --task must be classify or regress, with "
                         "--targets (one per graph)\n%s", grad_usage);
    if (a->prompt && (!a->task || (strcmp(a->prompt, "full") && strcmp(a->prompt, "frozen"))))
        return bgfm_fail(e, BGFM_EUSAGE, "grad: --prompt must be full or frozen, with --task");
    if (a->mode && !(h->mode = model_mode_parse(a->mode)))
        return bgfm_fail(e, BGFM_EUSAGE, "grad: --mode must be gmae, gcl or gmae+gcl, not '%s'",
                         a->mode);
    return 0;
}

/* ---- graph prompts (--prompt) ---------------------------------------------------------- */
/* Prompts drawn from the seed: feat N(0, 0.1^2), edge logits N(0, 1), with their gradients
 * and scratch (the encoder frozen with --prompt frozen). */
static int prompt_draw(const grad_args *a, const model *m, const model_ws *ws,
                       const model_batch *bt, uint64_t seed, model_prompt *pr, bgfm_err *e) {
    int64_t N = bt->N, H = m->cfg.H, np = N * (N - 1) / 2;
    float *f = bgfm_calloc(e, (size_t)(2 * N * H + 2 * np + 1), sizeof(float), "prompts");
    if (!f) return BGFM_ENOMEM;
    rng_stream r;
    rng_init(&r, seed, RNG_ADAPT, 4, 0, 0);
    for (int64_t i = 0; i < N * H; i++) f[i] = (float)(0.1 * rng_normal(&r));
    for (int64_t i = 0; i < np; i++) f[2 * N * H + i] = (float)rng_normal(&r);
    pr->feat = f;
    pr->gfeat = f + N * H;
    pr->edge = f + 2 * N * H;
    pr->gedge = f + 2 * N * H + np;
    pr->margin = (float)a->margin;
    pr->frozen = !strcmp(a->prompt, "frozen");
    return model_prompt_alloc(pr, ws, m, e);
}

static void prompt_release(model_prompt *pr) {
    free((void *)(uintptr_t)pr->feat);
    model_prompt_free(pr);
}

/* /params/prompt/{feat,edge}, /grad/prompt/{feat,edge}, /loss attributes prompt (full or
 * frozen) and prompt_margin */
static int prompt_dump(hid_t f, const model_prompt *pr, int64_t N, int64_t H,
                       const grad_args *a, bgfm_err *e) {
    hsize_t df[2] = {(hsize_t)N, (hsize_t)H}, de[1] = {(hsize_t)(N * (N - 1) / 2)};
    int rc = put(f, "/params/prompt/feat", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, df, pr->feat, e);
    if (!rc) rc = put(f, "/grad/prompt/feat", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, df, pr->gfeat, e);
    if (!rc) rc = put(f, "/params/prompt/edge", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, de, pr->edge, e);
    if (!rc) rc = put(f, "/grad/prompt/edge", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, de, pr->gedge, e);
    if (!rc) rc = h5io_attr_set_str(f, "/loss", "prompt", a->prompt, e);
    double mg = a->margin;
    if (!rc) rc = h5io_attr_set_f64(f, "/loss", "prompt_margin", &mg, 1, e);
    return rc;
}

/* ---- the adaptation step (--task) ---------------------------------------------------- */
/* Encoder + readout + head on the batch, mean loss, gradients of everything; the dump of
 * grad_dump_write plus head/W, head/b under /params and /grad, /inputs/targets and the
 * /loss attributes task and classes. */
static int task_step(grad_args *a, model *m, model_ws *ws, const model_batch *bt, model_hp *hp,
                     bgfm_err *e) {
    int B = bt->B, regress = !strcmp(a->task, "regress");
    double *tv = bgfm_malloc(e, (size_t)B * sizeof *tv, "targets");
    int *cls = bgfm_malloc(e, (size_t)B * sizeof *cls, "targets");
    float *y = bgfm_malloc(e, (size_t)B * sizeof *y, "targets");
    head h;
    memset(&h, 0, sizeof h);
    model_prompt pr;
    memset(&pr, 0, sizeof pr);
    int rc = tv && cls && y ? 0 : BGFM_ENOMEM, K = 1, n = 0;
    char *dup = rc ? NULL : bgfm_strdup(e, a->targets);
    if (!rc && !dup) rc = BGFM_ENOMEM;
    for (char *p = dup, *tok; !rc && (tok = strsep(&p, ",")) != NULL; n++) {
        if (n >= B) {
            rc = bgfm_fail(e, BGFM_EUSAGE, "grad: --targets has more values than --indices (%d)", B);
            break;
        }
        rc = cli_parse_f64("--targets", tok, -1e9, 1e9, &tv[n], e);
        cls[n] = (int)tv[n];
        y[n] = (float)tv[n];
        if (!rc && !regress && (cls[n] < 0 || cls[n] > 255 || tv[n] != cls[n]))
            rc = bgfm_fail(e, BGFM_EUSAGE, "grad: --targets: '%s' is not a class index 0..255", tok);
        if (!rc && !regress && cls[n] + 1 > K) K = cls[n] + 1;
    }
    free(dup);
    if (!rc && n != B)
        rc = bgfm_fail(e, BGFM_EUSAGE, "grad: --targets has %d values, --indices %d", n, B);
    if (!rc && !regress && K < 2) K = 2;
    if (!rc) rc = head_init(&h, regress ? HEAD_REGRESS : HEAD_CLASSIFY, K, model_embed_dim(m), B, e);
    if (!rc) {
        rng_stream r; /* a non-zero head, so gradients reach the encoder */
        rng_init(&r, hp->seed, RNG_ADAPT, 3, 0, 0);
        for (int64_t i = 0; i < h.n; i++) h.w[i] = (float)(0.3 * rng_normal(&r));
        memset(m->g, 0, (size_t)m->n_params * sizeof(float));
        hp->mode = 0;
        if (a->prompt) rc = prompt_draw(a, m, ws, bt, hp->seed, &pr, e);
        if (!rc) {
            model_encode_prompted(m, ws, bt, hp, a->prompt ? &pr : NULL);
            model_losses ls = {0, 0, 0, 0};
            ls.total = head_loss(&h, ws->E, B, cls, y, 1.0 / B, NULL) / B;
            model_encode_backward(m, ws, h.dE);
            rc = grad_dump_write(a->out, m, ws, bt, hp, &ls, e);
        }
    }
    hid_t f = rc ? -1 : h5io_open_rw(MPI_COMM_SELF, a->out, e);
    if (!rc && f < 0) rc = e->code ? e->code : BGFM_EIO;
    hsize_t dw[2] = {(hsize_t)h.K, (hsize_t)h.H}, db[1] = {(hsize_t)h.K}, dt[1] = {(hsize_t)B};
    const char *grp[2] = {"/params", "/grad"};
    for (int q = 0; q < 2 && !rc; q++) {
        const float *buf = q ? h.g : h.w;
        char path[64];
        snprintf(path, sizeof path, "%s/head/W", grp[q]);
        rc = put(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dw, buf, e);
        snprintf(path, sizeof path, "%s/head/b", grp[q]);
        if (!rc) rc = put(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, db, buf + h.K * h.H, e);
    }
    if (!rc && a->prompt) rc = prompt_dump(f, &pr, bt->N, h.H, a, e);
    if (!rc) rc = put(f, "/inputs/targets", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, dt, tv, e);
    if (!rc) rc = h5io_attr_set_str(f, "/loss", "task", a->task, e);
    int64_t kk = h.K;
    if (!rc) rc = h5io_attr_set_i64(f, "/loss", "outputs", &kk, 1, e);
    if (f >= 0) {
        int rc2 = h5io_close(&f, a->out, e);
        rc = rc ? rc : rc2;
    }
    head_free(&h);
    prompt_release(&pr);
    free(tv);
    free(cls);
    free(y);
    return rc;
}

static int grad_local(grad_args *a, bgfm_err *e) {
    graphs_store *gs = NULL;
    model m;
    model_ws ws;
    memset(&m, 0, sizeof m);
    memset(&ws, 0, sizeof ws);
    int64_t *idx = NULL, *pidx = NULL, *all = NULL;
    float *fc = NULL, *rw = NULL;
    uint8_t *adj = NULL;
    int n = 0;
    uint64_t seed = 0;
    int rc = graphs_open(a->graphs, &gs, e);
    if (!rc) rc = parse_indices("--indices", a->indices, &idx, &n, e);
    int np = n;
    if (!rc && a->partners) rc = parse_indices("--partners", a->partners, &pidx, &np, e);
    if (!rc && np != n)
        rc = bgfm_fail(e, BGFM_EUSAGE, "grad: --partners has %d graphs, --indices %d; give one "
                       "partner per graph", np, n);
    if (rc) goto done;
    int sa = graphs_atlas_find(gs, a->atlas);
    if (sa < 0) {
        rc = bgfm_fail(e, BGFM_EUSAGE, "grad: atlas '%s' is not in %s", a->atlas, a->graphs);
        goto done;
    }
    for (int i = 0; i < n * (pidx ? 2 : 1); i++) {
        int64_t g = i < n ? idx[i] : pidx[i - n];
        if (g >= graphs_count(gs) || graphs_get_meta(gs, g)->atlas != sa) {
            rc = bgfm_fail(e, BGFM_EUSAGE, "grad: graph %lld is not a graph of atlas '%s' in %s",
                           (long long)g, a->atlas, a->graphs);
            goto done;
        }
    }
    if (a->ckpt) {
        ckpt_state st = {0}; /* no extra arrays asked for (ckpt.h) */
        rc = ckpt_load(a->ckpt, &m, NULL, &st, e);
        if (rc) goto done;
        seed = st.seed;
        free(st.config);
    } else {
        model_cfg *c = &a->cfg;
        c->k = graphs_rwse_steps(gs);
        c->n_atlases = graphs_n_atlases(gs);
        for (int i = 0; i < c->n_atlases && i < MODEL_MAX_ATLASES; i++) {
            snprintf(c->atlas[i], sizeof c->atlas[i], "%s", graphs_atlas_name(gs, i));
            c->atlas_nodes[i] = graphs_atlas_nodes(gs, i);
        }
        if ((rc = model_init(&m, c, e))) goto done;
        model_init_params(&m, (uint64_t)a->init_seed);
        all = bgfm_malloc(e, (size_t)graphs_count(gs) * sizeof *all, "graph list");
        if (!all) {
            rc = BGFM_ENOMEM;
            goto done;
        }
        for (int64_t g = 0; g < graphs_count(gs); g++) all[g] = g;
        if ((rc = norm_fit(MPI_COMM_SELF, e, &m, gs, all, graphs_count(gs)))) goto done;
        seed = (uint64_t)a->init_seed;
    }
    if (a->has_seed) seed = (uint64_t)a->seed;
    int ma = model_atlas_find(&m, a->atlas);
    int N = graphs_atlas_nodes(gs, sa);
    if (ma < 0 || m.cfg.atlas_nodes[ma] != N || m.cfg.k != graphs_rwse_steps(gs)) {
        rc = bgfm_fail(e, BGFM_EUSAGE, "grad: the model does not fit atlas '%s' of %s (absent, "
                       "different node count or RWSE steps)", a->atlas, a->graphs);
        goto done;
    }
    /* the graphs, then (with --partners) view b's source graphs after them */
    int nb = pidx ? 2 : 1;
    size_t nn = (size_t)n * (size_t)N * (size_t)N, nk = (size_t)n * (size_t)N * (size_t)m.cfg.k;
    fc = bgfm_malloc(e, (size_t)nb * nn * sizeof *fc, "graph batch");
    adj = bgfm_malloc(e, (size_t)nb * nn, "graph batch");
    rw = bgfm_malloc(e, (size_t)nb * (nk ? nk : 1) * sizeof *rw, "graph batch");
    if (!fc || !adj || !rw) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    if ((rc = graphs_read(gs, idx, n, fc, adj, rw, e))) goto done;
    if (pidx && (rc = graphs_read(gs, pidx, n, fc + nn, adj + nn, rw + nk, e))) goto done;
    if ((rc = model_ws_init(&ws, &m, n, e))) goto done;
    model_batch bt = {ma, n, N, fc, adj, rw, idx, pidx ? fc + nn : NULL, pidx ? adj + nn : NULL,
                      pidx ? rw + nk : NULL};
    model_hp hp = a->hp;
    hp.seed = seed;
    hp.epoch = a->epoch;
    hp.step = 0;
    hp.p_drop = 0.0f;
    model_losses ls;
    if (a->task) {
        rc = task_step(a, &m, &ws, &bt, &hp, e);
        goto done;
    }
    model_step(&m, &ws, &bt, &hp, &ls);
    rc = grad_dump_write(a->out, &m, &ws, &bt, &hp, &ls, e);
done:
    model_ws_free(&ws);
    model_free(&m);
    free(fc);
    free(adj);
    free(rw);
    free(idx);
    free(pidx);
    free(all);
    graphs_close(&gs);
    return rc;
}

int cmd_grad(bgfm_ctx *ctx, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        if (ctx->rank == 0) fputs(grad_usage, stdout);
        return 0;
    }
    grad_args a;
    int rc = parse_grad(argc, argv, &a, &ctx->err);
    if (!rc && ctx->rank == 0) rc = grad_local(&a, &ctx->err);
    return bgfm_ctx_agree(ctx, rc);
}
