/* clean.c: detrend, Butterworth design (scipy.signal.butter, output='sos'), forward-
 * backward sosfiltfilt with odd padding, confound projection, z-score / percent signal
 * change.
 * Not the extraction: one series at a time, no I/O. */
#include <complex.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "bgfm/clean.h"

/* Digital poles of the Butterworth filter, designed as scipy does: analog prototype
 * poles p_m = -exp(i pi m / (2N)), m = -N+1, -N+3, ..., N-1, gain 1; edges pre-warped
 * with fs = 2 (normalised): w = 4 tan(pi Wn / 2), Wn = f / (fs / 2); lp2lp / lp2hp /
 * lp2bp; bilinear transform z = (4 + s) / (4 - s). Returns the pole count. */
static int butter_poles(int order, int btype, double w1, double w2, double complex *pz,
                        double *gain) {
    const double fs2 = 4.0;
    double complex pa[2 * CLEAN_MAX_SECTIONS];
    int np = 0, nz_analog = 0; /* analog zeros are all at s = 0 (hp, bp) or none (lp) */
    double complex k = 1.0;
    for (int m = -order + 1; m <= order - 1; m += 2) {
        double complex p = -cexp(CMPLX(0.0, M_PI * (double)m / (2.0 * order)));
        if (btype == 0) { /* low-pass, wo = w2 */
            pa[np++] = w2 * p;
        } else if (btype == 1) { /* high-pass, wo = w1 */
            pa[np++] = w1 / p;
        } else { /* band-pass */
            double bw = w2 - w1, wo = sqrt(w1 * w2);
            double complex pl = p * bw / 2.0;
            double complex r = csqrt(pl * pl - wo * wo);
            pa[np++] = pl + r;
            pa[np++] = pl - r;
        }
    }
    /* Gains: lp2lp k wo^N; lp2hp k * prod(-z)/prod(-p) (no prototype zeros: 1/prod(-p));
     * lp2bp k bw^N. */
    if (btype == 0) {
        k = pow(w2, order);
    } else if (btype == 1) {
        double complex prod = 1.0;
        for (int m = -order + 1; m <= order - 1; m += 2)
            prod *= cexp(CMPLX(0.0, M_PI * (double)m / (2.0 * order))); /* -p */
        k = 1.0 / prod;
        nz_analog = order;
    } else {
        k = pow(w2 - w1, order);
        nz_analog = order;
    }
    /* bilinear_zpk: k *= prod(fs2 - z) / prod(fs2 - p), z at 0 -> factor fs2 each. */
    double complex num = 1.0, den = 1.0;
    for (int i = 0; i < nz_analog; i++) num *= fs2;
    for (int i = 0; i < np; i++) den *= fs2 - pa[i];
    *gain = creal(k * num / den);
    for (int i = 0; i < np; i++) pz[i] = (fs2 + pa[i]) / (fs2 - pa[i]);
    return np;
}

