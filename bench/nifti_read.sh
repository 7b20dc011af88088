#!/usr/bin/env bash
# nifti_read.sh: streaming .nii.gz read speed of bgfm's reader against `igzip -dc FILE >
# /dev/null` on the benchmark subject (MNI 2 mm, 91x109x91x200 float32, ~170 MB
# compressed, made once with `bgfm synth`). Also times `bgfm synth` for that subject.
# Target: reader time <= 1.5x igzip. Not a test: prints figures and ratios.
#   bench/nifti_read.sh            (BENCH_DATA=dir to keep the file elsewhere)
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BGFM_BUILD:-build}
DATA=${BENCH_DATA:-$B/bench-data}
REPS=${REPS:-3}
TN=$B/tests/test_nifti
[ -x "$B/bgfm" ] && [ -x "$TN" ] || make -s -j2 "$B/bgfm" "$TN" >/dev/null
command -v igzip >/dev/null || { echo "igzip not found (apt-get install isal)"; exit 1; }
F=$(ls "$DATA"/bench1/sub-*/func/*_bold.nii.gz 2>/dev/null | head -1)
if [ -z "$F" ]; then
  mkdir -p "$DATA"
  t0=$(date +%s.%N)
  "$B/bgfm" synth --out "$DATA/bench1" --subjects 1 --volumes 200 --voxel-size 2 --tr 2.0 --seed 1 --quiet || exit 1
  t1=$(date +%s.%N)
  F=$(ls "$DATA"/bench1/sub-*/func/*_bold.nii.gz | head -1)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "bgfm synth, 1 subject 2 mm T=200 float32, 1 rank: %.2f s\n", b-a}'
fi
echo "file: $F ($(du -m "$F" | cut -f1) MB compressed, $((91*109*91*200*4/1000000)) MB raw)"
# Alternate the two commands REPS times; keep the best wall and best CPU (user+sys) time
# of each, so that load from other processes on the machine affects both alike.
: > "$DATA/times"
for i in $(seq "$REPS"); do
  /usr/bin/time -f "igzip %e %U %S" -a -o "$DATA/times" igzip -dc "$F" > /dev/null
  /usr/bin/time -f "bgfm %e %U %S" -a -o "$DATA/times" "$TN" --stream "$F" > /dev/null
done
awk -v reps="$REPS" '
  { w = $2; c = $3 + $4
    if (!($1 in bw) || w < bw[$1]) bw[$1] = w
    if (!($1 in bc) || c < bc[$1]) bc[$1] = c }
  END {
    printf "igzip -dc > /dev/null      : wall %.3f s, cpu %.3f s (best of %d)\n", bw["igzip"], bc["igzip"], reps
    printf "bgfm reader, all volumes  : wall %.3f s, cpu %.3f s (best of %d; every volume as float32)\n", bw["bgfm"], bc["bgfm"], reps
    rw = bw["bgfm"] / bw["igzip"]; rc = bc["bgfm"] / bc["igzip"]
    printf "ratio reader/igzip        : wall %.2f, cpu %.2f (target <= 1.5: %s)\n", rw, rc, rw <= 1.5 ? "met" : "NOT met"
  }' "$DATA/times"
