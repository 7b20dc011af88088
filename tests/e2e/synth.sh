#!/usr/bin/env bash
# synth.sh: `bgfm synth` end to end: argument errors (exit 2), complete-or-absent output,
# nibabel reads every image with the right grid/TR/dtype and an exactly-zero outside,
# the designed group effect (--traits 0), each site's coupling shift (--site-coupling),
# each site's own spread (--site-spread) and the designed trait effects (a population with
# unlabelled subjects) are present in AAL ROI correlations (numpy/scipy).
# Not the rank-count determinism test (mpi/synth_ranks.sh).
source "$(dirname "$0")/../lib/tap.sh"
REF="$ROOT/tests/reference/synth_check.py"
# the ROI Fisher z of a dataset's images, kept for must_fail's second check of the same images
export SYNTH_CHECK_CACHE="$T/fz"
AAL=/usr/share/mricron/templates/aal.nii.gz

# bad arguments -> exit 2 with a message
bad() {  # bad NAME NEEDLE ARGS...
  local n=$1 needle=$2; shift 2
  "$BGFM" synth "$@" > "$T/out" 2> "$T/err"; local rc=$?
  if [ "$rc" -eq 2 ] && grep -q -- "$needle" "$T/err"; then ok "$n"; else notok "$n (exit $rc: $(cat "$T/err"))"; fi
}
must_fail() {  # must_fail CHECK DIR NEEDLE NAME EDIT: synth_check.py CHECK fails (NEEDLE) once
  # model.json's m is edited by the Python statement EDIT
  "$PY" -c "import json, sys
m = json.load(open(sys.argv[1]))
$5
json.dump(m, open(sys.argv[1], 'w'))" "$2/derivatives/synth/model.json"
  "$PY" "$REF" "$1" "$2" "$AAL" > "$2.log"; local rc=$?
  if [ "$rc" -eq 1 ] && grep -q "$3" "$2.log"; then ok "$4"; else notok "$4 (exit $rc)"; fi
}
bad "missing --out -> exit 2" "--out DIR is required"
bad "unknown option -> exit 2" "unknown option '--voxels'" --out "$T/x" --voxels 3
bad "--voxel-size 4 -> exit 2" "--voxel-size" --out "$T/x" --voxel-size 4
bad "--subjects abc -> exit 2" "--subjects" --out "$T/x" --subjects abc
bad "--datatype float16 -> exit 2" "float32 or int16" --out "$T/x" --datatype float16
bad "--sites > --subjects -> exit 2" "exceeds" --out "$T/x" --subjects 4 --sites 5
bad "--tr without value -> exit 2" "needs a value" --out "$T/x" --tr
bad "--traits 17 -> exit 2" "--traits" --out "$T/x" --traits 17
bad "--site-coupling 0.5 -> exit 2" "--site-coupling" --out "$T/x" --site-coupling 0.5
bad "--site-coupling with --traits 0 -> exit 2" "group-only design" --out "$T/x" --traits 0 --site-coupling 0.1
bad "--effect with traits -> exit 2" "group-only design" --out "$T/x" --effect 0.3
bad "--unlabelled with --traits 0 -> exit 2" "needs latent traits" --out "$T/x" --traits 0 --unlabelled 4
bad "--trait-effect 1 -> exit 2" "--trait-effect" --out "$T/x" --trait-effect 1
mkdir -p "$T/full"; echo keep > "$T/full/file.txt"
bad "non-empty --out without --force -> exit 2" "not empty" --out "$T/full" --subjects 2 --volumes 10
check "non-empty --out left untouched" test -f "$T/full/file.txt"
check "--help exits 0" bash -c "'$BGFM' synth --help | grep -q -- '--voxel-size'"

# a failing run leaves nothing behind (missing mask atlas -> exit 3)
"$BGFM" synth --out "$T/absent" --subjects 2 --volumes 10 --mask-atlas "$T/nope.nii.gz" 2> "$T/err"; rc=$?
if [ "$rc" -eq 3 ] && grep -q "nope.nii.gz" "$T/err"; then ok "missing mask atlas -> exit 3 naming it"; else notok "missing mask atlas (exit $rc: $(cat "$T/err"))"; fi
check "failed run leaves no dataset and no staging folder" bash -c "[ ! -e '$T/absent' ] && ! ls -d '$T'/absent.tmp-* 2>/dev/null | grep -q ."

# the group-only design (--traits 0): a 12-subject 3 mm cohort on 2 ranks, timed
t0=$(date +%s.%N)
expect_rc "12-subject 3 mm T=100 group-only cohort on 2 ranks" 0 $MPIRUN 2 "$BGFM" synth --out "$T/demo" --subjects 12 --volumes 100 --tr 2.0 --voxel-size 3 --sites 2 --seed 7 --traits 0 --quiet
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
echo "# synth 12 subjects 3 mm T=100 on 2 ranks: ${dt} s"
check "nibabel reads every image: grid, affine, TR, dtype, zero outside the mask" \
  "$PY" "$REF" files "$T/demo" 100 2.0 3 float32
