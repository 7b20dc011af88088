#!/usr/bin/env bash
# alloc_ranks.sh: an allocation failure on ONE rank at the places where a rank that failed
# alone once skipped to another collective call than the others (found by sweeping
# BGFM_FAIL_ALLOC_AFTER over a pipeline, docs/reliability.md "One MPI check"): every run
# ends with exit 5 and the failing rank's message naming what was allocated, never a hang
# (each run is under `timeout`: exit 124). The allocation is chosen by its purpose
# (BGFM_FAIL_ALLOC_WHAT, the first allocation of that name in the process); the failing
# rank is set by an MPMD launch. Two atlases (the second atlas's population head is fitted
# on rank 1). The places:
#   parcellate: the subject table's buffers (ids), the label classes' string (classes),
#     a string dataset's buffer (string dataset)
#   pretrain: the batch plan before the input normalisation's collective fit (plan), the
#     rows of the population head on their owner and on the other rank (population head
#     rows, population head map), the final checkpoint's corpus card and subject list
#     (model card, pretrain subjects)
#   probe: the embeddings' offsets before the sums over the ranks (probe offsets), a
#     few-shot draw's subject list (few-shot subjects, once an abort)
#   the engine (guards: these always agreed first): the input hashes' exchange (input hash
#     exchange), the gather of the ranks' peak RSS after a stage (peak RSS of the ranks)
# and where an allocation failure was reported as a damaged file: the root attribute
# `format` of the graph store (probe) and of the time series (connectivity) (attribute)
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
PIPE_NAME=ar PIPE_SEED=3 pipeline_yaml "$T/p1.yaml" "$T/w" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {epochs: 2, batch_size: 5, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 3}}" "{name: probe, uses: probe, with: {folds: 3, repeats: 1, few_shot: [all]}}"
two_atlases "$T/p1.yaml" "$T/p.yaml"
# fail RANK WHAT STAGE: the pipeline from STAGE on (its upstream complete), rank RANK's
# first allocation for WHAT failing
fail() {
  local rank=$1 what=$2 stage=$3 other=$((1 - $1))
  local -a r0=(env) r1=(env)
  if [ "$rank" = 0 ]; then r0=(env "BGFM_FAIL_ALLOC_WHAT=$what"); else r1=(env "BGFM_FAIL_ALLOC_WHAT=$what"); fi
  local s on=0
  for s in parc conn pre probe; do
    [ "$s" = "$stage" ] && on=1
    [ $on = 1 ] && rm -rf "${T:?}/w/$s" "$T/w/.$s.partial"
  done
  timeout 60 mpirun --oversubscribe -np 1 "${r0[@]}" "$BGFM" run "$T/p.yaml" --from "$stage" --quiet : \
    -np 1 "${r1[@]}" "$BGFM" run "$T/p.yaml" --from "$stage" --quiet >"$T/o" 2>&1
  local rc=$?
  if [ $rc -eq 5 ] && grep -q "bgfm: error: rank $rank: out of memory allocating .* for $what\$" "$T/o"; then
    ok "rank $rank short of memory for '$what' ($stage): exit 5, its message, rank $other not left waiting"
  else
    notok "rank $rank short of memory for '$what' ($stage) (exit $rc$([ $rc -eq 124 ] && echo ': a hang'))"
    grep 'bgfm: error' "$T/o" | head -2 | sed 's/^/#   /'
  fi
}
timeout 120 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --quiet >"$T/o0" 2>&1
check "the pipeline of two atlases runs on 2 ranks without a fault" test -f "$T/w/probe/report/probe.json"
fail 1 "probe offsets" probe
fail 1 "few-shot subjects" probe
fail 1 "peak RSS of the ranks" probe
fail 0 "peak RSS of the ranks" probe
fail 0 attribute probe
fail 0 attribute conn
for what in ids classes "string dataset"; do fail 1 "$what" parc; done
fail 0 ids parc
fail 1 "input hash exchange" parc
timeout 120 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --quiet >"$T/o0" 2>&1  # parc and conn again
for what in plan "population head rows" "population head map" "model card" "pretrain subjects"; do
  fail 1 "$what" pre
done
fail 0 "population head map" pre
check "a failure at no named place: the variable names a purpose no allocation has, the run completes" \
  bash -c "rm -rf '$T/w/pre' '$T/w/.pre.partial' '$T/w/probe'; BGFM_FAIL_ALLOC_WHAT='no such purpose' timeout 60 $MPIRUN 2 '$BGFM' run '$T/p.yaml' --quiet >/dev/null 2>&1 && test -f '$T/w/probe/report/probe.json'"
