#!/usr/bin/env bash
# export.sh: `bgfm export` and the way back (`init: FILE.safetensors`), on a tiny
# two-atlas pipeline run through the probe: the files parsed by an independent reader
# (tests/reference/safetensors_ref.py: byte layout, names by the documented table, every
# tensor bit-equal to the checkpoint, metadata) and by python/bgfm_torch; one rank writes
# (2 ranks give the same bytes); PyTorch graph embeddings = the probe's C embeddings for
# both atlases (float32, 1e-5 relative); bgfm -> safetensors -> PyTorch -> safetensors is
# byte-identical; weights edited in PyTorch come back into bgfm bit-exactly (lr: 0), an
# encoder-only file leaves the decoder/head at the random init; training from the
# safetensors file = training from the HDF5 checkpoint, bit for bit; hostile files
# refused before training with exit 3 naming the file and the tensor (and by the Python
# loader); export's errors and exit codes; the example of docs/export.md runs.
source "$(dirname "$0")/../lib/tap.sh"
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
W="$T/w"
tiny_dataset "$T/d" --subjects 8 --volumes 40 --seed 3
$PY - "$T/d" <<'PYEOF' || { notok "second atlas"; exit 1; }
import sys, nibabel as nib, numpy as np
d = sys.argv[1]
a = nib.load(d + "/atlas.nii.gz")
lab = np.asarray(a.dataobj).astype(np.int16)
z = np.arange(lab.shape[2])[None, None, :] >= 3
b = np.where((lab == 1) & z, 5, np.where((lab == 2) & z, 6, np.where(lab == 4, 0, lab))).astype(np.int16)
img = nib.Nifti1Image(b, a.affine); img.set_qform(a.affine, 1); img.set_sform(a.affine, 1)
nib.save(img, d + "/atlas2.nii.gz")
PYEOF
ARCH="hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, batch_size: 8"
mk() {  # mk FILE [EXTRA STAGE LINES]: the demo's stage names, two atlases (so not pipeline_yaml)
cat >"$1" <<YAML
name: ex
workdir: $W
seed: 9
inputs: {bids: $T/d/bids}
atlases:
  - {name: tiny, path: $T/d/atlas.nii.gz}
  - {name: five, path: $T/d/atlas2.nii.gz}
stages:
  - {name: parcellate, uses: parcellate, with: {standardize: zscore}}
  - {name: connectivity, uses: connectivity, with: {windows: {length: 10, stride: 5}}}
  - {name: pretrain, uses: pretrain, with: {epochs: 2, $ARCH}}
  - {name: probe, uses: probe, with: {folds: 2}}
${2:-}
YAML
}
mk "$T/p.yaml"
expect_rc "tiny two-atlas pipeline up to the probe" 0 "$BGFM" run "$T/p.yaml" --quiet
CK="$W/pretrain/final.h5"
expect_rc "bgfm export (encoder)" 0 "$BGFM" export "$CK" --out "$T/enc.safetensors"
expect_rc "bgfm export --full" 0 "$BGFM" export "$CK" --out "$T/full.safetensors" --full
check "no temporary file left" test -z "$(ls "$T" | grep tmp-)"
expect_rc "bgfm export on 2 ranks" 0 $MPIRUN 2 "$BGFM" export "$CK" --out "$T/enc2r.safetensors"
check "2 ranks write the same bytes as 1 (one rank writes)" cmp -s "$T/enc.safetensors" "$T/enc2r.safetensors"
expect_rc "bgfm export --no-sync" 0 "$BGFM" export "$CK" --out "$T/enc_ns.safetensors" --no-sync
check "  ... the same bytes as with the fsyncs" cmp -s "$T/enc.safetensors" "$T/enc_ns.safetensors"
if command -v strace >/dev/null; then  # the fsyncs themselves, where strace is installed
  strace -f -e trace=fsync,fdatasync -o "$T/sync.tr" "$BGFM" export "$CK" --out "$T/s1.safetensors" >/dev/null 2>&1
  strace -f -e trace=fsync,fdatasync -o "$T/nosync.tr" "$BGFM" export "$CK" --out "$T/s2.safetensors" --no-sync >/dev/null 2>&1
  check "  ... and no fsync, where export makes two (file and folder; strace)" \
    sh -c "[ \$(grep -c 'fsync(' '$T/sync.tr') -ge 2 ] && ! grep -q 'fsync(' '$T/nosync.tr'"
