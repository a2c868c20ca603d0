#!/usr/bin/python3
"""torch_trajectory.py - pstrain and PyTorch from the same starting point.

Trains the CNN of configs/fashion_cnn.cfg for one epoch in pstrain and in
PyTorch 1.13 started from pstrain's own initial weights and fed pstrain's
epoch-0 batches (build/dump_start writes both), and prints the two test
accuracies side by side. --seed N sets train.seed in both (default: the
config's seed); `make verify-torch SEED=N` passes it. Float rounding makes the two runs drift apart step by
step, but they must end close: a gap of more than a few tenths of a point
means the engines differ. `make verify-torch` runs it.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist/"
CFG = os.path.join(ROOT, "configs", "fashion_cnn.cfg")


def images(name):
    raw = gzip.open(DATA + name).read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255


def labels(name):
    return np.frombuffer(gzip.open(DATA + name).read(), np.uint8, offset=8).astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, help="train.seed (default: the config's)")
    a = ap.parse_args()
    seed_dump = [] if a.seed is None else ["train.seed=%d" % a.seed]
    seed_set = [] if a.seed is None else ["--set", "train.seed=%d" % a.seed]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="pstrain-traj-") as tmp:
        subprocess.run([os.path.join(ROOT, "build", "dump_start"), CFG, tmp] + seed_dump,
                       check=True)
        p = np.fromfile(os.path.join(tmp, "params.bin"), np.float32)
        perm = torch.from_numpy(np.fromfile(os.path.join(tmp, "perm.bin"), np.uint32).astype(np.int64))
        tab = {}
        for line in open(os.path.join(tmp, "tensors.txt")):
            name, off, size = line.split()
            tab[name] = (int(off), int(size))
        run = os.path.join(tmp, "run")
        subprocess.run([os.path.join(ROOT, "build", "pstrain"), "--local", "--config", CFG,
                        "--set", "train.epochs=1", "--out", run, "--quiet", "--no-plot"] + seed_set,
                       check=True, stdout=subprocess.DEVNULL)
        ours = json.load(open(os.path.join(run, "summary.json")))["test_accuracy"]

    n = perm.numel()
    xtr = torch.from_numpy(images("train-images-idx3-ubyte.gz")[:n])
    ytr = torch.from_numpy(labels("train-labels-idx1-ubyte.gz")[:n])
    xte = torch.from_numpy(images("t10k-images-idx3-ubyte.gz"))
    yte = torch.from_numpy(labels("t10k-labels-idx1-ubyte.gz"))
    conv, lin = nn.Conv2d(1, 32, 3), nn.Linear(5408, 10)

    def view(name, shape):
        off, size = tab[name]
        return torch.from_numpy(p[off:off + size].reshape(shape))

    with torch.no_grad():
        conv.weight.copy_(view("conv1.weight", (32, 1, 3, 3)))
        conv.bias.copy_(view("conv1.bias", (32,)))
        lin.weight.copy_(view("dense1.weight", (10, 5408)))
        lin.bias.copy_(view("dense1.bias", (10,)))
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), lin)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    for s in range(0, n, 32):
        idx = perm[s:s + 32]
        opt.zero_grad()
        loss_fn(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    with torch.no_grad():
        theirs = float((model(xte).argmax(1) == yte).float().mean())
    print(f"CNN, 1 epoch from the same weights and batches: pstrain {100 * ours:.2f}%  "
          f"PyTorch {100 * theirs:.2f}%  gap {100 * (ours - theirs):+.2f} points")
    return 0 if abs(ours - theirs) < 0.005 else 1


if __name__ == "__main__":
    sys.exit(main())
