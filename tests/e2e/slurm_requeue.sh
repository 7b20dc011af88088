#!/usr/bin/env bash
# slurm_requeue.sh: the real requeue path on a real local Slurm (tests/lib/slurm-local.sh):
# the pretrain job that `bgfm submit` writes runs the real bgfm on 2 ranks (srun + PMIx),
# gets SIGUSR1 mid-training (`scancel --batch --signal=USR1`, what --signal=B:USR1@grace
# sends before the time limit), checkpoints, exits 75, requeues itself (Restarts >= 1),
# resumes and finishes; its final parameters (h5py, every /model dataset) are bit-identical
# to an uninterrupted 2-rank mpirun of the same pipeline outside Slurm.
# Not a time-limit test (a real --time/--signal costs 60-150 s, docs/slurm.md); skipped
# (TAP SKIP) only where Slurm cannot be installed.
# test-serial: a Slurm of its own (munged, slurmctld, slurmd) on the first free of fixed ports
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/../lib/slurm-tap.sh"

# ---- data and two copies of one pipeline (differing only in workdir)
tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE WORKDIR
PIPE_NAME=rq PIPE_SEED=5 PIPE_TOP='slurm: {nodes: 1, ntasks_per_node: 2, cpus_per_task: 1, mem: 1G, time: "5", signal_grace: 60}' \
  pipeline_yaml "$1" "$2" "{windows: {length: 10, stride: 5}}" \
  "{name: pretrain, uses: pretrain, with: {mode: gmae+gcl, epochs: 400, batch_size: 5, hidden: 32, heads: 2, ffn: 64, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 3}}"
}
mk "$T/ref.yaml" "$T/wref"
mk "$T/job.yaml" "$T/wjob"
# upstream stages of the Slurm pipeline, outside Slurm (the job runs only pretrain)
{ $MPIRUN 2 "$BGFM" run "$T/job.yaml" --only parc --quiet && $MPIRUN 2 "$BGFM" run "$T/job.yaml" --only conn --quiet; } >"$T/up.log" 2>&1 ||
  { notok "upstream stages"; cat "$T/up.log"; exit 1; }

D=$("$LIB" up 2>"$T/up.err" | tail -1)
if [ -z "$D" ] || [ ! -f "$D/env.sh" ]; then notok "local Slurm comes up"; cat "$T/up.err"; D=; exit 1; fi
. "$D/env.sh"
st() { "$LIB" state "$D" "$1"; }

# ---- the Slurm job: bgfm submit --stage pretrain (the generated requeue script)
out=$("$BGFM" submit "$T/job.yaml" --stage pretrain 2>"$T/submit.err"); rc=$?
j=$(awk '$1 == "pretrain" {print $2}' <<<"$out")
{ [ "$rc" -eq 0 ] && [ -n "$j" ]; }; ok_if "bgfm submit --stage pretrain: job $j" $?
[ -n "$j" ] || { cat "$T/submit.err"; exit 1; }
log=$T/wjob/slurm/rq-pretrain-$j.out


# wait until the job trains (step 200 in its metrics), then ask for a checkpoint + requeue
n=0
until grep -q '"stage": "pretrain", "kind": "pretrain", "step": 200,' "$T/wjob/metrics.jsonl" 2>/dev/null || [ $n -ge 3000 ]; do sleep 0.1; n=$((n + 1)); done
if [ $n -ge 3000 ]; then notok "the job reached step 200 within 300 s"; st "$j"; tail -20 "$log"; exit 1; fi
scancel --batch --signal=USR1 "$j"
ts=$(date +%s)
# the uninterrupted reference, same 2 ranks, outside Slurm: run after the signal was
# sent (run before, it competed with the job for the cores and the job could finish
# before the signal on a fast machine)
timeout 600 $MPIRUN 2 "$BGFM" run "$T/ref.yaml" --quiet >"$T/ref.log" 2>&1 || tail -5 "$T/ref.log" | sed "s/^/# /"
check "uninterrupted 2-rank run outside Slurm" test -s "$T/wref/pretrain/final.h5"
"$LIB" wait "$D" "$j" 400 >"$T/wait.out"; rc=$?
echo "# job $j: $(cat "$T/wait.out"), $(( $(date +%s) - ts )) s from the signal to the end"
read -r state code reason restarts <<<"$(st "$j")"
{ [ "$rc" -eq 0 ] && [ "$state" = COMPLETED ] && [ "$code" = 0:0 ]; }; ok_if "job ends COMPLETED 0:0 ($state $code)" $?
check "requeued: scontrol shows Restarts >= 1 ($restarts)" test "${restarts:-0}" -ge 1
check "first run: bgfm wrote a checkpoint on SIGUSR1" grep -q 'stop requested (SIGTERM/SIGUSR1); checkpoint .*ckpt-[0-9]*\.h5 written' "$log"
check "first run: exit 75, then the job requeued itself" \
  bash -c "grep -q 'stage pretrain exited with 75' '$log' && grep -q 'checkpoint written; requeueing job $j' '$log'"
check "second run: SLURM_RESTART_COUNT=1, resumed from the checkpoint, exit 0" \
  bash -c "grep -q 'launcher srun restart 1 ' '$log' && grep -q 'resuming from .*ckpt-[0-9]*\.h5' '$log' && grep -q 'stage pretrain exited with 0' '$log'"
check "both runs were 2-rank srun (PMIx) runs" bash -c "[ \$(grep -c 'stage pretrain launcher srun' '$log') = 2 ] && grep -q '\"ranks\": 2' '$T/wjob/pretrain/manifest.json'"
same() { h5_same "$1" "$2" model 11; }  # every /model tensor bit-identical
check "final /model parameters bit-identical to the uninterrupted run" same "$T/wref/pretrain/final.h5" "$T/wjob/pretrain/final.h5"
check "node not drained" bash -c "! '$LIB' drained '$D'"
echo "# slurm requeue test took $(( $(date +%s) - t0 )) s before tear-down"
