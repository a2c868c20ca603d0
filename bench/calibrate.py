#!/usr/bin/python3
"""calibrate.py - measures on this machine the parts of pstrain's performance
model (bench/scale_model.py) and writes them to ONE JSON file
(default bench/out/calibration.json), with the environment they came from.

Per shipped model (the CNN, the LSTM, the bench MLP and the CTR model) and
thread count (1, 2):
  - compute: forward + backward of one trainer's batch (build/bench_calib
    compute: the team of worker threads a trainer runs, random inputs), the
    step time less the time the threads waited for a CPU that other jobs
    held (schedstat) or the 10th percentile of the steps, whichever is
    faster (the first holds when every step is interrupted, the second when
    most are not), the fastest round's, and when each parameter range's
    gradient is ready
    during backward (the ranges a trainer pushes as backward produces them);
  - bytes pulled and pushed per step, plain and fp16: the difference of
    trainer 0's byte counters between a long and a short real job
    (1 server + 1 trainer under mpirun, TCP loopback), divided by the
    difference in steps, so that the start and end of a job cancel out (the
    CTR model's job moves its rows too: the model takes them out by the
    unique rows per batch counted in data/ctr/train.txt at several batch
    sizes, and sizes them for other batches by that count);
Per optimizer: the CPU time of the server's thread per step for 1, 2 and 4
trainers pushing and pulling 4M keys (build/bench_calib server; CPU time,
not its busy time, since other jobs on the machine stretch that), hence the
cost per byte applied and per byte summed; the CPU per byte of the exchange
(the whole process's CPU time less the server thread's, per byte moved:
kernel and ZeroMQ at both ends), plain, CURVE and fp16, and a single
connection's throughput; fp16 encode and decode per float; the round trip of
a 1-key push + pull (per-message latency: the 10th percentile of a run's
round trips, those no other job held up); the row store's rows/s per row
optimizer per second of CPU time (build/bench_rows).

Alternating rounds, medians (the compute: the fastest round; the CPU times of
the server and the exchange: the least round): the machine is shared and
noisy, and other jobs can only add to a figure. ROUNDS=3 by
default (the compute, the noisiest, gets 2 more); the whole run takes about
4 minutes on this 2-core machine when quiet, 6 under other jobs.
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "build")

# model -> config, per-trainer batch, timed compute steps per round, job steps (short, long)
MODELS = {
    "cnn": ("fashion_cnn.cfg", 32, 300, (20, 120)),
    "lstm": ("fashion_lstm.cfg", 32, 150, (20, 120)),
    "mlp": ("bench_mlp.cfg", 256, 4, (2, 6)),
    "ctr": ("criteo_dlrm.cfg", 128, 150, (20, 120)),
}
# a job's settings beside the model's: the CTR model's shuffle buffer of 10,000
# samples, not the config's million (filled before the first step)
JOB_EXTRA = {"ctr": ["--set", "data.shuffle_buffer=10000"]}
OPTIMS = ["sgd", "momentum", "adam", "adagrad"]
SERVER_KEYS = 1 << 22  # 4M keys, 16 MiB: many pieces, as a large shard
CPU_FIGURES = ("server_cpu_step_s", "cpu_step_s")  # bench_calib server's CPU times


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run_json(cmd):
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def cfg(model):
    return os.path.join(ROOT, "configs", MODELS[model][0])


def mpirun():
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none"]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    return cmd


def tcp_wmem_max():
    """net.ipv4.tcp_wmem's maximum (bytes), or None where it cannot be read."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return None


def env_info():
    def sh(c):
        try:
            return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    lscpu = sh("lscpu")

    def field(name):
        m = re.search(name + r":\s*(.*)", lscpu)
        return m.group(1) if m else "?"
    flags = field("Flags").split()
    # machines of one kind can differ in their CPU (a Zen 4 with AVX-512 one
    # day, a Zen 3 with AVX2 the next): its family, model and widest vectors
    # tell two calibrations' machines apart
    simd = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "sse")
    cpu = f"{field('Model name')} (family {field('CPU family')} model {field('Model')}, {simd})"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_l2_size": os.environ.get("OPENBLAS_L2_SIZE"),
        "openblas": sh("dpkg-query -W -f='${Version}' libopenblas0-pthread"),
        "zeromq": sh("dpkg-query -W -f='${Version}' libzmq5"),
        # the most a TCP connection keeps in flight: the model's send window
        "tcp_wmem_max": tcp_wmem_max(),
        "git_commit": sh(f"git -C {ROOT} rev-parse HEAD"),
        "note": "2-core machine shared with other jobs: figures are medians of alternating rounds",
    }


# ---- compute ---------------------------------------------------------------

def own_step(rounds):
    """The compute step on cores of its own from `bench_calib compute`'s
    rounds, so that a loaded machine measures what a quiet one does: in each
    round the faster of the median step less the time its threads waited for
    a CPU that other jobs held (right when every step is interrupted: steps
    longer than a time slice) and the 10th percentile of the steps (right
    when most are not: a short step that another job interrupts loses its
    caches too, and a thread waiting for a preempted partner is on no run
    queue); the fastest round's (other work can only slow a round)."""
    return min(min(x["step_own_cpus_s"], x["step_p10_s"]) for x in rounds)


