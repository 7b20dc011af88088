/* pop.h: fitting the model's population head (docs/model.md section 11). Per atlas, over
 * the graphs training read: the FC upper triangle as the model sees it (input-normalised),
 * centred; its leading principal subspace (at most POP_PCA components, through the Gram
 * matrix); in it, the directions along which people differ most relative to how one
 * person's windows differ: the generalised eigenvectors of the between-scan covariance
 * against the within-scan covariance shrunk towards its mean eigenvalue. The pop_rank
 * leading ones, mapped back to the triangle, are pop/<atlas>/W; pop/<atlas>/b centres.
 * No label is read: only which graphs are windows of one scan, and (pop_site: centre or
 * harmonise) which site each scan comes from: the rows are then centred on their site's
 * mean before the principal subspace and the discriminant (and the held-out rule), so that
 * a site's shift of everyone's FC is not a direction along which people differ, and with
 * harmonise each site's spread is matched too (POP_SITE_HARMONISE); W is applied to the FC
 * as it is, and b centres over all rows (model.md section 11, "Sites").
 * Not the head's use (model_pop_apply, model.c). */
#ifndef BGFM_POP_H
#define BGFM_POP_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/graphs.h"
#include "bgfm/model.h"
#include "bgfm/pca.h"

#define POP_PCA 150 /* principal components the discriminant is solved in (at most) */

/* pop_rank: auto (docs/model.md section 11, "The head's rank"): per atlas, the scans are
 * split in two halves POP_HO_FITS / 2 times (a fixed hash of the scan number, so the same
 * for any seed and rank count); the discriminant fitted on one half scores its
 * POP_HO_DIRS leading directions on the other by the between / within ratio. A fit's count
 * at a threshold C: the leading directions whose held-out ratio is at least C times the
 * median of directions POP_HO_LEAD+1 .. POP_HO_DIRS (the bulk), at most POP_HO_LEAD.
 * The plateau rule: m(C) the mean count of the POP_HO_FITS fits at each C of the ladder
 * POP_HO_LADDER (1.2 to 3, steps of about 7/6). Going up the ladder from its foot, the
 * first pair of neighbouring thresholds over which the count holds still (the fits' counts
 * sum at most POP_HO_FLAT more at the lower one: m falls by at most 6/16 of a direction)
 * is a gap of round(m) at the upper one (halves up), if that is at least 2 and m at the
 * lower one at most POP_HO_CAP (a count that runs to the cap is no plateau). No such pair:
 * no gap; none either when the halves are too small to have a bulk (fewer than
 * 2 POP_HO_LEAD + 1 scans each). Where a few factors stand out the count holds still over
 * a range of thresholds; where many weak ones begin to, it falls steadily as C rises.
 * The factors belong to the people, not to the atlas: every atlas's head keeps the
 * largest count of the atlases (pop_rank_shared), POP_RANK_FALLBACK when none has one. */
#define POP_RANK_AUTO_MAX 16 /* rows of pop/<atlas>/W while pop_rank: auto trains */
#define POP_RANK_FALLBACK 8
#define POP_HO_DIRS 64
#define POP_HO_LEAD 16
#define POP_HO_FITS 16 /* 8 splits, each fitted both ways */
#define POP_HO_STEPS 7
#define POP_HO_LADDER {1.2, 1.4, 1.65, 1.9, 2.2, 2.6, 3.0}
#define POP_HO_FLAT 6 /* of the POP_HO_FITS fits' summed counts */
#define POP_HO_CAP 12
/* Where no atlas shows a gap, how reproducibly the two halves find the same directions
 * (model.md section 11, "When no plateau"): per split and half, the half's scans' mean
 * rows scored by both halves' POP_RP_DIRS leading directions; for k = 1 .. POP_RP_DIRS,
 * the smallest canonical correlation between the two fits' k leading scores, averaged over
 * the POP_HO_FITS (split, half) pairs. Shared factors span the same space in both halves
 * whatever their order within it; directions fitted to one half's own people do not. Its
 * peak over k >= 2, if at least POP_RP_MIN, is the count (the largest of the atlases). */
