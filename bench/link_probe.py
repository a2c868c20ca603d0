#!/usr/bin/python3
"""link_probe.py - how a test-bed host's capped link is shared by TCP
connections that send at once: the window of the performance model's turn
rule (bench/scale_model.py, sharing "fifo"), measured on the link instead of
taken from the kernel's ceiling.

One host sends M bytes to each of n others at once over plain TCP, writing
each non-blocking socket until the kernel takes no more, socket after socket
(what ZeroMQ's I/O thread does with a reply to several trainers), ROUNDS
times with IDLE seconds between (a BSP step's quiet link); each receiver
says when it has all M. Over the rounds after WARMUP, the median of the
first, second, ... completion. With R the link's payload rate:
    FIFO (one connection's bytes, then the next's): M/R, 2M/R, ..., nM/R
    fair (equal shares throughout):                 nM/R for every one
On the test bed (tbf, BBR) they lie between and depend on n and M: two
218 KB transfers at 25 Mbit/s end at 110 and 145 ms (FIFO 73 and 146), four
of 1 MB at 100 Mbit/s at 210-268, 299-313, 323-328 and 335 ms (FIFO 84,
167, 251, 335). The window is the W for which the model's rule, the
connections taking turns of W bytes, gives the same mean completion
(fit_window). bench/validate.py reports it, and the prediction with it,
for each configuration's replies (see there why it is not the model's
input).

Usage (validate.py runs these in the test bed's namespaces):
  link_probe.py send N BYTES ROUNDS IDLE PORT    on the sending host
  link_probe.py recv HOST PORT BYTES ROUNDS      on each receiving host
The sender prints the completions, one JSON list of seconds per round; validate.py pools RUNS
runs (summary).
"""
import json
import select
import socket
import statistics
import sys
import time

PORT = 7787
ROUNDS = 12
WARMUP = 2         # rounds not counted: the connections' first windows
IDLE_S = 0.05      # between rounds
RUNS = 3           # runs pooled (each its own connections)
TIMEOUT_S = 60.0   # any wait longer than this is an error (a host gone)
CONNECT_S = 10.0   # a receiver waits this long for the sender to listen
GRID = 1.05        # fit_window's steps


def completions(n, M, W):
    """Bytes the link has sent when each of n connections of M bytes is
    through, the connections taking turns of W bytes (sorted)."""
    left, sent, done = [M] * n, 0.0, []
    while len(done) < n:
        for k in range(n):
            if left[k] > 0:
                c = min(W, left[k])
                sent += c
                left[k] -= c
                if left[k] <= 0:
                    done.append(sent)
    return sorted(done)


def fit_window(n, M, rate, times):
    """The window W (bytes, from 1 KB to M on a grid of 5% steps) whose
    turns give the mean completion nearest to the measured times (seconds)
    at rate R (payload bytes/s). M when the link ran one connection after
    another; small when it shared it evenly."""
    target = statistics.mean(times) * rate
    best, W = None, 1024.0
    while True:
        w = min(W, M)
        err = abs(statistics.mean(completions(n, M, w)) - target)
        if best is None or err < best[0]:
            best = (err, w)
        if w >= M:
            return int(best[1])
        W *= GRID


def summary(runs):
    """The median of each completion, in order, over the counted rounds of
    all runs (each run a list of rounds: a new set of connections, whose
    TCP states settle differently: two 146 KB transfers at 25 Mbit/s ended
    first at 61, 84 and 92 ms in three runs of 10 rounds)."""
    use = [r for rounds in runs for r in rounds[WARMUP:]]
    n = len(use[0])
    return [statistics.median(sorted(r)[i] for r in use) for i in range(n)]


def send(n, M, rounds, idle, port):
    """Accepts n receivers, then each round waits for all to ask and sends M
    bytes to each at once; returns the completions of each round (s)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(n)
    ls.settimeout(TIMEOUT_S)
    conns = [ls.accept()[0] for _ in range(n)]
    buf = memoryview(b"\0" * M)
    out = []
    for _ in range(rounds):
        for c in conns:
            c.settimeout(TIMEOUT_S)  # blocking again, for the request
            if c.recv(1) != b"r":
                raise RuntimeError("link_probe: a receiver went away")
            c.setblocking(False)
        out.append(one_round(conns, buf))
        time.sleep(idle)
    return out


def one_round(conns, buf):
    """M bytes to every connection, socket after socket as each takes them;
    the seconds until each receiver said it had all."""
    M, off, done = len(buf), {c: 0 for c in conns}, {}
    t0 = time.monotonic()
    while len(done) < len(conns):
        rd, wr, _ = select.select([c for c in conns if c not in done],
                                  [c for c in conns if off[c] < M], [], TIMEOUT_S)
        if not rd and not wr:
            raise RuntimeError(f"link_probe: nothing moved for {TIMEOUT_S:g} s")
        for c in wr:
            try:
                while off[c] < M:
                    off[c] += c.send(buf[off[c]:])
            except BlockingIOError:
                pass
        for c in rd:
            if c.recv(1) != b"d":
                raise RuntimeError("link_probe: a receiver went away")
            done[c] = time.monotonic() - t0
    return sorted(done.values())


def recv(host, port, M, rounds):
    """Connects (the sender may not listen yet: tries for CONNECT_S), then
    each round asks and reads M bytes, and says so."""
    t0 = time.monotonic()
    while True:
        try:
            s = socket.create_connection((host, port), timeout=TIMEOUT_S)
            break
        except ConnectionRefusedError:
            if time.monotonic() - t0 > CONNECT_S:
                raise
            time.sleep(0.05)
    for _ in range(rounds):
        s.sendall(b"r")
        got = 0
        while got < M:
            k = len(s.recv(1 << 20))
            if k == 0:
                raise RuntimeError("link_probe: the sender went away")
            got += k
        s.sendall(b"d")


def main(argv):
    if len(argv) == 7 and argv[1] == "send":
        rounds = send(int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]), int(argv[6]))
        print(json.dumps(rounds))
        return 0
    if len(argv) == 6 and argv[1] == "recv":
        recv(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
        return 0
    print(__doc__.split("Usage")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
