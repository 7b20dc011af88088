/* scale.c: `bgfm scale`: runs one stage of a pipeline on several rank counts (strong or weak
 * scaling), each in its own workdir via `mpirun -np R bgfm run ... --only S --force` (spawned
 * from an argv array, no shell), then writes a CSV and gnuplot PNGs from the stage's metrics.
 * Not a performance model (docs/scaling.md) and not an MPI launcher of its own. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgfm/child.h"
#include "bgfm/cli.h"
#include "bgfm/config.h"
#include "bgfm/fsutil.h"
#include "bgfm/json.h"
#include "bgfm/run.h"
#include "bgfm/scale.h"
#include "bgfm/stage.h"
#include "bgfm/submit.h"
#include "bgfm/yamlout.h"


/* ------------------------------------------------------------------ pure helpers */

int scale_parse_ranks(const char *s, int *ranks, int max, int *n, bgfm_err *e) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 4096 || (*end && *end != ','))
            return bgfm_fail(e, BGFM_EUSAGE, "--ranks '%s': give rank counts 1..4096 separated "
                             "by commas, e.g. --ranks 1,2,4", s);
        if (*n >= max)
            return bgfm_fail(e, BGFM_EUSAGE, "--ranks '%s': at most %d rank counts", s, max);
        for (int k = 0; k < *n; k++)
            if (ranks[k] >= v)
                return bgfm_fail(e, BGFM_EUSAGE, "--ranks '%s': give the rank counts in "
                                 "increasing order, each once", s);
        ranks[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return bgfm_fail(e, BGFM_EUSAGE, "--ranks '%s': trailing comma", s);
    }
    if (!*n) return bgfm_fail(e, BGFM_EUSAGE, "--ranks: empty list (e.g. --ranks 1,2,4)");
    return 0;
}

/* The number after "key": in one JSON line we wrote ourselves; 0 if absent or null. */
static int num_field(const char *line, const char *key, double *out) {
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *q = strstr(line, pat);
    if (!q) return 0;
    q += strlen(pat);
    char *end = NULL;
    double v = strtod(q, &end);
    if (end == q) return 0;
    *out = v;
    return 1;
}

typedef struct acc {
    double compute, comm, io, steps;
    double cs_sum, ws_sum, ranks; /* connectivity's own line */
    int have_steps, have_own;
} acc;

int scale_parse_metrics(const char *text, const char *stage, scale_point *pt, bgfm_err *e) {
    acc a;
    memset(&a, 0, sizeof a);
    int found = 0;
    const char *line = text;
    char name[256];
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *l = bgfm_malloc(e, len + 1, "metrics line");
        if (!l) return BGFM_ENOMEM;
        memcpy(l, line, len);
        l[len] = '\0';
        line = nl ? nl + 1 : NULL;
        if (!json_find_str(l, "stage", name, sizeof name) || strcmp(name, stage)) {
            free(l);
            continue;
        }
        double v = 0;
        if (strstr(l, "\"event\": \"stage\"")) {
            double status = -1, wall = NAN, items = NAN;
            num_field(l, "status", &status);
            num_field(l, "wall_s", &wall);
            num_field(l, "items", &items);
            if (status == 0 && isfinite(wall) && (!found || wall < pt->wall_s)) {
                found = 1;
                pt->wall_s = wall;
                pt->items = items;
                if (!json_find_str(l, "items_unit", pt->items_unit, sizeof pt->items_unit))
                    snprintf(pt->items_unit, sizeof pt->items_unit, "items");
                pt->compute_s = pt->comm_s = pt->io_s = pt->steps = NAN;
                if (a.have_steps) {
                    pt->compute_s = a.compute;
                    pt->comm_s = a.comm;
                    pt->io_s = a.io;
                    pt->steps = a.steps;
                } else if (a.have_own && a.ranks > 0) {
                    pt->compute_s = a.cs_sum / a.ranks;
                    pt->io_s = a.ws_sum / a.ranks;
                }
            }
            memset(&a, 0, sizeof a);
        } else if (num_field(l, "step", &v)) {
            double c = 0, m = 0, io = 0;
            num_field(l, "compute_s", &c);
            num_field(l, "comm_s", &m);
            num_field(l, "io_s", &io);
            a.compute += c;
            a.comm += m;
            a.io += io;
            a.steps += 1;
            a.have_steps = 1;
        } else if (num_field(l, "compute_s_sum", &v)) {
            a.cs_sum = v;
            num_field(l, "write_s_sum", &a.ws_sum);
            num_field(l, "ranks", &a.ranks);
            a.have_own = 1;
        }
        free(l);
    }
    if (!found)
        return bgfm_fail(e, BGFM_EDATA, "no successful run of stage '%s' in the metrics", stage);
    return 0;
}

