/* pop_scan.h: per-scan statistics of the population head's scores (pop.c; docs/model.md
 * section 11): the scans' mean rows and the between- and within-scan covariances, the
 * within one's shrinkage, how much of a direction one site holds, and the people who
 * stand apart from the rest. Q is always n rows of r0 scores (row-major), scan[i] the
 * scan of row i. */
#ifndef BGFM_POP_SCAN_H
#define BGFM_POP_SCAN_H

#include <stdint.h>

#include "bgfm/ctx.h"
#include "bgfm/pop.h"

/* Over the rows i with side[i] == want (all rows when side is NULL): Sb = the mean over
 * scans of g g^T (g: the scan's mean row of Q, recentred on the mean of those scans when
 * asked, for a subset of the rows), Sw = the mean over rows of (q - g)(q - g)^T. Gout (n x
 * r0, may be NULL): the g's kept, in ascending scan order, *scans_out of them. Returns the
 * number of scans with two or more rows, -1 on ENOMEM. */
int64_t pop_scatter(const double *Q, int64_t n, int r0, const int64_t *scan, const signed char *side,
                    int want, int recentre, double *Sb, double *Sw, double *Gout,
                    int64_t *scans_out, bgfm_err *e);

/* Sw <- (1 - s) Sw + s tr(Sw)/r0 I; 0, or 1 when Sw has no variance. */
int pop_shrink_within(double *Sw, int r0, double s);

/* out->site_*: for the k leading directions (columns r0-1 .. r0-k of V, r0 x r0 row-major),
 * their features y = q v over the rows Qr (the centred rows' own scores), each scan's mean
 * feature, and per site (site[i] in 0 .. sites-1) the variance of those about the site's
 * mean; the largest site's share of the total (counted over its scans). -1 with e set. */
int pop_site_shares(const double *Qr, int64_t n, int r0, const int64_t *scan, const int32_t *site,
                    int sites, const double *V, int k, pop_rows_out *out, bgfm_err *e);

/* People who stand apart (model.md section 11, "People who stand apart"): over the scans
 * with two or more rows, g the scan's mean row less the mean of all scans' means, and its
 * distance d = g^T Sw^-1 g, Sw the within-scan covariance shrunk by `shrink` (the
 * discriminant's metric); z = (ln d - median) / (1.4826 MAD) of ln d over those scans. A
 * scan with z > zmax stands apart: keep[i] = 0 for its rows, 1 for every other row.
 * Measured over at least POP_APART_MIN such scans, else every row kept. out->apart_*: how
 * many stand apart, of how many measured, the POP_APART_LOG largest (scan, z), largest
 * first. Returns how many stand apart, -1 with e set. */
int64_t pop_scans_apart(const double *Q, int64_t n, int r0, const int64_t *scan, double shrink,
                        double zmax, unsigned char *keep, pop_rows_out *out, bgfm_err *e);

/* People who hold a leading direction themselves (pop.h, POP_HOLD_*): over the rows with
 * keep[i] set, the POP_HOLD_DIRS leading directions of Sb a = lambda Sw' a (pop_scatter
 * recentred on those rows' scans; Sw shrunk by `shrink`), each scan's mean feature along
 * each, and the largest share of a direction's variance over the scans that one scan holds.
 * While that share is at least smin, the scan's rows get keep[i] = 0 and the directions are
 * found again (at most POP_HOLD_MAX times; only while at least POP_APART_MIN scans with two
 * or more rows are kept). out->held_*: in the order left out. Returns how many were left
 * out, -1 with e set. */
int64_t pop_scans_holding(const double *Q, int64_t n, int r0, const int64_t *scan, double shrink,
                          double smin, unsigned char *keep, pop_rows_out *out, bgfm_err *e);

/* The median of v[0..n) (n > 0), which it sorts; qsort's order of int64_t. */
double pop_median(double *v, int64_t n);
int pop_i64_cmp(const void *a, const void *b);

#endif
