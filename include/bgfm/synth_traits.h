/* synth_traits.h: the population model of `bgfm synth --traits K` (docs/synth.md, "The
 * population"): latent traits, their designed effects on network coupling and parcel
 * mixing, idiosyncratic fingerprints and topography, diagnosis and score from the traits.
 * Not the image writer (synth.c). Nothing here is collective; every draw is keyed by
 * (seed, RNG_SYNTH, subject or SYNTH_COHORT, what, index), so any rank computes the same. */
#ifndef BGFM_SYNTH_TRAITS_H
#define BGFM_SYNTH_TRAITS_H

#include <stdint.h>
#include <stdio.h>

#include "bgfm/ctx.h"
#include "bgfm/synth.h"

#define SYNTH_RHO0 0.20          /* baseline coupling between networks */

/* The designed network coupling (correlation) matrix: 1 on the diagonal, SYNTH_RHO0
 * elsewhere; in the group-only design (--traits 0) networks 0-1 couple more in group 0 and
 * networks 2-3 more in group 1, by `effect`. n x n, row-major. */
void synth_coupling(int n, double effect, int group, double *c);

/* RNG keys of synth: (seed, RNG_SYNTH, i0 = subject or SYNTH_COHORT, i1 = what, i2). Part
 * of the reproducibility contract: never renumber, only append. */
#define SYNTH_COHORT ((uint64_t)1 << 40)
enum {
    SYNTH_R_PARCEL_ORDER = 1, /* cohort: parcel -> network shuffle */
    SYNTH_R_VORONOI = 2,      /* cohort: Voronoi centres (ellipsoid mask) */
    SYNTH_R_SITE = 3,         /* cohort, i2 = site */
    SYNTH_R_TRAIT_DESIGN = 4, /* cohort, i2 = trait: its network pairs and parcels */
    SYNTH_R_SECONDARY = 5,    /* cohort: secondary network of every parcel */
    SYNTH_R_DEMOGRAPHICS = 10,
    SYNTH_R_LATENT = 11,
    SYNTH_R_VOXEL = 12,
    SYNTH_R_NOISE = 13,       /* i2 = volume */
    SYNTH_R_TRAITS = 14,      /* liability noise, score noise, z_1..z_K */
    SYNTH_R_FINGERPRINT = 15, /* idiosyncratic coupling, pairs a < b in row order */
    SYNTH_R_TOPOGRAPHY = 16,  /* mixing jitter, parcels 1..P */
    SYNTH_R_SITE_COUPLING = 17, /* i0 = SYNTH_COHORT + first subject (each dataset its own
                                   sites), i2 = site: the site's coupling shift, pairs a < b */
    SYNTH_R_SITE_SPREAD = 18,   /* i0 as 17, i2 = site: the site's own pattern, pairs a < b */
    SYNTH_R_SPREAD_AMP = 19,    /* i0 = subject: its amplitude along its site's pattern */
    SYNTH_R_MOTION = 20         /* i0 = subject: its head motion (synth_motion.h) */
};

#define SYNTH_MAX_TRAITS 16
#define SYNTH_TRAIT_PAIRS 3      /* network pairs loaded by each trait */
#define SYNTH_TRAIT_PARCELS 4    /* parcels whose mixing each trait loads */
#define SYNTH_TRAIT_NETWORKS 10  /* default --networks when K > 0 */
#define SYNTH_EIG_FLOOR 0.05     /* eigenvalue floor of a subject's coupling matrix */
#define SYNTH_MIX_BASE 0.20      /* alpha0: weight of a parcel's secondary network */
#define SYNTH_MIX_MAX 0.60       /* alpha is clipped to [0, SYNTH_MIX_MAX] */

