#!/usr/bin/env bash
# corpus_mixed.sh: parcellate over datasets of mixed TR, voxel size and grid
# (inputs.datasets) against numpy/scipy/nibabel (corpus_mixed.py).
source "$(dirname "$0")/../lib/tap.sh"
"$PY" "$(dirname "$0")/corpus_mixed.py" "$BGFM" "$T"
