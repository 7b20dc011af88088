#!/usr/bin/env bash
# export.sh: `bgfm export` of a ~42 MB encoder (hidden 512, ffn 2048, 3 layers: 10.5 M
# parameters, from a checkpoint of a one-epoch pretrain) against `cp` of a file of the
# same size on the same file system, in the same run. Target (issue 16): export at least
# half the speed of cp, i.e. cp time / export time >= 0.5.
# Like with like: bgfm export makes its output durable (fsync of the file, rename, fsync
# of the folder), as every writer of bgfm does, so the reference is `cp SRC DST` followed
# by `sync DST DIR` (coreutils: fsync of the file and of the folder); and `bgfm export
# --no-sync` (no fsync) against bare `cp`, like with like again. Page cache warm for both (one untimed run of each first); outputs
# removed before every timed run, so both create a new file. PAIRS alternating pairs;
# medians; the load average before and after.
# Not a test: figures for docs/performance.md ("Export").
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init export
PAIRS=${PAIRS:-9}
bench_tiny_pipeline "{mode: gmae+gcl, epochs: 1, batch_size: 8, hidden: 512, heads: 8, ffn: 2048, layers: 3, decoder_layers: 1, proj: 128, n_max: 400, warmup: 1}"
"$BGFM" run "$T/p.yaml" --only parc --quiet
"$BGFM" run "$T/p.yaml" --only conn --quiet
rm -f "$T/w/conn/"*.h5
$PY "$ROOT/tests/reference/model_graphs.py" "$T/w/conn/index.h5" "aal:8:16" --seed 1
"$BGFM" run "$T/p.yaml" --only pre --quiet
CK="$T/w/pre/final.h5"
"$BGFM" export "$CK" --out "$T/src.safetensors" 2>/dev/null # what cp copies: the same size
$PY - "$BGFM" "$CK" "$T" "$PAIRS" <<'PYEOF'
import os, statistics as st, subprocess, sys, time
bgfm, ck, T, pairs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
src, dst, out = f"{T}/src.safetensors", f"{T}/o/copy.safetensors", f"{T}/o/model.safetensors"
os.makedirs(f"{T}/o")
cmds = {
    "cp + sync": [["cp", src, dst], ["sync", dst, f"{T}/o"]],
    "cp": [["cp", src, dst]],
    "bgfm export": [[bgfm, "export", ck, "--out", out]],
    "export --no-sync": [[bgfm, "export", ck, "--out", out, "--no-sync"]],
}
def run(name):
    for f in (dst, out):
        if os.path.exists(f): os.unlink(f)
    subprocess.run(["sync"], check=True)  # no earlier run's dirty pages in the timed one
    t0 = time.perf_counter()
    for c in cmds[name]:
        r = subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode: sys.exit(f"{' '.join(c)}: exit {r.returncode}: {r.stderr.decode()}")
    return time.perf_counter() - t0
load0 = open("/proc/loadavg").read().split()[:3]
for name in cmds:  # warm: page cache, binaries
    run(name)
times = {name: [] for name in cmds}
for i in range(pairs):
    for name in cmds:
        times[name].append(run(name))
load1 = open("/proc/loadavg").read().split()[:3]
size = os.path.getsize(src)
print(f"checkpoint {os.path.getsize(ck) / 1e6:.1f} MB (parameters + AdamW m + v); "
      f"exported encoder {size / 1e6:.1f} MB; {pairs} alternating runs of each")
med = {n: st.median(v) for n, v in times.items()}
for n, v in times.items():
    print(f"{n:16s}: median {med[n] * 1e3:7.1f} ms (min {min(v) * 1e3:6.1f}, max {max(v) * 1e3:6.1f})"
          f" = {size / med[n] / 1e6:7.1f} MB/s")
r = med["cp + sync"] / med["bgfm export"]
print(f"export speed / (cp + sync) speed: {r:.2f} (target >= 0.5: {'met' if r >= 0.5 else 'NOT met'}; "
      f"like with like: both fsync)")
print(f"export speed / bare cp speed    : {med['cp'] / med['bgfm export']:.2f} (export still fsyncs, cp does not)")
r2 = med["cp"] / med["export --no-sync"]
print(f"export --no-sync / bare cp speed : {r2:.2f} (target >= 0.5: {'met' if r2 >= 0.5 else 'NOT met'}; "
      f"like with like: neither fsyncs)")
print(f"load average before: {' '.join(load0)}, after: {' '.join(load1)}")
PYEOF