int clean_butter(int order, double high_pass, double low_pass, double fs, clean_sos *out,
                 const char *what, bgfm_err *e) {
    memset(out, 0, sizeof *out);
    double nyq = fs / 2.0;
    int btype = high_pass > 0 && low_pass > 0 ? 2 : high_pass > 0 ? 1 : 0;
    if (order < 1 || order > CLEAN_MAX_SECTIONS - 1)
        return bgfm_fail(e, BGFM_EUSAGE, "filter_order %d outside 1..%d", order,
                         CLEAN_MAX_SECTIONS - 1);
    if (!(fs > 0) || !isfinite(fs))
        return bgfm_fail(e, BGFM_EDATA,
                         "%s: the repetition time is unknown (pixdim[4] = 0), so high_pass/"
                         "low_pass cannot be applied; set the stage's t_r key", what);
    if ((high_pass > 0 && high_pass >= nyq) || (low_pass > 0 && low_pass >= nyq))
        return bgfm_fail(e, BGFM_EDATA,
                         "%s: filter edge %g Hz is not below the Nyquist frequency %g Hz "
                         "(TR %g s); lower high_pass/low_pass or check t_r",
                         what, (high_pass > 0 && high_pass >= nyq) ? high_pass : low_pass, nyq,
                         1.0 / fs);
    if (btype == 2 && high_pass >= low_pass)
        return bgfm_fail(e, BGFM_EUSAGE, "high_pass %g Hz must be below low_pass %g Hz",
                         high_pass, low_pass);
    double w1 = high_pass > 0 ? 4.0 * tan(M_PI * (high_pass / nyq) / 2.0) : 0;
    double w2 = low_pass > 0 ? 4.0 * tan(M_PI * (low_pass / nyq) / 2.0) : 0;
    double complex p[2 * CLEAN_MAX_SECTIONS];
    double gain = 1.0;
    int np = butter_poles(order, btype, w1, w2, p, &gain);
    BGFM_ASSERT(np <= 2 * CLEAN_MAX_SECTIONS - 2);
    /* Sections: one per conjugate pair (imag > 0), then the real poles two by two, a
     * lone real pole last as a first-order section (b2 = a2 = 0, like scipy's zpk2sos
     * padding with a pole and a zero at the origin). Zeros: low-pass at -1, high-pass
     * at +1, band-pass one at +1 and one at -1 per section. */
    double re[2 * CLEAN_MAX_SECTIONS];
    int nre = 0, ns = 0;
    for (int i = 0; i < np; i++) {
        double tol = 1e-12 * cabs(p[i]);
        if (cimag(p[i]) > tol) {
            double *s = out->s[ns++];
            s[3] = 1.0;
            s[4] = -2.0 * creal(p[i]);
            s[5] = creal(p[i]) * creal(p[i]) + cimag(p[i]) * cimag(p[i]);
        } else if (fabs(cimag(p[i])) <= tol) {
            re[nre++] = creal(p[i]);
        }
    }
    for (int i = 0; i + 1 < nre; i += 2) {
        double *s = out->s[ns++];
        s[3] = 1.0;
        s[4] = -(re[i] + re[i + 1]);
        s[5] = re[i] * re[i + 1];
    }
    int first_order = nre % 2;
    if (first_order) {
        double *s = out->s[ns++];
        s[3] = 1.0;
        s[4] = -re[nre - 1];
        s[5] = 0.0;
    }
    BGFM_ASSERT(2 * ns - first_order == np);
    for (int i = 0; i < ns; i++) {
        double *s = out->s[i];
        int single = first_order && i == ns - 1;
        if (btype == 0) {
            s[0] = 1.0, s[1] = single ? 1.0 : 2.0, s[2] = single ? 0.0 : 1.0;
        } else if (btype == 1) {
            s[0] = 1.0, s[1] = single ? -1.0 : -2.0, s[2] = single ? 0.0 : 1.0;
        } else {
            s[0] = 1.0, s[1] = 0.0, s[2] = -1.0;
        }
    }
    for (int j = 0; j < 3; j++) out->s[0][j] *= gain;
    out->n = ns;
    int nb0 = 0, na0 = 0;
    for (int i = 0; i < ns; i++) {
        nb0 += out->s[i][2] == 0.0;
        na0 += out->s[i][5] == 0.0;
    }
    out->padlen = 3 * (2 * ns + 1 - (nb0 < na0 ? nb0 : na0));
    return 0;
}

/* lfilter_zi of one section: steady state of the transposed direct form II for a unit
 * step, solving (I - companion(a)^T) zi = b[1:] - a[1:] b0. */
static void section_zi(const double *s, double zi[2]) {
    double b0 = s[0], b1 = s[1], b2 = s[2], a1 = s[4], a2 = s[5];
    double r0 = b1 - a1 * b0, r1 = b2 - a2 * b0;
    /* [[1 + a1, -1], [a2, 1]] zi = r */
    double det = (1.0 + a1) + a2;
    zi[0] = (r0 + r1) / det;
    zi[1] = r1 - a2 * zi[0];
}

