#!/usr/bin/env bash
# synth_ranks.sh: `bgfm synth` writes bit-identical datasets on 1, 2 and 3 MPI ranks
# (every file, compared by SHA-256). Not a check of the data's content (e2e/synth.sh).
source "$(dirname "$0")/../lib/tap.sh"
args=(--subjects 5 --volumes 24 --tr 1.5 --voxel-size 3 --sites 2 --seed 99)
for np in 1 2 3; do
  expect_rc "synth on $np rank(s) exits 0" 0 $MPIRUN $np "$BGFM" synth --out "$T/d$np" "${args[@]}" --quiet
  (cd "$T/d$np" 2>/dev/null && find . -type f | LC_ALL=C sort | xargs sha256sum) > "$T/sum$np" 2>/dev/null
done
n=$(wc -l < "$T/sum1")
check "dataset has 5 images + sidecars + tables ($n files)" test "$n" -ge 14
check "1 and 2 ranks give bit-identical files" cmp -s "$T/sum1" "$T/sum2"
check "1 and 3 ranks give bit-identical files" cmp -s "$T/sum1" "$T/sum3"
# a different seed gives different images
$MPIRUN 2 "$BGFM" synth --out "$T/other" "${args[@]}" --seed 100 --quiet
check "another seed changes the images" bash -c "! cmp -s '$T/d1/sub-1/func/'* '$T/other/sub-1/func/'* 2>/dev/null && ! cmp -s '$T/d1/sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_res-3_desc-preproc_bold.nii.gz' '$T/other/sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_res-3_desc-preproc_bold.nii.gz'"
check "no staging folders left behind" bash -c "! ls -d '$T'/*.tmp-* 2>/dev/null | grep -q ."
