#!/usr/bin/env bash
# deflate_repeat.sh [RUNS] [PARALLEL]: compresses one bgfm synth image RUNS times (default
# 3000), PARALLEL processes at once (default 6, more than the cores: the processes are
# switched often), with ISA-L as pipeline/io/nifti_write.c calls it, and counts the
# distinct outputs: one line per distinct hash (most common first), each with whether zlib
# inflates it back to the input ("same"). docs/reliability.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3000} PAR=${2:-6}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cc -O2 -o "$W/repeat" "$ROOT/bench/deflate_repeat.c" -lisal -lz
[ -x "$ROOT/build/bgfm" ] || make -C "$ROOT" -s build/bgfm
"$ROOT/build/bgfm" synth --out "$W/d" --subjects 1 --volumes 24 --tr 1.5 --sites 1 --seed 99 --traits 0 --quiet
img=$(ls "$W"/d/sub-01/func/*_bold.nii.gz)
zcat "$img" > "$W/raw.nii"
vol=$(( $(stat -c %s "$W/raw.nii") - 352 ))
vol=$(( vol / 24 ))
echo "deflate_repeat: $RUNS runs of $(stat -c %s "$W/raw.nii") bytes, $PAR at once, load $(cut -d' ' -f1 /proc/loadavg)"
seq "$RUNS" | xargs -P "$PAR" -I{} "$W/repeat" "$W/raw.nii" "$vol" | sort | uniq -c | sort -rn
