#!/usr/bin/env bash
# corpus_incremental.sh: adding or removing a dataset of inputs.datasets reruns only what
# depends on it (docs/corpus.md, "Adding or removing a dataset"). A pipeline over alpha
# (pretrain) and beta (downstream) runs; gamma (downstream) is added: parcellate reads only
# gamma's images (its bytes_read is the size of gamma's files, counted here with du) and
# takes alpha's and beta's series from its parts, connectivity computes only gamma's
# graphs (their count from index.h5), pretraining is up to date (its graphs did not
# change) and the probe reruns; timeseries.h5, the graph store and final.h5 are
# byte-identical to a from-scratch run over alpha+beta+gamma, the probe's results equal.
# The same on 3 ranks. Removing beta: nothing extracted or computed, outputs identical to
# a from-scratch alpha+gamma run, beta's parts gone. A changed option or image redoes what
# it touches; a damaged part is recomputed, --force recomputes all; under on_error: skip
# a skipped image's reason is replayed from its part; inputs.bids has no parts.
source "$(dirname "$0")/../lib/tap.sh"
for s in 1 2 3; do tiny_dataset "$T/d$s" --subjects 8 --volumes 30 --seed $s; done
# inc_yaml FILE WORKDIR DATASET... (alpha beta gamma); $PARC: parcellate's with:
inc_yaml() {
  local f=$1 w=$2 d; shift 2
  {
    printf 'name: inc\nworkdir: %s\nseed: 5\n%sinputs:\n  datasets:\n' "$w" "${TOP:-}"
    for d in "$@"; do
      case $d in alpha) printf '    - {name: alpha, bids: %s/d1/bids, role: pretrain}\n' "$T" ;;
                 beta) printf '    - {name: beta, bids: %s/d2/bids, role: downstream}\n' "$T" ;;
                 gamma) printf '    - {name: gamma, bids: %s/d3/bids, role: downstream}\n' "$T" ;;
                 delta) printf '    - {name: delta, bids: %s/d5/bids, role: downstream}\n' "$T" ;; esac
    done
    printf 'atlases:\n  - {name: tiny, path: %s/d1/atlas.nii.gz}\nstages:\n' "$T"
    local parc=${PARC:-"{standardize: zscore}"}
    printf '  - {name: parc, uses: parcellate, with: %s}\n' "$parc"
    printf '  - {name: conn, uses: connectivity, with: {windows: {length: 10, stride: 5}}}\n'
    printf '  - {name: pre, uses: pretrain, with: {epochs: 1, batch_size: 8, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0}}\n'
    printf '  - {name: probe, uses: probe, with: {folds: 2, repeats: 1, few_shot: [1, all], pca_components: 4}}\n'
  } >"$f"
}
# last_metric WORKDIR EVENT FIELD: FIELD of the last metrics.jsonl line of EVENT
last_metric() {
  "$PY" -c 'import sys, json
ls = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
print([l for l in ls if l["event"] == sys.argv[2]][-1][sys.argv[3]])' "$@"
}
count_stage_lines() { grep -c "\"event\": \"stage\", \"stage\": \"$2\"" "$1/metrics.jsonl"; }
gamma_bytes=$(du -cb "$T"/d3/bids/sub-*/func/*_bold.nii* | tail -1 | cut -f1)
# same_outputs A B: timeseries.h5, every file of the graph store, final.h5 and the probe's
# results equal (the probe's json without its timings)
same_outputs() {
  cmp -s "$1/parc/timeseries.h5" "$2/parc/timeseries.h5" || { echo "timeseries.h5 differs" >&2; return 1; }
  local f
  for f in "$2"/conn/*.h5; do cmp -s "$f" "$1/conn/$(basename "$f")" || { echo "$f differs" >&2; return 1; }; done
  [ "$(ls "$1"/conn/*.h5 | wc -l)" = "$(ls "$2"/conn/*.h5 | wc -l)" ] || return 1
  [ ! -d "$1/pre" ] || cmp -s "$1/pre/final.h5" "$2/pre/final.h5" || { echo "final.h5 differs" >&2; return 1; }
  [ ! -d "$1/probe" ] || "$PY" - "$1/probe/report" "$2/probe/report" <<'PYEOF'
import sys, json
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if not any(t in k for t in ("time", "seconds", "wall", "_s"))}
    return [strip(v) for v in o] if isinstance(o, list) else o
# the report names its inputs by path: the workdirs differ
a, b = (json.loads(open(d + "/probe.json").read().replace(d[: -len("/probe/report")], "W"))
        for d in sys.argv[1:3])
assert strip(a) == strip(b), "probe.json differs"
for f in ("folds.csv", "predictions.csv", "audit.tsv"):
    assert open(sys.argv[1] + "/" + f).read() == open(sys.argv[2] + "/" + f).read(), f
PYEOF
}

inc_yaml "$T/ab.yaml" "$T/w1" alpha beta
inc_yaml "$T/abc.yaml" "$T/w1" alpha beta gamma
inc_yaml "$T/fresh.yaml" "$T/wf" alpha beta gamma
expect_rc "alpha + beta on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/ab.yaml" --quiet --no-report
cp "$T/w1/pre/manifest.json" "$T/pre_manifest.json"
pre_lines=$(count_stage_lines "$T/w1" pre)
check "every dataset of the first run has a complete part in parcellate and connectivity" \
  sh -c "for s in parc conn; do for d in alpha beta; do test -s '$T/w1/'\$s/parts/\$d/key || exit 1; done; done"
expect_rc "gamma added: the rerun on 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/abc.yaml" --quiet --no-report
expect_rc "alpha + beta + gamma from scratch" 0 $MPIRUN 1 "$BGFM" run "$T/fresh.yaml" --quiet --no-report
read -r n_gamma n_all < <("$PY" -c 'import sys, h5py
d = h5py.File(sys.argv[1], "r")["graphs/dataset"][:]
print(sum(x == b"gamma" for x in d), len(d))' "$T/wf/conn/index.h5")
check "parcellate read only gamma's images ($gamma_bytes bytes, 8 scans) and took alpha's and beta's 16 from its parts" \
  test "$(last_metric "$T/w1" parcellate bytes_read | cut -d. -f1)" = "$gamma_bytes" -a \
       "$(last_metric "$T/w1" parcellate subjects)" = 8 -a "$(last_metric "$T/w1" parcellate images_reused)" = 16
check "connectivity computed only gamma's $n_gamma graphs, took the other $((n_all - n_gamma))" \
  test "$(last_metric "$T/w1" connectivity graphs)" = "$n_gamma" -a \
       "$(last_metric "$T/w1" connectivity graphs_reused)" = "$((n_all - n_gamma))" -a "$n_gamma" -gt 0
check "pretraining (alpha only) up to date: not run again, its manifest unchanged" \
  sh -c "test $(count_stage_lines "$T/w1" pre) = $pre_lines && cmp -s '$T/pre_manifest.json' '$T/w1/pre/manifest.json'"
check "the probe reran and labelled gamma's subjects too" \
  "$PY" -c 'import sys, csv; assert {r["dataset"] for r in csv.DictReader(open(sys.argv[1]))} == {"beta", "gamma"}' "$T/w1/probe/report/folds.csv"
check "outputs byte-identical to the from-scratch run (timeseries.h5, graph store, final.h5; probe results equal)" \
  same_outputs "$T/w1" "$T/wf"

# the same on 3 ranks
inc_yaml "$T/ab3.yaml" "$T/w3" alpha beta
inc_yaml "$T/abc3.yaml" "$T/w3" alpha beta gamma
expect_rc "alpha + beta on 3 ranks" 0 $MPIRUN 3 "$BGFM" run "$T/ab3.yaml" --quiet --no-report
pre3=$(count_stage_lines "$T/w3" pre)
expect_rc "gamma added on 3 ranks" 0 $MPIRUN 3 "$BGFM" run "$T/abc3.yaml" --quiet --no-report
check "3 ranks: only gamma extracted and computed, pretraining not rerun" \
  test "$(last_metric "$T/w3" parcellate subjects)" = 8 -a "$(last_metric "$T/w3" parcellate images_reused)" = 16 -a \
       "$(last_metric "$T/w3" connectivity graphs)" = "$n_gamma" -a "$(count_stage_lines "$T/w3" pre)" = "$pre3"
rm -rf "$T/w3/pre" "$T/w3/probe"   # training is rank-sensitive: compare what is not
check "3 ranks: timeseries.h5 and graph store byte-identical to the 1-rank from-scratch run" \
  same_outputs "$T/w3" "$T/wf"
check "3 ranks: the parts themselves byte-identical to the 1-rank from-scratch run's" \
  sh -c "cd '$T/wf' && for f in parc/parts/*/* conn/parts/*/*; do cmp -s \$f '$T/w3/'\$f || exit 1; done"

# removing beta
inc_yaml "$T/ac.yaml" "$T/w1" alpha gamma
inc_yaml "$T/acf.yaml" "$T/wr" alpha gamma
expect_rc "beta removed: the rerun" 0 $MPIRUN 1 "$BGFM" run "$T/ac.yaml" --quiet --no-report
expect_rc "alpha + gamma from scratch" 0 $MPIRUN 1 "$BGFM" run "$T/acf.yaml" --quiet --no-report
check "beta removed: no image read, no graph computed, beta's parts gone, pretraining not rerun" \
  test "$(last_metric "$T/w1" parcellate subjects)" = 0 -a "$(last_metric "$T/w1" parcellate images_reused)" = 16 -a \
       "$(last_metric "$T/w1" connectivity graphs)" = 0 -a ! -e "$T/w1/parc/parts/beta" -a ! -e "$T/w1/conn/parts/beta" -a \
       "$(count_stage_lines "$T/w1" pre)" = "$pre_lines"
check "beta removed: outputs byte-identical to the from-scratch alpha + gamma run" same_outputs "$T/w1" "$T/wr"

# what changes is redone: an option (everything), one image (its dataset), a damaged part
PARC="{standardize: psc}" inc_yaml "$T/psc.yaml" "$T/w1" alpha gamma
expect_rc "parcellate option changed" 0 $MPIRUN 1 "$BGFM" run "$T/psc.yaml" --only parc --quiet --no-report
check "a changed option reuses nothing: 16 images extracted" \
  test "$(last_metric "$T/w1" parcellate subjects)" = 16 -a "$(last_metric "$T/w1" parcellate images_reused)" = 0
"$PY" "$ROOT/tests/lib/tiny_bids.py" "$T/d3x" --subjects 8 --volumes 30 --seed 4 >/dev/null
cp "$T/d3x/bids/sub-02/func/sub-02_task-rest_bold.nii.gz" "$T/d3/bids/sub-02/func/"
expect_rc "one of gamma's images replaced" 0 $MPIRUN 1 "$BGFM" run "$T/psc.yaml" --only parc --quiet --no-report
check "a changed image redoes its dataset only: gamma's 8 extracted, alpha's 8 reused" \
  test "$(last_metric "$T/w1" parcellate subjects)" = 8 -a "$(last_metric "$T/w1" parcellate images_reused)" = 8
truncate -s 100 "$T/w1/parc/parts/alpha/data.bin"
expect_rc "alpha's part damaged (data.bin cut short), option back" 0 $MPIRUN 1 "$BGFM" run "$T/ac.yaml" --only parc --quiet --no-report
check "a damaged part is not used: alpha extracted again" \
  test "$(last_metric "$T/w1" parcellate images_reused)" = 0
cp "$T/w1/parc/timeseries.h5" "$T/ts_reused.h5"
expect_rc "bgfm run --force" 0 $MPIRUN 1 "$BGFM" run "$T/ac.yaml" --force --quiet --no-report
check "--force reuses no part: 16 images extracted, every graph computed" \
  test "$(last_metric "$T/w1" parcellate images_reused)" = 0 -a "$(last_metric "$T/w1" parcellate subjects)" = 16 -a \
       "$(last_metric "$T/w1" connectivity graphs_reused)" = 0
check "--force: timeseries.h5 byte-identical to the run that reused gamma's part" cmp -s "$T/ts_reused.h5" "$T/w1/parc/timeseries.h5"

# on_error: skip: an unreadable image's skip reason is kept in its part and replayed
cp -r "$T/d2" "$T/d5" && truncate -s 200 "$T/d5/bids/sub-03/func/sub-03_task-rest_bold.nii.gz"
TOP="on_error: skip
" inc_yaml "$T/ad.yaml" "$T/wk" alpha delta
TOP="on_error: skip
" inc_yaml "$T/adc.yaml" "$T/wk" alpha delta gamma
TOP="on_error: skip
" inc_yaml "$T/adcf.yaml" "$T/wkf" alpha delta gamma
expect_rc "on_error: skip, delta's sub-03 unreadable: alpha + delta (exit 9)" 9 $MPIRUN 1 "$BGFM" run "$T/ad.yaml" --only parc --quiet --no-report
expect_rc "gamma added (exit 9: sub-03 still left out)" 9 $MPIRUN 3 "$BGFM" run "$T/adc.yaml" --only parc --quiet --no-report
expect_rc "alpha + delta + gamma from scratch" 9 $MPIRUN 1 "$BGFM" run "$T/adcf.yaml" --only parc --quiet --no-report
check "the skipped image's reason replayed from delta's part: 16 reused (sub-03 included), 8 extracted" \
  test "$(last_metric "$T/wk" parcellate images_reused)" = 16 -a "$(last_metric "$T/wk" parcellate subjects)" = 8
check "timeseries.h5 (/skipped included) and the manifest's skipped list as from scratch" \
  "$PY" - "$T/wk/parc" "$T/wkf/parc" <<'PYEOF'
import sys, json, filecmp, h5py
a, b = sys.argv[1], sys.argv[2]
assert filecmp.cmp(a + "/timeseries.h5", b + "/timeseries.h5", shallow=False)
sk = [x.decode() for x in h5py.File(a + "/timeseries.h5", "r")["skipped/image"][:]]
assert len(sk) == 1 and sk[0].endswith("sub-03_task-rest_bold.nii.gz"), sk
ma, mb = (json.load(open(d + "/manifest.json"))["skipped"] for d in (a, b))
assert ma == mb and len(ma) == 1, (ma, mb)
PYEOF

# inputs.bids: unchanged, no parts
DATA="$T/d1" pipeline_yaml "$T/single.yaml" "$T/ws"
expect_rc "inputs.bids pipeline" 0 $MPIRUN 1 "$BGFM" run "$T/single.yaml" --quiet --no-report
check "inputs.bids: no parts folder in parcellate or connectivity" test ! -e "$T/ws/parc/parts" -a ! -e "$T/ws/conn/parts"
