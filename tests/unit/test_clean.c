/* test_clean.c: unit tests of the signal cleaning on small known signals: detrend,
 * Butterworth design and sosfiltfilt against values printed by scipy 1.10, z-score and
 * percent signal change by hand, the confound basis and projection by their invariants,
 * and the confounds file's name and reading (both ways of censoring). Not the
 * extraction. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bgfm/clean.h"
#include "bgfm/confounds.h"
#include "tmpdir.h"

static void test_detrend(void **st) {
    (void)st;
    /* residual r orthogonal to 1 and t: detrend(3 + 0.5 t + r) = r */
    double r[6] = {1, -1, -1, 1, 0, 0}; /* sum 0, sum t*r = 0 - 1 - 2 + 3 = 0 */
    double x[6];
    for (int t = 0; t < 6; t++) x[t] = 3.0 + 0.5 * t + r[t];
    clean_detrend(x, 6);
    for (int t = 0; t < 6; t++) assert_true(fabs(x[t] - r[t]) < 1e-12);
}

static void test_standardize(void **st) {
    (void)st;
    double x[4] = {1, 2, 3, 4};
    clean_standardize_series(CLEAN_STD_ZSCORE, x, 4, 0);
    double sd = sqrt(1.25); /* ddof 0 */
    double want[4] = {-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd};
    for (int t = 0; t < 4; t++) assert_true(fabs(x[t] - want[t]) < 1e-12);
    /* psc relative to the raw mean 200: 100 (x - mean x) / 200 */
    double y[4] = {-2, 0, 2, 4};
    clean_standardize_series(CLEAN_STD_PSC, y, 4, 200.0);
    double wp[4] = {-1.5, -0.5, 0.5, 1.5};
    for (int t = 0; t < 4; t++) assert_true(fabs(y[t] - wp[t]) < 1e-12);
    /* constant series: z-score gives zeros (std below eps -> divide by 1) */
    double c[3] = {5, 5, 5};
    clean_standardize_series(CLEAN_STD_ZSCORE, c, 3, 0);
    for (int t = 0; t < 3; t++) assert_true(c[t] == 0.0);
    /* psc of a zero-mean raw series: zeros */
    double z[3] = {1, -1, 0};
    clean_standardize_series(CLEAN_STD_PSC, z, 3, 0.0);
    for (int t = 0; t < 3; t++) assert_true(z[t] == 0.0);
}

/* scipy.signal.butter(3, [0.01, 0.1], 'bandpass', fs=0.5, output='sos'): the same
 * transfer function; compare the frequency response at a few points. */
static double mag(const clean_sos *f, double w) {
    double re = 1, im = 0;
    for (int k = 0; k < f->n; k++) {
        const double *s = f->s[k];
        double nr = s[0] + s[1] * cos(w) + s[2] * cos(2 * w), ni = -s[1] * sin(w) - s[2] * sin(2 * w);
        double dr = s[3] + s[4] * cos(w) + s[5] * cos(2 * w), di = -s[4] * sin(w) - s[5] * sin(2 * w);
        double d2 = dr * dr + di * di;
        double hr = (nr * dr + ni * di) / d2, hi = (ni * dr - nr * di) / d2;
        double tr = re * hr - im * hi, ti = re * hi + im * hr;
        re = tr, im = ti;
    }
    return sqrt(re * re + im * im);
}

static void test_butter_bandpass(void **st) {
    (void)st;
    static const double ref[3][6] = {
        {0.07674590690231364, 0.1534918138046273, 0.07674590690231364, 1, -0.48228518596252234,
         0.42177392617924614},
        {1, 0, -1, 1, -1.1165606744543102, 0.22352648289714908},
        {1, -2, 1, 1, -1.8779149995869409, 0.893887159211332}};
    clean_sos f, g;
    bgfm_err e = {0};
    assert_int_equal(clean_butter(3, 0.01, 0.1, 0.5, &f, "x", &e), 0);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.padlen, 21); /* 3 * (2*3 + 1): every section second order */
    g.n = 3;
    memcpy(g.s, ref, sizeof ref);
    for (double w = 0.01; w < 3.1; w += 0.1) assert_true(fabs(mag(&f, w) - mag(&g, w)) < 1e-12);
}

