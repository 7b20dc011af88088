/* stage.c: the `probe` stage kind (probe.h, docs/probe.md): reads the graph store and
 * the upstream checkpoint, embeds every labelled graph with the pretrained and a
 * randomly initialised encoder, runs the grouped cross-validation cells spread over
 * the ranks, and writes report/probe.json, folds.csv, predictions.csv, few_shot.png.
 * Not the classifier (logreg.c), the folds and cells (probe.c), or `bgfm report`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgfm/ckpt.h"
#include "bgfm/fsutil.h"
#include "bgfm/graphs.h"
#include "bgfm/h5io.h"
#include "bgfm/json.h"
#include "bgfm/log.h"
#include "bgfm/metrics.h"
#include "bgfm/probe.h"
#include "bgfm/stage.h"

#define NFEAT 3
static const char *const feat_name[NFEAT] = {"pretrained", "random_init", "fc_baseline"};
#define NMET 3
static const char *const met_name[NMET] = {"auc", "accuracy", "balanced_accuracy"};

static const bgfm_opt probe_opts_table[] = {
    {"folds", BGFM_OPT_INT, "5", 2, 1000, NULL,
     "cross-validation folds, grouped by subject and stratified by label"},
    {"seed", BGFM_OPT_INT, NULL, 0, 9e18, NULL,
     "seed of the fold assignment and few-shot subsets (default: the pipeline seed)"},
    {"C", BGFM_OPT_REAL, "1.0", 1e-12, 1e12, NULL,
     "inverse L2 strength: minimise 0.5 |W|^2 + C * sum of cross-entropies"},
    {"few_shot", BGFM_OPT_LIST, "[5, 10, 20, all]", 1, 0, NULL,
     "labelled subjects per class in the training fold (integers >= 1 or all)"},
    {"finetune", BGFM_OPT_BOOL, "false", 1, 0, NULL,
     "fine-tune encoder + head per fold: not available (true is rejected)"},
    {"max_iter", BGFM_OPT_INT, "1000", 1, 1e7, NULL, "L-BFGS iterations per fit"},
    {"tol", BGFM_OPT_REAL, "1e-6", 0, 1, NULL, "stop a fit when max |gradient| <= tol"},
};

/* few_shot list -> k values (0 = all); returns count or -1 with the bad item in *bad */
static int parse_k(const bgfm_value *v, int64_t *k, const char **bad) {
    int n = 0;
    for (int i = 0; i < v->n_list; i++) {
        const char *s = v->list[i];
        char *end = NULL;
        if (n >= PROBE_MAX_K) {
            *bad = s;
            return -1;
        }
        if (!strcmp(s, "all")) {
            k[n++] = 0;
            continue;
        }
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || !end || *end || end == s || x < 1 || x > 1000000000LL) {
            *bad = s;
            return -1;
        }
        k[n++] = x;
    }
    return n;
}

static int probe_validate(const bgfm_pipeline *p, const bgfm_stage_cfg *s, bgfm_err *e) {
    if (params_bool(&s->with, "finetune"))
        return config_stage_fail(e, p, s, "finetune",
                                 "finetune: true is not available in this version (docs/probe.md "
                                 "\"Fine-tuning\"); remove the key or set it to false");
    int64_t k[PROBE_MAX_K];
    const char *bad = NULL;
    int n = parse_k(params_value(&s->with, "few_shot"), k, &bad);
    if (n < 0)
        return config_stage_fail(e, p, s, "few_shot", "few_shot item '%s' is not an integer >= 1 "
                                 "or 'all' (at most %d items)", bad ? bad : "", PROBE_MAX_K);
    if (n == 0)
        return config_stage_fail(e, p, s, "few_shot", "few_shot needs at least one item, e.g. "
                                 "[5, 10, all]");
    return 0;
}

/* ---- data ---------------------------------------------------------------------------- */
typedef struct pdata {
    int A;                /* store atlases */
    int64_t nl;           /* labelled graphs */
    int64_t *g;           /* (nl) store index */
    int32_t *atl;         /* (nl) store atlas */
    int64_t *subj;        /* (nl) subject (canonical index) */
    int64_t *win;         /* (nl) window */
    int64_t ns;           /* subjects */
    char **sid;           /* (ns) participant ids, sorted */
    int *cls;             /* (ns) class */
    int K;
    int64_t *labels;      /* (K) label values, ascending */
    int *fold;            /* (ns) */
    int H;
    double *emb[2];       /* (nl, H) pretrained, random */
    int64_t *tri;         /* (A) N(N-1)/2 */
    int64_t *fcoff;       /* (nl) offset into fcv */
    double *fcv;          /* all upper triangles */
    int64_t fclen;
} pdata;

