#!/usr/bin/env bash
# synth.sh: `bgfm synth` end to end: argument errors (exit 2), complete-or-absent output,
# nibabel reads every image with the right grid/TR/dtype and an exactly-zero outside,
# and the designed group effect is present in AAL ROI correlations (numpy/scipy).
# Not the rank-count determinism test (mpi/synth_ranks.sh).
source "$(dirname "$0")/../lib/tap.sh"
REF="$ROOT/tests/reference/synth_check.py"
AAL=/usr/share/mricron/templates/aal.nii.gz

# bad arguments -> exit 2 with a message
bad() {  # bad NAME NEEDLE ARGS...
  local n=$1 needle=$2; shift 2
  "$BGFM" synth "$@" > "$T/out" 2> "$T/err"; local rc=$?
  if [ "$rc" -eq 2 ] && grep -q -- "$needle" "$T/err"; then ok "$n"; else notok "$n (exit $rc: $(cat "$T/err"))"; fi
}
bad "missing --out -> exit 2" "--out DIR is required"
bad "unknown option -> exit 2" "unknown option '--voxels'" --out "$T/x" --voxels 3
bad "--voxel-size 4 -> exit 2" "--voxel-size" --out "$T/x" --voxel-size 4
bad "--subjects abc -> exit 2" "--subjects" --out "$T/x" --subjects abc
bad "--datatype float16 -> exit 2" "float32 or int16" --out "$T/x" --datatype float16
bad "--sites > --subjects -> exit 2" "exceeds" --out "$T/x" --subjects 4 --sites 5
bad "--tr without value -> exit 2" "needs a value" --out "$T/x" --tr
mkdir -p "$T/full"; echo keep > "$T/full/file.txt"
bad "non-empty --out without --force -> exit 2" "not empty" --out "$T/full" --subjects 2 --volumes 10
check "non-empty --out left untouched" test -f "$T/full/file.txt"
check "--help exits 0" bash -c "'$BGFM' synth --help | grep -q -- '--voxel-size'"

# a failing run leaves nothing behind (missing mask atlas -> exit 3)
"$BGFM" synth --out "$T/absent" --subjects 2 --volumes 10 --mask-atlas "$T/nope.nii.gz" 2> "$T/err"; rc=$?
if [ "$rc" -eq 3 ] && grep -q "nope.nii.gz" "$T/err"; then ok "missing mask atlas -> exit 3 naming it"; else notok "missing mask atlas (exit $rc: $(cat "$T/err"))"; fi
check "failed run leaves no dataset and no staging folder" bash -c "[ ! -e '$T/absent' ] && ! ls -d '$T'/absent.tmp-* 2>/dev/null | grep -q ."

# the 16-subject 3 mm demo cohort on 2 ranks, timed
t0=$(date +%s.%N)
expect_rc "12-subject 3 mm T=100 cohort on 2 ranks" 0 $MPIRUN 2 "$BGFM" synth --out "$T/demo" --subjects 12 --volumes 100 --tr 2.0 --voxel-size 3 --sites 2 --seed 7 --quiet
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
echo "# synth 12 subjects 3 mm T=100 on 2 ranks: ${dt} s"
check "nibabel reads every image: grid, affine, TR, dtype, zero outside the mask" \
  "$PY" "$REF" files "$T/demo" 100 2.0 3 float32
check "designed group effect on networks 0-1 and 2-3, none on the control pair 4-5 (AAL ROIs)" \
  "$PY" "$REF" effect "$T/demo" "$AAL"

# int16, ellipsoid mask, --force replacing an existing dataset
expect_rc "int16 + ellipsoid mask + --force" 0 "$BGFM" synth --out "$T/full" --force --subjects 2 --volumes 12 --tr 0.8 --datatype int16 --mask-atlas none --quiet
check "--force replaced the old folder" test ! -e "$T/full/file.txt"
check "int16 images read by nibabel with scl_slope, zero outside the mask" \
  "$PY" "$REF" files "$T/full" 12 0.8 3 int16
