#!/usr/bin/env bash
# pretrain_ranks.sh: data-parallel pretraining through `bgfm run` on 1, 2, 3 and 4 ranks
# (batch_size 5 over 42 graphs: uneven slices, final batches of 2 where ranks 2-3 hold no
# graph). Loss curves agree within 1e-4 relative; every rank holds the same parameters
# after each step (BGFM_DEBUG_SYNC=1, and that check fails when a rank is perturbed);
# graph bytes read summed over ranks equal the 1-rank figure (each rank reads only its
# slice); a 3-rank checkpoint is read by h5py with the documented names and its checksums
# recomputed independently (zlib, hashlib); a format-2 rewrite of it still loads.
source "$(dirname "$0")/../lib/tap.sh"
tiny_dataset "$T/d" --subjects 6 --volumes 40
PIPE_NAME=pr PIPE_SEED=5 pipeline_yaml "$T/p.yaml" "$T/w" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {mode: gmae+gcl, epochs: 3, batch_size: 5, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, checkpoint_every: 4, keep_checkpoints: 2, warmup: 3}}"
for np in 1 2 3 4; do
  rm -rf "$T/w/pre" "$T/w/.pre.partial" "$T/w/metrics.jsonl"
  # a hang detector: 4 ranks on 2 cores under the sanitizers (make check) need minutes
  BGFM_DEBUG_SYNC=1 timeout 240 $MPIRUN $np "$BGFM" run "$T/p.yaml" --quiet >"$T/o$np" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then ok "$np ranks: run with the per-step parameter identity check"
  else notok "$np ranks: run (rc $rc)"; sed 's/^/#   /' "$T/o$np" | tail -8; fi
  cp "$T/w/metrics.jsonl" "$T/m$np.jsonl" 2>/dev/null
  cp -r "$T/w/pre" "$T/pre$np" 2>/dev/null
done
check "loss curves equal on 1-4 ranks within 1e-4 relative; metrics carry compute/comm/io" $PY - "$T" <<'PYEOF'
import json, sys
T = sys.argv[1]
def load(np):
    recs = [json.loads(l) for l in open(f"{T}/m{np}.jsonl")]
    return [r for r in recs if "step" in r], [r for r in recs if "step" not in r and r.get("stage") == "pre"]
ref, _ = load(1)
assert len(ref) == 27, len(ref)
for np in (2, 3, 4):
    cur, _ = load(np)
    assert [r["step"] for r in cur] == [r["step"] for r in ref]
    for a, b in zip(ref, cur):
        assert b["ranks"] == np and all(k in b for k in ("compute_s", "comm_s", "io_s"))
        for k in ("loss", "loss_rec", "loss_adj", "loss_cl", "grad_norm"):
            assert abs(a[k] - b[k]) <= 1e-4 * abs(a[k]) + 1e-12, (np, a["step"], k, a[k], b[k])
PYEOF
check "sharded reads: graph bytes summed over ranks equal the 1-rank figure" $PY - "$T" <<'PYEOF'
import json, sys
T = sys.argv[1]
def stage(np):
    return [json.loads(l) for l in open(f"{T}/m{np}.jsonl") if '"wall_s"' in l and '"pre"' in l][-1]
b1 = stage(1)["bytes_read"]
assert b1 > 0
for np in (2, 3, 4):
    assert stage(np)["bytes_read"] == b1, (np, stage(np)["bytes_read"], b1)
PYEOF
check "final parameters agree across rank counts (atol 1e-4)" $PY - "$T" <<'PYEOF'
import h5py, numpy as np, sys
T = sys.argv[1]
a = h5py.File(f"{T}/pre1/final.h5", "r")
for n in (2, 3, 4):
    b = h5py.File(f"{T}/pre{n}/final.h5", "r")
    names = []
    a["model"].visit(lambda k: names.append(k) if isinstance(a["model"][k], h5py.Dataset) else None)
    assert len(names) > 40
    for k in names:
        if k.endswith("attn/bk"):
            continue  # its exact gradient is 0 (softmax ignores a key bias): AdamW scales rounding noise to lr-size steps
        assert np.allclose(a["model"][k][()], b["model"][k][()], atol=1e-4, rtol=0), (n, k)
