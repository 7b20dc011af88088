#!/usr/bin/env bash
# prefix_cohort.sh COHORT N OUT: a BIDS folder OUT holding the first N participants of
# COHORT (participants.tsv's first N rows; each subject folder a symlink into COHORT; the
# other top-level files copied). bgfm synth draws subject s the same whatever --subjects
# and --unlabelled say, and writes the labelled subjects first, so the first S + U
# subjects of a cohort made with more unlabelled ones are the cohort made with U
# (docs/results.md section 12m). Not a test: a tool for the transfer studies.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: prefix_cohort.sh COHORT N OUT" >&2; exit 2; }
src=$(cd "$1" && pwd) n=$2 out=$3
[ -f "$src/participants.tsv" ] || { echo "prefix_cohort: $src/participants.tsv: not found" >&2; exit 1; }
rows=$(($(wc -l < "$src/participants.tsv") - 1))
[ "$n" -ge 1 ] && [ "$n" -le "$rows" ] || { echo "prefix_cohort: N must be 1..$rows" >&2; exit 2; }
[ ! -e "$out" ] || { echo "prefix_cohort: $out exists; remove it first" >&2; exit 1; }
mkdir -p "$out"
head -n $((n + 1)) "$src/participants.tsv" > "$out/participants.tsv"
for f in "$src"/*; do
  b=$(basename "$f")
  case $b in sub-*|participants.tsv) ;; *) cp -r "$f" "$out/" ;; esac
done
tail -n +2 "$out/participants.tsv" | cut -f1 | while read -r s; do ln -s "$src/$s" "$out/$s"; done
echo "prefix_cohort: $out: the first $n of $rows participants of $src"
