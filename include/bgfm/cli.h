/* cli.h: the subcommands of build/bgfm. Each takes the process context and its own
 * argv (argv[0] is the subcommand name), handles --help itself, and returns a status
 * agreed by every rank (ctx.h). Not the argument parsers of the stages. */
#ifndef BGFM_CLI_H
#define BGFM_CLI_H

#include "bgfm/ctx.h"

typedef int (*bgfm_cmd_fn)(bgfm_ctx *ctx, int argc, char **argv);

typedef struct bgfm_cmd {
    const char *name;
    bgfm_cmd_fn fn;
    const char *usage;   /* one line: arguments */
    const char *summary; /* one line: what it does */
    int local;           /* 1: works in one process: started without a launcher, it runs
                            without MPI (bgfm_ctx_init_local); under mpirun every rank
                            initialises MPI as for any command */
} bgfm_cmd;

int cmd_run(bgfm_ctx *ctx, int argc, char **argv);      /* pipeline/commands/html.c */
int cmd_validate(bgfm_ctx *ctx, int argc, char **argv); /* pipeline/engine/run.c */
int cmd_inspect(bgfm_ctx *ctx, int argc, char **argv);  /* pipeline/commands/inspect.c */
int cmd_doc(bgfm_ctx *ctx, int argc, char **argv);      /* pipeline/engine/doc.c */
int cmd_synth(bgfm_ctx *ctx, int argc, char **argv);    /* stages/synth/synth.c */
int cmd_submit(bgfm_ctx *ctx, int argc, char **argv);   /* pipeline/commands/submit.c */
int cmd_grad(bgfm_ctx *, int, char **);                 /* stages/pretrain/grad.c */
int cmd_export(bgfm_ctx *, int, char **);               /* stages/pretrain/export.c */
int cmd_report(bgfm_ctx *ctx, int argc, char **argv);   /* pipeline/commands/report.c */
int cmd_scale(bgfm_ctx *ctx, int argc, char **argv);    /* pipeline/commands/scale.c */

/* Every command of build/bgfm: argv[1] is the command; prints usage/version itself,
 * reports ctx->err on rank 0 (bgfm_ctx_report) and returns the exit status. */
int cli_main(bgfm_ctx *ctx, int argc, char **argv); /* dispatch.c */
/* The context for the command argv[1] (dispatch.c): a command marked `local` started
 * without a launcher (no mpirun, srun or PMIx around it) gets bgfm_ctx_init_local, no MPI
 * at all; any other process MPI (bgfm_ctx_init), a singleton with in-process transports
 * (Open MPI defaults that never override a user's OMPI_MCA_*; not for `scale`/`submit`,
 * whose children inherit them). docs/architecture.md, "Start-up of a single process". */
int cli_start(bgfm_ctx *ctx, int *argc, char ***argv);

/* Shared helpers for subcommand option parsing. */
/* Returns 1 if argv contains -h or --help. */
int cli_wants_help(int argc, char **argv);
/* Parse a decimal integer / real option value strictly (whole string, range). */
int cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out,
                  bgfm_err *e);
int cli_parse_f64(const char *opt, const char *s, double lo, double hi, double *out,
                  bgfm_err *e);

#endif
