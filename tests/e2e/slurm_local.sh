#!/usr/bin/env bash
# slurm_local.sh: `bgfm submit` and the jobs/slurm templates on a real Slurm (munged +
# slurmctld + slurmd on localhost, brought up and torn down by tests/lib/slurm-local.sh):
# chained stages, srun and mpirun launchers, a failed stage cancelling its successor,
# the requeue loop with afterok dependents, the one-allocation template.
# Not a scheduler benchmark; skipped (TAP SKIP) only where Slurm cannot be installed.
# test-serial: a Slurm of its own (munged, slurmctld, slurmd) on the first free of fixed ports
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/../lib/slurm-tap.sh"
D=$("$LIB" up 2>"$T/up.log" | tail -1)
if [ -z "$D" ] || [ ! -f "$D/env.sh" ]; then
  notok "local Slurm comes up"; cat "$T/up.log"; D=; exit 1
fi
ok "local Slurm comes up"
. "$D/env.sh"
st() { "$LIB" state "$D" "$1"; }          # "STATE EXIT REASON RESTARTS"
has_state() { [[ "$(st "$1")" == $2 ]]; }  # has_state JOB GLOB
gone() { [ -z "$(squeue -h -j "$1" -o %A 2>/dev/null)" ]; }
wait_gone() { local j=$1 n=$(( ${2:-60} * 5 )); while ! gone "$j" && [ $n -gt 0 ]; do sleep 0.2; n=$((n - 1)); done; gone "$j"; }
wait_file() { local f=$1 n=$(( ${2:-30} * 10 )); while [ ! -e "$f" ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done; [ -e "$f" ]; }

# ---- data: a small synthetic cohort, and a copy with one image broken
"$BGFM" synth --out "$T/bids" --subjects 3 --volumes 20 --quiet >"$T/synth.log" 2>&1 ||
  { notok "bgfm synth"; cat "$T/synth.log"; exit 1; }
cp -r "$T/bids" "$T/bad"
f=$(ls "$T"/bad/sub-02/func/*_bold.nii.gz)
head -c 2000 "$T/bids/sub-02/func/$(basename "$f")" >"$f"   # truncated gzip

pipe() {  # pipe NAME WORKDIR BIDS: two chained stages; conn forces the mpirun launcher
  cat <<EOF
name: $1
workdir: $2
inputs: {bids: $3}
atlases:
  - {name: aal, path: /usr/share/mricron/templates/aal.nii.gz}
stages:
  - {name: parc, uses: parcellate}
  - name: conn
    uses: connectivity
    slurm: {launcher: mpirun, ntasks_per_node: 1}
slurm: {partition: debug, nodes: 1, ntasks_per_node: 2, cpus_per_task: 1, mem: 1G, time: "5"}
EOF
}
pipe good "$T/work" "$T/bids" >"$T/good.yaml"
pipe bad "$T/workbad" "$T/bad" >"$T/bad.yaml"

# ---- 1. submit both pipelines (the bad one's first stage fails on the broken image)
out=$("$BGFM" submit "$T/good.yaml" 2>"$T/submit.err"); rc=$?
{ [ "$rc" -eq 0 ] && grep -qE '^parc [0-9]+$' <<<"$out" && grep -qE '^conn [0-9]+$' <<<"$out"; }; ok_if "bgfm submit exits 0 and prints two job ids" $?
g1=$(awk '$1 == "parc" {print $2}' <<<"$out"); g2=$(awk '$1 == "conn" {print $2}' <<<"$out")
out=$("$BGFM" submit "$T/bad.yaml" 2>>"$T/submit.err")
b1=$(awk '$1 == "parc" {print $2}' <<<"$out"); b2=$(awk '$1 == "conn" {print $2}' <<<"$out")
[ -n "$g1" ] && [ -n "$g2" ] && [ -n "$b1" ] && [ -n "$b2" ] || { notok "job ids"; cat "$T/submit.err"; exit 1; }
check "second stage waits on the first (afterok)" bash -c "scontrol show job $g2 -o | grep -q 'Dependency=afterok:${g1}'"

# ---- 2. the requeue loop of a generated pretrain script, with a stand-in bgfm:
# the first run waits for a signal, "checkpoints" and exits 75; the rerun exits 0.
cat >"$T/fakebgfm" <<'EOF'
#!/bin/bash
m=$FAKE_MARK
echo "fake-bgfm $* restart=${SLURM_RESTART_COUNT:-0} ntasks=${SLURM_NTASKS:-?}"
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  trap 'echo "fake-bgfm: checkpoint"; touch "$m.ckpt"; exit 75' USR1 TERM
  touch "$m.started"
  for _ in $(seq 1200); do sleep 0.05; done
  exit 1
fi
[ -e "$m.ckpt" ] || exit 4
touch "$m.done"
EOF
chmod +x "$T/fakebgfm"
cat >"$T/pre.yaml" <<EOF
name: pre
workdir: $T/workpre
inputs: {bids: $T/bids}
atlases:
  - {name: aal, path: /usr/share/mricron/templates/aal.nii.gz}
stages:
  - {name: parc, uses: parcellate}
  - {name: conn, uses: connectivity}
  - {name: pretrain, uses: pretrain}
slurm: {ntasks_per_node: 1, mem: 500M, time: "5", signal_grace: 60}
EOF
if "$BGFM" submit "$T/pre.yaml" --stage pretrain --dry-run >"$T/pre.dry" 2>&1; then
  s=$T/workpre/slurm/pretrain.sbatch
  { grep -qx -e '#SBATCH --signal=B:USR1@60' "$s" && grep -qx -e '#SBATCH --requeue' "$s"; }
  ok_if "generated pretrain script has --signal=B:USR1@60 and --requeue" $?
  sed -i "s|^bgfm=.*|bgfm='$T/fakebgfm'|" "$s"
  p1=$(FAKE_MARK=$T/gen sbatch --parsable "$s")
  # the dependent job checks that it runs only after the requeued job really finished
  p2=$(sbatch --parsable --dependency=afterok:"$p1" --kill-on-invalid-dep=yes -n 1 --mem=100M \
       -o "$T/dep-%j.out" --wrap "test -e '$T/gen.done' && touch '$T/gen.dep'")
  if wait_file "$T/gen.started" 40; then
    scancel --batch --signal=USR1 "$p1"
    wait_gone "$p2" 60
    check "generated script: exit 75 -> requeued once, then COMPLETED" has_state "$p1" 'COMPLETED 0:0 * 1'
    check "generated script: checkpoint, then rerun with SLURM_RESTART_COUNT=1" [ -e "$T/gen.ckpt" -a -e "$T/gen.done" ]
    { [ -e "$T/gen.dep" ] && has_state "$p2" 'COMPLETED 0:0*'; }; ok_if "afterok dependent of a requeued job waits for its real end and runs" $?
    check "both runs logged (open-mode=append)" \
      [ "$(grep -c '^bgfm-job: job' "$T/workpre/slurm/pre-pretrain-$p1.out")" = 2 ]
  else
    notok "generated pretrain job started"; cat "$T"/workpre/slurm/*.out 2>/dev/null | tail -20
  fi
  # scancel (SIGTERM, no SIGUSR1): checkpoint, but the job must stay cancelled
  p3=$(FAKE_MARK=$T/gen3 sbatch --parsable "$s")
  if wait_file "$T/gen3.started" 40; then
    scancel "$p3"
    wait_file "$T/gen3.ckpt" 20
    sleep 3   # a requeue would show as PENDING (BeginTime) by now
    { has_state "$p3" 'CANCELLED * 0' && grep -q 'not requeued' "$T/workpre/slurm/pre-pretrain-$p3.out"; }; ok_if "scancel of a pretrain job: checkpointed, stays CANCELLED, not requeued" $?
  else
    notok "second generated pretrain job started"
  fi
else
  notok "bgfm submit --dry-run of a pipeline with a pretrain stage"; cat "$T/pre.dry"
fi

# ---- 3. the chained pipelines (submitted first, finished by now or soon)
"$LIB" wait "$D" "$g2" 60 >"$T/g2.state"; rc=$?
{ [ "$rc" -eq 0 ] && has_state "$g1" 'COMPLETED 0:0*'; }; ok_if "good pipeline: both jobs COMPLETED" $?
check "parc wrote timeseries.h5 and manifest.json" [ -s "$T/work/parc/timeseries.h5" -a -s "$T/work/parc/manifest.json" ]
check "conn wrote index.h5 and manifest.json" [ -s "$T/work/conn/index.h5" -a -s "$T/work/conn/manifest.json" ]
check "parc ran as one 2-rank MPI job under srun (manifest ranks 2)" \
  grep -q '"ranks": 2' "$T/work/parc/manifest.json"
{ grep -q 'launcher srun' "$T/work/slurm/good-parc-$g1.out" && grep -q 'launcher mpirun' "$T/work/slurm/good-conn-$g2.out"; }; ok_if "parc used srun, conn used mpirun (logs in WORKDIR/slurm)" $?
check "OPENBLAS_NUM_THREADS set in the script" grep -qx 'export OPENBLAS_NUM_THREADS=1' "$T/work/slurm/parc.sbatch"

wait_gone "$b2" 60
check "bad pipeline: first stage FAILED with exit 3 (bad input data)" has_state "$b1" 'FAILED 3:0*'
{ has_state "$b2" 'CANCELLED*Dependency*' && [ ! -e "$T/workbad/conn" ] && [ ! -e "$T/workbad/slurm/bad-conn-$b2.out" ]; }; ok_if "bad pipeline: second stage cancelled, never ran (kill-on-invalid-dep)" $?
check "bad pipeline: the failure is explained in the job log" \
  grep -q 'error' "$T/workbad/slurm/bad-parc-$b1.out"

# ---- 4. the one-allocation template, on a fresh workdir. Its time-limit warning
# (USR1 300 s before the limit) would be due at once with --time=5 and, on a slow run
# (make check's sanitizers), stop the pipeline between stages for a requeue (exit 75,
# tests/e2e/pretrain_signal.sh); it is moved to 30 s before the limit, never reached.
sed -e "s|$T/work|$T/work1|" "$T/good.yaml" >"$T/one.yaml"
j=$(sbatch --parsable --ntasks-per-node=2 --cpus-per-task=1 --mem=1G --time=5 --signal=B:USR1@30 \
    -o "$T/one-%j.out" "$ROOT/jobs/slurm/pipeline.sbatch" "$T/one.yaml")
"$LIB" wait "$D" "$j" 150 >/dev/null; rc=$?
{ [ "$rc" -eq 0 -a -s "$T/work1/parc/timeseries.h5" -a -s "$T/work1/conn/index.h5" ] && grep -q 'launcher srun' "$T/one-$j.out"; }; r1=$?; ok_if "jobs/slurm/pipeline.sbatch runs the whole pipeline in one job" $r1
[ $r1 -eq 0 ] || { echo "# wait rc $rc; job log:"; tail -n 8 "$T/one-$j.out" 2>/dev/null | sed 's/^/#   /'; }

# ---- 5. the requeue loop of the pretrain template (bgfm stand-in via BGFM). The
# template asks for USR1 600 s before its time limit; with --time=5 that would be due at
# once and could kill the stand-in before its trap is set, so the warning is moved to 30 s
# before the limit (never reached here): the test's own scancel --signal=USR1 is the one.
j=$(BGFM=$T/fakebgfm FAKE_MARK=$T/tpl sbatch --parsable --nodes=1 --ntasks-per-node=1 --cpus-per-task=1 \
    --mem=200M --time=5 --signal=B:USR1@30 -o "$T/tpl-%j.out" "$ROOT/jobs/slurm/pretrain.sbatch" "$T/pre.yaml" pretrain)
if wait_file "$T/tpl.started" 40; then
  scancel --batch --signal=USR1 "$j"
  "$LIB" wait "$D" "$j" 150 >/dev/null; rc=$?
  { [ "$rc" -eq 0 -a -e "$T/tpl.ckpt" -a -e "$T/tpl.done" ] && has_state "$j" '* 1'; }; ok_if "jobs/slurm/pretrain.sbatch: exit 75 -> requeued, rerun COMPLETED" $?
else
  notok "pretrain template job started"; tail -20 "$T"/tpl-*.out 2>/dev/null
fi

check "node not drained" bash -c "! '$LIB' drained '$D'"
echo "# slurm tests took $(( $(date +%s) - t0 )) s before tear-down"