#define POP_RP_DIRS 12
#define POP_RP_MIN 0.7
/* The head alone is read at a reproducible peak only from this many directions: two do
 * not carry a population's traits (results 12v, 12w); at a peak of 2 embedding: auto
 * reads pcs+pop at that rank. */
#define POP_RP_ALONE_MIN 3
/* When no atlas shows a gap, embedding: auto reads pcs+pop (model.md section 11, "No
 * gap"): the head's POP_RANK_FALLBACK discriminant rows followed by the POP_FC_PCS
 * leading principal axes of the same centred rows, and the encoder's readout on its
 * POP_READOUT_PCS leading principal axes over the graphs training read. */
#define POP_FC_PCS 4
#define POP_READOUT_PCS 8

/* People who stand apart from the rest (docs/model.md section 11, "People who stand
 * apart"; pop_scan.h): a scan whose distance from the others, in the discriminant's metric,
 * lies more than pop_outlier_z robust deviations above the scans' typical one (on a log
 * scale) is left out of the fit: its FC is its own (a scan kept with half its volumes
 * scrubbed, results 12v), and a direction it alone spans is not a way people differ.
 * Measured where at least POP_APART_MIN scans have two or more windows; the log names
 * the POP_APART_LOG furthest. POP_APART_Z is the threshold results 12v measured. */
#define POP_APART_Z 4.0
#define POP_APART_MIN 20
#define POP_APART_LOG 8
/* People who hold a leading direction themselves (pop_outlier_share > 0; opt-in, results
 * 12z): while one scan holds at least pop_outlier_share of the variance of one of the
 * POP_HOLD_DIRS leading directions (over the scans' means), it is left out and the
 * directions found again, at most POP_HOLD_MAX times. */
#define POP_HOLD_DIRS 8
#define POP_HOLD_MAX 16

/* What pop_fit_rows found besides W and b. */
typedef struct pop_rows_out {
    int rank;        /* auto: the plateau rule's gap (0: no gap, or not measured) */
    double ratio;    /* the leading between / within ratio */
    int64_t multi;   /* scans with two or more rows */
    int measured;    /* auto: 1 when the halves had a bulk to measure against */
    double held_at[POP_HO_STEPS]; /* auto, measured: the mean count at each threshold */
    int held_step;   /* auto: the flat pair's lower threshold (index), -1: none */
    double repro[POP_RP_DIRS]; /* auto, measured: the halves' reproducibility, k = 1 .. */
    int repro_rank;  /* auto, measured: its peak over k >= 2 if at least POP_RP_MIN, else 0 */
    /* with sites (pop_site centre or harmonise): per fitted direction k (at most
     * POP_RANK_AUTO_MAX), the largest share of its between-scan variance (of the scans' mean
     * features, about their site's mean, on the centred rows) that one site holds, that
     * site (0 .. sites-1) and its share of the scans; site_dirs of them (0: not measured) */
    double site_share[POP_RANK_AUTO_MAX], site_scans[POP_RANK_AUTO_MAX];
    int site_at[POP_RANK_AUTO_MAX], site_dirs;
    /* people who stand apart (pop_fit_opts.apart_z > 0; pop_scan.h): the scans left out of
     * the fit, of the scans measured (0: not measured), the largest few (scan, z) */
    int64_t apart, apart_of, apart_scan[POP_APART_LOG];
    double apart_z[POP_APART_LOG];
    /* people who hold a leading direction (pop_fit_opts.apart_share > 0): how many were left
     * out, in the order left out (the first POP_APART_LOG: scan, share, direction 1 ..) */
    int64_t held, held_scan[POP_APART_LOG];
    double held_share[POP_APART_LOG];
    int held_dir[POP_APART_LOG];
    pca_top_info solve; /* how the principal subspace was found (pca.h, pca_gram_top) */
} pop_rows_out;

/* A direction whose between-scan variance lies for at least POP_SITE_OWN in one site that
 * holds at most half the scans is that site's own variation (its physiology, its
 * artifacts), not a way people differ: the log says so (results 12t). */
#define POP_SITE_OWN 0.8

