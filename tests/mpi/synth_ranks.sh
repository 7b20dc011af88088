#!/usr/bin/env bash
# synth_ranks.sh: `bgfm synth` writes the same datasets on 1, 2 and 3 MPI ranks: every
# file compared by SHA-256, a .gz file by the SHA-256 of what it decompresses to
# (content_sum: ISA-L's deflate bytes for the same input are not always the same on this
# machine, docs/reliability.md, bench/deflate_repeat.sh): a trait population with unlabelled
# subjects, and the group-only design (--traits 0); out of memory on one rank ends every
# rank (exit 5). Not a check of the data's content (e2e/synth.sh).
source "$(dirname "$0")/../lib/tap.sh"
args=(--subjects 5 --unlabelled 2 --volumes 24 --tr 1.5 --voxel-size 3 --sites 2 --seed 99)
sums() { (cd "$1" 2>/dev/null && find . -type f | LC_ALL=C sort | while read -r f; do echo "$(content_sum "$f")  $f"; done) > "$2" 2>/dev/null; }
for np in 1 2 3; do
  expect_rc "synth (5 traits, 5 + 2 unlabelled) on $np rank(s) exits 0" 0 $MPIRUN $np "$BGFM" synth --out "$T/d$np" "${args[@]}" --quiet
  sums "$T/d$np" "$T/sum$np"
done
n=$(wc -l < "$T/sum1")
check "dataset has 7 images + sidecars + tables ($n files)" test "$n" -ge 18
check "1 and 2 ranks give the same files" cmp -s "$T/sum1" "$T/sum2"
check "1 and 3 ranks give the same files" cmp -s "$T/sum1" "$T/sum3"
for np in 1 3; do
  expect_rc "synth --traits 0 on $np rank(s) exits 0" 0 $MPIRUN $np "$BGFM" synth --out "$T/g$np" --subjects 5 --volumes 24 --tr 1.5 --sites 2 --seed 99 --traits 0 --quiet
  sums "$T/g$np" "$T/gsum$np"
done
check "--traits 0: 1 and 3 ranks give the same files" cmp -s "$T/gsum1" "$T/gsum3"
# a different seed gives different images
$MPIRUN 2 "$BGFM" synth --out "$T/other" "${args[@]}" --seed 100 --quiet
img=sub-01/func/sub-01_task-rest_space-MNI152NLin6Asym_res-3_desc-preproc_bold.nii.gz
check "another seed changes the images" bash -c "test -f '$T/d1/$img' && test -f '$T/other/$img' && ! cmp -s '$T/d1/$img' '$T/other/$img'"
# out of memory on ONE rank (MPMD launch; BGFM_FAIL_ALLOC_WHAT fails the first allocation of
# that purpose in the process): a subject's volume or motion trace on rank 1, the truth maps
# rank 0 writes alone: every rank stops with exit 5 and that rank's message, never a hang
# (under timeout: exit 124), and neither --out nor a staging folder is left
oom() {  # oom RANK WHAT
  local -a r0=(env) r1=(env)
  if [ "$1" = 0 ]; then r0=(env "BGFM_FAIL_ALLOC_WHAT=$2"); else r1=(env "BGFM_FAIL_ALLOC_WHAT=$2"); fi
  timeout 60 mpirun --oversubscribe -np 1 "${r0[@]}" "$BGFM" synth --out "$T/oom" "${args[@]}" \
    --motion 0.2 --quiet : -np 1 "${r1[@]}" "$BGFM" synth --out "$T/oom" "${args[@]}" \
    --motion 0.2 --quiet >"$T/oom.out" 2>&1
  local rc=$? n="rank $1 out of memory for '$2': exit 5, its message, no output left"
  if [ $rc -eq 5 ] && grep -q "bgfm: error: rank $1: out of memory allocating .* for $2\$" "$T/oom.out" &&
    [ ! -e "$T/oom" ]; then ok "$n"; else notok "$n (exit $rc$([ $rc -eq 124 ] && echo ': a hang'))"; fi
}
oom 1 "synth volume"
oom 1 "synth motion trace"
oom 0 "synth truth maps"
check "no staging folders left behind" bash -c "! ls -d '$T'/*.tmp-* 2>/dev/null | grep -q ."
