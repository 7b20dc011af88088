#!/usr/bin/env python3
"""scaling_model.py: the analytic scaling model of data-parallel pretraining
(docs/scaling.md): per-step compute + gradient all-reduce + NT-Xent gather and global loss +
graph reads + amortised checkpoints, calibrated with figures measured on this machine
(bench/scaling.sh passes them), predicting graphs/s and efficiency up to 1024 ranks for
the BrainGFM-scale corpus. Not a simulator: no contention, no stragglers, no overlap.

usage: scaling_model.py KEY=VALUE ... [--csv OUT.csv] [--png OUT.png]
keys (seconds, bytes): c_g (compute s per graph per rank), params, proj, gflops (dense
GEMM rate per rank, for the NT-Xent similarity products), alpha_shm, beta_shm (measured
all-reduce latency / inverse bandwidth inside a node), graph_bytes (bytes read per graph)
and optionally b (graphs per rank per step, 4), q (ranks per node, 64), alpha_net (2e-6),
beta_net (1/12.5e9: 100 Gb/s per node), pfs_bw (50e9 aggregate), node_io_bw (5e9),
ckpt_every (200), corpus (60000*8*9 graphs), epochs (50), global_batch (64).
"""
import math
import subprocess
import sys


def parse(argv):
    kv, out = {}, {"csv": None, "png": None}
    it = iter(argv)
    for a in it:
        if a in ("--csv", "--png"):
            out[a[2:]] = next(it)
        else:
            k, v = a.split("=", 1)
            kv[k] = math.prod(float(x) for x in v.split("*"))  # a number or a product 60000*8*9
    d = dict(b=4, q=64, alpha_net=2e-6, beta_net=1 / 12.5e9, pfs_bw=50e9, node_io_bw=5e9,
             ckpt_every=200, corpus=60000 * 8 * 9, epochs=50, global_batch=64)
    d.update(kv)
    return d, out


def allreduce(p, n, m):
    """Rabenseifner/ring all-reduce of n bytes on p ranks: 2 log2(p) alpha + 2 (p-1)/p n beta,
    hierarchical beyond one node: inside the node at the measured shared-memory figures,
    across the p/q nodes on the network (one leader per node)."""
    if p <= 1:
        return 0.0
    q = min(p, m["q"])
    t = 2 * math.log2(q) * m["alpha_shm"] + 2 * (q - 1) / q * n * m["beta_shm"] if q > 1 else 0.0
    nodes = p / q
    if nodes > 1:
        t += 2 * math.log2(nodes) * m["alpha_net"] + 2 * (nodes - 1) / nodes * n * m["beta_net"]
    return t


def allgather(p, total, m):
    """Ring all-gather of `total` bytes in all (each rank brings total/p)."""
    if p <= 1:
        return 0.0
    q = min(p, m["q"])
    t = math.log2(q) * m["alpha_shm"] + (q - 1) / q * total * m["beta_shm"]
    nodes = p / q
    if nodes > 1:
        t += math.log2(nodes) * m["alpha_net"] + (nodes - 1) / nodes * total * m["beta_net"]
    return t


def step(p, b, m):
    """Seconds of one step on p ranks with b graphs per rank; returns the split."""
    n_grad = 4 * m["params"]                      # float32 gradient, one MPI_Allreduce
    n_glob = b * p                                # global batch
    comp = b * m["c_g"]
    ar = allreduce(p, n_grad, m) + 3 * allreduce(p, 16, m)  # + loss, status, stop poll
    ag = 2 * allgather(p, n_glob * m["proj"] * 4, m)        # views a and b, float32
    # every rank evaluates NT-Xent over all 2n anchors (forward (2n)^2 P multiply-adds) and
    # the gradient of its own 2b rows (2 x 2b x 2n x P multiply-adds)
    ntx = (2 * (2 * n_glob) ** 2 * m["proj"] + 8 * b * 2 * n_glob * m["proj"]) / (m["gflops"] * 1e9)
    rank_bw = min(m["node_io_bw"] / min(p, m["q"]), m["pfs_bw"] / p)
    io = b * m["graph_bytes"] / rank_bw
    ckpt_bytes = 3 * 4 * m["params"]              # parameters + two AdamW moments
    ckpt = ckpt_bytes / min(m["pfs_bw"], max(1, p / m["q"]) * m["node_io_bw"]) / m["ckpt_every"]
    return dict(compute=comp, comm=ar + ag, ntxent=ntx, io=io + ckpt, total=comp + ar + ag + ntx + io + ckpt)


def main():
    m, out = parse(sys.argv[1:])
    ps = [2 ** k for k in range(11)]
    rows = []
    t1 = step(1, m["b"], m)["total"]
    for p in ps:
        s = step(p, m["b"], m)
        gps = m["b"] * p / s["total"]
        eff = gps / (p * m["b"] / t1)
        # fixed global batch (strong scaling of one step): b = G / p graphs per rank
        bg = m["global_batch"] / p
        sa = step(p, bg, m) if bg >= 1 else None
        ta1 = step(1, m["global_batch"], m)["total"]
        eff_a = (ta1 / sa["total"]) / p if sa else float("nan")
        epoch_h = m["corpus"] / gps / 3600
        rows.append((p, gps, eff, eff_a, s["compute"], s["comm"], s["ntxent"], s["io"], epoch_h))
    hdr = "ranks,graphs_per_s,efficiency,efficiency_fixed_global_batch,compute_s,comm_s,ntxent_s,io_s,epoch_hours"
    lines = [hdr] + [",".join(f"{v:.6g}" for v in r) for r in rows]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if out["csv"]:
        open(out["csv"], "w").write(text)
    if out["png"]:
        dat = out["png"] + ".dat"
        with open(dat, "w") as f:
            for r in rows:
                f.write(" ".join(f"{v:.6g}" if not math.isnan(v) else "NaN" for v in r) + "\n")
        gp = f"""set terminal pngcairo size 760,460 font 'Sans,10'
set output '{out["png"]}'
set multiplot layout 1,2 title 'bgfm pretrain model: {int(m["b"])} graphs/rank/step, P={m["params"]/1e6:.2f}M params, corpus {m["corpus"]/1e6:.2f}M graphs' font 'Sans,10'
set logscale x 2
set grid
set xlabel 'MPI ranks (1 core each, {int(m["q"])} per node)'
set key top left
set logscale y 10
set ylabel 'graphs/s'
set title 'throughput'
plot '{dat}' using 1:2 with linespoints pt 7 title 'model', '' using 1:(1.0*$1*{m["b"]}/{t1}) with lines dt 2 lc rgb 'gray40' title 'ideal'
unset logscale y
set yrange [0:1.05]
set ylabel 'efficiency'
set key bottom left
set title 'parallel efficiency'
plot '{dat}' using 1:3 with linespoints pt 7 title '{int(m["b"])} graphs/rank (global batch grows)', '' using 1:4 with linespoints pt 5 title 'global batch {int(m["global_batch"])} fixed'
unset multiplot
"""
        subprocess.run(["gnuplot"], input=gp.encode(), check=True)


if __name__ == "__main__":
    main()
