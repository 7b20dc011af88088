/* model.h: the BrainGFM-style model of docs/model.md: configuration, the ONE flat
 * parameter buffer and its name/shape table (generated from a single list), the
 * workspace arena, and the GMAE + GCL forward/backward of a batch of one atlas.
 * Not the optimiser (optim.h), not checkpoints (ckpt.h), not the training loop. */
#ifndef BGFM_MODEL_H
#define BGFM_MODEL_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/layers.h"

#define MODEL_MAX_ATLASES 32
#define MODEL_MAX_LAYERS 16
#define MODEL_NAME_MAX 96

/* Graph readouts (model.md section 2): the mean of the region rows, or the region
 * readout e = (N/n) W_ro,a vec_S(Wc z_i) + b_ro, which keeps which region carries what. */
enum model_readout { MODEL_READOUT_MEAN = 0, MODEL_READOUT_REGION = 1 };

/* "mean", "region" -> enum model_readout, or -1 when unknown. */
int model_readout_parse(const char *s);
const char *model_readout_name(int readout);

/* Architecture (model.md symbols). D_in = N_max + k. */
typedef struct model_cfg {
    int H, nh, F, k, L, Ld, P, N_max;
    int readout;      /* enum model_readout (0: mean, as before the region readout) */
    int rdim;         /* region readout: width of each region's projection Wc z_i */
    int norm;         /* 1: population input normalisation (norm/<atlas>/{mean,std}) */
    int pop_rank;     /* population head: rows of pop/<atlas>/{W,b} (0: none; model.md s. 11) */
    int embed;        /* enum model_embed: what the graph embedding of the probe is */
    int pop_site_fit; /* provenance: 1 + the pop_site mode (pop.h POP_SITE_NONE, _CENTRE,
                       * _HARMONISE) the head was fitted with, final.h5's attribute pop_site;
                       * 0: not recorded */
    int pcs;          /* embedding pcs+pop: rows of pcs/<atlas>/{W,b}, the readout's leading
                       * principal axes (0 otherwise; model.md section 11) */
    int n_atlases;
    char atlas[MODEL_MAX_ATLASES][64]; /* names, model atlas order */
    int atlas_nodes[MODEL_MAX_ATLASES];
} model_cfg;

/* The embedding a pretrained model gives a graph (model.md section 11): the encoder's
 * readout (H numbers), the population head's pop_rank numbers, or both (readout first). */
enum model_embed { MODEL_EMBED_ENCODER = 0, MODEL_EMBED_BOTH = 1, MODEL_EMBED_POP = 2,
                   MODEL_EMBED_PCS = 3 /* pcs+pop: the readout on cfg.pcs principal axes */ };
/* "encoder", "encoder+pop", "pop", "pcs+pop" -> enum model_embed, or -1 when unknown. */
int model_embed_parse(const char *s);
const char *model_embed_name(int embed);

/* Modes (bit set): GMAE = reconstruction + structure, GCL = contrastive. */
enum model_mode { MODEL_GMAE = 1, MODEL_GCL = 2, MODEL_GMAE_GCL = 3 };
/* "gmae", "gcl", "gmae+gcl" -> mode, or 0 when unknown. */
int model_mode_parse(const char *s);
const char *model_mode_name(int mode);

/* How a tensor is initialised (model.md section 5) and whether AdamW decays it. */
typedef enum model_init_kind {
    MODEL_INIT_XAVIER, /* matrices: Xavier-uniform, weight decay on */
    MODEL_INIT_ZERO,   /* biases, LayerNorm beta */
    MODEL_INIT_ONE,    /* LayerNorm gamma */
    MODEL_INIT_NORMAL  /* tokens, embeddings, mask token: N(0, 0.02^2) */
} model_init_kind;

typedef struct model_tensor {
    char name[MODEL_NAME_MAX]; /* model.md section 6 */
    int64_t off;               /* offset into the flat buffers (floats) */
    int64_t rows, cols;        /* cols == 0: 1-D of length rows */
    model_init_kind init;
    int decay;                 /* 1: AdamW weight decay applies (matrices only) */
    int buffer;                /* 1: fitted, never trained: a data statistic (norm/...) or
                                * the population head (pop/..., fitted by pop.h) and the
                                * readout's principal axes (pcs/..., fitted by pop.h) */
} model_tensor;

/* Offsets (floats) of one block's tensors. Wq|Wk|Wv are adjacent (one (3H, H) matrix
 * for the fused projection), and so are bq|bk|bv. */
typedef struct model_block {
    int64_t gW, gb, lng_g, lng_b, Wqkv, bqkv, Wo, bo, ln1_g, ln1_b, W1, b1, W2, b2, ln2_g, ln2_b;
} model_block;

