/* dispatch.c: the command table of build/bgfm and its dispatcher (cli_main, shared by
 * build/bgfm and the test driver), and the start of the process (cli_start: no MPI for
 * a local command started alone, else MPI with the singleton defaults applied before
 * MPI_Init). Not main() (main.c), not the parsing helpers (cli.c), not any command. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgfm/cli.h"

static const bgfm_cmd commands[] = {
    {"run", cmd_run,
     "PIPELINE.yaml [--from S] [--only S] [--force] [--dry-run] [--no-report] [--quiet]",
     "run the pipeline's stages that are not up to date; then the report page", 0},
    {"validate", cmd_validate, "PIPELINE.yaml", "check a pipeline file, print the resolved plan", 0},
    {"submit", cmd_submit, "PIPELINE.yaml [--dry-run] [--stage S]",
     "write one sbatch script per stage and submit them chained (afterok)", 0},
    {"synth", cmd_synth, "--out DIR [--subjects S] [--volumes T] ...",
     "write a synthetic BIDS cohort with a known group effect", 0},
    {"inspect", cmd_inspect, "FILE.h5 [--json]", "summarise a bgfm HDF5 file", 0},
    {"grad", cmd_grad,
     "--graphs FILE --atlas NAME --indices i,j,... (--checkpoint F | --init SEED) --out OUT.h5",
     "one deterministic forward+backward of the model, dumped for checking (model.md 7)", 0},
    {"export", cmd_export, "CHECKPOINT --out FILE.safetensors [--full]",
     "the model as safetensors for PyTorch (python/bgfm_torch; docs/export.md)", 1},
    {"report", cmd_report, "WORKDIR [--html]",
     "print the probe results (and scaling CSVs) found in WORKDIR; --html: the report page", 0},
    {"scale", cmd_scale, "PIPELINE.yaml --stage S [--ranks 1,2,4] [--mode strong|weak] [--out DIR]",
     "run one stage on several rank counts; CSV and plots of speed-up and efficiency", 0},
    {"doc", cmd_doc, "yaml|errors", "print reference documentation generated from the code", 0},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f, "bgfm %s: brain graphs from resting-state fMRI, and a brain-graph foundation "
               "model pretrained on them.\n\nusage: bgfm COMMAND [ARGS]   (alone or under "
               "mpirun/srun)\n\ncommands:\n", BGFM_VERSION);
    for (int i = 0; i < n_commands; i++)
        fprintf(f, "  %-10s %s\n  %-10s   %s\n", commands[i].name, commands[i].usage, "",
                commands[i].summary);
    fprintf(f, "\n  bgfm COMMAND --help   more on one command\n  bgfm --version\n\n"
               "exit codes: 0 ok, 2 usage/config, 3 bad input data, 4 I/O, 5 memory, "
               "6 numerical, 7 MPI, 9 partial (skipped subjects), 75 stopped by signal "
               "(requeue); see docs/errors.md\n");
}

/* 1 when a launcher started this process (mpirun, srun, PMIx). */
static int launched(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                          "SLURM_STEP_ID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static const bgfm_cmd *cmd_find(const char *name) {
    for (int i = 0; name && i < n_commands; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

/* A process started without a launcher is an MPI singleton: one rank, nothing to talk
 * to. Open MPI would still start an orted and probe UCX, which costs 0.3-0.4 s per
 * command; point it at the in-process transports instead. Only defaults: a user's own
 * OMPI_MCA_* settings win. Not for `scale` and `submit`, whose children (mpirun, sbatch)
 * inherit the environment and need the real transports. */
static void singleton_defaults(const char *cmd) {
    if (cmd && (!strcmp(cmd, "scale") || !strcmp(cmd, "submit"))) return;
    setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
    setenv("OMPI_MCA_pml", "ob1", 0);
    setenv("OMPI_MCA_btl", "self", 0);
    setenv("OMPI_MCA_osc", "^ucx", 0);
    setenv("OMPI_MCA_mtl", "^ofi", 0);
}

/* A `local` command alone needs no MPI: even a singleton's MPI_Init and MPI_Finalize
 * cost ~0.07 s, more than `bgfm export` of a 40 MB model takes otherwise. */
int cli_start(bgfm_ctx *ctx, int *argc, char ***argv) {
    const char *cmd = *argc > 1 ? (*argv)[1] : NULL;
    if (!launched()) {
        const bgfm_cmd *c = cmd_find(cmd);
        if (c && c->local) return bgfm_ctx_init_local(ctx);
        singleton_defaults(cmd);
    }
    return bgfm_ctx_init(ctx, argc, argv);
}

int cli_main(bgfm_ctx *ctx, int argc, char **argv) {
    int rc;
    ctx->progress_tty = isatty(STDERR_FILENO);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        if (ctx->rank == 0) usage(stdout);
        rc = argc < 2 ? BGFM_EUSAGE : BGFM_OK;
    } else if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        if (ctx->rank == 0) printf("bgfm %s (%s)\n", BGFM_VERSION, BGFM_GITREV);
        rc = BGFM_OK;
    } else {
        const bgfm_cmd *c = cmd_find(argv[1]);
        if (!c) {
            if (ctx->rank == 0) {
                fprintf(stderr, "bgfm: error: unknown command '%s'\n\n", argv[1]);
                usage(stderr);
            }
            rc = BGFM_EUSAGE;
        } else {
            rc = c->fn(ctx, argc - 1, argv + 1);
            bgfm_ctx_report(ctx);
        }
    }
    fflush(stdout);
    return rc;
}