/* sosfilt over x[0..n) in place with initial states z (n_sections x 2), scaled by x0. */
static void sosfilt_run(const clean_sos *f, const double zi[][2], double scale0, double *x,
                        int64_t n) {
    for (int k = 0; k < f->n; k++) {
        const double *s = f->s[k];
        double b0 = s[0], b1 = s[1], b2 = s[2], a1 = s[4], a2 = s[5];
        double z0 = zi[k][0] * scale0, z1 = zi[k][1] * scale0;
        for (int64_t t = 0; t < n; t++) {
            double xi = x[t];
            double y = b0 * xi + z0;
            z0 = b1 * xi - a1 * y + z1;
            z1 = b2 * xi - a2 * y;
            x[t] = y;
        }
    }
}

void clean_sosfiltfilt(const clean_sos *f, double *x, int64_t n, double *work) {
    int64_t pl = f->padlen;
    BGFM_ASSERT(n > pl);
    int64_t m = n + 2 * pl;
    double *ext = work;
    /* odd extension: 2 x[0] - x[pl..1], x, 2 x[n-1] - x[n-2..n-1-pl] */
    for (int64_t i = 0; i < pl; i++) ext[i] = 2.0 * x[0] - x[pl - i];
    memcpy(ext + pl, x, (size_t)n * sizeof *x);
    for (int64_t i = 0; i < pl; i++) ext[pl + n + i] = 2.0 * x[n - 1] - x[n - 2 - i];
    /* sosfilt_zi: per-section zi times the cumulative DC gain of the previous sections */
    double zi[CLEAN_MAX_SECTIONS][2];
    double scale = 1.0;
    for (int k = 0; k < f->n; k++) {
        const double *s = f->s[k];
        section_zi(s, zi[k]);
        zi[k][0] *= scale;
        zi[k][1] *= scale;
        scale *= (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]);
    }
    sosfilt_run(f, (const double(*)[2])zi, ext[0], ext, m);
    double *rev = work + m;
    for (int64_t i = 0; i < m; i++) rev[i] = ext[m - 1 - i];
    sosfilt_run(f, (const double(*)[2])zi, rev[0], rev, m);
    for (int64_t i = 0; i < n; i++) x[i] = rev[m - 1 - pl - i];
}

void clean_detrend(double *x, int64_t n) {
    if (n < 2) {
        if (n == 1) x[0] = 0.0;
        return;
    }
    double tm = (double)(n - 1) / 2.0, xm = 0.0;
    for (int64_t t = 0; t < n; t++) xm += x[t];
    xm /= (double)n;
    double sxy = 0.0, sxx = 0.0;
    for (int64_t t = 0; t < n; t++) {
        double dt = (double)t - tm;
        sxy += dt * (x[t] - xm);
        sxx += dt * dt;
    }
    double b = sxy / sxx;
    for (int64_t t = 0; t < n; t++) x[t] -= xm + b * ((double)t - tm);
}

void clean_standardize_series(clean_standardize how, double *x, int64_t n, double raw_mean) {
    if (how == CLEAN_STD_NONE || n < 1) return;
    double m = 0.0;
    for (int64_t t = 0; t < n; t++) m += x[t];
    m /= (double)n;
    if (how == CLEAN_STD_ZSCORE) {
        double v = 0.0;
        for (int64_t t = 0; t < n; t++) v += (x[t] - m) * (x[t] - m);
        double sd = sqrt(v / (double)n);
        if (sd < DBL_EPSILON) sd = 1.0;
        for (int64_t t = 0; t < n; t++) x[t] = (x[t] - m) / sd;
    } else {
        double d = fabs(raw_mean);
        for (int64_t t = 0; t < n; t++) x[t] = d < DBL_EPSILON ? 0.0 : 100.0 * (x[t] - m) / d;
    }
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t t = 0; t < n; t++) s += a[t] * b[t];
    return s;
}

