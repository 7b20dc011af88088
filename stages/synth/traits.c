/* traits.c: the population of `bgfm synth --traits K`: trait design (which network pairs
 * and parcels each trait loads), every subject's traits, coupling matrix (trait shifts +
 * fingerprint, eigenvalue floor), parcel mixing (trait shifts + topography jitter),
 * liability, diagnosis and score. Not the image or table writer (synth.c); the model
 * and its reasons are docs/synth.md, "The population". */
#include "bgfm/synth_traits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/rng.h"

int synth_id_width(int64_t n) {
    int w = 1;
    for (int64_t x = n; x >= 10; x /= 10) w++;
    return w < 2 ? 2 : w;
}

void synth_coupling(int n, double effect, int group, double *c) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) c[i * n + j] = i == j ? 1.0 : SYNTH_RHO0;
    /* networks 0-1: weaker in patients; networks 2-3: stronger in patients */
    double c01 = SYNTH_RHO0 + (group == 0 ? effect : 0.0);
    double c23 = SYNTH_RHO0 + (group == 1 ? effect : 0.0);
    c[0 * n + 1] = c[1 * n + 0] = c01;
    c[2 * n + 3] = c[3 * n + 2] = c23;
}

int64_t synth_cohort_site(const synth_params *p, int64_t s) {
    int64_t i = s < p->subjects ? s : s - p->subjects;
    return (i / 2) % p->sites;
}

void synth_trait_weights(int K, double *w, double *v) {
    double nw = 0, nv = 0;
    for (int k = 1; k <= K; k++) {
        w[k - 1] = 1.0 / k;
        v[k - 1] = ((K - k) % 2 ? -1.0 : 1.0) / (double)(K + 1 - k);
        nw += w[k - 1] * w[k - 1];
        nv += v[k - 1] * v[k - 1];
    }
    for (int k = 0; k < K; k++) {
        w[k] /= sqrt(nw);
        v[k] /= sqrt(nv);
    }
}

/* ------------------------------------------------------------------ linear algebra */

void synth_eigen_sym(int n, const double *a, double *val, double *vec) {
    BGFM_ASSERT(n >= 1 && n <= 32);
    double m[32 * 32];
    memcpy(m, a, sizeof(double) * (size_t)(n * n));
    for (int i = 0; i < n * n; i++) vec[i] = 0;
    for (int i = 0; i < n; i++) vec[i * n + i] = 1;
    double scale = 0;
    for (int i = 0; i < n * n; i++) scale += m[i] * m[i];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) off += m[i * n + j] * m[i * n + j];
        if (off <= 1e-30 * scale) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = m[p * n + q];
                if (apq == 0) continue;
                /* rotation J (J_pp = J_qq = c, J_pq = s, J_qp = -s) zeroing m_pq: m <- J^T m J */
                double th = (m[q * n + q] - m[p * n + p]) / (2 * apq);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {
                    double kp = m[k * n + p], kq = m[k * n + q];
                    m[k * n + p] = c * kp - s * kq;
                    m[k * n + q] = s * kp + c * kq;
                }
                for (int k = 0; k < n; k++) {
                    double pk = m[p * n + k], qk = m[q * n + k];
                    m[p * n + k] = c * pk - s * qk;
                    m[q * n + k] = s * pk + c * qk;
                }
                for (int k = 0; k < n; k++) {
                    double kp = vec[k * n + p], kq = vec[k * n + q];
                    vec[k * n + p] = c * kp - s * kq;
                    vec[k * n + q] = s * kp + c * kq;
                }
            }
    }
    for (int i = 0; i < n; i++) val[i] = m[i * n + i];
    for (int i = 0; i < n; i++) { /* selection sort, ascending, columns follow */
        int b = i;
        for (int j = i + 1; j < n; j++)
            if (val[j] < val[b]) b = j;
        if (b == i) continue;
        double t = val[i];
        val[i] = val[b];
        val[b] = t;
        for (int k = 0; k < n; k++) {
            t = vec[k * n + i];
            vec[k * n + i] = vec[k * n + b];
            vec[k * n + b] = t;
        }
    }
}

int synth_corr_floor(int n, double *c, double eps, double *min_eig) {
    double val[32], vec[32 * 32], d[32];
    synth_eigen_sym(n, c, val, vec);
    *min_eig = val[0];
    if (val[0] >= eps) return 0;
    for (int k = 0; k < n; k++)
        if (val[k] < eps) val[k] = eps;
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += vec[i * n + k] * val[k] * vec[j * n + k];
            c[i * n + j] = c[j * n + i] = s;
        }
    for (int i = 0; i < n; i++) d[i] = sqrt(c[i * n + i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) c[i * n + j] = i == j ? 1.0 : c[i * n + j] / (d[i] * d[j]);
    return 1;
}

