#!/usr/bin/env bash
# scaling.sh: the measurements behind docs/scaling.md: `bgfm scale` strong scaling of
# parcellate, connectivity and pretrain on 1, 2 and 4 (oversubscribed) ranks and weak
# scaling of pretrain, an MPI ping-pong/all-reduce/all-gather microbenchmark
# (bench/allreduce.c) on shared memory and, when network namespaces are permitted (root),
# over TCP between two nodes of the simulated cluster (tests/lib/netns-cluster.sh), the
# per-graph compute of the jobs/braingfm.yaml model (bench/model_step.c: H=256, L=4,
# F=1024, 8 heads; its gradient buckets and the window the tail's all-reduce overlaps),
# then the analytic model (bench/scaling_model.py) calibrated with those figures: once
# with an assumed 100 Gb/s network, once with the measured TCP figures.
# Not a test: figures and PNGs. About 6-8 minutes on 2 cores.
#   bench/scaling.sh [OUT]     (default build/bench-data/scaling; DOCS=1 copies the model
#                               PNG and the strong-scaling PNGs of pretrain into docs/)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BD=${BGFM_BUILD:-build}
BGFM="$ROOT/$BD/bgfm"
PY=/usr/bin/python3
OUT=$(mkdir -p "${1:-build/bench-data/scaling}" && cd "${1:-build/bench-data/scaling}" && pwd)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d /tmp/bgfm-bench-scale.XXXXXX); trap 'rm -rf "$T"' EXIT
make -s BUILD="$BD" "$BD/bgfm" "$BD/libbgfm.a" >/dev/null
echo "# $(date -u +%FT%TZ) host $(hostname) $(nproc --all) CPUs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. MPI microbenchmark (2 ranks, shared memory on this machine)
PKGS="hdf5-openmpi yaml-0.1 openblas libisal zlib"
FLAGS="-std=c17 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Wshadow -Wmissing-prototypes -Wvla -Wdouble-promotion -Wcast-qual -Werror -O2 -g -march=native"
# shellcheck disable=SC2086
mpicc $FLAGS bench/allreduce.c -o "$T/allreduce"
mpirun -np 2 --bind-to core "$T/allreduce" $((16 << 20)) 40 | tee "$OUT/allreduce-np2.txt" | grep '^fit'
read -r A_AR B_AR < <(awk '$1 == "fit" && $2 == "allreduce" {print $6, $8}' "$OUT/allreduce-np2.txt")
# the same over TCP, one rank on each of two simulated nodes (skipped unless root)
A_TCP= B_TCP=
source tests/lib/netns-cluster.sh
trap 'nsc_down; rm -rf "$T"' EXIT
if nsc_up 2; then
  nsc_mpirun 2 2 -- "$T/allreduce" $((16 << 20)) 40 | tee "$OUT/allreduce-tcp2.txt" | grep '^fit' | sed 's/^/tcp: /'
  read -r A_TCP B_TCP < <(awk '$1 == "fit" && $2 == "allreduce" {print $6, $8}' "$OUT/allreduce-tcp2.txt")
  nsc_down
else
  echo "# TCP microbenchmark skipped: $NSC_WHY"
fi

# ---- 2. per-graph compute of the jobs/braingfm.yaml model, one rank, one core
# shellcheck disable=SC2086
mpicc $FLAGS -Iinclude $(pkg-config --cflags $PKGS) bench/model_step.c -o "$T/model_step" \
  "$BD/libbgfm.a" $(pkg-config --libs $PKGS) -llapacke -lnifti2 -lm
"$T/model_step" 256 4 116 16 4 1 region 1024 8 >"$OUT/model_step.txt"
get() { sed -n "s/^$1 //p" "$OUT/model_step.txt" | head -1; }
echo "model_step: $(get config)"
GPS=$(get graphs_per_s_best); PARAMS=$(get config | sed 's/.*params=\([0-9]*\).*/\1/')
GFLOPS=$(get sgemm_gflops | cut -d' ' -f1)
# c_g from the CPU time per step (what a rank with its own core would take; the wall
# time of a shared machine adds other processes' turns), the buckets, the overlap window
CG=$($PY -c "print($(get cpu_ms_per_step) / 16 / 1e3)")
read -r HEAD TAIL < <(get grad_buckets | sed 's/head=//; s/tail=//')
WIN=$($PY -c "print($(get overlap_window_ms_median) / $(get step_ms_median))")
echo "  best step: $GPS graphs/s (median $(get graphs_per_s)); CPU $(get cpu_ms_per_step) ms per step of 16 (c_g $CG s); SGEMM $GFLOPS GFLOP/s"
echo "  gradient buckets: head $HEAD, tail $TAIL parameters; overlap window $(get overlap_window_ms_median) ms of a $(get step_ms_median) ms step ($WIN)"

