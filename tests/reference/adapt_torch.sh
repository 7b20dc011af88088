#!/usr/bin/env bash
# adapt_torch.sh: `bgfm grad --task` dumps of the adaptation step (docs/adapt.md: the
# encoder on the full graphs, the readout, the task head; cross-entropy with 2 and 3
# classes, squared error), region and mean readouts, with and without the input
# normalisation, two atlases of one model; checked by the independent PyTorch float64
# reference (adapt_torch.py, built on model_torch.py): loss 1e-5, every gradient 1e-4
# relative L2, zero gradients off the path; with graph prompts (docs/adapt.md "prompt")
# the feature and edge prompts' gradients too, and the frozen encoder's prompt gradients.
source "$(dirname "$0")/../lib/tap.sh"
REF="$ROOT/tests/reference"
$PY "$REF/model_graphs.py" "$T/g.h5" aal:30:6 ho:17:4 --seed 5 || { notok "make test graphs"; exit 1; }
ARCH="--init 7 --hidden 32 --heads 4 --ffn 48 --proj 16 --n-max 40 --layers 2 --decoder-layers 1"
check "dump: classify 2 classes, aal" "$BGFM" grad --graphs "$T/g.h5" --atlas aal --indices 0,2,3,5 \
  $ARCH --task classify --targets 0,1,1,0 --out "$T/c2.h5"
check "dump: classify 3 classes, ho" "$BGFM" grad --graphs "$T/g.h5" --atlas ho --indices 6,7,9 \
  $ARCH --task classify --targets 2,0,1 --out "$T/c3.h5"
check "dump: regress, aal" "$BGFM" grad --graphs "$T/g.h5" --atlas aal --indices 1,2,4 $ARCH \
  --task regress --targets 0.5,-1.25,2 --out "$T/r.h5"
check "dump: classify, mean readout, no input normalisation" "$BGFM" grad --graphs "$T/g.h5" \
  --atlas aal --indices 0,1,2,3 $ARCH --readout mean --input-norm none --task classify \
  --targets 1,0,0,1 --out "$T/cm.h5"
check "dump: classify with graph prompts, aal, margin 2" "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2,3,5 $ARCH --task classify --targets 0,1,1,0 --prompt full --prompt-margin 2 --out "$T/p2.h5"
check "dump: the same with the encoder frozen" "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2,3,5 $ARCH --task classify --targets 0,1,1,0 --prompt frozen --prompt-margin 2 --out "$T/pf.h5"
check "dump: regress with graph prompts, ho, mean readout, margin 6" "$BGFM" grad --graphs "$T/g.h5" \
  --atlas ho --indices 6,7,9 $ARCH --readout mean --task regress --targets 0.5,-1,2 --prompt full \
  --out "$T/pr.h5"
$PY "$REF/adapt_torch.py" "$T/c2.h5" "$T/c3.h5" "$T/r.h5" "$T/cm.h5" "$T/p2.h5" "$T/pr.h5"
# frozen: the prompts' and the head's gradients are the full dump's (the same backward
# through the blocks), the encoder's are all zero (not computed); prompt sizes N x H, N(N-1)/2
check "frozen encoder: prompt and head gradients as with the encoder, encoder gradients 0" \
  $PY - "$T/p2.h5" "$T/pf.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(f, "r") for f in sys.argv[1:])
assert a["params/prompt/feat"].shape == (30, 32) and a["params/prompt/edge"].shape == (30 * 29 // 2,)
for t in ["prompt/feat", "prompt/edge", "head/W", "head/b"]:
    x, y = a["grad/" + t][()], b["grad/" + t][()]
    assert np.abs(x).max() > 0, t
    assert np.allclose(x, y, rtol=1e-5, atol=1e-7 * np.abs(x).max()), t
names = []
b["grad"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
enc = [n for n in names if not n.startswith(("prompt/", "head/"))]
assert len(enc) > 20 and all(np.abs(b["grad/" + n][()]).max() == 0 for n in enc)
PY
expect_rc "grad --prompt without --task is exit 2" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2 $ARCH --prompt full --out "$T/x.h5"
# the dumps carry what the reference reads: a head of the right shape, the targets
check "head shapes and targets in the dumps" $PY - "$T/c3.h5" "$T/r.h5" <<'PY'
import sys, h5py
c, r = (h5py.File(f, "r") for f in sys.argv[1:])
assert c["params/head/W"].shape == (3, 32) and c["params/head/b"].shape == (3,)
assert r["params/head/W"].shape == (1, 32) and list(r["inputs/targets"][()]) == [0.5, -1.25, 2.0]
assert c["loss"].attrs["task"] in (b"classify", "classify") and int(c["loss"].attrs["outputs"]) == 3
PY
expect_rc "grad --task without --targets is exit 2" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2 $ARCH --task classify --out "$T/x.h5"
expect_rc "grad --targets of another count is exit 2" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2 $ARCH --task classify --targets 0,1,1 --out "$T/x.h5"
expect_rc "grad --targets not a class index is exit 2" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2 $ARCH --task classify --targets 0,1.5 --out "$T/x.h5"
