/* test_synth.c: unit tests of bgfm synth's argument parsing, cohort design, coupling
 * matrices and the trait population (eigen-decomposition, eigenvalue floor, liability
 * split, weights, per-subject coupling and mixing) and head motion (levels, framewise
 * displacement, spikes, the edge map). Not the dataset tests
 * (tests/e2e/synth.sh, tests/mpi/synth_ranks.sh). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/nifti.h"
#include "bgfm/synth.h"
#include "bgfm/synth_motion.h"
#include "bgfm/synth_traits.h"

static int parse(int argc, const char **argv, synth_params *p, bgfm_err *e) {
    int help = 0;
    bgfm_err_clear(e);
    return synth_parse_args(argc, (char **)(uintptr_t)argv, p, &help, e);
}

static void t_parse(void **state) {
    (void)state;
    synth_params p;
    bgfm_err e;
    const char *ok[] = {"synth", "--out", "d", "--subjects", "8", "--volumes", "50", "--tr",
                        "0.72", "--voxel-size", "2", "--sites", "4", "--seed", "5",
                        "--gzip-level", "3", "--datatype", "int16", "--force"};
    assert_int_equal(parse(20, ok, &p, &e), 0);
    assert_string_equal(p.out, "d");
    assert_int_equal(p.subjects, 8);
    assert_int_equal(p.volumes, 50);
    assert_true(fabs(p.tr - 0.72) < 1e-12);
    assert_int_equal(p.voxel_size, 2);
    assert_int_equal(p.sites, 4);
    assert_int_equal(p.seed, 5);
    assert_int_equal(p.gzip_level, 3);
    assert_int_equal(p.datatype, NIFTIIO_INT16);
    assert_int_equal(p.force, 1);
    const char *one[] = {"synth", "--out", "d", "--subjects", "1"};
    assert_int_equal(parse(5, one, &p, &e), 0);
    assert_int_equal(p.sites, 1); /* default 2 clipped to S */
    const char *bad[][3] = {{"--voxel-size", "1", "--voxel-size"}, {"--volumes", "5", "--volumes"},
                            {"--tr", "0", "--tr"}, {"--datatype", "uint8", "--datatype"},
                            {"--bogus", "1", "unknown option"}, {"--seed", "-1", "--seed"},
                            {"--effect", "0.9", "--effect"}, {"--networks", "3", "--networks"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {"synth", "--out", "d", "--traits", "0", bad[i][0], bad[i][1]};
        assert_int_equal(parse(7, argv, &p, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, bad[i][2]));
    }
    const char *noout[] = {"synth", "--subjects", "4"};
    assert_int_equal(parse(3, noout, &p, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "--out"));
    const char *sites[] = {"synth", "--out", "d", "--subjects", "3", "--sites", "4"};
    assert_int_equal(parse(7, sites, &p, &e), BGFM_EUSAGE);
    /* trait options: defaults, the group-only design, and what belongs to which */
    const char *dflt[] = {"synth", "--out", "d"};
    assert_int_equal(parse(3, dflt, &p, &e), 0);
    assert_int_equal(p.traits, 5);
    assert_int_equal(p.networks, SYNTH_TRAIT_NETWORKS);
    assert_true(p.trait_effect == 0.12 && p.fingerprint == 0.08 && p.topography == 0.08);
    assert_true(p.label_noise == 1.0 && p.unlabelled == 0);
    const char *k0[] = {"synth", "--out", "d", "--traits", "0", "--effect", "0.3"};
    assert_int_equal(parse(7, k0, &p, &e), 0);
    assert_int_equal(p.traits, 0);
    assert_int_equal(p.networks, 7); /* the group-only default */
    assert_true(p.effect == 0.3);
    const char *k3[] = {"synth", "--out", "d", "--traits", "3", "--networks", "8", "--unlabelled",
                        "40", "--trait-effect", "0.15", "--label-noise", "0.5", "--fingerprint",
                        "0", "--topography", "0.1"};
    assert_int_equal(parse(17, k3, &p, &e), 0);
    assert_true(p.traits == 3 && p.networks == 8 && p.unlabelled == 40);
    assert_true(p.trait_effect == 0.15 && p.label_noise == 0.5 && p.fingerprint == 0 &&
                p.topography == 0.1);
    const char *badt[][3] = {{"--traits", "17", "--traits"}, {"--traits", "-1", "--traits"},
                             {"--trait-effect", "0.5", "--trait-effect"},
                             {"--label-noise", "-1", "--label-noise"},
                             {"--unlabelled", "x", "--unlabelled"},
                             {"--fingerprint", "nan", "--fingerprint"},
                             {"--effect", "0.3", "group-only design"}};
    for (size_t i = 0; i < sizeof badt / sizeof badt[0]; i++) {
        const char *argv[] = {"synth", "--out", "d", badt[i][0], badt[i][1]};
        assert_int_equal(parse(5, argv, &p, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, badt[i][2]));
    }
    const char *u0[] = {"synth", "--out", "d", "--traits", "0", "--unlabelled", "4"};
    assert_int_equal(parse(7, u0, &p, &e), BGFM_EUSAGE);
    assert_non_null(strstr(e.msg, "--unlabelled needs latent traits"));
    const char *help[] = {"synth", "--help"};
    int h = 0;
    bgfm_err_clear(&e);
    assert_int_equal(synth_parse_args(2, (char **)(uintptr_t)help, &p, &h, &e), 0);
    assert_int_equal(h, 1);
}

