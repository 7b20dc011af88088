/* main.c: the bgfm binary: MPI set-up, the command dispatcher (cli_main), exit code.
 * Not a subcommand, and never sets test hooks (tests/lib/bgfm_test.c does, for tests). */
#include "bgfm/cli.h"
#include "bgfm/ctx.h"

int main(int argc, char **argv) {
    bgfm_ctx ctx;
    int rc = cli_start(&ctx, &argc, &argv);
    if (rc) return rc;
    rc = cli_main(&ctx, argc, argv);
    bgfm_ctx_finalize(&ctx);
    return rc;
}
