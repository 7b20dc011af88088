#!/usr/bin/env bash
# model_torch.sh: `bgfm grad` dumps for the three modes and two atlases with different
# N in ONE model (same init seed), checked by the independent PyTorch float64
# implementation of docs/model.md (model_torch.py): losses 1e-5, gradients 1e-4 rel L2.
source "$(dirname "$0")/../lib/tap.sh"
REF="$ROOT/tests/reference"
$PY "$REF/model_graphs.py" "$T/g.h5" aal:30:6 ho:17:4 --seed 3 || { notok "make test graphs"; exit 1; }
ARCH="--init 11 --hidden 32 --heads 4 --ffn 48 --proj 16 --n-max 40 --layers 2 --decoder-layers 2"
for m in gmae gcl gmae+gcl; do
  check "grad dump aal $m" "$BGFM" grad --graphs "$T/g.h5" --atlas aal --indices 0,2,3,5 $ARCH \
    --mode "$m" --out "$T/aal_$m.h5"
  check "grad dump ho $m" "$BGFM" grad --graphs "$T/g.h5" --atlas ho --indices 6,7,9 $ARCH \
    --mode "$m" --mask-ratio 0.3 --out "$T/ho_$m.h5"
done
# view b from partner graphs (another window of the scan), both modes with a view b
for m in gcl gmae+gcl; do
  check "grad dump aal $m partners" "$BGFM" grad --graphs "$T/g.h5" --atlas aal --indices 0,2,3,5 \
    --partners 1,4,0,2 $ARCH --mode "$m" --out "$T/aal_pairs_$m.h5"
done
# a decoder that reads the graph embedding: beside the node embeddings, or alone; in gmae
# mode (no contrastive term) too, with both readouts
for di in nodes+graph graph; do
  for m in gmae gmae+gcl; do
    check "grad dump aal $m decoder_input $di" "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
      --indices 0,2,3,5 --partners 1,4,0,2 $ARCH --mode "$m" --decoder-input "$di" \
      --out "$T/aal_dec_${di/+/_}_$m.h5"
  done
  check "grad dump ho gmae+gcl decoder_input $di mean readout" "$BGFM" grad --graphs "$T/g.h5" \
    --atlas ho --indices 6,7,9 $ARCH --readout mean --decoder-input "$di" --out "$T/ho_dec_${di/+/_}.h5"
done
# the partner's rows as the reconstruction target, with and without the contrastive term
for m in gmae gmae+gcl; do
  check "grad dump aal $m rec_target partner" "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
    --indices 0,2,3,5 --partners 1,4,0,2 $ARCH --mode "$m" --rec-target partner \
    --out "$T/aal_recp_$m.h5"
done
# the mean readout (the region readout above is the default)
check "grad dump aal gmae+gcl mean readout" "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2,3,5 $ARCH --readout mean --out "$T/aal_mean.h5"
# raw FC inputs (population input normalisation, the default, is in every dump above)
check "grad dump aal gmae+gcl without input normalisation" "$BGFM" grad --graphs "$T/g.h5" \
  --atlas aal --indices 0,2,3,5 $ARCH --input-norm none --out "$T/aal_nonorm.h5"
$PY "$REF/model_torch.py" "$T"/aal_*.h5 "$T"/ho_*.h5
# the dumps really carry the readout they claim
$PY - "$T/aal_gcl.h5" "$T/aal_mean.h5" <<'PY' && ok "dumps record region / mean readouts" || notok "dumps record region / mean readouts"
import sys, h5py
a, b = (h5py.File(f, "r") for f in sys.argv[1:])
assert a["params"].attrs["readout"] in (b"region", "region") and "readout/Wc" in a["params"]
assert b["params"].attrs["readout"] in (b"mean", "mean") and "readout" not in b["params"]
PY
# the normalisation in the dumps is the population's: numpy over every graph of the store
$PY - "$T/g.h5" "$T/aal_gcl.h5" "$T/aal_nonorm.h5" <<'PY' && ok "norm buffers = numpy mean/sd of each FC entry over the store's graphs; none has no buffers" || notok "norm buffers = numpy mean/sd of each FC entry over the store's graphs; none has no buffers"
import sys, h5py, numpy as np
d, n = h5py.File(sys.argv[2], "r"), h5py.File(sys.argv[3], "r")
# the store (model_graphs.py layout): every aal graph
g = h5py.File(sys.argv[1], "r")
fc = g["graphs/aal/fc"][()].astype(np.float64)
mu, sd = fc.mean(0), np.maximum(fc.std(0), 0.01)
assert np.abs(d["params/norm/aal/mean"][()] - mu).max() < 1e-6, np.abs(d["params/norm/aal/mean"][()] - mu).max()
assert np.abs(d["params/norm/aal/std"][()] - sd).max() < 1e-5
assert not np.any(d["grad/norm/aal/mean"][()]) and "norm" not in n["params"]
PY
$PY - "$T/aal_pairs_gcl.h5" "$T/aal_gcl.h5" <<'PY' && ok "partner dumps hold the partners' graphs and change the loss" || notok "partner dumps hold the partners' graphs and change the loss"
import sys, h5py, numpy as np
p, s = (h5py.File(f, "r") for f in sys.argv[1:])
# partners 1,4,0,2 of graphs 0,2,3,5: graph 3's partner is graph 0, graph 5's is graph 2
assert np.array_equal(p["inputs/fc_b"][2], s["inputs/fc"][0])
assert np.array_equal(p["inputs/fc_b"][3], s["inputs/fc"][1])
assert not np.array_equal(p["inputs/fc_b"][0], p["inputs/fc"][0])
assert p["loss/cl"][()] != s["loss/cl"][()]
PY
$PY - "$T/aal_dec_graph_gmae.h5" "$T/aal_gmae.h5" <<'PY' && ok "decoder_input graph: the readout gets the reconstruction's gradient, dec/re none" || notok "decoder_input graph: the readout gets the reconstruction's gradient, dec/re none"
import sys, h5py, numpy as np
g, n = (h5py.File(f, "r") for f in sys.argv[1:])
assert g["loss"].attrs["decoder_input"] in (b"graph", "graph")
assert np.abs(g["grad/readout/Wc"][()]).sum() > 0 and not np.any(n["grad/readout/Wc"][()])
assert not np.any(g["grad/dec/re/W"][()]) and np.abs(n["grad/dec/re/W"][()]).sum() > 0
PY
$PY - "$T/aal_recp_gmae.h5" "$T/aal_dec_nodes_graph_gmae.h5" <<'PY' && ok "rec_target partner: a different reconstruction loss from the same draws" || notok "rec_target partner: a different reconstruction loss from the same draws"
import sys, h5py, numpy as np
p, g = (h5py.File(f, "r") for f in sys.argv[1:])
assert p["loss"].attrs["rec_target"] in (b"partner", "partner") and g["loss"].attrs["rec_target"] in (b"graph", "graph")
assert np.array_equal(p["draws/mask"][()], g["draws/mask"][()]) and p["loss/rec"][()] != g["loss/rec"][()]
PY
expect_rc "grad rejects an unknown decoder input" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2 $ARCH --decoder-input nodes+edges --out "$T/x.h5"
expect_rc "grad rejects partners of another count" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,2 --partners 1 $ARCH --out "$T/x.h5"
expect_rc "grad rejects a graph of another atlas" 2 "$BGFM" grad --graphs "$T/g.h5" --atlas aal \
  --indices 0,7 $ARCH --out "$T/x.h5"