PYEOF
check "3-rank checkpoint: documented names, and its checksums recomputed by zlib + hashlib" $PY - "$T/pre3/final.h5" <<'PYEOF'
import h5py, hashlib, numpy as np, sys, zlib
f = h5py.File(sys.argv[1], "r")
m = f["model"]
H, D = int(m.attrs["H"]), int(m.attrs["D_in"])
assert m["in/W"].shape == (H, D) and m["enc/0/attn/Wq"].shape == (H, H) and m["proj/b2"].shape == (8,)
assert m.attrs["atlases"] in (b"tiny", "tiny") and f.attrs["complete"] == 1
assert int(f["state"].attrs["written_by_ranks"]) == 3 and int(f.attrs["format_version"]) == 3
# the hashed flat layout is the parameter order of docs/model.md section 6 (h5py lists
# names alphabetically, so the order is rebuilt here from the documentation)
def order(L, Ld, atlases):
    o = ["in/W", "in/b", "embed/token"] + [f"embed/node/{a}" for a in atlases]
    blk = ["gcn/W", "gcn/b", "ln_g/gamma", "ln_g/beta", "attn/Wq", "attn/Wk", "attn/Wv", "attn/bq",
           "attn/bk", "attn/bv", "attn/Wo", "attn/bo", "ln_1/gamma", "ln_1/beta", "ffn/W1", "ffn/b1",
           "ffn/W2", "ffn/b2", "ln_2/gamma", "ln_2/beta"]
    o += [f"enc/{l}/{b}" for l in range(L) for b in blk]
    if region:  # the region readout follows the encoder blocks
        o += ["readout/Wc"] + [f"readout/W/{a}" for a in atlases] + ["readout/b"]
    o += ["dec/re/W", "dec/re/b", "dec/mask_token"] + [f"dec/{l}/{b}" for l in range(Ld) for b in blk]
    o += ["dec/out/W", "dec/out/b", "proj/W1", "proj/b1", "proj/W2", "proj/b2"]
    if norm:  # the input normalisation's buffers follow the trained tensors
        o += [f"norm/{a}/{k}" for a in atlases for k in ("mean", "std")]
    if pop:  # the population head, then the readout's axes (embedding pcs+pop), come last
        o += [f"pop/{a}/{k}" for a in atlases for k in ("W", "b")]
    if pcs:
        o += [f"pcs/{a}/{k}" for a in atlases for k in ("W", "b")]
    return o
region = m.attrs["readout"] in (b"region", "region")
norm = m.attrs["input_norm"] in (b"population", "population")
pop = int(m.attrs["pop_rank"]) > 0
pcs = "pcs" in m.attrs
names = order(int(m.attrs["L"]), int(m.attrs["Ld"]), ["tiny"])
cnt = []
f["model"].visit(lambda k: cnt.append(k) if isinstance(f["model"][k], h5py.Dataset) else None)
assert sorted(cnt) == sorted(names), set(cnt) ^ set(names)
def flat(g):
    return np.concatenate([f[g][n][()].astype("<f4").ravel() for n in names]).tobytes()
B = 1 << 20
def blocks(b):  # format 3: CRC-32 (zlib's) of each 1 MiB block, 4 bytes little-endian
    return [zlib.crc32(b[i:i + B]).to_bytes(4, "little") for i in range(0, len(b), B)]
dp = blocks(flat("model"))
sm = f.attrs["sha256_model"]
assert hashlib.sha256(b"".join(dp)).hexdigest() == (sm.decode() if isinstance(sm, bytes) else sm)
rec = np.array([f["state/step"][()], f["state/epoch"][()], f["state/position"][()], f["state/seed"][()],
                f["optim"].attrs["t"]], dtype="<i8").tobytes()
full = hashlib.sha256(b"".join(dp + blocks(flat("optim/m")) + blocks(flat("optim/v"))) + rec).hexdigest()
want = f.attrs["sha256"]
assert full == (want.decode() if isinstance(want, bytes) else want)
PYEOF
# format 2 (SHA-256 block digests) still loads: the same checkpoint rewritten as a
# format-2 file by h5py/hashlib is accepted by `bgfm grad --checkpoint`; with a byte of
# the model changed, it is rejected with the checksum message
cp "$T/pre3/final.h5" "$T/v2.h5"
check "a format-2 rewrite of the checkpoint (SHA-256 blocks, by hashlib)" $PY - "$T/v2.h5" <<'PYEOF'
import h5py, hashlib, numpy as np, sys
f = h5py.File(sys.argv[1], "r+")
m = f["model"]
blk = ["gcn/W", "gcn/b", "ln_g/gamma", "ln_g/beta", "attn/Wq", "attn/Wk", "attn/Wv", "attn/bq",
       "attn/bk", "attn/bv", "attn/Wo", "attn/bo", "ln_1/gamma", "ln_1/beta", "ffn/W1", "ffn/b1",
       "ffn/W2", "ffn/b2", "ln_2/gamma", "ln_2/beta"]