static void pdata_free(pdata *d) {
    free(d->g);
    free(d->atl);
    free(d->subj);
    free(d->win);
    if (d->sid)
        for (int64_t s = 0; s < d->ns; s++) free(d->sid[s]);
    free(d->sid);
    free(d->cls);
    free(d->labels);
    free(d->fold);
    free(d->emb[0]);
    free(d->emb[1]);
    free(d->tri);
    free(d->fcoff);
    free(d->fcv);
    memset(d, 0, sizeof *d);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Subject key of graph g: participant id, or "row-<subject>" when unknown. */
static void subj_key(graphs_store *gs, int64_t g, char *buf, size_t n) {
    const char *p = graphs_participant(gs, g);
    if (p && *p) snprintf(buf, n, "%s", p);
    else snprintf(buf, n, "row-%lld", (long long)graphs_get_meta(gs, g)->subject);
}

static int find_str(char **l, int64_t n, const char *s) {
    int64_t lo = 0, hi = n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        int c = strcmp(l[mid], s);
        if (!c) return (int)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Labelled graphs, subjects (sorted ids), classes (sorted label values). */
static int collect(graphs_store *gs, pdata *d, const char *gpath, bgfm_err *e) {
    int64_t G = graphs_count(gs);
    d->A = graphs_n_atlases(gs);
    int64_t nl = 0;
    for (int64_t g = 0; g < G; g++) nl += graphs_get_meta(gs, g)->label >= 0;
    d->nl = nl;
    if (nl == 0)
        return bgfm_fail(e, BGFM_EDATA, "probe: %s has no labelled graph (label >= 0); set "
                         "inputs.label_column to a column of participants.tsv", gpath);
    size_t z = (size_t)nl;
    d->g = bgfm_malloc(e, z * sizeof *d->g, "probe");
    d->atl = bgfm_malloc(e, z * sizeof *d->atl, "probe");
    d->subj = bgfm_malloc(e, z * sizeof *d->subj, "probe");
    d->win = bgfm_malloc(e, z * sizeof *d->win, "probe");
    char **keys = bgfm_calloc(e, z, sizeof *keys, "probe");
    int64_t *lv = bgfm_malloc(e, z * sizeof *lv, "probe");
    int rc = 0;
    if (!d->g || !d->atl || !d->subj || !d->win || !keys || !lv) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    char buf[512];
    int64_t j = 0;
    for (int64_t g = 0; g < G; g++) {
        const graphs_meta *m = graphs_get_meta(gs, g);
        if (m->label < 0) continue;
        d->g[j] = g;
        d->atl[j] = m->atlas;
        d->win[j] = m->window;
        lv[j] = m->label;
        subj_key(gs, g, buf, sizeof buf);
        if (!(keys[j] = bgfm_strdup(e, buf))) {
            rc = BGFM_ENOMEM;
            goto done;
        }
        j++;
    }
    /* unique sorted subject ids */
    char **sorted = bgfm_malloc(e, z * sizeof *sorted, "probe");
    if (!sorted) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    memcpy(sorted, keys, z * sizeof *sorted);
    qsort(sorted, z, sizeof *sorted, cmp_str);
    int64_t ns = 0;
    for (int64_t i = 0; i < nl; i++)
        if (!ns || strcmp(sorted[i], sorted[ns - 1])) sorted[ns++] = sorted[i];
    d->ns = ns;
    d->sid = bgfm_calloc(e, (size_t)ns, sizeof *d->sid, "probe");
    d->cls = bgfm_malloc(e, (size_t)ns * sizeof *d->cls, "probe");
    d->fold = bgfm_malloc(e, (size_t)ns * sizeof *d->fold, "probe");
    if (!d->sid || !d->cls || !d->fold) {
        free(sorted);
        rc = BGFM_ENOMEM;
        goto done;
    }
    for (int64_t s = 0; s < ns && !rc; s++)
        if (!(d->sid[s] = bgfm_strdup(e, sorted[s]))) rc = BGFM_ENOMEM;
    free(sorted);
    if (rc) goto done;
    /* classes */
    int64_t *ul = bgfm_malloc(e, z * sizeof *ul, "probe");
    if (!ul) {
        rc = BGFM_ENOMEM;
        goto done;
    }
    memcpy(ul, lv, z * sizeof *ul);
    qsort(ul, z, sizeof *ul, cmp_i64);
    int K = 0;
    for (int64_t i = 0; i < nl; i++)
        if (!K || ul[i] != ul[K - 1]) ul[K++] = ul[i];
    d->K = K;
    d->labels = ul;
    if (K < 2) {
        rc = bgfm_fail(e, BGFM_EDATA, "probe: every labelled graph of %s has label %lld; a probe "
                       "needs at least 2 classes", gpath, (long long)ul[0]);
        goto done;
    }
    for (int64_t s = 0; s < ns; s++) d->cls[s] = -1;
    for (int64_t i = 0; i < nl; i++) {
        int s = find_str(d->sid, ns, keys[i]);
        BGFM_ASSERT(s >= 0);
        d->subj[i] = s;
        int c = 0;
        while (ul[c] != lv[i]) c++;
        if (d->cls[s] >= 0 && d->cls[s] != c) {
            rc = bgfm_fail(e, BGFM_EDATA, "probe: subject '%s' has graphs with labels %lld and "
                           "%lld in %s; one label per participant is expected", d->sid[s],
                           (long long)ul[d->cls[s]], (long long)lv[i], gpath);
            goto done;
        }
        d->cls[s] = c;
    }
done:
    if (keys)
        for (int64_t i = 0; i < nl; i++) free(keys[i]);
    free(keys);
    free(lv);
    return rc;
}

/* Allreduce (sum, in place) of a double array of any length. */
static int allreduce_sum(bgfm_ctx *ctx, double *v, int64_t n) {
    const int64_t chunk = 1 << 26;
    for (int64_t o = 0; o < n; o += chunk) {
        int c = (int)(n - o < chunk ? n - o : chunk);
        BGFM_MPI_CHECK(&ctx->err, MPI_Allreduce(MPI_IN_PLACE, v + o, c, MPI_DOUBLE, MPI_SUM,
                                                 ctx->comm));
    }
    return 0;
}

/* Embeddings and FC triangles of this rank's share (j = rank mod size), then summed. */
static int embed_all(bgfm_stage_run *r, graphs_store *gs, model *mp, model *mr,
                     const int *amap, pdata *d) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    int H = d->H = mp->cfg.H, k = graphs_rwse_steps(gs);
    int64_t nl = d->nl;
    d->tri = bgfm_calloc(e, (size_t)d->A, sizeof *d->tri, "probe");
    d->fcoff = bgfm_calloc(e, (size_t)nl, sizeof *d->fcoff, "probe");
    if (!d->tri || !d->fcoff) return BGFM_ENOMEM;
    int Nb = 1;
    for (int a = 0; a < d->A; a++) {
        int64_t N = graphs_atlas_nodes(gs, a);
        d->tri[a] = N * (N - 1) / 2;
        if (N > Nb) Nb = (int)N;
    }
    int64_t off = 0;
    for (int64_t j = 0; j < nl; j++) d->fcoff[j] = off, off += d->tri[d->atl[j]];
    d->fclen = off;
    d->emb[0] = bgfm_calloc(e, (size_t)(nl * H), sizeof(double), "embeddings");
    d->emb[1] = bgfm_calloc(e, (size_t)(nl * H), sizeof(double), "embeddings");
    d->fcv = bgfm_calloc(e, (size_t)(off ? off : 1), sizeof(double), "FC features");
    float *fc = bgfm_malloc(e, (size_t)Nb * (size_t)Nb * sizeof *fc, "graph");
    uint8_t *adj = bgfm_malloc(e, (size_t)Nb * (size_t)Nb, "graph");
    float *rw = bgfm_malloc(e, (size_t)Nb * (size_t)(k ? k : 1) * sizeof *rw, "graph");
    float *out = bgfm_malloc(e, (size_t)H * sizeof *out, "graph");
    model_ws ws;
    memset(&ws, 0, sizeof ws);
    int rc = 0;
    if (!d->emb[0] || !d->emb[1] || !d->fcv || !fc || !adj || !rw || !out) rc = BGFM_ENOMEM;
    if (!rc) rc = model_ws_init(&ws, mp, 1, e);
    double items = 0;
    for (int64_t j = ctx->rank; j < nl && !rc; j += ctx->size) {
        int a = d->atl[j];
        int N = graphs_atlas_nodes(gs, a);
        if ((rc = graphs_read(gs, &d->g[j], 1, fc, adj, rw, e))) break;
        r->bytes_read += (double)N * N * 5.0 + (double)N * k * 4.0;
        model *ms[2] = {mp, mr};
        for (int t = 0; t < 2; t++) {
            probe_embed(ms[t], &ws, amap[a], N, fc, adj, rw, d->g[j], out);
            for (int h = 0; h < H; h++) d->emb[t][j * H + h] = out[h];
        }
        double *dst = d->fcv + d->fcoff[j];
        for (int i = 0; i < N; i++)
            for (int c = i + 1; c < N; c++) *dst++ = fc[(int64_t)i * N + c];
        items++;
    }
    r->items = items;
    r->items_unit = "graphs";
    model_ws_free(&ws);
    free(fc);
    free(adj);
    free(rw);
    free(out);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    rc = allreduce_sum(ctx, d->emb[0], nl * H);
    if (!rc) rc = allreduce_sum(ctx, d->emb[1], nl * H);
    if (!rc) rc = allreduce_sum(ctx, d->fcv, d->fclen);
    return bgfm_ctx_agree(ctx, rc);
}

/* ---- views: per atlas, and pooled (concatenation over atlases per subject/window) ---- */
typedef struct pview {
    char name[64];
    int64_t n;           /* samples */
    int64_t *subj;       /* (n) */
    int64_t *rows;       /* (n, A or 1): labelled-graph indices making up each sample */
    int nrow;            /* graphs per sample (1 or A) */
    int64_t D[NFEAT];
} pview;

static void pview_free(pview *v) {
    free(v->subj);
    free(v->rows);
    memset(v, 0, sizeof *v);
}

typedef struct swa {
    int64_t subj, win, j;
    int32_t atl;
} swa;
static int cmp_swa(const void *a, const void *b) {
    const swa *x = a, *y = b;
    if (x->subj != y->subj) return x->subj < y->subj ? -1 : 1;
    if (x->win != y->win) return x->win < y->win ? -1 : 1;
    return (x->atl > y->atl) - (x->atl < y->atl);
}

static int make_view(const pdata *d, graphs_store *gs, int atlas, pview *v, bgfm_err *e) {
    memset(v, 0, sizeof *v);
    int64_t nl = d->nl;
    swa *l = bgfm_malloc(e, (size_t)nl * sizeof *l, "views");
    if (!l) return BGFM_ENOMEM;
    int64_t m = 0;
    for (int64_t j = 0; j < nl; j++)
        if (atlas < 0 || d->atl[j] == atlas) l[m++] = (swa){d->subj[j], d->win[j], j, d->atl[j]};
    qsort(l, (size_t)m, sizeof *l, cmp_swa);
    v->nrow = atlas < 0 ? d->A : 1;
    v->subj = bgfm_malloc(e, (size_t)(m ? m : 1) * sizeof *v->subj, "views");
    v->rows = bgfm_malloc(e, (size_t)(m ? m : 1) * (size_t)v->nrow * sizeof *v->rows, "views");
    if (!v->subj || !v->rows) {
        free(l);
        return BGFM_ENOMEM;
    }
    snprintf(v->name, sizeof v->name, "%s", atlas < 0 ? "pooled" : graphs_atlas_name(gs, atlas));
    int64_t n = 0;
    for (int64_t i = 0; i < m;) {
        int64_t b = i;
        while (b < m && l[b].subj == l[i].subj && l[b].win == l[i].win) b++;
        /* a pooled sample needs exactly one graph of every atlas */
        int full = (b - i) == v->nrow;
        for (int64_t q = i; full && q < b; q++) full = l[q].atl == (atlas < 0 ? q - i : atlas);
        if (full) {
            v->subj[n] = l[i].subj;
            for (int q = 0; q < v->nrow; q++) v->rows[n * v->nrow + q] = l[i + q].j;
            n++;
        }
        i = b;
    }
    v->n = n;
    free(l);
    v->D[0] = v->D[1] = (int64_t)d->H * v->nrow;
    v->D[2] = 0;
    for (int a = 0; a < d->A; a++)
        if (atlas < 0 || a == atlas) v->D[2] += d->tri[a];
    return 0;
}

/* Feature matrix (n, D) of view v for feature type t. */
static double *view_matrix(const pdata *d, const pview *v, int t, bgfm_err *e) {
    int64_t D = v->D[t];
    double *X = bgfm_malloc(e, (size_t)((v->n ? v->n : 1) * D) * sizeof *X, "features");
    if (!X) return NULL;
    for (int64_t i = 0; i < v->n; i++) {
        double *x = X + i * D;
        for (int q = 0; q < v->nrow; q++) {
            int64_t j = v->rows[i * v->nrow + q];
            if (t < 2) {
                memcpy(x, d->emb[t] + j * d->H, (size_t)d->H * sizeof *x);
                x += d->H;
            } else {
                int64_t len = d->tri[d->atl[j]];
                memcpy(x, d->fcv + d->fcoff[j], (size_t)len * sizeof *x);
                x += len;
            }
        }
    }
    return X;
}

/* ---- report ---------------------------------------------------------------------- */
typedef struct presults {
    int nv, nk, F, K;
    int64_t ns;
    int64_t ks[PROBE_MAX_K + 1]; /* the user's k values, then 0 (all) for the main rows */
    double *cell;  /* (nv, NFEAT, nk, F, NMET) */
    double *oof;   /* (nv, NFEAT, ns, K) out-of-fold subject probabilities (k = all) */
    double *keff;  /* (nk) mean training subjects per class actually used */
} presults;

static double *cell_at(const presults *p, int v, int t, int ki, int f) {
    return p->cell + ((((int64_t)v * NFEAT + t) * p->nk + ki) * p->F + f) * NMET;
}

static void write_block(FILE *f, const presults *p, const pdata *d, int v, int t) {
    double *vals = malloc((size_t)p->F * sizeof *vals);
    int main_k = p->nk - 1;
    fputs("{", f);
    for (int q = 0; q < NMET; q++) {
        double mean = (double)NAN, sd = (double)NAN;
        if (vals) {
            for (int fo = 0; fo < p->F; fo++) vals[fo] = cell_at(p, v, t, main_k, fo)[q];
            metrics_mean_sd(vals, p->F, &mean, &sd);
        }
        fprintf(f, "%s\"%s\": ", q ? ", " : "", met_name[q]);
        json_write_num(f, mean);
        fprintf(f, ", \"%s_sd\": ", met_name[q]);
        json_write_num(f, sd);
    }
    fputs(", \"auc_folds\": [", f);
    for (int fo = 0; fo < p->F; fo++) {
        if (fo) fputs(", ", f);
        json_write_num(f, cell_at(p, v, t, main_k, fo)[0]);
    }
    fputs("]", f);
    /* AUC of all out-of-fold subject scores together */
    double *P = p->oof + ((int64_t)v * NFEAT + t) * p->ns * p->K;
    int *y = malloc((size_t)(p->ns ? p->ns : 1) * sizeof *y);
    double *Ps = malloc((size_t)((p->ns ? p->ns : 1) * p->K) * sizeof *Ps);
    int64_t m = 0;
    if (y && Ps)
        for (int64_t s = 0; s < p->ns; s++) {
            double tot = 0;
            for (int k = 0; k < p->K; k++) tot += P[s * p->K + k];
            if (tot <= 0) continue; /* subject absent from this view */
            memcpy(Ps + m * p->K, P + s * p->K, (size_t)p->K * sizeof *Ps);
            y[m++] = d->cls[s];
        }
    fputs(", \"auc_oof\": ", f);
    json_write_num(f, y && Ps ? metrics_auc_ovr(Ps, y, m, p->K) : (double)NAN);
    fputs("}", f);
    free(y);
    free(Ps);
    free(vals);
}

static void write_few_shot(FILE *f, const presults *p, int v, const char *ind) {
    fputs("[", f);
    double *vals = malloc((size_t)p->F * sizeof *vals);
    for (int ki = 0; ki < p->nk - 1 && vals; ki++) {
        fprintf(f, "%s\n%s  {\"k\": ", ki ? "," : "", ind);
        if (p->ks[ki]) fprintf(f, "%lld", (long long)p->ks[ki]);
        else fputs("\"all\"", f);
        fputs(", \"k_effective\": ", f);
        json_write_num(f, p->keff[ki]);
        for (int t = 0; t < NFEAT; t++) {
            double mean, sd;
            for (int fo = 0; fo < p->F; fo++) vals[fo] = cell_at(p, v, t, ki, fo)[0];
            metrics_mean_sd(vals, p->F, &mean, &sd);
            fprintf(f, ", \"%s\": ", feat_name[t]);
            json_write_num(f, mean);
            fprintf(f, ", \"%s_sd\": ", feat_name[t]);
            json_write_num(f, sd);
        }
        fputs("}", f);
    }
    fprintf(f, "\n%s]", ind);
    free(vals);
}

static int write_json(const char *path, const bgfm_stage_run *r, const presults *p,
                      const pdata *d, const pview *views, const probe_opts *o,
                      const char *ckpt, const char *gpath, int64_t H, bgfm_err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", path, strerror(errno));
    fputs("{\n  \"format\": \"bgfm-probe\",\n  \"format_version\": 1,\n  \"stage\": ", f);
    json_write_str(f, r->stage->name);
    fputs(",\n  \"checkpoint\": ", f);
    json_write_str(f, ckpt);
    fputs(",\n  \"graphs\": ", f);
    json_write_str(f, gpath);
    fprintf(f, ",\n  \"seed\": %llu,\n  \"init_seed\": %llu,\n  \"folds\": %d,\n  \"C\": ",
            (unsigned long long)o->seed, (unsigned long long)r->pipe->seed, o->folds);
    json_write_num(f, o->lr.C);
    fprintf(f, ",\n  \"hidden\": %lld,\n  \"n_subjects\": %lld,\n  \"n_graphs\": %lld,\n"
            "  \"classes\": [", (long long)H, (long long)d->ns, (long long)d->nl);
    for (int k = 0; k < d->K; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)d->labels[k]);
    fputs("],\n  \"class_subjects\": [", f);
    for (int k = 0; k < d->K; k++) {
        int64_t c = 0;
        for (int64_t s = 0; s < d->ns; s++) c += d->cls[s] == k;
        fprintf(f, "%s%lld", k ? ", " : "", (long long)c);
    }
    fputs("]", f);
    int pooled = p->nv - 1;
    for (int v = 0; v < p->nv; v++) {
        const pview *w = &views[v];
        if (v == pooled) fputs(",\n  \"pooled\": {", f);
        else if (v == 0) fprintf(f, ",\n  \"atlases\": {\n    \"%s\": {", w->name);
        else fprintf(f, ",\n    \"%s\": {", w->name);
        const char *ind = v == pooled ? "    " : "      ";
        fprintf(f, "\n%s\"n_samples\": %lld, \"n_features\": {\"pretrained\": %lld, "
                "\"random_init\": %lld, \"fc_baseline\": %lld}", ind, (long long)w->n,
                (long long)w->D[0], (long long)w->D[1], (long long)w->D[2]);
        for (int t = 0; t < NFEAT; t++) {
            fprintf(f, ",\n%s\"%s\": ", ind, feat_name[t]);
            write_block(f, p, d, v, t);
        }
        fprintf(f, ",\n%s\"few_shot\": ", ind);
        write_few_shot(f, p, v, ind);
        fprintf(f, "\n%s}", v == pooled ? "  " : "    ");
        if (v == pooled - 1) fputs("\n  }", f);
    }
    fputs(",\n  \"few_shot\": ", f);
    write_few_shot(f, p, pooled, "  ");
    fputs("\n}\n", f);
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return 0;
}