static void test_sosfiltfilt_scipy(void **st) {
    (void)st;
    static const double x0[40] = {2,2.6773414746672666,3.0182296862574871,2.8630274863634995,2.2706265095112048,1.4913843694084921,0.85025130361096724,0.59503888635329028,0.78117387659323512,1.2471172691008103,1.6919842559679639,1.8188314455704733,1.4761911422048164,0.73125522375612773,-0.15974374918959483,-0.87005742267424424,-1.154141933820036,-0.96125015570535399,-0.45750360570466719,0.053906448920470362,0.27682984895697582,0.062777204445396029,-0.51810980485620073,-1.2091350588387977,-1.6871008090073598,-1.7138853576292497,-1.2482634638304089,-0.46538149425979558,0.32527360535038508,0.82483683257573559,0.88479103013577598,0.57575498354217802,0.15299951726387473,-0.065068645744291165,0.15172028875037269,0.83529003742750285,1.8024414370060255,2.7390768454292154,3.3459463844166293,3.4774026825831634};
    static const double y[40] = {0.0045114436305134786,0.42244291824533314,0.63481748195056642,0.55365374171964576,0.22101604330639324,-0.20714496987655051,-0.53166411851540196,-0.6022710058189874,-0.38758343763499303,0.010267758011886841,0.40354601570581622,0.60700512736347501,0.52483861747094396,0.19562244499340864,-0.2258878837999036,-0.54156045160223865,-0.60306719447536905,-0.3816305866727901,0.018457669272237687,0.40889910385089878,0.60595414803243353,0.5168544271347334,0.18341782739158952,-0.23764814837584208,-0.54848839661017679,-0.60319340197243665,-0.37643258942396102,0.024699496275200405,0.41126134302085454,0.60174502622567905,0.50809202432904854,0.17789376453461792,-0.22739184837819998,-0.50861967414411602,-0.52474478127708246,-0.26445810892453364,0.1389693945940787,0.45682964875294224,0.45813494706640628,0.011153051224328803};
    clean_sos f;
    bgfm_err e = {0};
    /* butter(2, 0.05, 'highpass', fs=0.5): one section, padlen 3 * (2 + 1) = 9 */
    assert_int_equal(clean_butter(2, 0.05, 0, 0.5, &f, "x", &e), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.padlen, 9);
    assert_true(fabs(f.s[0][0] - 0.6389455251590225) < 1e-14);
    assert_true(fabs(f.s[0][4] - -1.1429805025399011) < 1e-14);
    double x[40], work[2 * (40 + 30)];
    memcpy(x, x0, sizeof x);
    clean_sosfiltfilt(&f, x, 40, work);
    for (int t = 0; t < 40; t++) assert_true(fabs(x[t] - y[t]) < 1e-12);
}

static void test_constant_and_order(void **st) {
    (void)st;
    /* a constant passes a low-pass unchanged and is removed by a high-pass */
    clean_sos lp, hp;
    bgfm_err e = {0};
    assert_int_equal(clean_butter(5, 0, 0.1, 0.5, &lp, "x", &e), 0);
    assert_int_equal(clean_butter(5, 0.01, 0, 0.5, &hp, "x", &e), 0);
    assert_int_equal(lp.n, 3);
    assert_int_equal(lp.padlen, 18); /* odd order: one first-order section */
    double a[50], b[50], w[2 * (50 + 36)];
    for (int t = 0; t < 50; t++) a[t] = b[t] = 7.0;
    clean_sosfiltfilt(&lp, a, 50, w);
    clean_sosfiltfilt(&hp, b, 50, w);
    for (int t = 0; t < 50; t++) {
        assert_true(fabs(a[t] - 7.0) < 1e-9);
        assert_true(fabs(b[t]) < 1e-9);
    }
}

