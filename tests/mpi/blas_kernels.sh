#!/usr/bin/env bash
# blas_kernels.sh: ranks that run different OpenBLAS kernels (a heterogeneous allocation;
# here forced with OPENBLAS_CORETYPE per rank, two kernels every x86-64 CPU runs) make
# rank 0 warn once, naming both and the fix; the run still completes; the manifest names
# rank 0's kernel. Ranks on one kernel: no warning. A checkpoint records the kernel that
# wrote it, and a resume on another kernel says so (a requeue onto another kind of node).
# docs/pretrain.md "Another machine".
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE WORKDIR EVERY [MORE]: the pipeline, checkpoints every EVERY steps, MORE options
PIPE_NAME=bk PIPE_SEED=4 pipeline_yaml "$1" "$2" "{windows: {length: 20, stride: 10}}" \
  "{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 4, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: $3, warmup: 1${4:-}}}"
}
mk "$T/p.yaml" "$T/w" 0
run_mixed() {
  timeout 300 mpirun --oversubscribe -np 1 env OPENBLAS_CORETYPE=Prescott "$BGFM" run "$@" : \
    -np 1 env OPENBLAS_CORETYPE=Nehalem "$BGFM" run "$@"
}
run_mixed "$T/p.yaml" --quiet >"$T/o1" 2>&1
check "two kernels: the pipeline completes (rc 0)" test $? -eq 0
check "two kernels: rank 0 warns, naming both kernels, the ranks and OPENBLAS_CORETYPE" \
  grep -q "the ranks run different OpenBLAS kernels (Prescott on rank 0, Nehalem on rank 1; 1 of 2 ranks differ from rank 0).*set OPENBLAS_CORETYPE" "$T/o1"
check "two kernels: said once" test "$(grep -c 'different OpenBLAS kernels' "$T/o1")" -eq 1
for s in parc conn pre; do
  check "$s: manifest names rank 0's kernel (Prescott)" grep -q '"blas": "OpenBLAS .* Prescott ' "$T/w/$s/manifest.json"
done
timeout 300 $MPIRUN 2 "$BGFM" run "$T/p.yaml" --force --quiet >"$T/o2" 2>&1
check "one kernel on both ranks: rc 0" test $? -eq 0
check "one kernel on both ranks: no warning" bash -c "! grep -q 'different OpenBLAS kernels' '$T/o2'"
run_mixed "$T/p.yaml" --dry-run >"$T/o3" 2>&1
check "--dry-run (writes nothing) does not ask the ranks" bash -c "! grep -q 'different OpenBLAS kernels' '$T/o3'"
# resume_from a checkpoint written on another kernel: warned, naming both; on the same: not
mk "$T/pa.yaml" "$T/wa" 1
timeout 300 mpirun --oversubscribe -np 2 -x OPENBLAS_CORETYPE=Prescott "$BGFM" run "$T/pa.yaml" --quiet >"$T/oa" 2>&1
check "checkpoints written on Prescott: rc 0" test $? -eq 0
ck=$(ls "$T"/wa/pre/checkpoints/ckpt-*.h5 | tail -1)
check "the checkpoint's blas attribute names Prescott" $PY -c "import h5py, sys; b = h5py.File(sys.argv[1], 'r').attrs['blas']; b = b.decode() if isinstance(b, bytes) else b; assert b.startswith('OpenBLAS ') and ' Prescott ' in b, b" "$ck"
mk "$T/pb.yaml" "$T/wb" 1 ", resume_from: $T/wa/pre/checkpoints"
timeout 300 mpirun --oversubscribe -np 2 -x OPENBLAS_CORETYPE=Nehalem "$BGFM" run "$T/pb.yaml" >"$T/ob" 2>&1
check "resumed on Nehalem: rc 0" test $? -eq 0
check "resumed on Nehalem: from that checkpoint" grep -q "pretrain: resuming from $ck" "$T/ob"
check "resumed on Nehalem: warned once, naming both kernels and OPENBLAS_CORETYPE" bash -c "[ \$(grep -c 'was written with OpenBLAS .* Prescott .*this run.s rank 0 runs OpenBLAS .* Nehalem .*OPENBLAS_CORETYPE' '$T/ob') -eq 1 ]"
mk "$T/pc.yaml" "$T/wc" 1 ", resume_from: $T/wa/pre/checkpoints"
timeout 300 mpirun --oversubscribe -np 2 -x OPENBLAS_CORETYPE=Prescott "$BGFM" run "$T/pc.yaml" >"$T/oc" 2>&1
check "resumed on Prescott: resumed, no warning" bash -c "grep -q 'pretrain: resuming from' '$T/oc' && ! grep -q 'was written with' '$T/oc'"
