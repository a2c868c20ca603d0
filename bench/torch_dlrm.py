#!/usr/bin/python3
"""torch_dlrm.py - the PyTorch side of the click-through-rate benchmark: DLRM
(Naumov et al. 2019) as its reference implementation, dlrm_s_pytorch.py,
builds it for the Criteo Kaggle data, trained on a click log in the Criteo
layout, reporting training samples/s and the test AUC as one JSON line.

Model (DLRM's Kaggle reference; configs/criteo_dlrm.cfg is pstrain's):
  bottom MLP 13-512-256-64-16 (ReLU after every layer), one
  nn.EmbeddingBag(rows_f, 16, mode="sum", sparse=True) per categorical
  field, the dot interaction of the 27 vectors (the bottom output first,
  pairs j < i, dlrm_s_pytorch's interact_features), the bottom output
  concatenated with the 351 dot products, top MLP 367-512-256-1 (ReLU, then
  a sigmoid), binary cross-entropy (mean over the batch), plain SGD
  (torch.optim.SGD handles the tables' sparse gradients).
Initialisation as pstrain's: tables U(-sqrt(1/rows), sqrt(1/rows)) (DLRM's),
MLP weights Glorot-uniform and zero biases.

Data, as pstrain's reader (common/data/criteo.c): dense features
log(1 + max(I, 0)), an empty one 0; a categorical value is its 8 hex digits
as an integer, an empty one 2^32, then % rows_f (DLRM's --max-ind-range). The
file is parsed before training (not timed; its lines/s are reported next to
the samples/s). rows_f: the log's FILE.meta.json when --rows is not given.

Usage: /usr/bin/python3 bench/torch_dlrm.py --train FILE --test FILE
       [--threads N] [--batch 128] [--lr 0.1] [--epochs 1] [--seed 0]
       [--rows r1,...,r26] [--limit N]
stdout: one JSON line {"samples_per_s", "train_s", "test_auc", "test_logloss",
"parse_lines_per_s", ...}; progress on stderr.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

N_NUM, N_CAT, DIM = 13, 26, 16
MISSING = 1 << 32


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", default="", help="26 table sizes, comma-separated")
    ap.add_argument("--limit", type=int, default=0, help="read at most this many lines per file")
    return ap.parse_args()


def table_rows(a):
    if a.rows:
        rows = [int(v) for v in a.rows.split(",")]
    else:
        with open(a.train + ".meta.json") as f:
            meta = json.load(f)
        rows = meta.get("rows") or meta.get("cardinalities")
    if len(rows) != N_CAT:
        sys.exit(f"torch_dlrm.py: {N_CAT} table sizes wanted, got {len(rows)}")
    return rows


def load(path, rows, limit):
    """Labels, dense features and reduced ids of a Criteo-layout file."""
    labels, num, cat = [], [], []
    mod = [int(r) for r in rows]
    t0 = time.perf_counter()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if limit and n > limit:
                break
            c = line.rstrip("\n").split("\t")
            if len(c) != 1 + N_NUM + N_CAT:
                sys.exit(f"{path}:{n}: {len(c)} columns, want {1 + N_NUM + N_CAT}")
            labels.append(float(c[0]))
            num.append([math.log1p(max(int(v), 0)) if v else 0.0 for v in c[1:1 + N_NUM]])
            cat.append([(int(v, 16) if v else MISSING) % mod[j]
                        for j, v in enumerate(c[1 + N_NUM:])])
    dt = time.perf_counter() - t0
    return (torch.tensor(labels, dtype=torch.float32), torch.tensor(num, dtype=torch.float32),
            torch.tensor(cat, dtype=torch.int64), len(labels) / dt if dt > 0 else 0.0)


def mlp(sizes, last_sigmoid=False):
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        last = i == len(sizes) - 2
        if not last or not last_sigmoid:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, rows):
        super().__init__()
        self.bot = mlp([N_NUM, 512, 256, 64, DIM])
        self.emb = nn.ModuleList()
        for r in rows:
            e = nn.EmbeddingBag(r, DIM, mode="sum", sparse=True)
            bound = math.sqrt(1.0 / r)
            nn.init.uniform_(e.weight, -bound, bound)
            self.emb.append(e)
        v = N_CAT + 1
        self.li = torch.tensor([i for i in range(v) for j in range(i)])
        self.lj = torch.tensor([j for i in range(v) for j in range(i)])
        self.top = mlp([DIM + v * (v - 1) // 2, 512, 256, 1], last_sigmoid=True)
        self.offsets = None

    def forward(self, num, cat):
        x = self.bot(num)
        n = num.shape[0]
        if self.offsets is None or self.offsets.shape[0] != n:
            self.offsets = torch.arange(n)
        ly = [e(cat[:, k], self.offsets) for k, e in enumerate(self.emb)]
        t = torch.cat([x] + ly, dim=1).view(n, -1, DIM)
        z = torch.bmm(t, torch.transpose(t, 1, 2))
        r = torch.cat([x, z[:, self.li, self.lj]], dim=1)
        return self.top(r).squeeze(1)  # logits


def auc_exact(scores, labels):
    """ROC AUC with ties as average ranks (Mann-Whitney), as sklearn's."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) > 0.5
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = s[order]
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def main():
    a = parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rows = table_rows(a)
    ytr, ntr, ctr, lps = load(a.train, rows, a.limit)
    yte, nte, cte, _ = load(a.test, rows, a.limit)
    print(f"torch_dlrm: {len(ytr)} training lines ({lps:.0f} lines/s parsed), {len(yte)} test",
          file=sys.stderr)
    model = DLRM(rows)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(a.seed)
    train_s, samples = 0.0, 0
    for epoch in range(a.epochs):
        perm = torch.randperm(len(ytr), generator=g)
        t0 = time.perf_counter()
        for b in range(0, len(ytr), a.batch):
            idx = perm[b:b + a.batch]
            opt.zero_grad()
            loss = loss_fn(model(ntr[idx], ctr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            samples += len(idx)
        train_s += time.perf_counter() - t0
    with torch.no_grad():
        p = torch.cat([torch.sigmoid(model(nte[b:b + 4096], cte[b:b + 4096]))
                       for b in range(0, len(yte), 4096)]).numpy().astype(np.float64)
    y = yte.numpy()
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
    print(json.dumps({"samples_per_s": samples / train_s if train_s > 0 else 0.0,
                      "train_s": train_s, "samples": samples, "threads": a.threads,
                      "batch": a.batch, "lr": a.lr, "test_auc": auc_exact(p, y),
                      "test_logloss": logloss, "parse_lines_per_s": lps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
