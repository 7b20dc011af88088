/* pop_log.c: what the population head's fit says in the log (pop_log.h). */
#include "bgfm/pop_log.h"

#include <stdio.h>

#include "bgfm/log.h"

static const double ladder[POP_HO_STEPS] = POP_HO_LADDER; /* the thresholds, pop.h */

void pop_rule_text(const pop_rows_out *f, char *buf, size_t n) {
    size_t k = 0;
    int w = 0, high = 0;
    for (int t = 0; t < POP_HO_STEPS && k < n; t++, k += (size_t)(w > 0 ? w : 0)) {
        w = snprintf(buf + k, n - k, "%s%.2f at %gx", t ? ", " : "", f->held_at[t], ladder[t]);
        high |= f->held_at[t] >= 1.5;
    }
    if (k >= n) return; /* truncated, terminated */
    if (f->rank > 0 && f->held_step >= 0)
        snprintf(buf + k, n - k, ": a gap after %d (the count holds from %gx to %gx)", f->rank,
                 ladder[f->held_step], ladder[f->held_step + 1]);
    else if (high)
        k += (size_t)snprintf(buf + k, n - k, ": no gap (no plateau: the count falls steadily "
                              "as the threshold rises, as where many weak factors begin to stand "
                              "out; docs/results.md 12o)");
    else
        k += (size_t)snprintf(buf + k, n - k, ": no gap (fewer than 2)");
    if (f->rank > 0 && f->held_step >= 0) return;
    for (int j = 0; j < POP_RP_DIRS && k < n; j++, k += (size_t)(w > 0 ? w : 0))
        w = snprintf(buf + k, n - k, "%s%.2f", j ? " " : "; reproducible on both halves, "
                     "k = 1 .. 12: ", f->repro[j]);
    if (k >= n) return;
    if (f->repro_rank)
        snprintf(buf + k, n - k, ": a peak of %.2f at %d", f->repro[f->repro_rank - 1],
                 f->repro_rank);
    else
        snprintf(buf + k, n - k, ": no peak of %g", POP_RP_MIN);
}

/* A leading direction of atlas a's head (of the r kept) that is one site's own variation
 * (pop.h, POP_SITE_OWN): said once per atlas, with what to do. */
static void warn_site_own(bgfm_ctx *ctx, int site_mode, const pop_fit_info *pfi, int a, int r,
                          const char *atlas) {
    const pop_rows_out *f = &pfi->fit[a];
    const int k = pfi->graphs[a] ? pop_site_own(f, r) : -1;
    if (ctx->rank == 0 && k >= 0) { /* every rank has the same fit: said once */
        const char *ds = pfi->site_dataset[a][k] ? pfi->site_dataset[a][k] : "";
        const char *sn = pfi->site_name[a][k] ? pfi->site_name[a][k] : "";
        log_warn(ctx, "pretrain: population head of %s: %.0f%% of how people differ along "
                 "direction %d is within one site (%s%s'%s', %.0f%% of the scans): that site's "
                 "own variation (its physiology or artifacts, as with a TR of its own) or that "
                 "of one or two of its people (scans of high motion kept below pop_outlier_z: "
                 "results 12v, 12y), not a way people differ; %s (docs/model.md section 11, "
                 "\"Sites\"; docs/results.md 12t)",
                 atlas, 100 * f->site_share[k], k + 1,
                 *ds ? ds : "", *ds ? " " : "", sn, 100 * f->site_scans[k],
                 site_mode == POP_SITE_HARMONISE
                     ? "pop_site: harmonise could not even it out: consider leaving that site out "
                       "of pretraining"
                     : "pop_site: harmonise chooses the directions on the sites' spreads made alike");
    }
}

/* "sub-1 (z 7.2), sub-2 (z 5.1)" (dir NULL: v is z) or "sub-1 (94% of direction 1), .."
 * (v a share, dir its direction): the first count (at most POP_APART_LOG) of names, "?"
 * for a name not known. */
static void name_list(char *who, size_t n, const char *const *names, int64_t count,
                      const double *v, const int *dir) {
    size_t k = 0;
    who[0] = 0;
    for (int j = 0; j < count && j < POP_APART_LOG && k < n; j++) {
        const char *p = names[j] && *names[j] ? names[j] : "?", *sep = j ? ", " : "";
        int w = dir ? snprintf(who + k, n - k, "%s%s (%.0f%% of direction %d)", sep, p,
                               100 * v[j], dir[j])
                    : snprintf(who + k, n - k, "%s%s (z %.1f)", sep, p, v[j]);
        k += (size_t)(w > 0 ? w : 0);
    }
}

/* The people who stand apart, left out of atlas a's head (pop.h, POP_APART_Z): said with
 * who they are and what to do. */
static void warn_apart(bgfm_ctx *ctx, const pop_fit_info *pfi, int a, double zmax,
                       const char *atlas) {
    const pop_rows_out *f = &pfi->fit[a];
    if (ctx->rank != 0 || !pfi->graphs[a] || !f->apart) return; /* the same fit on every rank */
    char who[512];
    name_list(who, sizeof who, pfi->apart_name[a], f->apart, f->apart_z, NULL);
    log_warn(ctx, "pretrain: population head of %s: %lld of the %lld people seen twice or more "
             "%s apart from the rest (their FC's distance from everyone's more than %g robust "
             "deviations above the typical one): %s%s; left out of the head's fit, as a direction "
             "one person alone spans is not a way people differ. Look at their scans (motion, "
             "scrubbing, coverage; docs/model.md section 11, \"People who stand apart\"; "
             "pop_outlier_z: 0 keeps everyone)", atlas, (long long)f->apart,
             (long long)f->apart_of, f->apart == 1 ? "stands" : "stand", zmax, who,
             f->apart > POP_APART_LOG ? ", ..." : "");
}