fi
$PY "$ROOT/tests/reference/safetensors_ref.py" "$T/enc.safetensors" "$CK" encoder | sed 's/^\(not \)*ok - /&encoder: /'
$PY "$ROOT/tests/reference/safetensors_ref.py" "$T/full.safetensors" "$CK" full | sed 's/^\(not \)*ok - /&full: /'

# ---- PyTorch: the package reads what the reference reads; embeddings = the probe's ----
$PY - "$T" "$CK" "$W" "$ROOT/tests/reference" <<'PYEOF'
import sys, h5py, numpy as np, torch
T, ck, W, ref = sys.argv[1:5]
sys.path.insert(0, ref)
import bgfm_torch as bt
from safetensors_ref import torch_name
def tap(ok, msg):
    print(("ok" if ok else "not ok") + " - " + msg)
f = h5py.File(ck, "r")
for which in ("enc", "full"):
    arrs, meta = bt.load_file(f"{T}/{which}.safetensors")
    names = []
    f["model"].visit(lambda x: names.append(x) if isinstance(f["model"][x], h5py.Dataset) else None)
    names = [n for n in names if which == "full" or not n.startswith(("dec/", "proj/"))]
    same = len(arrs) == len(names) and all(
        arrs[torch_name(n)].tobytes() == f["model"][n][()].astype("<f4").tobytes() for n in names)
    tap(same, f"bgfm_torch.load_file({which}): the checkpoint's {len(names)} tensors, bit for bit")
    m = bt.load(f"{T}/{which}.safetensors")
    sd = m.state_dict()
    tap(set(sd) == set(arrs) and all(sd[k].numpy().tobytes() == arrs[k].tobytes() for k in arrs),
        f"bgfm_torch.load({which}) is strict and uses every tensor")
    bt.save(m, f"{T}/{which}_rt.safetensors")
E = h5py.File(f"{W}/probe/report/embeddings.h5", "r")
g, ref_e = E["graph"][()], E["pretrained"][()]
atl = np.array([a.decode() for a in E["atlas"][()]])
m = bt.load(f"{T}/enc.safetensors")
emb, idx = bt.embed_store(m, bt.GraphStore(f"{W}/connectivity"))
got = emb[np.searchsorted(idx, g)]
rel = np.linalg.norm(got - ref_e, axis=1) / np.linalg.norm(ref_e, axis=1)
for a in ("tiny", "five"):
    s = atl == a
    tap(s.sum() > 0 and rel[s].max() < 1e-5,
        f"PyTorch embeddings = the probe's C embeddings, atlas {a}: {s.sum()} graphs, worst relative "
        f"error {rel[s].max():.1e} (float32)")
mf = bt.load(f"{T}/full.safetensors")
with torch.no_grad():
    it = bt.GraphStore(f"{W}/connectivity")[0]
    e1 = m(it["fc"][None], it["adj"][None], it["rwse"][None], it["atlas"])
    e2 = mf(it["fc"][None], it["adj"][None], it["rwse"][None], it["atlas"])
tap(torch.equal(e1, e2), "the full model embeds as the encoder does")
# weights edited in PyTorch, for the way back
with torch.no_grad():
    mf.enc[0].gcn.weight.mul_(0.5)
    mf.readout.bias.add_(1.0)
    mf.dec.mask_token.add_(0.25)
bt.save(mf, f"{T}/edited.safetensors", {"edited": "enc.0.gcn.weight x 0.5, readout.bias + 1, dec.mask_token + 0.25"})
PYEOF
check "bgfm -> safetensors -> PyTorch -> safetensors: the same bytes (encoder)" cmp -s "$T/enc.safetensors" "$T/enc_rt.safetensors"
check "bgfm -> safetensors -> PyTorch -> safetensors: the same bytes (full)" cmp -s "$T/full.safetensors" "$T/full_rt.safetensors"

