#!/usr/bin/env bash
# pretrain_resume.sh: exact resume on 2 ranks after kill -9 of every rank at random
# moments (checkpoints every step, widened by BGFM_TEST_CKPT_PAUSE_MS so some kills land
# inside a checkpoint write): the final parameters, AdamW moments and state are
# bit-identical to an uninterrupted run. Then: a corrupted newest checkpoint is skipped
# with a warning (fallback to the previous one, still bit-identical); a restart on 3
# ranks from a 2-rank checkpoint (with: resume_from) continues the loss curve within 1e-4
# relative; resume_from with other options is refused.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
mk() {  # mk FILE WORKDIR CKPT_EVERY [EXTRA with: keys]
PIPE_NAME=rs PIPE_SEED=7 pipeline_yaml "$1" "$2" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {mode: gmae+gcl, epochs: 3, batch_size: 5, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: $3, keep_checkpoints: 3, warmup: 3${4:-}}}"
}
same() { h5_same "$1" "$2" / 100; }  # every dataset bit-identical
# upstream WORKDIR: WORKDIR starts with the uninterrupted run's parcellate and connectivity
# outputs (the same dataset, seed and options: "up to date, skipped"), so its runs are pretrain's
upstream() { share_upstream "$1" "$T/wa"; }
mk "$T/a.yaml" "$T/wa" 1
timeout 60 $MPIRUN 2 "$BGFM" run "$T/a.yaml" --quiet >"$T/oa" 2>&1
check "uninterrupted 2-rank run" test -f "$T/wa/pre/final.h5"
# killed runs: every rank and mpirun get SIGKILL at a random moment
mk "$T/b.yaml" "$T/wb" 1
export BGFM_TEST_CKPT_PAUSE_MS=120
upstream "$T/wb"
kills=0 intmp=0 last=""  # last: the log of the run that completed the stage
for i in 1 2 3 4; do
  [ -d "$T/wb/pre" ] && break
  delay=$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.7 + (r % 100) / 100 }')
  $MPIRUN 2 "$BGFM_T" run "$T/b.yaml" >"$T/ob$i" 2>&1 &   # BGFM_TEST_CKPT_PAUSE_MS
  mp=$!
  sleep $delay
  kids=$(pgrep -P $mp)
  kill -9 $kids $mp 2>/dev/null
  wait $mp 2>/dev/null
  kills=$((kills + 1))
  ls "$T/wb/.pre.partial/checkpoints/"*.tmp >/dev/null 2>&1 && intmp=$((intmp + 1))
  echo "# kill $kills after ${delay}s: $(ls "$T/wb/.pre.partial/checkpoints/" 2>/dev/null | tr '\n' ' ')"
  [ -d "$T/wb/pre" ] && last=$T/ob$i  # this run resumed and finished before its kill
done
check "killed $kills times; at least one kill landed inside a checkpoint write ($intmp)" test $intmp -ge 1
timeout 60 $MPIRUN 2 "$BGFM" run "$T/b.yaml" >"$T/ob2" 2>&1
[ -n "$last" ] || last=$T/ob2
check "resumed after the kills and completed" bash -c "grep -q 'resuming from' '$last' && test -f '$T/wb/pre/final.h5'"
check "no interrupted write left behind" bash -c "! ls '$T/wb/pre/checkpoints/' | grep -q tmp"
check "killed and resumed == uninterrupted (bitwise: parameters, moments, state)" same "$T/wa/pre/final.h5" "$T/wb/pre/final.h5"
unset BGFM_TEST_CKPT_PAUSE_MS
# corrupted newest checkpoint: fall back to the previous one
mk "$T/c.yaml" "$T/wc" 4
upstream "$T/wc"
BGFM_TEST_STOP_AFTER=10 timeout 60 $MPIRUN 2 "$BGFM_T" run "$T/c.yaml" --quiet >"$T/oc" 2>&1
[ $? -eq 75 ] || sed 's/^/#   /' "$T/oc" | grep -v '^#   *$' | head -8
check "stopped at step 10 (exit 75) with checkpoints 4, 8, 10" bash -c "ls '$T/wc/.pre.partial/checkpoints' | tr '\n' ' ' | grep -q 'ckpt-10.h5 ckpt-4.h5 ckpt-8.h5'"
cp -r "$T/wc/.pre.partial/checkpoints" "$T/saved"
$PY - "$T/wc/.pre.partial/checkpoints/ckpt-10.h5" <<'PYEOF'
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    off = f["model/enc/0/ffn/W1"].id.get_offset()
with open(sys.argv[1], "r+b") as fp:
    fp.seek(off + 21); b = fp.read(1); fp.seek(off + 21); fp.write(bytes([b[0] ^ 0x40]))
PYEOF
timeout 60 $MPIRUN 2 "$BGFM" run "$T/c.yaml" >"$T/oc2" 2>&1
rc=$?
check "corrupted ckpt-10 detected (checksum, file named), fell back to ckpt-8, completed" \
  bash -c "[ $rc -eq 0 ] && grep -q 'ckpt-10.h5: checksum mismatch' '$T/oc2' && grep -q 'falling back to the previous checkpoint .*ckpt-8.h5' '$T/oc2'"
mk "$T/a4.yaml" "$T/wa4" 4
upstream "$T/wa4"
timeout 60 $MPIRUN 2 "$BGFM" run "$T/a4.yaml" --quiet >/dev/null 2>&1
check "fallback run == uninterrupted (bitwise)" same "$T/wa4/pre/final.h5" "$T/wc/pre/final.h5"
# another rank count: 3 ranks continue from the 2-rank checkpoint of step 10
mk "$T/d.yaml" "$T/wd" 4 ", resume_from: $T/saved"
upstream "$T/wd"
timeout 60 $MPIRUN 3 "$BGFM" run "$T/d.yaml" >"$T/od" 2>&1
rc=$?
check "3 ranks resume from the 2-rank checkpoint (resume_from)" bash -c "[ $rc -eq 0 ] && grep -q 'resuming from $T/saved/ckpt-10.h5' '$T/od'"
check "3-rank continuation: steps 11-27, losses within 1e-4 relative of the 2-rank run" $PY - "$T/wa4/metrics.jsonl" "$T/wd/metrics.jsonl" <<'PYEOF'
import json, sys
a = {r["step"]: r for r in map(json.loads, open(sys.argv[1])) if "step" in r}
b = [r for r in map(json.loads, open(sys.argv[2])) if "step" in r]
assert [r["step"] for r in b] == list(range(11, 28)), [r["step"] for r in b]
for r in b:
    assert r["ranks"] == 3
    for k in ("loss", "loss_rec", "loss_adj", "loss_cl"):
        assert abs(r[k] - a[r["step"]][k]) <= 1e-4 * abs(a[r["step"]][k]) + 1e-12, (r["step"], k)
PYEOF
mk "$T/e.yaml" "$T/we" 4 ", resume_from: $T/saved, lr: 0.002"
upstream "$T/we"
timeout 60 $MPIRUN 3 "$BGFM" run "$T/e.yaml" >"$T/oe" 2>&1
rc=$?
check "resume_from a checkpoint of other options is refused (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'written by another configuration' '$T/oe'"
