#!/usr/bin/python3
"""bench_train.py - training throughput of pstrain against PyTorch, side by side.

For the CNN and the LSTM of configs/ (batch 32) and the bench MLP
(configs/bench_mlp.cfg, batch 256), at 1 and 2 threads, it alternates runs of
`pstrain --local` (samples/s over the training steps, from summary.json) and
of bench/torch_reference.py (same model, optimizer, batch and thread count),
every thread count in every round, for ROUNDS rounds, and prints the medians,
their ratio, and pstrain's own 2-thread / 1-thread ratio from the same rounds. This machine is shared and noisy, so only medians
of runs made side by side in one invocation are compared.

Thread settings: at 1 thread both use one BLAS/torch thread. At 2 threads
pstrain runs with train.threads=2 and PyTorch with its best setting, measured
in the same rounds: torch threads 2 with OpenBLAS 1 (best for the CNN and the
LSTM), or torch threads 1 with OpenBLAS 2 (best for the MLP, whose time is in
large GEMMs); both pools at 2 oversubscribe the cores.
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are passed unchanged to both.

For the bench MLP (--ceiling-models) every round also runs build/bench_gemm -t 2:
the model's GEMMs alone on 1 thread, then on both cores at once (each core
the whole batch's products, single-threaded), OpenBLAS's own 2 threads on
them, and the optimizer's update at 1 and 2 threads, and prints what the
2 cores give a step of those products and that update (the GEMMs at the
both-cores rate) beside pstrain's own 2-thread / 1-thread ratio: the GEMMs
and the update are nearly all of the MLP's step, so pstrain's threads can
gain about as much and not much more.

Then the distributed comparison: 1 parameter server + 1 trainer with
train.threads = auto (mpirun --bind-to none, so that the trainer may use both
cores; auto then gives it 2 threads, the server 1 optimizer thread), plain
ZeroMQ, against single-process training with 1 thread, for the MLP and the
CNN, with where trainer 0's time per step goes.
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


# model -> (config, batch, default timed steps per run)
MODELS = {"cnn": ("fashion_cnn.cfg", 32, 1200), "lstm": ("fashion_lstm.cfg", 32, 1200),
          "mlp": ("bench_mlp.cfg", 256, 40)}


def config_of(model):
    return os.path.join(ROOT, "configs", MODELS[model][0])


def run_pstrain(model, threads, steps, out):
    cfg = config_of(model)
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    cmd = [os.path.join(ROOT, "build", "pstrain"), "--local", "--config", cfg, "--out", out,
           "--quiet", "--no-plot", "--no-export",
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


def run_pstrain_dist(model, servers, trainers, steps, out, consistency="bsp", auth="none",
                     threads="auto"):
    cfg = config_of(model)
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    cmd = mpirun_prefix() + ["--bind-to", "none",
                             "-np", str(servers + trainers), os.path.join(ROOT, "build", "pstrain"),
                             "--servers", str(servers), "--config", cfg, "--out", out, "--quiet",
                             "--no-plot", "--no-export", "--set", f"train.threads={threads}",
                             "--set", f"train.max_steps={steps}",
                             "--set", f"cluster.consistency={consistency}",
                             "--set", f"cluster.auth={auth}",
                             "--set", "data.validation=0", "--set", "data.test_limit=500"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def run_torch(model, threads, steps, blas=1):
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(blas)
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [PY, os.path.join(HERE, "torch_reference.py"), "--model", model, "--threads",
           str(threads), "--steps", str(steps), "--batch", str(MODELS[model][1])]
    p = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["samples_per_s"]


def run_gemm_ceiling(model, threads):
    """build/bench_gemm -t THREADS on the model's config: its JSON line."""
    p = subprocess.run([os.path.join(ROOT, "build", "bench_gemm"), "-t", str(threads),
                        config_of(model), "3", "5"], check=True, capture_output=True, text=True)
    return json.loads(p.stdout)


def print_ceiling(model, runs, ours1, ours2):
    """What 2 cores give the model's products and update (module docstring),
    from the medians of the rounds' bench_gemm lines, beside pstrain's own
    2-thread / 1-thread ratio."""
    med = {k: statistics.median(r[k] for r in runs) for k in
           ("floor_samples_per_s", "corun_samples_per_s", "openblas_threads_samples_per_s",
            "update_ms_1", "update_ms_n")}
    B = runs[0]["batch"]
    g1, g2 = B / med["floor_samples_per_s"], B / med["corun_samples_per_s"]  # s a step
    u1, u2 = med["update_ms_1"] / 1e3, med["update_ms_n"] / 1e3
    print(f"{model:6} 2 cores for its products and update (build/bench_gemm -t 2, the same "
          f"rounds): the GEMMs {med['floor_samples_per_s']:.0f} samples/s on 1 thread, "
          f"{med['corun_samples_per_s']:.0f} with both cores at once "
          f"({med['corun_samples_per_s'] / med['floor_samples_per_s']:.2f}x), "
          f"{med['openblas_threads_samples_per_s']:.0f} on OpenBLAS's 2 threads "
          f"({med['openblas_threads_samples_per_s'] / med['floor_samples_per_s']:.2f}x); "
          f"{runs[0]['optimizer']}'s update {1e3 * u1:.1f} ms on 1 thread, {1e3 * u2:.1f} on 2",
          flush=True)
    print(f"{model:6} GEMMs + update, 2 cores against 1: {(g1 + u1) / (g2 + u2):.2f}x; "
          f"pstrain's 2 threads against its 1: {ours2 / ours1:.2f}x", flush=True)