/* The cohort's trait design, drawn once from the seed. Networks 0..N-1, parcels 1..P. */
typedef struct synth_design {
    int K, N, P;
    int pair[SYNTH_MAX_TRAITS][SYNTH_TRAIT_PAIRS][2]; /* a < b */
    int pair_sign[SYNTH_MAX_TRAITS][SYNTH_TRAIT_PAIRS];
    int parcel[SYNTH_MAX_TRAITS][SYNTH_TRAIT_PARCELS];
    int parcel_sign[SYNTH_MAX_TRAITS][SYNTH_TRAIT_PARCELS];
    uint8_t *secondary; /* P + 1: secondary network of each parcel (index = parcel) */
    const uint8_t *primary; /* P + 1: the grid's parcel -> network map (not owned) */
    double w[SYNTH_MAX_TRAITS], v[SYNTH_MAX_TRAITS]; /* diagnosis and score weights */
} synth_design;

typedef struct synth_person {
    double z[SYNTH_MAX_TRAITS];
    double liability, score;
    int labelled, patient; /* patient only meaningful when labelled */
} synth_person;

typedef struct synth_cohort {
    synth_design d;
    int64_t n;            /* S + U */
    synth_person *person; /* n */
    double threshold;     /* liability between the two classes of the labelled subjects */
} synth_cohort;

/* Sub-XX width for n subjects (at least 2 digits). */
int synth_id_width(int64_t n);
/* Site (0-based) of subject s (0-based over S + U): labelled i = s < S and unlabelled
 * j = s - S each cycle as floor(i/2) mod sites, so sites hold both kinds. */
int64_t synth_cohort_site(const synth_params *p, int64_t s);

/* Diagnosis weights w (w_k proportional to 1/k) and score weights v (v_k proportional to
 * (-1)^(K-k) / (K + 1 - k)), both unit vectors over the K traits. */
void synth_trait_weights(int K, double *w, double *v);

/* Symmetric eigen-decomposition by cyclic Jacobi (n <= 32): a = vec diag(val) vec^T,
 * columns of vec (row-major n x n) are the eigenvectors, val ascending. */
void synth_eigen_sym(int n, const double *a, double *val, double *vec);
/* If the smallest eigenvalue of the symmetric unit-diagonal c is below eps, raise every
 * eigenvalue below eps to eps, rebuild and rescale to unit diagonal (D^-1/2 C D^-1/2);
 * else leave c untouched. Returns 1 when c changed. *min_eig = smallest eigenvalue before. */
int synth_corr_floor(int n, double *c, double eps, double *min_eig);
/* Lower Cholesky factor of a (n x n); returns 0 if a is not positive definite. */
int synth_cholesky(int n, const double *a, double *l);

/* patient[i] = 1 for the floor(n/2) largest liabilities (ties broken by index), else 0;
 * *threshold = the midpoint between the two classes (0 when n < 2). */
int synth_split_liability(int64_t n, const double *liab, uint8_t *patient, double *threshold,
                          bgfm_err *e);

/* The subject's coupling C_s (n x n): rho0 off the diagonal, plus trait_effect times the
 * signed designed pairs of every trait scaled by z, plus the fingerprint, plus the shift
 * of the subject's site (site_coupling > 0), plus the subject's amplitude (a normal draw)
 * times its site's own pattern (site_spread > 0), floored
 * (synth_corr_floor with SYNTH_EIG_FLOOR). Returns 1 if the floor changed it. */
int synth_subject_coupling(const synth_params *p, const synth_design *d, int64_t s,
                           const double *z, double *c, double *min_eig);
/* alpha[q] (q = 1..P, alpha[0] = 0): weight of parcel q's secondary network for subject s,
 * clip(alpha0 + trait_effect * sum_k z_k A_kq + topography * psi_sq, 0, SYNTH_MIX_MAX). */
void synth_subject_mixing(const synth_params *p, const synth_design *d, int64_t s,
                          const double *z, double *alpha);

/* Design, every subject's traits, liability, score and diagnosis (K > 0). */
int synth_cohort_build(const synth_params *p, int n_parcels, const uint8_t *parcel_net,
                       synth_cohort *c, bgfm_err *e);
void synth_cohort_free(synth_cohort *c);

/* The trait fields of model.json (K > 0), each line starting with ",\n  "; `label` maps a
 * parcel to its atlas label. */
void synth_cohort_json(FILE *f, const synth_params *p, const synth_cohort *c,
                       const int32_t *label);

#endif