static void t_design(void **state) {
    (void)state;
    /* groups balanced and every site holds both groups */
    int64_t S = 24, K = 3, count[3][2] = {{0}};
    for (int64_t s = 0; s < S; s++) count[synth_subject_site(s, K)][synth_subject_group(s)]++;
    for (int k = 0; k < K; k++) {
        assert_int_equal(count[k][0], 4);
        assert_int_equal(count[k][1], 4);
    }
    /* couplings: symmetric, unit diagonal, designed pairs differ, others equal */
    double c0[49], c1[49];
    synth_coupling(7, 0.4, 0, c0);
    synth_coupling(7, 0.4, 1, c1);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            assert_true(c0[i * 7 + j] == c0[j * 7 + i]);
            if (i == j) assert_true(c0[i * 7 + j] == 1 && c1[i * 7 + j] == 1);
        }
    assert_true(fabs(c0[0 * 7 + 1] - c1[0 * 7 + 1] - 0.4) < 1e-12);
    assert_true(fabs(c1[2 * 7 + 3] - c0[2 * 7 + 3] - 0.4) < 1e-12);
    assert_true(c0[4 * 7 + 5] == c1[4 * 7 + 5]);
}

/* smallest eigenvalue of a symmetric matrix (through synth_eigen_sym) */
static double min_eig(int n, const double *a) {
    double val[32], vec[32 * 32];
    synth_eigen_sym(n, a, val, vec);
    return val[0];
}

static void t_eigen(void **state) {
    (void)state;
    /* a fixed symmetric 8 x 8: reconstruction, orthonormal vectors, ascending values */
    enum { n = 8 };
    double a[n * n], val[n], vec[n * n];
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = sin(1.0 + i * 7 + j * 3) + (i == j);
    synth_eigen_sym(n, a, val, vec);
    for (int i = 0; i + 1 < n; i++) assert_true(val[i] <= val[i + 1]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double r = 0, o = 0;
            for (int k = 0; k < n; k++) {
                r += vec[i * n + k] * val[k] * vec[j * n + k];
                o += vec[k * n + i] * vec[k * n + j];
            }
            assert_true(fabs(r - a[i * n + j]) < 1e-10);
            assert_true(fabs(o - (i == j)) < 1e-10);
        }
    /* the base coupling (rho0 = 0.2, N = 10): eigenvalues 0.8 (x9) and 1 + 9 * 0.2 */
    double c[100], v10[10], q10[100];
    synth_coupling(10, 0.0, 0, c);
    synth_eigen_sym(10, c, v10, q10);
    for (int i = 0; i < 9; i++) assert_true(fabs(v10[i] - 0.8) < 1e-12);
    assert_true(fabs(v10[9] - 2.8) < 1e-12);
}

