#!/usr/bin/env bash
# connectivity_errors.sh: bad inputs stop every rank with one clear message and the
# documented exit code (3 bad data, 4 I/O), or are skipped under on_error: skip; no
# hang on 2 ranks. Not the numerical checks.
source "$(dirname "$0")/../lib/tap.sh"
D="$ROOT/${BGFM_BUILD:-build}/tests/test_connectivity"
MK="$ROOT/tests/reference/connectivity_make_ts.py"
run() { rm -rf "$T/o"; mkdir "$T/o"; timeout 60 $MPIRUN 2 "$D" stage "$@" >"$T/log" 2>&1; }
has() { grep -q -- "$1" "$T/log"; }
shards() { ls "$T/o" 2>/dev/null | grep -c shard; }

run "$T/missing.h5" "$T/o"; rc=$?
check "missing timeseries.h5: exit 4" test $rc -eq 4
check "missing timeseries.h5: message names the file" has "missing.h5"

$PY "$MK" "$T/nan.h5" --subjects 4 --nan 2:ho:1
run "$T/nan.h5" "$T/o"; rc=$?
check "NaN input: exit 3" test $rc -eq 3
check "NaN input: message names subject, atlas, region" has "subject 2 (sub-03), atlas 'ho', region 1"
check "NaN input: no index written" test ! -e "$T/o/index.h5"
run "$T/nan.h5" "$T/o" skip=1; rc=$?
check "NaN input, on_error skip: exit 0" test $rc -eq 0
check "NaN input, on_error skip: one subject skipped" has "skipped=1"
$PY -c "import h5py,sys; g=h5py.File('$T/o/index.h5')['graphs/subject'][:]; sys.exit(0 if 2 not in g and len(g)==6 else 1)"
check "skipped subject has no graph" test $? -eq 0

$PY "$MK" "$T/const.h5" --subjects 3 --constant 1:aal:4
run "$T/const.h5" "$T/o"; rc=$?
check "constant unflagged region: exit 3" test $rc -eq 3
check "constant unflagged region: message names it" has "subject 1 (sub-02), atlas 'aal', region 4 (label 10)"
run "$T/const.h5" "$T/o" constant=flag; rc=$?
check "constant region with constant_regions: flag: exit 0" test $rc -eq 0
$PY -c "
import h5py,sys
f=h5py.File('$T/o/shard-00000.h5'); g=f['graphs/aal']
r=list(g['subject'][:]).index(1)
sys.exit(0 if g['flagged'][r][4]==1 and g['fc'][r][4].max()==0 and g['adj'][r][4].max()==0 else 1)"
check "constant region flagged in the output, row zero" test $? -eq 0

$PY "$MK" "$T/short.h5" --subjects 3 --short 1:20
run "$T/short.h5" "$T/o" wlen=30; rc=$?
check "scan shorter than a window: exit 3" test $rc -eq 3
check "scan shorter than a window: message names the subject" has "subject 1 (sub-02) has 20 volumes, shorter than one window of 30"
run "$T/short.h5" "$T/o" wlen=30 skip=1; rc=$?
check "scan shorter than a window, on_error skip: exit 0" test $rc -eq 0
$PY "$MK" "$T/one.h5" --subjects 2 --short 0:1
run "$T/one.h5" "$T/o"; rc=$?
check "one-volume scan: exit 3" test $rc -eq 3
check "one-volume scan: message says 2 are needed" has "at least 2"

$PY "$MK" "$T/ok.h5" --subjects 2
timeout 60 $MPIRUN 2 "$D" stage "$T/ok.h5" "$T/nonexistent-dir/sub" >"$T/log" 2>&1; rc=$?
check "unwritable output folder: exit 4" test $rc -eq 4
echo "not h5" >"$T/bad.h5"
run "$T/bad.h5" "$T/o"; rc=$?
check "not an HDF5 file: exit 4 (cannot open)" test $rc -eq 4