void clean_project(const double *Q, int r, double *x, int64_t n) {
    for (int j = 0; j < r; j++) {
        const double *q = Q + (int64_t)j * n;
        double c = dot(q, x, n);
        for (int64_t t = 0; t < n; t++) x[t] -= c * q[t];
    }
}

int clean_basis(const clean_opts *o, const clean_sos *f, double *X, int64_t n, int K, double *work) {
    int r = 0;
    for (int k = 0; k < K; k++) {
        double *c = X + (int64_t)k * n;
        if (o->detrend) {
            clean_detrend(c, n);
        } else {
            double m = 0.0;
            for (int64_t t = 0; t < n; t++) m += c[t];
            m /= (double)(n > 0 ? n : 1);
            for (int64_t t = 0; t < n; t++) c[t] -= m;
        }
        if (f) clean_sosfiltfilt(f, c, n, work);
        double n0 = sqrt(dot(c, c, n));
        clean_project(X, r, c, n); /* twice: Gram-Schmidt with reorthogonalisation */
        clean_project(X, r, c, n);
        double n1 = sqrt(dot(c, c, n));
        if (!(n1 > CLEAN_RANK_TOL * n0) || n1 == 0.0) continue; /* in the span already */
        double *q = X + (int64_t)r * n;
        for (int64_t t = 0; t < n; t++) q[t] = c[t] / n1;
        r++;
    }
    return r;
}

void clean_interpolate(double *x, int64_t n, const uint8_t *censor, double *work) {
    double *kt = work, *ky = work + n, *M = work + 2 * n, *cp = work + 3 * n, *dp = work + 4 * n;
    int64_t m = 0;
    for (int64_t t = 0; t < n; t++)
        if (!censor[t]) {
            kt[m] = (double)t;
            ky[m++] = x[t];
        }
    if (m < 2 || m == n) return;
    /* second derivatives at the knots: natural ends (M = 0), the tridiagonal system of
     * the interior knots solved by the Thomas algorithm */
    M[0] = M[m - 1] = 0.0;
    for (int64_t i = 1; i + 1 < m; i++) {
        double h0 = kt[i] - kt[i - 1], h1 = kt[i + 1] - kt[i];
        double a = h0, b = 2.0 * (h0 + h1), c = h1;
        double d = 6.0 * ((ky[i + 1] - ky[i]) / h1 - (ky[i] - ky[i - 1]) / h0);
        double den = b - (i > 1 ? a * cp[i - 1] : 0.0);
        cp[i] = c / den;
        dp[i] = (d - (i > 1 ? a * dp[i - 1] : 0.0)) / den;
    }
    for (int64_t i = m - 2; i >= 1; i--) M[i] = dp[i] - (i + 1 < m - 1 ? cp[i] * M[i + 1] : 0.0);
    int64_t i = 0;
    for (int64_t t = 0; t < n; t++) {
        if (!censor[t]) continue;
        double tt = (double)t;
        if (tt < kt[0]) {
            x[t] = ky[0];
            continue;
        }
        if (tt > kt[m - 1]) {
            x[t] = ky[m - 1];
            continue;
        }
        while (i + 1 < m - 1 && kt[i + 1] < tt) i++;
        double h = kt[i + 1] - kt[i], u = kt[i + 1] - tt, v = tt - kt[i];
        x[t] = M[i] * u * u * u / (6.0 * h) + M[i + 1] * v * v * v / (6.0 * h) +
               (ky[i] / h - M[i] * h / 6.0) * u + (ky[i + 1] / h - M[i + 1] * h / 6.0) * v;
    }
}

void clean_series(const clean_opts *o, const clean_sos *f, const double *Q, int r, double *x,
                  int64_t n, double *work) {
    double raw_mean = 0.0;
    for (int64_t t = 0; t < n; t++) raw_mean += x[t];
    raw_mean /= (double)(n > 0 ? n : 1);
    if (o->detrend) clean_detrend(x, n);
    if (f) clean_sosfiltfilt(f, x, n, work);
    clean_project(Q, r, x, n);
    clean_standardize_series(o->standardize, x, n, raw_mean);
}