static void t_floor(void **state) {
    (void)state;
    /* not positive definite: 0.9, 0.9 and -0.9 cannot be correlations of three signals */
    double c[9] = {1, 0.9, 0.9, 0.9, 1, -0.9, 0.9, -0.9, 1}, l[9], m;
    assert_true(min_eig(3, c) < 0);
    assert_int_equal(synth_cholesky(3, c, l), 0);
    assert_int_equal(synth_corr_floor(3, c, SYNTH_EIG_FLOOR, &m), 1);
    assert_true(m < 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            assert_true(c[i * 3 + j] == c[j * 3 + i]);
            if (i == j) assert_true(c[i * 3 + j] == 1.0);
            else assert_true(fabs(c[i * 3 + j]) < 1);
        }
    assert_true(min_eig(3, c) > SYNTH_EIG_FLOOR / 2); /* eps / max diagonal before rescaling */
    assert_int_equal(synth_cholesky(3, c, l), 1);
    /* signs of the designed shifts survive the floor */
    assert_true(c[1] > 0 && c[2] > 0 && c[5] < 0);
    /* already positive definite enough: untouched, bit for bit */
    double b[100], b0[100];
    synth_coupling(10, 0.0, 0, b);
    b[3] = b[30] = 0.5;
    memcpy(b0, b, sizeof b);
    assert_int_equal(synth_corr_floor(10, b, SYNTH_EIG_FLOOR, &m), 0);
    assert_memory_equal(b, b0, sizeof b);
    assert_true(m > SYNTH_EIG_FLOOR);
}

