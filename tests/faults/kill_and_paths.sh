#!/usr/bin/env bash
# kill_and_paths.sh: (1) SIGKILL of one rank, and SIGTERM / SIGUSR1 to one rank, at
# several points of parcellate -> connectivity on 2 ranks: the job ends (mpirun stops
# the others), no stage folder without manifest.json is ever left looking complete,
# and a rerun completes with files byte-identical to an undisturbed run. (2) A graph
# store whose shard was deleted: pretrain stops with exit 4 naming the file. (3) Hostile
# stage / atlas / pipeline names through `bgfm run` are refused (exit 2) and nothing is
# created outside the workdir.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 24 --volumes 300
mk() {  # mk FILE WORKDIR [PRETRAIN-LINE]
cat >"$1" <<YAML
name: killtest
workdir: $2
inputs: {bids: $T/d/bids}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {detrend: true, low_pass: 0.1, standardize: zscore}}
  - {name: conn, uses: connectivity, with: {measure: partial, windows: {length: 20, stride: 1}, graphs_per_shard: 500}}
${3:-}
YAML
}
PRE='  - {name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}'
mk "$T/ref.yaml" "$T/ref"
t0=$(date +%s.%N)
expect_rc "undisturbed reference run (2 ranks)" 0 timeout 120 $MPIRUN 2 "$BGFM" run "$T/ref.yaml" --quiet
dur=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
echo "# reference run: $dur s"
outs() { (cd "$1" && for s in parc conn; do [ -d "$s" ] && find "$s" -name '*.h5' | sort | xargs sha256sum; done); }
REF=$(outs "$T/ref")
i=0
for sig in KILL TERM USR1 KILL; do
  i=$((i + 1))
  w="$T/k$i"; mk "$T/k$i.yaml" "$w"
  delay=$(awk -v d="$dur" -v i="$i" 'BEGIN{printf "%.2f", d * (0.2 * i - 0.05)}')
  timeout 120 $MPIRUN 2 "$BGFM" run "$T/k$i.yaml" --quiet >"$T/o$i" 2>&1 &
  mp=$!
  sleep "$delay"
  victim=$(pgrep -f "bgfm run $T/k$i.yaml" | while read -r p; do [ "$p" != "$mp" ] && grep -q bgfm "/proc/$p/comm" 2>/dev/null && echo "$p"; done | tail -1)
  [ -n "$victim" ] && kill -s "$sig" "$victim" 2>/dev/null
  wait "$mp"; rc=$?
  bad=""
  # report/ is the run report page (docs/report.md), not a stage: written even for a failed run
  for dd in "$w"/*/; do [ "$dd" = "$w/report/" ] && continue; [ -d "$dd" ] && [ ! -f "$dd/manifest.json" ] && bad="$dd has no manifest"; done
  check "SIG$sig to one rank after ${delay}s (exit $rc): no stage folder without a manifest${bad:+ ($bad)}" test -z "$bad"
  expect_rc "... rerun completes" 0 timeout 120 $MPIRUN 2 "$BGFM" run "$T/k$i.yaml" --quiet
  check "... parc/conn files identical to the undisturbed run" test "$REF" = "$(outs "$w")"
done
# (2) a shard deleted under a complete graph store
mk "$T/pre.yaml" "$T/ref" "$PRE"
rm -f "$T/ref/conn/shard-00001.h5"
timeout 60 $MPIRUN 2 "$BGFM" run "$T/pre.yaml" --only pre --quiet >"$T/o" 2>&1; rc=$?
check "pretrain on a store with a deleted shard: exit 4 naming the file" test $rc -eq 4 -a -n "$(grep "bgfm: error.*shard-00001.h5" "$T/o")"
[ $rc -eq 4 ] || sed 's/^/# /' "$T/o" | tail -3
grep "bgfm: error" "$T/o" | head -1 | cut -c1-300 | sed 's/^/# /'
# (3) hostile names
hostile() {  # hostile NAME YAML-FRAGMENT-FOR-STAGE-OR-ATLAS KIND
  mkdir -p "$T/h/$1"; cd "$T/h/$1" || return
  cat >p.yaml <<YAML
name: ${4:-hostile}
workdir: w
inputs: {bids: $T/d/bids}
atlases:
  - {name: ${3:-tiny}, path: $T/d/atlas.nii.gz}
stages:
  - {name: "$2", uses: parcellate}
YAML
  "$BGFM" run p.yaml --quiet >out 2>&1; local rc=$?
  check "hostile $1: exit 2" test $rc -eq 2
  check "... nothing written outside the workdir" test -z "$(find "$T/h/$1" -mindepth 1 -not -path "$T/h/$1/w*" -not -name p.yaml -not -name out)"
  cd - >/dev/null
}
hostile "stage name with ..: '../escape'" "../escape"
hostile "stage name with a slash: 'a/b'" "a/b"
hostile "stage name with shell text: '\$(touch pwned)'" '$(touch pwned)'
hostile "atlas name '../x'" parc '"../x"'
hostile "pipeline name ';rm -rf x'" parc tiny '";rm -rf x"'
