#!/usr/bin/python3
"""bench_train.py - training throughput of pstrain against PyTorch, side by side.

For the CNN and the LSTM of configs/, at 1 and 2 threads and batch 32, it
alternates runs of `pstrain --local` (samples/s over the training steps, from
summary.json) and of bench/torch_reference.py (same model, optimizer, batch
and thread count) for ROUNDS rounds and prints the medians and their ratio.
This machine is shared and noisy, so only medians of runs made side by side
in one invocation are compared.

Thread settings: at 1 thread both use one BLAS/torch thread. At 2 threads
PyTorch gets its best setting (torch threads 2, OPENBLAS_NUM_THREADS=1; both
pools at 2 oversubscribe the cores) and pstrain runs with train.threads=2.
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are passed unchanged to both.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"


def run_pstrain(model, threads, steps, out):
    cfg = os.path.join(ROOT, "configs", f"fashion_{model}.cfg")
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    cmd = [os.path.join(ROOT, "build", "pstrain"), "--local", "--config", cfg, "--out", out,
           "--quiet", "--no-plot",
           "--set", f"train.threads={threads}", "--set", f"train.max_steps={steps}",
           "--set", "data.validation=0", "--set", "data.test_limit=500"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["samples_per_s"]


def run_torch(model, threads, steps):
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [PY, os.path.join(HERE, "torch_reference.py"), "--model", model, "--threads",
           str(threads), "--steps", str(steps)]
    p = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["samples_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="cnn,lstm")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=400, help="timed steps per run")
    a = ap.parse_args()
    core = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"# training samples/s at batch 32, median of {a.rounds} alternating rounds; "
          f"OPENBLAS_CORETYPE={core['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={core['OPENBLAS_L2_SIZE']}")
    print(f"{'model':6} {'threads':>7} {'pstrain':>10} {'pytorch':>10} {'ratio':>7}   runs (pstrain | pytorch)")
    results = []
    with tempfile.TemporaryDirectory(prefix="pstrain-bench-") as tmp:
        for model in a.models.split(","):
            for th in [int(t) for t in a.threads.split(",")]:
                ours, theirs = [], []
                for r in range(a.rounds):
                    ours.append(run_pstrain(model, th, a.steps, os.path.join(tmp, f"{model}{th}_{r}")))
                    theirs.append(run_torch(model, th, a.steps))
                mo, mt = statistics.median(ours), statistics.median(theirs)
                results.append((model, th, mo, mt))
                print(f"{model:6} {th:>7} {mo:>10.0f} {mt:>10.0f} {mo / mt:>6.2f}x   "
                      f"{' '.join(f'{v:.0f}' for v in ours)} | {' '.join(f'{v:.0f}' for v in theirs)}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