L, Ld = int(m.attrs["L"]), int(m.attrs["Ld"])
names = ["in/W", "in/b", "embed/token", "embed/node/tiny"] + [f"enc/{l}/{b}" for l in range(L) for b in blk]
if m.attrs["readout"] in (b"region", "region"):
    names += ["readout/Wc", "readout/W/tiny", "readout/b"]
names += ["dec/re/W", "dec/re/b", "dec/mask_token"] + [f"dec/{l}/{b}" for l in range(Ld) for b in blk]
names += ["dec/out/W", "dec/out/b", "proj/W1", "proj/b1", "proj/W2", "proj/b2"]
if m.attrs["input_norm"] in (b"population", "population"):
    names += ["norm/tiny/mean", "norm/tiny/std"]
if int(m.attrs["pop_rank"]) > 0:
    names += ["pop/tiny/W", "pop/tiny/b"]
if "pcs" in m.attrs:
    names += ["pcs/tiny/W", "pcs/tiny/b"]
flat = lambda g: np.concatenate([f[g][n][()].astype("<f4").ravel() for n in names]).tobytes()
B = 1 << 20
blocks = lambda b: [hashlib.sha256(b[i:i + B]).digest() for i in range(0, len(b), B)]
dp = blocks(flat("model"))
rec = np.array([f["state/step"][()], f["state/epoch"][()], f["state/position"][()], f["state/seed"][()],
                f["optim"].attrs["t"]], dtype="<i8").tobytes()
f.attrs["format_version"] = np.int64(2)
f.attrs["sha256_model"] = hashlib.sha256(b"".join(dp)).hexdigest()  # h5py's default: UTF-8 variable-length
f.attrs["sha256"] = np.bytes_(hashlib.sha256(b"".join(dp + blocks(flat("optim/m")) + blocks(flat("optim/v"))) + rec).hexdigest())  # fixed-length, as bgfm writes
PYEOF
expect_rc "bgfm grad loads the format-2 checkpoint" 0 "$BGFM" grad --graphs "$T/w/conn/index.h5" \
  --atlas tiny --indices 0,1 --checkpoint "$T/v2.h5" --out "$T/g2.h5"
$PY -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); d = f['model/in/W']; a = d[()]; a.flat[0] += 1.0; d[...] = a" "$T/v2.h5"
"$BGFM" grad --graphs "$T/w/conn/index.h5" --atlas tiny --indices 0,1 --checkpoint "$T/v2.h5" \
  --out "$T/g3.h5" >"$T/og" 2>&1
rc=$?
check "population head (pop/*, fitted from the data, not trained): the same bits on 1-4 ranks; the readout's axes (pcs/*, fitted on the trained encoder's readouts) the same subspace" $PY - "$T" <<'PYEOF'
import h5py, numpy as np, sys
T = sys.argv[1]
a = h5py.File(f"{T}/pre1/final.h5", "r")["model"]
# too few people for the held-out rule: no gap, so pcs+pop (8 directions + 4 principal axes)
assert int(a.attrs["pop_rank"]) == 12 and a.attrs["embedding"] in (b"pcs+pop", "pcs+pop")
W = a["pop/tiny/W"][()]
assert W.shape == (12, 6) and np.abs(W).max() > 0
P = a["pcs/tiny/W"][()]
assert P.shape == (8, 16) and np.abs(P).max() > 0
for n in (2, 3, 4):
    b = h5py.File(f"{T}/pre{n}/final.h5", "r")["model"]
    for k in ("pop/tiny/W", "pop/tiny/b"):
        assert a[k][()].tobytes() == b[k][()].tobytes(), (n, k)
    # the encoder agrees across rank counts to 1e-4, not in its bits (sums in another
    # order), and so do its readouts: the axes span the same subspace
    Q = b["pcs/tiny/W"][()].astype(float)
    qa, qb = np.linalg.qr(P.T.astype(float))[0], np.linalg.qr(Q.T)[0]
    cos = np.linalg.svd(qa.T @ qb, compute_uv=False)
    assert cos.min() > 1 - 1e-3, (n, cos)