static int write_csvs(const char *dir, const presults *p, const pdata *d, graphs_store *gs,
                      const pview *views, bgfm_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/folds.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", path, strerror(errno));
    fputs("graph,participant_id,atlas,window,label,fold\n", f);
    for (int64_t j = 0; j < d->nl; j++)
        fprintf(f, "%lld,%s,%s,%lld,%lld,%d\n", (long long)d->g[j], d->sid[d->subj[j]],
                graphs_atlas_name(gs, d->atl[j]), (long long)d->win[j],
                (long long)d->labels[d->cls[d->subj[j]]], d->fold[d->subj[j]]);
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    snprintf(path, sizeof path, "%.4000s/predictions.csv", dir);
    if (!(f = fopen(path, "w")))
        return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", path, strerror(errno));
    fputs("view,features,participant_id,label,fold", f);
    for (int k = 0; k < d->K; k++) fprintf(f, ",p_%lld", (long long)d->labels[k]);
    fputs("\n", f);
    for (int v = 0; v < p->nv; v++)
        for (int t = 0; t < NFEAT; t++) {
            const double *P = p->oof + ((int64_t)v * NFEAT + t) * p->ns * p->K;
            for (int64_t s = 0; s < d->ns; s++) {
                double tot = 0;
                for (int k = 0; k < d->K; k++) tot += P[s * d->K + k];
                if (tot <= 0) continue;
                fprintf(f, "%s,%s,%s,%lld,%d", views[v].name, feat_name[t], d->sid[s],
                        (long long)d->labels[d->cls[s]], d->fold[s]);
                for (int k = 0; k < d->K; k++) fprintf(f, ",%.17g", P[s * d->K + k]);
                fputs("\n", f);
            }
        }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", path);
    return 0;
}