def compute(rounds, threads):
    runs = {}
    for r in range(rounds):
        for m, (c, batch, steps, _) in MODELS.items():
            for th in threads:
                log(f"calibrate: compute {m} threads {th} round {r + 1}/{rounds}")
                runs.setdefault((m, th), []).append(run_json(
                    [os.path.join(BIN, "bench_calib"), "compute", cfg(m), str(th), str(batch),
                     str(steps)]))
    out = {}
    for (m, th), rs in runs.items():
        step = own_step(rs)
        ranges = [[b, e, statistics.median(x["ranges"][k][2] for x in rs)]
                  for k, (b, e, _) in enumerate(rs[0]["ranges"])]
        out.setdefault(m, {"config": "configs/" + MODELS[m][0], "params": rs[0]["params"],
                           "batch": rs[0]["batch"], "threads": {}})
        out[m]["threads"][str(th)] = {
            "step_s": step, "per_sample_s": step / rs[0]["batch"],
            "runs_step_s": [x["step_own_cpus_s"] for x in rs],
            "runs_step_p10_s": [x["step_p10_s"] for x in rs],
            "runs_step_wall_s": [x["step_s"] for x in rs],
            # [begin, end, seconds after the step's start when its gradient is ready]
            "grad_ready": ranges,
        }
    return out


# ---- bytes per step from real jobs ------------------------------------------