void scale_derive(scale_point *pts, int n) {
    for (int i = 0; i < n; i++)
        pts[i].items_per_s = pts[i].wall_s > 0 ? pts[i].items / pts[i].wall_s : (double)NAN;
    for (int i = 0; i < n; i++) {
        pts[i].speedup = n ? (double)pts[0].ranks * pts[i].items_per_s / pts[0].items_per_s
                           : (double)NAN;
        pts[i].efficiency = pts[i].speedup / pts[i].ranks;
    }
}

static void csv_num(FILE *f, double v) {
    fputc(',', f);
    if (isfinite(v)) fprintf(f, "%.6g", v);
}

void scale_write_csv(FILE *f, const char *stage, const char *mode, const scale_point *pts,
                     int n) {
    fprintf(f, "stage,mode,ranks,oversubscribed,items,items_unit,wall_s,items_per_s,speedup,"
               "efficiency,compute_s,comm_s,io_s,steps\n");
    for (int i = 0; i < n; i++) {
        const scale_point *p = &pts[i];
        fprintf(f, "%s,%s,%d,%d", stage, mode, p->ranks, p->oversubscribed);
        csv_num(f, p->items);
        fprintf(f, ",%s", p->items_unit);
        csv_num(f, p->wall_s);
        csv_num(f, p->items_per_s);
        csv_num(f, p->speedup);
        csv_num(f, p->efficiency);
        csv_num(f, p->compute_s);
        csv_num(f, p->comm_s);
        csv_num(f, p->io_s);
        csv_num(f, p->steps);
        fputc('\n', f);
    }
}

/* ------------------------------------------------------------------ running things */

typedef struct scale_opts {
    const char *file, *stage, *mode, *out, *mpirun;
    int ranks[SCALE_MAX_POINTS], n_ranks;
    int64_t repeat, per_rank, volumes, voxel;
    int weak;
} scale_opts;

/* Run argv with stdout+stderr appended to `log`, one BLAS thread per rank unless the
 * user set one (child.h); *code is the exit status. */
static int spawn_wait(char *const argv[], const char *log, int *code, bgfm_err *e) {
    child_opts co = {.log = log, .blas_one = 1};
    return child_run(argv, &co, code, e);
}

/* Ranks that fit without oversubscribing: SLURM_NTASKS inside a Slurm allocation (the
 * launcher spreads ranks over its nodes), else this machine's online CPUs. */
static int online_cpus(void) {
    const char *nt = getenv("SLURM_NTASKS");
    if (nt && *nt) {
        char *end = NULL;
        long v = strtol(nt, &end, 10);
        if (*end == '\0' && v > 0 && v < INT_MAX) return (int)v;
    }
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

/* Write p as a resolved pipeline file at `path` with another workdir (and, when bids is
 * not NULL, another cohort); stage `si`'s batch_size multiplied by `batch_mult`. */
static int write_pipeline(bgfm_pipeline *p, const char *path, char *workdir, char *bids,
                          int si, int64_t batch_mult, bgfm_err *e) {
    char *ow = p->workdir, *ob = p->bids, *op = p->participants;
    char *parts = NULL;
    if (bids) {
        parts = fs_join(bids, "participants.tsv", e);
        if (!parts) return e->code;
        p->bids = bids;
        p->participants = parts;
    }
    p->workdir = workdir;
    bgfm_value *batch = NULL;
    int64_t old_batch = 0;
    bgfm_params *w = &p->stages[si].with;
    for (int k = 0; k < w->n; k++)
        if (!strcmp(w->opts[k].key, "batch_size") && w->v[k].state) batch = &w->v[k];
    if (batch && batch_mult > 1) {
        old_batch = batch->i;
        batch->i *= batch_mult;
    }
    char *t = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&t, &tl);
    int rc = f ? 0 : bgfm_fail(e, BGFM_ENOMEM, "out of memory");
    if (f) {
        fprintf(f, "# written by `bgfm scale` from %s\n", p->file);
        config_write_resolved(p, f);
        if (fclose(f)) rc = bgfm_fail(e, BGFM_ENOMEM, "out of memory");
    }
    if (batch && batch_mult > 1) batch->i = old_batch;
    p->workdir = ow;
    p->bids = ob;
    p->participants = op;
    free(parts);
    if (!rc) rc = fs_write_atomic(path, t, tl, e);
    free(t);
    return rc;
}