/* few_shot.dat + few_shot.gp, then gnuplot (fork/exec, no shell) -> few_shot.png. */
static int write_plot(bgfm_ctx *ctx, const char *dir, const presults *p, const char *vname,
                      int nsubj) {
    bgfm_err *e = &ctx->err;
    char dat[4400], gp[4400], png[4400];
    snprintf(dat, sizeof dat, "%s/few_shot.dat", dir);
    snprintf(gp, sizeof gp, "%s/few_shot.gp", dir);
    snprintf(png, sizeof png, "%s/few_shot.png", dir);
    FILE *f = fopen(dat, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", dat, strerror(errno));
    fputs("# k_label k_effective pretrained pretrained_sd random_init random_init_sd "
          "fc_baseline fc_baseline_sd (AUC, mean and sd over folds)\n", f);
    int pooled = p->nv - 1;
    double vals[1024];
    for (int ki = 0; ki < p->nk - 1; ki++) {
        if (p->ks[ki]) fprintf(f, "%lld", (long long)p->ks[ki]);
        else fprintf(f, "\"all (%.3g)\"", p->keff[ki]);
        fprintf(f, " %.6g", p->keff[ki]);
        for (int t = 0; t < NFEAT; t++) {
            double mean, sd;
            for (int fo = 0; fo < p->F && fo < 1024; fo++) vals[fo] = cell_at(p, pooled, t, ki, fo)[0];
            metrics_mean_sd(vals, p->F < 1024 ? p->F : 1024, &mean, &sd);
            fprintf(f, " %.6g %.6g", mean, sd);
        }
        fputs("\n", f);
    }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", dat);
    if (!(f = fopen(gp, "w")))
        return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s: %s", gp, strerror(errno));
    fprintf(f,
            "# few_shot.gp: run in this folder with `gnuplot few_shot.gp`\n"
            "set terminal pngcairo size 900,600 enhanced font 'DejaVu Sans,12'\n"
            "set output 'few_shot.png'\n"
            "set title 'Linear probe (%s, %d subjects, %d-fold CV grouped by subject)'\n"
            "set xlabel 'labelled training subjects per class'\n"
            "set ylabel 'ROC AUC (mean +- sd over folds)'\n"
            "set yrange [0:1.12]\nset logscale x 2\nset key bottom right box opaque\n"
            "set grid ytics\nset offsets graph 0.05, graph 0.05, 0, 0\n"
            "set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead dt 2 lc rgb 'gray40'\n"
            "set label 'chance' at graph 0.01, first 0.52 tc rgb 'gray40'\n"
            "plot 'few_shot.dat' u ($2*0.97):3:4:xtic(1) w yerrorlines lw 2 pt 7 lc rgb '#1b6ac9' t 'pretrained encoder', \\\n"
            "     '' u 2:5:6 w yerrorlines lw 2 pt 5 lc rgb '#d95f02' t 'random-init encoder', \\\n"
            "     '' u ($2*1.03):7:8 w yerrorlines lw 2 pt 9 lc rgb '#1b9e77' t 'FC upper triangle'\n",
            vname, nsubj, p->F);
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "probe: cannot write %s", gp);
    pid_t pid = fork();
    if (pid < 0) {
        log_warn(ctx, "probe: cannot start gnuplot (fork: %s); %s and %s are written, run "
                 "`gnuplot few_shot.gp` in %s", strerror(errno), dat, gp, dir);
        return 0;
    }
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        char *const argv[] = {(char *)(uintptr_t) "gnuplot", (char *)(uintptr_t) "few_shot.gp", NULL};
        execvp("gnuplot", argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !fs_exists(png))
        log_warn(ctx, "probe: gnuplot %s (status %d); %s and %s are written, run `gnuplot "
                 "few_shot.gp` in %s to draw few_shot.png",
                 WIFEXITED(st) && WEXITSTATUS(st) == 127 ? "is not installed" : "failed",
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, dat, gp, dir);
    return 0;
}