def job(model, steps, comp, out):
    cmd = mpirun() + ["-np", "2", os.path.join(BIN, "pstrain"), "--servers", "1",
                      "--config", cfg(model), "--out", out, "--quiet", "--no-plot", "--no-export",
                      "--set", "train.threads=1", "--set", f"train.max_steps={steps}",
                      "--set", "cluster.auth=none", "--set", f"cluster.compression={comp}",
                      "--set", f"cluster.pull_compression={comp}",
                      "--set", "data.validation=0", "--set", "data.test_limit=100",
                      "--set", "checkpoint.every_seconds=0"] + JOB_EXTRA.get(model, [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def job_bytes(tmp):
    out = {}
    for m, (_, _, _, steps) in MODELS.items():
        if not steps:
            continue
        for comp in ("none", "fp16"):
            log(f"calibrate: bytes per step, {m}, {comp}")
            a = job(m, steps[0], comp, os.path.join(tmp, f"j{m}{comp}a"))
            b = job(m, steps[1], comp, os.path.join(tmp, f"j{m}{comp}b"))
            n = b["steps"] - a["steps"]
            t0a, t0b = a["trainer0"], b["trainer0"]
            out.setdefault(m, {})[comp] = {
                "push_bytes_step": (t0b["bytes_sent"] - t0a["bytes_sent"]) / n,
                "pull_bytes_step": (t0b["bytes_received"] - t0a["bytes_received"]) / n,
                "steps": [a["steps"], b["steps"]],
                # the long job's own split, for the record (1 server + 1 trainer, loopback)
                "job_per_step_s": {k: t0b[k] / b["steps"] for k in
                                   ("compute_s", "pull_wait_s", "push_s")},
                "job_server_busy_step_s": b["servers"]["busy_s"] / b["steps"],
                "job_samples_per_s": b["samples_per_s"],
            }
    return out


# ---- sparse rows -----------------------------------------------------------

def ctr_rows(path, cfgpath, batches=(128, 512, 2048, 8192, 32768), samples=40):
    """Unique (table, row) pairs per batch of b random lines of the click log,
    ids reduced % rows as the job does (an empty value is its own id)."""
    text = open(cfgpath).read()
    rows = [int(x) for x in re.search(r"rows\s*=\s*\[([^\]]*)\]", text).group(1).split(",")]
    lines = []
    with open(path) as f:
        for k, line in enumerate(f):
            if k >= 300000:
                break
            cols = line.rstrip("\n").split("\t")[14:40]
            lines.append(tuple((int(c, 16) if c else 1 << 32) % rows[i]
                               for i, c in enumerate(cols)))
    rng = random.Random(0)
    out = {}
    for b in batches:
        u = []
        for _ in range(samples if b < 8192 else samples // 4):
            pick = rng.sample(range(len(lines)), b)
            u.append(len({(f, lines[j][f]) for j in pick for f in range(len(rows))}))
        out[str(b)] = statistics.median(u)
    return {"data": os.path.relpath(path, ROOT), "lines_read": len(lines), "fields": len(rows),
            "dim": 16, "unique_rows_per_batch": out}


def rows_bench():
    p = subprocess.run([os.path.join(BIN, "bench_rows"), "2400000", "3"], check=True,
                       capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] in ("sgd", "adagrad", "rowwise_adagrad", "adam", "memcpy",
                                    "gather+scatter"):
            try:
                out[f[0]] = float(f[1])
            except ValueError:
                pass
    return {"rows_per_s": out, "note": "rows pulled + pushed per second of CPU time, dim 16, "
            "4,096 unique ids a step, one core (build/bench_rows 2400000 3, median)"}


# ---- server, exchange, codec, latency ----------------------------------------

def server(rounds):
    runs = {}
    cases = [(o, t, "none", "f32") for o in OPTIMS for t in (1, 2, 4)]
    cases += [("sgd", 1, "curve", "f32"), ("sgd", 2, "curve", "f32"), ("sgd", 1, "none", "f16"),
              ("sgd", 2, "none", "f16")]
    for r in range(rounds):
        for c in cases:
            log(f"calibrate: server {' '.join(map(str, c))} round {r + 1}/{rounds}")
            runs.setdefault(c, []).append(run_json(
                [os.path.join(BIN, "bench_calib"), "server", c[0], str(SERVER_KEYS), str(c[1]),
                 "12", c[2], c[3]]))
    # CPU times: the least of the rounds (other jobs can only add to them: a
    # round whose threads were preempted more often wakes more and takes more
    # cache misses; a loaded run's medians came out up to 1.7x a quiet one's);
    # the rest medians
    fig = {c: {k: (min if k in CPU_FIGURES else statistics.median)(x[k] for x in rs) for k in
               ("wall_step_s", "server_busy_step_s", "server_cpu_step_s", "cpu_step_s",
                "bytes_sent_step",
                "bytes_received_step")} for c, rs in runs.items()}
    keys = SERVER_KEYS
    opt = {}
    # the server's work as its thread's CPU time (its busy time, wall clock, grows with
    # whatever else the machine runs)
    for o in OPTIMS:
        b1, b2, b4 = (fig[(o, t, "none", "f32")]["server_cpu_step_s"] for t in (1, 2, 4))
        opt[o] = {
            # 1 trainer: the piece is applied as it comes, no sum
            "busy_1_trainer_s_per_key": b1 / keys,
            # T >= 2: busy(T) = base + T * per_trainer (least squares over T = 2, 4)
            "busy_per_trainer_s_per_key": (b4 - b2) / 2 / keys,
            "busy_base_s_per_key": (2 * b2 - b4) / keys,
            "busy_step_s": {"1": b1, "2": b2, "4": b4},
        }
    exch = {}
    for name, c in (("plain", ("sgd", 1, "none", "f32")), ("plain_2", ("sgd", 2, "none", "f32")),
                    ("curve", ("sgd", 1, "curve", "f32")), ("curve_2", ("sgd", 2, "curve", "f32")),
                    ("fp16", ("sgd", 1, "none", "f16")), ("fp16_2", ("sgd", 2, "none", "f16"))):
        x = fig[c]
        moved = x["bytes_sent_step"] + x["bytes_received_step"]
        exch[name] = {
            "trainers": c[1],
            # CPU of both ends (kernel, ZeroMQ, CURVE, codec) per byte on the wire
            "cpu_s_per_byte": (x["cpu_step_s"] - x["server_cpu_step_s"]) / moved,
            # per float of the model pushed and pulled (fp16: 2 bytes on the wire)
            "cpu_s_per_key_moved": (x["cpu_step_s"] - x["server_cpu_step_s"]) /
                                   (2 * c[1] * keys),
            "wall_bytes_per_s": moved / x["wall_step_s"],
        }
    return {"keys": keys, "optimizers": opt, "exchange": exch,
            "raw": {" ".join(map(str, c)): v for c, v in fig.items()},
            "note": "one server thread and T clients in one process over TCP loopback, "
                    "1 ZeroMQ I/O thread, BSP, 12 steps a round"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "out", "calibration.json"))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    res = {"version": 1, "environment": env_info()}
    with tempfile.TemporaryDirectory(prefix="pstrain-calib-") as tmp:
        res["compute"] = compute(a.rounds + 2, threads)
        res["bytes"] = job_bytes(tmp)
    res["server"] = server(a.rounds)
    log("calibrate: codec, latency, rows")
    res["codec"] = run_json([os.path.join(BIN, "bench_calib"), "codec", str(1 << 22), "9"])
    lat = [run_json([os.path.join(BIN, "bench_calib"), "latency", "2000"])
           for _ in range(a.rounds)]
    # each run's 10th percentile: the round trips that no other job held up
    # (a loaded run's median came out 1.6x a quiet one's)
    res["latency"] = {
        "push_pull_round_trip_s": statistics.median(x["round_trip_p10_s"] for x in lat),
        "runs": [x["round_trip_p10_s"] for x in lat],
        "runs_median_s": [x["push_pull_round_trip_s"] for x in lat],
        "note": "1-key push + pull through a server, TCP loopback: 2 messages each way of "
                "software latency (no wire); the 10th percentile of 2,000, median of the runs"}
    res["rows"] = rows_bench()
    data = os.path.join(ROOT, "data", "ctr", "train.txt")
    if os.path.exists(data):
        res["rows"]["ctr_data"] = ctr_rows(data, cfg("ctr"))
    res["environment"]["load_avg_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(a.out + ".tmp", a.out)
    log(f"calibrate: wrote {a.out}")


if __name__ == "__main__":
    main()