int synth_cholesky(int n, const double *a, double *l) {
    memset(l, 0, sizeof(double) * (size_t)(n * n));
    for (int j = 0; j < n; j++) {
        double s = a[j * n + j];
        for (int k = 0; k < j; k++) s -= l[j * n + k] * l[j * n + k];
        if (!(s > 1e-12)) return 0;
        l[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double t = a[i * n + j];
            for (int k = 0; k < j; k++) t -= l[i * n + k] * l[j * n + k];
            l[i * n + j] = t / l[j * n + j];
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ labels */

typedef struct keyed {
    double v;
    int64_t i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int synth_split_liability(int64_t n, const double *liab, uint8_t *patient, double *threshold,
                          bgfm_err *e) {
    *threshold = 0;
    if (n <= 0) return 0;
    keyed *k = bgfm_malloc(e, sizeof *k * (size_t)n, "synth liability order");
    if (!k) return BGFM_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        k[i].v = liab[i];
        k[i].i = i;
    }
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    int64_t first = n - n / 2; /* sorted positions first.. are patients */
    for (int64_t r = 0; r < n; r++) patient[k[r].i] = r >= first;
    if (n >= 2) *threshold = 0.5 * (k[first - 1].v + k[first].v);
    free(k);
    return 0;
}

/* ------------------------------------------------------------------ subjects */

#define SYNTH_MAX_PAIRS (32 * 31 / 2) /* network pairs a < b at the most networks */

/* g[j]: site k's pattern of stream `what` on the j-th pair a < b in row order, sd times a
 * normal draw (each dataset of --datasets its own sites): the coupling shift
 * (SYNTH_R_SITE_COUPLING, site_coupling) or the own pattern (SYNTH_R_SITE_SPREAD,
 * site_spread). Returns the pair count. */
static int site_pattern(const synth_params *p, int N, int64_t k, int what, double sd, double *g) {
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, SYNTH_COHORT + (uint64_t)p->first_subject, (uint64_t)what,
             (uint64_t)k);
    const int np = N * (N - 1) / 2;
    for (int j = 0; j < np; j++) g[j] = sd * rng_normal(&r);
    return np;
}

/* Subject s's amplitude along its site's own pattern: a normal draw. */
static double spread_amplitude(const synth_params *p, int64_t s) {
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_SPREAD_AMP, 0);
    return rng_normal(&r);
}

/* c += w g over the pairs a < b in row order, both triangles. */
static void add_pairs(int N, const double *g, double w, double *c) {
    for (int a = 0, j = 0; a < N; a++)
        for (int b = a + 1; b < N; b++, j++) {
            c[a * N + b] += w * g[j];
            c[b * N + a] += w * g[j];
        }
}

int synth_subject_coupling(const synth_params *p, const synth_design *d, int64_t s,
                           const double *z, double *c, double *min_eig) {
    int N = d->N;
    synth_coupling(N, 0.0, 0, c); /* 1 on the diagonal, rho0 elsewhere */
    for (int k = 0; k < d->K; k++)
        for (int j = 0; j < SYNTH_TRAIT_PAIRS; j++) {
            int a = d->pair[k][j][0], b = d->pair[k][j][1];
            double shift = p->trait_effect * d->pair_sign[k][j] * z[k];
            c[a * N + b] += shift;
            c[b * N + a] += shift;
        }
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_FINGERPRINT, 0);
    double g[SYNTH_MAX_PAIRS];
    for (int j = 0; j < N * (N - 1) / 2; j++) g[j] = p->fingerprint * rng_normal(&r);
    add_pairs(N, g, 1.0, c);
    const int64_t k = synth_cohort_site(p, s);
    if (p->site_coupling > 0) {
        site_pattern(p, N, k, SYNTH_R_SITE_COUPLING, p->site_coupling, g);
        add_pairs(N, g, 1.0, c);
    }
    if (p->site_spread > 0) {
        site_pattern(p, N, k, SYNTH_R_SITE_SPREAD, p->site_spread, g);
        add_pairs(N, g, spread_amplitude(p, s), c);
    }
    return synth_corr_floor(N, c, SYNTH_EIG_FLOOR, min_eig);
}

void synth_subject_mixing(const synth_params *p, const synth_design *d, int64_t s,
                          const double *z, double *alpha) {
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_TOPOGRAPHY, 0);
    alpha[0] = 0;
    for (int q = 1; q <= d->P; q++) alpha[q] = SYNTH_MIX_BASE + p->topography * rng_normal(&r);
    for (int k = 0; k < d->K; k++)
        for (int j = 0; j < SYNTH_TRAIT_PARCELS; j++)
            alpha[d->parcel[k][j]] += p->trait_effect * d->parcel_sign[k][j] * z[k];
    for (int q = 1; q <= d->P; q++)
        alpha[q] = alpha[q] < 0 ? 0 : alpha[q] > SYNTH_MIX_MAX ? SYNTH_MIX_MAX : alpha[q];
}

