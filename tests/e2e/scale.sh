#!/usr/bin/env bash
# scale.sh: `bgfm scale` on a tiny pipeline, ranks 1,2: the CSV's columns and values are
# recomputed in Python from each run's own metrics.jsonl (speedup = t1/tR, efficiency,
# compute/comm/io sums of the pretrain steps, graphs = epochs x upstream graphs), weak mode
# grows the cohort with the ranks, the PNGs exist, bad arguments exit 2.
# Not a measurement: the timings of a tiny run on a shared machine mean nothing.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 4 --volumes 40
PIPE_NAME=sc PIPE_SEED=3 pipeline_yaml "$T/p.yaml" "$T/w" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {mode: gmae+gcl, epochs: 3, batch_size: 5, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 0, warmup: 2}}"

# verify OUT STAGE MODE: recompute every CSV value from the metrics files
verify() {
$PY - "$1" "$2" "$3" <<'PYEOF'
import csv, json, math, sys
out, stage, mode = sys.argv[1:4]
rows = list(csv.DictReader(open(f"{out}/scaling-{stage}-{mode}.csv")))
want = ["stage", "mode", "ranks", "oversubscribed", "items", "items_unit", "wall_s",
        "items_per_s", "speedup", "efficiency", "compute_s", "comm_s", "io_s", "steps"]
assert list(rows[0].keys()) == want, list(rows[0].keys())
assert [int(r["ranks"]) for r in rows] == [1, 2], rows
close = lambda a, b: abs(a - b) <= 2e-5 * max(abs(a), abs(b)) + 1e-12
def lines(path):
    return [json.loads(l) for l in open(path) if l.strip()]
t = {}
for r in rows:
    R = int(r["ranks"])
    assert r["stage"] == stage and r["mode"] == mode and r["oversubscribed"] == "0"
    m = [x for x in lines(f"{out}/{stage}-{mode}-np{R}/work/metrics.jsonl") if x.get("stage") == stage]
    ev = [x for x in m if x.get("event") == "stage"]
    assert len(ev) == 1 and ev[0]["status"] == 0 and ev[0]["ranks"] == R, ev
    wall = ev[0]["wall_s"]
    assert close(float(r["wall_s"]), wall), (r["wall_s"], wall)
    items = ev[0]["items"]
    if stage == "pre":
        steps = [x for x in m if "step" in x]
        assert ev[0]["items_unit"] == "steps" and int(r["steps"]) == len(steps) == items
        up = [x for x in lines(f"{out}/prep/metrics.jsonl") if x.get("stage") == "conn" and x.get("event") == "stage"]
        items = 3 * up[-1]["items"]            # epochs x graphs
        assert r["items_unit"] == "graphs"
        for k in ("compute_s", "comm_s", "io_s"):
            assert close(float(r[k]), sum(x[k] for x in steps)), k
    elif stage == "conn":
        own = [x for x in m if "compute_s_sum" in x][0]
        assert close(float(r["compute_s"]), own["compute_s_sum"] / R)
        assert close(float(r["io_s"]), own["write_s_sum"] / R) and r["comm_s"] == ""
    else:
        assert r["compute_s"] == r["comm_s"] == r["io_s"] == "", r
        assert r["items_unit"] == "subjects"
    assert close(float(r["items"]), items), (r["items"], items)
    assert close(float(r["items_per_s"]), items / wall)
    t[R] = (wall, items)
(t1, n1), (t2, n2) = t[1], t[2]
sp = (n2 / t2) / (n1 / t1)                     # strong: n1 == n2, so t1 / t2
if mode == "strong":
    assert n1 == n2 and close(sp, t1 / t2)
else:
    assert n2 == 2 * n1 and close(sp, 2 * t1 / t2)
r1, r2 = rows
assert close(float(r1["speedup"]), 1) and close(float(r1["efficiency"]), 1)
assert close(float(r2["speedup"]), sp), (r2["speedup"], sp)
assert close(float(r2["efficiency"]), sp / 2)
PYEOF
}
pngs() { local f; for f in speedup efficiency split; do
  [ "$(head -c 4 "$1/scaling-$2-$3-$f.png" | od -An -c | tr -d ' ')" = '211PNG' ] || return 1
  [ "$(stat -c %s "$1/scaling-$2-$3-$f.png")" -gt 5000 ] || return 1; done; }

"$BGFM" scale "$T/p.yaml" --stage pre --ranks 1,2 --out "$T/out" --quiet >"$T/o1" 2>&1
check "bgfm scale --stage pre --ranks 1,2 exits 0" test $? -eq 0
check "pretrain CSV: columns and values match the metrics files" verify "$T/out" pre strong
check "pretrain: speed-up, efficiency and split PNGs" pngs "$T/out" pre strong
check "each rank count ran in its own workdir with the upstream linked from prep" \
  bash -c "[ -L '$T/out/pre-strong-np2/work/conn' ] && [ -f '$T/out/pre-strong-np2/work/pre/final.h5' ] && [ ! -e '$T/w' ]"
"$BGFM" scale "$T/p.yaml" --stage conn --ranks 1,2 --out "$T/out" --quiet >"$T/o2" 2>&1
check "connectivity CSV (compute/io from the stage's per-rank sums)" verify "$T/out" conn strong

# weak: a bgfm synth cohort of 1 subject per rank (aal on the 3 mm grid)
cat >"$T/q.yaml" <<YAML
name: scw
workdir: $T/w2
inputs: {bids: $T/none}
atlases:
  - {name: aal, path: /usr/share/mricron/templates/aal.nii.gz}
stages:
  - {name: parc, uses: parcellate}
YAML
"$BGFM" scale "$T/q.yaml" --stage parc --ranks 1,2 --mode weak --subjects-per-rank 1 --volumes 12 \
  --out "$T/outw" --quiet >"$T/o3" 2>&1
check "weak mode: exits 0, cohorts of 1 and 2 subjects" \
  bash -c "[ $? -eq 0 ] && [ \$(ls -d '$T'/outw/data-s1/sub-* | wc -l) = 1 ] && [ \$(ls -d '$T'/outw/data-s2/sub-* | wc -l) = 2 ]"
check "weak CSV: items double, speedup = 2 t1/t2" verify "$T/outw" parc weak
check "weak: PNGs" pngs "$T/outw" parc weak

expect_rc "unknown --mode: exit 2" 2 "$BGFM" scale "$T/p.yaml" --stage pre --mode fast --quiet
expect_rc "unknown stage: exit 2" 2 "$BGFM" scale "$T/p.yaml" --stage nope --quiet
expect_rc "weak without --subjects-per-rank: exit 2" 2 "$BGFM" scale "$T/p.yaml" --stage pre --mode weak --quiet
expect_rc "decreasing --ranks: exit 2" 2 "$BGFM" scale "$T/p.yaml" --stage pre --ranks 2,1 --quiet
expect_rc "under mpirun: exit 2" 2 $MPIRUN 2 "$BGFM" scale "$T/p.yaml" --stage pre --quiet
