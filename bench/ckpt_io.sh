#!/usr/bin/env bash
# ckpt_io.sh: checkpoint write bandwidth of the pretrain stage (parallel HDF5, every
# rank writing its row range of every tensor, block SHA-256, fsync, rename) for a model
# of >= 100 MB of state (H=512, F=2048, L=2, Ld=1: parameters + AdamW m + v), on 1 and 2
# ranks, against a plain sequential write of the same bytes with dd (with and without
# conv=fsync) on the same file system. keep_checkpoints: 2 (the deletion of the oldest is timed too).
# Not a test: figures for docs/performance.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init ckpt
H=${H:-512}; F=${F:-2048}
bench_tiny_pipeline "{mode: gmae+gcl, epochs: 4, batch_size: 8, hidden: $H, heads: 8, ffn: $F, layers: 2, decoder_layers: 1, proj: 128, n_max: 400, checkpoint_every: 1, keep_checkpoints: 2, warmup: 2}"
"$BGFM" run "$T/p.yaml" --only parc --quiet
"$BGFM" run "$T/p.yaml" --only conn --quiet
rm -f "$T/w/conn/"*.h5
$PY "$ROOT/tests/reference/model_graphs.py" "$T/w/conn/index.h5" "aal:8:16" --seed 1
for np in 1 2; do
  rm -rf "$T/w/pre" "$T/w/.pre.partial" "$T/w/metrics.jsonl"
  mpirun --oversubscribe --bind-to none -np $np "$BGFM" run "$T/p.yaml" --only pre --quiet
  cp "$T/w/metrics.jsonl" "$T/m$np.jsonl"
done
bytes=$(stat -c %s "$T/w/pre/final.h5")
mb=$(( (bytes + 1048575) / 1048576 ))
t0=$(date +%s.%N); dd if=/dev/zero of="$T/dd" bs=1M count=$mb conv=fsync status=none; t1=$(date +%s.%N)
rm -f "$T/dd"
t2=$(date +%s.%N); dd if=/dev/zero of="$T/dd" bs=1M count=$mb status=none; t3=$(date +%s.%N)
rm -f "$T/dd"
$PY - "$T" "$bytes" "$t0" "$t1" "$t2" "$t3" <<'PYEOF'
import json, sys, statistics as st
T, nbytes = sys.argv[1], int(sys.argv[2])
t0, t1, t2, t3 = map(float, sys.argv[3:7])
dd_sync, dd_plain = nbytes / (t1 - t0) / 1e6, nbytes / (t3 - t2) / 1e6
print(f"checkpoint file: {nbytes / 1e6:.1f} MB (parameters + AdamW m + v, float32)")
print(f"dd sequential write of the same bytes: {dd_sync:8.1f} MB/s with conv=fsync, {dd_plain:8.1f} MB/s without")
for np in (1, 2):
    steps = [json.loads(l) for l in open(f"{T}/m{np}.jsonl") if '"step"' in l]
    io = st.median(r["io_s"] for r in steps[1:])
    bw = nbytes / io / 1e6
    print(f"{np} rank(s): checkpoint write median {io * 1e3:7.1f} ms = {bw:8.1f} MB/s "
          f"({100 * bw / dd_sync:5.1f}% of dd+fsync, {100 * bw / dd_plain:5.1f}% of plain dd; target >= 50%)")
PYEOF
