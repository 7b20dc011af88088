#!/usr/bin/env bash
# pretrain_signal.sh: Slurm-style stop requests on a real 2-rank mpirun. SIGUSR1 sent to
# mpirun (which forwards it to the ranks): the step finishes, a checkpoint is written
# collectively, every rank exits 75, and the rerun resumes to parameters bit-identical
# to an uninterrupted run. A second SIGUSR1 during that checkpoint write does not
# corrupt it. SIGTERM sent to the ranks (what srun / Slurm deliver): same, exit 75.
# SIGTERM sent to mpirun: Open MPI 4.1 forwards it and SIGKILLs the ranks ~1 s later
# (odls_base_sigkill_timeout), so no checkpoint is promised; the rerun still resumes.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE WORKDIR
PIPE_NAME=sg PIPE_SEED=3 pipeline_yaml "$1" "$2" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {mode: gmae+gcl, epochs: 80, batch_size: 5, hidden: 32, heads: 2, ffn: 64, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 3}}"
}
same() { h5_same "$1" "$2" / 100; }  # every dataset bit-identical
# start_run YAML OUT: run in the background once the upstream stages are done: they are
# the uninterrupted run's (the same dataset, seed and options, so "up to date, skipped")
start_run() {
  share_upstream "$(sed -n 's/^workdir: //p' "$1")" "$T/wa"
  $MPIRUN 2 "$BGFM" run "$1" >"$2" 2>&1 &
  mp=$!
}
# wait_step WORKDIR N: until the metrics show step N (at most 20 s)
wait_step() {
  for _ in $(seq 200); do
    grep -q "\"step\": $2," "$1/metrics.jsonl" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
mk "$T/a.yaml" "$T/wa"
timeout 60 $MPIRUN 2 "$BGFM" run "$T/a.yaml" --quiet >/dev/null 2>&1
check "uninterrupted run" test -f "$T/wa/pre/final.h5"
# SIGUSR1 to mpirun
mk "$T/b.yaml" "$T/wb"
start_run "$T/b.yaml" "$T/ob"
wait_step "$T/wb" 20
kill -USR1 $mp
wait $mp
rc=$?
check "SIGUSR1 to mpirun: exit 75" test $rc -eq 75
last=$($PY -c "import json,sys; print(max(json.loads(l)['step'] for l in open(sys.argv[1]) if '\"step\"' in l))" "$T/wb/metrics.jsonl")
check "checkpoint of the last step done ($last) written; nothing ran after it" test -f "$T/wb/.pre.partial/checkpoints/ckpt-$last.h5"
check "the stop message names the checkpoint" grep -q "stop requested (SIGTERM/SIGUSR1); checkpoint .*ckpt-$last.h5 written" "$T/ob"
timeout 60 $MPIRUN 2 "$BGFM" run "$T/b.yaml" >"$T/ob2" 2>&1
check "rerun resumes and completes" bash -c "[ $? -eq 0 ] && grep -q 'resuming from .*ckpt-$last.h5' '$T/ob2'"
check "signalled and resumed == uninterrupted (bitwise)" same "$T/wa/pre/final.h5" "$T/wb/pre/final.h5"
# a second SIGUSR1 while the checkpoint is being written
mk "$T/c.yaml" "$T/wc"
export BGFM_TEST_CKPT_PAUSE_MS=1500   # read by the test driver only
BGFM="$BGFM_T" start_run "$T/c.yaml" "$T/oc"
wait_step "$T/wc" 20
kill -USR1 $mp
sleep 0.8
tmpseen=0; ls "$T/wc/.pre.partial/checkpoints/"*.tmp >/dev/null 2>&1 && tmpseen=1
kill -USR1 $mp
wait $mp
rc=$?
unset BGFM_TEST_CKPT_PAUSE_MS
check "second SIGUSR1 during the checkpoint write (write in progress: $tmpseen): exit 75" bash -c "[ $rc -eq 75 ] && [ $tmpseen -eq 1 ]"
timeout 60 $MPIRUN 2 "$BGFM" run "$T/c.yaml" >"$T/oc2" 2>&1
check "that checkpoint is valid: resumed and == uninterrupted" bash -c "grep -q 'resuming from' '$T/oc2' && ! grep -q 'falling back' '$T/oc2'"
check "  (bitwise)" same "$T/wa/pre/final.h5" "$T/wc/pre/final.h5"
# SIGTERM to the ranks, as srun delivers it
mk "$T/d.yaml" "$T/wd"
start_run "$T/d.yaml" "$T/od"
wait_step "$T/wd" 20
kill -TERM $(pgrep -P $mp)
wait $mp
rc=$?
check "SIGTERM to the ranks: exit 75 with a checkpoint" bash -c "[ $rc -eq 75 ] && ls '$T/wd/.pre.partial/checkpoints/' | grep -q 'ckpt-.*h5$'"
# SIGTERM to mpirun: the ranks are killed ~1 s later; the rerun still resumes or restarts cleanly
mk "$T/e.yaml" "$T/we"
start_run "$T/e.yaml" "$T/oe"
wait_step "$T/we" 20
kill -TERM $mp
wait $mp
rc=$?
echo "# SIGTERM to mpirun: exit $rc; checkpoints: $(ls "$T/we/.pre.partial/checkpoints/" | tr '\n' ' ')"
timeout 60 $MPIRUN 2 "$BGFM" run "$T/e.yaml" --quiet >"$T/oe2" 2>&1 || sed 's/^/#   /' "$T/oe2" | grep -v '^#   *$' | head -8
check "after SIGTERM to mpirun the rerun completes == uninterrupted" same "$T/wa/pre/final.h5" "$T/we/pre/final.h5"
# SIGUSR1 (the time-limit warning) while a stage that cannot checkpoint runs: that stage
# ends, the run stops before the next one (exit 75, naming both), and the rerun goes on.
tiny_dataset "$T/big" --subjects 24 --volumes 120 --seed 5
DATA="$T/big" PIPE_NAME=sg PIPE_SEED=3 pipeline_yaml "$T/f.yaml" "$T/wf" "{windows: {length: 10, stride: 5}}" \
  "{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 5, hidden: 32, heads: 2, ffn: 64, proj: 8, n_max: 0}}"
$MPIRUN 2 "$BGFM" run "$T/f.yaml" >"$T/of" 2>&1 &
mp=$!
for _ in $(seq 400); do grep -q '\[1/3\] parc' "$T/of" && break; sleep 0.05; done
kill -USR1 $mp
wait $mp
rc=$?
stage=$(sed -n "s/.*after stage '\([a-z]*\)' completed.*/\1/p" "$T/of" | head -1)
check "SIGUSR1 during parcellate: exit 75 after a stage completed ($stage)" \
  bash -c "[ $rc -eq 75 ] && [ '$stage' = parc -o '$stage' = conn ] && grep -q 'rerun the pipeline to continue' '$T/of'"
check "  ... that stage is complete, the next one not started" \
  bash -c "[ -f '$T/wf/$stage/manifest.json' ] && if [ '$stage' = parc ]; then [ ! -f '$T/wf/conn/manifest.json' ]; else [ ! -f '$T/wf/pre/final.h5' ]; fi"
timeout 120 $MPIRUN 2 "$BGFM" run "$T/f.yaml" >"$T/of2" 2>&1
rc=$?
check "  ... the rerun skips it and completes the pipeline" \
  bash -c "[ $rc -eq 0 ] && grep -q 'up to date, skipped' '$T/of2' && [ -f '$T/wf/pre/final.h5' ]"