check "designed group effect on networks 0-1 and 2-3, none on the control pair 4-5 (AAL ROIs)" \
  "$PY" "$REF" effect "$T/demo" "$AAL"

# a population with 5 latent traits: 24 labelled + 8 unlabelled subjects, int16, TR 3 s
# (more degrees of freedom per volume), a trait effect of 0.2 per SD (default 0.12) so
# that every single designed loading is testable on 32 subjects (seeds 11-15 all pass)
t0=$(date +%s.%N)
expect_rc "24 + 8 unlabelled subjects, 5 traits, on 2 ranks" 0 $MPIRUN 2 "$BGFM" synth --out "$T/pop" --subjects 24 --unlabelled 8 --volumes 120 --tr 3 --sites 2 --seed 13 --datatype int16 --trait-effect 0.2 --quiet
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
echo "# synth 32 subjects 3 mm T=120 int16 on 2 ranks: ${dt} s"
check "nibabel reads the population's images; columns score, trait_1..trait_5" \
  "$PY" "$REF" files "$T/pop" 120 3.0 3 int16
check "participants.tsv = model.json, n/a rows, balanced classes; every designed trait loading recovered (AAL ROIs), none elsewhere" \
  "$PY" "$REF" traits "$T/pop" "$AAL"
# the checks can fail: without trait effects nothing is recovered
expect_rc "a population without trait effects (--trait-effect 0)" 0 $MPIRUN 2 "$BGFM" synth --out "$T/pop0" --subjects 12 --unlabelled 4 --volumes 60 --tr 3 --sites 2 --seed 13 --datatype int16 --trait-effect 0 --quiet
"$PY" "$REF" traits "$T/pop0" "$AAL" > "$T/pop0.log"; rc=$?
if [ "$rc" -eq 1 ] && grep -q "designed loading not recovered" "$T/pop0.log" && grep -q "designed mixing not recovered" "$T/pop0.log"; then
  ok "traits check fails on a population without trait effects"; else notok "traits check on --trait-effect 0 (exit $rc)"; fi

# --site-coupling: every subject of a site shares the site's coupling shift; the shifts
# (model.json) are recovered from AAL ROI correlations (16 subjects at 3 sites), and the
# check fails against shifts that are not the site's (each list reversed)
expect_rc "16 subjects at 3 sites, --site-coupling 0.2" 0 $MPIRUN 2 "$BGFM" synth --out "$T/sc" --subjects 16 --volumes 120 --tr 3 --sites 3 --seed 13 --datatype int16 --site-coupling 0.2 --quiet
check "each site's coupling shift recovered from ROI correlations (r > 0.6 with model.json's)" \
  "$PY" "$REF" sites "$T/sc" "$AAL"
must_fail sites "$T/sc" "coupling shift not recovered" "sites check fails against shifts that are not the sites'" \
  'm["site_coupling_shift"] = [v[::-1] for v in m["site_coupling_shift"]]'
check "--site-coupling 0 (the default) writes no site shift; the description lists a given one" bash -c "
  grep -q -- '--site-coupling 0.2' '$T/sc/dataset_description.json' &&
  ! grep -q 'site_coupling' '$T/pop/derivatives/synth/model.json'"

# --site-spread: within each site, subjects differ along the site's own pattern by their
# amplitude (model.json), recovered from AAL ROI correlations (24 subjects at 3 sites); the
# check fails against amplitudes of the wrong sign; the description lists the option
expect_rc "24 subjects at 3 sites, --site-spread 0.1" 0 $MPIRUN 2 "$BGFM" synth --out "$T/ss" --subjects 24 --volumes 120 --tr 3 --sites 3 --seed 13 --datatype int16 --site-spread 0.1 --quiet
check "each site's own spread recovered from ROI correlations (r > 0.6 with model.json's amplitudes)" \
  "$PY" "$REF" spread "$T/ss" "$AAL"
must_fail spread "$T/ss" "own spread not recovered" "spread check fails against amplitudes of the wrong sign" \
  'for t in m["participants"]: t["site_spread_amplitude"] = -t["site_spread_amplitude"]'
check "--site-spread 0 (the default) writes no pattern; the description lists a given one" bash -c "
  grep -q -- '--site-spread 0.1' '$T/ss/dataset_description.json' &&
  ! grep -q 'site_spread' '$T/pop/derivatives/synth/model.json'"
bad "--site-spread 0.5 -> exit 2" "--site-spread" --out "$T/x" --site-spread 0.5

# int16, ellipsoid mask, --force replacing an existing dataset
expect_rc "int16 + ellipsoid mask + --force" 0 "$BGFM" synth --out "$T/full" --force --subjects 2 --volumes 12 --tr 0.8 --datatype int16 --mask-atlas none --quiet
check "--force replaced the old folder" test ! -e "$T/full/file.txt"
check "int16 images read by nibabel with scl_slope, zero outside the mask" \
  "$PY" "$REF" files "$T/full" 12 0.8 3 int16
