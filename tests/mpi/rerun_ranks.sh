#!/usr/bin/env bash
# rerun_ranks.sh: outputs that docs call rank-independent have the same file bytes for 1,
# 2 and 3 ranks (timeseries.h5, graph shards and index; the probe reads pretrain's
# rank-dependent checkpoint, so it is not among them), so their manifests carry the same
# outputs_sha256 and a --dry-run on another rank count
# wants to rerun nothing but the rank-sensitive pretrain stage, saying that the rank
# count changed (and the probe after it, because its upstream runs). validate and
# --dry-run write nothing into the workdir (no hash cache, no lock, no folder).
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 8 --volumes 40
mk() {  # mk FILE WORKDIR
PIPE_NAME=rr PIPE_SEED=9 pipeline_yaml "$1" "$2" "{windows: {length: 20, stride: 10}}" "{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 4, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 1}}" "{name: probe, uses: probe, with: {folds: 2}}"
}
for np_ in 1 2 3; do
  mk "$T/p$np_.yaml" "$T/w$np_"
  expect_rc "pipeline on $np_ rank(s)" 0 timeout 300 $MPIRUN $np_ "$BGFM" run "$T/p$np_.yaml" --quiet
done
files() { (cd "$1" && find parc conn -type f ! -name manifest.json | sort); }
check "the same output files of parc and conn for 1, 2 and 3 ranks" bash -c "[ \"\$(cd '$T/w1' && find parc conn -type f | sort)\" = \"\$(cd '$T/w3' && find parc conn -type f | sort)\" ]"
for np_ in 2 3; do
  bad=""
  for f in $(files "$T/w1"); do cmp -s "$T/w1/$f" "$T/w$np_/$f" || bad="$bad $f"; done
  check "every output file of parc and conn byte-identical (cmp): 1 vs $np_ ranks${bad:+ (differ:$bad)}" test -z "$bad"
  for s in parc conn; do
    a=$(sed -n 's/.*"outputs_sha256": "\([0-9a-f]*\)".*/\1/p' "$T/w1/$s/manifest.json")
    b=$(sed -n 's/.*"outputs_sha256": "\([0-9a-f]*\)".*/\1/p' "$T/w$np_/$s/manifest.json")
    check "$s: the same outputs_sha256 in the manifests of 1 and $np_ ranks" test -n "$a" -a "$a" = "$b"
  done
done
# the 2-rank workdir planned on 3 ranks: only pretrain reruns, because of the rank count
before=$(cd "$T/w2" && find . -printf '%p %s %T@\n' | sort)
timeout 120 $MPIRUN 3 "$BGFM" run "$T/p2.yaml" --dry-run >"$T/dry" 2>&1
check "--dry-run on 3 ranks: parc and conn up to date" \
  bash -c "grep -q '^  parc .*up to date' '$T/dry' && grep -q '^  conn .*up to date' '$T/dry'"
check "--dry-run on 3 ranks: pretrain reruns because the rank count changed (2 -> 3)" \
  grep -q "^  pre .*run (the rank count changed: 2 -> 3 ranks" "$T/dry"
check "--dry-run on 3 ranks: probe runs after it" grep -q "^  probe .*run (its upstream runs first)" "$T/dry"
timeout 120 $MPIRUN 2 "$BGFM" validate "$T/p2.yaml" >"$T/val" 2>&1
check "validate on the same rank count: everything up to date" bash -c "[ \$(grep -c 'up to date' '$T/val') -eq 4 ]"
after=$(cd "$T/w2" && find . -printf '%p %s %T@\n' | sort)
check "--dry-run and validate wrote nothing into the workdir" test "$before" = "$after"
# a new input file (hash cache miss) still writes nothing under --dry-run
touch -d '2001-01-01' "$T/d/bids/participants.tsv"
"$BGFM" run "$T/p2.yaml" --dry-run >/dev/null 2>&1
after2=$(cd "$T/w2" && find . -printf '%p %s %T@\n' | sort)
check "--dry-run after an input changed its mtime: still nothing written" test "$before" = "$after2"
mk "$T/pn.yaml" "$T/wn"
"$BGFM" validate "$T/pn.yaml" >/dev/null 2>&1
"$BGFM" run "$T/pn.yaml" --dry-run >/dev/null 2>&1
check "validate and --dry-run on a new workdir do not create it" test ! -e "$T/wn"
