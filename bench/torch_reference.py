#!/usr/bin/python3
"""torch_reference.py - the PyTorch side of `make bench`: trains the same two
Fashion-MNIST models as pstrain's configs and reports training throughput (and
optionally test accuracy) as one JSON line on stdout, so the C engine can be
judged against PyTorch at the same thread count.

Models (as in configs/):
  cnn:  Conv2d(1,32,3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(5408,10)
  lstm: LSTM(28,64) sequences -> LSTM(64,32) last step -> Linear(32,10)
  mlp:  Flatten -> Linear(784,4096) ReLU -> Linear(4096,4096) ReLU x2 -> Linear(4096,10)
        (configs/bench_mlp.cfg: Adam lr 1e-4, batch 256; pass --batch 256)
All: CrossEntropyLoss (mean), Adam(lr=1e-3, or 1e-4 for mlp, eps=1e-7), pixels scaled to [0,1],
and by default Keras's initialisers, as pstrain uses (--init keras: Glorot-uniform
kernels, orthogonal recurrent kernels, zero biases, LSTM forget bias 1;
--init torch keeps PyTorch's own). The last --validation training images are
held out, as pstrain's data.validation does (5,000 in configs/).

Timing mode (default): WARMUP steps, then R windows of --steps training steps
each; samples/s per window, the median is reported. With --epochs E (or
--eval), trains E full epochs over a seeded shuffle instead, one window per
epoch, and with --eval reports the test accuracy after each epoch. An epoch
ends with the incomplete batch, if any, as in pstrain and Keras's fit().

Usage: /usr/bin/python3 bench/torch_reference.py --model cnn|lstm|mlp [--threads N]
       [--batch B] [--steps S] [--repeat R] [--epochs E] [--eval] [--seed K]
       [--init keras|torch] [--validation N] [--malloc tuned|default] [--data DIR]
Progress goes to stderr; stdout carries only the JSON line.
"""
import argparse
import ctypes
import gzip
import json
import os
import platform
import statistics
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

WARMUP = 20
# glibc mallopt() parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def parse_args():
    ap = argparse.ArgumentParser(description="PyTorch reference for pstrain's bench")
    ap.add_argument("--model", choices=("cnn", "lstm", "mlp"), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=400,
                    help="timed training steps per window (after %d warm-up steps)" % WARMUP)
    ap.add_argument("--repeat", type=int, default=1, help="timing windows; the median is reported")
    ap.add_argument("--epochs", type=int, default=0,
                    help="train this many full epochs instead of timing windows")
    ap.add_argument("--eval", action="store_true",
                    help="report test accuracy after each epoch (implies --epochs 1 if unset)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", choices=("keras", "torch"), default="keras",
                    help="initialisers: Keras's, as pstrain (default), or PyTorch's own")
    ap.add_argument("--validation", type=int, default=5000,
                    help="training images held out at the end of the set, as pstrain's "
                    "data.validation")
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                    help="glibc malloc thresholds (see tune_malloc)")
    ap.add_argument("--data", default=os.environ.get("PST_DATA_DIR",
                                                     "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()
    if a.threads < 1 or a.batch < 1 or a.steps < 1 or a.repeat < 1 or a.epochs < 0 \
            or a.validation < 0:
        ap.error("--threads, --batch, --steps and --repeat must be >= 1, "
                 "--epochs and --validation >= 0")
    if a.eval and a.epochs == 0:
        a.epochs = 1
    return a


def tune_malloc():
    """Keeps PyTorch's per-step activation buffers (up to a few MB) on the
    heap: with glibc's default, dynamic thresholds they are often mmap()ed and
    munmap()ed on every step, and whether that happens depends on incidental
    earlier frees (e.g. whether the test set was loaded). That made the CNN
    timing swing between ~4000 and ~7000 samples/s at 1 thread, mostly in
    page-fault system time. Fixing the thresholds gives PyTorch's steady,
    faster state every run. Returns "tuned", or "default" if not on glibc."""
    if platform.libc_ver()[0] != "glibc":
        return "default"
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "default"
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1   # 32 MiB: glibc's maximum
    ok = libc.mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1 and ok
    return "tuned" if ok else "default"


def read_idx(path):
    """An unsigned-byte IDX file (gzip) as a numpy uint8 array of its shape."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 4:
        raise ValueError("%s: too short for an IDX header" % path)
    zero, dtype, ndim = struct.unpack_from(">HBB", buf, 0)
    if zero != 0 or dtype != 0x08 or not 1 <= ndim <= 4:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack_from(">%dI" % ndim, buf, 4)
    off = 4 + 4 * ndim
    if len(buf) - off != int(np.prod(dims)):
        raise ValueError("%s: %d data bytes, header announces %s"
                         % (path, len(buf) - off, "x".join(map(str, dims))))
    return np.frombuffer(buf, dtype=np.uint8, offset=off).reshape(dims)


def load_split(data_dir, prefix):
    """(images float32 [N][28][28] in [0,1], labels int64 [N]) of one split."""
    x = read_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte.gz"))
    if x.shape[0] != y.shape[0]:
        raise ValueError("%s: %d images but %d labels" % (prefix, x.shape[0], y.shape[0]))
    xt = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    yt = torch.from_numpy(y.astype(np.int64))
    return xt, yt


class LstmNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTM(28, 64, batch_first=True)
        self.lstm2 = nn.LSTM(64, 32, batch_first=True)
        self.dense = nn.Linear(32, 10)

    def forward(self, x):              # x [B][28 steps][28 features]
        seq, _ = self.lstm1(x)         # [B][28][64]
        seq, _ = self.lstm2(seq)       # [B][28][32]
        return self.dense(seq[:, -1])  # last step -> [B][10]


def keras_init(model):
    """Keras's defaults, which pstrain's initialisers follow: glorot_uniform
    kernels, zero biases; LSTM: glorot_uniform input kernel, orthogonal
    recurrent kernel, forget-gate bias 1 (PyTorch has two bias vectors per
    LSTM layer; their sum is what counts, so the 1 goes into one of them)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LSTM):
            H = m.hidden_size
            for l in range(m.num_layers):
                # PyTorch stacks the gates i, f, g, o: each block of H rows is
                # one gate's kernel, and Keras initialises the whole stack at once.
                nn.init.xavier_uniform_(getattr(m, "weight_ih_l%d" % l))
                nn.init.orthogonal_(getattr(m, "weight_hh_l%d" % l))
                with torch.no_grad():
                    getattr(m, "bias_ih_l%d" % l).zero_()
                    getattr(m, "bias_hh_l%d" % l).zero_()
                    getattr(m, "bias_ih_l%d" % l)[H:2 * H] = 1.0
    return model


def make_model(name, init):
    if name == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(32 * 13 * 13, 10))
    elif name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 4096), nn.ReLU(),
                              nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                              nn.Linear(4096, 10))
    else:
        model = LstmNet()
    return keras_init(model) if init == "keras" else model


