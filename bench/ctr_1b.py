#!/usr/bin/env python3
"""ctr_1b.py - a billion parameters on this machine (make ctr-1b).

DLRM's Kaggle reference with 26 tables of 2,404,000 rows of dim 16
(configs/criteo_1b.cfg: 1,000,064,000 parameters in its tables) trained by
2 parameter servers + 2 trainers on the synthetic log of data/ctr1b:

  1. the job runs 2 of its 3 epochs (runs/ctr_1b): its checkpoint is the
     run folder's model.ckpt with the servers' tables next to it;
  2. the job resumes from it for epoch 3 (runs/ctr_1b_resumed): its
     metrics.csv continues the AUC curve of the first;
  3. the same job with 10M-parameter tables (26 x 24,039 rows) for 1 epoch
     (runs/ctr_10m);
  4. the speed comparison: --rounds alternating rounds of --steps steps of
     the billion job and the 10M one (runs/ctr_cmp_*), on a machine whose
     load changes from minute to minute: the median samples/s of each;
  5. the export: the resumed job's model.onnx (its tables, 4 GB, in ONNX
     external data) in ONNX Runtime against pstrain predict --criteo on the
     100,000 test lines (tests/onnx/verify_ctr.sh), within 1e-5.

Then it checks, from the runs' own files (summary.json, metrics.csv,
ranks/rank-R.json, the tables' counters next to the final checkpoint):
each trainer's peak RSS <= 1 GiB; each server's peak RSS <= 1.5 x (rows it
holds x (dim + optimizer state) x 4 bytes) + 256 MiB; the billion job's
median samples/s within 25% of the 10M job's; the first run trained for at
least 10 minutes; the resumed run's AUC curve continues the first's.
Prints one JSON report (also bench/out/ctr_1b.json) and exits 1 if a check
fails.
"""
import argparse
import csv
import glob
import json
import os
import subprocess
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = "configs/criteo_1b.cfg"
FIELDS, DIM, ROWS, ROWS_10M = 26, 16, 2404000, 24039
MIB = 1024 * 1024


def mpirun(args, out, log):
    """Runs pstrain on 2 servers + 2 trainers into out; returns seconds."""
    cmd = ["mpirun", "--oversubscribe", "-np", "4", "build/pstrain", "--config", CFG,
           "--out", out, "--no-plot"] + args
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit("ctr_1b: %s failed (%d): see %s" % (" ".join(cmd), rc, log))
    return time.time() - t0