typedef struct model {
    model_cfg cfg;
    int D_in;
    int n_tensors;
    model_tensor *t;   /* owned */
    int64_t n_params;  /* every float of the layout, buffers included */
    int64_t n_train;   /* the trained ones: [0, n_train); buffers follow (no gradient) */
    int64_t n_stat;    /* [n_train, n_stat): data statistics (norm/...); [n_stat, n_params):
                        * the population head, learned from the people (pop/...) */
    float *w;          /* parameters (owned), n_params */
    float *g;          /* gradients, same layout (owned) */
    int64_t in_W, in_b, tok, node[MODEL_MAX_ATLASES], re_W, re_b, mask_tok, out_W, out_b;
    int64_t p_W1, p_b1, p_W2, p_b2;
    int64_t ro_Wc, ro_b, ro_W[MODEL_MAX_ATLASES]; /* region readout (-1 with the mean) */
    int64_t nm_mean[MODEL_MAX_ATLASES], nm_std[MODEL_MAX_ATLASES]; /* input norm (-1: none) */
    int64_t pop_W[MODEL_MAX_ATLASES], pop_b[MODEL_MAX_ATLASES]; /* population head (-1: none) */
    int64_t pcs_W[MODEL_MAX_ATLASES], pcs_b[MODEL_MAX_ATLASES]; /* readout axes (-1: none) */
    model_block enc[MODEL_MAX_LAYERS], dec[MODEL_MAX_LAYERS];
} model;

/* Check a configuration (user error messages name `where`). */
int model_cfg_check(const model_cfg *c, const char *where, bgfm_err *e);
/* Build the table and allocate w, g (zeroed). */
int model_init(model *m, const model_cfg *c, bgfm_err *e);
void model_free(model *m); /* accepts a zeroed/freed model */
/* Parameters from the counter-based generator (RNG_INIT, i0 = tensor index). */
void model_init_params(model *m, uint64_t seed);
/* Tensor by name, NULL if absent. */
const model_tensor *model_find(const model *m, const char *name);
/* Copy the data statistics (norm/...) of src into dst (same architecture): a fresh model
 * that must see its inputs as src does. Not the population head, which is learned. */
void model_copy_buffers(model *dst, const model *src);
/* Width of the encoder's graph embedding (the readout's output): what the projection
 * head and the fine-tuning heads read. */
int64_t model_embed_dim(const model *m);
/* Width of the model's embedding of a graph under cfg.embed: what probe_embed writes and
 * report/embeddings.h5 stores (the readout's H or its pcs axes, pop_rank, or both). */
int64_t model_feature_dim(const model *m);
/* FC entry p (row-major in the N x N matrix) of a graph of atlas a as the model sees it,
 * in double: (C_p - mean_a,p) / std_a,p with the input normalisation, else C_p. What the
 * population head is fitted on (pop.c) and applied to (model_pop_apply). */
double model_input_entry(const model *m, int a, const float *fc, int64_t p);
/* The population head of atlas a (model index) on one graph: out[k] = b_k + sum over
 * i < j of W[k, q(i,j)] x_ij, x the FC as the model sees it (input-normalised when
 * cfg.norm), q the row-major index of the upper triangle. out: pop_rank floats. */
void model_pop_apply(const model *m, int a, int N, const float *fc, float *out);
/* The readout's principal axes of atlas a on one graph's readout e (H floats):
 * out[k] = b_k + sum_h W[k, h] e_h, k < cfg.pcs (embedding pcs+pop). */
void model_pcs_apply(const model *m, int a, const float *e, float *out);
/* The fitted tail re-laid: the population head narrowed (or widened) to r rows per atlas
 * (cfg.pop_rank = r; the leading rows of pop/<atlas>/{W,b} kept, new rows zero), the
 * readout axes to `pcs` rows (kept likewise) and cfg.embed = embed; every other float
 * unchanged (the head and the axes are the layout's tail). m->g is re-allocated, zero.
 * pop_rank: auto uses it once the ranks are chosen (pop.h). */
int model_pop_resize(model *m, int r, int pcs, int embed, bgfm_err *e);
/* Index of atlas `name` in the model's order, -1 if absent. */
int model_atlas_find(const model *m, const char *name);

/* One batch: B graphs of ONE atlas (model atlas index), N = that atlas's node count.
 * fc (B,N,N), adj (B,N,N), rwse (B,N,k); gidx: global graph indices (key the draws).
 * fc_b, adj_b, rwse_b (same shapes, or all NULL): the graphs GCL's view b is made from,
 * graph b's positive partner (another window of the same scan: model.md section 4);
 * NULL: view b is a corruption of the graph itself. */
