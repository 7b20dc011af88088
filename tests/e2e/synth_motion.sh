#!/usr/bin/env bash
# synth_motion.sh: `bgfm synth --motion` (docs/synth.md "Head motion"): --motion 0 writes
# the files of a call without it (a .gz file: its content, tap.sh content_sum); with motion every image has fMRIPrep's
# confounds file beside it, read by an independent numpy reader
# (bench/transfer/confounds_check.py: FD by Power's formula from the six parameters, the
# derivative and square columns, global_signal = the image's mean over its mask,
# model.json's mean_fd = the file's); the artifact is in the images (DVARS follows FD
# volume by volume, Power et al. 2012); patients move more; 1 and 2 ranks write the same
# files; the parcellate stage regresses the confounds and its /subjects/mean_fd equals
# model.json's; option errors exit 2.
source "$(dirname "$0")/../lib/tap.sh"

sums() { (cd "$1" && find . -type f | LC_ALL=C sort | while read -r f; do echo "$(content_sum "$f")  $f"; done); }
same() { diff <(sums "$1") <(sums "$2"); }  # same content (a .gz file: decompressed, tap.sh)
bad() {  # bad NAME NEEDLE ARGS...
  local n=$1 needle=$2; shift 2
  "$BGFM" synth "$@" > "$T/out" 2> "$T/err"; local rc=$?
  if [ "$rc" -eq 2 ] && grep -q -- "$needle" "$T/err"; then ok "$n"; else notok "$n (exit $rc: $(cat "$T/err"))"; fi
}
bad "--motion 3 -> exit 2" "--motion" --out "$T/x" --motion 3
bad "--motion-patient without --motion -> exit 2" "needs head motion" --out "$T/x" --motion-patient 0.5
bad "--motion-patient 5 -> exit 2" "--motion-patient" --out "$T/x" --motion 0.2 --motion-patient 5

A=(--subjects 12 --volumes 80 --seed 21 --sites 2 --quiet)
"$BGFM" synth --out "$T/m0" "${A[@]}" && "$BGFM" synth --out "$T/m0b" "${A[@]}" --motion 0
check "--motion 0 writes the files of a call without it, byte for byte (.gz: their content)" same "$T/m0" "$T/m0b"
check "without motion there is no confounds file" test -z "$(find "$T/m0" -name '*confounds*')"

expect_rc "synth --motion 0.25 --motion-patient 1 (1 rank)" 0 "$BGFM" synth --out "$T/m1" "${A[@]}" --motion 0.25 --motion-patient 1
expect_rc "the same on 2 ranks" 0 $MPIRUN 2 "$BGFM" synth --out "$T/m2" "${A[@]}" --motion 0.25 --motion-patient 1
check "1 and 2 ranks write the same files (.gz: their content)" same "$T/m1" "$T/m2"
"$PY" "$ROOT/bench/transfer/confounds_check.py" "$T/m1" --n 12 > "$T/cc.log" 2>&1
check "confounds files read independently (FD, derivatives, squares, global_signal, model.json mean_fd): $(tail -1 "$T/cc.log")" \
  grep -q "^[1-9][0-9]* passed, 0 failed" "$T/cc.log"

check "the artifact is in the images (DVARS follows FD); patients move more; motion 0 images unchanged" $PY - "$T/m1" "$T/m0" <<'PYEOF'
import csv, glob, json, sys, numpy as np, nibabel as nib
d, d0 = sys.argv[1], sys.argv[2]
mo = json.load(open(d + "/derivatives/synth/model.json"))["motion"]["subjects"]
part = {r["participant_id"]: r["diagnosis"] for r in csv.DictReader(open(d + "/participants.tsv"), delimiter="\t")}
rs, lfd, pat = [], [], []
for m in mo:
    sid = m["participant_id"]
    img = glob.glob(d + "/%s/func/*_bold.nii.gz" % sid)[0]
    x = np.asarray(nib.load(img).dataobj, dtype=np.float64)
    mask = x.std(axis=3) > 0
    v = x[mask]
    dv = np.sqrt(((v[:, 1:] - v[:, :-1]) ** 2).mean(axis=0))
    rows = list(csv.DictReader(open(img.replace("_space-MNI152NLin6Asym_res-3_desc-preproc_bold.nii.gz",
                                                "_desc-confounds_timeseries.tsv")), delimiter="\t"))
    fd = np.array([float(r["framewise_displacement"]) for r in rows[1:]])
    rs.append(np.corrcoef(dv, fd)[0, 1])
    lfd.append(np.log(fd.mean()))
    pat.append(part[sid] == "patient")
    assert (part[sid] == "patient") == bool(m["patient"]), sid
    # without motion the same subject's image differs only by the artifact (motion has a
    # random stream of its own): a few percent of the baseline at most, none outside
    x0 = np.asarray(nib.load(img.replace("/m1/", "/m0/")).dataobj, dtype=np.float64)
    assert np.all(x0[~mask] == 0) and np.all(x[~mask] == 0)
    assert 0 < np.abs(x - x0).max() and np.percentile(np.abs(x - x0)[mask], 99) < 0.1 * np.abs(x0[mask]).mean()
rs, lfd, pat = np.array(rs), np.array(lfd), np.array(pat)
print("# DVARS-FD correlation per scan: median %.2f (%.2f-%.2f); mean log FD patients %.2f, controls %.2f"
      % (np.median(rs), rs.min(), rs.max(), lfd[pat].mean(), lfd[~pat].mean()))
assert np.median(rs) > 0.3, rs
assert lfd[pat].mean() > lfd[~pat].mean() + 0.3
PYEOF

cat > "$T/p.yaml" <<EOF
name: sm
workdir: $T/w
seed: 3
on_error: skip
inputs: {bids: $T/m1}
atlases:
  - {name: aal116, path: /usr/share/mricron/templates/aal.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {detrend: true, high_pass: 0.01, standardize: zscore, confounds: [motion24], scrub: 0.5, max_scrubbed: 0.9}}
EOF
$MPIRUN 2 "$BGFM" run "$T/p.yaml" --quiet > "$T/run.log" 2>&1; rc=$?
check "parcellate regresses synth's confounds (exit $rc: 0, or 9 when a scan moved too much)" test $rc -eq 0 -o $rc -eq 9
check "timeseries.h5 /subjects/mean_fd = model.json's mean_fd" $PY - "$T/w/parc/timeseries.h5" "$T/m1" <<'PYEOF'
import json, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
ids = [x.decode() for x in f["subjects/participant_id"][()]]
mo = {m["participant_id"]: m["mean_fd"] for m in json.load(open(sys.argv[2] + "/derivatives/synth/model.json"))["motion"]["subjects"]}
got = f["subjects/mean_fd"][()]
want = np.array([mo[i] for i in ids])
assert len(ids) >= 10 and np.allclose(got, want, rtol=1e-5), (got, want)
PYEOF

