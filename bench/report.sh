#!/usr/bin/env bash
# report.sh: benchmark of the run report page (docs/report.md). Two measurements, each a
# ratio taken in this run:
#   1. the demo: jobs/demo.yaml's cohort and pipeline (as scripts/demo.sh makes them) run
#      on NP ranks with --no-report, then `bgfm report WORKDIR --html`: report time /
#      pipeline time (target < 5 %);
#   2. a SUBJECTS-subject cohort (default 1,000) written directly: timeseries.h5 with h5py
#      (two atlases of 116 and 48 regions, 50-70 volumes, 4 sites, some regions under
#      min_coverage), the graph store made by the connectivity stage's own driver
#      (tests/test_connectivity stage), pretraining metrics (STEPS train_step lines), the
#      demo's probe.json and a synthetic embeddings.h5; then `bgfm report --html` on one
#      core (taskset): seconds (target < 30 s), the page's size, and the time headless
#      Chromium takes to open it against an empty page.
# Not a test: prints figures (docs/performance.md quotes them, with the load average).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_init report
B="$ROOT/${BGFM_BUILD:-build}"
NP=${NP:-2}; SUBJECTS=${SUBJECTS:-1000}; STEPS=${STEPS:-4000}
now() { date +%s.%N; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. the demo ---------------------------------------------------------------------
mpirun --oversubscribe -np "$NP" "$B/bgfm" synth --out "$T/demo-data" --subjects 16 --unlabelled 32 \
  --volumes 120 --tr 2.0 --voxel-size 3 --sites 2 --seed 7 --quiet
sed -e "s#^workdir: .*#workdir: $T/demo#" -e "s#^  bids: .*#  bids: $T/demo-data#" \
  "$ROOT/jobs/demo.yaml" >"$T/demo.yaml"
t0=$(now)
mpirun --oversubscribe -np "$NP" "$B/bgfm" run "$T/demo.yaml" --quiet --no-report
t1=$(now)
"$B/bgfm" report "$T/demo" --html >"$T/demo-report.out"
t2=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v np="$NP" -v s="$(stat -c %s "$T/demo/report/index.html")" 'BEGIN{
  printf "demo (jobs/demo.yaml, %d ranks): pipeline %.1f s, report %.2f s = %.2f %% of the run (target < 5 %%), page %.0f kB\n",
         np, b - a, c - b, 100 * (c - b) / (b - a), s / 1024 }'

# ---- 2. a large cohort, written directly -----------------------------------------------
W="$T/big"
mkdir -p "$W/parc" "$W/conn" "$W/pre/checkpoints" "$W/probe/report"
$PY - "$W" "$SUBJECTS" "$STEPS" "$T/demo/probe/report/probe.json" <<'PY'
import h5py, json, numpy as np, os, sys
W, S, STEPS, probe = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
atl = [("aal116", 116), ("ho48", 48)]
T = 50 + rng.integers(0, 21, S)
site = rng.integers(0, 4, S)
with h5py.File(W + "/parc/timeseries.h5", "w") as f:
    f.attrs["format"] = np.bytes_("bgfm-timeseries"); f.attrs["format_version"] = np.int64(1)
    f.attrs["n_subjects"] = np.int64(S); f.attrs["atlases"] = np.bytes_("aal116,ho48")
    f.attrs["min_coverage"] = 0.5; f.attrs["standardize"] = np.bytes_("zscore")
    g = f.create_group("subjects")
    g["participant_id"] = np.array([b"sub-%05d" % s for s in range(S)])
    g["image"] = np.array([b"sub-%05d/func/bold.nii.gz" % s for s in range(S)])
    g["n_volumes"] = T.astype(np.int64)
    g["t_r"] = np.where(site < 2, 2.0, 0.8)
    lab = g.create_dataset("label", data=np.where(np.arange(S) % 5 == 4, -1, np.arange(S) % 2).astype(np.int64))
    lab.attrs["classes"] = np.bytes_("control,patient"); lab.attrs["column"] = np.bytes_("diagnosis")
    g["columns/site"] = np.array([b"site-%d" % x for x in site])
    for name, N in atl:
        a = f.create_group("atlases/" + name)
        cov = np.clip(1 - np.abs(rng.standard_normal((S, N))) * 0.15, 0, 1).astype(np.float32)
        cov[:, :3] *= 0.6
        flag = (cov < 0.5).astype(np.uint8)
        off = np.concatenate([[0], np.cumsum(T)]).astype(np.int64)
        mix = rng.standard_normal((8, N))
        ts = np.empty((off[-1], N), np.float32)
        for s in range(S):
            x = rng.standard_normal((T[s], 8)) @ mix + rng.standard_normal((T[s], N)) + 0.3 * site[s]
            x = (x - x.mean(0)) / x.std(0)
            x[:, flag[s] == 1] = 0
            ts[off[s]:off[s + 1]] = x
        a["timeseries"] = ts; a["offsets"] = off; a["coverage"] = cov; a["flagged"] = flag
        a["region_labels"] = np.arange(1, N + 1, dtype=np.int32)
        a["region_names"] = np.array([b"%s_region_%03d" % (name.encode(), r + 1) for r in range(N)])
        a.attrs["n_regions"] = np.int64(N)
