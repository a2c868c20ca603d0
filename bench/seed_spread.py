#!/usr/bin/python3
"""seed_spread.py - how test accuracy moves with the seed, in pstrain and in PyTorch.

An accuracy after one epoch is one draw from a spread: the seed picks the
initial weights and the data order, and Adam's last steps move the test
accuracy by a point or more. One seed says little about whether two engines
train alike; the two spreads do. For each seed this runs `pstrain --local`
(the job file's own recipe, with train.seed and train.epochs set) and
bench/torch_reference.py --eval (the same model, Keras initialisers, Adam,
batch, validation hold-out and data order rules, with PyTorch's own random
numbers), one of each at a time side by side on one thread each, and prints
per epoch the median, mean, standard deviation, range and the share of seeds
that reach --bar for both.

Usage: /usr/bin/python3 bench/seed_spread.py [--model cnn|lstm] [--seeds N | --seeds A-B]
       [--epochs E] [--validation N] [--bar ACC] [--csv FILE]
`make seed-spread` runs it for the CNN over seeds 0-29 (about 10 minutes here).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are passed unchanged to both.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"


def parse_seeds(text):
    """"N" -> seeds 0..N-1; "A-B" -> A..B inclusive."""
    if "-" in text:
        a, b = text.split("-", 1)
        lo, hi = int(a), int(b)
    else:
        lo, hi = 0, int(text) - 1
    if lo < 0 or hi < lo:
        raise ValueError("no seeds in %r" % text)
    return list(range(lo, hi + 1))


def start_pstrain(cfg, seed, epochs, validation, out):
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    cmd = [os.path.join(ROOT, "build", "pstrain"), "--local", "--config", cfg, "--out", out,
           "--quiet", "--no-plot", "--set", "train.threads=1", "--set", f"train.seed={seed}",
           "--set", f"train.epochs={epochs}", "--set", "train.max_steps=0",
           "--set", f"data.validation={validation}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


def pstrain_result(proc, out, seed):
    if proc.wait() != 0:
        raise RuntimeError("pstrain failed for seed %d (exit %d)" % (seed, proc.returncode))
    with open(os.path.join(out, "metrics.csv")) as f:
        return [float(row["test_accuracy"]) for row in csv.DictReader(f)]


def start_torch(model, seed, epochs, validation):
    cmd = [PY, os.path.join(HERE, "torch_reference.py"), "--model", model, "--threads", "1",
           "--eval", "--epochs", str(epochs), "--seed", str(seed),
           "--validation", str(validation)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def torch_result(proc, seed):
    text, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("torch_reference.py failed for seed %d (exit %d)"
                           % (seed, proc.returncode))
    return json.loads(text.strip().splitlines()[-1])["test_accuracy"]


def describe(accs, bar):
    return "%6.2f  %6.2f  %5.2f  %6.2f-%6.2f  %3d of %d" % (
        100 * statistics.median(accs), 100 * statistics.mean(accs),
        100 * statistics.stdev(accs) if len(accs) > 1 else 0.0,
        100 * min(accs), 100 * max(accs), sum(a >= bar for a in accs), len(accs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("cnn", "lstm"), default="cnn")
    ap.add_argument("--seeds", default="30", help="N (seeds 0..N-1) or A-B (default 30)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--bar", type=float, default=0.875,
                    help="accuracy whose share of seeds is reported (default 0.875)")
    ap.add_argument("--validation", type=int, default=5000,
                    help="training images held out, in both (default 5000, as in configs/)")
    ap.add_argument("--csv", help="also write seed,epoch,pstrain,torch rows to this file")
    a = ap.parse_args()
    try:
        seeds = parse_seeds(a.seeds)
    except ValueError as e:
        ap.error("--seeds: %s" % e)
    if a.epochs < 1 or a.validation < 0:
        ap.error("--epochs must be >= 1 and --validation >= 0")
    cfg = os.path.join(ROOT, "configs", f"fashion_{a.model}.cfg")
    validation = a.validation

    rows = []  # (seed, epoch, pstrain accuracy, torch accuracy)
    with tempfile.TemporaryDirectory(prefix="pstrain-seeds-") as tmp:
        for seed in seeds:
            out = os.path.join(tmp, "seed%d" % seed)
            ps = start_pstrain(cfg, seed, a.epochs, validation, out)
            pt = start_torch(a.model, seed, a.epochs, validation)
            ours, theirs = pstrain_result(ps, out, seed), torch_result(pt, seed)
            if len(ours) != a.epochs or len(theirs) != a.epochs:
                raise RuntimeError("seed %d: expected %d epochs, got %d and %d"
                                   % (seed, a.epochs, len(ours), len(theirs)))
            for e in range(a.epochs):
                rows.append((seed, e + 1, ours[e], theirs[e]))
            print("seed %3d: pstrain %s   PyTorch %s" % (
                seed, " ".join("%.2f%%" % (100 * x) for x in ours),
                " ".join("%.2f%%" % (100 * x) for x in theirs)), file=sys.stderr, flush=True)

    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seed", "epoch", "pstrain_test_accuracy", "torch_test_accuracy"])
            w.writerows(rows)

    print("%s, test accuracy (%%) over seeds %d-%d, %d training images held out"
          % (a.model.upper(), seeds[0], seeds[-1], validation))
    print("epoch  engine    median    mean    std  range          >= %.2f%%" % (100 * a.bar))
    for e in range(1, a.epochs + 1):
        ours = [r[2] for r in rows if r[1] == e]
        theirs = [r[3] for r in rows if r[1] == e]
        print("%5d  pstrain   %s" % (e, describe(ours, a.bar)))
        print("%5d  PyTorch   %s" % (e, describe(theirs, a.bar)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        print("seed_spread: %s" % e, file=sys.stderr)
        sys.exit(1)