# ---- the way back: init: FILE.safetensors ----
mk "$T/back.yaml" "  - {name: back_full, uses: pretrain, with: {epochs: 1, lr: 0, $ARCH, init: full_rt.safetensors}}
  - {name: back_enc, uses: pretrain, with: {epochs: 1, lr: 0, $ARCH, init: enc_rt.safetensors}}
  - {name: back_edit, uses: pretrain, with: {epochs: 1, lr: 0, $ARCH, init: edited.safetensors}}
  - {name: rnd, uses: pretrain, with: {epochs: 1, lr: 0, $ARCH, init: random}}
  - {name: cont_h5, uses: pretrain, with: {epochs: 1, $ARCH, init: pretrain}}
  - {name: cont_st, uses: pretrain, with: {epochs: 1, $ARCH, init: full.safetensors}}
  - {name: cont_enc, uses: pretrain, with: {epochs: 1, $ARCH, init: enc.safetensors}}"
expect_rc "pretrain stages starting from safetensors files" 0 "$BGFM" run "$T/back.yaml" --quiet
$PY - "$T" "$W" "$ROOT/tests/reference" <<'PYEOF'
import sys, json, h5py, numpy as np
T, W, ref = sys.argv[1:4]
sys.path.insert(0, ref)
import bgfm_torch as bt
from safetensors_ref import torch_name
def tap(ok, msg):
    print(("ok" if ok else "not ok") + " - " + msg)
def model(stage):
    f = h5py.File(f"{W}/{stage}/final.h5", "r")["model"]
    out = {}
    f.visit(lambda x: out.__setitem__(x, f[x][()]) if isinstance(f[x], h5py.Dataset) else None)
    return out
orig, full, enc, rnd = model("pretrain"), model("back_full"), model("back_enc"), model("rnd")
eq = lambda a, b: a.shape == b.shape and a.tobytes() == b.tobytes()
encn = [n for n in orig if not n.startswith(("dec/", "proj/"))]
tap(all(eq(enc[n], orig[n]) for n in encn),
    f"encoder-only file: its {len(encn)} tensors (norm buffers included) bit-exact in bgfm")
rest = [n for n in orig if n.startswith(("dec/", "proj/"))]
tap(all(eq(enc[n], rnd[n]) for n in rest) and not all(eq(enc[n], orig[n]) for n in rest),
    f"encoder-only file: decoder and head ({len(rest)} tensors) from the random init")
ed, _ = bt.load_file(f"{T}/edited.safetensors")
back = model("back_edit")
# the readout's axes (embedding pcs+pop) are fitted on the readouts after training, so a
# stage that starts from edited encoder weights fits them again on those
fitted = [n for n in orig if n.startswith("pcs/")]
tap(all(eq(back[n], ed[torch_name(n)]) for n in orig if n not in fitted)
    and not eq(back["enc/0/gcn/W"], orig["enc/0/gcn/W"])
    and (not fitted or not all(eq(back[n], ed[torch_name(n)]) for n in fitted)),
    f"weights edited in PyTorch come back into bgfm bit-exactly (the {len(fitted)} readout-axis "
    "tensors fitted again on the edited encoder)")
h5 = model("cont_h5")
tap(not eq(h5["enc/0/gcn/W"], orig["enc/0/gcn/W"]), "training from the checkpoint moved the weights")
lines = [json.loads(l) for l in open(f"{W}/metrics.jsonl")]
loss = lambda s: [l["loss"] for l in lines if l.get("stage") == s and l["event"] == "train_step"]
tap(loss("cont_h5") and loss("cont_h5") == loss("cont_st"), "... and the same loss curve")
ce = model("cont_enc")
tap(loss("cont_enc") and all(np.isfinite(loss("cont_enc")))
    and not eq(ce["enc/0/gcn/W"], orig["enc/0/gcn/W"]), "training from an encoder-only file runs")
PYEOF
check "round trip through PyTorch back into bgfm (lr: 0): every tensor bit-exact" \
  h5_same "$W/pretrain/final.h5" "$W/back_full/final.h5" /model 80
check "training from the --full safetensors file = training from the HDF5 checkpoint, bit for bit" \
  h5_same "$W/cont_h5/final.h5" "$W/cont_st/final.h5" /model 80
# the file is an input of the stage: changed contents -> rerun
$PY -c "
import bgfm_torch as bt, torch
m = bt.load('$T/edited.safetensors')
with torch.no_grad(): m.input.bias.add_(1)
bt.save(m, '$T/edited.safetensors')"
check "a changed init file makes its stage rerun" sh -c "'$BGFM' run '$T/back.yaml' --dry-run 2>&1 | grep -E '^ +back_edit +pretrain +run'"

