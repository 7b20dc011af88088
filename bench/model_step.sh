#!/usr/bin/env bash
# model_step.sh: benchmark of one training step (draws + forward + backward + clipping +
# AdamW, mode gmae+gcl, adjacency density ~0.15): bgfm (bench/model_step.c over
# build/libbgfm.a) vs the batched PyTorch float32 implementation
# (tests/reference/model_torch_batched.py), same batch, 1 and 2 threads, two configs;
# both with the region readout (the default), and bgfm again with the mean readout.
# Prints graphs/s (best and median step: the machine is shared, contention only adds
# time), CPU time per step, the step's FLOP rate (docs/model.md formula) against the
# SGEMM rate measured in the same run, the OpenBLAS core, and the peak RSS of each.
# Not a test: figures only (docs/performance.md, section "model", quotes them).
#   bench/model_step.sh [STEPS]      (CONFIGS="H:L:N:B ..." and THREADS="1 2" override)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
STEPS=${1:-${STEPS:-8}}
CONFIGS=${CONFIGS:-"128:2:116:32 256:4:400:16"}
THREADS=${THREADS:-"1 2"}
T=$(mktemp -d /tmp/bgfm-bench-model.XXXXXX); trap 'rm -rf "$T"' EXIT
bench_driver model_step
get() { sed -n "s/^$1 //p" "$2" | head -1; }
for cfg in $CONFIGS; do
  IFS=: read -r H L N B <<<"$cfg"
  steps=$STEPS; [ "$N" -ge 300 ] && steps=$(( STEPS < 4 ? STEPS : 4 ))
  for th in $THREADS; do
    OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th "$T/model_step" "$H" "$L" "$N" "$B" "$steps" 1 >"$T/c.txt"
    OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th OMP_WAIT_POLICY=PASSIVE \
      MALLOC_MMAP_THRESHOLD_=1000000000000 MALLOC_TRIM_THRESHOLD_=1000000000000 \
      $PY tests/reference/model_torch_batched.py "$H" "$L" "$N" "$B" --steps "$steps" --warmup 1 \
      --threads "$th" >"$T/p.txt"
    echo "== H=$H L=$L N=$N B=$B, $th thread(s), gmae+gcl, $steps timed steps (median)"
    [ "$th" = "$(echo $THREADS | cut -d' ' -f1)" ] && {
      echo "   $(get config "$T/c.txt")"
      echo "   openblas: $(get openblas_core "$T/c.txt") ($(get openblas_config "$T/c.txt"))"; }
    awk -v cg="$(get graphs_per_s "$T/c.txt")" -v pg="$(get graphs_per_s "$T/p.txt")" \
        -v cb="$(get graphs_per_s_best "$T/c.txt")" -v pb="$(get graphs_per_s_best "$T/p.txt")" \
        -v cc="$(get cpu_ms_per_step "$T/c.txt")" -v pc="$(get cpu_ms_per_step "$T/p.txt")" \
        -v cr="$(get peak_rss_mb "$T/c.txt")" -v pr="$(get peak_rss_mb "$T/p.txt")" \
        -v gf="$(get step_gflop "$T/c.txt")" -v gb="$(get step_gflops_best "$T/c.txt")" \
        -v sg="$(get sgemm_gflops "$T/c.txt")" -v th="$th" 'BEGIN{
      printf "   graphs/s: best step (median step); CPU ms per step (all threads)\n"
      printf "   bgfm    %8.2f (%8.2f) graphs/s  CPU %8.1f ms  peak RSS %7.1f MB\n", cb, cg, cc, cr
      printf "   pytorch %8.2f (%8.2f) graphs/s  CPU %8.1f ms  peak RSS %7.1f MB\n", pb, pg, pc, pr
      printf "   bgfm / pytorch: %.2fx (%.2fx median) throughput (target > 1), RSS %.2f (target <= 0.33)\n", cb/pb, cg/pg, cr/pr
      split(sg, s, " ")
      printf "   step %.2f GFLOP (docs/model.md formula) -> %.1f GFLOP/s (best step)\n", gf, gb
      printf "   SGEMM in this run (best of reps): %.1f GFLOP/s (B*T x 3H x H), %.1f GFLOP/s (the step'"'"'s GEMM shapes)\n", s[1], s[2]
      printf "   fraction of SGEMM: %.0f%% / %.0f%% (target >= 70%%)\n", 100*gb/s[1], 100*gb/s[2]
      printf "   by CPU time: %.1f GFLOP per CPU-second = %.0f%% / %.0f%% of the per-thread SGEMM rate; bgfm / pytorch CPU time %.2f\n", gf/cc*1e3, 100*gf/cc*1e3*th/s[1], 100*gf/cc*1e3*th/s[2], cc/pc }'
    echo "   bgfm loss checksum $(get loss_checksum "$T/c.txt")"
    # the readout's cost: the same step with the mean readout (the model before issue 12)
    OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th "$T/model_step" "$H" "$L" "$N" "$B" "$steps" 1 mean >"$T/m.txt"
    awk -v r="$(get graphs_per_s_best "$T/c.txt")" -v m="$(get graphs_per_s_best "$T/m.txt")" \
        -v rc="$(get cpu_ms_per_step "$T/c.txt")" -v mc="$(get cpu_ms_per_step "$T/m.txt")" \
      'BEGIN{printf "   cost per graph, region readout + input norm / mean readout: %.3f best step, %.3f CPU time (target <= 1.15)\n", m/r, rc/mc}'
  done
done