static void test_errors(void **st) {
    (void)st;
    clean_sos f;
    bgfm_err e = {0};
    /* TR 2 s -> Nyquist 0.25 Hz: 0.3 Hz is not allowed */
    assert_int_equal(clean_butter(5, 0, 0.3, 0.5, &f, "img.nii", &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "img.nii"));
    assert_non_null(strstr(e.msg, "Nyquist"));
    bgfm_err_clear(&e);
    assert_int_equal(clean_butter(5, 0.01, 0, 0.0, &f, "img.nii", &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "t_r"));
}

/* The basis spans the confounds (centred): orthonormal, the dependent column dropped,
 * and a projected series is orthogonal to every confound and keeps what is outside. */
static void test_confound_basis(void **st) {
    (void)st;
    enum { n = 40, K = 4 };
    double X[K * n], C[K * n], x[n], work[4 * n];
    for (int t = 0; t < n; t++) {
        X[t] = sin(0.3 * t);
        X[n + t] = (double)(t % 7) - 3.0;
        X[2 * n + t] = 2.0 * X[t] - 0.5 * X[n + t] + 4.0; /* dependent, plus a constant */
        X[3 * n + t] = t == 11 ? 1.0 : 0.0;                /* a spike regressor */
    }
    memcpy(C, X, sizeof C);
    clean_opts o = {.detrend = 0, .filter_order = 5, .standardize = CLEAN_STD_NONE};
    int r = clean_basis(&o, NULL, X, n, K, work);
    assert_int_equal(r, 3);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            double d = 0;
            for (int t = 0; t < n; t++) d += X[i * n + t] * X[j * n + t];
            assert_true(fabs(d - (i == j)) < 1e-12);
        }
    /* x = confound mix + u with u orthogonal to the centred confounds and to 1 */
    for (int t = 0; t < n; t++) x[t] = 7.0 + 3.0 * C[t] - 2.0 * C[n + t] + 5.0 * C[3 * n + t];
    double u[n];
    for (int t = 0; t < n; t++) u[t] = cos(1.7 * t) + 0.1 * t;
    clean_project(X, r, u, n);
    double um = 0;
    for (int t = 0; t < n; t++) um += u[t] / n;
    for (int t = 0; t < n; t++) u[t] -= um;
    clean_project(X, r, u, n); /* still orthogonal after centring (the basis is centred) */
    for (int t = 0; t < n; t++) x[t] += u[t];
    clean_project(X, r, x, n);
    double m = 0; /* what stays: the mean (7 plus the confounds' means) and u */
    for (int t = 0; t < n; t++) m += (x[t] - u[t]) / n;
    for (int t = 0; t < n; t++) assert_true(fabs(x[t] - u[t] - m) < 1e-10);
    for (int k = 0; k < K; k++) {
        double d = 0, cm = 0;
        for (int t = 0; t < n; t++) cm += C[k * n + t] / n;
        for (int t = 0; t < n; t++) d += (C[k * n + t] - cm) * x[t];
        assert_true(fabs(d) < 1e-9);
    }
    /* detrend on: the basis is also orthogonal to the line t */
    memcpy(X, C, sizeof C);
    o.detrend = 1;
    r = clean_basis(&o, NULL, X, n, K, work);
    assert_int_equal(r, 3);
    for (int i = 0; i < r; i++) {
        double d = 0;
        for (int t = 0; t < n; t++) d += X[i * n + t] * (double)t;
        assert_true(fabs(d) < 1e-9);
    }
}