# ---- hostile files: refused before training, exit 3, the file and the tensor named ----
$PY - "$T" <<'PYEOF'
import sys, json, numpy as np
import bgfm_torch as bt
T = sys.argv[1]
src = f"{T}/full.safetensors"
raw = open(src, "rb").read()
n = int.from_bytes(raw[:8], "little")
hdr, data = json.loads(raw[8:8 + n]), raw[8 + n:]
def put(name, h, d, hlen=None):
    b = json.dumps(h, separators=(",", ":")).encode()
    b += b" " * (-len(b) % 8)
    open(f"{T}/bad-{name}.safetensors", "wb").write((hlen or len(b)).to_bytes(8, "little") + b + d)
put("hlen", hdr, data, hlen=len(raw))
h = json.loads(json.dumps(hdr)); h["input.bias"]["data_offsets"] = list(h["enc.0.gcn.bias"]["data_offsets"])
put("overlap", h, data)
h = json.loads(json.dumps(hdr)); h["input.bias"]["dtype"] = "F16"
put("dtype", h, data)
put("truncated", hdr, data[:-100])
t, meta = bt.load_file(src)
bt.save_file({k: v for k, v in t.items() if k != "enc.1.attn.v.bias"}, f"{T}/bad-missing.safetensors", meta)
bt.save_file(dict(t, **{"enc.7.gcn.bias": t["enc.0.gcn.bias"]}), f"{T}/bad-extra.safetensors", meta)
bt.save_file(dict(t, **{"embed.token.weight": t["embed.token.weight"].T.copy()}), f"{T}/bad-shape.safetensors", meta)
ren = lambda s: s.replace("five", "fiv")  # a model of other atlases than the pipeline's
bt.save_file({ren(k): v for k, v in t.items()}, f"{T}/bad-atlas.safetensors", dict(meta, atlases=ren(meta["atlases"])))
PYEOF
bad_case() {  # bad_case NAME TENSOR-OR-WORD WORD
  local f="$T/bad-$1.safetensors"
  mk "$T/bad.yaml" "  - {name: bad_$1, uses: pretrain, with: {epochs: 1, $ARCH, init: bad-$1.safetensors}}"
  "$BGFM" run "$T/bad.yaml" --quiet >"$T/out" 2>&1
  local rc=$?
  if [ $rc -eq 3 ] && grep -q "bad-$1.safetensors" "$T/out" && grep -q -- "$2" "$T/out" && grep -q -- "$3" "$T/out" \
     && ! grep -q "\"stage\": *\"bad_$1\".*train_step\|train_step.*\"stage\": *\"bad_$1\"" "$W/metrics.jsonl" \
     && [ -z "$(ls "$W/.bad_$1.partial/checkpoints" 2>/dev/null)" ]; then
    ok "init: $1 refused before training (exit 3: $(grep -o 'error: .*' "$T/out" | cut -c1-150))"
  else notok "init: $1 (exit $rc): $(cat "$T/out" | tail -3)"; fi
}
bad_case hlen "header length" "larger than the file"
bad_case overlap "input.bias" "overlap"
bad_case dtype "input.bias" "dtype F16"
bad_case truncated "readout.proj.weight" "truncated"
bad_case missing "enc.1.attn.v.bias" "missing"
bad_case extra "enc.7.gcn.bias" "unexpected tensor"
bad_case shape "embed.token.weight" "has shape \[16, 2\]"
bad_case atlas "embed.node.five.weight" "atlas 'five'"
check "the Python loader refuses the same files, naming the tensor" $PY - "$T" <<'PYEOF'
import sys
import bgfm_torch as bt
T = sys.argv[1]
want = {"hlen": "header length", "overlap": "input.bias", "dtype": "input.bias",
        "truncated": "readout.proj.weight", "missing": "enc.1.attn.v.bias",
        "extra": "enc.7.gcn.bias", "shape": "embed.token.weight"}
for k, w in want.items():
    try:
        bt.load(f"{T}/bad-{k}.safetensors")
        sys.exit(f"{k}: loaded")
    except (bt.BGFMLoadError, bt.SafetensorsError) as e:
        assert w in str(e) and f"bad-{k}" in str(e), (k, str(e))