/* mpirun [--oversubscribe] -np R EXE run PIPE --only STAGE [--force] --quiet, logged. */
static int run_stage(const scale_opts *o, const char *exe, const char *pipe,
                     const char *stage, int ranks, int force, const char *log, bgfm_err *e) {
    char np[16];
    snprintf(np, sizeof np, "%d", ranks);
    char a_over[] = "--oversubscribe", a_np[] = "-np", a_run[] = "run", a_only[] = "--only",
         a_force[] = "--force", a_quiet[] = "--quiet";
    char *argv[16];
    int n = 0;
    char *mp = bgfm_strdup(e, o->mpirun), *ex = mp ? bgfm_strdup(e, exe) : NULL;
    char *pp = ex ? bgfm_strdup(e, pipe) : NULL, *st = pp ? bgfm_strdup(e, stage) : NULL;
    if (!st) {
        free(mp), free(ex), free(pp);
        return BGFM_ENOMEM;
    }
    argv[n++] = mp;
    if (ranks > online_cpus()) argv[n++] = a_over;
    argv[n++] = a_np;
    argv[n++] = np;
    argv[n++] = ex;
    argv[n++] = a_run;
    argv[n++] = pp;
    argv[n++] = a_only;
    argv[n++] = st;
    if (force) argv[n++] = a_force;
    argv[n++] = a_quiet;
    argv[n] = NULL;
    int code = 0;
    int rc = spawn_wait(argv, log, &code, e);
    free(mp), free(ex), free(pp), free(st);
    if (!rc && code)
        rc = bgfm_fail(e, code == BGFM_SIGNALLED ? BGFM_SIGNALLED : BGFM_EUSAGE,
                       "stage '%s' on %d rank(s) failed with exit %d; its output is in %s",
                       stage, ranks, code, log);
    return rc;
}

/* A synthetic cohort of `subjects` subjects in OUT/data-s<subjects> (reused if present). */
static int make_cohort(const scale_opts *o, const char *exe, uint64_t seed,
                       int64_t subjects, char **dir, bgfm_err *e) {
    char name[64];
    snprintf(name, sizeof name, "data-s%lld", (long long)subjects);
    *dir = fs_join(o->out, name, e);
    if (!*dir) return e->code;
    char *marker = fs_join(*dir, "participants.tsv", e);
    if (!marker) return e->code;
    int have = fs_exists(marker);
    free(marker);
    if (have) return 0;
    char a_s[32], a_t[32], a_v[32], a_seed[32];
    snprintf(a_s, sizeof a_s, "%lld", (long long)subjects);
    snprintf(a_t, sizeof a_t, "%lld", (long long)o->volumes);
    snprintf(a_v, sizeof a_v, "%lld", (long long)o->voxel);
    snprintf(a_seed, sizeof a_seed, "%llu", (unsigned long long)seed);
    char k_synth[] = "synth", k_out[] = "--out", k_sub[] = "--subjects", k_vol[] = "--volumes",
         k_vox[] = "--voxel-size", k_seed[] = "--seed", k_force[] = "--force", k_q[] = "--quiet";
    char *ex = bgfm_strdup(e, exe);
    if (!ex) return BGFM_ENOMEM;
    char *argv[] = {ex,  k_synth, k_out, *dir,   k_sub,   a_s, k_vol, a_t,
                    k_vox, a_v,   k_seed, a_seed, k_force, k_q, NULL};
    char *log = fs_join(o->out, "synth.log", e);
    int code = 0, rc = log ? spawn_wait(argv, log, &code, e) : e->code;
    if (!rc && code)
        rc = bgfm_fail(e, BGFM_EUSAGE, "bgfm synth --subjects %lld failed with exit %d; see %s",
                       (long long)subjects, code, log);
    free(log);
    free(ex);
    return rc;
}