static void t_split(void **state) {
    (void)state;
    bgfm_err e;
    bgfm_err_clear(&e);
    const double liab[7] = {0.3, -1.2, 2.0, 0.9, -0.1, 1.5, -2.2};
    uint8_t pat[8];
    double thr;
    assert_int_equal(synth_split_liability(7, liab, pat, &thr, &e), 0);
    const uint8_t want7[7] = {0, 0, 1, 1, 0, 1, 0}; /* the 3 largest of 7 */
    assert_memory_equal(pat, want7, 7);
    assert_true(fabs(thr - 0.6) < 1e-12); /* midpoint of 0.3 and 0.9 */
    for (int i = 0; i < 7; i++) assert_true((liab[i] > thr) == pat[i]);
    const double tied[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(synth_split_liability(8, tied, pat, &thr, &e), 0);
    int npat = 0;
    for (int i = 0; i < 8; i++) npat += pat[i];
    assert_int_equal(npat, 4); /* balanced even with ties (broken by index) */
    assert_true(pat[4] && pat[7] && !pat[0] && !pat[3]);
    assert_int_equal(synth_split_liability(1, liab, pat, &thr, &e), 0);
    assert_int_equal(pat[0], 0);
}

static void t_weights(void **state) {
    (void)state;
    for (int K = 1; K <= SYNTH_MAX_TRAITS; K++) {
        double w[SYNTH_MAX_TRAITS], v[SYNTH_MAX_TRAITS], nw = 0, nv = 0;
        synth_trait_weights(K, w, v);
        for (int k = 0; k < K; k++) {
            nw += w[k] * w[k];
            nv += v[k] * v[k];
            if (k) assert_true(w[k] < w[k - 1] && w[k] > 0);
        }
        assert_true(fabs(nw - 1) < 1e-12 && fabs(nv - 1) < 1e-12);
        assert_true(v[K - 1] > 0 && fabs(v[K - 1]) >= fabs(v[0]));
    }
}

static void cohort_params(synth_params *p, int64_t S, int64_t U) {
    synth_params_default(p);
    p->subjects = S;
    p->unlabelled = U;
    p->sites = 3;
    p->seed = 11;
}

static void t_cohort(void **state) {
    (void)state;
    enum { P = 116 };
    uint8_t net[P + 1];
    for (int q = 0; q <= P; q++) net[q] = (uint8_t)(q % SYNTH_TRAIT_NETWORKS);
    synth_params p;
    cohort_params(&p, 24, 9);
    bgfm_err e;
    bgfm_err_clear(&e);
    synth_cohort c, c2;
    assert_int_equal(synth_cohort_build(&p, P, net, &c, &e), 0);
    assert_int_equal(synth_cohort_build(&p, P, net, &c2, &e), 0);
    assert_memory_equal(c.person, c2.person, sizeof *c.person * (size_t)c.n); /* keyed draws */
    synth_cohort_free(&c2);
    const synth_design *d = &c.d;
    int N = d->N;
    for (int k = 0; k < d->K; k++)
        for (int j = 0; j < SYNTH_TRAIT_PAIRS; j++) {
            assert_true(d->pair[k][j][0] >= 0 && d->pair[k][j][0] < d->pair[k][j][1] &&
                        d->pair[k][j][1] < N);
            assert_true(d->pair_sign[k][j] == 1 || d->pair_sign[k][j] == -1);
            for (int i = 0; i < j; i++)
                assert_false(d->pair[k][i][0] == d->pair[k][j][0] &&
                             d->pair[k][i][1] == d->pair[k][j][1]);
        }
    for (int k = 0; k < d->K; k++)
        for (int j = 0; j < SYNTH_TRAIT_PARCELS; j++) {
            assert_true(d->parcel[k][j] >= 1 && d->parcel[k][j] <= P);
            for (int i = 0; i < j; i++) assert_true(d->parcel[k][i] != d->parcel[k][j]);
        }
    for (int q = 1; q <= P; q++) assert_true(d->secondary[q] != net[q] && d->secondary[q] < N);
    /* labels: the first S labelled, classes balanced; every site holds both kinds */
    int npat = 0, kind[3][2] = {{0}};
    for (int64_t s = 0; s < c.n; s++) {
        assert_int_equal(c.person[s].labelled, s < 24);
        npat += c.person[s].labelled && c.person[s].patient;
        kind[synth_cohort_site(&p, s)][c.person[s].labelled]++;
    }
    assert_int_equal(npat, 12);
    for (int k = 0; k < 3; k++) assert_true(kind[k][0] > 0 && kind[k][1] > 0);
    /* every subject's coupling is a correlation matrix with a Cholesky factor; extreme
     * traits too (the floor acts); mixing weights stay in [0, SYNTH_MIX_MAX] */
    double cs[32 * 32], l[32 * 32], alpha[P + 1], m, zx[SYNTH_MAX_TRAITS];
    for (int64_t s = 0; s < c.n + 1; s++) {
        const double *z = c.person[s < c.n ? s : 0].z;
        if (s == c.n) {
            for (int k = 0; k < d->K; k++) zx[k] = 4.0 * (k % 2 ? -1 : 1);
            z = zx;
        }
        synth_subject_coupling(&p, d, s, z, cs, &m);
        for (int i = 0; i < N; i++) {
            assert_true(cs[i * N + i] == 1.0);
            for (int j = 0; j < N; j++) assert_true(cs[i * N + j] == cs[j * N + i]);
        }
        assert_int_equal(synth_cholesky(N, cs, l), 1);
        assert_true(min_eig(N, cs) > 0);
        synth_subject_mixing(&p, d, s, z, alpha);
        assert_true(alpha[0] == 0);
        for (int q = 1; q <= P; q++) assert_true(alpha[q] >= 0 && alpha[q] <= SYNTH_MIX_MAX);
    }
    /* no trait effect, no fingerprint, no topography: the base coupling and alpha0 exactly */
    p.trait_effect = p.fingerprint = p.topography = 0;
    double base[32 * 32];
    synth_coupling(N, 0.0, 0, base);
    synth_subject_coupling(&p, d, 3, c.person[3].z, cs, &m);
    assert_memory_equal(cs, base, sizeof(double) * (size_t)(N * N));
    synth_subject_mixing(&p, d, 3, c.person[3].z, alpha);
    for (int q = 1; q <= P; q++) assert_true(alpha[q] == SYNTH_MIX_BASE);
    /* a trait shifts exactly its designed pairs by trait_effect * sign * z */
    p.trait_effect = 0.1;
    double z1[SYNTH_MAX_TRAITS] = {0};
    z1[2] = 1.5;
    synth_subject_coupling(&p, d, 3, z1, cs, &m);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            double want = 0.2;
            for (int q = 0; q < SYNTH_TRAIT_PAIRS; q++)
                if (d->pair[2][q][0] == i && d->pair[2][q][1] == j) want += 0.15 * d->pair_sign[2][q];
            assert_true(fabs(cs[i * N + j] - want) < 1e-12);
        }
    synth_cohort_free(&c);
}

