#!/usr/bin/env bash
# nifti_nibabel.sh: bgfm's NIfTI reader against nibabel on the real fMRI files shipped
# with nitime and nipy (and byte-swapped / NIfTI-2 / scaled copies made by nibabel),
# and files written by bgfm's writer read back by nibabel. Not the unit tests.
source "$(dirname "$0")/../lib/tap.sh"
TN="$ROOT/${BGFM_BUILD:-build}/tests/test_nifti"
REF="$ROOT/tests/reference/nifti_nibabel.py"
FMRI=(/usr/lib/python3/dist-packages/nitime/data/fmri1.nii.gz
      /usr/lib/python3/dist-packages/nipy/testing/functional.nii.gz)
[ -x "$TN" ] || { notok "test_nifti is built (make $TN)"; exit 1; }
k=0
for f in "${FMRI[@]}"; do
  k=$((k + 1))
  if [ ! -f "$f" ]; then ok "# SKIP $f absent"; continue; fi
  name=$(basename "$f" .nii.gz)
  check "read $name = nibabel (dims, pixdim, affine, TR, every voxel)" \
    bash -c "'$TN' --dump '$f' '$T/d$k' && '$PY' '$REF' compare '$f' '$T/d$k'"
  mkdir -p "$T/v$k"
  if "$PY" "$REF" variants "$f" "$T/v$k"; then
    for v in swapped.nii.gz nifti2.nii scaled_u16.nii.gz; do
      check "read $name/$v = nibabel" \
        bash -c "'$TN' --dump '$T/v$k/$v' '$T/v$k/d' && '$PY' '$REF' compare '$T/v$k/$v' '$T/v$k/d'"
    done
  else
    notok "nibabel variants of $name"
  fi
  # a real .nii.gz cut in the middle, and one with damaged bytes: exit 3 naming the file
  sz=$(stat -c %s "$f")
  head -c $((sz / 2)) "$f" > "$T/cut$k.nii.gz"
  "$TN" --dump "$T/cut$k.nii.gz" "$T/cutd" 2> "$T/cut.err"; rc=$?
  if [ "$rc" -eq 3 ] && grep -q "cut$k.nii.gz" "$T/cut.err" && grep -qi "truncated\|volume" "$T/cut.err"; then
    ok "truncated $name.nii.gz -> exit 3 naming the file"
  else notok "truncated $name.nii.gz -> exit $rc: $(cat "$T/cut.err")"; fi
  cp "$f" "$T/bad$k.nii.gz"
  printf '\x55\xaa\x55\xaa\x55\xaa\x55\xaa\x55\xaa\x55\xaa\x55\xaa\x55\xaa' |
    dd of="$T/bad$k.nii.gz" bs=1 seek=$((sz / 2)) conv=notrunc status=none
  "$TN" --dump "$T/bad$k.nii.gz" "$T/badd" 2> "$T/bad.err"; rc=$?
  if [ "$rc" -eq 3 ] && grep -q "bad$k.nii.gz" "$T/bad.err"; then
    ok "corrupted $name.nii.gz -> exit 3 naming the file"
  else notok "corrupted $name.nii.gz -> exit $rc: $(cat "$T/bad.err")"; fi
done
# the writer: nibabel must read back affine, dims, zooms, TR and data
for spec in "16 1 w32.nii.gz" "4 3 w16.nii.gz" "2 0 w8.nii" "16 0 w32.nii"; do
  set -- $spec
  check "writer datatype $1 ($3) read back by nibabel" \
    bash -c "'$TN' --write-pattern '$T/$3' $1 $2 && '$PY' '$REF' written '$T/$3' $1"
done
