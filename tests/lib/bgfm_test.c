/* bgfm_test.c: the test driver $(BUILD)/tests/bgfm-test: the same commands as
 * build/bgfm (cli_main), with the test hooks of ctx.h filled from the environment:
 *   BGFM_TEST_FAIL=SITE:RANK[:CALL]  fail at bgfm_test_fault(SITE) on RANK, CALL-th call
 *                                    (sites: dist_ntxent, dist_bucket)
 *   BGFM_TEST_STOP_AFTER=N           pretrain stops as if signalled after step N
 *   BGFM_TEST_DESYNC_RANK=R          pretrain: rank R perturbs a weight after step 2
 *   BGFM_TEST_NTXENT=replicated      pretrain: the previous NT-Xent, every rank evaluating
 *                                    the whole global batch (bench/ntxent_scaling.sh)
 * Not part of the product: build/bgfm never reads these variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/cli.h"
#include "bgfm/ctx.h"

static void hooks_from_env(bgfm_test_hooks *h, char *site, size_t n) {
    memset(h, 0, sizeof *h);
    h->desync_rank = -1;
    const char *f = getenv("BGFM_TEST_FAIL");
    if (f && *f) {
        snprintf(site, n, "%s", f);
        char *c1 = strchr(site, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c1) *c1 = '\0';
        if (c2) *c2 = '\0';
        h->fail_site = site;
        h->fail_rank = c1 ? (int)strtol(c1 + 1, NULL, 10) : 0;
        h->fail_call = c2 ? strtol(c2 + 1, NULL, 10) : 1;
    }
    const char *s = getenv("BGFM_TEST_STOP_AFTER");
    if (s) h->stop_after = strtoll(s, NULL, 10);
    const char *d = getenv("BGFM_TEST_DESYNC_RANK");
    if (d) h->desync_rank = (int)strtol(d, NULL, 10);
    const char *pz = getenv("BGFM_TEST_CKPT_PAUSE_MS");
    if (pz) h->ckpt_pause_ms = strtol(pz, NULL, 10);
    const char *x = getenv("BGFM_TEST_NTXENT");
    h->ntxent_replicated = x && !strcmp(x, "replicated");
}

int main(int argc, char **argv) {
    bgfm_ctx ctx;
    bgfm_test_hooks hooks;
    char site[128];
    int rc = cli_start(&ctx, &argc, &argv);
    if (rc) return rc;
    hooks_from_env(&hooks, site, sizeof site);
    ctx.hooks = &hooks;
    rc = cli_main(&ctx, argc, argv);
    bgfm_ctx_finalize(&ctx);
    return rc;
}
