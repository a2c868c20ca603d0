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


def mpirun_prefix():
    cmd = ["mpirun", "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    return cmd


def run_pstrain_dist(model, servers, trainers, steps, out, consistency="bsp", auth="none"):
    cfg = os.path.join(ROOT, "configs", f"fashion_{model}.cfg")
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    cmd = mpirun_prefix() + ["-np", str(servers + trainers), os.path.join(ROOT, "build", "pstrain"),
                             "--servers", str(servers), "--config", cfg, "--out", out, "--quiet",
                             "--no-plot", "--set", "train.threads=1",
                             "--set", f"train.max_steps={steps}",
                             "--set", f"cluster.consistency={consistency}",
                             "--set", f"cluster.auth={auth}",
                             "--set", "data.validation=0", "--set", "data.test_limit=500"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


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
    ap.add_argument("--dist-steps", type=int, default=1719,
                    help="steps of the distributed comparison (1719 = one CNN epoch)")
    ap.add_argument("--no-dist", action="store_true", help="skip the distributed comparison")
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
        if a.no_dist:
            return 0
        # One epoch of the CNN on the 2 cores: 1 server + 2 trainers (one BLAS
        # thread each) against single-process training with one thread and
        # PyTorch's best 2-core setting, side by side. The distributed runs
        # use plain ZeroMQ (cluster.auth = none), as a job on a trusted
        # network would: this compares the training, and run_bench.sh
        # measures apart what CURVE, the default, costs on these two cores.
        print(f"\n# CNN, {a.dist_steps} steps at batch 32 on this machine's cores, median of "
              f"{a.rounds} alternating rounds (samples/s; trainer 0's time per step split)")
        rows = {"pstrain 1 server + 2 trainers (BSP)": [], "pstrain 1 server + 2 trainers (ASP)": [],
                "pstrain single process, 1 thread": [], "PyTorch, 2 torch threads": []}
        split = []
        for r in range(a.rounds):
            s = run_pstrain_dist("cnn", 1, 2, a.dist_steps, os.path.join(tmp, f"d{r}"))
            rows["pstrain 1 server + 2 trainers (BSP)"].append(s["samples_per_s"])
            st = s["steps"]
            t0 = s["trainer0"]
            split.append((1e3 * t0["compute_s"] / st, 1e3 * t0["pull_wait_s"] / st,
                          1e3 * t0["push_s"] / st))
            s = run_pstrain_dist("cnn", 1, 2, a.dist_steps, os.path.join(tmp, f"a{r}"), "asp")
            rows["pstrain 1 server + 2 trainers (ASP)"].append(s["samples_per_s"])
            rows["pstrain single process, 1 thread"].append(
                run_pstrain("cnn", 1, a.dist_steps, os.path.join(tmp, f"l{r}")))
            rows["PyTorch, 2 torch threads"].append(run_torch("cnn", 2, a.dist_steps))
        base = statistics.median(rows["pstrain single process, 1 thread"])
        for name, vals in rows.items():
            m = statistics.median(vals)
            print(f"{name:40} {m:>9.0f}  {m / base:5.2f}x single   runs {' '.join(f'{v:.0f}' for v in vals)}")
        c, p, q = (statistics.median(x[i] for x in split) for i in range(3))
        print(f"BSP trainer 0 per step: compute {c:.3f} ms, pull wait {p:.3f} ms, push {q:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
