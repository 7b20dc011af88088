#!/usr/bin/env bash
# probe_logreg.sh: the probe's logistic regression and metrics against scipy
# (tests/reference/probe_logreg.py; the C side is build/tests/test_logreg --fit/--auc).
source "$(dirname "$0")/../lib/tap.sh"
EXE="$ROOT/${BGFM_BUILD:-build}/tests/test_logreg"
if [ ! -x "$EXE" ]; then notok "build/tests/test_logreg missing (make build/tests/test_logreg)"; exit 1; fi
$PY "$ROOT/tests/reference/probe_logreg.py" "$EXE" "$T"
