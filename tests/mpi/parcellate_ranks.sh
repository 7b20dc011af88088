#!/usr/bin/env bash
# parcellate_ranks.sh: timeseries.h5 has the same bytes in every dataset and attribute,
# and the same file bytes (cmp), for 1, 2 and 3 ranks, and for 5 ranks with 3 subjects
# (ranks without a subject).
source "$(dirname "$0")/../lib/tap.sh"
REF="$(cd "$(dirname "$0")/../reference" && pwd)"
"$PY" - "$T" "$REF" <<'PYEOF' || { notok "make dataset"; exit 1; }
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from parcellate_lib import make_subject, write_tsv, write_pipeline
T = sys.argv[1]
rng = np.random.default_rng(7)
aff = np.array([[-6., 0, 0, 90], [0, 6, 0, -126], [0, 0, 6, -72], [0, 0, 0, 1]])
aff3 = np.array([[-5., 0, 0, 90], [0, 5, 0, -126], [0, 0, 5, -72], [0, 0, 0, 1]])
rows = []
# 3 subjects, different sizes and grids; sub-02 has two sessions (4 images)
for s, ses, shape, a, nt in [("01", None, (26, 30, 26), aff, 50), ("02", "a", (26, 30, 26), aff, 40),
                             ("02", "b", (31, 36, 31), aff3, 45), ("03", None, (26, 30, 26), aff, 70)]:
    d = f"{T}/bids/sub-{s}" + (f"/ses-{ses}" if ses else "") + "/func"
    make_subject(f"{d}/sub-{s}{'_ses-' + ses if ses else ''}_task-rest_bold.nii.gz", rng, shape,
                 a, nt, 2.0, "int16" if s == "03" else "float32")
write_tsv(f"{T}/bids/participants.tsv",
          [{"participant_id": "sub-01", "diagnosis": 1, "age": 20.5},
           {"participant_id": "sub-02", "diagnosis": 0, "age": "n/a"},
           {"participant_id": "sub-03", "diagnosis": 1, "age": 44}],
          ["participant_id", "diagnosis", "age"])
for np_ in (1, 2, 3, 5):
    write_pipeline(f"{T}/p{np_}.yaml", f"{T}/w{np_}", f"{T}/bids",
                   [("aal", "/usr/share/mricron/templates/aal.nii.gz"),
                    ("ho", "/usr/share/mricron/templates/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz"),
                    ("aicha", "/usr/share/mricron/templates/AICHAmc.nii.gz")],
                   {"detrend": "true", "high_pass": 0.01, "low_pass": 0.1,
                    "standardize": "zscore"})
PYEOF
for np_ in 1 2 3 5; do
  expect_rc "bgfm run on $np_ rank(s)" 0 $MPIRUN $np_ "$BGFM" run "$T/p$np_.yaml" --quiet
done
cmp_h5() {
"$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def items(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o))
    return out
ia, ib = items(a), items(b)
assert sorted(ia) == sorted(ib), (sorted(ia), sorted(ib))
for n, o in ia.items():
    if isinstance(o, h5py.Dataset):
        x, y = o[()], ib[n][()]
        assert x.dtype == y.dtype and x.shape == y.shape, n
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), n
    assert dict(o.attrs).keys() == dict(ib[n].attrs).keys(), n
    for k in o.attrs:
        assert np.asarray(o.attrs[k]).tobytes() == np.asarray(ib[n].attrs[k]).tobytes(), (n, k)
for k in a.attrs:
    assert np.asarray(a.attrs[k]).tobytes() == np.asarray(b.attrs[k]).tobytes(), k
assert a.attrs["n_subjects"] == 4 and a["atlases/aal/offsets"][-1] == 50 + 40 + 45 + 70
PYEOF
}
for np_ in 2 3 5; do
  check "timeseries.h5 identical: 1 vs $np_ ranks" cmp_h5 "$T/w1/parcellate/timeseries.h5" "$T/w$np_/parcellate/timeseries.h5"
  check "timeseries.h5 byte-identical file (cmp): 1 vs $np_ ranks" cmp "$T/w1/parcellate/timeseries.h5" "$T/w$np_/parcellate/timeseries.h5"
done
check "metrics line with peak RSS of each of 5 ranks" \
  "$PY" -c "import json,sys; L=[json.loads(l) for l in open('$T/w5/metrics.jsonl')]; m=[x for x in L if x.get('kind')=='parcellate' and 'subjects_per_s' in x][0]; sys.exit(0 if len(m['peak_rss_mib'])==5 and m['subjects']==4 else 1)"
