#!/usr/bin/python3
"""test_bgfm_torch.py: unit tests of python/bgfm_torch (no bgfm binary needed): the
safetensors reader/writer (round trip, canonical header, every kind of hostile file),
the strict loader, the module against properties docs/model.md states (batching, node
subsets, the input normalisation, the mean readout, dropout only in training), and the
GraphStore dataset over a store written here with h5py as docs/formats.md describes.

    python3 python/tests/test_bgfm_torch.py          # unittest output
    python3 python/tests/test_bgfm_torch.py --tap    # TAP lines (tests/e2e/export_python.sh)
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bgfm_torch as bt  # noqa: E402
from bgfm_torch import safetensors as st  # noqa: E402


def tiny(full=False, readout="region", input_norm="population", seed=0):
    torch.manual_seed(seed)
    return bt.new_model(["a", "b-2"], [4, 6], full=full, H=8, nh=2, F=12, k=3, L=2, Ld=1, P=4,
                        N_max=6, readout=readout, readout_dim=2, input_norm=input_norm)


def graphs(B, N, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, N, generator=g)
    fc = torch.tanh((x + x.transpose(1, 2)) / 2)
    fc[:, range(N), range(N)] = 1.0
    adj = (fc > 0.2).float()
    adj[:, range(N), range(N)] = 0.0
    return fc, adj, torch.rand(B, N, k, generator=g)


def raw_file(path, header, data=b"", hlen=None):
    """A safetensors file from a header dict (or raw bytes) and data bytes."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write((len(h) if hlen is None else hlen).to_bytes(8, "little") + h + data)


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgfm-torch-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)


