#!/usr/bin/env bash
# parcellate_extract.sh: ROI means + every cleaning option vs numpy/scipy/nibabel
# (parcellate_extract.py), including int16 with scl_slope, float64 and a real file.
source "$(dirname "$0")/../lib/tap.sh"
"$PY" "$(dirname "$0")/parcellate_extract.py" "$BGFM" "$T"