/* WORK/<stage> -> PREP/<stage> for every stage before `si` (their outputs, unmeasured). */
static int link_upstream(const bgfm_pipeline *p, int si, const char *prep, const char *work,
                         bgfm_err *e) {
    for (int i = 0; i < si; i++) {
        char *src = fs_join(prep, p->stages[i].name, e);
        char *dst = fs_join(work, p->stages[i].name, e);
        int rc = src && dst ? 0 : e->code;
        struct stat sb;
        if (!rc && lstat(dst, &sb) == 0) {
            if (!S_ISLNK(sb.st_mode))
                rc = bgfm_fail(e, BGFM_EIO, "%s exists and is not a link made by bgfm scale; "
                               "remove it or choose another --out", dst);
            else if (unlink(dst))
                rc = bgfm_fail(e, BGFM_EIO, "cannot remove %s: %s", dst, strerror(errno));
        }
        if (!rc && symlink(src, dst))
            rc = bgfm_fail(e, BGFM_EIO, "cannot link %s to %s: %s", dst, src, strerror(errno));
        free(src);
        free(dst);
        if (rc) return rc;
    }
    return 0;
}

/* Pretrain reports optimiser steps; the graphs it saw are epochs x the upstream graphs. */
static void pretrain_graphs(const bgfm_pipeline *p, int si, const char *prep, scale_point *pt) {
    if (strcmp(pt->items_unit, "steps")) return;
    const bgfm_stage_cfg *s = &p->stages[si];
    int has_epochs = 0;
    for (int k = 0; k < s->with.n; k++)
        if (!strcmp(s->with.opts[k].key, "epochs") && s->with.v[k].state) has_epochs = 1;
    run_plan plan = {0};
    bgfm_err ig = {0};
    if (!has_epochs || run_plan_build(p, &plan, &ig)) return;
    int up = plan.s[si].upstream;
    char *mpath = up >= 0 ? fs_join(prep, "metrics.jsonl", &ig) : NULL;
    char *txt = NULL;
    size_t len = 0;
    scale_point u;
    memset(&u, 0, sizeof u);
    if (mpath && !fs_read_all(mpath, &txt, &len, &ig) &&
        !scale_parse_metrics(txt, p->stages[up].name, &u, &ig) && !strcmp(u.items_unit, "graphs")) {
        pt->steps = pt->items;
        pt->items = u.items * (double)params_int(&s->with, "epochs");
        snprintf(pt->items_unit, sizeof pt->items_unit, "graphs");
    }
    free(txt);
    free(mpath);
    run_plan_free(&plan);
}