/* ------------------------------------------------------------------ the cohort */

/* Each trait loads SYNTH_TRAIT_PAIRS distinct network pairs and SYNTH_TRAIT_PARCELS distinct
 * parcels, uniformly, each with a random sign; every parcel gets a secondary network drawn
 * uniformly among the other networks. */
static int design_draw(const synth_params *p, int P, const uint8_t *parcel_net, synth_design *d,
                       bgfm_err *e) {
    int N = p->networks, K = p->traits;
    BGFM_ASSERT(K <= SYNTH_MAX_TRAITS && N >= 6 && N <= 32 && P >= SYNTH_TRAIT_PARCELS);
    d->K = K;
    d->N = N;
    d->P = P;
    d->primary = parcel_net;
    synth_trait_weights(K, d->w, d->v);
    d->secondary = bgfm_calloc(e, (size_t)P + 1, 1, "synth secondary networks");
    if (!d->secondary) return BGFM_ENOMEM;
    rng_stream r;
    rng_init(&r, p->seed, RNG_SYNTH, SYNTH_COHORT, SYNTH_R_SECONDARY, 0);
    for (int q = 1; q <= P; q++) {
        int m = (int)rng_below(&r, (uint64_t)(N - 1));
        d->secondary[q] = (uint8_t)(m >= parcel_net[q] ? m + 1 : m);
    }
    int npairs = N * (N - 1) / 2;
    for (int k = 0; k < K; k++) {
        rng_init(&r, p->seed, RNG_SYNTH, SYNTH_COHORT, SYNTH_R_TRAIT_DESIGN, (uint64_t)k);
        int idx[SYNTH_TRAIT_PAIRS];
        for (int j = 0; j < SYNTH_TRAIT_PAIRS; j++) {
            int dup;
            do {
                idx[j] = (int)rng_below(&r, (uint64_t)npairs);
                dup = 0;
                for (int i = 0; i < j; i++) dup |= idx[i] == idx[j];
            } while (dup);
            int a = 0, rest = idx[j]; /* pair index -> (a, b), a < b, row order */
            while (rest >= N - 1 - a) {
                rest -= N - 1 - a;
                a++;
            }
            d->pair[k][j][0] = a;
            d->pair[k][j][1] = a + 1 + rest;
            d->pair_sign[k][j] = rng_below(&r, 2) ? 1 : -1;
        }
        for (int j = 0; j < SYNTH_TRAIT_PARCELS; j++) {
            int dup;
            do {
                d->parcel[k][j] = 1 + (int)rng_below(&r, (uint64_t)P);
                dup = 0;
                for (int i = 0; i < j; i++) dup |= d->parcel[k][i] == d->parcel[k][j];
            } while (dup);
            d->parcel_sign[k][j] = rng_below(&r, 2) ? 1 : -1;
        }
    }
    return 0;
}

int synth_cohort_build(const synth_params *p, int n_parcels, const uint8_t *parcel_net,
                       synth_cohort *c, bgfm_err *e) {
    memset(c, 0, sizeof *c);
    int rc = design_draw(p, n_parcels, parcel_net, &c->d, e);
    if (rc) return rc;
    const synth_design *d = &c->d;
    c->n = p->subjects + p->unlabelled;
    c->person = bgfm_calloc(e, (size_t)c->n, sizeof *c->person, "synth subjects");
    double *liab = bgfm_malloc(e, sizeof(double) * (size_t)p->subjects, "synth liabilities");
    uint8_t *pat = bgfm_malloc(e, (size_t)p->subjects, "synth diagnoses");
    if (!c->person || !liab || !pat) {
        free(liab);
        free(pat);
        return BGFM_ENOMEM;
    }
    for (int64_t s = 0; s < c->n; s++) {
        synth_person *o = &c->person[s];
        rng_stream r;
        rng_init(&r, p->seed, RNG_SYNTH, (uint64_t)(s + p->first_subject), SYNTH_R_TRAITS, 0);
        double el = rng_normal(&r), es = rng_normal(&r);
        double lw = 0, lv = 0;
        for (int k = 0; k < d->K; k++) {
            o->z[k] = rng_normal(&r);
            lw += d->w[k] * o->z[k];
            lv += d->v[k] * o->z[k];
        }
        o->liability = lw + p->label_noise * el;
        o->score = lv + p->label_noise * es;
        o->labelled = s < p->subjects;
        if (o->labelled) liab[s] = o->liability;
    }
    rc = synth_split_liability(p->subjects, liab, pat, &c->threshold, e);
    for (int64_t s = 0; !rc && s < p->subjects; s++) c->person[s].patient = pat[s];
    free(liab);
    free(pat);
    return rc;
}

