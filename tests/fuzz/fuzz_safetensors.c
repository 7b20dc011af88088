/* fuzz_safetensors.c: libFuzzer target for the safetensors reader behind `init:
 * FILE.safetensors` (stages/pretrain/export.c, export_load): the input is the file's
 * bytes. Seeds (tests/fuzz/corpus/safetensors/) are files `bgfm export` wrote for tiny
 * models (mean and region readouts, encoder and full). Not a fuzzer of the writer. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/export.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[300];
    if (!path[0]) fz_path(path, sizeof path, "in.safetensors");
    fz_write(path, data, size);
    model m;
    bgfm_err e;
    bgfm_err_clear(&e);
    int full = -1;
    int rc = export_load(path, 3, &m, &full, &e);
    if (rc && (!e.msg[0] || (rc != BGFM_EDATA && rc != BGFM_EIO && rc != BGFM_ENOMEM))) abort();
    if (!rc) { /* a model the reader accepted is whole */
        if (m.n_params < 1 || !m.w || (full != 0 && full != 1)) abort();
        for (int64_t i = 0; i < m.n_params; i++)
            if (!isfinite(m.w[i])) abort(); /* no NaN or Inf gets through */
        model_free(&m);
    }
    return 0;
}
