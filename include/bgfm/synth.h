/* synth.h: `bgfm synth`, a synthetic BIDS cohort of resting-state fMRI on the MNI152
 * grid: a population whose functional connectivity varies by latent traits, individual
 * fingerprints and sites, or (--traits 0) a designed group effect (docs/synth.md).
 * Not a realistic fMRI simulator (no HRF or physiology; head motion only with --motion)
 * and not a pipeline stage: it makes the input of one. */
#ifndef BGFM_SYNTH_H
#define BGFM_SYNTH_H

#include <stdint.h>

#include "bgfm/ctx.h"

#define SYNTH_DEFAULT_MASK_ATLAS "/usr/share/mricron/templates/aal.nii.gz"

#define SYNTH_MAX_DATASETS 16

typedef struct synth_params {
    const char *out;         /* dataset folder (must not exist, or be empty, or --force) */
    int64_t subjects;        /* S >= 1 labelled subjects */
    int64_t volumes;         /* T */
    double tr;               /* seconds */
    int voxel_size;          /* 2 or 3 (mm): the MNI152 2 mm or 3 mm grid */
    int64_t sites;           /* K sites, 1..S */
    uint64_t seed;
    int gzip_level;          /* 0..9 (ISA-L levels 0..3; above 3 means 3) */
    int datatype;            /* NIFTIIO_FLOAT32 or NIFTIIO_INT16 */
    int networks;            /* latent networks, >= 6 */
    double effect;           /* group difference of the designed couplings (traits == 0) */
    int traits;              /* K latent traits; 0: the group-only design (synth v1) */
    double trait_effect;     /* coupling / mixing shift per trait SD */
    double fingerprint;      /* sd of a subject's idiosyncratic coupling perturbation */
    double site_coupling;    /* sd of a site's coupling shift, shared by its subjects (0: none) */
    double site_spread;      /* sd per network pair of a site's own pattern, along which its
                                subjects differ by a normal draw each (0: none) */
    double topography;       /* sd of a subject's per-parcel mixing jitter */
    double label_noise;      /* sd of the noise of the liability and of the score */
    double motion;           /* median motion level (mm, about mean FD); 0: no motion */
    double motion_patient;   /* log ratio of patients' motion level to controls' */
    int64_t unlabelled;      /* U subjects with diagnosis n/a, after the S labelled ones */
    int64_t first_subject;   /* subject s's draws are those of subject s + first_subject:
                                another sample of the same population (--first-subject) */
    int datasets;            /* --datasets K: K datasets OUT/ds-1.. of one population */
    int n_tr, n_vox;         /* per-dataset --tr / --voxel-size lists (0: one value) */
    double tr_list[SYNTH_MAX_DATASETS];
    int vox_list[SYNTH_MAX_DATASETS];
    const char *mask_atlas;  /* label atlas for mask + parcels, or "none" (ellipsoid) */
    int force;               /* replace an existing non-empty --out */
    int quiet;               /* no progress or summary line */
} synth_params;

void synth_params_default(synth_params *p);
/* Parse `argv` (argv[0] = "synth"). Returns BGFM_EUSAGE with a message on bad input;
 * *help = 1 if --help was given (nothing else is checked then). */
int synth_parse_args(int argc, char **argv, synth_params *p, int *help, bgfm_err *e);

/* Group-only design (--traits 0): subject s (0-based) -> diagnosis (0 control, 1 patient)
 * and site (0-based). Balanced: diagnosis alternates, sites cycle over pairs so each site
 * gets both groups. (With traits: synth_traits.h.) */
int synth_subject_group(int64_t s);
int64_t synth_subject_site(int64_t s, int64_t sites);

/* Collective over ctx->comm: writes the whole dataset (complete or absent). */
int synth_run(bgfm_ctx *ctx, const synth_params *p);

#endif
