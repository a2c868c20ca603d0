#!/usr/bin/python3
"""scale_model.py - pstrain's step time and samples/s for T trainer nodes and
S server nodes, from the figures bench/calibrate.py measured
(bench/out/calibration.json). No figure is set by hand except the cluster's
(links, latency, cores) and the frame overhead of Ethernet.

What a step is (trainer/dist.c, ps/client.c, ps/consistency.c):
  - the step's parameters arrive (the pull), forward and backward run on the
    node's cores; as soon as backward has produced a layer's gradient the
    trainer pushes that range (fp16: encoded on the compute thread first),
    cut in pieces to the servers that own its keys (contiguous shards of
    equal size), so pushes overlap the rest of backward;
  - after its last push the trainer sends the pull for the next step; a BSP
    server answers once every trainer's pieces are in and applied (each
    piece is applied as soon as all trainers have sent it: only the last
    one is left after the last byte arrives); ASP answers at once.
Links are full duplex: a trainer's uplink carries its pushes, its downlink
the pulls; a server's downlink carries T/S of the trainers' pushes, its
uplink T/S of the pulls. Transfers share a link fairly (TCP flows): in a
phase, each active flow gets min(its server's share, the trainer link over
its active flows), a fluid model stepped from event to event. ZeroMQ's I/O
threads (one per rank without CURVE; with CURVE one per connection up to
the node's cores) and the server's request thread cap the rates at what
calibration measured per byte.

BSP: every trainer is in the same phase (they wait for each other), so one
trainer with every server shared T ways is the whole job. ASP (and SSP with
staleness >= 1: symmetric trainers never wait on the bound): trainers drift
apart, and the pushes of some overlap the pulls of others; modelled as a
closed queueing network (exact mean-value analysis) of T trainers over the
servers' downlink, uplink and request thread, with the rest of a trainer's
cycle (its compute and its own links, from the same fluid model with no
other trainer) as think time.

Usage:
  scale_model.py [--calib FILE] [--out DIR]      the table and plot for 8..1024
  scale_model.py --predict --model cnn --trainers 3 --servers 1 --gbps 0.1 ...
"""
import argparse
import contextlib
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PIECE_KEYS = 262144          # WIRE_PIECE_FLOATS (common/net/wire.h)
ETH_FRAME = (1448 + 90) / 1448.0  # payload of a 1500-byte MTU TCP segment (timestamps) against
                                  # what the wire carries: 52 TCP/IP + 14 Ethernet + 4 FCS
                                  # + 8 preamble + 12 inter-frame gap
MODEL_OPTIM = {"cnn": "adam", "lstm": "adam", "mlp": "adam", "ctr": "sgd"}
MODEL_NAMES = {"cnn": "CNN", "lstm": "LSTM", "mlp": "bench MLP", "ctr": "CTR (DLRM)"}