PYEOF
mk "$T/bad.yaml" "  - {name: nofile, uses: pretrain, with: {epochs: 1, init: no/such.safetensors}}"
"$BGFM" run "$T/bad.yaml" --quiet >"$T/out" 2>&1; rc=$?
check "init: a missing file is a pipeline error (exit 2, FILE:LINE:COL)" sh -c "[ $rc -eq 2 ] && grep -q 'bad.yaml:[0-9]*:[0-9]*: .*no/such.safetensors does not exist' '$T/out'"

# ---- export's errors ----
expect_rc "export: a missing checkpoint is exit 4" 4 "$BGFM" export "$T/none.h5" --out "$T/x.safetensors" 2>/dev/null
echo "not hdf5" >"$T/junk.h5"
expect_rc "export: a file that is not HDF5 is exit 3" 3 "$BGFM" export "$T/junk.h5" --out "$T/x.safetensors" 2>/dev/null
expect_rc "export: an HDF5 file that is no checkpoint is exit 3" 3 "$BGFM" export "$W/connectivity/index.h5" --out "$T/x.safetensors" 2>/dev/null
cp "$CK" "$T/flip.h5"
$PY -c "
import h5py
f = h5py.File('$T/flip.h5', 'r'); off = f['model/enc/0/gcn/W'].id.get_offset(); f.close()
b = bytearray(open('$T/flip.h5', 'rb').read()); b[off + 5] ^= 0x40; open('$T/flip.h5', 'wb').write(b)"
"$BGFM" export "$T/flip.h5" --out "$T/x.safetensors" 2>"$T/err"; rc=$?
check "export: a corrupted checkpoint is exit 3 (checksum, file named)" sh -c "[ $rc -eq 3 ] && grep -q 'flip.h5: checksum mismatch' '$T/err'"
"$BGFM" export "$CK" --out "$T/nodir/x.safetensors" 2>"$T/err"; rc=$?
check "export: an unwritable output is exit 4 naming it, nothing left" sh -c "[ $rc -eq 4 ] && grep -q 'nodir/x.safetensors' '$T/err' && [ ! -e '$T/x.safetensors' ]"
# a full disk: the output on a small tmpfs left almost full (as root; skipped elsewhere).
# The whole file is reserved before the first write, so export stops at once: exit 4,
# the file named, nothing left in the folder
mkdir -p "$T/small"
if mount -t tmpfs -o size=1m tmpfs "$T/small" 2>/dev/null; then
  fill_fs "$T/small" 8
  "$BGFM" export "$CK" --out "$T/small/x.safetensors" 2>"$T/err"; rc=$?
  check "export: a full disk is exit 4 naming the file (disk full?)" sh -c "[ $rc -eq 4 ] && grep -q 'small/x.safetensors.tmp-[0-9]* (disk full?)' '$T/err'"
  check "export: nothing left on the full disk" test "$(ls "$T/small")" = filler
  umount "$T/small"
else
  echo "ok - export on a full disk # SKIP cannot mount a tmpfs here (not root)"
fi
expect_rc "export: no --out is exit 2" 2 "$BGFM" export "$CK" 2>/dev/null
expect_rc "export: an unknown option is exit 2" 2 "$BGFM" export "$CK" --out "$T/y.safetensors" --fp16 2>/dev/null
expect_rc "export --help" 0 sh -c "'$BGFM' export --help | grep -q 'usage: bgfm export'"

# ---- the example of docs/export.md, on this run (WORK and the binary substituted) ----
"$BGFM" export "$CK" --out "$W/model.safetensors" >/dev/null 2>&1
awk '/^<!-- example -->/{f=1; next} f && /^```python/{g=1; next} g && /^```/{exit} g' "$ROOT/docs/export.md" \
  | sed "s|^WORK = .*|WORK = \"$W\"|" >"$T/example.py"
check "docs/export.md has the example" test -s "$T/example.py"
(cd "$ROOT" && $PY "$T/example.py") >"$T/example.out" 2>&1
check "the example of docs/export.md runs" sh -c "grep -q 'wrote .*finetuned.safetensors' '$T/example.out'" || cat "$T/example.out" | tail -5 | sed 's/^/# /'
mk "$T/ft.yaml" "  - {name: from_ft, uses: pretrain, with: {epochs: 1, $ARCH, init: w/finetuned.safetensors}}"
expect_rc "the fine-tuned file of the example starts a pretrain stage" 0 "$BGFM" run "$T/ft.yaml" --quiet