def compare(a, tmp, model, threads, steps):
    """pstrain at each thread count and PyTorch at its settings for it
    (its best one at 2), alternating within every round; returns, per
    thread count, (pstrain runs, PyTorch runs of its best setting, that
    setting), and the rounds' bench_gemm lines (the model is one of
    --ceiling-models and 2 threads are measured) or []."""
    ours, torch, ceiling = {}, {}, []
    with_ceiling = model in a.ceiling_models.split(",") and 2 in threads
    settings = {th: [(1, 1)] if th == 1 else [(2, 1), (1, 2)]  # (torch threads, OpenBLAS threads)
                for th in threads}
    for r in range(a.rounds):
        for th in threads:
            ours.setdefault(th, []).append(
                run_pstrain(model, th, steps, os.path.join(tmp, f"{model}{th}_{r}")))
            for st in settings[th]:
                torch.setdefault(st, []).append(run_torch(model, st[0], steps, st[1]))
        if with_ceiling:
            ceiling.append(run_gemm_ceiling(model, 2))
    out = {}
    for th in threads:
        best = max(settings[th], key=lambda st: statistics.median(torch[st]))
        out[th] = (ours[th], torch[best], best)
    return out, ceiling


def dist_section(a, tmp):
    """1 server + 1 trainer (auto threads) against one process with 1 thread."""
    print(f"\n# 1 server + 1 trainer (train.threads = auto: 2 on these 2 cores; server.threads ="
          f" auto: 1), plain ZeroMQ, BSP, against single-process training with 1 thread; median "
          f"of {a.rounds} alternating rounds")
    for model in a.dist_models.split(","):
        steps = a.mlp_dist_steps if model == "mlp" else a.dist_steps
        dist, local, split = [], [], []
        for r in range(a.rounds):
            s = run_pstrain_dist(model, 1, 1, steps, os.path.join(tmp, f"d{model}{r}"))
            dist.append(s["samples_per_s"])
            t0, n = s["trainer0"], s["steps"]
            split.append((1e3 * t0["compute_s"] / n, 1e3 * t0["pull_wait_s"] / n,
                          1e3 * t0["push_s"] / n, 1e3 * s["servers"]["busy_s"] / n))
            local.append(run_pstrain(model, 1, steps, os.path.join(tmp, f"l{model}{r}")))
        md, ml = statistics.median(dist), statistics.median(local)
        print(f"{model:5} {steps:>5} steps: 1+1 {md:>8.0f} samples/s, single process 1 thread "
              f"{ml:>8.0f}: {md / ml:.2f}x   runs {' '.join(f'{v:.0f}' for v in dist)} | "
              f"{' '.join(f'{v:.0f}' for v in local)}")
        c, p, q, b = (statistics.median(x[i] for x in split) for i in range(4))
        print(f"      trainer 0 per step: compute {c:.1f} ms, waiting for the pull {p:.1f} ms, "
              f"pushing {q:.1f} ms; the server busy {b:.1f} ms per step", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="cnn,lstm,mlp", help="empty: the distributed part only")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--ceiling-models", default="mlp",
                    help="models whose 2-thread ceiling is measured (build/bench_gemm -t 2)")
    ap.add_argument("--steps", type=int, default=0,
                    help="timed steps per run (0: 1200 for cnn and lstm, 40 for mlp)")
    ap.add_argument("--dist-models", default="mlp,cnn")
    ap.add_argument("--dist-steps", type=int, default=1719,
                    help="steps of the distributed CNN comparison (1719 = one epoch)")
    ap.add_argument("--mlp-dist-steps", type=int, default=60,
                    help="steps of the distributed MLP comparison")
    ap.add_argument("--no-dist", action="store_true", help="skip the distributed comparison")
    a = ap.parse_args()
    core = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"# training samples/s, median of {a.rounds} alternating rounds; "
          f"OPENBLAS_CORETYPE={core['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={core['OPENBLAS_L2_SIZE']}")
    print(f"{'model':6} {'batch':>5} {'threads':>7} {'pstrain':>10} {'pytorch':>10} {'ratio':>7}"
          f"  pytorch setting    runs (pstrain | pytorch)")
    with tempfile.TemporaryDirectory(prefix="pstrain-bench-") as tmp:
        for model in filter(None, a.models.split(",")):
            steps = a.steps or MODELS[model][2]
            threads = [int(t) for t in a.threads.split(",")]
            med = {}
            runs, ceiling = compare(a, tmp, model, threads, steps)
            for th, (ours, theirs, st) in runs.items():
                mo, mt = statistics.median(ours), statistics.median(theirs)
                med[th] = mo
                print(f"{model:6} {MODELS[model][1]:>5} {th:>7} {mo:>10.0f} {mt:>10.0f} "
                      f"{mo / mt:>6.2f}x  torch {st[0]}, blas {st[1]}   "
                      f"{' '.join(f'{v:.0f}' for v in ours)} | {' '.join(f'{v:.0f}' for v in theirs)}",
                      flush=True)
            if 1 in med and 2 in med:
                print(f"{model:6} pstrain 2 threads / 1 thread: {med[2] / med[1]:.2f}x "
                      f"(the same rounds)", flush=True)
            if ceiling:
                print_ceiling(model, ceiling, med[1], med[2])
        if not a.no_dist:
            dist_section(a, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
