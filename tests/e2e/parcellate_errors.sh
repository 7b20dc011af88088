#!/usr/bin/env bash
# parcellate_errors.sh: every documented parcellate failure exits with its code (3 bad
# data, 4 I/O, 9 partial under on_error: skip), names the file and the problem, leaves
# no output folder, and never hangs a multi-rank run.
source "$(dirname "$0")/../lib/tap.sh"
REF="$(cd "$(dirname "$0")/../reference" && pwd)"
AAL=/usr/share/mricron/templates/aal.nii.gz
# mk CASE [skip]: a valid 2-subject dataset in $T/CASE/bids and a pipeline $T/CASE/p.yaml
mk() {
  [ -d "$T/base" ] || mkbase
  cp -r "$T/base" "$T/$1"
  sed -i "s#$T/base#$T/$1#g; s#^on_error: fail#on_error: ${2:-fail}#" "$T/$1/p.yaml"
}
mkbase() {
"$PY" - "$T/base" "$REF" "$AAL" fail <<'PYEOF'
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from parcellate_lib import make_subject, write_tsv, write_pipeline
D = sys.argv[1]
rng = np.random.default_rng(3)
aff = np.array([[-8., 0, 0, 90], [0, 8, 0, -126], [0, 0, 8, -72], [0, 0, 0, 1]])
for s in ("01", "02"):
    make_subject(f"{D}/bids/sub-{s}/func/sub-{s}_task-rest_bold.nii.gz", rng, (20, 24, 20), aff,
                 12, 2.0)
write_tsv(f"{D}/bids/participants.tsv", [{"participant_id": "sub-01"}, {"participant_id": "sub-02"}],
          ["participant_id"])
write_pipeline(f"{D}/p.yaml", f"{D}/work", f"{D}/bids", [("aal", sys.argv[3])],
               {"detrend": "true"}, on_error=sys.argv[4])
PYEOF
}
# run_case NAME WANT_RC CASE GREP [NP]: exit code, message, no output folder left
run_case() {
  local name=$1 want=$2 c=$3 pat=$4 np_=${5:-1}
  if [ "$np_" -eq 1 ]; then timeout 60 "$BGFM" run "$T/$c/p.yaml" --quiet >"$T/$c/out" 2>&1
  else timeout 60 $MPIRUN "$np_" "$BGFM" run "$T/$c/p.yaml" --quiet >"$T/$c/out" 2>&1; fi
  local rc=$?
  if [ "$rc" -ne "$want" ]; then notok "$name (exit $rc, wanted $want)"; sed 's/^/# /' "$T/$c/out" | head -5; return; fi
  if ! grep -q -- "$pat" "$T/$c/out"; then notok "$name: message lacks '$pat'"; sed 's/^/# /' "$T/$c/out" | head -5; return; fi
  if [ "$want" -eq 0 ] && [ ! -s "$T/$c/work/parcellate/timeseries.h5" ]; then notok "$name: no output"; return; fi
  if [ "$want" -ne 0 ] && [ "$want" -ne 9 ] && find "$T/$c/work" -name 'timeseries.h5' 2>/dev/null | grep -q .; then notok "$name: partial output left"; return; fi
  ok "$name"
}

