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
  - after its last push the trainer sends the pull for the next step, on
    the same connection, so it reaches a server after the pushes (a sparse
    model's rows: their ids and gradients go before the pull; once the
    parameters are in, the trainer asks each server for the rows its next
    batch touches, by id, and computes once they are in: one more round
    trip, ps/client.c's client_pull_tables);
  - a server's request thread takes the messages in the order they come.
    BSP: a piece is summed and applied once every trainer has pushed it,
    and sent at once to the pulls that wait for the step; a pull that comes
    gets the pieces complete so far at once and the rest as they complete,
    so a trainer that finished pushing early gets much of its reply while
    the others still push (the server's links are full duplex). ASP answers
    a pull at once.

The model plays this out as events (class Job): each trainer-server
connection is a queue of messages in each direction; a message goes over
the trainer's link and the server's link, at what they give its connection:
  - sharing "fifo" (the default): a link sends bytes in the order they were
    sent, as one queue (a switch port's, tc tbf's); messages sent at the same
    moment share it fairly. Validated on the test bed (bench/validate.py).
    The order is of connections' turns, not of every byte: a sparse model's
    rows, answered on a connection whose parameters are through, keep that
    connection's turn and do not wait behind all that the link owes the
    others (the link's queue holds what their TCP windows let out, not the
    rest of their replies): on the test bed, 1 server and 3 CTR trainers
    at 100 Mbit/s, trainer 0 waited 21 ms a step for its rows after its
    parameters, where a queue of messages would put them 330 ms later.
    For the same reason a connection keeps its turn for a window's bytes
    (SEND_WINDOW, what TCP lets it have queued) and then goes to the back:
    replies of many megabytes to several trainers take turns window by
    window and so end nearly together, as the test bed's bench MLP showed
    (1 server, 2 BSP trainers, 147 MB each way at 1 Gbit/s: measured 0.58
    of a prediction that sent one reply whole before the other);
  - sharing "fair": every connection with bytes to send gets an equal share
    (max-min fair), as per-flow fair queueing would give.
ZeroMQ's I/O threads (one per rank without CURVE; with CURVE one per
connection up to the node's cores) cap a connection and a rank at what
calibration measured per byte; the server's thread takes each piece for
the time calibration measured per key (per trainer, and per sum applied).
Steps are simulated until the trainers' pace is steady (SIM_STEPS, of
which the first SIM_SKIP are not counted); the job's samples/s is the sum
of the trainers' own rates (in ASP each goes at its own pace). Beyond
GROUPS trainers (servers), ranks are simulated in GROUPS groups that move
together: a group of n trainers sends n times the bytes over n links.

Usage:
  scale_model.py [--calib FILE] [--out DIR]      the table and plot for 8..1024
  scale_model.py --predict --model cnn --trainers 3 --servers 1 --gbps 0.1 ...
"""
import argparse
import collections
import contextlib
import heapq
import json
import math
import multiprocessing
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PIECE_KEYS = 262144          # WIRE_PIECE_FLOATS (common/net/wire.h)
SEND_WINDOW = 4 << 20        # bytes a connection has queued at a link at most: Linux's TCP
                             # send buffer ceiling (net.ipv4.tcp_wmem's max, 4 MiB here)
ETH_FRAME = (1448 + 90) / 1448.0  # payload of a 1500-byte MTU TCP segment (timestamps) against
                                  # what the wire carries: 52 TCP/IP + 14 Ethernet + 4 FCS
                                  # + 8 preamble + 12 inter-frame gap
MODEL_OPTIM = {"cnn": "adam", "lstm": "adam", "mlp": "adam", "ctr": "sgd"}
MODEL_NAMES = {"cnn": "CNN", "lstm": "LSTM", "mlp": "bench MLP", "ctr": "CTR (DLRM)"}


class Calib:
    def __init__(self, path):
        with open(path) as f:
            self.c = json.load(f)

    def window(self):
        """A connection's send window (bytes): the calibrated machine's
        tcp_wmem maximum, SEND_WINDOW for a calibration without it."""
        return self.c["environment"].get("tcp_wmem_max") or SEND_WINDOW

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
        """Bytes on the wire per dense key pushed and pulled (headers
        included). The CTR model's job moved its rows too: less what they
        take by the data's count of them (a calibration from before it ran
        distributed has the MLP's framing instead)."""
        b = self.c["bytes"]
        src = m if m in b else "mlp"
        p = self.c["compute"][src]["params"]
        row_push, row_req, row_pull = self.row_bytes(src)
        return ((b[src][comp]["push_bytes_step"] - row_push - row_req) / p,
                (b[src][comp]["pull_bytes_step"] - row_pull) / p)

    def rows(self, m):
        """Unique sparse rows per trainer step (CTR), and the row bytes."""
        if m != "ctr" or "ctr_data" not in self.c["rows"]:
            return 0, 0
        d = self.c["rows"]["ctr_data"]
        u = d["unique_rows_per_batch"][str(self.batch(m))]
        return u, d["dim"]

    def row_bytes(self, m):
        """A trainer's row bytes per step, as the wire carries them: pushed
        (an id and a gradient each), asked for (the ids of the next batch's
        rows), pulled (a row each)."""
        u, dim = self.rows(m)
        return u * (8 + 4 * dim), u * 8, u * 4 * dim

    def server_costs(self, optim, T, bsp, comp):
        """Server request-thread seconds per key of a piece: for each trainer's
        part as it comes, and for the sum applied once all are in (BSP with
        several trainers; else each part is applied as it comes)."""
        o = self.c["server"]["optimizers"][optim]
        extra = 0.0
        if comp == "fp16":  # decoding pushes, encoding pulls: measured under sgd
            raw, keys = self.c["server"]["raw"], self.c["server"]["keys"]
            t = 1 if T == 1 else 2
            cost = "server_cpu_step_s"
            extra = max((raw[f"sgd {t} none f16"][cost] - raw[f"sgd {t} none f32"][cost]) /
                        keys / t, 0.0)
        if bsp and T > 1:
            return o["busy_per_trainer_s_per_key"] + extra, max(o["busy_base_s_per_key"], 0.0)
        return o["busy_1_trainer_s_per_key"] + extra, 0.0

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


SHARINGS = ("fifo", "fair")  # how a link is shared among connections (the first: the default)
GROUPS = 8         # trainers (servers) simulated one by one up to this many; beyond, in groups
SIM_STEPS, SIM_SKIP = 12, 4  # steps simulated; the first ones (the start) not measured


def groups(n, g):
    """n ranks in min(n, g) groups of consecutive ranks: their sizes."""
    k = min(n, g)
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def maxmin(flows, caps, fcap):
    """Weighted max-min fair rates: flows[f] = (weight, links); each link's
    capacity caps[link]; a flow of weight w (w connections) gets w times what
    one connection gets, and at most fcap[f] (progressive filling)."""
    rate, left = {}, dict(caps)
    todo = set(flows)
    while todo:
        load = {}
        for f in todo:
            for ln in flows[f][1]:
                load[ln] = load.get(ln, 0) + flows[f][0]
        tight = min(load, key=lambda ln: left[ln] / load[ln])
        x = left[tight] / load[tight]
        # the flows capped below the level the tightest link allows stop at their caps
        fixed = [f for f in todo if fcap[f] <= x * flows[f][0]]
        if not fixed:
            fixed = [f for f in todo if tight in flows[f][1]]
        for f in fixed:
            rate[f] = min(fcap[f], x * flows[f][0])
            for ln in flows[f][1]:
                left[ln] = max(left[ln] - rate[f], 0.0)
            todo.discard(f)
    return rate


def waterfill(flows, cap, fcap):
    """Fair shares of one link of capacity cap: flows[f] = weight, each at
    most fcap[f]."""
    rate, W = {}, sum(flows.values())
    for f in sorted(flows, key=lambda f: fcap[f] / flows[f]):
        share = cap * flows[f] / W if W > 0 else 0.0
        rate[f] = min(fcap[f], share)
        cap, W = max(cap - rate[f], 0.0), W - flows[f]
    return rate


def fifo_rates(flows, caps, per_conn, sent):
    """flows[f] = (weight, (sending link, receiving link)). A host's own link
    sends bytes in the order they were sent: the flows whose head messages
    were sent first (sent[f]: the event that sent them) take what it has
    left, those a host sent in one go (a piece to every pull waiting for it)
    sharing fairly. Where the flows of several hosts converge, on
    the receiving host's link (a switch port's queue), each comes at the
    pace its sender gives it and they share fairly (arrivals at equal paces
    take turns in a queue). A flow held back at its receiver leaves its
    sender's link to the flows after it: repeated until the rates settle."""
    by_link = [{}, {}]  # link -> {flow: weight}, sending and receiving
    for f, (w, links) in flows.items():
        for k in (0, 1):
            by_link[k].setdefault(links[k], {})[f] = w
    fcap = {f: w * per_conn for f, (w, _) in flows.items()}
    for _ in range(8):
        out = {}
        for ln, fl in by_link[0].items():
            left = caps[ln]
            order = sorted(fl, key=lambda f: sent[f])
            while order:
                first = [f for f in order if sent[f] <= sent[order[0]]]
                got = waterfill({f: fl[f] for f in first}, left, fcap)
                out.update(got)
                left = max(left - sum(got.values()), 0.0)
                order = order[len(first):]
        rate = {}
        for ln, fl in by_link[1].items():
            rate.update(waterfill(fl, caps[ln], out))
        held = {f for f in flows if rate[f] < out[f] * (1 - 1e-9) and rate[f] < fcap[f]}
        if not held:
            break
        for f in held:
            fcap[f] = rate[f]
    return {f: max(r, 1e-3) for f, r in rate.items()}


class Job:
    """The steps of T trainers and S servers as events. Each trainer-server
    connection is a queue of messages in each direction, drained at what the
    two links it crosses give it (p["sharing"]); each server handles the messages
    that arrive on its request thread in order and answers pulls as
    ps/consistency.c does: BSP, a piece of the step once every trainer's is
    in, to the pulls that wait, and the pieces complete already when a pull
    comes; ASP at once. Beyond GROUPS trainers (servers) ranks are simulated
    in groups that move together: a group of n trainers pushes n times the
    bytes over n links."""

    def __init__(self, p):
        self.p = p
        self.tg, self.sg = groups(p["T"], GROUPS), groups(p["S"], GROUPS)
        self.pieces = self._pieces()
        self.q = {}          # (dir, trainer group, server group) -> deque of [bytes left, what, seq]
        self.turn = {}       # the same keys -> [bytes left of its window, (event, n): where it
                             # went to the back of its links' queues (n-th that event); before
                             # any window is through, (-1, 0), ahead of every message]
        self.requeued = 0    # connections sent to the back so far
        self.active = set()  # the queues with messages
        self.rate = None     # the flows' rates, until a queue empties or starts
        self.ev, self.seq, self.event = [], 0, 0  # event: the one being handled (its number)
        self.free = [0.0] * len(self.sg)   # when each server group's thread is free
        self.count = {}      # (j, k, pid) -> trainers whose piece is in
        self.complete = {}   # (j, k) -> pids of step k complete at server group j, in order
        self.waiting = {}    # (j, k) -> trainer groups whose pull waits there
        self.last_reply = {}  # (i, j, k) -> the event that sent the last reply piece
        self.got = {}        # (i, k, "reply" or "rows") -> those messages in
        self.starts = [[] for _ in self.tg]

    def _pieces(self):
        """Per server group of m servers: (keys, ready time) of each piece
        pushed to it: its shards cut by the gradient's ranges, m pieces of
        PIECE_KEYS (one per server, sent at once) as one."""
        p, out, s0 = self.p, [], 0
        for m in self.sg:
            lo, hi = p["shards"][s0][0], p["shards"][s0 + m - 1][1]
            ps = []
            for b, e, r in p["ready"]:
                b2, e2 = max(b, lo), min(e, hi)
                for c in range(b2, e2, PIECE_KEYS * m):
                    ps.append((min(PIECE_KEYS * m, e2 - c), r))
            out.append(sorted(ps, key=lambda x: x[1]))
            s0 += m
        return out

    def at(self, t, what, *data):
        self.seq += 1
        heapq.heappush(self.ev, (t, self.seq, what, data))

    def send(self, d, i, j, nbytes, what, event=None):
        self.seq += 1
        qq = self.q.setdefault((d, i, j), collections.deque())
        if not qq:
            self.rate = None
            self.active.add((d, i, j))
            self.turn[(d, i, j)] = [self.window(i, j), (-1, 0)]
        qq.append([nbytes, what, self.seq, self.event if event is None else event])

    def window(self, i, j):
        """The bytes a connection group's window lets into a link's queue."""
        return self.tg[i] * self.sg[j] * self.p["window"]

    def order(self, key):
        """Where queue key stands in its links' queues, as (event, n): its head
        message's event (n = 0: the messages of one event side by side), or
        later, when it went to the back having sent a window's bytes in one
        go (n: behind those that went before it)."""
        return max((self.q[key][0][3], 0), self.turn[key][1])

    def thread(self, j, now, cost, what, *data):
        """A job on server group j's request thread (its m threads as one m
        times as fast), after the ones before it; at its end, event `what`."""
        self.free[j] = max(self.free[j], now) + cost / self.sg[j]
        if what:
            self.at(self.free[j], what, *data)

    def start(self, i, k, t):
        """Trainer group i starts step k at t: its pushes as backward makes
        them, then its pull (after the pushes on each connection)."""
        p, n = self.p, self.tg[i]
        self.starts[i].append(t)
        if k == SIM_STEPS:
            return
        for j, ps in enumerate(self.pieces):
            for pid, (keys, r) in enumerate(ps):
                self.at(t + r, "send", "up", i, j, n * keys * p["push_kb"], ("push", k, pid))
            end = max([p["C"]] + [r for _, r in ps])  # the pull goes after the last push
            self.at(t + end, "send", "up", i, j, n * self.sg[j] * p["row_push"], ("pull", k))

    def rates(self):
        if self.rate is None:
            p, flows, caps = self.p, {}, {}
            for d, i, j in self.active:
                ends = (("t", d, i), ("s", d, j))  # (sending link, receiving link)
                if d == "down":
                    ends = ends[::-1]
                flows[(d, i, j)] = (self.tg[i] * self.sg[j], ends)
                caps[("t", d, i)] = self.tg[i] * p["link_t"]
                caps[("s", d, j)] = self.sg[j] * p["link_s"]
            if p["sharing"] == "fair":
                self.rate = maxmin(flows, caps, {f: w * p["conn_cap"]
                                                 for f, (w, _) in flows.items()})
            else:
                self.rate = fifo_rates(flows, caps, p["conn_cap"],
                                       {f: self.order(f) for f in flows})
        return self.rate

    def arrive_up(self, t, i, j, what):
        """A push piece or a pull from trainer group i at server group j."""
        p, (kind, k, *rest) = self.p, what
        n = self.tg[i]
        if kind == "pull":  # after the rows pushed: applied (a half of row_cost)
            self.thread(j, t, n * self.sg[j] * p["row_cost"] / 2, "pulled", i, j, k)
            return
        if kind == "rows_req":  # the rows asked for, found and sent
            self.thread(j, t, n * self.sg[j] * p["row_cost"] / 2, "rows_reply", i, j, k)
            return
        pid = rest[0]
        keys = self.pieces[j][pid][0]
        c = self.count[(j, k, pid)] = self.count.get((j, k, pid), 0) + n
        full = p["bsp"] and c == p["T"]  # its last part: summed and applied, then sent
        self.thread(j, t, n * keys * p["c_arrive"] + (keys * p["c_complete"] if full else 0),
                    "complete" if full else None, j, k, pid)

    def handle(self, t, what, data):
        self.event += 1
        if what == "send":
            self.send(*data)
        elif what == "arrive_up":
            self.arrive_up(t, *data)
        elif what == "complete":
            j, k, pid = data
            self.complete.setdefault((j, k), []).append(pid)
            for i in self.waiting.get((j, k), []):
                self.reply(i, j, k, [pid])
        elif what == "pulled":
            i, j, k = data
            if self.p["bsp"]:
                self.waiting.setdefault((j, k), []).append(i)
                self.reply(i, j, k, self.complete.get((j, k), []))
            else:
                self.reply(i, j, k, range(len(self.pieces[j])))
        elif what == "rows_reply":
            i, j, k = data
            self.send("down", i, j, self.tg[i] * self.sg[j] * self.p["row_pull"], ("rows", k),
                      self.last_reply[(i, j, k)])
        elif what == "arrive_down":
            self.arrive_down(t, *data)

    def arrive_down(self, t, i, j, what):
        """A reply piece (or rows) at trainer group i: once the last is in,
        the next step starts, or (CTR) the next batch's rows are asked for."""
        kind, k = what
        self.got[(i, k, kind)] = self.got.get((i, k, kind), 0) + 1
        if kind == "reply" and self.got[(i, k, kind)] == self.expect and self.p["row_req"]:
            for j2 in range(len(self.sg)):
                self.send("up", i, j2, self.tg[i] * self.sg[j2] * self.p["row_req"],
                          ("rows_req", k))
        elif self.got[(i, k, kind)] == (self.expect if kind == "reply" else len(self.sg)):
            self.start(i, k + 1, t + self.p["tail"])

    def reply(self, i, j, k, pids):
        """Sends trainer group i these pieces of step k."""
        p, n = self.p, self.tg[i]
        for pid in pids:
            self.send("down", i, j, n * self.pieces[j][pid][0] * p["pull_kb"], ("reply", k))
            self.last_reply[(i, j, k)] = self.event

    def advance(self, t, t_to):
        """Drains the queues from t to t_to; messages through arrive after the latency."""
        r = self.rates()
        for key in sorted(self.active, key=lambda k: self.q[k][0][2]):  # in the order sent
            qq, turn = self.q[key], self.turn[key]
            qq[0][0] -= r[key] * (t_to - t)
            turn[0] -= r[key] * (t_to - t)
            while qq and qq[0][0] < 1e-3:  # through (a thousandth of a byte left)
                self.at(t_to + self.p["latency"], "arrive_" + key[0], key[1], key[2],
                        qq.popleft()[1])
            if not qq:
                self.active.discard(key)
                self.rate = None
            elif turn[0] < 1e-3:  # a window sent: the rest queues after all sent so far
                self.requeued += 1
                self.turn[key] = [self.window(key[1], key[2]), (self.event, self.requeued)]
                self.rate = None

    def run(self):
        """Returns, per trainer group, the times it started each step."""
        self.expect = sum(len(ps) for ps in self.pieces)
        for i in range(len(self.tg)):
            self.start(i, 0, i * 1e-6)  # a microsecond apart: nothing is ever in step
        t = 0.0
        while self.ev or self.active:
            self.advance(t, t)  # messages of no bytes
            r = self.rates()
            dt = min((min(self.q[key][0][0], self.turn[key][0]) / r[key] for key in self.active),
                     default=math.inf)
            t_to = min(t + dt, self.ev[0][0] if self.ev else math.inf)
            self.advance(t, t_to)
            t = t_to
            while self.ev and self.ev[0][0] <= t + 1e-12:
                _, _, what, data = heapq.heappop(self.ev)
                self.handle(t, what, data)
        return self.starts


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


def reply_bytes(cal, m, S, comp):
    """The bytes of one step's reply on one trainer-server connection: the
    largest of S shards' parameters and the trainer's rows there."""
    ks = max(b - a for a, b in shards(cal.params(m), S))
    return cal.key_bytes(m, comp)[1] * ks + cal.row_bytes(m)[2] / S


def step(cal, m, T, S, gbps, cores=2, latency_s=25e-6, consistency="bsp", auth="none",
         comp="none", frame=ETH_FRAME, sharing=SHARINGS[0], window=None, detail=False):
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
    ks = max(b - a for a, b in sh)  # the largest shard
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
    # sparse rows (CTR), per trainer and server: pushed after backward (ids,
    # gradients), asked for once the parameters are in (ids), pulled
    u, _ = cal.rows(m)
    row_push, row_req, row_pull = (x / S for x in cal.row_bytes(m))
    bsp = consistency == "bsp"
    c_arrive, c_complete = cal.server_costs(optim, T, bsp, comp)
    par = {"T": T if bsp else 1, "S": S, "shards": sh, "ready": ready_e, "C": C_step,
           "push_kb": push_kb, "pull_kb": pull_kb, "row_push": row_push,
           "row_req": row_req, "row_pull": row_pull, "link_t": min(link, io_t * conn_cap),
           "link_s": min(link, io_s * conn_cap), "conn_cap": conn_cap,
           "c_arrive": c_arrive, "c_complete": c_complete,
           "row_cost": u / S * cal.row_cost(optim) if u else 0.0,
           "latency": latency_s, "sharing": sharing, "bsp": bsp,
           "window": (window or cal.window()) if sharing == "fifo" else math.inf,
           # after the last reply: decoding its last piece (fp16), the software round trip
           "tail": dec * min(PIECE_KEYS, ks) + cal.sw_rtt()}
    job = Job(par)
    starts = job.run()
    # each trainer group's pace once steady
    periods = [(st[-1] - st[SIM_SKIP]) / (len(st) - 1 - SIM_SKIP) for st in starts]
    parts = {"compute_s": C, "fp16_encode_s": acc, "io_cpu_s": io_cpu, "sharing": sharing}
    if bsp:  # the job's rate: the sum of the trainers'
        sps = sum(n * B / per for n, per in zip(job.tg, periods))
        tau = T * B / sps  # the mean step
        parts["trainer_step_s"] = [round(x, 6) for x in periods]
    else:
        # ASP: nothing holds the trainers in step, so how one's transfers meet the others'
        # is a matter of chance: a closed queueing network (exact mean-value analysis) of
        # the T trainers over the busiest server's downlink, uplink and request thread,
        # with the rest of one trainer's step alone (simulated above) as think time
        chain = periods[0]
        link_s = par["link_s"]
        d_down = (push_kb * ks + row_push + row_req) / link_s  # into the server
        d_up = reply_bytes(cal, m, S, comp) / link_s             # out of it
        d_thr = ks * c_arrive + par["row_cost"]
        tau = mva(T, max(chain - d_down - d_up - d_thr, 0.0), [d_down, d_up, d_thr])
        sps = T * B / tau
        parts["alone_step_s"] = chain
    parts["step_s"] = tau
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


def table_row(job):
    """One row of the table: (calibration, model, Gbit/s, trainers, servers, step()'s
    keywords) -> its BSP and ASP figures and the servers BSP needs for 90%."""
    cal, m, g, T, S, kw = job
    r = {"model": m, "gbps": g, "trainers": T, "servers": S}
    for cons in ("bsp", "asp"):
        tau, sps, eff = step(cal, m, T, S, g, consistency=cons, **kw)
        r[cons] = {"step_s": tau, "samples_per_s": sps, "efficiency": eff}
    r["servers_for_90"] = servers_needed(cal, m, T, g, **kw)
    return r


def table(cal, a):
    """Every row of the table, on as many processes as this machine has CPUs
    (the rows are independent simulations; the order is the table's)."""
    kw = dict(cores=a.cores, latency_s=a.latency_us * 1e-6, auth=a.auth, comp=a.comp,
              sharing=a.sharing)
    jobs = [(cal, m, g, T, max(1, T // a.ratio), kw)
            for m in ("cnn", "lstm", "mlp", "ctr") for g in SPEEDS for T in TRAINERS]
    with multiprocessing.Pool(len(os.sched_getaffinity(0))) as pool:
        return pool.map(table_row, jobs, chunksize=1)


def print_table(cal, rows, a):
    print(f"# pstrain scale model: {a.cores} cores per node (1 trainer rank per node, all "
          f"cores), servers = trainers / {a.ratio}, {a.auth} auth, {a.comp} compression, "
          f"{a.latency_us:g} us latency, links shared {a.sharing}; calibration {a.calib} "
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


def compare(cal, other, a):
    """Prints how far each efficiency of the table moves from calibration
    cal to calibration other, in points, and the largest move. Returns 0
    when none moves by more than 10 points, else 1."""
    rows_a, rows_b = table(cal, a), table(other, a)
    worst = (0.0, None)
    for ra, rb in zip(rows_a, rows_b):
        for cons in ("bsp", "asp"):
            d = 100 * (rb[cons]["efficiency"] - ra[cons]["efficiency"])
            print(f"{MODEL_NAMES[ra['model']]:11} {ra['gbps']:>4} Gbit/s {ra['trainers']:>5} x "
                  f"{ra['servers']:>4} {cons.upper()}: {100 * ra[cons]['efficiency']:5.1f}% -> "
                  f"{100 * rb[cons]['efficiency']:5.1f}% ({d:+.1f})")
            if abs(d) > abs(worst[0]):
                worst = (d, f"{MODEL_NAMES[ra['model']]}, {ra['gbps']} Gbit/s, "
                            f"{ra['trainers']} trainers, {cons.upper()}")
    print(f"# largest move: {worst[0]:+.1f} points ({worst[1]}); calibrations "
          f"{cal.c['environment']['date']} and {other.c['environment']['date']}")
    return 0 if abs(worst[0]) <= 10 else 1


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
    ap.add_argument("--compare", metavar="CALIB",
                    help="the table's efficiencies from --calib against those from CALIB "
                         "(another day's calibration): every difference, the largest last")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--trainers", type=int, default=1)
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--gbps", type=float, default=10.0)
    ap.add_argument("--consistency", default="bsp", choices=("bsp", "asp", "ssp"))
    ap.add_argument("--sharing", default=SHARINGS[0], choices=SHARINGS,
                    help="how a link is shared among connections (see the top of this file)")
    ap.add_argument("--frame", type=float, default=ETH_FRAME,
                    help="wire bytes per payload byte (1538/1448 on Ethernet)")
    a = ap.parse_args()
    cal = Calib(a.calib)
    if a.predict:
        cons = "asp" if a.consistency == "ssp" else a.consistency
        tau, sps, eff, parts = step(cal, a.model, a.trainers, a.servers, a.gbps, cores=a.cores,
                                    latency_s=a.latency_us * 1e-6, consistency=cons,
                                    auth=a.auth, comp=a.comp, frame=a.frame,
                                    sharing=a.sharing, detail=True)
        print(json.dumps({"step_s": tau, "samples_per_s": sps, "efficiency": eff,
                          "parts": parts}))
        return
    if a.compare:
        return compare(cal, Calib(a.compare), a)
    rows = table(cal, a)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "scale.txt"), "w") as f, contextlib.redirect_stdout(Tee(f)):
        print_table(cal, rows, a)
    with open(os.path.join(a.out, "scale.json"), "w") as f:
        json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    plot(rows, a)


if __name__ == "__main__":
    sys.exit(main())