typedef struct model_batch {
    int atlas, B, N;
    const float *fc;
    const uint8_t *adj;
    const float *rwse;
    const int64_t *gidx;
    const float *fc_b;
    const uint8_t *adj_b;
    const float *rwse_b;
} model_batch;

/* What the GMAE decoder reads besides node identities (model.md section 3):
 * nodes: W_re z_i of the visible nodes, the mask token for masked ones (the contract);
 * nodes+graph: that, plus the visible view's graph embedding e_a added to every region
 * row; graph: the mask token on every region row, plus e_a, so the reconstruction has
 * to pass through the graph embedding (a bottleneck). */
enum model_dec_input { MODEL_DEC_NODES = 0, MODEL_DEC_NODES_GRAPH = 1, MODEL_DEC_GRAPH = 2 };
/* "nodes", "nodes+graph", "graph" -> enum model_dec_input, or -1 when unknown. */
int model_dec_input_parse(const char *s);
const char *model_dec_input_name(int d);

/* Per-step hyper-parameters and keys of the draws. */
typedef struct model_hp {
    int mode;
    double lambda_rec, lambda_adj, lambda_cl, tau_cl;
    double mask_ratio, p_node, p_edge;
    float p_drop;
    int mask_columns;       /* model.md section 3 no-leak rule (default 1) */
    uint64_t seed;
    int64_t epoch, step;    /* masks/corruptions keyed by epoch, dropout by step */
    int dec_input;          /* enum model_dec_input (0: the contract's decoder input) */
    int rec_partner;        /* 1: reconstruct the partner graph's rows (bt->fc_b), not the
                             * graph's own: another window of the same scan (model.md s. 3) */
} model_hp;

typedef struct model_losses {
    double total, rec, adj, cl;
} model_losses;

/* Number of masked nodes for N nodes and ratio r: min(floor(r N + 0.5), N - 4). */
int model_n_masked(int N, double r);

/* Activations of one block over B sequences of T rows (row 0 of each = atlas token). */
typedef struct model_blk_act {
    float *u, *xg, *rg, *h1, *qkv, *lse, *att, *x1, *r1, *h2, *f1, *x2, *r2, *hout;
} model_blk_act;

/* One pass of an encoder (or the decoder) over n region nodes per graph. */
typedef struct model_run {
    int n, T, nblk;
    int32_t *idx;          /* (B, n) original node indices, ascending */
    int32_t *rowptr, *col; /* CSR of Ahat per graph: (B, n+1), (B, n*n) */
    float *val;            /* (B, n*n) */
    float *X, *R;          /* encoder inputs: FC part (B, n, N), RWSE (B, n, k) */
    uint8_t *corrupt;      /* corrupted views: (B, N) node flags */
    uint8_t *keep;         /* (B, N, N) edge keep mask */
    float *h0;             /* (B, T, H) block-0 input */
    model_blk_act blk[MODEL_MAX_LAYERS];
    float *pool;           /* (B, H) graph embeddings (encoder) */
    float *rp;             /* region readout: (B, T, rdim) Wc z rows (token rows unused) */
    float *rv;             /* region readout: (B, N * rdim) the scaled, scattered rows */
} model_run;

/* Graph prompts of one atlas (N nodes; docs/adapt.md "prompt"): a feature prompt
 * (N, H) added to the region rows of the encoder's input h0 (the input layer's output,
 * next to the node embeddings), and an edge prompt: the upper triangle (N(N-1)/2,
 * row-major, i < j) of a symmetric logit matrix P; the encoder then uses the weighted
 * adjacency w_ij = sigmoid(P_ij + margin (2 A_ij - 1)) (i != j, in (0, 1)) in place of
 * A: Ahat = Dt^-1/2 (W + I) Dt^-1/2, Dt_ii = 1 + sum_j w_ij. Scratch (model_prompt_alloc)
 * and gradients belong to the caller. */
typedef struct model_prompt {
    const float *feat;    /* (N, H) or NULL */
    const float *edge;    /* (N(N-1)/2) or NULL */
    float margin;
    int frozen;           /* 1: the encoder's own parameters get no gradient */
    float *gfeat, *gedge; /* gradients, ADDED by model_encode_backward (NULL: not wanted) */
    float *w, *dA, *q;    /* scratch: (B_max, N_big, N_big) x 2, (B_max, N_big + 1, H) */
} model_prompt;

/* Workspace arena: sized once for (largest atlas N, B_max), re-carved per batch by
 * pointer arithmetic; forward/backward never allocate. */