def shape_input(name, x):
    """Images [B][28][28] -> the model's input: NCHW for cnn, rows as steps for lstm."""
    return x.unsqueeze(1) if name == "cnn" else x


class Batches:
    """Endless minibatches over a seeded shuffle, reshuffled each epoch. With
    drop_last the incomplete last batch of an epoch is skipped (timing mode:
    every timed step is a full batch); without, it is the epoch's last step."""

    def __init__(self, x, y, batch, seed, drop_last):
        self.x, self.y, self.batch = x, y, batch
        self.gen = torch.Generator().manual_seed(seed)
        n = x.shape[0]
        self.per_epoch = n // batch if drop_last else (n + batch - 1) // batch
        self.pos = self.per_epoch

    def next(self):
        if self.pos == self.per_epoch:
            self.perm = torch.randperm(self.x.shape[0], generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos * self.batch:(self.pos + 1) * self.batch]
        self.pos += 1
        return self.x[idx], self.y[idx]


def train_steps(model, opt, loss_fn, batches, name, n):
    """Runs n steps; returns (samples trained on, last loss)."""
    samples = 0
    for _ in range(n):
        xb, yb = batches.next()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(shape_input(name, xb)), yb)
        loss.backward()
        opt.step()
        samples += xb.shape[0]
    return samples, loss.item()


def timed(model, opt, loss_fn, batches, name, n):
    """Runs n steps; returns (samples/s, last loss)."""
    t0 = time.perf_counter()
    samples, loss = train_steps(model, opt, loss_fn, batches, name, n)
    return samples / (time.perf_counter() - t0), loss


def accuracy(model, name, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            pred = model(shape_input(name, x[i:i + 1000])).argmax(dim=1)
            correct += (pred == y[i:i + 1000]).sum().item()
    model.train()
    return correct / x.shape[0]


def main():
    a = parse_args()
    malloc_mode = tune_malloc() if a.malloc == "tuned" else "default"
    # Must come before any parallel work, or PyTorch refuses the inter-op setting.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    x_train, y_train = load_split(a.data, "train")
    if a.validation >= x_train.shape[0]:
        print("torch_reference: --validation %d leaves no training images (the set holds %d)"
              % (a.validation, x_train.shape[0]), file=sys.stderr)
        return 2
    keep = x_train.shape[0] - a.validation
    x_train, y_train = x_train[:keep], y_train[:keep]
    model = make_model(a.model, a.init)
    lr = 1e-4 if a.model == "mlp" else 1e-3  # as configs/bench_mlp.cfg and fashion_*.cfg
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    batches = Batches(x_train, y_train, a.batch, a.seed, drop_last=a.epochs == 0)

    out = {"model": a.model, "threads": a.threads, "batch": a.batch}
    runs = []
    if a.epochs == 0:
        train_steps(model, opt, loss_fn, batches, a.model, WARMUP)
        for r in range(a.repeat):
            sps, loss = timed(model, opt, loss_fn, batches, a.model, a.steps)
            runs.append(round(sps, 1))
            print("window %d: %.1f samples/s, loss %.4f" % (r + 1, sps, loss), file=sys.stderr)
        out["steps"] = a.steps
    else:
        x_test, y_test = load_split(a.data, "t10k") if a.eval else (None, None)
        accs = []
        for e in range(a.epochs):
            sps, loss = timed(model, opt, loss_fn, batches, a.model, batches.per_epoch)
            runs.append(round(sps, 1))
            msg = "epoch %d: %.1f samples/s, loss %.4f" % (e + 1, sps, loss)
            if a.eval:
                accs.append(round(accuracy(model, a.model, x_test, y_test), 4))
                msg += ", test accuracy %.4f" % accs[-1]
            print(msg, file=sys.stderr)
        out["epochs"] = a.epochs
        if a.eval:
            out["test_accuracy"] = accs
    out.update({
        "samples_per_s": round(statistics.median(runs), 1),
        "runs": runs,
        "torch": torch.__version__,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "malloc": malloc_mode,
        "seed": a.seed,
        "init": a.init,
        "validation": a.validation,
    })
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