/* The first of the r leading directions of a fit (f) that is one site's own (POP_SITE_OWN),
 * or -1. pop_site: auto fits centred, and again harmonised when some atlas has one. */
int pop_site_own(const pop_rows_out *f, int r);

typedef struct pop_fit_info {
    int64_t graphs[MODEL_MAX_ATLASES]; /* graphs fitted per model atlas (0: no fit[] either) */
    int dims[MODEL_MAX_ATLASES];       /* directions fitted (<= pop_rank; rows after: 0) */
    int sites[MODEL_MAX_ATLASES];      /* sites the rows were centred on (0: not centred) */
    pop_rows_out fit[MODEL_MAX_ATLASES];
    /* fit[a].site_at[k] named: its dataset and site (the store's strings, "" without) */
    const char *site_dataset[MODEL_MAX_ATLASES][POP_RANK_AUTO_MAX];
    const char *site_name[MODEL_MAX_ATLASES][POP_RANK_AUTO_MAX];
    /* fit[a].apart_scan[k] named: the participant ("" without) */
    const char *apart_name[MODEL_MAX_ATLASES][POP_APART_LOG];
    /* fit[a].held_scan[k] named: the participant ("" without) */
    const char *held_name[MODEL_MAX_ATLASES][POP_APART_LOG];
    float *pc_W[MODEL_MAX_ATLASES];    /* pop_fit's npc principal rows (owned; pcs+pop) */
    float *pc_b[MODEL_MAX_ATLASES];
} pop_fit_info;

void pop_fit_info_free(pop_fit_info *info);

/* pop_site (model.md section 11, "Sites"): none, the rows as they are; centre, each row
 * less its site's mean; harmonise, centred and then, only to choose the directions, each
 * site's scores in the principal subspace mapped to the pooled covariance (S_k^-1/2 S^1/2,
 * S_k shrunk by POP_SITE_SHRINK towards its mean eigenvalue; CovBat-like), so that a
 * direction along which one site's people spread and the others' do not (a site's own
 * physiology or artifact) is not read as one along which people differ. */
enum { POP_SITE_NONE = 0, POP_SITE_CENTRE = 1, POP_SITE_HARMONISE = 2, POP_SITE_AUTO = 3 };
#define POP_SITE_SHRINK 0.5
/* The option's word of a POP_SITE_* mode ("none", "centre", "harmonise", "auto"; NULL for
 * another value), and the mode of a word (-1 for another word). */
const char *pop_site_name(int mode);
int pop_site_parse(const char *word);
/* The mode of a word that names how a head was fitted (none, centre or harmonise; -1 for
 * auto, which names a choice, and for another word): final.h5's and the export's pop_site. */
int pop_site_fit_parse(const char *word);

/* How pop_fit_rows fits: r rows of W; auto_rank: the held-out rule is measured too
 * (out->rank); shrink in [0, 1]; site_mode POP_SITE_*; site_shrink in [0, 1]: with
 * POP_SITE_HARMONISE, each site's covariance shrunk by it (POP_SITE_SHRINK, the stage's
 * default; 0: matched fully); npc > 0: the npc leading principal axes too; apart_z > 0:
 * the people who stand apart by it are left out and the fit made on the others;
 * apart_share > 0: so are (then) the people who hold that share of a leading direction;
 * solver: how the principal subspace is found (PCA_SOLVER_*; pca_gram_top: auto is exact
 * up to PCA_EXACT_MAX graphs, randomised above). */
typedef struct pop_fit_opts {
    int r, auto_rank, site_mode, npc;
    double shrink, site_shrink;
    double apart_z;     /* > 0: the scans that stand apart by it are left out (POP_APART_Z) */
    double apart_share; /* > 0: the scans that hold it of a leading direction (POP_HOLD_*) */
    int solver;         /* the principal subspace's solver, PCA_SOLVER_* (pca_gram_top) */
} pop_fit_opts;