class TestSafetensors(Base):
    def test_roundtrip_and_canonical_header(self):
        t = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.float32([1.5, -2])}
        st.save_file(t, self.p("x.safetensors"), {"z": "1", "q": 'he said "hi"\n'})
        raw = open(self.p("x.safetensors"), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        self.assertEqual(n % 8, 0)
        self.assertTrue(raw[8:8 + n].startswith(b'{"__metadata__":{"q":'))
        hdr = json.loads(raw[8:8 + n])
        self.assertEqual(list(hdr)[1:], ["a", "b"])
        self.assertEqual(hdr["a"]["data_offsets"], [0, 8])
        self.assertEqual(len(raw), 8 + n + 32)
        got, meta = st.load_file(self.p("x.safetensors"))
        self.assertEqual(meta, {"z": "1", "q": 'he said "hi"\n'})
        for k in t:
            self.assertEqual(got[k].tobytes(), t[k].tobytes())
        self.assertRaises(TypeError, st.save_file, {"a": np.zeros(2)}, self.p("y.safetensors"))
        self.assertFalse(os.path.exists(self.p("y.safetensors")))

    def test_hostile(self):
        e = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        cases = [
            ("header length", {"a": e}, b"\0" * 8, 1 << 20),
            ("overlap", {"a": e, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
             b"\0" * 8, None),
            ("gap", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None),
            ("trailing", {"a": e}, b"\0" * 12, None),
            ("truncated", {"a": e}, b"\0" * 6, None),
            ("shape needs", {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
             b"\0" * 8, None),
            ("dtype", {"a": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, None),
            ("must map strings", {"__metadata__": {"x": 1}, "a": e}, b"\0" * 8, None),
            ("not a JSON object", b"[1, 2]", b"", None),
            ("not UTF-8 JSON", b"{oops", b"", None),
            ("appears twice", b'{"a":' + json.dumps(e).encode() + b',"a":'
             + json.dumps(e).encode() + b"}", b"\0" * 8, None),
        ]
        for want, hdr, data, hlen in cases:
            raw_file(self.p("bad.safetensors"), hdr, data, hlen)
            with self.assertRaises(st.SafetensorsError, msg=want) as cm:
                st.load_file(self.p("bad.safetensors"))
            self.assertIn(want, str(cm.exception))
            self.assertIn("bad.safetensors", str(cm.exception))
        with open(self.p("short.safetensors"), "wb") as f:
            f.write(b"\1\0\0")
        self.assertRaises(st.SafetensorsError, st.load_file, self.p("short.safetensors"))


class TestLoader(Base):
    def test_save_load_bit_exact_and_idempotent(self):
        for full in (False, True):
            m = tiny(full=full)
            with torch.no_grad():
                m.norm["a"].mean.normal_()
            bt.save(m, self.p("m.safetensors"), {"note": "unit test"})
            r = bt.load(self.p("m.safetensors"))
            self.assertEqual(r.full, full)
            self.assertEqual(r.metadata["note"], "unit test")
            a, b = m.state_dict(), r.state_dict()
            self.assertEqual(set(a), set(b))
            for k in a:
                self.assertEqual(a[k].numpy().tobytes(), b[k].numpy().tobytes(), k)
            bt.save(r, self.p("m2.safetensors"))
            self.assertEqual(open(self.p("m.safetensors"), "rb").read(),
                             open(self.p("m2.safetensors"), "rb").read())

    def test_names_follow_the_table(self):
        names = set(tiny(full=True).state_dict())
        for n in ["input.weight", "embed.token.weight", "embed.node.b-2.weight",
                  "enc.1.attn.q.weight", "enc.0.ffn.fc2.bias", "enc.0.ln_g.weight",
                  "readout.proj.weight", "readout.atlas.a.weight", "readout.bias",
                  "dec.re.weight", "dec.mask_token", "dec.0.ln_2.bias", "dec.out.bias",
                  "proj.fc1.weight", "norm.b-2.std"]:
            self.assertIn(n, names)
        # input 2, embed 3, enc 2 x 20, readout 4, dec 5 + 20, proj 4, norm 4
        self.assertEqual(len(names), 2 + 3 + 2 * 20 + 4 + 5 + 20 + 4 + 4)

    def test_strict(self):
        m = tiny()
        bt.save(m, self.p("m.safetensors"))
        t, meta = st.load_file(self.p("m.safetensors"))

        def refused(tensors, metadata, want):
            st.save_file(tensors, self.p("bad.safetensors"), metadata)
            with self.assertRaises(bt.BGFMLoadError) as cm:
                bt.load(self.p("bad.safetensors"))
            self.assertIn(want, str(cm.exception))
            self.assertIn("bad.safetensors", str(cm.exception))
        refused({k: v for k, v in t.items() if k != "enc.1.attn.v.bias"}, meta,
                "tensor enc.1.attn.v.bias is missing")
        refused(dict(t, **{"enc.2.gcn.bias": np.zeros(8, np.float32)}), meta,
                "unexpected tensor enc.2.gcn.bias")
        refused(dict(t, **{"readout.bias": np.zeros(9, np.float32)}), meta,
                "readout.bias has shape [9]")
        refused(dict(t, **{"input.bias": np.full(8, np.nan, np.float32)}), meta, "NaN")
        refused(t, dict(meta, contents="full"), "dec.")
        refused(t, dict(meta, format="pt"), "not a bgfm model")
        refused(t, dict(meta, H="9"), "no valid model")
        refused(t, {k: v for k, v in meta.items() if k != "atlases"}, "no atlases")
        # a float64 tensor: a valid safetensors file, but not a bgfm model
        h = {"__metadata__": meta}
        off, data = 0, b""
        for k in sorted(t):
            a = t[k].astype(np.float64) if k == "input.bias" else t[k]
            h[k] = {"dtype": "F64" if k == "input.bias" else "F32", "shape": list(a.shape),
                    "data_offsets": [off, off + a.nbytes]}
            off += a.nbytes
            data += a.tobytes()
        raw_file(self.p("bad.safetensors"), h, data)
        with self.assertRaises(bt.BGFMLoadError) as cm:
            bt.load(self.p("bad.safetensors"))
        self.assertIn("input.bias has dtype float64", str(cm.exception))


    def test_readout_axes_pcs_pop(self):
        """embedding pcs+pop: the readout through pcs.<atlas> (W e + b), then the head;
        saved and loaded bit for bit; metadata without pcs (or pcs past H) refused."""
        torch.manual_seed(3)
        m = bt.new_model(["a"], [4], H=8, nh=2, F=12, k=3, L=1, Ld=1, P=4, N_max=4,
                         readout="mean", input_norm="none", pop_rank=2, embedding="pcs+pop", pcs=3)
        with torch.no_grad():
            for t in (m.pcs["a"].weight, m.pcs["a"].bias, m.pop["a"].weight, m.pop["a"].bias):
                t.normal_()
        fc, adj, rw = graphs(2, 4)
        m.eval()
        with torch.no_grad():
            got = m(fc, adj, rw, "a")
            z, idx = m.encode(fc, adj, rw, "a")
            e = z.mean(1)
            iu = torch.triu_indices(4, 4, 1)
            want = torch.cat([e @ m.pcs["a"].weight.T + m.pcs["a"].bias,
                              fc[:, iu[0], iu[1]] @ m.pop["a"].weight.T + m.pop["a"].bias], 1)
        self.assertEqual(m.embed_dim, 5)
        self.assertEqual(tuple(got.shape), (2, 5))
        self.assertTrue(torch.allclose(got, want, atol=1e-6))
        bt.save(m, self.p("pcs.safetensors"))
        r = bt.load(self.p("pcs.safetensors"))
        self.assertEqual(r.cfg.pcs, 3)
        self.assertTrue(all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), r.state_dict().values())))
        t, meta = st.load_file(self.p("pcs.safetensors"))
        for bad in ({k: v for k, v in meta.items() if k != "pcs"}, dict(meta, pcs="9")):
            st.save_file(t, self.p("bad.safetensors"), bad)
            with self.assertRaises(bt.BGFMLoadError) as cm:
                bt.load(self.p("bad.safetensors"))
            self.assertIn("pcs", str(cm.exception))

class TestModel(Base):
    def test_batch_equals_single_graphs(self):
        m = tiny().eval()
        fc, adj, rw = graphs(3, 6)
        with torch.no_grad():
            e = m(fc, adj, rw, "b-2")
            for i in range(3):
                ei = m(fc[i:i + 1], adj[i:i + 1], rw[i:i + 1], "b-2")
                self.assertTrue(torch.allclose(e[i], ei[0], atol=1e-6))
        self.assertEqual(tuple(e.shape), (3, 8))

    def test_node_subset_of_all_nodes_is_the_full_graph(self):
        m = tiny().eval()
        fc, adj, rw = graphs(2, 4)
        with torch.no_grad():
            z, idx = m.encode(fc, adj, rw, "a", nodes=torch.arange(4).expand(2, 4))
            self.assertTrue(torch.allclose(m.pool(z, idx, "a", 4), m(fc, adj, rw, "a"), atol=1e-6))

    def test_input_normalisation(self):
        """model.md section 1: the model sees (C - mean) / sd, sd from the buffer."""
        m = tiny().eval()
        raw = tiny(input_norm="none").eval()
        sd = {k: v for k, v in m.state_dict().items() if not k.startswith("norm.")}
        raw.load_state_dict(sd)
        mu, s = torch.rand(6, 6), 0.5 + torch.rand(6, 6)
        with torch.no_grad():
            m.norm["b-2"].mean.copy_(mu)
            m.norm["b-2"].std.copy_(s)
            fc, adj, rw = graphs(2, 6)
            self.assertTrue(torch.allclose(m(fc, adj, rw, "b-2"), raw((fc - mu) / s, adj, rw, "b-2"),
                                           atol=1e-5))
            self.assertFalse(torch.allclose(m(fc, adj, rw, "b-2"), raw(fc, adj, rw, "b-2"), atol=1e-3))

    def test_mean_readout_and_dropout(self):
        m = tiny(readout="mean").eval()
        fc, adj, rw = graphs(2, 4)
        with torch.no_grad():
            z, _ = m.encode(fc, adj, rw, "a")
            self.assertTrue(torch.allclose(m(fc, adj, rw, "a"), z.mean(1)))
            a, b = m(fc, adj, rw, "a"), m(fc, adj, rw, "a")
            self.assertTrue(torch.equal(a, b))
            m.train()
            torch.manual_seed(3)
            self.assertFalse(torch.allclose(m(fc, adj, rw, "a"), a))
        self.assertFalse(hasattr(m, "readout"))

    def test_wrong_atlas_and_size(self):
        m = tiny().eval()
        fc, adj, rw = graphs(1, 5)
        self.assertRaises(ValueError, m, fc, adj, rw, "a")
        self.assertRaises(KeyError, m, fc, adj, rw, "c")

    def test_full_model_parts_and_a_training_step(self):
        m = tiny(full=True)
        fc, adj, rw = graphs(2, 6)
        vis = torch.tensor([[0, 2, 3, 5], [1, 2, 4, 5]])
        z, idx = m.encode(fc, adj, rw, "b-2", nodes=vis)
        y = m.decode(z, idx, adj, "b-2")
        self.assertEqual(tuple(y.shape), (2, 6, 6))
        q = m.project(m.pool(z, idx, "b-2", 6))
        self.assertTrue(torch.allclose(q.norm(dim=-1), torch.ones(2), atol=1e-6))
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            z, idx = m.encode(fc, adj, rw, "b-2", nodes=vis)
            loss = ((m.decode(z, idx, adj, "b-2")[..., :6] - m.normalise(fc, "b-2")) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.assertLess(losses[-1], losses[0])
        self.assertRaises(RuntimeError, tiny().decode, z, idx, adj, "b-2")


def write_store(root, seed=0):
    """A graph store as docs/formats.md describes it: two atlases over two shards."""
    rng = np.random.default_rng(seed)
    atl, nodes, k = ["a", "b-2"], [4, 6], 3
    spec = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 1)]  # (atlas, shard) of graphs 0..4
    truth, rows = [], {}
    shards = []
    for s in range(2):
        f = h5py.File(os.path.join(root, f"shard-{s:05d}.h5"), "w")
        f.attrs["format"] = "bgfm-graphs-shard"
        shards.append(f)
    for g, (a, s) in enumerate(spec):
        N = nodes[a]
        truth.append({"fc": rng.standard_normal((N, N)).astype(np.float32),
                      "adj": (rng.random((N, N)) > 0.5).astype(np.uint8),
                      "rwse": rng.random((N, k)).astype(np.float32), "atlas": atl[a]})
        r = rows.setdefault((a, s), [])
        r.append(g)
    for (a, s), gs in rows.items():
        grp = shards[s].create_group(f"graphs/{atl[a]}")
        for key in ("fc", "adj", "rwse"):
            grp[key] = np.stack([truth[g][key] for g in gs])
        grp["flagged"] = np.zeros((len(gs), nodes[a]), np.uint8)
    for f in shards:
        f.close()
    with h5py.File(os.path.join(root, "index.h5"), "w") as f:
        f.attrs["format"] = "bgfm-graphs-index"
        f.attrs["rwse_steps"] = k
        f["shards"] = np.array([b"shard-00000.h5", b"shard-00001.h5"])
        f["atlases"] = np.array([x.encode() for x in atl])
        f["atlas_nodes"] = np.array(nodes, np.int32)
        f["graphs/atlas"] = np.array([a for a, _ in spec], np.int32)
        f["graphs/shard"] = np.array([s for _, s in spec], np.int32)
        f["graphs/row"] = np.array([rows[(a, s)].index(g) for g, (a, s) in enumerate(spec)], np.int64)
        for key in ("subject", "window", "label"):
            f[f"graphs/{key}"] = np.arange(5, dtype=np.int64) * (3 if key == "label" else 1)
        f["graphs/participant_id"] = np.array([b"sub-%d" % g for g in range(5)])
        f["graphs/site"] = np.array([b""] * 5)
    return truth