/* The people who hold a leading direction themselves, left out of atlas a's head (pop.h,
 * POP_HOLD_*): said in the order left out, with what to do. */
static void warn_held(bgfm_ctx *ctx, const pop_fit_info *pfi, int a, double smin,
                      const char *atlas) {
    const pop_rows_out *f = &pfi->fit[a];
    if (ctx->rank != 0 || !pfi->graphs[a] || !f->held) return; /* the same fit on every rank */
    char who[512];
    name_list(who, sizeof who, pfi->held_name[a], f->held, f->held_share, f->held_dir);
    log_warn(ctx, "pretrain: population head of %s: %lld %s a leading direction alone (%g or "
             "more of its variance over the people; left out one at a time, the directions found "
             "again each time): %s%s; left out of the head's fit, as a direction one person alone "
             "spans is not a way people differ. Look at their scans (motion, scrubbing, coverage; "
             "docs/model.md section 11, \"People who stand apart\"; pop_outlier_share: 0 keeps "
             "them)", atlas, (long long)f->held, f->held == 1 ? "person holds" : "people hold",
             smin, who, f->held > POP_APART_LOG ? ", ..." : "");
}

void pop_log_fit(bgfm_ctx *ctx, const pop_fit_info *pfi, const model_cfg *c, int r, int how,
                 int pop_auto, int site_mode, double apart_z, double apart_share) {
    for (int a = 0; a < c->n_atlases; a++) {
        char sites[160] = "", found[640];
        if (!pfi->graphs[a]) continue;
        if (pop_auto && pfi->fit[a].measured) {
            pop_rule_text(&pfi->fit[a], found, sizeof found);
            log_info(ctx, "pretrain: population head of %s: pop_rank auto: directions standing "
                     "out on held-out halves, mean of %d fits, at each multiple of the bulk: %s",
                     c->atlas[a], POP_HO_FITS, found);
        } else if (pop_auto)
            log_info(ctx, "pretrain: population head of %s: pop_rank auto: too few people (or "
                     "FC entries) for two halves with a bulk of directions to measure against "
                     "(need %d scans and %d principal axes)", c->atlas[a],
                     2 * (2 * POP_HO_LEAD + 1), 2 * POP_HO_LEAD);
        const pop_rows_out *f = &pfi->fit[a];
        int top = -1; /* the kept direction most within one site */
        for (int k = 0; k < f->site_dirs && k < r; k++)
            if (top < 0 || f->site_share[k] > f->site_share[top]) top = k;
        if (pfi->sites[a] > 1) {
            int w = snprintf(sites, sizeof sites, ", %s on %d sites",
                             site_mode == POP_SITE_HARMONISE ? "centred and harmonised" : "centred",
                             pfi->sites[a]);
            if (top >= 0 && w > 0 && (size_t)w < sizeof sites)
                snprintf(sites + w, sizeof sites - (size_t)w, "; at most %.0f%% of how people "
                         "differ along a direction lies within one site (direction %d)",
                         100 * f->site_share[top], top + 1);
        }
        log_info(ctx, "pretrain: population head of %s: %d directions from %lld graphs (%lld "
                 "scans with 2+ windows%s), leading between/within ratio %.3g", c->atlas[a],
                 pfi->dims[a] < r ? pfi->dims[a] : r, (long long)pfi->graphs[a],
                 (long long)pfi->fit[a].multi, sites, pfi->fit[a].ratio);
        if (f->solve.solver == PCA_SOLVER_RANDOMISED)
            log_info(ctx, "pretrain: population head of %s: principal subspace randomised "
                     "(pop_solver; a block of %d, %d iterations, the leading Ritz values' last "
                     "change %.1e of the largest)", c->atlas[a], f->solve.block, f->solve.iters,
                     f->solve.change);
    }
    for (int a = 0; a < c->n_atlases; a++) warn_apart(ctx, pfi, a, apart_z, c->atlas[a]);
    for (int a = 0; a < c->n_atlases; a++) warn_held(ctx, pfi, a, apart_share, c->atlas[a]);
    for (int a = 0; a < c->n_atlases; a++) warn_site_own(ctx, site_mode, pfi, a, r, c->atlas[a]);
    if (pop_auto)
        log_info(ctx, "pretrain: pop_rank auto: rank %d for every atlas (%s)", r,
                 how == 1   ? "the largest gap of the atlases: the factors belong to the people"
                 : how == 2 ? "no atlas shows a gap; the largest reproducible peak of the atlases"
                            : "no atlas shows a gap: the default");
    int64_t people = 0; /* the people the rule measured on, where it did */
    for (int a = 0; a < c->n_atlases; a++)
        if (pfi->graphs[a] && pfi->fit[a].measured && pfi->fit[a].multi > people)
            people = pfi->fit[a].multi;
    if (pop_auto && !how && people)
        log_info(ctx, "pretrain: pop_rank auto: no factor shared by people stood out among the "
                 "%lld training read; weak ones stand out among more people (docs/results.md "
                 "12m: four weak traits did among 416 and 832, not 208): unlabelled datasets "
                 "with role: pretrain add them (docs/corpus.md)", (long long)people);
}