static void t_population(void **state) {
    (void)state;
    /* traits ~ N(0, 1) i.i.d.; the traits explain about half of the liability variance
     * (label noise 1 against a unit-norm w) and of the score variance */
    enum { P = 50 };
    uint8_t net[P + 1] = {0};
    for (int q = 1; q <= P; q++) net[q] = (uint8_t)(q % 10);
    synth_params p;
    cohort_params(&p, 4000, 0);
    bgfm_err e;
    bgfm_err_clear(&e);
    synth_cohort c;
    assert_int_equal(synth_cohort_build(&p, P, net, &c, &e), 0);
    double r[2] = {0}, sum[SYNTH_MAX_TRAITS] = {0}, sq[SYNTH_MAX_TRAITS] = {0}, cross = 0;
    for (int which = 0; which < 2; which++) {
        const double *wt = which ? c.d.v : c.d.w;
        double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (int64_t s = 0; s < c.n; s++) {
            double x = 0, y = which ? c.person[s].score : c.person[s].liability;
            for (int k = 0; k < c.d.K; k++) x += wt[k] * c.person[s].z[k];
            sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y;
        }
        double n = (double)c.n, cov = sxy / n - sx * sy / n / n;
        r[which] = cov * cov / ((sxx / n - sx * sx / n / n) * (syy / n - sy * sy / n / n));
    }
    for (int64_t s = 0; s < c.n; s++) {
        for (int k = 0; k < c.d.K; k++) {
            sum[k] += c.person[s].z[k];
            sq[k] += c.person[s].z[k] * c.person[s].z[k];
        }
        cross += c.person[s].z[0] * c.person[s].z[1];
    }
    for (int k = 0; k < c.d.K; k++) {
        assert_true(fabs(sum[k] / 4000) < 0.06);
        assert_true(fabs(sq[k] / 4000 - 1) < 0.08);
    }
    assert_true(fabs(cross / 4000) < 0.06);
    assert_true(r[0] > 0.42 && r[0] < 0.58);
    assert_true(r[1] > 0.42 && r[1] < 0.58);
    synth_cohort_free(&c);
}

/* Head motion: options; over 2000 subjects the level's spread and the patients' ratio,
 * mean FD about the level, FD by Power's formula from the estimate, spin history only at
 * spikes, the estimate near the displacement away from spikes; the edge map of a ball. */
