#!/usr/bin/env bash
# parcellate_confounds.sh: the confounds / scrub options of the parcellate stage against
# numpy least squares (parcellate_confounds.py), its file naming, errors and exit codes.
source "$(dirname "$0")/../lib/tap.sh"
"$PY" "$(dirname "$0")/parcellate_confounds.py" "$BGFM" "$T"
