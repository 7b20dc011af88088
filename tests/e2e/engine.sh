#!/usr/bin/env bash
# engine.sh: bgfm run's rerun logic on a tiny real dataset: complete outputs with a
# manifest, skip when nothing changed, rerun on changed parameters or input contents,
# --dry-run / --force / --only / --from, the workdir lock, validate, exit codes.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 3 --volumes 16
mk() {  # mk FILE DETREND
cat >"$1" <<YAML
name: engine
workdir: $T/w
seed: 3
inputs: {bids: $T/d/bids}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
stages:
  - {name: parc, uses: parcellate, with: {detrend: $2, standardize: none}}
YAML
}
mk "$T/p.yaml" false
$BGFM run "$T/p.yaml" --quiet >"$T/o1" 2>&1
rc=$?
check "first run succeeds" test $rc -eq 0
check "output and manifest exist" test -f "$T/w/parc/timeseries.h5" -a -f "$T/w/parc/manifest.json"
check "no partial folder left" test ! -e "$T/w/.parc.partial"
check "metrics line written" grep -q '"event": "stage"' "$T/w/metrics.jsonl"
# the BLAS kernel that ran (float32 training follows its rounding): the manifest's word
# against OpenBLAS's own report of the core it chose
core=$(OPENBLAS_VERBOSE=2 $BGFM --version 2>&1 | sed -n 's/^Core: //p' | head -1)
blas=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['blas'])" "$T/w/parc/manifest.json")
check "manifest names the OpenBLAS kernel ($core)" test -n "$core" -a "${blas#OpenBLAS }" != "$blas" -a "${blas/ $core /}" != "$blas"
m1=$(stat -c %Y.%i "$T/w/parc/timeseries.h5"); s1=$(sha256sum <"$T/w/parc/timeseries.h5")
$BGFM run "$T/p.yaml" >"$T/o2" 2>&1
check "second run skips the stage" grep -q "up to date, skipped" "$T/o2"
check "skipped output untouched" test "$m1" = "$(stat -c %Y.%i "$T/w/parc/timeseries.h5")"
$BGFM run "$T/p.yaml" --dry-run >"$T/o3" 2>&1
check "dry-run says up to date" grep -qE "parc +parcellate +up to date" "$T/o3"
mk "$T/p.yaml" true
$BGFM run "$T/p.yaml" --dry-run >"$T/o4" 2>&1
check "dry-run sees the changed parameter" grep -q "inputs or parameters changed" "$T/o4"
check "dry-run wrote nothing" test "$m1" = "$(stat -c %Y.%i "$T/w/parc/timeseries.h5")"
$BGFM run "$T/p.yaml" --quiet >/dev/null 2>&1
s2=$(sha256sum <"$T/w/parc/timeseries.h5")
check "changed parameter reran the stage" test "$s1" != "$s2"
mk "$T/p.yaml" false
$BGFM run "$T/p.yaml" --quiet >/dev/null 2>&1
check "back to the first parameters: bit-identical output" test "$s1" = "$(sha256sum <"$T/w/parc/timeseries.h5")"
# change an input's contents (same name): the stage reruns
$PY - "$T/d/bids/sub-02/func/sub-02_task-rest_bold.nii.gz" <<'PYEOF'
import sys, nibabel as nib, numpy as np
im = nib.load(sys.argv[1]); d = np.asarray(im.dataobj).copy(); d[d != 0] += 1.0
nib.save(nib.Nifti1Image(d, im.affine, im.header), sys.argv[1])
PYEOF
$BGFM run "$T/p.yaml" >"$T/o5" 2>&1
check "changed input contents reran the stage" grep -q "running: inputs or parameters changed" "$T/o5"
$BGFM run "$T/p.yaml" --force >"$T/o6" 2>&1
check "--force reruns" grep -q "running: --force" "$T/o6"
$BGFM run "$T/p.yaml" --only parc >"$T/o7" 2>&1
check "--only of an up-to-date stage skips" grep -q "up to date" "$T/o7"
$BGFM run "$T/p.yaml" --from parc >"$T/o8" 2>&1
check "--from reruns from that stage" grep -q "running: --from" "$T/o8"
expect_rc "--only with an unknown stage is a usage error" 2 $BGFM run "$T/p.yaml" --only parx --quiet 2>"$T/o9"
check "unknown stage suggests the nearest" grep -q "did you mean 'parc'" "$T/o9"
expect_rc "missing pipeline file" 2 $BGFM run "$T/nope.yaml" 2>/dev/null
expect_rc "unknown option" 2 $BGFM run "$T/p.yaml" --frobnicate 2>/dev/null
$BGFM validate "$T/p.yaml" >"$T/v" 2>&1
check "validate prints resolved defaults and the plan" grep -q "standardize: none" "$T/v"
check "validate prints min_coverage default" grep -q "min_coverage" "$T/v"
# the lock: hold it with flock, bgfm must refuse
( flock -x 9; sleep 3 ) 9>"$T/w/.bgfm/lock" &
sleep 0.5
expect_rc "a second run on a locked workdir is refused" 2 $BGFM run "$T/p.yaml" --force --quiet 2>"$T/o10"
check "lock message names the workdir" grep -q "another bgfm run is using workdir" "$T/o10"
wait
# out of memory in the engine's own allocations (injected by purpose): exit 5 naming it
oom_run() {  # oom_run WHAT: bgfm run --force with the first allocation for WHAT failing
  BGFM_FAIL_ALLOC_WHAT="$1" $BGFM run "$T/p.yaml" --force --quiet 2>"$T/o12"
  [ $? -eq 5 ] && grep -q "out of memory allocating .* for $1\$" "$T/o12"
}
for what in "planned stages" "input hash records" "peak RSS of the ranks" "old output folder path"; do
  check "out of memory for '$what': exit 5 naming it" oom_run "$what"
done
# a failing stage leaves the previous complete output intact and no partial folder
s3=$(sha256sum <"$T/w/parc/timeseries.h5")
printf 'garbage' >"$T/d/bids/sub-03/func/sub-03_task-rest_bold.nii.gz"
$BGFM run "$T/p.yaml" --quiet 2>"$T/o11"; rc=$?
check "corrupt input: data error exit code 3" test $rc -eq 3
check "corrupt input: message names the file" grep -q "sub-03_task-rest_bold.nii.gz" "$T/o11"
check "failed rerun kept the earlier complete output" test "$s3" = "$(sha256sum <"$T/w/parc/timeseries.h5")"
check "failed rerun left no partial folder" test ! -e "$T/w/.parc.partial"