/* The plots: speed-up and efficiency against ranks, and the time split per rank count. */
static int plot(const scale_opts *o, const char *base, const scale_point *pts, int n,
                bgfm_err *e) {
    char dat[PATH_MAX + 16], gp[PATH_MAX + 16];
    snprintf(dat, sizeof dat, "%s.dat", base);
    snprintf(gp, sizeof gp, "%s.gp", base);
    FILE *f = fopen(dat, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "cannot write %s: %s", dat, strerror(errno));
    fprintf(f, "# ranks label speedup efficiency compute comm io other wall\n");
    for (int i = 0; i < n; i++) {
        const scale_point *p = &pts[i];
        double c = isfinite(p->compute_s) ? p->compute_s : 0, m = isfinite(p->comm_s) ? p->comm_s : 0,
               io = isfinite(p->io_s) ? p->io_s : 0;
        double other = p->wall_s - c - m - io;
        fprintf(f, "%d \"%d%s\" %.6g %.6g %.6g %.6g %.6g %.6g %.6g\n", p->ranks, p->ranks,
                p->oversubscribed ? " (oversub.)" : "", p->speedup, p->efficiency, c, m, io,
                other > 0 ? other : 0, p->wall_s);
    }
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "cannot write %s", dat);
    f = fopen(gp, "w");
    if (!f) return bgfm_fail(e, BGFM_EIO, "cannot write %s: %s", gp, strerror(errno));
    int maxr = pts[n - 1].ranks;
    double ymin = 0.5;
    for (int i = 0; i < n; i++)
        if (isfinite(pts[i].speedup) && pts[i].speedup / 1.5 < ymin) ymin = pts[i].speedup / 1.5;
    fprintf(f, "# gnuplot script written by bgfm scale; rerun with: gnuplot %s\n", gp);
    fprintf(f, "set terminal pngcairo size 720,420 font 'Sans,10'\n"
               "set datafile separator whitespace\nset grid\nset key top left\n"
               "set xlabel 'MPI ranks (%d slots; oversub. = more ranks than slots)'\n",
            online_cpus());
    fprintf(f, "set output '%s-speedup.png'\nset title '%s: %s scaling, speed-up'\n"
               "set ylabel 'speed-up (throughput relative to %d rank%s x %d)'\n"
               "set logscale x 2\nset logscale y 2\nset xrange [%g:%g]\nset yrange [%g:%g]\n"
               "plot '%s' using 1:3:xtic(2) with linespoints lw 2 pt 7 title 'measured', "
               "x with lines dt 2 lc rgb 'gray40' title 'ideal'\n",
            base, o->stage, o->mode, pts[0].ranks, pts[0].ranks > 1 ? "s" : "", pts[0].ranks,
            pts[0].ranks * 0.8, maxr * 1.25, ymin, maxr * 2.0, dat);
    fprintf(f, "set output '%s-efficiency.png'\nset title '%s: %s scaling, parallel efficiency'\n"
               "set ylabel 'efficiency = speed-up / ranks'\nunset logscale y\n"
               "set yrange [0:1.2]\n"
               "plot '%s' using 1:4:xtic(2) with linespoints lw 2 pt 7 title 'measured', "
               "1 with lines dt 2 lc rgb 'gray40' title 'ideal'\n",
            base, o->stage, o->mode, dat);
    fprintf(f, "set output '%s-split.png'\nset title '%s: %s scaling, where the stage time goes'\n"
               "unset logscale x\nset xrange [*:*]\nset yrange [0:*]\n"
               "set key outside right top\nset size 1,1\n"
               "set ylabel 'seconds (pretrain: per-step maxima over ranks, summed)'\n"
               "set style data histograms\nset style histogram rowstacked\n"
               "set style fill solid 0.8 border -1\nset boxwidth 0.6\n"
               "plot '%s' using 5:xtic(2) title 'compute', '' using 6 title 'comm', "
               "'' using 7 title 'io', '' using 8 title 'other'\n",
            base, o->stage, o->mode, dat);
    if (fclose(f)) return bgfm_fail(e, BGFM_EIO, "cannot write %s", gp);
    char k_gp[] = "gnuplot";
    char *argv[] = {k_gp, gp, NULL};
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s.gnuplot.log", base);
    int code = 0;
    int rc = spawn_wait(argv, log, &code, e);
    if (!rc && code)
        rc = bgfm_fail(e, BGFM_EIO, "gnuplot %s failed with exit %d; see %s", gp, code, log);
    return rc;
}

