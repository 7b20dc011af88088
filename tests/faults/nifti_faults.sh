#!/usr/bin/env bash
# nifti_faults.sh: broken inputs through `bgfm run` AFTER a complete run of the same
# pipeline: missing, truncated, corrupt-gzip, wrong-dimension and absurd-header NIfTI
# (dims whose product overflows, dims that the file cannot hold, negative pixdim,
# negative dim, unknown datatype, not
# NIfTI at all), an atlas without overlap, an all-NaN region. Each must exit 3 naming
# the file, leave the previous complete outputs (parcellate and connectivity, manifests
# included) byte-identical, and leave no partial folder and no output without manifest.
# A constant region is not an error: it is flagged and the run completes.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/base/d" --subjects 3 --volumes 24
PIPE_NAME=niftifaults DATA=d pipeline_yaml "$T/base/p.yaml" "w" "{constant_regions: flag}"
expect_rc "a complete run first (parcellate -> connectivity)" 0 timeout 60 "$BGFM" run "$T/base/p.yaml" --quiet
sums() { (cd "$1/w" && find parc conn -type f | sort | xargs sha256sum); }
BEFORE=$(sums "$T/base")
IMG=d/bids/sub-02/func/sub-02_task-rest_bold.nii.gz
# case NAME WANT GREP SETUP-PYTHON-OR-SHELL: copy base, break it, rerun, check
case_() {
  local name=$1 want=$2 pat=$3 c="$T/c$((++n))"
  cp -a "$T/base" "$c"
  (cd "$c" && eval "$4") || { notok "$name: setup"; return; }
  timeout 60 $MPIRUN 2 "$BGFM" run "$c/p.yaml" --quiet >"$c/out" 2>&1; local rc=$?
  local bad=""
  [ "$rc" -eq "$want" ] || bad="exit $rc, wanted $want"
  [ -n "$bad" ] || grep -q -- "$pat" "$c/out" || bad="message lacks '$pat'"
  [ -n "$bad" ] || [ "$(sums "$c")" = "$BEFORE" ] || bad="earlier complete outputs changed"
  [ -n "$bad" ] || [ -z "$(ls -A "$c/w" | grep -e '\.partial$' -e '\.old$')" ] || bad="partial folder left"
  # report/ is the run report page (docs/report.md), not a stage output
  for dd in "$c"/w/*/; do [ "$dd" = "$c/w/report/" ] || [ -n "$bad" ] || [ -f "$dd/manifest.json" ] || bad="output without manifest: $dd"; done
  if [ -z "$bad" ]; then ok "$name"; else notok "$name: $bad"; sed 's/^/# /' "$c/out" | tail -3; fi
  grep "bgfm: error" "$c/out" | head -1 | sed 's/^/# /'
}
n=0
# nifti HEADER PATCH: rewrite sub-02 as an uncompressed NIfTI-1 (or -2) with a patched header
patch() { echo "$PY $ROOT/tests/faults/nifti_patch.py $1 $IMG"; }
case_ "missing image (listed participant, file deleted) -> 3" 3 "sub-02" "rm $IMG"
case_ "truncated .nii.gz -> 3 naming the file" 3 "sub-02_task-rest_bold.nii.gz" "head -c 4000 $IMG >x && mv x $IMG"
case_ "corrupt gzip stream (bytes overwritten) -> 3 naming the file" 3 "sub-02_task-rest_bold.nii.gz" \
  "printf 'garbage-garbage-garbage' | dd of=$IMG bs=1 seek=600 conv=notrunc status=none"
case_ "3-D image instead of a 4-D series -> 3" 3 "not a 4D" "$(patch dim0=3)"
case_ "NIfTI-2 dims whose product overflows -> 3" 3 "sub-02_task-rest_bold.nii" "$(patch v2-overflow)"
case_ "dims 32767^4 in a small .nii.gz -> 3 naming the file, before any allocation" 3 \
  "sub-02_task-rest_bold.nii.gz: the header promises .* more than this .*-byte compressed file can hold" "$(patch huge-dims)"
case_ "atlas whose dims are 32767^4 in a small .nii.gz -> 3 naming the atlas" 3 \
  "atlas.nii.gz: the header promises .* more than this" "$(patch huge-atlas)"
case_ "negative dim -> 3" 3 "sub-02_task-rest_bold.nii" "$(patch dim1=-8)"
case_ "negative pixdim of a spatial axis -> 3" 3 "sub-02_task-rest_bold.nii" "$(patch pixdim1=-4)"
case_ "unknown datatype code -> 3" 3 "sub-02_task-rest_bold.nii" "$(patch datatype=99)"
case_ "not a NIfTI file (text) -> 3" 3 "sub-02_task-rest_bold.nii.gz" "echo 'hello' | gzip >$IMG"
case_ "all-NaN region -> 3 naming file and volume" 3 "sub-02_task-rest_bold.nii.gz.*volume" "$(patch nan-region)"
case_ "atlas grid not overlapping the data -> 3" 3 "does not overlap" "$(patch far-atlas)"
# a constant region: flagged, not an error
c="$T/const"; cp -a "$T/base" "$c"; (cd "$c" && $PY "$ROOT/tests/faults/nifti_patch.py" const-region $IMG)
expect_rc "constant region: the run completes (exit 0)" 0 timeout 60 "$BGFM" run "$c/p.yaml" --quiet
check "... the region is flagged for that subject only, and has no edges" $PY - "$c/w" <<'PYEOF'
import sys, h5py, numpy as np
ts = h5py.File(sys.argv[1] + "/parc/timeseries.h5", "r")
fl = ts["atlases/tiny/flagged"][:]
assert fl[1].tolist() == [1, 0, 0, 0] and fl[[0, 2]].sum() == 0, fl
idx = h5py.File(sys.argv[1] + "/conn/index.h5", "r")
g = idx["graphs"]
i = [k for k in range(int(idx.attrs["n_graphs"])) if g["subject"][k] == 1][0]
sh = h5py.File(sys.argv[1] + "/conn/" + idx["shards"][g["shard"][i]].decode(), "r")["graphs/tiny"]
r = g["row"][i]
assert sh["flagged"][r][0] == 1 and sh["adj"][r][0].sum() == 0 and sh["adj"][r][:, 0].sum() == 0
PYEOF
