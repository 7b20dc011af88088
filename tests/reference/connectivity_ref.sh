#!/usr/bin/env bash
# connectivity_ref.sh: the connectivity stage (driven by test_connectivity's driver mode
# on an h5py-made timeseries.h5) against numpy: Pearson, Ledoit-Wolf shrunk, partial,
# Fisher z, threshold/density adjacency, RWSE, windows. Not the multi-rank checks (mpi/).
source "$(dirname "$0")/../lib/tap.sh"
D="$ROOT/${BGFM_BUILD:-build}/tests/test_connectivity"
REF="$ROOT/tests/reference/connectivity_ref.py"
MK="$ROOT/tests/reference/connectivity_make_ts.py"
$PY "$MK" "$T/ts.h5" --subjects 5 --atlases aal:12,ho:7 --flag 1:aal:3 --flag 4:ho:0 || notok "make timeseries"
$PY "$MK" "$T/ties.h5" --subjects 3 --atlases a:9 --ties --seed 7 || notok "make timeseries (ties)"
# run NAME TS REF-ARGS -- DRIVER-ARGS
run() {
  local name=$1 ts=$2; shift 2
  local ref=() ; while [ "$1" != "--" ]; do ref+=("$1"); shift; done; shift
  rm -rf "$T/o"; mkdir "$T/o"
  if "$D" stage "$ts" "$T/o" "$@" >"$T/log" 2>&1; then ok "$name: stage ran"; else notok "$name: stage failed: $(tail -1 "$T/log")"; return; fi
  $PY "$REF" "$ts" "$T/o" "${ref[@]}" | sed "s/^\(\(not \)\?ok - \)/\1$name: /"
}
run pearson        "$T/ts.h5" pearson 0 threshold 0.3 5 0 0 -- gps=4
run pearson-z      "$T/ts.h5" pearson 1 threshold 0.2 4 0 0 -- fisher_z=1 threshold=0.2 rwse=4 gps=256
run shrunk-density "$T/ts.h5" shrunk_pearson 1 density 0.1 5 0 0 -- measure=shrunk_pearson fisher_z=1 density=0.1 gps=3
run partial-win    "$T/ts.h5" partial 0 threshold 0.1 3 40 20 -- measure=partial threshold=0.1 rwse=3 wlen=40 wstride=20 gps=5
run density-ties   "$T/ties.h5" pearson 0 density 0.25 6 0 0 -- density=0.25 rwse=6 gps=2 compress=6
run partial-dense  "$T/ts.h5" partial 0 density 0.3 2 30 30 -- measure=partial density=0.3 rwse=2 wlen=30 gps=7
# the reference must be able to fail: shrunk output checked as if it were Pearson
rm -rf "$T/o"; mkdir "$T/o"; "$D" stage "$T/ts.h5" "$T/o" measure=shrunk_pearson >/dev/null 2>&1
$PY "$REF" "$T/ts.h5" "$T/o" pearson 0 threshold 0.3 5 0 0 >"$T/wrong.log" 2>&1
if grep -q "^not ok - fc" "$T/wrong.log"; then
  ok "reference detects a wrong measure"; else notok "reference detects a wrong measure"; fi