PYEOF
check "population head of the 4-region atlas = numpy/scipy (tests/reference/pop_fit.py)" \
  $PY "$ROOT/tests/reference/pop_fit.py" "$T/pre3/final.h5" "$T/w/conn"
check "a changed format-2 checkpoint is rejected (exit 3, checksum mismatch)" \
  bash -c "[ $rc -eq 3 ] && grep -q 'checksum mismatch' '$T/og'"
rm -rf "$T/w/pre" "$T/w/.pre.partial"
BGFM_DEBUG_SYNC=1 BGFM_TEST_DESYNC_RANK=1 timeout 60 $MPIRUN 2 "$BGFM_T" run "$T/p.yaml" --quiet >"$T/od" 2>&1
rc=$?
check "a perturbed rank is caught by BGFM_DEBUG_SYNC (exit 1, message names ranks and step)" \
  bash -c "[ $rc -eq 1 ] && grep -q 'parameters differ between rank 0 and rank 1 after step 2' '$T/od'"
# gmae alone with the partner's rows as the reconstruction target and a decoder that
# reads only the graph embedding (model.md section 3), on 12 regions (5 masked): the
# partners are read without a contrastive term (twice the graph bytes of the same run
# with rec_target: graph), the target changes the loss, and 1 and 2 ranks agree
tiny_dataset "$T/d12" --subjects 4 --volumes 30 --parcels 12
for v in partner graph; do
  DATA=$T/d12 PIPE_NAME=pq PIPE_SEED=5 pipeline_yaml "$T/q_$v.yaml" "$T/w_$v" "{windows: {length: 10, stride: 5}}" "{name: pre, uses: pretrain, with: {mode: gmae, rec_target: $v, decoder_input: graph, epochs: 2, batch_size: 5, hidden: 16, heads: 2, ffn: 32, proj: 8, n_max: 0, warmup: 3}}"
done
for np in 1 2; do
  rm -rf "$T/w_partner/pre" "$T/w_partner/metrics.jsonl"
  expect_rc "rec_target partner, decoder_input graph: $np ranks" 0 $MPIRUN $np "$BGFM" run "$T/q_partner.yaml" --quiet
  cp "$T/w_partner/metrics.jsonl" "$T/mq$np.jsonl" 2>/dev/null
done
expect_rc "rec_target graph, decoder_input graph: 1 rank" 0 $MPIRUN 1 "$BGFM" run "$T/q_graph.yaml" --quiet
check "rec_target partner: partners read in gmae mode, another loss, 1 and 2 ranks agree" $PY - "$T" <<'PYEOF'
import json, sys
T = sys.argv[1]
def load(f):
    recs = [json.loads(l) for l in open(f"{T}/{f}")]
    return [r for r in recs if "step" in r], [r for r in recs if "wall_s" in r and r.get("stage") == "pre"][-1]
p1, s1 = load("mq1.jsonl")
p2, s2 = load("mq2.jsonl")
g1, sg = load("w_graph/metrics.jsonl")
assert len(p1) == len(p2) == len(g1) > 5, (len(p1), len(p2), len(g1))
assert all(r["loss_cl"] == 0 and r["loss_rec"] > 0 for r in p1 + g1)
for a, b in zip(p1, p2):
    for k in ("loss", "loss_rec", "loss_adj", "grad_norm"):
        assert abs(a[k] - b[k]) <= 1e-4 * abs(a[k]) + 1e-12, (a["step"], k, a[k], b[k])
assert s1["bytes_read"] == 2 * sg["bytes_read"] == s2["bytes_read"], (s1["bytes_read"], sg["bytes_read"])
assert p1[0]["loss_rec"] != g1[0]["loss_rec"]
PYEOF
check "population head of the 12-region atlas (20 graphs, 19 components) = numpy/scipy" \
  $PY "$ROOT/tests/reference/pop_fit.py" "$T/w_partner/pre/final.h5" "$T/w_partner/conn"
