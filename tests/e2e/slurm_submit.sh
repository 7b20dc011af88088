#!/usr/bin/env bash
# slurm_submit.sh: `bgfm submit` without a Slurm: a stand-in sbatch (BGFM_SBATCH) records
# each argv, so the chaining, --stage, --dry-run, rank-0-only submission under mpirun and
# the refusal of hostile values are checked fast. Not a Slurm test (slurm_local.sh is).
source "$(dirname "$0")/../lib/tap.sh"
ok_if() { if [ "$2" -eq 0 ]; then ok "$1"; else notok "$1"; fi; }  # ok_if NAME STATUS

# A stand-in sbatch: one line per argument, a blank line per call, ids 101, 102, ...
cat >"$T/sbatch" <<'EOF'
#!/bin/bash
n=$(cat "$FAKE_DIR/count" 2>/dev/null || echo 100); n=$((n + 1)); echo "$n" >"$FAKE_DIR/count"
{ printf '%s\n' "$@"; echo; } >>"$FAKE_DIR/calls"
env | grep -E '^(PMIX_|PMI_|OMPI_COMM_WORLD_|OMPI_MCA_orte_|OMPI_MCA_ess)' >>"$FAKE_DIR/mpienv"
[ -n "${FAKE_FAIL_AT:-}" ] && [ "$n" = "$FAKE_FAIL_AT" ] && { echo "sbatch: error: invalid partition" >&2; exit 1; }
echo "$n;cluster"
EOF
chmod +x "$T/sbatch"
export FAKE_DIR=$T BGFM_SBATCH=$T/sbatch

mkdir -p "$T/bids"
cat >"$T/p.yaml" <<EOF
name: demo
workdir: $T/work
inputs: {bids: bids}
atlases:
  - {name: aal, path: /usr/share/mricron/templates/aal.nii.gz}
stages:
  - {name: parc, uses: parcellate}
  - name: conn
    uses: connectivity
    slurm: {partition: big, cpus_per_task: 2}
slurm: {partition: small, ntasks_per_node: 2, time: "10"}
EOF

out=$("$BGFM" submit "$T/p.yaml" 2>"$T/err"); rc=$?
check "submit exits 0" [ "$rc" -eq 0 ]
check "submit prints '<stage> <job id>' per job" [ "$out" = $'parc 101\nconn 102' ]
want="--parsable
$T/work/slurm/parc.sbatch

--parsable
--dependency=afterok:101
--kill-on-invalid-dep=yes
$T/work/slurm/conn.sbatch"
check "sbatch argv: first alone, second afterok on the first with kill-on-invalid-dep" \
  [ "$(cat "$T/calls")" = "$want" ]
check "scripts written" [ -f "$T/work/slurm/parc.sbatch" -a -f "$T/work/slurm/conn.sbatch" ]
check "stage override merged (conn: partition big, 2 cpus, global ntasks)" \
  grep -qx -e '#SBATCH --partition=big' "$T/work/slurm/conn.sbatch"
check "global value inherited" grep -qx -e '#SBATCH --ntasks-per-node=2' "$T/work/slurm/conn.sbatch"
check "OPENBLAS_NUM_THREADS from cpus_per_task" grep -qx 'export OPENBLAS_NUM_THREADS=2' "$T/work/slurm/conn.sbatch"
check "generated scripts pass bash -n" bash -n "$T/work/slurm/conn.sbatch"

# --stage: only that stage, no dependency
rm -f "$T/calls" "$T/count"
out=$("$BGFM" submit "$T/p.yaml" --stage conn 2>"$T/err")
check "--stage submits one job without dependency" \
  [ "$out" = "conn 101" -a "$(cat "$T/calls")" = $'--parsable\n'"$T/work/slurm/conn.sbatch" ]
expect_rc "--stage of an unknown stage exits 2" 2 "$BGFM" submit "$T/p.yaml" --stage nope 2>/dev/null

# --dry-run: nothing submitted, commands printed
rm -f "$T/calls" "$T/count"
out=$("$BGFM" submit "$T/p.yaml" --dry-run 2>"$T/err"); rc=$?
check "--dry-run exits 0 and calls no sbatch" [ "$rc" -eq 0 -a ! -e "$T/calls" ]
check "--dry-run prints the chained commands" \
  grep -qF -- "--dependency=afterok:\$j1 --kill-on-invalid-dep=yes '$T/work/slurm/conn.sbatch'" <<<"$out"

# rank 0 only under mpirun: one submission per stage, not one per rank
rm -f "$T/calls" "$T/count" "$T/mpienv"
out=$($MPIRUN 2 "$BGFM" submit "$T/p.yaml" 2>"$T/err"); rc=$?
check "under mpirun -np 2: exit 0, two jobs, printed once" \
  [ "$rc" -eq 0 -a "$out" = $'parc 101\nconn 102' -a "$(cat "$T/count")" = 102 ]
check "under mpirun: no MPI runtime variables (PMIX_*, OMPI_COMM_WORLD_* ...) reach sbatch" \
  [ ! -s "$T/mpienv" ]

# sbatch refusing the second job: exit 2, the message names the stage's script
rm -f "$T/calls" "$T/count"
FAKE_FAIL_AT=102 "$BGFM" submit "$T/p.yaml" >"$T/out" 2>"$T/err"; rc=$?
{ [ "$rc" -eq 2 -a "$(cat "$T/out")" = "parc 101" ] && grep -q "rejected $T/work/slurm/conn.sbatch" "$T/err"; }; ok_if "sbatch failure: exit 2, first job id printed, message names the script" $?

# hostile values: exit 2, FILE:LINE:COL message, no script and no sbatch call
i=0
for v in '"x; rm -rf /"' '"$(reboot)"' '"`reboot`"' '"a\nb"'; do
  i=$((i + 1))
  rm -rf "$T/calls" "$T/count" "$T/work"
  sed "s|partition: big|partition: $v|" "$T/p.yaml" >"$T/h.yaml"
  "$BGFM" submit "$T/h.yaml" >"$T/out" 2>"$T/err"; rc=$?
  { [ "$rc" -eq 2 -a ! -e "$T/calls" -a ! -e "$T/work/slurm/parc.sbatch" ] && grep -q "$T/h.yaml:10:[0-9]*: .*stages.conn.slurm.partition" "$T/err"; }; ok_if "hostile partition $v: exit 2, FILE:LINE:COL, nothing written or submitted" $?
done
rm -rf "$T/calls" "$T/work"
sed 's|time: "10"}|time: "10", extra: ["--comment=$(id)"]}|' "$T/p.yaml" >"$T/h.yaml"
"$BGFM" submit "$T/h.yaml" >"$T/out" 2>"$T/err"; rc=$?
{ [ "$rc" -eq 2 -a ! -e "$T/calls" ] && grep -q "$T/h.yaml:11:[0-9]*: .*'slurm.extra'" "$T/err"; }; ok_if "hostile extra line: exit 2 naming slurm.extra" $?
expect_rc "missing pipeline file exits 2" 2 "$BGFM" submit "$T/none.yaml" 2>/dev/null
expect_rc "unknown option exits 2" 2 "$BGFM" submit "$T/p.yaml" --bogus 2>/dev/null
