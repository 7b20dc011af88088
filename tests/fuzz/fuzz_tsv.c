/* fuzz_tsv.c: libFuzzer target for the tab-separated tables bgfm reads: the input is a
 * file's bytes, read as a participants table (bids_table_parse, participant_id
 * required) and as an fMRIPrep confounds file (confounds_load with motion24 +
 * global_signal, scrub 0.5 mm, for T = the input's line count - 1, so the row check
 * passes often; spike regressors for odd T, the scrubbed volumes' mask alone for even).
 * Seeds (tests/fuzz/corpus/tsv/): a participants table and a confounds file. Not a fuzzer
 * of the writers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/bids.h"
#include "bgfm/confounds.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char image[300], tsv[300];
    if (!image[0]) {
        fz_path(image, sizeof image, "sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz");
        fz_path(tsv, sizeof tsv, "sub-01_task-rest_desc-confounds_timeseries.tsv");
    }
    bgfm_err e;
    bgfm_err_clear(&e);
    bids_table t;
    int rc = bids_table_parse("p.tsv", (const char *)data, size, &t, &e);
    if (rc && (!e.msg[0] || (rc != BGFM_EDATA && rc != BGFM_ENOMEM))) abort();
    if (!rc) { /* a table the parser accepted is whole: every cell and its id column */
        if (t.n_cols < 1 || t.id_col < 0 || t.id_col >= t.n_cols) abort();
        for (int64_t i = 0; i < t.n_rows * t.n_cols; i++)
            if (!t.cells[i]) abort();
        for (int64_t r = 0; r < t.n_rows; r++) { /* each id finds its own row ("sub-" form) */
            const char *id = t.cells[r * t.n_cols + t.id_col];
            char *canon = malloc(strlen(id) + 5);
            if (!canon) abort();
            strcpy(canon, strncmp(id, "sub-", 4) ? "sub-" : "");
            strcat(canon, id);
            if (bids_table_find(&t, canon) != r) abort();
            free(canon);
        }
        bids_table_free(&t);
    }
    fz_write(tsv, data, size);
    int64_t T = -1;
    for (size_t i = 0; i < size; i++) T += data[i] == '\n';
    if (T < 1) T = 1;
    char *names[2] = {"motion24", "global_signal"};
    confounds_spec s = {names, 2, 0.5, 0.5};
    int spikes = (int)(T & 1); /* both ways of censoring, by the input's length */
    confounds_set c;
    bgfm_err_clear(&e);
    rc = confounds_load(image, &s, T, spikes, &c, &e);
    if (rc && (!e.msg[0] || c.X || c.censor || (rc != BGFM_EDATA && rc != BGFM_EIO &&
                                                 rc != BGFM_ENOMEM)))
        abort();
    if (!rc) { /* 25 named columns, then (spikes) one regressor per scrubbed volume */
        int ns = c.n_scrubbed, K = c.K, flagged = 0;
        if (K != 25 + (spikes ? ns : 0) || ns < 0 || (double)ns > 0.5 * (double)T || !c.X ||
            !c.censor != !ns)
            abort();
        for (int64_t i = 0; i < T * K; i++)
            if (!isfinite(c.X[i])) abort();
        for (int64_t r = 0; c.censor && r < T; r++) flagged += c.censor[r];
        if (flagged != ns) abort();
        for (int64_t r = 0, k = 25; k < K && r < T; r++) { /* scrubbed volumes in order */
            if (!c.censor[r]) continue;
            int ones = 0;
            for (int64_t u = 0; u < T; u++) ones += c.X[k * T + u] == 1.0;
            if (ones != 1 || c.X[k * T + r] != 1.0) abort();
            k++;
        }
        confounds_set_free(&c);
    }
    return 0;
}
