/* args.c: the command line of `bgfm synth`: defaults, usage text, strict parsing of every
 * option (bad values exit 2 with a message), and the command's entry point. Not the
 * generator (synth.c, traits.c); the options are documented in docs/synth.md. */
#include "bgfm/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/cli.h" /* cmd_synth */
#include "bgfm/nifti.h"
#include "bgfm/synth_traits.h"

void synth_params_default(synth_params *p) {
    memset(p, 0, sizeof *p);
    p->subjects = 16;
    p->volumes = 100;
    p->tr = 2.0;
    p->voxel_size = 3;
    p->sites = 2;
    p->seed = 1234;
    p->gzip_level = 1;
    p->datatype = NIFTIIO_FLOAT32;
    p->networks = SYNTH_TRAIT_NETWORKS; /* 7 with --traits 0 (synth_parse_args) */
    p->effect = 0.4;
    p->traits = 5;
    p->trait_effect = 0.12;
    p->fingerprint = 0.08;
    p->site_coupling = 0;
    p->site_spread = 0;
    p->topography = 0.08;
    p->label_noise = 1.0;
    p->unlabelled = 0;
    p->motion = 0;
    p->motion_patient = 0.3;
    p->mask_atlas = SYNTH_DEFAULT_MASK_ATLAS;
}

static const char synth_usage[] =
    "usage: bgfm synth --out DIR [--subjects S] [--unlabelled U] [--volumes T]\n"
    "                  [--tr SECONDS] [--voxel-size 2|3] [--sites K] [--seed X]\n"
    "                  [--gzip-level L] [--datatype float32|int16] [--networks N]\n"
    "                  [--traits K] [--trait-effect B] [--fingerprint F]\n"
    "                  [--site-coupling C]\n"
    "                  [--topography W] [--label-noise E] [--effect D]\n"
    "                  [--motion M] [--motion-patient R]\n"
    "                  [--mask-atlas PATH|none] [--datasets K] [--first-subject N]\n"
    "                  [--force] [--quiet]\n\n"
    "Writes a synthetic BIDS cohort (participants.tsv with diagnosis control|patient,\n"
    "site, age, sex, score, trait_1..trait_K; sub-*/func/*_bold.nii.gz on the MNI152\n"
    "grid). Each subject's network coupling and regional mixing depend on K latent\n"
    "traits, an individual fingerprint and the site; diagnosis and score depend on the\n"
    "traits plus noise. --traits 0 gives the group-only design instead: the coupling of\n"
    "two network pairs differs between diagnosis groups (docs/synth.md). Works alone or\n"
    "under mpirun (subjects are shared by rank; the files do not depend on the rank\n"
    "count).\n\n";

static const char synth_usage_options[] =
    "  --out DIR          dataset folder; must not exist or be empty (or use --force)\n"
    "  --subjects S       labelled subjects, >= 1 (default 16)\n"
    "  --unlabelled U     extra subjects sub-(S+1).. with diagnosis, score, traits n/a\n"
    "                     in participants.tsv (default 0; needs --traits > 0)\n"
    "  --volumes T        volumes per subject, >= 10 (default 100)\n"
    "  --tr SECONDS       repetition time (default 2.0)\n"
    "  --voxel-size 2|3   MNI152 2 mm (91x109x91) or 3 mm (61x73x61) grid (default 3)\n"
    "  --sites K          acquisition sites, 1..S (default 2)\n"
    "  --seed X           random seed (default 1234)\n"
    "  --datasets K       K datasets OUT/ds-1..ds-K of the same population, other subjects\n"
    "                     in each (1..16; default 1: one dataset in OUT); --tr and\n"
    "                     --voxel-size may then list one value per dataset (2.0,0.8,...)\n"
    "  --first-subject N  draw subject s as subject s+N of the population: another sample\n"
    "                     of the same population (same seed), ids still sub-01.. (default 0)\n"
    "  --gzip-level L     0..9; ISA-L levels 0..3, above 3 means 3 (default 1)\n"
    "  --datatype T       float32 or int16 (scl_slope 0.1) (default float32)\n"
    "  --networks N       latent networks, 6..32 (default 10; 7 with --traits 0)\n"
    "  --traits K         latent traits per subject, 0..16 (default 5); 0: group-only design\n"
    "  --trait-effect B   coupling (and mixing) shift per trait SD, 0..0.3 (default 0.12)\n"
    "  --fingerprint F    sd of a subject's own coupling perturbation, 0..0.3 (default 0.08)\n"
    "  --site-coupling C  sd of a site's coupling shift, shared by all its subjects, 0..0.3\n"
    "                     (default 0: sites change only gain, offset and noise)\n"
    "  --site-spread C    sd per network pair of a site's own coupling pattern, along which\n"
    "                     its subjects differ (a normal draw each; a site's physiology or\n"
    "                     artifact), 0..0.3 (default 0: none)\n"
    "  --topography W     sd of a subject's own parcel mixing jitter, 0..0.3 (default 0.08)\n"
    "  --label-noise E    sd of the noise of diagnosis liability and score, 0..10 (default 1)\n"
    "  --effect D         group-only design: group difference of the designed couplings,\n"
    "                     0..0.6 (default 0.4; only with --traits 0)\n"
    "  --motion M         head motion: each subject's level (about its mean framewise\n"
    "                     displacement, mm) is M x exp(0.5 N(0,1)), x exp(R) for patients;\n"
    "                     drift and spikes leave an artifact at the brain's edge and a\n"
    "                     global one, and a confounds file (fMRIPrep's columns) is written\n"
    "                     beside each image, 0..2 (default 0: no motion, no confounds file)\n"
    "  --motion-patient R log ratio of patients' to controls' motion level, -2..2\n"
    "                     (default 0.3; needs --motion > 0)\n"
    "  --mask-atlas P     label atlas giving mask and parcels, or 'none' for an\n"
    "                     ellipsoid with Voronoi parcels (default " SYNTH_DEFAULT_MASK_ATLAS ")\n"
    "  --force            replace an existing non-empty DIR\n"
    "  --quiet            no progress or summary line\n";