class Calib:
    def __init__(self, path):
        with open(path) as f:
            self.c = json.load(f)

    # compute on a node of `cores` cores: the fastest measured thread count that fits
    # (train.threads is the user's to set); beyond the measured counts, Amdahl's law
    # with the parallel share that 1 -> 2 threads measured
    def compute(self, m, cores):
        th = {int(k): v for k, v in self.c["compute"][m]["threads"].items()}
        fits = [k for k in th if k <= cores] or [min(th)]
        best = min(fits, key=lambda k: th[k]["step_s"])
        t = th[best]
        step_s, scale = t["step_s"], 1.0
        if cores > max(th) and 1 in th and 2 in th:
            s2 = min(max(th[1]["step_s"] / th[2]["step_s"], 1.0), 2.0)
            f = 2 * (1 - 1 / s2)
            scale = ((1 - f) + f / cores) * th[1]["step_s"] / step_s
        # ready times as shares of the step (their medians and the step's come from
        # the same rounds but not always the same one)
        last = max(r for _, _, r in t["grad_ready"])
        C = step_s * min(scale, 1.0)
        return C, [(b, e, r / last * C) for b, e, r in t["grad_ready"]]

    def threads_used(self, m, cores):
        th = {int(k): v for k, v in self.c["compute"][m]["threads"].items()}
        fits = [k for k in th if k <= cores] or [min(th)]
        return min(fits, key=lambda k: th[k]["step_s"])

    def params(self, m):
        return self.c["compute"][m]["params"]

    def batch(self, m):
        return self.c["compute"][m]["batch"]

    def key_bytes(self, m, comp):
        """Bytes on the wire per key pushed and pulled (headers included)."""
        b = self.c["bytes"]
        src = m if m in b else "mlp"  # the CTR model does not run distributed: the MLP's framing
        p = self.c["compute"][src]["params"]
        return b[src][comp]["push_bytes_step"] / p, b[src][comp]["pull_bytes_step"] / p

    def rows(self, m):
        """Unique sparse rows per trainer step (CTR), and the row bytes."""
        if m != "ctr" or "ctr_data" not in self.c["rows"]:
            return 0, 0
        d = self.c["rows"]["ctr_data"]
        u = d["unique_rows_per_batch"][str(self.batch(m))]
        return u, d["dim"]

    def union_rows(self, m, n_samples):
        """Unique rows in n_samples lines (power law through the measured batch sizes)."""
        d = self.c["rows"]["ctr_data"]["unique_rows_per_batch"]
        pts = sorted((int(k), v) for k, v in d.items())
        if n_samples <= pts[0][0]:
            return pts[0][1] * n_samples / pts[0][0]
        for (b0, u0), (b1, u1) in zip(pts, pts[1:]):
            if n_samples <= b1:
                a = math.log(u1 / u0) / math.log(b1 / b0)
                return u0 * (n_samples / b0) ** a
        (b0, u0), (b1, u1) = pts[-2], pts[-1]
        a = math.log(u1 / u0) / math.log(b1 / b0)
        return u1 * (n_samples / b1) ** a

    def busy_per_key(self, optim, T, comp):
        """Server request-thread seconds per key of its shard per step with T trainers."""
        o = self.c["server"]["optimizers"][optim]
        if T == 1:
            s = o["busy_1_trainer_s_per_key"]
        else:
            s = max(o["busy_base_s_per_key"], 0) + T * o["busy_per_trainer_s_per_key"]
        if comp == "fp16":  # decoding pushes, encoding pulls: measured under sgd
            raw = self.c["server"]["raw"]
            keys = self.c["server"]["keys"]
            t = 1 if T == 1 else 2
            extra = (raw[f"sgd {t} none f16"]["server_busy_step_s"] -
                     raw[f"sgd {t} none f32"]["server_busy_step_s"]) / keys / t
            s += max(extra, 0) * T
        return s

    def apply_per_key(self, optim):
        o = self.c["server"]["optimizers"][optim]
        return max(o["busy_base_s_per_key"], 0), o["busy_1_trainer_s_per_key"]

    def io_cpu_per_byte(self, auth):
        """CPU seconds per byte on the wire at ONE end (half of both ends'): kernel and
        ZeroMQ, and CURVE's encryption when on (fp16's codec is counted apart)."""
        e = self.c["server"]["exchange"]
        return max(e["curve" if auth == "curve" else "plain"]["cpu_s_per_byte"], 1e-13) / 2

    def sw_rtt(self):
        return self.c["latency"]["push_pull_round_trip_s"]

    def codec(self):
        c = self.c["codec"]
        return c["fp16_encode_s_per_float"], c["fp16_decode_s_per_float"]

    def row_cost(self, optim):
        r = self.c["rows"]["rows_per_s"]
        rate = r.get(optim) or r.get("sgd")
        return 2.0 / rate  # one pull and one push of a row


def fluid(chunks, flow_cap, total_cap):
    """One trainer's transfers to (or from) S servers, as a fluid: chunks[s]
    is a list of (ready time, bytes) for server s; each active flow gets
    min(flow_cap[s], total_cap / active flows) (equal caps: max-min fair).
    Returns the time each server's last byte is through (0 for none)."""
    S = len(chunks)
    pend = [sorted(c) for c in chunks]
    idx = [0] * S
    q = [0.0] * S
    done = [0.0] * S
    t = 0.0
    eps = 1e-9
    while True:
        for s in range(S):
            while idx[s] < len(pend[s]) and pend[s][idx[s]][0] <= t + 1e-15:
                q[s] += pend[s][idx[s]][1]
                idx[s] += 1
        active = [s for s in range(S) if q[s] > eps]
        nxt = [pend[s][idx[s]][0] for s in range(S) if idx[s] < len(pend[s])]
        if not active:
            if not nxt:
                return done
            t = min(nxt)
            continue
        share = total_cap / len(active)
        rate = {s: min(flow_cap[s], share) for s in active}
        dt = min(q[s] / rate[s] for s in active)
        if nxt:
            dt = min(dt, min(nxt) - t)
        for s in active:
            q[s] -= rate[s] * dt
            if q[s] <= eps * max(1.0, rate[s]):
                q[s] = 0.0
        t += dt
        for s in active:
            if q[s] == 0.0 and idx[s] == len(pend[s]):
                done[s] = t


