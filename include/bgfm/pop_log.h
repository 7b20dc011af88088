/* pop_log.h: what the population head's fit says in the log (docs/model.md section 11):
 * per atlas what the held-out rule found, the directions fitted and on how many sites, a
 * kept direction that is one site's own variation (with what to do), then the rank every
 * atlas keeps and why, and where no factor stood out, among how many people. The fit
 * itself is pop.h's. */
#ifndef BGFM_POP_LOG_H
#define BGFM_POP_LOG_H

#include <stddef.h>

#include "bgfm/ctx.h"
#include "bgfm/model.h"
#include "bgfm/pop.h"

/* What the rule found for a measured atlas, as the log says it: the mean counts up the
 * ladder ("3.06 at 1.2x, 2.88 at 1.4x, ..."), then ": a gap after 3 (the count holds from
 * 1.2x to 1.4x)", or why there is no gap (fewer than 2 throughout, or no plateau) followed
 * by the halves' reproducibility ("; reproducible on both halves, k = 1 .. 12: 0.26 0.42
 * ...: a peak of 0.78 at 4", or ": no peak of 0.7"). */
void pop_rule_text(const pop_rows_out *f, char *buf, size_t n);

/* The log of one fit (collective: rank 0 writes): pfi from pop_fit for the model of
 * configuration c, r the rows every atlas keeps, how pop_rank_shared's answer (1 a gap,
 * 2 a reproducible peak, 0 the fallback), pop_auto whether the rank was measured,
 * site_mode the fit's POP_SITE_*, apart_z and apart_share its pop_fit_opts'. */
void pop_log_fit(bgfm_ctx *ctx, const pop_fit_info *pfi, const model_cfg *c, int r, int how,
                 int pop_auto, int site_mode, double apart_z, double apart_share);

#endif
