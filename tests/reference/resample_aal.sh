#!/usr/bin/env bash
# resample_aal.sh: real AAL (1 mm) onto 2 mm, 3 mm and oblique grids vs numpy/nibabel.
source "$(dirname "$0")/../lib/tap.sh"
TOOL="$ROOT/${BGFM_BUILD:-build}/tests/test_resample"
"$PY" "$(dirname "$0")/resample_aal.py" "$TOOL" "$T"