static int scale_rank0(bgfm_ctx *ctx, bgfm_pipeline *p, scale_opts *o) {
    bgfm_err *e = &ctx->err;
    char exe[PATH_MAX];
    if (!realpath("/proc/self/exe", exe))
        return bgfm_fail(e, BGFM_EIO, "cannot find the path of the bgfm binary: %s",
                         strerror(errno));
    const bgfm_stage_cfg *sc = config_stage_find(p, o->stage);
    int si = (int)(sc - p->stages);
    char *defout = NULL;
    if (!o->out) {
        defout = fs_join(p->workdir, "scaling", e);
        if (!defout) return e->code;
        o->out = defout;
    }
    char *out = NULL;
    int rc = fs_mkdirs(o->out, e);
    if (!rc) out = fs_absolute(o->out, e);
    if (!rc && !out) rc = e->code;
    if (!rc) o->out = out;
    int ncpu = online_cpus();
    scale_point pts[SCALE_MAX_POINTS];
    memset(pts, 0, sizeof pts);
    char *prep = NULL, *bids = NULL;
    for (int r = 0; !rc && r < o->n_ranks; r++) {
        int R = o->ranks[r];
        char name[64];
        /* 1. the upstream stages, once per cohort (strong: once), not measured */
        if (o->weak || !prep) {
            free(prep), free(bids);
            prep = bids = NULL;
            if (o->weak) {
                rc = make_cohort(o, exe, p->seed, o->per_rank * R, &bids, e);
                snprintf(name, sizeof name, "prep-s%lld", (long long)(o->per_rank * R));
            } else {
                snprintf(name, sizeof name, "prep");
            }
            if (!rc) prep = fs_join(o->out, name, e);
            if (!rc && !prep) rc = e->code;
            char *pipe = NULL, *log = NULL;
            if (!rc) {
                snprintf(name, sizeof name, "%s.yaml", strrchr(prep, '/') + 1);
                pipe = fs_join(o->out, name, e);
                snprintf(name, sizeof name, "%s.log", strrchr(prep, '/') + 1);
                log = fs_join(o->out, name, e);
                if (!pipe || !log) rc = e->code;
            }
            if (!rc) rc = write_pipeline(p, pipe, prep, bids, si, 1, e);
            int np = o->ranks[o->n_ranks - 1] < ncpu ? o->ranks[o->n_ranks - 1] : ncpu;
            for (int u = 0; !rc && u < si; u++) {
                if (!ctx->quiet)
                    fprintf(stderr, "bgfm scale: upstream stage %s (%d ranks, in %s)\n",
                            p->stages[u].name, np, prep);
                rc = run_stage(o, exe, pipe, p->stages[u].name, np, 0, log, e);
            }
            free(pipe);
            free(log);
        }
        /* 2. the measured runs */
        char dname[300];
        snprintf(dname, sizeof dname, "%s-%s-np%d", o->stage, o->mode, R);
        char *dir = rc ? NULL : fs_join(o->out, dname, e);
        char *work = dir ? fs_join(dir, "work", e) : NULL;
        char *pipe = dir ? fs_join(dir, "pipeline.yaml", e) : NULL;
        char *log = dir ? fs_join(dir, "run.log", e) : NULL;
        char *metrics = work ? fs_join(work, "metrics.jsonl", e) : NULL;
        snprintf(name, sizeof name, ".%s.partial", o->stage);
        char *partial = work ? fs_join(work, name, e) : NULL;
        if (!rc && (!dir || !work || !pipe || !log || !metrics || !partial)) rc = e->code;
        if (!rc) rc = fs_mkdirs(work, e);
        if (!rc) rc = link_upstream(p, si, prep, work, e);
        if (!rc) rc = write_pipeline(p, pipe, work, bids, si, o->weak ? R : 1, e);
        if (!rc && unlink(metrics) && errno != ENOENT)
            rc = bgfm_fail(e, BGFM_EIO, "cannot remove %s: %s", metrics, strerror(errno));
        if (!rc && unlink(log) && errno != ENOENT)
            rc = bgfm_fail(e, BGFM_EIO, "cannot remove %s: %s", log, strerror(errno));
        for (int64_t k = 0; !rc && k < o->repeat; k++) {
            /* a partial folder left by an interrupted run would be resumed, not measured */
            if (fs_exists(partial)) rc = fs_remove_tree(work, partial, e);
            if (!rc && !ctx->quiet)
                fprintf(stderr, "bgfm scale: %s %s on %d rank%s%s (run %lld of %lld)\n", o->mode,
                        o->stage, R, R > 1 ? "s" : "", R > ncpu ? ", oversubscribed" : "",
                        (long long)k + 1, (long long)o->repeat);
            if (!rc) rc = run_stage(o, exe, pipe, o->stage, R, 1, log, e);
        }
        char *txt = NULL;
        size_t len = 0;
        if (!rc) rc = fs_read_all(metrics, &txt, &len, e);
        if (!rc) rc = scale_parse_metrics(txt, o->stage, &pts[r], e);
        if (rc == BGFM_EDATA) {
            bgfm_err_clear(e);
            rc = bgfm_fail(e, BGFM_EDATA, "%s: no successful run of stage '%s' recorded",
                           metrics, o->stage);
        }
        if (!rc) {
            pts[r].ranks = R;
            pts[r].oversubscribed = R > ncpu;
            pretrain_graphs(p, si, prep, &pts[r]);
        }
        free(txt);
        free(dir), free(work), free(pipe), free(log), free(metrics), free(partial);
    }
    free(prep);
    free(bids);
    if (!rc) {
        scale_derive(pts, o->n_ranks);
        char base[PATH_MAX], csv[PATH_MAX + 8];
        snprintf(base, sizeof base, "%s/scaling-%s-%s", o->out, o->stage, o->mode);
        snprintf(csv, sizeof csv, "%s.csv", base);
        char *t = NULL;
        size_t tl = 0;
        FILE *f = open_memstream(&t, &tl);
        if (!f) rc = bgfm_fail(e, BGFM_ENOMEM, "out of memory");
        if (f) {
            scale_write_csv(f, o->stage, o->mode, pts, o->n_ranks);
            fclose(f);
            rc = fs_write_atomic(csv, t, tl, e);
            if (!rc) fwrite(t, 1, tl, stdout);
            free(t);
        }
        if (!rc) rc = plot(o, base, pts, o->n_ranks, e);
        if (!rc)
            printf("# wrote %s.csv and %s-{speedup,efficiency,split}.png\n", base, base);
    }
    free(out);
    free(defout);
    return rc;
}