def metrics(run):
    with open(os.path.join(ROOT, run, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def ranks(run):
    out = []
    for p in sorted(glob.glob(os.path.join(ROOT, run, "ranks", "rank-*.json"))):
        with open(p) as f:
            out.append(json.load(f))
    return out


def rows_held(run, servers):
    """Rows each server held at the run's last checkpoint (its counters)."""
    steps = sorted(glob.glob(os.path.join(ROOT, run, "checkpoints", "step-*")))
    held = []
    for s in range(servers):
        with open(os.path.join(steps[-1], "tables-%d-of-%d.rows.json" % (s, servers))) as f:
            held.append(sum(t["rows"] for t in json.load(f)["tables"]))
    return held


def compare(rounds, steps, logs):
    """Alternating rounds of the billion and the 10M job, steps steps each:
    their samples/s (training time only), per round."""
    out = {"1b": [], "10m": []}
    for r in range(rounds):
        for name, rows in (("1b", ROWS), ("10m", ROWS_10M)):
            run = "runs/ctr_cmp_%s" % name
            subprocess.call(["rm", "-rf", os.path.join(ROOT, run)])
            mpirun(["--set", "model.sparse.rows=[%d]" % rows, "--set", "train.epochs=1",
                    "--set", "train.max_steps=%d" % steps], run,
                   os.path.join(logs, "ctr_cmp_%s_%d.log" % (name, r)))
            with open(os.path.join(ROOT, run, "summary.json")) as f:
                out[name].append(json.load(f)["samples_per_s"])
    return out


def verify_onnx(run, log):
    """tests/onnx/verify_ctr.sh on run: the largest difference between ONNX
    Runtime and pstrain predict over the test lines, or None if it failed."""
    env = dict(os.environ, PST_BIN="build/pstrain")
    p = subprocess.run(["tests/onnx/verify_ctr.sh", run, "data/ctr1b/test.txt", "100000"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    with open(log, "w") as f:
        f.write(p.stdout + p.stderr)
    for line in p.stdout.splitlines():
        if "max |onnxruntime - pstrain predict| =" in line and p.returncode == 0:
            return float(line.split("=")[1].split()[0])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-train", action="store_true", help="check runs made before")
    ap.add_argument("--rounds", type=int, default=3, help="speed comparison rounds")
    ap.add_argument("--steps", type=int, default=3000, help="steps of each comparison run")
    a = ap.parse_args()
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    logs = os.path.join(ROOT, "bench", "out")
    secs = {}
    if not a.skip_train:
        for d in ("runs/ctr_1b", "runs/ctr_1b_resumed", "runs/ctr_10m"):
            subprocess.call(["rm", "-rf", os.path.join(ROOT, d)])
        secs["first"] = mpirun(["--set", "train.epochs=2"], "runs/ctr_1b",
                               os.path.join(logs, "ctr_1b.log"))
        secs["resumed"] = mpirun(["--resume", "runs/ctr_1b"], "runs/ctr_1b_resumed",
                                 os.path.join(logs, "ctr_1b_resumed.log"))
        secs["10m"] = mpirun(["--set", "model.sparse.rows=[%d]" % ROWS_10M,
                              "--set", "train.epochs=1"], "runs/ctr_10m",
                             os.path.join(logs, "ctr_10m.log"))
    with open(os.path.join(ROOT, "runs/ctr_1b/summary.json")) as f:
        summ = json.load(f)
    first, resumed, small = metrics("runs/ctr_1b"), metrics("runs/ctr_1b_resumed"), \
        metrics("runs/ctr_10m")
    state = 0  # SGD keeps no state per row
    rep = {"table_params": FIELDS * ROWS * DIM,
           "rows_created": summ["tables"]["rows_created"],
           "rows_created_all": summ["tables"]["rows_created_all"],
           "first_run_train_s": summ["train_s"], "first_run_wall_s": summ["wall_s"],
           "auc_curve": [{"epoch": int(r["epoch"]), "test_auc": float(r["test_auc"]),
                          "from": "resumed" if i >= len(first) else "first"}
                         for i, r in enumerate(resumed)],
           "auc_first_run": [float(r["test_auc"]) for r in first],
           "samples_per_s_1b_epoch1": float(first[0]["samples_per_s"]),
           "samples_per_s_10m_epoch1": float(small[0]["samples_per_s"]),
           "wall_s": secs, "ranks": {}}
    cmp_path = os.path.join(logs, "ctr_1b_compare.json")
    if not a.skip_train or not os.path.exists(cmp_path):
        with open(cmp_path, "w") as f:
            json.dump(compare(a.rounds, a.steps, logs), f)
    with open(cmp_path) as f:
        rounds = json.load(f)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    rep["compare_rounds"] = rounds
    rep["compare_median_samples_per_s"] = med
    rep["samples_per_s_ratio"] = med["1b"] / med["10m"]
    held = rows_held("runs/ctr_1b_resumed", 2)
    checks = {"params >= 1e9": rep["table_params"] >= 1e9,
              "first run >= 10 min": summ["wall_s"] >= 600,
              "samples/s within 25%": abs(rep["samples_per_s_ratio"] - 1) <= 0.25,
              "resume continues the curve": [r["test_auc"] for r in first] ==
              [r["test_auc"] for r in resumed[:len(first)]] and len(resumed) == len(first) + 1}
    for run in ("runs/ctr_1b", "runs/ctr_1b_resumed"):
        for r in ranks(run):
            name = "%s %s %d" % (os.path.basename(run), r["role"], r["index"])
            if r["role"] == "trainer":
                ok, bound = r["peak_rss_mib"] <= 1024, 1024.0
            else:
                bound = (1.5 * held[r["index"]] * (DIM + state) * 4 + 256 * MIB) / MIB
                ok = r["peak_rss_mib"] <= bound
            rep["ranks"][name] = {"peak_rss_mib": r["peak_rss_mib"], "bound_mib": round(bound, 1)}
            checks["%s memory" % name] = ok
    rep["rows_held_per_server"] = held
    rep["onnx_data_bytes"] = os.path.getsize(os.path.join(ROOT, "runs/ctr_1b_resumed",
                                                          "model.onnx.data"))
    rep["onnx_vs_predict_max_diff_100k"] = verify_onnx("runs/ctr_1b_resumed",
                                                       os.path.join(logs, "ctr_1b_onnx.log"))
    checks["ONNX (external data) agrees with predict"] = \
        rep["onnx_vs_predict_max_diff_100k"] is not None
    rep["checks"] = checks
    text = json.dumps(rep, indent=1)
    print(text)
    with open(os.path.join(logs, "ctr_1b.json"), "w") as f:
        f.write(text + "\n")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
