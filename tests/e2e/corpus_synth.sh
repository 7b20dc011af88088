#!/usr/bin/env bash
# corpus_synth.sh: `bgfm synth --datasets K` (docs/synth.md, docs/corpus.md): K datasets of
# one population in one call, each with its own TR (--tr A,B), colliding ids; dataset 2 is
# byte for byte (a .gz file: its decompressed bytes, tap.sh's content_sum) the dataset a
# separate call with --first-subject S makes; the population
# (every model.json key but the subjects' draws and their median liability) is the same
# in both, the subjects differ; the TRs in the
# image headers (nibabel); bad lists refused (exit 2, nothing written).
source "$(dirname "$0")/../lib/tap.sh"
expect_rc "synth --datasets 2 --tr 2.0,0.8 on 2 ranks" 0 $MPIRUN 2 "$BGFM" synth --out "$T/c" --datasets 2 --subjects 4 --volumes 20 --tr 2.0,0.8 --sites 2 --seed 5 --quiet
expect_rc "a separate call: --first-subject 4 --tr 0.8" 0 "$BGFM" synth --out "$T/one" --subjects 4 --volumes 20 --tr 0.8 --sites 2 --seed 5 --first-subject 4 --quiet
same_files() { local a=$1 b=$2 f n=0
  for f in $(cd "$a" && find . -type f | sort); do
    [ -f "$b/$f" ] && [ "$(content_sum "$a/$f")" = "$(content_sum "$b/$f")" ] || return 1; n=$((n + 1)); done
  [ "$n" -gt 10 ] && [ "$n" -eq "$(cd "$b" && find . -type f | wc -l)" ]; }
check "dataset 2 = the separate call, every file byte for byte (.gz: decompressed)" same_files "$T/c/ds-2" "$T/one"
check "one population, other subjects, their own TRs, ids sub-01..04 in both" $PY - "$T/c" <<'PYEOF'
import sys, json, csv, glob
import nibabel as nib, numpy as np
c = sys.argv[1]
m = [json.load(open(f"{c}/ds-{k}/derivatives/synth/model.json")) for k in (1, 2)]
# the population: every key of model.json but the subjects' own draws and what is
# computed from them (the liability threshold splits each sample at its median), and TR
per_sample = {"participants", "liability_threshold", "first_subject", "tr"}
assert set(m[1]) - set(m[0]) == {"first_subject"} and m[1]["first_subject"] == 4
for key in set(m[0]) - per_sample:
    assert m[0][key] == m[1][key], key
assert m[0]["participants"] != m[1]["participants"]
ids = [[r["participant_id"] for r in csv.DictReader(open(f"{c}/ds-{k}/participants.tsv"), delimiter="\t")] for k in (1, 2)]
assert ids[0] == ids[1] == ["sub-01", "sub-02", "sub-03", "sub-04"], ids
for k, tr in ((1, 2.0), (2, 0.8)):
    for f in sorted(glob.glob(f"{c}/ds-{k}/sub-*/func/*_bold.nii.gz")):
        assert abs(nib.load(f).header.get_zooms()[3] - tr) < 1e-6, (f, tr)
a = np.asarray(nib.load(glob.glob(f"{c}/ds-1/sub-01/func/*_bold.nii.gz")[0]).dataobj)
b = np.asarray(nib.load(glob.glob(f"{c}/ds-2/sub-01/func/*_bold.nii.gz")[0]).dataobj)
assert not np.array_equal(a, b), "sub-01 of the two datasets is the same person"
PYEOF
"$BGFM" synth --out "$T/bad" --datasets 3 --tr 2.0,0.8 --subjects 4 >"$T/out" 2>&1; rc=$?
check "--tr with 2 values for --datasets 3: exit 2, nothing written" test $rc -eq 2 -a ! -e "$T/bad" -a -n "$(grep -l 'one per dataset (--datasets 3); got 2 and 1' "$T/out")"