/* embeddings.h5: /graph (store indices of the labelled graphs), /pretrained and
 * /random_init (n_graphs, H) float64, written by this process alone. */
static int write_embeddings(const char *path, const pdata *d, bgfm_err *e) {
    hid_t f = h5io_create(MPI_COMM_SELF, path, e);
    if (f < 0) return e->code ? e->code : BGFM_EIO;
    hsize_t n1[1] = {(hsize_t)d->nl}, n2[2] = {(hsize_t)d->nl, (hsize_t)d->H};
    int rc = h5io_write_small(f, "/graph", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, n1, d->g, 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/pretrained", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, n2,
                              d->emb[0], 0, e);
    if (!rc)
        rc = h5io_write_small(f, "/random_init", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, n2,
                              d->emb[1], 0, e);
    int rc2 = h5io_close(&f, path, e);
    return rc ? rc : rc2;
}

/* ---- the stage ---------------------------------------------------------------------- */
static char *graphs_path(const char *up, bgfm_err *e) {
    const char *cand[] = {"index.h5", "graphs/index.h5"};
    for (int i = 0; i < 2; i++) {
        char *p = fs_join(up, cand[i], e);
        if (!p) return NULL;
        if (fs_exists(p)) return p;
        free(p);
    }
    return bgfm_strdup(e, up);
}

