"""Start, kill (SIGKILL) and resume real ``train_net.py`` runs on a tiny synthetic config.

Used by tests/engine/test_kill_resume.py; also a script for long random-kill campaigns:

    python tests/engine/kill_harness.py --kills 20 --seed 0 --work /tmp/killrun
"""
import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/ (for helpers) when run as a script

from helpers import QUICKSTART_CONFIG, TINY_QUICKSTART_OPTS  # noqa: E402
from helpers import REPO as ROOT  # noqa: E402
from mask2former.checkpoint import is_intact_checkpoint  # noqa: E402

LAUNCHER = os.path.join(HERE, "train_launcher.py")
CONFIG, TINY_OPTS = QUICKSTART_CONFIG, TINY_QUICKSTART_OPTS


def make_dataset(root: str) -> str:
    from mask2former.data.synthetic import generate_synthetic_dataset

    if not os.path.isdir(os.path.join(root, "synthetic")):
        generate_synthetic_dataset(root, num_train=4, num_val=1, seed=0, image_size=64)
    return root


class TrainRun:
    """One ``train_net.py`` process whose output lines are collected by a reader thread."""

    def __init__(self, data_root: str, out_dir: str, max_iter: int, period: int, *,
                 resume: bool = False, env: Optional[dict] = None, extra_opts=()):
        args = [sys.executable, LAUNCHER, "--config-file", CONFIG]
        if resume:
            args.append("--resume")
        args += TINY_OPTS + ["OUTPUT_DIR", out_dir, "SOLVER.MAX_ITER", str(max_iter),
                             "SOLVER.CHECKPOINT_PERIOD", str(period), *extra_opts]
        full_env = {**os.environ, "DETECTRON2_DATASETS": data_root, "OMP_NUM_THREADS": "1",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: List[str] = []
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=full_env, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_for(self, pattern: str, timeout: float = 240) -> str:
        """Block until an output line matches ``pattern`` (regex); returns the line."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        seen = 0
        with self._cv:
            while True:
                for line in self.lines[seen:]:
                    if rx.search(line):
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(f"process exited ({self.proc.returncode}) before "
                                       f"{pattern!r}:\n" + "\n".join(self.lines[-40:]))
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"no {pattern!r} in {timeout}s:\n" +
                                       "\n".join(self.lines[-40:]))
                self._cv.wait(min(left, 1.0))

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)

    def finish(self, timeout: float = 300) -> int:
        self.proc.wait(timeout)
        self._reader.join(10)
        return self.proc.returncode

    def start_iter(self) -> int:
        line = self.wait_for(r"Starting training from iteration \d+")
        return int(re.search(r"iteration (\d+)", line).group(1))

    def text(self) -> str:
        return "\n".join(self.lines)


def inspect_output(out_dir: str):
    """Check the checkpoint directory after a kill.

    Returns (iteration stored in the checkpoint named by last_checkpoint or None, list of
    checkpoint files). Raises AssertionError if any ``*.pth`` is incomplete or the tag is bad.
    """
    pths = sorted(f for f in os.listdir(out_dir) if f.endswith(".pth"))
    for f in pths:
        assert is_intact_checkpoint(os.path.join(out_dir, f)), f"corrupt checkpoint {f}"
    tag_file = os.path.join(out_dir, "last_checkpoint")
    if not os.path.exists(tag_file):
        assert not pths, f"checkpoints {pths} but no last_checkpoint"
        return None, pths
    with open(tag_file) as f:
        tag = f.read().strip()
    assert tag in pths, f"last_checkpoint names {tag!r}, not one of {pths}"
    ckpt = torch.load(os.path.join(out_dir, tag), map_location="cpu", weights_only=True)
    return int(ckpt["iteration"]), pths


def campaign(work: str, kills: int, seed: int, max_iter: int = 60, period: int = 3,
             log=print) -> List[dict]:
    """Kill a run ``kills`` times at random moments (some during saves), resume each time,
    then let it finish. Returns one record per kill."""
    rng = random.Random(seed)
    data = make_dataset(os.path.join(work, "data"))
    out = os.path.join(work, "out")
    records = []
    resume = False
    for k in range(kills):
        mode = rng.choice(["step", "save", "tag", "time"])
        env = {}
        if mode == "save":
            env = {"M2F_TEST_SLOW_SAVE": "20"}
        elif mode == "tag":
            env = {"M2F_TEST_SLOW_TAG": "20"}
        expected_start = 0
        if resume:
            it, _ = inspect_output(out)
            expected_start = 0 if it is None else it + 1
        run = TrainRun(data, out, max_iter, period, resume=resume, env=env)
        start = run.start_iter()
        assert start == expected_start, (start, expected_start)
        if expected_start >= max_iter:
            run.finish()
            break
        if mode == "step":
            target = rng.randint(start, max_iter - 1)
            run.wait_for(rf"@@STEP {target}\b")
            time.sleep(rng.uniform(0, 1.5))
            moment = f"during/after step {target}"
        elif mode in ("save", "tag"):
            line = run.wait_for("@@SAVE_PARTIAL" if mode == "save" else "@@TAG_PENDING")
            time.sleep(rng.uniform(0, 2))
            moment = f"{'mid-write of' if mode == 'save' else 'before tagging'} " + \
                os.path.basename(line.split()[-1])
        else:
            time.sleep(rng.uniform(0, 8))
            moment = "random time after start"
        if run.proc.poll() is not None:
            records.append({"kill": k, "mode": mode, "moment": "process finished first",
                            "start": start})
            log(records[-1])
            break
        run.kill()
        it, pths = inspect_output(out)
        rec = {"kill": k, "mode": mode, "moment": moment, "start": start,
               "tag_iteration": it, "files": pths}
        records.append(rec)
        log(rec)
        resume = True
    it, _ = inspect_output(out)
    final = TrainRun(data, out, max_iter, period, resume=True)
    start = final.start_iter()
    assert start == (0 if it is None else it + 1), (start, it)
    rc = final.finish()
    assert rc == 0, final.text()[-3000:]
    it, pths = inspect_output(out)
    assert it == max_iter - 1 and "model_final.pth" in pths, (it, pths)
    log({"final": "completed", "resumed_from": start, "final_iteration": it})
    return records


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", required=True)
    p.add_argument("--max-iter", type=int, default=60)
    p.add_argument("--period", type=int, default=3)
    a = p.parse_args()
    recs = campaign(a.work, a.kills, a.seed, a.max_iter, a.period)
    n = sum(1 for r in recs if "tag_iteration" in r)
    print(f"{n} SIGKILLs, all checkpoints intact after each, every resume at the right iteration")