class TestGraphStore(Base):
    def test_items_batches_and_embeddings(self):
        truth = write_store(self.dir)
        s = bt.GraphStore(self.dir)
        self.assertEqual(len(s), 5)
        for g in range(5):
            it = s[g]
            self.assertEqual(it["atlas"], truth[g]["atlas"])
            self.assertEqual(it["index"], g)
            self.assertEqual(it["participant_id"], f"sub-{g}")
            for key in ("fc", "adj", "rwse"):
                self.assertTrue(np.array_equal(it[key].numpy(), truth[g][key].astype(np.float32)))
        self.assertEqual(list(bt.GraphStore(self.dir, atlases=["b-2"]).indices), [1, 3])
        self.assertEqual(list(bt.GraphStore(self.dir, indices=[4, 0, 9]).indices), [0, 4])
        batches = list(bt.AtlasBatchSampler(s, 2, shuffle=True, seed=1))
        self.assertEqual(sorted(i for b in batches for i in b), list(range(5)))
        for b in batches:
            self.assertEqual(len({s.atlas_of(i) for i in b}), 1)
        self.assertRaises(ValueError, bt.collate, [s[0], s[1]])
        m = tiny().eval()
        emb, idx = bt.embed_store(m, s, batch_size=2)
        self.assertEqual(list(idx), list(range(5)))
        with torch.no_grad():
            for g in (0, 3):
                it = s[g]
                e = m(it["fc"][None], it["adj"][None], it["rwse"][None], it["atlas"])
                self.assertTrue(np.allclose(emb[g], e[0].double().numpy(), atol=1e-6))
        self.assertRaises(KeyError, bt.GraphStore, self.dir, atlases=["zz"])


class Tap(unittest.TextTestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        print(f"ok - {test.id()}", flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print(f"not ok - {test.id()}", flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print(f"not ok - {test.id()} (error)", flush=True)


if __name__ == "__main__":
    tap = "--tap" in sys.argv
    if tap:
        sys.argv.remove("--tap")
    unittest.main(testRunner=unittest.TextTestRunner(resultclass=Tap if tap else None,
                                                     stream=sys.stderr, verbosity=1))