/* The numerical core, on one atlas's rows: Z (n, T) float, row-major; scan[i] the scan of
 * row i; site[i] its site, 0 .. sites-1 (NULL, or site_mode none: one site; else the rows
 * are fitted less their site's mean, b = -W times the mean of all rows); W (o->r, T) and b
 * (o->r) written (rows past the fitted directions zero; the first k rows are what a fit at
 * r = k writes). o->npc > 0: Wp (npc, T) and bp (npc) get the npc leading principal axes
 * of the same centred rows, each of unit variance over the rows (zero rows past the data's
 * rank), bp = -Wp times the mean of all rows. Returns the number of directions fitted: 0
 * when no scan has two rows (the head stays zero), or -1 with e set. Deterministic: the
 * same bits for the same rows. */
int pop_fit_rows(const float *Z, int64_t n, int64_t T, const int64_t *scan, const int32_t *site,
                 int sites, const pop_fit_opts *o, float *W, float *b, float *Wp, float *bp,
                 pop_rows_out *out, bgfm_err *e);

/* pop_rank: auto's rank for every atlas: the largest held-out count (plateau rule) of the
 * atlases fitted; where none has one, the largest reproducible peak (repro_rank); else
 * POP_RANK_FALLBACK; at most cap (the head's rows while training). *how (may be NULL): 1
 * from the plateau rule, 2 from the reproducible peak, 0 the fallback. */
int pop_rank_shared(const pop_fit_info *info, int n_atlases, int cap, int *how);

/* embedding: auto's reading, from pop_rank_shared's rank r and *how: 1 when the head
 * alone is read (a plateau gap, or a reproducible peak of POP_RP_ALONE_MIN or more
 * directions), 0 when pcs+pop is (no gap, a peak of fewer, or the fallback). */
int pop_head_alone(int r, int how);

/* The reproducible peak of a curve (pop_rows_out.repro): the first k >= 2 where it is
 * largest, if it is at least POP_RP_MIN there; else 0. */
int pop_repro_rank(const double curve[POP_RP_DIRS]);

/* The plateau rule on the POP_HO_FITS fits' summed counts at each threshold of the ladder:
 * the gap's size, or 0 (no gap); *step: the flat pair's lower threshold, -1 when none. */
int pop_plateau_rank(const int sum[POP_HO_STEPS], int *step);


/* Collective over ctx's communicator: the head of every atlas of m that has graphs among
 * graphs[0..n), written into m's pop/ buffers. Each rank reads a contiguous block of the
 * list; the rows are gathered in list order, and every rank solves the same problem, so
 * the result has the same bits for any rank count. Nothing unless m->cfg.pop_rank. The
 * same status on every rank. o as for pop_fit_rows, but for o->r, which is the model's
 * cfg.pop_rank: o->auto_rank, every atlas's held-out count measured too (the caller
 * narrows the model to pop_rank_shared's rank, model_pop_resize); o->site_mode
 * (POP_SITE_*), how the store's dataset and site of each graph enter the fit;
 * o->npc > 0, each atlas's npc leading principal rows too (info->pc_W, pc_b; for pcs+pop,
 * pop_fit_pcs); free them with pop_fit_info_free. */
int pop_fit(bgfm_ctx *ctx, model *m, graphs_store *gs, const int64_t *graphs, int64_t n,
            const pop_fit_opts *o, pop_fit_info *info);

/* Collective, embedding pcs+pop (m laid out with r + POP_FC_PCS head rows and cfg.pcs
 * readout axes): the head's rows after its r discriminant ones get the FC's principal rows
 * pop_fit found (info), and the readout's principal axes pcs/<atlas>/{W,b} are fitted
 * over the graphs of graphs[0..n) of each atlas, then logged (why: embedding: auto's
 * reason for the choice, NULL when asked for). The axes: the encoder's readout of each
 * graph in eval mode (model_graph_readout), gathered in list order; every rank solves the
 * same H x H eigenproblem in double, so the bits do not depend on the rank count. Row k:
 * the k-th leading eigenvector of the readouts' covariance over the square root of its
 * eigenvalue (unit variance over the graphs; zero past the data's rank), signs as
 * pca_fix_signs; b = -W times the readouts' mean. */
int pop_fit_pcs(bgfm_ctx *ctx, model *m, graphs_store *gs, const int64_t *graphs, int64_t n,
                const pop_fit_info *info, int r, const char *why);

#endif