static int probe_run(bgfm_stage_run *r) {
    bgfm_ctx *ctx = r->ctx;
    bgfm_err *e = &ctx->err;
    const bgfm_params *w = &r->stage->with;
    probe_opts o;
    memset(&o, 0, sizeof o);
    o.folds = (int)params_int(w, "folds");
    o.seed = params_has(w, "seed") ? (uint64_t)params_int(w, "seed") : r->pipe->seed;
    o.lr = (logreg_opts){params_real(w, "C"), (int)params_int(w, "max_iter"),
                         params_real(w, "tol"), 1};
    const char *bad = NULL;
    o.n_k = parse_k(params_value(w, "few_shot"), o.k, &bad);
    BGFM_ASSERT(o.n_k > 0); /* validate() checked it */
    char *ckpt = NULL, *gpath = NULL;
    graphs_store *gs = NULL;
    model mp, mr;
    memset(&mp, 0, sizeof mp);
    memset(&mr, 0, sizeof mr);
    pdata d;
    memset(&d, 0, sizeof d);
    pview *views = NULL;
    presults p;
    memset(&p, 0, sizeof p);
    int *amap = NULL, nv = 0;
    double *X = NULL;
    uint8_t *use = NULL;
    int rc = 0;
    if (!r->upstream || !r->upstream2)
        rc = bgfm_fail(e, BGFM_EUSAGE, "stage '%s': probe needs an earlier pretrain stage and "
                       "an earlier connectivity stage", r->stage->name);
    if (!rc && !(ckpt = fs_join(r->upstream, "final.h5", e))) rc = BGFM_ENOMEM;
    if (!rc && !ckpt_is_complete(ckpt))
        rc = bgfm_fail(e, BGFM_EDATA, "probe: %s is not a complete checkpoint; rerun the pretrain "
                       "stage", ckpt);
    if (!rc && !(gpath = graphs_path(r->upstream2, e))) rc = BGFM_ENOMEM;
    if (!rc) rc = graphs_open(gpath, &gs, e);
    if (!rc) rc = ckpt_load(ckpt, &mp, NULL, NULL, e);
    if (!rc) rc = model_init(&mr, &mp.cfg, e);
    if (!rc) model_init_params(&mr, r->pipe->seed); /* pretraining's own init (model.md 5) */
    if (!rc && !(amap = bgfm_calloc(e, (size_t)graphs_n_atlases(gs) + 1, sizeof *amap, "atlas map")))
        rc = BGFM_ENOMEM;
    for (int a = 0; !rc && a < graphs_n_atlases(gs); a++) {
        amap[a] = model_atlas_find(&mp, graphs_atlas_name(gs, a));
        if (amap[a] < 0 || mp.cfg.atlas_nodes[amap[a]] != graphs_atlas_nodes(gs, a) ||
            mp.cfg.k != graphs_rwse_steps(gs))
            rc = bgfm_fail(e, BGFM_EDATA, "probe: atlas '%s' of %s is not in the checkpoint %s "
                           "(or has another node count / RWSE steps); probe graphs of the atlases "
                           "the model was pretrained on", graphs_atlas_name(gs, a), gpath, ckpt);
    }
    if (!rc) rc = collect(gs, &d, gpath, e);
    if (!rc) rc = probe_folds(d.ns, d.cls, d.K, o.folds, o.seed, d.fold, e);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    log_info(ctx, "probe: %lld labelled graphs of %lld subjects, %d classes, %d folds",
             (long long)d.nl, (long long)d.ns, d.K, o.folds);
    if ((rc = embed_all(r, gs, &mp, &mr, amap, &d))) goto done;
    /* views: atlases, then pooled */
    nv = d.A + 1;
    views = bgfm_calloc(e, (size_t)nv, sizeof *views, "views");
    if (!views) rc = BGFM_ENOMEM;
    for (int v = 0; v < nv && !rc; v++) rc = make_view(&d, gs, v < d.A ? v : -1, &views[v], e);
    p.nv = nv;
    p.F = o.folds;
    p.K = d.K;
    p.ns = d.ns;
    p.nk = o.n_k + 1;
    memcpy(p.ks, o.k, (size_t)o.n_k * sizeof *p.ks);
    p.ks[o.n_k] = 0;
    if (!rc) {
        p.cell = bgfm_calloc(e, (size_t)(nv * NFEAT * p.nk * p.F * NMET), sizeof *p.cell, "results");
        p.oof = bgfm_calloc(e, (size_t)((int64_t)nv * NFEAT * d.ns * d.K), sizeof *p.oof, "results");
        p.keff = bgfm_calloc(e, (size_t)p.nk, sizeof *p.keff, "results");
        use = bgfm_malloc(e, (size_t)(d.ns ? d.ns : 1), "few-shot");
        if (!p.cell || !p.oof || !p.keff || !use) rc = BGFM_ENOMEM;
    }
    if (!rc && views[nv - 1].n == 0)
        rc = bgfm_fail(e, BGFM_EDATA, "probe: no (subject, window) has a labelled graph in every "
                       "atlas of %s, so the pooled view is empty", gpath);
    /* effective k: mean over folds and classes of the training subjects used */
    for (int ki = 0; ki < p.nk && !rc; ki++) {
        double s = 0;
        for (int f = 0; f < p.F; f++) {
            probe_few_shot(d.ns, d.cls, d.fold, d.K, f, p.ks[ki], o.seed, use);
            for (int64_t q = 0; q < d.ns; q++) s += use[q];
        }
        p.keff[ki] = s / ((double)p.F * d.K);
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    /* cells: (view, features, k, fold), dealt round-robin to ranks */
    int64_t task = 0;
    double t0 = MPI_Wtime();
    for (int v = 0; v < nv && !rc; v++)
        for (int t = 0; t < NFEAT && !rc; t++) {
            int mine = 0;
            for (int ki = 0; ki < p.nk; ki++)
                for (int f = 0; f < p.F; f++) mine |= (task + ki * p.F + f) % ctx->size == ctx->rank;
            if (!mine) {
                task += (int64_t)p.nk * p.F;
                continue;
            }
            X = view_matrix(&d, &views[v], t, e);
            if (!X) {
                rc = BGFM_ENOMEM;
                break;
            }
            for (int ki = 0; ki < p.nk && !rc; ki++)
                for (int f = 0; f < p.F && !rc; f++, task++) {
                    if (task % ctx->size != ctx->rank) continue;
                    probe_few_shot(d.ns, d.cls, d.fold, d.K, f, p.ks[ki], o.seed, use);
                    double *oof = ki == p.nk - 1 ? p.oof + ((int64_t)v * NFEAT + t) * d.ns * d.K : NULL;
                    rc = probe_cell(X, views[v].n, views[v].D[t], views[v].subj, d.ns, d.cls, d.K,
                                    d.fold, f, use, &o.lr, cell_at(&p, v, t, ki, f), oof, e);
                }
            free(X);
            X = NULL;
        }
    rc = bgfm_ctx_agree(ctx, rc);
    if (!rc) rc = allreduce_sum(ctx, p.cell, (int64_t)nv * NFEAT * p.nk * p.F * NMET);
    if (!rc) rc = allreduce_sum(ctx, p.oof, (int64_t)nv * NFEAT * d.ns * d.K);
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) goto done;
    double t_fit = MPI_Wtime() - t0;
    if (ctx->rank == 0) {
        char dir[4200], path[4400];
        snprintf(dir, sizeof dir, "%s/report", r->outdir);
        rc = fs_mkdirs(dir, e);
        snprintf(path, sizeof path, "%s/probe.json", dir);
        if (!rc) rc = write_json(path, r, &p, &d, views, &o, ckpt, gpath, mp.cfg.H, e);
        if (!rc) rc = write_csvs(dir, &p, &d, gs, views, e);
        snprintf(path, sizeof path, "%s/embeddings.h5", dir);
        if (!rc) rc = write_embeddings(path, &d, e);
        if (!rc) rc = write_plot(ctx, dir, &p, d.A > 1 ? "atlases pooled" : views[0].name, (int)d.ns);
        if (!rc && r->metrics) {
            char *line = NULL;
            size_t ll = 0;
            FILE *mf = open_memstream(&line, &ll);
            if (!mf) rc = bgfm_fail(e, BGFM_ENOMEM, "probe: out of memory for the metrics line");
            for (int t = 0; mf && t < NFEAT; t++) {
                double vals[1024], mean, sd;
                int nf = p.F < 1024 ? p.F : 1024;
                for (int f = 0; f < nf; f++) vals[f] = cell_at(&p, nv - 1, t, p.nk - 1, f)[0];
                metrics_mean_sd(vals, nf, &mean, &sd);
                if (!t) {
                    fputs("{\"stage\": ", mf);
                    json_write_str(mf, r->stage->name);
                }
                fprintf(mf, ", \"probe_auc_%s\": ", feat_name[t]);
                json_write_num(mf, mean);
            }
            if (mf) {
                fputs(", \"fit_seconds\": ", mf);
                json_write_num(mf, t_fit);
                fputs("}", mf);
                fclose(mf);
                rc = fs_append_line(r->metrics, line, e);
            }
            free(line);
        }
    }
    rc = bgfm_ctx_agree(ctx, rc);
done:
    free(X);
    free(use);
    free(p.cell);
    free(p.oof);
    free(p.keff);
    for (int v = 0; views && v < nv; v++) pview_free(&views[v]);
    free(views);
    free(amap);
    pdata_free(&d);
    model_free(&mp);
    model_free(&mr);
    graphs_close(&gs);
    free(ckpt);
    free(gpath);
    return rc;
}

const bgfm_stage_kind bgfm_stage_probe = {
    .name = "probe",
    .summary = "linear probes (grouped CV, few-shot) of pretrained vs random-init encoder "
               "embeddings and FC baselines -> report/probe.json, few_shot.png",
    .opts = probe_opts_table,
    .n_opts = (int)(sizeof probe_opts_table / sizeof probe_opts_table[0]),
    .consumes = BGFM_ART_CHECKPOINT,
    .consumes2 = BGFM_ART_GRAPHS,
    .produces = BGFM_ART_REPORT,
    .rank_sensitive = 0,
    .validate = probe_validate,
    .run = probe_run,
    .extra_inputs = NULL,
};