static void test_confounds_path(void **st) {
    (void)st;
    bgfm_err e;
    bgfm_err_clear(&e);
    const char *cases[][2] = {
        {"/d/sub-01/func/sub-01_task-rest_bold.nii.gz",
         "/d/sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv"},
        {"d/sub-01/ses-2/func/sub-01_ses-2_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_"
         "desc-preproc_bold.nii.gz",
         "d/sub-01/ses-2/func/sub-01_ses-2_task-rest_run-1_desc-confounds_timeseries.tsv"},
        {"sub-x_task-a_echo-2_space-T1w_desc-preproc_bold.nii",
         "sub-x_task-a_echo-2_desc-confounds_timeseries.tsv"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = confounds_path(cases[i][0], 0, &e);
        assert_non_null(p);
        assert_string_equal(p, cases[i][1]);
        free(p);
    }
    assert_null(confounds_path("/nonexistent/sub-01_task-rest_bold.nii.gz", 1, &e));
    assert_int_equal(e.code, BGFM_EDATA);
    assert_non_null(strstr(e.msg, "_desc-confounds_regressors.tsv"));
}

/* A confounds file of 8 volumes, FD n/a in the first row (as fMRIPrep writes it), two
 * volumes above scrub 0.5: the mask, the count and mean FD are the same either way; spike
 * regressors follow the named column only when asked; too many scrubbed empties the set. */
static void test_confounds_load(void **st) {
    (void)st;
    const double fdv[8] = {0, 0.2, 0.7, 0.1, 0.9, 0.3, 0.2, 0.1};
    FILE *f = fopen(tpath("sub-01_task-rest_desc-confounds_timeseries.tsv"), "w");
    assert_non_null(f);
    fprintf(f, "trans_x\tframewise_displacement\n");
    for (int r = 0; r < 8; r++) {
        fprintf(f, "%g\t", 0.1 * r);
        if (r) fprintf(f, "%g\n", fdv[r]);
        else fprintf(f, "n/a\n");
    }
    fclose(f);
    char image[600];
    snprintf(image, sizeof image, "%s", tpath("sub-01_task-rest_bold.nii.gz"));
    char *names[1] = {"trans_x"};
    confounds_spec s = {names, 1, 0.5, 0.5};
    bgfm_err e;
    for (int spikes = 0; spikes < 2; spikes++) {
        bgfm_err_clear(&e);
        confounds_set c;
        assert_int_equal(confounds_load(image, &s, 8, spikes, &c, &e), 0);
        assert_int_equal(c.n_scrubbed, 2);
        assert_int_equal(c.K, spikes ? 3 : 1);
        assert_true(fabs(c.mean_fd - 2.5 / 7.0) < 1e-12);
        for (int r = 0; r < 8; r++) {
            assert_int_equal(c.censor[r], r == 2 || r == 4);
            assert_true(fabs(c.X[r] - 0.1 * r) < 1e-12);
            if (spikes) {
                assert_true(c.X[8 + r] == (r == 2));
                assert_true(c.X[16 + r] == (r == 4));
            }
        }
        confounds_set_free(&c);
    }
    s.scrub = 0; /* no scrubbing: no mask, the mean FD all the same */
    confounds_set c;
    assert_int_equal(confounds_load(image, &s, 8, 1, &c, &e), 0);
    assert_null(c.censor);
    assert_int_equal(c.K, 1);
    assert_int_equal(c.n_scrubbed, 0);
    assert_true(fabs(c.mean_fd - 2.5 / 7.0) < 1e-12);
    confounds_set_free(&c);
    s.scrub = 0.5;
    s.max_scrubbed = 0.2; /* 2 of 8 > 1.6 */
    bgfm_err_clear(&e);
    assert_int_equal(confounds_load(image, &s, 8, 0, &c, &e), BGFM_EDATA);
    assert_null(c.X);
    assert_null(c.censor);
    assert_non_null(strstr(e.msg, "max_scrubbed"));
    bgfm_err_clear(&e); /* 8 rows, 9 volumes */
    assert_int_equal(confounds_load(image, &s, 9, 0, &c, &e), BGFM_EDATA);
    assert_non_null(strstr(e.msg, "8 rows"));
}

static int setup(void **st) {
    (void)st;
    return tmpdir_make("clean");
}

static int teardown(void **st) {
    (void)st;
    return tmpdir_remove();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detrend),
        cmocka_unit_test(test_standardize),
        cmocka_unit_test(test_butter_bandpass),
        cmocka_unit_test(test_sosfiltfilt_scipy),
        cmocka_unit_test(test_constant_and_order),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_confound_basis),
        cmocka_unit_test(test_confounds_path),
        cmocka_unit_test(test_confounds_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