def mva(T, Z, demands):
    """Exact mean-value analysis of a closed network: T customers, think time
    Z, queueing stations with these demands. Returns the cycle time."""
    Q = [0.0] * len(demands)
    X = 0.0
    for n in range(1, T + 1):
        R = [d * (1 + q) for d, q in zip(demands, Q)]
        X = n / (Z + sum(R))
        Q = [X * r for r in R]
    return T / X


def shards(P, S):
    base, extra = divmod(P, S)
    out, b = [], 0
    for s in range(S):
        n = base + (1 if s < extra else 0)
        out.append((b, b + n))
        b += n
    return out


def step(cal, m, T, S, gbps, cores=2, latency_s=25e-6, consistency="bsp", auth="none",
         comp="none", frame=ETH_FRAME, detail=False):
    """Step time (s) of a trainer, samples/s of the job and the parts."""
    P = cal.params(m)
    B = cal.batch(m)
    optim = MODEL_OPTIM[m]
    C, ready = cal.compute(m, cores)
    push_kb, pull_kb = cal.key_bytes(m, comp)
    enc, dec = cal.codec() if comp == "fp16" else (0.0, 0.0)
    link = gbps * 1e9 / 8 / frame  # payload bytes/s of one direction of a link
    io_pb = cal.io_cpu_per_byte(auth)
    conn_cap = 1 / io_pb  # one connection is one I/O thread at each end
    io_t = min(S, cores) if auth == "curve" else 1
    io_s = min(T, cores) if auth == "curve" else 1
    sh = shards(P, S)
    ks = max(b - a for a, b in sh)
    # fp16: every pushed range is encoded on the compute thread before it goes
    ready_e, acc = [], 0.0
    for b, e, r in sorted(ready, key=lambda x: x[2]):
        acc += enc * (e - b)
        ready_e.append((b, e, r + acc))
    # the trainer's I/O thread(s) take CPU from the compute threads when every core
    # computes: its CPU per step shared over the node's cores
    io_cpu = io_pb * (push_kb + pull_kb) * P
    C_step = C + acc + io_cpu / cores
    ready_e = [(b, e, r + io_cpu / cores * r / C) for b, e, r in ready_e]
    # sparse rows (CTR): ids + values pushed after backward, pulled with the parameters
    u, dim = cal.rows(m)
    row_push = u * (8 + 4 * dim) / S
    row_pull = u * (8 + 4 * dim) / S
    busy_key = cal.busy_per_key(optim, T if consistency == "bsp" else 1, comp)
    row_busy = 0.0
    if u:
        # BSP: every trainer's rows pulled, their union applied once; ASP: one trainer's
        n_rows, tn = (cal.union_rows(m, B * T), T) if consistency == "bsp" else (u, 1)
        row_busy = (tn * u + n_rows) / 2 * cal.row_cost(optim) / S
    # server request thread: bytes per second of pushes it keeps up with
    srv_busy_step = busy_key * ks + row_busy          # BSP: all T trainers' share
    srv_bytes_in = (T if consistency == "bsp" else 1) * (push_kb * ks + row_push)
    thread_cap = srv_bytes_in / srv_busy_step if srv_busy_step > 0 else float("inf")

    def chunks_push():
        out = [[] for _ in range(S)]
        for b, e, r in ready_e:
            for s, (lo, hi) in enumerate(sh):
                k = min(e, hi) - max(b, lo)
                if k > 0:
                    out[s].append((r, k * push_kb))
        if row_push:
            for s in range(S):
                out[s].append((C_step, row_push))
        return out

    def exchange(sharers):
        # per-flow caps at the server end (its link, I/O threads and request thread shared
        # by `sharers` trainers), and the trainer's total
        down = min(link, io_s * conn_cap, thread_cap) / sharers
        up = min(link, io_s * conn_cap) / sharers
        cap_t = min(link, io_t * conn_cap)
        push_done = fluid(chunks_push(), [min(down, conn_cap)] * S, cap_t)
        apply_last = cal.apply_per_key(optim)[0 if sharers > 1 else 1] * min(PIECE_KEYS, ks)
        starts = [d + latency_s + apply_last + cal.sw_rtt() for d in push_done]
        pull = [[(st, pull_kb * (hi - lo) + row_pull)] for st, (lo, hi) in zip(starts, sh)]
        pull_done = fluid(pull, [min(up, conn_cap)] * S, cap_t)
        tail_dec = dec * min(PIECE_KEYS, ks)
        return max(pull_done) + latency_s + tail_dec, max(push_done)

    parts = {"compute_s": C, "fp16_encode_s": acc, "io_cpu_s": io_cpu}
    if consistency == "bsp":
        tau, push_end = exchange(T)
    else:
        chain, push_end = exchange(1)
        d_down = (push_kb * ks + row_push) / min(link, io_s * conn_cap)
        d_up = (pull_kb * ks + row_pull) / min(link, io_s * conn_cap)
        d_thr = srv_busy_step
        Z = max(chain - d_down - d_up - d_thr, 0.0)
        tau = mva(T, Z, [d_down, d_up, d_thr])
        parts["alone_s"] = chain
    parts["push_end_s"] = push_end
    parts["step_s"] = tau
    sps = T * B / tau
    eff = C / tau
    if detail:
        return tau, sps, eff, parts
    return tau, sps, eff