static void scale_usage(void) {
    printf("usage: bgfm scale PIPELINE.yaml --stage S [--ranks 1,2,4] [--mode strong|weak]\n"
           "                  [--out DIR] [--repeat N] [--subjects-per-rank K]\n"
           "                  [--volumes T] [--voxel-size 2|3] [--mpirun PROG] [--quiet]\n\n"
           "Runs stage S on each rank count, each in its own workdir OUT/S-MODE-np<R>/work,\n"
           "with `mpirun -np R bgfm run OUT/S-MODE-np<R>/pipeline.yaml --only S --force`.\n"
           "The stages before S run once (per cohort) in OUT/prep*, unmeasured, and are\n"
           "linked into each workdir. Reads each run's metrics.jsonl and writes\n"
           "OUT/scaling-S-MODE.csv (ranks, wall_s, items_per_s, speedup, efficiency,\n"
           "compute_s, comm_s, io_s, ...) and OUT/scaling-S-MODE-{speedup,efficiency,split}.png\n"
           "(gnuplot). Rank counts above the slots (SLURM_NTASKS inside an allocation, else\n"
           "the online CPUs) run with --oversubscribe and are marked oversubscribed. Run it\n"
           "alone, not under mpirun (inside an sbatch script is fine).\n\n"
           "  --stage S              the stage to measure (required)\n"
           "  --ranks LIST           increasing rank counts (default 1,2)\n"
           "  --mode strong|weak     strong: the pipeline's data for every R (default);\n"
           "                         weak: a bgfm synth cohort of K*R subjects per R, and a\n"
           "                         pretrain stage's batch_size multiplied by R\n"
           "  --out DIR              output folder (default WORKDIR/scaling)\n"
           "  --repeat N             runs per rank count; the fastest is kept (default 1)\n"
           "  --subjects-per-rank K  weak mode: subjects per rank (required with weak)\n"
           "  --volumes T            weak mode: volumes per synthetic subject (default 100)\n"
           "  --voxel-size 2|3       weak mode: synthetic grid (default 3)\n"
           "  --mpirun PROG          MPI launcher (default $BGFM_MPIRUN, else mpirun)\n\n"
           "speedup = R0 * throughput(R) / throughput(R0), R0 the first rank count;\n"
           "efficiency = speedup / R. See docs/scaling.md.\n");
}

