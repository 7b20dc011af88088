#!/usr/bin/env bash
# finetune_resume.sh: the finetune stage resumes exactly (docs/adapt.md "Checkpoints and
# resume"), on 2 ranks: stopped as if signalled after epoch 5 (exit 75, checkpoint
# written) and rerun; killed with SIGKILL (every rank and mpirun) at random moments,
# some inside a checkpoint write (BGFM_TEST_CKPT_PAUSE_MS), and rerun; a corrupted newest
# checkpoint skipped with a warning. Each ends with predictions.csv byte-identical and
# finetune.json equal (but for the timings) to an uninterrupted run.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 10 --volumes 40 --seed 4
FW="{folds: 2, few_shot: [2, all], epochs: 5, patience: 3, batch_size: 6, val_fraction: 0.25, warmup: 3}"
PIPE_NAME=fr PIPE_SEED=3 pipeline_yaml "$T/a.yaml" "$T/wa" "{windows: {length: 10, stride: 5}}" \
  "{name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}" \
  "{name: ft, uses: finetune, with: $FW}"
timeout 120 $MPIRUN 2 "$BGFM" run "$T/a.yaml" --quiet >"$T/oa" 2>&1
check "uninterrupted 2-rank run" test -s "$T/wa/ft/report/predictions.csv"
fresh() {  # fresh NAME: a copy of the workdir without the finetune stage's outputs
  rm -rf "$T/$1"; cp -r "$T/wa" "$T/$1"; rm -rf "$T/$1/ft" "$T/$1/.ft.partial"
  sed "s#$T/wa#$T/$1#" "$T/a.yaml" >"$T/$1.yaml"
}
same() {  # same WORKDIR: the report equals the uninterrupted one
  cmp -s "$T/wa/ft/report/predictions.csv" "$T/$1/ft/report/predictions.csv" &&
  $PY - "$T/wa/ft/report/finetune.json" "$T/$1/ft/report/finetune.json" <<'PYEOF'
import json, sys
def strip(d):
    d.pop("wall_seconds"), d.pop("checkpoint")  # timings; the checkpoint's path names the workdir
    for e in d["encoders"].values():
        for c in e["cells"]: c.pop("seconds")
    return d
a, b = (strip(json.load(open(p))) for p in sys.argv[1:])
assert a == b, "finetune.json differs"
PYEOF
}
# stopped as if signalled after epoch 5 (of 4 cells x <= 5 epochs x 2 encoders)
fresh wb
BGFM_TEST_STOP_AFTER=5 timeout 120 $MPIRUN 2 "$BGFM_T" run "$T/wb.yaml" --quiet >"$T/ob" 2>&1
rc=$?
check "stopped after epoch 5: exit 75, checkpoint ckpt-5.h5 in the kept partial folder" \
  bash -c "[ $rc -eq 75 ] && test -f '$T/wb/.ft.partial/checkpoints/ckpt-5.h5' && grep -q 'ckpt-5.h5 written' '$T/ob'"
timeout 120 $MPIRUN 2 "$BGFM" run "$T/wb.yaml" >"$T/ob2" 2>&1
check "resumed from ckpt-5 and completed" grep -q "resuming from .*ckpt-5.h5" "$T/ob2"
check "stopped and resumed == uninterrupted (predictions bytes, every selection and score)" same wb
# SIGKILL at random moments, some inside checkpoint writes
fresh wc
export BGFM_TEST_CKPT_PAUSE_MS=150
kills=0 withck=0 intmp=0
for i in 1 2 3; do
  [ -d "$T/wc/ft" ] && break
  delay=$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 1 + (r % 100) / 20 }')
  $MPIRUN 2 "$BGFM_T" run "$T/wc.yaml" >>"$T/oc" 2>&1 &
  mp=$!
  sleep $delay
  if kill -0 $mp 2>/dev/null; then
    kids=$(pgrep -P $mp)
    kill -9 $kids $mp 2>/dev/null
    wait $mp 2>/dev/null
    kills=$((kills + 1))
    ls "$T/wc/.ft.partial/checkpoints/" 2>/dev/null | grep -q 'ckpt-[0-9]*\.h5$' && withck=$((withck + 1))
    ls "$T/wc/.ft.partial/checkpoints/"*.tmp >/dev/null 2>&1 && intmp=$((intmp + 1))
    echo "# kill $kills after ${delay}s: $(ls "$T/wc/.ft.partial/checkpoints/" 2>/dev/null | tr '\n' ' ')"
  else
    wait $mp
  fi
done
unset BGFM_TEST_CKPT_PAUSE_MS
[ -d "$T/wc/ft" ] || timeout 120 $MPIRUN 2 "$BGFM" run "$T/wc.yaml" >>"$T/oc" 2>&1
check "killed $kills time(s) by SIGKILL with checkpoints on disk ($withck; $intmp inside a write)" test $withck -ge 1
check "a rerun resumed from a checkpoint and completed" bash -c "grep -q 'resuming from' '$T/oc' && test -s '$T/wc/ft/report/predictions.csv'"
check "killed and resumed == uninterrupted" same wc
# a corrupted newest checkpoint: the previous one is used
fresh wd
BGFM_TEST_STOP_AFTER=6 timeout 120 $MPIRUN 2 "$BGFM_T" run "$T/wd.yaml" --quiet >/dev/null 2>&1
$PY - "$T/wd/.ft.partial/checkpoints/ckpt-6.h5" <<'PYEOF'
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    off = f["extra/head"].id.get_offset()
with open(sys.argv[1], "r+b") as fp:
    fp.seek(off + 13); b = fp.read(1); fp.seek(off + 13); fp.write(bytes([b[0] ^ 0x20]))
PYEOF
timeout 120 $MPIRUN 2 "$BGFM" run "$T/wd.yaml" >"$T/od" 2>&1
check "corrupted ckpt-6 detected (checksum, file named), fell back to ckpt-5" \
  bash -c "grep -q 'ckpt-6.h5: checksum mismatch' '$T/od' && grep -q 'falling back to the previous checkpoint ckpt-5.h5' '$T/od'"
check "fallen back and resumed == uninterrupted" same wd