def servers_needed(cal, m, T, gbps, target=0.9, **kw):
    """The fewest servers for efficiency >= target (None when even S = T does not)."""
    lo, hi = 1, max(1, T)
    if step(cal, m, T, hi, gbps, **kw)[2] < target:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if step(cal, m, T, mid, gbps, **kw)[2] >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


TRAINERS = [8, 16, 32, 64, 128, 256, 512, 1024]
SPEEDS = [10, 25, 100]


def table(cal, a):
    kw = dict(cores=a.cores, latency_s=a.latency_us * 1e-6, auth=a.auth, comp=a.comp)
    rows = []
    for m in ("cnn", "lstm", "mlp", "ctr"):
        for g in SPEEDS:
            for T in TRAINERS:
                S = max(1, T // a.ratio)
                r = {"model": m, "gbps": g, "trainers": T, "servers": S}
                for cons in ("bsp", "asp"):
                    tau, sps, eff = step(cal, m, T, S, g, consistency=cons, **kw)
                    r[cons] = {"step_s": tau, "samples_per_s": sps, "efficiency": eff}
                r["servers_for_90"] = servers_needed(cal, m, T, g, **kw)
                rows.append(r)
    return rows


def print_table(cal, rows, a):
    print(f"# pstrain scale model: {a.cores} cores per node (1 trainer rank per node, all "
          f"cores), servers = trainers / {a.ratio}, {a.auth} auth, {a.comp} compression, "
          f"{a.latency_us:g} us latency; calibration {a.calib} "
          f"({cal.c['environment']['date']}, {cal.c['environment']['cpu']})")
    print(f"# efficiency = samples/s / (T x one node's compute-only samples/s); "
          f"'-' = not reachable with S <= T")
    cur = None
    for r in rows:
        if r["model"] != cur:
            cur = r["model"]
            C, _ = cal.compute(cur, a.cores)
            print(f"\n## {MODEL_NAMES[cur]}: {cal.params(cur):,} parameters, batch "
                  f"{cal.batch(cur)} per node, compute {1e3 * C:.2f} ms per step "
                  f"({cal.threads_used(cur, a.cores)} thread(s), the fastest measured)")
            print(f"{'Gbit/s':>6} {'T':>5} {'S':>4} {'BSP samples/s':>14} {'eff':>5} "
                  f"{'ASP samples/s':>14} {'eff':>5} {'S for 90% (BSP)':>16}")
        s90 = r["servers_for_90"]
        print(f"{r['gbps']:>6} {r['trainers']:>5} {r['servers']:>4} "
              f"{r['bsp']['samples_per_s']:>14,.0f} {100 * r['bsp']['efficiency']:>4.0f}% "
              f"{r['asp']['samples_per_s']:>14,.0f} {100 * r['asp']['efficiency']:>4.0f}% "
              f"{s90 if s90 else '-':>16}")


def plot(rows, a):
    os.makedirs(a.out, exist_ok=True)
    dat = os.path.join(a.out, "scale.dat")
    with open(dat, "w") as f:
        for m in ("cnn", "lstm", "mlp", "ctr"):
            for g in SPEEDS:
                f.write(f"# {m} {g}\n")
                for r in rows:
                    if r["model"] == m and r["gbps"] == g:
                        f.write(f"{r['trainers']} {r['bsp']['samples_per_s']:.6g} "
                                f"{100 * r['bsp']['efficiency']:.4g} "
                                f"{r['asp']['samples_per_s']:.6g} "
                                f"{100 * r['asp']['efficiency']:.4g}\n")
                f.write("\n\n")
    png = os.path.join(a.out, "scale.png")
    gp = [f"set terminal pngcairo size 1600,1200 font ',10'", f"set output '{png}'",
          "set multiplot layout 4,2 title 'pstrain, predicted (BSP solid, ASP dashed): "
          f"{a.cores} cores/node, servers = trainers/{a.ratio}, {a.comp} compression'",
          "set logscale x 2", "set xrange [8:1024]", "set grid", "set key left top"]
    colors = {10: "#1b9e77", 25: "#d95f02", 100: "#7570b3"}
    for i, m in enumerate(("cnn", "lstm", "mlp", "ctr")):
        for panel in ("sps", "eff"):
            col_b, col_a = (2, 4) if panel == "sps" else (3, 5)
            gp.append(f"set title '{MODEL_NAMES[m]}: "
                      f"{'samples/s' if panel == 'sps' else 'scaling efficiency (%)'}'")
            gp.append("set xlabel 'trainer nodes'")
            gp.append("set logscale y 10" if panel == "sps" else "unset logscale y")
            gp.append("set yrange [*:*]" if panel == "sps" else "set yrange [0:105]")
            gp.append("set key left top" if panel == "sps" else "set key right bottom")
            plots = []
            for j, g in enumerate(SPEEDS):
                idx = i * len(SPEEDS) + j
                plots.append(f"'{dat}' index {idx} using 1:{col_b} with linespoints lw 2 "
                             f"lc rgb '{colors[g]}' title '{g} Gbit/s'")
                plots.append(f"'{dat}' index {idx} using 1:{col_a} with lines dt 2 lw 2 "
                             f"lc rgb '{colors[g]}' notitle")
            if panel == "eff":
                plots.append("90 with lines lc rgb 'gray' dt 3 title '90%'")
            gp.append("plot " + ", ".join(plots))
    gp.append("unset multiplot")
    try:
        subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", text=True, check=True)
        print(f"\n# plot: {png}")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"\n# plot not drawn: {e}", file=sys.stderr)