static void t_motion(void **state) {
    (void)state;
    synth_params p;
    bgfm_err e;
    const char *dflt[] = {"synth", "--out", "d"};
    assert_int_equal(parse(3, dflt, &p, &e), 0);
    assert_true(p.motion == 0 && p.motion_patient == 0.3);
    const char *mo[] = {"synth", "--out", "d", "--motion", "0.2", "--motion-patient", "0.5"};
    assert_int_equal(parse(7, mo, &p, &e), 0);
    assert_true(p.motion == 0.2 && p.motion_patient == 0.5);
    const char *badm[][3] = {{"--motion", "-0.1", "--motion"}, {"--motion", "2.5", "--motion"},
                             {"--motion-patient", "0.5", "needs head motion"}};
    for (size_t i = 0; i < sizeof badm / sizeof badm[0]; i++) {
        const char *argv[] = {"synth", "--out", "d", badm[i][0], badm[i][1]};
        assert_int_equal(parse(5, argv, &p, &e), BGFM_EUSAGE);
        assert_non_null(strstr(e.msg, badm[i][2]));
    }
    p.volumes = 150;
    p.motion = 0.2;
    p.motion_patient = 0.5;
    double slog[2] = {0, 0}, ratio = 0;
    int n[2] = {0, 0};
    for (int64_t s = 0; s < 2000; s++) {
        synth_motion m;
        int pat = (int)(s % 2);
        assert_int_equal(synth_motion_draw(&p, s, pat, &m, &e), 0);
        slog[pat] += log(m.level);
        n[pat]++;
        ratio += m.mean_fd / m.level;
        double sfd = 0;
        int64_t spin_vols = 0;
        for (int64_t t = 1; t < m.T; t++) {
            double fd = 0;
            for (int j = 0; j < 6; j++)
                fd += fabs(m.est[6 * t + j] - m.est[6 * (t - 1) + j]) * (j < 3 ? 1 : 50);
            sfd += fd;
        }
        assert_true(fabs(sfd / (double)(m.T - 1) - m.mean_fd) < 1e-12);
        for (int64_t t = 0; t < m.T; t++) {
            spin_vols += m.spin[t] > 0;
            int near = m.spin[t] > 0; /* a spike's volume or the one after */
            for (int j = 0; j < 6 && !near; j++)
                assert_true(fabs(m.est[6 * t + j] - m.x[6 * t + j]) * (j < 3 ? 1 : 50) < 0.03);
        }
        assert_true(spin_vols >= m.spikes && spin_vols <= 2 * m.spikes);
        assert_true(m.spin[0] == 0);
        synth_motion_free(&m);
    }
    double sd_ratio = exp(slog[1] / n[1] - slog[0] / n[0]);
    assert_true(fabs(sd_ratio / exp(0.5) - 1) < 0.06);
    assert_true(ratio / 2000 > 0.85 && ratio / 2000 < 1.25);
    /* a ball of radius 8 voxels in a 24^3 grid of 2 mm: the centre (whose 8 mm cube stays
     * inside) carries nothing, the
     * surface's normal points outward and rotations about the centre move nothing along it */
    int64_t dim[3] = {24, 24, 24}, nv = 24 * 24 * 24, nb = 0;
    double aff[4][4] = {{2, 0, 0, -24}, {0, 2, 0, -24}, {0, 0, 2, -24}, {0, 0, 0, 1}};
    int32_t *in = calloc((size_t)nv, sizeof *in);
    int64_t *br = calloc((size_t)nv, sizeof *br);
    assert_non_null(in);
    assert_non_null(br);
    for (int64_t v = 0; v < nv; v++) {
        double i = (double)(v % 24) - 12, j = (double)((v / 24) % 24) - 12, k = (double)(v / 576) - 12;
        if (i * i + j * j + k * k <= 64) {
            in[v] = 1;
            br[nb++] = v;
        }
    }
    synth_motion_map mm;
    assert_int_equal(synth_motion_map_build(dim, (const double(*)[4])aff, in, br, nb, &mm, &e), 0);
    int checked = 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t v = br[b];
        double i = (double)(v % 24) - 12, j = (double)((v / 24) % 24) - 12, k = (double)(v / 576) - 12;
        double r = sqrt(i * i + j * j + k * k);
        double h[6];
        for (int q = 0; q < 6; q++) h[q] = (double)mm.h[6 * b + q];
        if (r <= 1) assert_true(h[0] == 0 && h[1] == 0 && h[2] == 0);
        if (r >= 7) { /* outward: along the voxel's position */
            double dot = (h[0] * i + h[1] * j + h[2] * k) / r;
            double len = sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
            assert_true(len > 0 && dot > 0.9 * len);
            double rot = sqrt(h[3] * h[3] + h[4] * h[4] + h[5] * h[5]);
            assert_true(rot < 0.35 * len * 2 * r);
            checked++;
        }
    }
    assert_true(checked > 100);
    synth_motion_map_free(&mm);
    free(in);
    free(br);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_parse),
        cmocka_unit_test(t_design),
        cmocka_unit_test(t_eigen),
        cmocka_unit_test(t_floor),
        cmocka_unit_test(t_split),
        cmocka_unit_test(t_weights),
        cmocka_unit_test(t_cohort),
        cmocka_unit_test(t_population),
        cmocka_unit_test(t_motion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
