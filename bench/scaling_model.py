#!/usr/bin/python3
"""scaling_model.py: the analytic scaling model of data-parallel pretraining
(docs/scaling.md): per-step compute + gradient all-reduce in two buckets (the tail
overlapped with the encoder's backward) + row-sharded NT-Xent (gathers and its own rows'
GEMMs) + graph reads + amortised checkpoints, calibrated with figures measured on this
machine (bench/scaling.sh passes them), predicting graphs/s and efficiency from 1 to 1024
ranks. Not a simulator: no contention, no stragglers, no OS noise.

usage: scaling_model.py KEY=VALUE ... [--csv OUT.csv] [--png OUT.png]
keys (seconds, bytes): c_g (compute s per graph per rank), params, proj, gflops (dense
GEMM rate per rank, for the NT-Xent products), alpha_shm, beta_shm (all-reduce latency /
inverse bandwidth inside a node), graph_bytes (bytes read per graph), and optionally
tail_frac (share of the parameters in the overlapped tail bucket, 0.22), window_frac
(share of the step's compute after the tail is final: the encoder's backward, 0.17),
t_exp (s per exponential of the loss, 0.25e-9), b (graphs per rank per step, 4), q (ranks
per node, 64), alpha_net (2e-6), beta_net (1/12.5e9: 100 Gb/s per node), pfs_bw (50e9
aggregate), node_io_bw (5e9), ckpt_every (200), corpus (160000: jobs/braingfm.yaml),
corpus2 (60000*8), global_batch (64).
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
            kv[k] = math.prod(float(x) for x in v.split("*"))  # a number or a product 60000*8
    d = dict(b=4, q=64, alpha_net=2e-6, beta_net=1 / 12.5e9, pfs_bw=50e9, node_io_bw=5e9,
             ckpt_every=200, corpus=160000, corpus2=60000 * 8, global_batch=64, tail_frac=0.22,
             window_frac=0.17, t_exp=0.25e-9)
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


def step(p, b, m, overlap=True, sharded=True):
    """Seconds of one step on p ranks with b graphs per rank; returns the split."""
    n = b * p                                     # global batch (graphs); 2n anchors
    P = m["proj"]
    comp = b * m["c_g"]
    head, tail = 4 * m["params"] * (1 - m["tail_frac"]), 4 * m["params"] * m["tail_frac"]
    # the tail bucket is reduced while the encoder's backward runs: only what exceeds
    # that window shows; the head is reduced after the backward
    t_tail = allreduce(p, tail, m)
    hidden = min(t_tail, m["window_frac"] * comp) if overlap else 0.0
    ar = allreduce(p, head, m) + t_tail - hidden + 3 * allreduce(p, 16, m)  # + loss, status, stop poll
    if sharded:
        # one gather of both views' projections (float32), one of the anchors' (lse, loss)
        # pairs (2 doubles); the rank's 2b rows against all 2n: S and the gradient, two
        # GEMMs of 2b x 2n x P, and 3 exponentials per similarity
        ag = allgather(p, 2 * n * P * 4, m) + allgather(p, 2 * n * 16, m)
        ntx = 2 * 2 * (2 * b) * (2 * n) * P / (m["gflops"] * 1e9) + 3 * (2 * b) * (2 * n) * m["t_exp"]
    else:
        # the previous scheme: two gathers, every rank all (2n)^2 similarities and the
        # gradient of every row
        ag = 2 * allgather(p, n * P * 4, m)
        ntx = 2 * 2 * (2 * n) ** 2 * P / (m["gflops"] * 1e9) + 2 * (2 * n) ** 2 * 2 * m["t_exp"]
    rank_bw = min(m["node_io_bw"] / min(p, m["q"]), m["pfs_bw"] / p)
    io = b * m["graph_bytes"] / rank_bw
    ckpt_bytes = 3 * 4 * m["params"]              # parameters + two AdamW moments
    ckpt = ckpt_bytes / min(m["pfs_bw"], max(1, p / m["q"]) * m["node_io_bw"]) / m["ckpt_every"]
    total = comp + ar + ag + ntx + io + ckpt
    return dict(compute=comp, comm=ar + ag, ntxent=ntx, io=io + ckpt, total=total)


def main():
    m, out = parse(sys.argv[1:])
    ps = [2 ** k for k in range(11)]
    rows = []
    b = m["b"]
    t1 = step(1, b, m)["total"]
    for p in ps:
        s = step(p, b, m)
        gps = b * p / s["total"]
        eff = gps / (p * b / t1)
        eff_no = (t1 / step(p, b, m, overlap=False)["total"])
        eff_rep = (t1 / step(p, b, m, sharded=False)["total"])
        # fixed global batch (strong scaling of one step): b = G / p graphs per rank
        bg = m["global_batch"] / p
        sa = step(p, bg, m) if bg >= 1 else None
        ta1 = step(1, m["global_batch"], m)["total"]
        eff_a = (ta1 / sa["total"]) / p if sa else float("nan")
        rows.append((p, gps, eff, eff_no, eff_rep, eff_a, s["compute"], s["comm"], s["ntxent"],
                     s["ntxent"] / s["total"], s["io"], m["corpus"] / gps / 3600,
                     m["corpus2"] / gps / 3600))
    hdr = ("ranks,graphs_per_s,efficiency,efficiency_no_overlap,efficiency_replicated_ntxent,"
           "efficiency_fixed_global_batch,compute_s,comm_s,ntxent_s,ntxent_share,io_s,"
           "epoch_hours,epoch_hours_corpus2")
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
set multiplot layout 1,2 title 'bgfm pretrain model: {int(b)} graphs/rank/step, P={m["params"]/1e6:.2f}M params, projection {int(m["proj"])}' font 'Sans,10'
set logscale x 2
set grid
set xlabel 'MPI ranks (1 core each, {int(m["q"])} per node)'
set key top left
set logscale y 10
set ylabel 'graphs/s'
set title 'throughput'
plot '{dat}' using 1:2 with linespoints pt 7 title 'model', '' using 1:(1.0*$1*{b}/{t1}) with lines dt 2 lc rgb 'gray40' title 'ideal'
unset logscale y
set yrange [0:1.05]
set ylabel 'efficiency'
set key bottom left
set title 'parallel efficiency'
plot '{dat}' using 1:3 with linespoints pt 7 title 'row-sharded NT-Xent, overlapped tail', '' using 1:5 with linespoints pt 4 title 'replicated NT-Xent (before)', '' using 1:6 with linespoints pt 5 title 'global batch {int(m["global_batch"])} fixed'
unset multiplot
"""
        subprocess.run(["gnuplot"], input=gp.encode(), check=True)


if __name__ == "__main__":
    main()
