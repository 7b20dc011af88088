#!/usr/bin/env bash
# slurm_cluster.sh: a real Slurm over the simulated cluster (tests/lib/netns-cluster.sh):
# two nodes as network namespaces on a bridge, slurmctld on node0 and one slurmd per node
# (tests/lib/slurm-local.sh with BGFM_SLURM_NODES), clients run on node0. The pipeline
# that `bgfm submit` writes runs as three chained jobs of 2 nodes x 1 task (srun + PMIx,
# ranks on different nodes talk over TCP); the pretrain job gets SIGUSR1 mid-training
# (`scancel --batch --signal=USR1`, what --signal=B:USR1@grace sends before a time
# limit), checkpoints, requeues itself and resumes. Outputs against the same pipeline run
# by a 2-rank mpirun on one node outside Slurm: parcellate and connectivity the same bytes,
# every /model tensor of pretrain bit-identical. Skipped (TAP SKIP with the reason) where
# network namespaces are not permitted or Slurm cannot be installed. About 60 s.
# test-serial: network namespaces and a Slurm of its own on the first free of fixed ports
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/../lib/slurm-tap.sh"
source "$ROOT/tests/lib/netns-cluster.sh"
trap 'cleanup; nsc_down' EXIT   # Slurm first (its clients need node0), then the nodes
if ! nsc_up 2; then
  echo "ok - Slurm on a simulated cluster # SKIP network namespaces not permitted here: $NSC_WHY"
  exit 0
fi

tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE WORKDIR
PIPE_NAME=cl PIPE_SEED=5 PIPE_TOP='slurm: {nodes: 2, ntasks_per_node: 1, cpus_per_task: 1, mem: 1G, time: "5", signal_grace: 60}' \
  pipeline_yaml "$1" "$2" "{windows: {length: 10, stride: 5}}" \
  "{name: pretrain, uses: pretrain, with: {mode: gmae+gcl, epochs: 400, batch_size: 5, hidden: 32, heads: 2, ffn: 64, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 3}}"
}
mk "$T/ref.yaml" "$T/wref"
mk "$T/job.yaml" "$T/wjob"

D=$(BGFM_SLURM_NODES=$NSC_DIR/map "$LIB" up 2>"$T/up.err" | tail -1)
if [ -z "$D" ] || [ ! -f "$D/env.sh" ]; then notok "Slurm on 2 nodes comes up"; cat "$T/up.err"; D=; exit 1; fi
. "$D/env.sh"
nodes=$(nsc_on 0 sinfo -h -N -o '%N %t' | paste -sd, -)
check "Slurm on 2 nodes, controller on node0 (10.213.0.1): $nodes" test "$nodes" = "node0 idle,node1 idle"
txb() { ip -n "bgfm$$n1" -s link show eth0 | awk '/TX:/ { getline; print $1 }'; }
tx0=$(txb)
st() { "$LIB" state "$D" "$1"; }

# ---- the whole pipeline through bgfm submit, from node0 (a login shell on the cluster)
out=$(nsc_on 0 "$BGFM" submit "$T/job.yaml" 2>"$T/submit.err"); rc=$?
read -r jp jc jt <<<"$(awk '{print $2}' <<<"$out" | paste -sd' ' -)"
{ [ "$rc" -eq 0 ] && [ -n "$jt" ]; }; ok_if "bgfm submit on node0: jobs $jp $jc $jt, chained afterok" $?
[ -n "$jt" ] || { cat "$T/submit.err"; exit 1; }
log=$T/wjob/slurm/cl-pretrain-$jt.out

# wait until pretrain trains (step 200), then ask it for a checkpoint + requeue
n=0
until grep -q '"stage": "pretrain", "kind": "pretrain", "step": 200,' "$T/wjob/metrics.jsonl" 2>/dev/null || [ $n -ge 3000 ]; do sleep 0.1; n=$((n + 1)); done
if [ $n -ge 3000 ]; then notok "the pretrain job reached step 200 within 300 s"; st "$jt"; tail -20 "$log"; for f in "$T"/wjob/slurm/*.out; do echo "== $f"; sed "s/^/#   /" "$f"; done; exit 1; fi
nsc_on 0 scancel --batch --signal=USR1 "$jt"
ts=$(date +%s)
# the reference: the same pipeline, 2 ranks on one node (shared memory), outside Slurm
timeout 600 $MPIRUN 2 "$BGFM" run "$T/ref.yaml" --quiet >"$T/ref.log" 2>&1
check "reference: 2-rank mpirun on one node, outside Slurm" test -s "$T/wref/pretrain/final.h5"
"$LIB" wait "$D" "$jt" 400 >"$T/wait.out"; rc=$?
echo "# job $jt: $(cat "$T/wait.out"), $(( $(date +%s) - ts )) s from the signal to the end"
for j in $jp $jc $jt; do
  read -r state code _ _ <<<"$(st "$j")"
  nodes=$(nsc_on 0 scontrol show job "$j" -o | grep -oE ' NodeList=[^ ]+' | cut -d= -f2)
  check "job $j ends COMPLETED 0:0 on node[0-1] ($state $code on $nodes)" \
    test "$state $code $nodes" = "COMPLETED 0:0 node[0-1]"
done
read -r _ _ _ restarts <<<"$(st "$jt")"
check "pretrain requeued itself after SIGUSR1 (Restarts $restarts), checkpointed, resumed" \
  bash -c "[ '${restarts:-0}' -ge 1 ] && grep -q 'checkpoint written; requeueing job $jt' '$log' && grep -q 'resuming from .*ckpt-[0-9]*\.h5' '$log' && grep -q 'stage pretrain exited with 0' '$log'"
check "every stage ran as 2 ranks (srun, PMIx)" bash -c "
  for s in parc conn pretrain; do grep -q '\"ranks\": 2' '$T/wjob/'\$s/manifest.json || exit 1; done
  [ \$(grep -c 'stage pretrain launcher srun' '$log') = 2 ]"
tx1=$(txb)
echo "# node1 sent $(( (tx1 - tx0) / 1024 )) KiB over its veth"
check "rank 1 ran on node1: its traffic crossed the bridge (node1 sent > 1 MiB)" test $(( tx1 - tx0 )) -gt 1048576
check "parcellate output: the same bytes as on one node" h5_same "$T/wjob/parc/timeseries.h5" "$T/wref/parc/timeseries.h5" / 1
check "connectivity outputs: the same bytes as on one node" bash -c "
  for f in '$T'/wjob/conn/*.h5; do '$PY' '$ROOT/tests/lib/h5same.py' \"\$f\" '$T/wref/conn/'\$(basename \"\$f\") / 1 >/dev/null || exit 1; done"
check "pretrain: every /model tensor bit-identical to the uninterrupted one-node run" \
  h5_same "$T/wref/pretrain/final.h5" "$T/wjob/pretrain/final.h5" model 11
check "no node drained" bash -c "! '$LIB' drained '$D'"
echo "# slurm cluster test took $(( $(date +%s) - t0 )) s before tear-down"