mk ok; run_case "valid dataset runs" 0 ok ""
mk nopic; rm "$T/nopic/bids/sub-02/func/"*; run_case "participant without image -> 3, names it and the folder" 3 nopic "sub-02/func"
mk extra; printf 'participant_id\nsub-01\n' >"$T/extra/bids/participants.tsv"; run_case "image of an unlisted subject -> 3" 3 extra "sub-02 is not listed"
mk none; rm -r "$T/none/bids/"sub-*; run_case "no images at all -> 3" 3 none "no images found"
mk trunc; f="$T/trunc/bids/sub-02/func/sub-02_task-rest_bold.nii.gz"; head -c 20000 "$f" >"$f.x"; mv "$f.x" "$f"
run_case "truncated .nii.gz -> 3, names the file" 3 trunc "sub-02_task-rest_bold.nii.gz"
mk trunc2; f="$T/trunc2/bids/sub-01/func/sub-01_task-rest_bold.nii"; gzip -dc "$f.gz" | head -c 200000 >"$f"; rm "$f.gz"
run_case "truncated .nii -> 3" 3 trunc2 "sub-01_task-rest_bold.nii"
mk three; "$PY" -c "
import nibabel as nib, numpy as np
nib.save(nib.Nifti1Image(np.ones((20,24,20),np.float32), nib.load('$AAL').affine), '$T/three/bids/sub-01/func/sub-01_task-rest_bold.nii.gz')"
run_case "3D image -> 3 (not a 4D time series)" 3 three "not a 4D"
mk cplx; "$PY" -c "
import nibabel as nib, numpy as np
nib.save(nib.Nifti1Image(np.ones((4,4,4,5),np.complex64), np.eye(4)), '$T/cplx/bids/sub-01/func/sub-01_task-rest_bold.nii.gz')"
run_case "complex datatype -> 3" 3 cplx "sub-01_task-rest_bold"
mk nan; "$PY" -c "
import nibabel as nib, numpy as np
p='$T/nan/bids/sub-02/func/sub-02_task-rest_bold.nii.gz'; i=nib.load(p); d=i.get_fdata().astype(np.float32); d[10,12,10,7]=np.nan
nib.save(nib.Nifti1Image(d, i.affine, i.header), p)"
run_case "NaN voxel -> 3, names file and volume" 3 nan "volume 7"
mk far; "$PY" -c "
import nibabel as nib, numpy as np
a=nib.load('$AAL'); A=a.affine.copy(); A[0,3]+=5000
nib.save(nib.Nifti1Image(np.asarray(a.dataobj), A), '$T/far/far.nii.gz')"
sed -i "s#path: $AAL#path: $T/far/far.nii.gz#" "$T/far/p.yaml"
run_case "atlas not overlapping the data -> 3" 3 far "does not overlap"
mk eio; f="$T/eio/bids/sub-02/func/sub-02_task-rest_bold.nii"; rm "$f.gz"; ln -s /proc/self/mem "$f"
run_case "unreadable image (read error) -> 4" 4 eio "sub-02_task-rest_bold.nii"
mk mr; f="$T/mr/bids/sub-02/func/sub-02_task-rest_bold.nii.gz"; head -c 20000 "$f" >"$f.x"; mv "$f.x" "$f"
run_case "failure on rank 1 of 2 -> 3 on every rank, no hang" 3 mr "sub-02" 2
mk nyq; sed -i 's/detrend: true/detrend: true, low_pass: 0.4/' "$T/nyq/p.yaml"
run_case "low_pass above Nyquist -> 3, says Nyquist" 3 nyq "Nyquist"
# on_error: skip: the bad subject is left out, the run ends with 9 (partial)
mk skip skip; f="$T/skip/bids/sub-02/func/sub-02_task-rest_bold.nii.gz"; head -c 20000 "$f" >"$f.x"; mv "$f.x" "$f"
run_case "on_error: skip -> 9 (partial), names the skipped image" 9 skip "skipped" 2
# a path of the pipeline file that does not fit: the message names the pipeline file, the
# line and column of the value, and the key (config_path_fail), whenever it is found
mk wdfile; touch "$T/wdfile/afile"; sed -i "s#^workdir: .*#workdir: $T/wdfile/afile#" "$T/wdfile/p.yaml"
run_case "workdir that is an existing file -> 4, names pipeline file, line and key" 4 wdfile \
  "p.yaml:2:10: '$T/wdfile/afile' exists but is not a folder.*(key 'workdir')"
mk noatlas; sed -i "s#path: $AAL#path: $T/noatlas/nothere.nii.gz#" "$T/noatlas/p.yaml"
run_case "missing atlas file -> 3 (bad input, like every missing input), names line and key" 3 noatlas \
  "p.yaml:9:23: atlas 'aal': '$T/noatlas/nothere.nii.gz' is not a file.*(key 'atlases.aal.path')"
mk nobids; rm -r "$T/nobids/bids"
run_case "missing dataset folder -> 3, names line and key" 3 nobids \
  "p.yaml:6:9: the dataset folder '$T/nobids/bids' does not exist.*(key 'inputs.bids')"
mk nopart; rm "$T/nopart/bids/participants.tsv"
run_case "missing participants.tsv -> 3, names the key (a default value)" 3 nopart \
  "p.yaml: the participants table '$T/nopart/bids/participants.tsv' does not exist.*(key 'inputs.participants', default value)"