/* "A" or "A,B,..." (at most SYNTH_MAX_DATASETS values, each in [lo, hi]) into v[0..*n). */
static int parse_list(const char *opt, const char *s, double lo, double hi, double *v, int *n,
                      bgfm_err *e) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == SYNTH_MAX_DATASETS)
            return bgfm_fail(e, BGFM_EUSAGE, "synth: %s lists more than %d values", opt,
                             SYNTH_MAX_DATASETS);
        int rc = cli_parse_f64(opt, t, lo, hi, &v[(*n)++], e);
        if (rc) return rc;
    }
    if (*n == 0) return bgfm_fail(e, BGFM_EUSAGE, "synth: %s needs a value", opt);
    return 0;
}

int synth_parse_args(int argc, char **argv, synth_params *p, int *help, bgfm_err *e) {
    synth_params_default(p);
    *help = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) *help = 1;
    if (*help) return 0;
    int have_out = 0, have_sites = 0, have_networks = 0;
    const char *effect_opt = NULL, *trait_opt = NULL; /* first option of each design given */
    const char *motion_opt = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force") || !strcmp(a, "--quiet")) {
            if (a[2] == 'f') p->force = 1;
            else p->quiet = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return bgfm_fail(e, BGFM_EUSAGE, "synth: unexpected argument '%s'; see bgfm synth "
                             "--help", a);
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x = 0;
        int rc = 0;
        if (!v)
            return bgfm_fail(e, BGFM_EUSAGE, "synth: option %s needs a value; see bgfm synth "
                             "--help", a);
        if (!strcmp(a, "--out")) {
            if (!*v) return bgfm_fail(e, BGFM_EUSAGE, "synth: --out needs a folder name");
            p->out = v;
            have_out = 1;
        } else if (!strcmp(a, "--subjects")) {
            rc = cli_parse_i64(a, v, 1, 1000000, &p->subjects, e);
        } else if (!strcmp(a, "--volumes")) {
            rc = cli_parse_i64(a, v, 10, 32767, &p->volumes, e);
        } else if (!strcmp(a, "--tr")) {
            rc = parse_list(a, v, 0.05, 100, p->tr_list, &p->n_tr, e);
            p->tr = p->tr_list[0];
        } else if (!strcmp(a, "--voxel-size")) {
            double vs[SYNTH_MAX_DATASETS];
            rc = parse_list(a, v, 2, 3, vs, &p->n_vox, e);
            for (int k = 0; !rc && k < p->n_vox; k++) {
                if (vs[k] != 2 && vs[k] != 3)
                    rc = bgfm_fail(e, BGFM_EUSAGE, "synth: --voxel-size takes 2 or 3, got %g", vs[k]);
                p->vox_list[k] = (int)vs[k];
            }
            p->voxel_size = p->vox_list[0];
        } else if (!strcmp(a, "--datasets")) {
            rc = cli_parse_i64(a, v, 1, SYNTH_MAX_DATASETS, &x, e);
            p->datasets = (int)x;
        } else if (!strcmp(a, "--sites")) {
            rc = cli_parse_i64(a, v, 1, 1000000, &p->sites, e);
            have_sites = 1;
        } else if (!strcmp(a, "--first-subject")) {
            rc = cli_parse_i64(a, v, 0, INT64_MAX / 4, &p->first_subject, e);
        } else if (!strcmp(a, "--seed")) {
            rc = cli_parse_i64(a, v, 0, INT64_MAX, &x, e);
            p->seed = (uint64_t)x;
        } else if (!strcmp(a, "--gzip-level")) {
            rc = cli_parse_i64(a, v, 0, 9, &x, e);
            p->gzip_level = (int)x;
        } else if (!strcmp(a, "--datatype")) {
            if (!strcmp(v, "float32")) p->datatype = NIFTIIO_FLOAT32;
            else if (!strcmp(v, "int16")) p->datatype = NIFTIIO_INT16;
            else
                return bgfm_fail(e, BGFM_EUSAGE, "synth: --datatype must be float32 or int16, "
                                 "got '%s'", v);
        } else if (!strcmp(a, "--networks")) {
            rc = cli_parse_i64(a, v, 6, 32, &x, e);
            p->networks = (int)x;
            have_networks = 1;
        } else if (!strcmp(a, "--effect")) {
            rc = cli_parse_f64(a, v, 0, 0.6, &p->effect, e);
            effect_opt = a;
        } else if (!strcmp(a, "--traits")) {
            rc = cli_parse_i64(a, v, 0, SYNTH_MAX_TRAITS, &x, e);
            p->traits = (int)x;
        } else if (!strcmp(a, "--trait-effect")) {
            rc = cli_parse_f64(a, v, 0, 0.3, &p->trait_effect, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--fingerprint")) {
            rc = cli_parse_f64(a, v, 0, 0.3, &p->fingerprint, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--site-coupling")) {
            rc = cli_parse_f64(a, v, 0, 0.3, &p->site_coupling, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--site-spread")) {
            rc = cli_parse_f64(a, v, 0, 0.3, &p->site_spread, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--topography")) {
            rc = cli_parse_f64(a, v, 0, 0.3, &p->topography, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--label-noise")) {
            rc = cli_parse_f64(a, v, 0, 10, &p->label_noise, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--unlabelled")) {
            rc = cli_parse_i64(a, v, 0, 1000000, &p->unlabelled, e);
            trait_opt = trait_opt ? trait_opt : a;
        } else if (!strcmp(a, "--motion")) {
            rc = cli_parse_f64(a, v, 0, 2, &p->motion, e);
        } else if (!strcmp(a, "--motion-patient")) {
            rc = cli_parse_f64(a, v, -2, 2, &p->motion_patient, e);
            motion_opt = a;
        } else if (!strcmp(a, "--mask-atlas")) {
            p->mask_atlas = v;
        } else {
            return bgfm_fail(e, BGFM_EUSAGE, "synth: unknown option '%s'; see bgfm synth --help",
                             a);
        }
        if (rc) return rc;
        i++;
    }
    if (!have_out)
        return bgfm_fail(e, BGFM_EUSAGE, "synth: --out DIR is required; see bgfm synth --help");
    if (p->traits > 0 && effect_opt)
        return bgfm_fail(e, BGFM_EUSAGE, "synth: --effect belongs to the group-only design "
                         "(--traits 0); with traits the diagnosis acts through them (see "
                         "--trait-effect, --label-noise)");
    if (p->traits == 0 && trait_opt)
        return bgfm_fail(e, BGFM_EUSAGE, "synth: %s needs latent traits (--traits K > 0); "
                         "--traits 0 is the group-only design", trait_opt);
    if (motion_opt && p->motion == 0)
        return bgfm_fail(e, BGFM_EUSAGE, "synth: %s needs head motion (--motion M > 0)",
                         motion_opt);
    if (!have_networks) p->networks = p->traits > 0 ? SYNTH_TRAIT_NETWORKS : 7;
    if (p->datasets < 1) p->datasets = 1;
    if ((p->n_tr > 1 && p->n_tr != p->datasets) || (p->n_vox > 1 && p->n_vox != p->datasets))
        return bgfm_fail(e, BGFM_EUSAGE, "synth: --tr and --voxel-size take one value, or one "
                         "per dataset (--datasets %d); got %d and %d", p->datasets,
                         p->n_tr ? p->n_tr : 1, p->n_vox ? p->n_vox : 1);
    if (!have_sites && p->sites > p->subjects) p->sites = p->subjects;
    if (p->sites > p->subjects)
        return bgfm_fail(e, BGFM_EUSAGE, "synth: --sites %lld exceeds --subjects %lld",
                         (long long)p->sites, (long long)p->subjects);
    return 0;
}

int cmd_synth(bgfm_ctx *ctx, int argc, char **argv) {
    synth_params p;
    int help = 0;
    int rc = synth_parse_args(argc, argv, &p, &help, &ctx->err);
    if (help) {
        if (ctx->rank == 0) {
            fputs(synth_usage, stdout);
            fputs(synth_usage_options, stdout);
        }
        return 0;
    }
    if (rc) return rc; /* identical on every rank: no agreement needed */
    if (p.quiet) ctx->quiet = 1;
    if (p.datasets == 1) return synth_run(ctx, &p);
    /* --datasets K: OUT/ds-1 .. ds-K, the same population (seed), other subjects in each
     * (subject s of dataset k is drawn as s + k (S + U) + first_subject), its own TR and
     * grid when the lists give them; each dataset is complete or absent on its own */
    int rc2 = 0;
    for (int k = 0; k < p.datasets && !rc2; k++) {
        synth_params q = p;
        char out[4200];
        snprintf(out, sizeof out, "%s/ds-%d", p.out, k + 1);
        q.out = out;
        q.first_subject = p.first_subject + (int64_t)k * (p.subjects + p.unlabelled);
        if (p.n_tr > 1) q.tr = p.tr_list[k];
        if (p.n_vox > 1) q.voxel_size = p.vox_list[k];
        rc2 = synth_run(ctx, &q);
    }
    return rc2;
}