int cmd_scale(bgfm_ctx *ctx, int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (ctx->rank == 0) scale_usage();
            return BGFM_OK;
        }
    scale_opts o;
    memset(&o, 0, sizeof o);
    o.mode = "strong";
    o.repeat = 1;
    o.volumes = 100;
    o.voxel = 3;
    const char *ranks = "1,2";
    bgfm_err *e = &ctx->err;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(a, "--stage") || !strcmp(a, "--ranks") || !strcmp(a, "--mode") ||
                    !strcmp(a, "--out") || !strcmp(a, "--repeat") ||
                    !strcmp(a, "--subjects-per-rank") || !strcmp(a, "--volumes") ||
                    !strcmp(a, "--voxel-size") || !strcmp(a, "--mpirun");
        if (takes && !v) {
            rc = bgfm_fail(e, BGFM_EUSAGE, "%s needs a value (see bgfm scale --help)", a);
        } else if (takes) {
            i++;
            if (!strcmp(a, "--stage")) o.stage = v;
            else if (!strcmp(a, "--ranks")) ranks = v;
            else if (!strcmp(a, "--mode")) o.mode = v;
            else if (!strcmp(a, "--out")) o.out = v;
            else if (!strcmp(a, "--mpirun")) o.mpirun = v;
            else if (!strcmp(a, "--repeat")) rc = cli_parse_i64(a, v, 1, 100, &o.repeat, e);
            else if (!strcmp(a, "--subjects-per-rank"))
                rc = cli_parse_i64(a, v, 1, 1000000, &o.per_rank, e);
            else if (!strcmp(a, "--volumes")) rc = cli_parse_i64(a, v, 10, 32767, &o.volumes, e);
            else rc = cli_parse_i64(a, v, 2, 3, &o.voxel, e);
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            ctx->quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            rc = bgfm_fail(e, BGFM_EUSAGE, "scale: unknown option '%s' (see bgfm scale --help)", a);
        } else if (!o.file) {
            o.file = a;
        } else {
            rc = bgfm_fail(e, BGFM_EUSAGE, "scale: one pipeline file only ('%s' and '%s')", o.file,
                           a);
        }
    }
    if (!rc && !o.file)
        rc = bgfm_fail(e, BGFM_EUSAGE, "usage: bgfm scale PIPELINE.yaml --stage S [--ranks "
                       "1,2,4] (see bgfm scale --help)");
    if (!rc && !o.stage) rc = bgfm_fail(e, BGFM_EUSAGE, "scale: --stage S is required");
    if (!rc) rc = scale_parse_ranks(ranks, o.ranks, SCALE_MAX_POINTS, &o.n_ranks, e);
    if (!rc && strcmp(o.mode, "strong") && strcmp(o.mode, "weak"))
        rc = bgfm_fail(e, BGFM_EUSAGE, "--mode '%s': strong or weak", o.mode);
    o.weak = !rc && !strcmp(o.mode, "weak");
    if (!rc && o.weak && !o.per_rank)
        rc = bgfm_fail(e, BGFM_EUSAGE, "--mode weak needs --subjects-per-rank K (the cohort "
                       "has K*R subjects on R ranks)");
    if (!rc && ctx->size > 1)
        rc = bgfm_fail(e, BGFM_EUSAGE, "run bgfm scale alone, not under mpirun/srun: it "
                       "starts mpirun itself for each rank count");
    if (!rc && !o.mpirun) {
        o.mpirun = getenv("BGFM_MPIRUN");
        if (!o.mpirun || !*o.mpirun) o.mpirun = "mpirun";
    }
    rc = bgfm_ctx_agree(ctx, rc);
    if (rc) return rc;
    bgfm_pipeline p;
    memset(&p, 0, sizeof p);
    rc = config_load(ctx, o.file, &p);
    if (rc) return rc;
    if (!config_stage_find(&p, o.stage))
        rc = bgfm_fail(e, BGFM_EUSAGE, "%s: --stage %s: no such stage in this pipeline", o.file,
                       o.stage);
    if (!rc) rc = scale_rank0(ctx, &p, &o);
    config_free(&p);
    return rc;
}
