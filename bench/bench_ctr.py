#!/usr/bin/python3
"""bench_ctr.py - `make bench-ctr`: DLRM (configs/criteo_dlrm.cfg) in pstrain
against the same model in PyTorch (bench/torch_dlrm.py: nn.EmbeddingBag with
sparse gradients, the same initialisation, optimizer, batch, data and thread
count), side by side: training samples/s over one epoch and the test AUC
after it, at 1 and 2 threads, every setting in every round, medians of
ROUNDS rounds. In every round also the model's GEMM floor (build/bench_gemm:
its dense layers' matrix products alone, as both call them through the same
OpenBLAS, one thread): no trainer of this model on this core runs faster
unless its GEMMs do, so floor / PyTorch's 1-thread rate bounds the ratio any
implementation could reach. The data is data/ctr/ (make ctr-data). PyTorch
parses the log in Python before it trains (not timed; its lines/s are
printed).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are passed unchanged to both.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
CFG = os.path.join(ROOT, "configs", "criteo_dlrm.cfg")


def table_rows():
    """The rows list of configs/criteo_dlrm.cfg, for PyTorch's tables."""
    with open(CFG) as f:
        text = f.read()
    m = re.search(r"rows\s*=\s*\[([^\]]*)\]", text)
    return ",".join(v.strip() for v in m.group(1).split(","))


def run_pstrain(threads, out, a):
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    cmd = [os.path.join(ROOT, "build", "pstrain"), "--local", "--config", CFG, "--out", out,
           "--quiet", "--no-plot", "--no-export", "--set", f"train.threads={threads}",
           "--set", f"data.dir={a.data}"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    shutil.rmtree(out)  # the checkpoint's tables (the export, which would hold every table
                        # in full, gigabytes a run, is not made: --no-export)
    return s["samples_per_s"], s["test_auc"], s["tables"]["rows_held"]


def run_torch(threads, a, rows):
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [PY, os.path.join(HERE, "torch_dlrm.py"), "--train", os.path.join(a.data, "train.txt"),
           "--test", os.path.join(a.data, "test.txt"), "--threads", str(threads),
           "--rows", rows]
    p = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["samples_per_s"], r["test_auc"], r["parse_lines_per_s"]


def run_gemm_floor():
    """The GEMM floor at 1 thread: (samples/s, GFLOP/s, OpenBLAS peak GFLOP/s)."""
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    p = subprocess.run([os.path.join(ROOT, "build", "bench_gemm"), CFG, "3", "500"], check=True,
                       env=env, capture_output=True, text=True, cwd=ROOT)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["floor_samples_per_s"], r["gflops"], r["peak_gflops"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "ctr"))
    a = ap.parse_args()
    rows = table_rows()
    threads = [int(t) for t in a.threads.split(",")]
    ours, theirs = {t: [] for t in threads}, {t: [] for t in threads}
    parse, floor = [], []
    with tempfile.TemporaryDirectory(prefix="pstrain-ctr-") as tmp:
        for r in range(a.rounds):
            for t in threads:
                ours[t].append(run_pstrain(t, os.path.join(tmp, f"p{t}_{r}"), a))
                sps, auc, lps = run_torch(t, a, rows)
                theirs[t].append((sps, auc))
                parse.append(lps)
                if t == 1:
                    floor.append(run_gemm_floor())
                print(f"# round {r + 1} threads {t}: pstrain {ours[t][-1][0]:.0f} samples/s "
                      f"AUC {ours[t][-1][1]:.4f} | PyTorch {sps:.0f} samples/s AUC {auc:.4f}",
                      file=sys.stderr, flush=True)
    core = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"# DLRM (configs/criteo_dlrm.cfg), one epoch of {a.data}/train.txt, batch 128, SGD "
          f"lr 0.1; medians of {a.rounds} alternating rounds; OPENBLAS_CORETYPE="
          f"{core['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={core['OPENBLAS_L2_SIZE']}")
    print(f"{'threads':>7} {'pstrain':>10} {'pytorch':>10} {'ratio':>7} {'AUC pstrain':>12} "
          f"{'AUC pytorch':>12} {'difference':>11}")
    for t in threads:
        ps = statistics.median(x[0] for x in ours[t])
        pt = statistics.median(x[0] for x in theirs[t])
        pa = statistics.median(x[1] for x in ours[t])
        ta = statistics.median(x[1] for x in theirs[t])
        print(f"{t:>7} {ps:>10.0f} {pt:>10.0f} {ps / pt:>6.2f}x {pa:>12.4f} {ta:>12.4f} "
              f"{pa - ta:>+11.4f}")
    if 1 in threads:
        fl = statistics.median(x[0] for x in floor)
        pt1 = statistics.median(x[0] for x in theirs[1])
        print(f"GEMM floor at 1 thread (the dense layers' products alone, build/bench_gemm): "
              f"{fl:.0f} samples/s, {statistics.median(x[1] for x in floor):.1f} GFLOP/s "
              f"(one 2048^3 sgemm: {statistics.median(x[2] for x in floor):.1f}); "
              f"{fl / pt1:.2f}x PyTorch's 1-thread rate is the most any trainer calling these "
              f"GEMMs could reach, pstrain is at {statistics.median(x[0] for x in ours[1]) / fl:.0%} "
              f"of the floor")
    print(f"pstrain's embedding rows after an epoch: {ours[threads[0]][0][2]:.0f}; PyTorch "
          f"parsed the log at {statistics.median(parse):.0f} lines/s in Python")
    return 0


if __name__ == "__main__":
    sys.exit(main())