# ---- 3. bgfm scale on a synthetic cohort (16 subjects x 120 volumes, 3 mm, 2 atlases)
"$BGFM" synth --out "$T/data" --subjects 16 --volumes 120 --seed 7 --quiet
cat >"$T/meas.yaml" <<YAML
name: scalemeas
workdir: $T/work
seed: 7
inputs: {bids: $T/data}
atlases:
  - {name: aal116, path: /usr/share/mricron/templates/aal.nii.gz}
  - {name: ho48, path: /usr/share/mricron/templates/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz}
stages:
  - name: parcellate
    uses: parcellate
    with: {detrend: true, high_pass: 0.01, low_pass: 0.1, standardize: zscore}
  - name: connectivity
    uses: connectivity
    with: {windows: {length: 40, stride: 4}, rwse_steps: 5}
  - name: pretrain
    uses: pretrain
    with: {mode: gmae+gcl, epochs: 2, batch_size: 32, hidden: 64, heads: 4, ffn: 128, proj: 32,
           n_max: 0, warmup: 5, checkpoint_every: 0}
YAML
for s in parcellate connectivity pretrain; do
  "$BGFM" scale "$T/meas.yaml" --stage $s --ranks 1,2,4 --repeat 3 --out "$OUT" --quiet
done
# weak: 4 subjects per rank (4, 8, 16 subjects), pretrain batch 16 per rank
sed -e 's/batch_size: 32/batch_size: 16/' "$T/meas.yaml" >"$T/weak.yaml"
"$BGFM" scale "$T/weak.yaml" --stage pretrain --mode weak --subjects-per-rank 4 --volumes 120 \
  --ranks 1,2,4 --repeat 3 --out "$OUT/weak" --quiet
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 4. calibration figures from the measured pretrain runs
read -r GB PMEAS STEPS2 COMM2 < <($PY - "$OUT" <<'PYEOF'
import csv, json, sys, h5py
out = sys.argv[1]
ev = [json.loads(l) for l in open(f"{out}/pretrain-strong-np1/work/metrics.jsonl") if '"event"' in l][-1]
rows = {int(r["ranks"]): r for r in csv.DictReader(open(f"{out}/scaling-pretrain-strong.csv"))}
graph_bytes = ev["bytes_read"] / float(rows[1]["items"])
f = h5py.File(f"{out}/pretrain-strong-np1/work/pretrain/final.h5", "r")
n = []
f["model"].visit(lambda k: n.append(f["model"][k].size) if isinstance(f["model"][k], h5py.Dataset) else None)
print(f"{graph_bytes:.0f} {sum(n)} {rows[2]['steps']} {rows[2]['comm_s']}")
PYEOF
)
echo "pretrain (measured config): $PMEAS parameters, $GB bytes read per graph; 2 ranks: comm $COMM2 s over $STEPS2 steps"
$PY - "$PMEAS" "$A_AR" "$B_AR" "$STEPS2" "$COMM2" <<'PYEOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sm", "bench/scaling_model.py")
sm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sm)
P, a, b, steps, comm = (float(x) for x in sys.argv[1:])
# the measured configuration: 2 ranks, batch 32 (16 per rank), projection 32; communication
# only (c_g = 0: nothing overlapped), so an upper bound
m = dict(q=64, alpha_net=0, beta_net=0, alpha_shm=a, beta_shm=b, params=P, proj=32, tail_frac=0.5,
         window_frac=0, c_g=0, gflops=1e9, t_exp=0, graph_bytes=0, pfs_bw=1e30, node_io_bw=1e30,
         ckpt_every=1e30)
pred = sm.step(2, 16, m, overlap=False)["comm"]
print(f"model check, 2 ranks, measured config: predicted comm {pred*1e3:.3f} ms/step, "
      f"measured {comm/steps*1e3:.3f} ms/step (includes waiting for the slower rank)")
PYEOF

# ---- 5. the model: an assumed 100 Gb/s network between nodes, then the measured TCP
MODEL=(c_g="$CG" params="$PARAMS" proj=128 gflops="$GFLOPS" alpha_shm="$A_AR" beta_shm="$B_AR"
       graph_bytes="$GB" tail_frac="$($PY -c "print($TAIL / ($HEAD + $TAIL))")" window_frac="$WIN")
$PY bench/scaling_model.py "${MODEL[@]}" --csv "$OUT/model.csv" --png "$OUT/scaling-model.png"
if [ -n "$A_TCP" ]; then
  echo "# the same with the simulated cluster's TCP between nodes (alpha $A_TCP s, beta $B_TCP s/B)"
  $PY bench/scaling_model.py "${MODEL[@]}" alpha_net="$A_TCP" beta_net="$B_TCP" --csv "$OUT/model-tcp.csv"
fi
if [ "${DOCS:-0}" = 1 ]; then
  cp "$OUT/scaling-model.png" docs/scaling-model.png
  for f in speedup efficiency split; do cp "$OUT/scaling-pretrain-strong-$f.png" "docs/scaling-pretrain-strong-$f.png"; done
  echo "copied the PNGs into docs/"
fi
for f in "$OUT"/scaling-*.csv "$OUT"/weak/scaling-*.csv; do echo "== $f"; cat "$f"; done
