#!/usr/bin/python3
"""test_scale_model.py - bench/scale_model.py against steps worked out by
hand: a calibration of round numbers (one gradient range, no latency, no
server or CPU costs), where a message of the model's bytes takes exactly
P = 0.1 s on a link, so that each discipline's step is a sum of P's and the
compute C.

  1 trainer, 1 server:      push, then pull: C + 2P (either sharing).
  2 trainers, 1 server, BSP:
    fifo: the first trainer's reply goes out first (its pull was waiting);
          it pushes its next gradient while the second one's reply is on
          the server's uplink, so the steady step is C + 3P;
    fair: the two replies share the uplink and end together, the pushes
          share the downlink: C + 4P.
    fifo with a window of half a reply (a connection that has sent a
          window's bytes goes to the back of the link's queue, as TCP
          connections whose windows the link's queue holds take turns):
          the replies go A, B, A, B half by half, A's done at 1.5P, B's
          at 2P; A's push goes alone for 0.5P, then beside B's for P (A
          done at C + 3P), B's alone for its last 0.5P: the piece is
          complete at C + 3.5P after the last one, the steady step. The
          smaller the window, the nearer fair's C + 4P (a quarter: C + 3.75P).
  ASP, 1 trainer: as BSP.
  1 trainer, 2 servers (half the keys each): fifo C + 1.5P (one server's
          reply overlaps the other's push), fair C + 2P.
  A sparse model, 1 trainer, 1 server: the dense push, the rows pushed
          (ids and gradients) and the pull; the dense reply; then the next
          batch's rows asked for by id and sent: C + 2P and the rows' three
          transfers one after another.
Also bench/calibrate.py's choice of a compute step from its rounds.
Run by `make test`.
"""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import scale_model  # noqa: E402

P_KEYS = 100_000            # the model's parameters: 400,000 bytes each way per step
C = 0.010                   # compute per step (s)
GBPS = 400_000 * 8 / 0.1 / 1e9  # the link that moves 400,000 bytes in P = 0.1 s
P = 0.1


def calibration():
    zero_opt = {"busy_1_trainer_s_per_key": 0.0, "busy_per_trainer_s_per_key": 0.0,
                "busy_base_s_per_key": 0.0}
    return {
        "environment": {"date": "test", "cpu": "test"},
        "compute": {"cnn": {"params": P_KEYS, "batch": 32, "threads": {
            "1": {"step_s": C, "grad_ready": [[0, P_KEYS, C]]}}}},
        "bytes": {"cnn": {"none": {"push_bytes_step": 4.0 * P_KEYS,
                                   "pull_bytes_step": 4.0 * P_KEYS}}},
        "rows": {},
        "server": {"optimizers": {"adam": zero_opt},
                   "exchange": {"plain": {"cpu_s_per_byte": 1e-13}}},
        "latency": {"push_pull_round_trip_s": 0.0},
        "codec": {"fp16_encode_s_per_float": 0.0, "fp16_decode_s_per_float": 0.0},
    }


U, DIM = 1000, 16           # a sparse model's unique rows per batch and their width
LINK_BYTES_S = 400_000 / P  # what the link moves in a second


def sparse_calibration():
    """calibration() with the CTR model: its job's bytes are the dense keys'
    4 bytes each and its rows' (as the wire carries them)."""
    c = calibration()
    c["compute"]["ctr"] = {"params": P_KEYS, "batch": 128, "threads": {
        "1": {"step_s": C, "grad_ready": [[0, P_KEYS, C]]}}}
    c["bytes"]["ctr"] = {"none": {"push_bytes_step": 4.0 * P_KEYS + U * (8 + 4 * DIM) + 8 * U,
                                  "pull_bytes_step": 4.0 * P_KEYS + U * 4 * DIM}}
    c["rows"] = {"rows_per_s": {"sgd": 1e30},
                 "ctr_data": {"dim": DIM, "unique_rows_per_batch": {"128": U}}}
    c["server"]["optimizers"]["sgd"] = c["server"]["optimizers"]["adam"]
    return c


class ScaleModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(calibration(), f)
        cls.cal = scale_model.Calib(f.name)
        os.unlink(f.name)

    def step(self, T, S, consistency="bsp", sharing="fifo", window=None):
        # frame 1: the link's bytes are the payload's; 0 latency
        return scale_model.step(self.cal, "cnn", T, S, GBPS, cores=1, latency_s=0.0,
                                consistency=consistency, frame=1.0, sharing=sharing,
                                window=window, detail=True)[3]["step_s"]

    def test_one_trainer(self):
        for sharing in scale_model.SHARINGS:
            self.assertAlmostEqual(self.step(1, 1, sharing=sharing), C + 2 * P, places=6)

    def test_two_trainers_fifo(self):
        # per trainer: the job's mean step over T trainers' rate
        self.assertAlmostEqual(self.step(2, 1, sharing="fifo"), C + 3 * P, places=6)

    def test_two_trainers_window(self):
        half = 4 * P_KEYS // 2  # bytes: half a reply
        self.assertAlmostEqual(self.step(2, 1, window=half), C + 3.5 * P, places=6)
        self.assertAlmostEqual(self.step(2, 1, window=half // 2), C + 3.75 * P, places=6)

    def test_two_trainers_fair(self):
        self.assertAlmostEqual(self.step(2, 1, sharing="fair"), C + 4 * P, places=6)

    def test_asp_one_trainer(self):
        self.assertAlmostEqual(self.step(1, 1, consistency="asp"), C + 2 * P, places=6)

    def test_two_servers(self):
        # each server holds half the keys. fifo: the trainer's link sends the first
        # server's half, then the second's; the first server's reply comes in while
        # the second half goes out: C + P/2 + P/2 + P/2. fair: the halves go out
        # together and come back together: C + 2P
        self.assertAlmostEqual(self.step(1, 2, sharing="fifo"), C + 1.5 * P, places=6)
        self.assertAlmostEqual(self.step(1, 2, sharing="fair"), C + 2 * P, places=6)


class SparseModel(unittest.TestCase):
    def test_rows_round_trip(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(sparse_calibration(), f)
        cal = scale_model.Calib(f.name)
        os.unlink(f.name)
        self.assertAlmostEqual(cal.key_bytes("ctr", "none")[0], 4.0)
        self.assertAlmostEqual(cal.key_bytes("ctr", "none")[1], 4.0)
        rows = (U * (8 + 4 * DIM) + U * 8 + U * 4 * DIM) / LINK_BYTES_S  # 18 + 2 + 16 ms
        for sharing in scale_model.SHARINGS:
            step = scale_model.step(cal, "ctr", 1, 1, GBPS, cores=1, latency_s=0.0,
                                    frame=1.0, sharing=sharing, detail=True)[3]["step_s"]
            self.assertAlmostEqual(step, C + 2 * P + rows, places=6)


class Calibration(unittest.TestCase):
    """bench/calibrate.py's choice of a compute step from its rounds."""

    def test_own_step(self):
        import calibrate
        long_steps = {"step_own_cpus_s": 0.30, "step_p10_s": 0.80}  # every step interrupted
        short_steps = {"step_own_cpus_s": 0.90, "step_p10_s": 0.64}  # most steps not
        self.assertEqual(calibrate.own_step([long_steps]), 0.30)
        self.assertEqual(calibrate.own_step([short_steps]), 0.64)
        self.assertEqual(calibrate.own_step([short_steps, long_steps]), 0.30)
        self.assertEqual(calibrate.own_step([{"step_own_cpus_s": 0.7, "step_p10_s": 0.7},
                                             short_steps]), 0.64)


class LinkProbe(unittest.TestCase):
    """bench/link_probe.py's turns and the window it reads from completions."""

    def test_turns(self):
        import link_probe
        self.assertEqual(link_probe.completions(2, 100, 100), [100, 200])  # one after the other
        self.assertEqual(link_probe.completions(2, 100, 50), [150, 200])   # A B A B
        self.assertEqual(link_probe.completions(3, 100, 60), [220, 260, 300])

    def test_fit(self):
        import link_probe
        M, R = 1_000_000, 1e7
        fifo = [k * M / R for k in (1, 2, 3, 4)]
        fair = [4 * M / R] * 4
        self.assertEqual(link_probe.fit_window(4, M, R, fifo), M)
        self.assertLess(link_probe.fit_window(4, M, R, fair), M // 50)
        half = [x / R for x in link_probe.completions(4, M, M // 2)]
        self.assertAlmostEqual(link_probe.fit_window(4, M, R, half), M // 2, delta=M // 20)

    def test_summary(self):
        import link_probe
        warm = [[9.0, 9.0]] * link_probe.WARMUP
        runs = [warm + [[2.0, 1.0], [1.2, 2.2]], warm + [[1.1, 2.1]]]
        self.assertEqual(link_probe.summary(runs), [1.1, 2.1])


if __name__ == "__main__":
    unittest.main()