void synth_cohort_free(synth_cohort *c) {
    free(c->d.secondary);
    free(c->person);
    memset(c, 0, sizeof *c);
}

static void json_vec(FILE *f, int n, const double *x) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.17g", i ? ", " : "", x[i]);
    fputc(']', f);
}

void synth_cohort_json(FILE *f, const synth_params *p, const synth_cohort *c,
                       const int32_t *label) {
    const synth_design *d = &c->d;
    fprintf(f, ",\n  \"traits\": %d, \"trait_effect\": %.17g, \"fingerprint\": %.17g, "
               "\"topography\": %.17g, \"label_noise\": %.17g,\n  \"labelled\": %lld, "
               "\"unlabelled\": %lld, \"eig_floor\": %g, \"mixing_base\": %g, \"mixing_max\": %g",
            d->K, p->trait_effect, p->fingerprint, p->topography, p->label_noise,
            (long long)p->subjects, (long long)p->unlabelled, SYNTH_EIG_FLOOR, SYNTH_MIX_BASE,
            SYNTH_MIX_MAX);
    /* and each site's shift and own pattern, pairs a < b in row order */
    const struct {
        const char *name, *key;
        double sd;
        int what;
    } pat[] = {{"site_coupling", "site_coupling_shift", p->site_coupling, SYNTH_R_SITE_COUPLING},
               {"site_spread", "site_spread_pattern", p->site_spread, SYNTH_R_SITE_SPREAD}};
    for (int i = 0; i < 2; i++) {
        if (!(pat[i].sd > 0)) continue;
        fprintf(f, ",\n  \"%s\": %.17g, \"%s\": [", pat[i].name, pat[i].sd, pat[i].key);
        for (int64_t k = 0; k < p->sites; k++) {
            double g[SYNTH_MAX_PAIRS];
            if (k) fputs(", ", f);
            json_vec(f, site_pattern(p, d->N, k, pat[i].what, pat[i].sd, g), g);
        }
        fputc(']', f);
    }
    fprintf(f, ",\n  \"diagnosis_weights\": ");
    json_vec(f, d->K, d->w);
    fprintf(f, ",\n  \"score_weights\": ");
    json_vec(f, d->K, d->v);
    fprintf(f, ",\n  \"liability_threshold\": %.17g,\n  \"trait_pairs\": [", c->threshold);
    for (int k = 0; k < d->K; k++) {
        fprintf(f, "%s[", k ? ",\n    " : "\n    ");
        for (int j = 0; j < SYNTH_TRAIT_PAIRS; j++)
            fprintf(f, "%s{\"networks\": [%d, %d], \"sign\": %d}", j ? ", " : "",
                    d->pair[k][j][0], d->pair[k][j][1], d->pair_sign[k][j]);
        fputc(']', f);
    }
    fprintf(f, "],\n  \"trait_parcels\": [");
    for (int k = 0; k < d->K; k++) {
        fprintf(f, "%s[", k ? ",\n    " : "\n    ");
        for (int j = 0; j < SYNTH_TRAIT_PARCELS; j++) {
            int q = d->parcel[k][j];
            fprintf(f, "%s{\"parcel\": %d, \"atlas_label\": %d, \"network\": %d, \"secondary\": "
                       "%d, \"sign\": %d}", j ? ", " : "", q, label[q], d->primary[q],
                    d->secondary[q], d->parcel_sign[k][j]);
        }
        fputc(']', f);
    }
    fprintf(f, "],\n  \"participants\": [");
    int width = synth_id_width(c->n);
    for (int64_t s = 0; s < c->n; s++) {
        const synth_person *o = &c->person[s];
        double cs[32 * 32], mineig;
        int floored = synth_subject_coupling(p, d, s, o->z, cs, &mineig);
        fprintf(f, "%s{\"participant_id\": \"sub-%0*lld\", \"labelled\": %s, \"diagnosis\": %s, "
                   "\"site\": \"site-%lld\", \"traits\": ", s ? ",\n    " : "\n    ", width,
                (long long)s + 1, o->labelled ? "true" : "false",
                !o->labelled ? "null" : o->patient ? "\"patient\"" : "\"control\"",
                (long long)synth_cohort_site(p, s) + 1);
        json_vec(f, d->K, o->z);
        fprintf(f, ", \"liability\": %.17g, \"score\": %.17g, \"coupling_min_eigenvalue\": %.6g, "
                   "\"coupling_floored\": %s", o->liability, o->score, mineig,
                floored ? "true" : "false");
        if (p->site_spread > 0)
            fprintf(f, ", \"site_spread_amplitude\": %.17g", spread_amplitude(p, s));
        fputc('}', f);
    }
    fprintf(f, "]");
}