typedef struct par_pool par_pool;
typedef struct model_ws {
    int B_max, N_big;
    int nthr;            /* threads of the loops between the GEMMs (= OpenBLAS's) */
    par_pool *pool;      /* owned: their team (par.h) */
    size_t bytes;
    unsigned char *base; /* owned */
    /* bound to the current batch */
    int B, N, M, nv;
    model_run ea, eb, dec; /* encoder view a (visible or corrupted a), view b, decoder */
    uint8_t *mask;         /* (B, N) 1 = masked */
    int32_t *perm;         /* (N) */
    float *S1, *S2, *S3, *S4, *F1, *F2, *G0, *G1, *G2, *attn;
    float *y, *tgt, *dy;   /* (B*M, N) reconstruction */
    float *dm;             /* (B*M, H) decoder rows of the masked nodes */
    float *E, *p1, *pr, *p2, *z, *nrm, *dz, *dp2, *dpr, *dp1, *dE, *ntx;
    float *rdv, *rdp;      /* region readout backward: (B, N * rdim), (B, T, rdim) */
    float *xn, *xnb;       /* input normalisation: the batch's and the partners' (B, N, N) */
    double *lossb;         /* (B) per-graph structure losses */
    int64_t gidx_step;
    model_hp hp;
    model_batch bt;
    const model_prompt *prompt; /* model_encode_prompted's, NULL otherwise */
} model_ws;

int model_ws_init(model_ws *ws, const model *m, int B_max, bgfm_err *e);
void model_ws_free(model_ws *ws);

/* Forward of the batch up to the projections (ws->z, (2B, P): view a rows then view
 * b rows), with L_rec and L_adj (and their output gradients) computed. Draws are
 * generated here from hp's keys. */
void model_forward(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                   model_losses *out);
/* The encoder's readout (H floats, in ws) of one full graph in eval mode: GCL mode with
 * no corruption, dropout 0 (model.md section 2). ws from model_ws_init(ws, m, 1 or more);
 * gidx keys the (unused) draws. What the probe and the readout axes' fit read. */
const float *model_graph_readout(model *m, model_ws *ws, int atlas, int N, const float *fc,
                                 const uint8_t *adj, const float *rwse, int64_t gidx);
/* NT-Xent over the local batch's projections, writing ws->dz; returns L_cl. The
 * data-parallel version gathers the projections of every rank instead and calls
 * layer_ntxent on the global batch. */
double model_contrastive_local(model_ws *ws, const model *m);
/* Backward of everything, ADDING into m->g. */
void model_backward(model *m, model_ws *ws);
/* The same, calling hook(arg, off, n) once, as soon as the gradients of the flat
 * buffer's tail [off, off + n) (decoder and projection head: model_grad_tail) are
 * final and before the encoder's own backward: data-parallel training starts their
 * all-reduce there, overlapped with the rest of the backward pass. */
typedef void (*model_grad_hook)(void *arg, int64_t off, int64_t n);
void model_backward_hooked(model *m, model_ws *ws, model_grad_hook hook, void *arg);
/* Offset of that tail in the flat buffer (everything after the encoder), and its end
 * (the buffers after it have no gradient and are not reduced). */
int64_t model_grad_tail(const model *m);
int64_t model_grad_end(const model *m);
/* Adaptation (docs/adapt.md): the encoder alone on the full, uncorrupted graphs of bt
 * (no masking, no corruption; dropout hp->p_drop keyed by hp->seed, hp->step and the
 * graph indices, 0 in eval), then the readout: graph embeddings in ws->E (B,
 * model_embed_dim). The backward takes dE (B, H), the gradient of the loss with respect
 * to those embeddings, and ADDS the gradients of the input layer, embeddings, encoder
 * blocks and readout into m->g (the prefix [0, model_grad_tail(m))). */
void model_encode(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp);
void model_encode_backward(model *m, model_ws *ws, const float *dE);
/* The same with graph prompts pr (NULL: model_encode): the backward then also ADDS
 * pr->gfeat and pr->gedge, and with pr->frozen skips the encoder's parameter gradients
 * (m->g untouched). pr must outlive the backward. */
void model_encode_prompted(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                           const model_prompt *pr);
/* The scratch of pr for ws (freed by model_prompt_free; the prompts are not touched). */
int model_prompt_alloc(model_prompt *pr, const model_ws *ws, const model *m, bgfm_err *e);
void model_prompt_free(model_prompt *pr);
/* Edge prompt: index of the pair (i, j), i != j, in the upper triangle of N nodes. */
static inline int64_t model_prompt_pair(int64_t i, int64_t j, int64_t N) {
    if (i > j) {
        int64_t t = i;
        i = j;
        j = t;
    }
    return i * N - i * (i + 1) / 2 + (j - i - 1);
}
/* Convenience: zero m->g, forward, local contrastive, backward; losses weighted. */
void model_step(model *m, model_ws *ws, const model_batch *bt, const model_hp *hp,
                model_losses *out);

#endif
