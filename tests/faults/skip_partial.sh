#!/usr/bin/env bash
# skip_partial.sh: on_error: skip through parcellate -> connectivity on 2 ranks: a
# corrupt image (parcellate) and a scan too short for a window (connectivity) are left
# out, named with their reason in timeseries.h5 /skipped, index.h5 /skipped and each
# manifest.json "skipped", the run goes on and ends with exit 9 and one summary line;
# graphs exist for every other subject. The same data under on_error: fail stops with
# 3 and leaves no output.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 5 --volumes 40
B="$T/d/bids"
f3="$B/sub-03/func/sub-03_task-rest_bold.nii.gz"
head -c 3000 "$f3" >"$f3.x" && mv "$f3.x" "$f3"          # truncated: parcellate skips it
$PY -c "
import nibabel as nib, numpy as np
p='$B/sub-05/func/sub-05_task-rest_bold.nii.gz'; i=nib.load(p)
nib.save(nib.Nifti1Image(np.asarray(i.dataobj)[..., :12], i.affine, i.header), p)" || notok "short scan"
mk() {  # mk FILE WORKDIR ON_ERROR
cat >"$1" <<YAML
name: skiptest
workdir: $2
on_error: $3
inputs: {bids: $B}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {standardize: zscore}}
  - {name: conn, uses: connectivity, with: {windows: {length: 20, stride: 10}, graphs_per_shard: 4}}
YAML
}
mk "$T/skip.yaml" "$T/w" skip
timeout 120 $MPIRUN 2 "$BGFM" run "$T/skip.yaml" --quiet >"$T/out" 2>&1; rc=$?
check "on_error: skip, parcellate -> connectivity on 2 ranks: exit 9 (partial)" test $rc -eq 9
[ $rc -eq 9 ] || sed 's/^/# /' "$T/out" | tail -8
summary=$(grep "finished, but some subjects were skipped" "$T/out")
check "one summary line" test "$(grep -c "finished, but some subjects were skipped" "$T/out")" -eq 1
check "... naming the corrupt image (stage parc)" grep -q "stage 'parc': 1 input(s) skipped: .*sub-03_task-rest_bold.nii.gz" <<<"$summary"
check "... and the short subject (stage conn)" grep -q "stage 'conn': 1 input(s) skipped: sub-05" <<<"$summary"
check "timeseries.h5 /skipped names sub-03 and why" $PY - "$T/w/parc/timeseries.h5" <<'PYEOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
im = [x.decode() for x in f["skipped/image"][:]]; re = [x.decode() for x in f["skipped/reason"][:]]
assert len(im) == 1 and im[0].endswith("sub-03_task-rest_bold.nii.gz"), im
assert "sub-03" in re[0] and len(re[0]) > 20, re
assert [x.decode() for x in f["subjects/participant_id"][:]] == ["sub-01", "sub-02", "sub-04", "sub-05"]
PYEOF
check "parc/manifest.json: status partial, \"skipped\" lists sub-03 with its reason" $PY - "$T/w/parc/manifest.json" <<'PYEOF'
import sys, json
m = json.load(open(sys.argv[1]))
assert m["status"] == "partial", m["status"]
s = m["skipped"]
assert len(s) == 1 and s[0]["item"].endswith("sub-03_task-rest_bold.nii.gz") and s[0]["reason"], s
PYEOF
check "conn/manifest.json and index.h5 /skipped list sub-05 (too few volumes)" $PY - "$T/w/conn" <<'PYEOF'
import sys, json, h5py
m = json.load(open(sys.argv[1] + "/manifest.json"))
assert m["status"] == "partial"
s = m["skipped"]
assert [x["item"] for x in s] == ["sub-05"] and "too few" in s[0]["reason"], s
f = h5py.File(sys.argv[1] + "/index.h5", "r")
assert [x.decode() for x in f["skipped/participant_id"][:]] == ["sub-05"]
assert "too few" in f["skipped/reason"][0].decode()
PYEOF
check "graphs exist for the three other subjects, none for the skipped" $PY - "$T/w/conn/index.h5" <<'PYEOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
ids = sorted(set(x.decode() for x in f["graphs"]["participant_id"][:]))
assert ids == ["sub-01", "sub-02", "sub-04"], ids
assert f.attrs["n_graphs"] == 3 * 3
PYEOF
# a rerun finds both stages up to date (their manifests match) and does nothing
timeout 60 $MPIRUN 2 "$BGFM" run "$T/skip.yaml" >"$T/out2" 2>&1; rc=$?
check "rerun: both stages up to date" test "$(grep -c "up to date, skipped" "$T/out2")" -eq 2
check "rerun: still exit 9, the up-to-date stages still left subjects out" test $rc -eq 9
check "rerun: the summary points at the manifests" grep -q "stage 'parc' is up to date but left subjects out" "$T/out2"
# on_error: fail: the corrupt image stops the run with 3, nothing is left
mk "$T/fail.yaml" "$T/wf" fail
timeout 60 $MPIRUN 2 "$BGFM" run "$T/fail.yaml" --quiet >"$T/out3" 2>&1; rc=$?
check "on_error: fail: exit 3 naming the corrupt image" test $rc -eq 3 -a -n "$(grep "sub-03_task-rest_bold.nii.gz" "$T/out3")"
check "... and no stage output or partial folder (the run report page says what failed)" test -z "$(ls -A "$T/wf" | grep -v -e '^\.bgfm$' -e '^metrics.jsonl$' -e '^report$')"
