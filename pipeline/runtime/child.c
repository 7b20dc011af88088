/* child.c: start a program from an argv with posix_spawn and wait for it (child.h).
 * Not a shell: no quoting, no expansion; arguments go to the program as they are. */
#include "bgfm/child.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int child_env_keep(const char *entry) {
    /* Passed on (sbatch --export=ALL, mpirun's children), these make a job's mpirun
     * believe it is itself a rank of this process's MPI job, and fail. */
    static const char *const drop[] = {"PMIX_", "PMI_", "ORTE_", "OMPI_COMM_WORLD_",
                                       "OMPI_MCA_orte_", "OMPI_MCA_ess", "OMPI_MCA_pmix",
                                       "OMPI_MCA_initial_wdir=", "OMPI_MCA_shmem_RUNTIME_QUERY_hint=",
                                       "OMPI_MCA_mpi_oversubscribe=", "OMPI_APP_CTX_NUM_PROCS=",
                                       "OMPI_ARGV=", "OMPI_COMMAND=", "OMPI_FILE_LOCATION=",
                                       "OMPI_FIRST_RANKS=", "OMPI_NUM_APP_CTX=",
                                       "OMPI_UNIVERSE_SIZE=",
                                       /* "self,shm" when this job was on one node */
                                       "PSM2_DEVICES="};
    for (size_t k = 0; k < sizeof drop / sizeof drop[0]; k++)
        if (!strncmp(entry, drop[k], strlen(drop[k]))) return 0;
    return 1;
}

/* Our environment without MPI's entries (the strings are environ's own). */
static char **child_env(int blas_one, bgfm_err *e) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = bgfm_calloc(e, n + 2, sizeof *env, "child environment");
    if (!env) return NULL;
    size_t m = 0;
    int blas = 0;
    for (size_t k = 0; k < n; k++) {
        if (!child_env_keep(environ[k])) continue;
        if (!strncmp(environ[k], "OPENBLAS_NUM_THREADS=", 21)) blas = 1;
        env[m++] = environ[k];
    }
    static const char blas1[] = "OPENBLAS_NUM_THREADS=1"; /* read-only for exec */
    if (blas_one && !blas) env[m++] = (char *)(uintptr_t)blas1;
    return env;
}

/* The child's stdout until end of file, into out (cut at size - 1 bytes). */
static void drain(int fd, char *out, size_t size) {
    size_t n = 0;
    for (;;) {
        char buf[256];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t k = 0; k < r && n + 1 < size; k++) out[n++] = buf[k];
    }
    out[n] = '\0';
}

int child_run(char *const argv[], const child_opts *o, int *code, bgfm_err *e) {
    static const child_opts none = {0};
    if (!o) o = &none;
    int fds[2] = {-1, -1};
    int capture = !o->log && o->out && o->out_size > 0;
    if (capture && pipe(fds)) return bgfm_fail(e, BGFM_EIO, "pipe: %s", strerror(errno));
    char **env = child_env(o->blas_one, e);
    posix_spawn_file_actions_t fa;
    int rc = env ? posix_spawn_file_actions_init(&fa) : ENOMEM;
    int fa_ok = !rc;
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (!rc && o->dir) rc = posix_spawn_file_actions_addchdir_np(&fa, o->dir);
    if (!rc && o->log) {
        rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, o->log,
                                              O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    }
    if (!rc && capture) {
        rc = posix_spawn_file_actions_addclose(&fa, fds[0]);
        if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
        if (!rc) rc = posix_spawn_file_actions_addclose(&fa, fds[1]);
    }
    pid_t pid = -1;
    if (!rc) rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (capture) close(fds[1]);
    if (rc) {
        if (capture) close(fds[0]);
        if (rc == ENOMEM) return bgfm_fail(e, BGFM_ENOMEM, "out of memory starting '%s'", argv[0]);
        return bgfm_fail(e, BGFM_EUSAGE, "cannot start '%s': %s%s", argv[0], strerror(rc),
                         rc == ENOENT ? " (is it installed and on PATH?)" : "");
    }
    if (capture) {
        drain(fds[0], o->out, o->out_size);
        close(fds[0]);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return bgfm_fail(e, BGFM_EIO, "waitpid: %s", strerror(errno));
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 0;
}