class Tee:
    """Writes to stdout and to a file."""
    def __init__(self, f):
        self.f, self.out = f, sys.stdout

    def write(self, s):
        self.f.write(s)
        return self.out.write(s)

    def flush(self):
        self.f.flush()
        self.out.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calib", default=os.path.join(HERE, "out", "calibration.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--ratio", type=int, default=4, help="trainers per server in the table")
    ap.add_argument("--latency-us", type=float, default=25.0)
    ap.add_argument("--auth", default="none", choices=("none", "curve"))
    ap.add_argument("--comp", default="none", choices=("none", "fp16"))
    ap.add_argument("--predict", action="store_true", help="one configuration, as JSON")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--trainers", type=int, default=1)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--gbps", type=float, default=10.0)
    ap.add_argument("--consistency", default="bsp", choices=("bsp", "asp", "ssp"))
    ap.add_argument("--frame", type=float, default=ETH_FRAME,
                    help="wire bytes per payload byte (1538/1448 on Ethernet)")
    a = ap.parse_args()
    cal = Calib(a.calib)
    if a.predict:
        cons = "asp" if a.consistency == "ssp" else a.consistency
        tau, sps, eff, parts = step(cal, a.model, a.trainers, a.servers, a.gbps, cores=a.cores,
                                    latency_s=a.latency_us * 1e-6, consistency=cons,
                                    auth=a.auth, comp=a.comp, frame=a.frame, detail=True)
        print(json.dumps({"step_s": tau, "samples_per_s": sps, "efficiency": eff,
                          "parts": parts}))
        return
    rows = table(cal, a)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "scale.txt"), "w") as f, contextlib.redirect_stdout(Tee(f)):
        print_table(cal, rows, a)
    with open(os.path.join(a.out, "scale.json"), "w") as f:
        json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    plot(rows, a)


if __name__ == "__main__":
    main()