def manifest(stage, kind):
    m = {"format": "bgfm-manifest", "format_version": 1, "stage": stage, "kind": kind,
         "fingerprint": "0" * 64, "outputs_sha256": "1" * 64, "status": "complete",
         "code_version": "bench", "code_rev": "bench", "ranks": 2, "pipeline": "bench.yaml",
         "resolved": "kind: %s\nname: %s\n" % (kind, stage),
         "inputs": [{"path": "sub-%05d/func/bold.nii.gz" % s, "sha256": "2" * 64, "bytes": 1000000}
                    for s in range(S)] if kind == "parcellate" else [],
         "outputs": [], "timings": {"started": "2026-01-01T00:00:00Z", "wall_s": 100.0},
         "stats": {"bytes_read": 0, "items": S, "items_unit": "subjects"}, "skipped": []}
    json.dump(m, open("%s/%s/manifest.json" % (W, stage), "w"), indent=1)
for st, k in [("parc", "parcellate"), ("conn", "connectivity"), ("pre", "pretrain"), ("probe", "probe")]:
    manifest(st, k)
with open(W + "/metrics.jsonl", "w") as f:
    for st, k in [("parc", "parcellate"), ("conn", "connectivity")]:
        f.write(json.dumps({"event": "stage", "stage": st, "kind": k, "time": "2026-01-01T00:00:00Z",
                            "status": 0, "ranks": 2, "wall_s": 100.0}) + "\n")
    for i in range(1, STEPS + 1):
        l = 3 * np.exp(-i / 800) + 0.5 + 0.05 * rng.standard_normal()
        f.write(json.dumps({"event": "train_step", "stage": "pre", "kind": "pretrain", "step": i,
                            "epoch": i // 100, "atlas": "aal116" if i % 2 else "ho48", "loss": l,
                            "loss_rec": l / 2, "loss_adj": l / 4, "loss_cl": l / 4, "grad_norm": 1 + rng.random(),
                            "lr": 1e-3 * min(1, i / 100), "graphs_per_s": 300 + 20 * rng.standard_normal(),
                            "mask_ratio": 0.3, "compute_s": 0.08, "comm_s": 0.01 + 0.005 * rng.random(),
                            "io_s": 0.004, "ranks": 2}) + "\n")
    for st, k in [("pre", "pretrain"), ("probe", "probe")]:
        f.write(json.dumps({"event": "stage", "stage": st, "kind": k, "time": "2026-01-01T00:00:00Z",
                            "status": 0, "ranks": 2, "wall_s": 100.0}) + "\n")
open(W + "/pre/final.h5", "wb").write(b"\0" * 4096)
d = json.load(open(probe)); d["graphs"] = W + "/conn/index.h5"
json.dump(d, open(W + "/probe/report/probe.json", "w"), indent=1)
PY
mpirun --oversubscribe -np "$NP" "$B/tests/test_connectivity" stage "$W/parc/timeseries.h5" "$W/conn" gps=256 >/dev/null
$PY - "$W" <<'PY'
import h5py, numpy as np, sys
W = sys.argv[1]
idx = h5py.File(W + "/conn/index.h5", "r")
G = idx["graphs/atlas"].shape[0]
site = np.array([int(s.decode().split("-")[1]) if s else 0 for s in idx["graphs/site"][()]])
rng = np.random.default_rng(1)
x = rng.standard_normal((G, 64)) + 0.5 * site[:, None] * rng.standard_normal(64)[None, :]
with h5py.File(W + "/probe/report/embeddings.h5", "w") as f:
    f.attrs["format"] = np.bytes_("bgfm-embeddings"); f.attrs["format_version"] = np.int64(1)
    f["graph"] = np.arange(G, dtype=np.int64); f["pretrained"] = x; f["random_init"] = x
PY
CORE=""; command -v taskset >/dev/null && CORE="taskset -c 0"
t0=$(now)
$CORE "$B/bgfm" report "$W" --html >"$T/big-report.out"
t1=$(now)
awk -v a="$t0" -v b="$t1" -v S="$SUBJECTS" -v st="$STEPS" -v s="$(stat -c %s "$W/report/index.html")" 'BEGIN{
  printf "%d subjects (2 atlases, 116 + 48 regions; %d training steps), one core: report %.2f s = %.2f of the 30 s target, page %.0f kB\n",
         S, st, b - a, (b - a) / 30, s / 1024 }'
sed 's/^/  /' "$T/big-report.out"
# opening it: headless Chromium loads and lays out the page (--dump-dom), against an empty page
CHROME=$(command -v chromium || true)
if [ -n "$CHROME" ]; then
  echo '<!DOCTYPE html><html><body><p>empty</p></body></html>' >"$T/empty.html"
  open_s() { local t0 t1; t0=$(now); timeout 120 "$CHROME" --headless --disable-gpu --no-sandbox \
    --disable-dev-shm-usage --user-data-dir="$T/chrome" --dump-dom "file://$1" >/dev/null 2>&1; t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}'; }
  open_s "$T/empty.html" >/dev/null  # the profile made once
  e=$(open_s "$T/empty.html"); b=$(open_s "$W/report/index.html")
  echo "opening in headless Chromium: the page $b s, an empty page $e s"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
