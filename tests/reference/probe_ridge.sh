#!/usr/bin/env bash
# probe_ridge.sh: the probe's ridge regression (strength by leave-one-out), regression
# cross-validation and scores, fc_pca's PCA and the participation ratio against
# numpy/scipy (tests/reference/probe_ridge.py; the C side is build/tests/test_ridge
# --ridge/--cv/--pca/--pr).
source "$(dirname "$0")/../lib/tap.sh"
EXE="$ROOT/${BGFM_BUILD:-build}/tests/test_ridge"
if [ ! -x "$EXE" ]; then notok "build/tests/test_ridge missing (make build/tests/test_ridge)"; exit 1; fi
$PY "$ROOT/tests/reference/probe_ridge.py" "$EXE" "$T"
