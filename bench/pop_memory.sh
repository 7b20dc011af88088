#!/usr/bin/env bash
# pop_memory.sh: the memory the population head's fit adds to the pretrain stage, per rank
# and over the ranks, against the same stage without a head (pop_rank: 0) in the same run.
# Each atlas's head is fitted on one rank (docs/model.md section 11, "Cost"): that rank
# holds the atlas's n training rows of T FC entries as float and, centred, as double (12 n
# T bytes); every other rank holds only its own block of the rows (4 n T / R bytes) while
# it reads them. Before session 37 every rank gathered and fitted all of them, so the
# ranks' sum of the head's memory was R times one rank's. Prints, per rank, the stage's
# peak RSS with and without the head (metrics.jsonl, `peak_rss_mib`) and the difference (also
# as a multiple of 12 n T: the fit's Gram matrix and eigensolver add to the rows), and the
# sum of the differences over the ranks as a multiple of the largest. Not a test.
#   bench/pop_memory.sh        (RANKS=4, SUBJECTS=200, VOLUMES=60, PARCELS=100)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init pop_memory
cd "$ROOT"
RANKS=${RANKS:-4}
SUBJECTS=${SUBJECTS:-200}
VOLUMES=${VOLUMES:-60}
PARCELS=${PARCELS:-100}
make -s all >/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
TINY_ARGS="--subjects $SUBJECTS --volumes $VOLUMES --parcels $PARCELS --factors 3 --seed 1" \
  bench_tiny_pipeline "{epochs: 1, batch_size: 32, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, pop_rank: 0}" \
  "{windows: {length: 10, stride: 5}}"
sed 's/pop_rank: 0/pop_rank: auto/' "$T/p.yaml" >"$T/pauto.yaml"
mv "$T/p.yaml" "$T/p0.yaml"
mpirun --oversubscribe -np "$RANKS" "$BGFM" run "$T/p0.yaml" --quiet >"$T/log" 2>&1 || { cat "$T/log"; exit 1; }
run() {  # run POP_RANK: the pretrain stage alone (parc and conn done), its metrics line kept
  rm -rf "$T/w/pre" "$T/w/.pre.partial"
  mpirun --oversubscribe -np "$RANKS" "$BGFM" run "$T/p$1.yaml" --quiet >"$T/log$1" 2>&1 ||
    { cat "$T/log$1"; exit 1; }
  grep '"event": "stage", "stage": "pre"' "$T/w/metrics.jsonl" | tail -1 >"$T/m$1.json"
}
run 0
run auto
"$PY" - "$T" "$PARCELS" <<'PY'
import glob, json, sys
import h5py
T, N = sys.argv[1], int(sys.argv[2])
n = 0
for s in sorted(glob.glob(T + "/w/conn/shard-*.h5")):
    with h5py.File(s, "r") as f:
        n += f["graphs/tiny/fc"].shape[0]
t = N * (N - 1) // 2
copy = 12.0 * n * t / 2**20
a, b = (json.load(open(f"{T}/m{k}.json"))["peak_rss_mib"] for k in ("0", "auto"))
print(f"rows: {n} graphs x {t} FC entries; one copy of the fit's rows (12 n T bytes): {copy:.1f} MiB")
print("rank  peak, pop_rank 0  peak, pop_rank auto  added (MiB)  added / copy")
for r, (x, y) in enumerate(zip(a, b)):
    print(f"{r:4d}  {x:15.1f}  {y:18.1f}  {y - x:11.1f}  {(y - x) / copy:12.2f}")
tot = sum(y - x for x, y in zip(a, b))
top = max(y - x for x, y in zip(a, b))
print(f"over the {len(a)} ranks: {tot:.1f} MiB added = {tot / top:.2f} times the most any one "
      f"rank adds (every rank fitting the whole head: about {len(a)})")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
