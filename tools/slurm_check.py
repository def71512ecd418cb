#!/usr/bin/env python
"""The runs of ``make slurm-check`` on a real Slurm cluster (tools/slurm_check.sh starts a
throwaway one and calls this with ``$SLURM_CONF`` set).

For each workload (a training script, a config and its synthetic data; see ``WORKLOADS``: the
image quick-start model, checked with runs 1-3, and a tiny Mask2Former-VIS through
train_net_video.py, checked with runs 1-2):

1. **reference**: ``<script> --num-gpus 2`` on this machine, outside Slurm (2 gloo processes);
2. **2-task job**: ``tools/submit_slurm.py --nodes 1 --tasks-per-node 2 --num-gpus 1 --cpu``:
   two Slurm tasks, each one Detectron2 machine of one process (machine rank = Slurm task rank,
   rendezvous on the first node). It must end COMPLETED with the reference's losses at every
   metrics.json record (within 2%) and the reference's periodic checkpoint at iteration 9;
3. **preemption** (``"preempt"`` in the workload's checks): the same job; once its periodic
   checkpoint of iteration 9 exists, ``scancel --signal=USR2 <job>`` (the signal submitit asks
   Slurm to send before a preemption or the time limit). It must: stop after some iteration k,
   requeue itself (Restarts=1), resume and end COMPLETED, and nothing may be trained twice or
   lost, i.e.
     - attempt 1 ran iterations 0..k: ``model_<k>.pth`` holds iteration k and AdamW's step count
       k+1 in every parameter (k+1 optimizer steps), and it is the checkpoint ``last_checkpoint``
       named when attempt 2 started;
     - attempt 2 logged "Starting training from iteration k+1" (no other start than 0 and k+1);
     - metrics.json: iterations strictly increasing across both attempts, a record at k (written
       by attempt 1 as it stopped), the last at MAX_ITER-1, and the learning rate of every record
       equal to the schedule's at that iteration (a repeated or skipped step shifts it);
     - model_final.pth: AdamW's step count MAX_ITER (one step per iteration over both attempts);
     - attempt 1's periodic checkpoint of iteration 9 equals the reference's (it trained the
       same steps). Attempt 2 is not compared with the reference: Detectron2 does not save the
       data sampler's position, so a resumed run draws its batches from the sampler's start.
   Slurm 22.05 without slurmdbd has no ``sacct``: the states are polled with ``scontrol show job``
   (JobState, Restarts), and the requeue is confirmed by slurmctld's log ("Requeuing JobId=")
   and the job-completion log (jobcomp/filetxt: one record per attempt).

Then the errors a user meets: an unknown partition (refused before sbatch, exit status 2) and a
rendezvous port in use (the job fails at once with the message, no task left waiting).
Prints a summary; exits 1 when a check failed.
"""
import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's mask2former and scripts, whatever is installed
PY = sys.executable
MAX_ITER = 30
PREEMPT_AFTER = 9  # signal once the periodic checkpoint of this iteration exists
LOSS_TOLERANCE = 0.02
JOB_TIMEOUT_S = 900
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED")


def _image_data(root: str) -> None:
    from mask2former.data.synthetic import generate_synthetic_dataset

    generate_synthetic_dataset(root, num_train=16, num_val=0, seed=0, image_size=128)


def _video_data(root: str) -> None:
    from mask2former.data.synthetic_video import generate_synthetic_ytvis

    generate_synthetic_ytvis(root, num_train=4, num_val=0, seed=0, height=64, width=96,
                             min_frames=3, max_frames=4)


@dataclass
class Workload:
    """A training script run through tools/submit_slurm.py. ``make_data(datasets_root)`` writes its
    data; ``checks``: "match" (2-task job vs. the local 2-process run), "preempt"."""

    name: str
    script: str
    config: str
    opts: Sequence[str]
    make_data: Callable[[str], None]
    checks: Sequence[str] = ("match", "preempt")


COMMON_OPTS = (
    "SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD",
    str(PREEMPT_AFTER + 1), "DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0",
)

# Mask2Former-VIS (the YouTube-VIS R50 config) scaled down as the video tests do: R18, width 32,
# 4 queries, 2-frame clips of 64 px from the synthetic YouTube-VIS-format videos (4 classes).
VIDEO_OPTS = (
    "MODEL.WEIGHTS", "", "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.RESNETS.NORM", "GN", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",
    "MODEL.SEM_SEG_HEAD.MASK_DIM", "32", "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1",
    "MODEL.MASK_FORMER.HIDDEN_DIM", "32", "MODEL.MASK_FORMER.DIM_FEEDFORWARD", "64",
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "4", "MODEL.MASK_FORMER.DEC_LAYERS", "3",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4",
    "DATASETS.TRAIN", "('synthetic_ytvis_train',)", "INPUT.MIN_SIZE_TRAIN", "(64,)",
    "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.CROP.ENABLED", "False", "SOLVER.BASE_LR", "0.0005",
    "SOLVER.WARMUP_ITERS", "0", "SOLVER.STEPS", "()", "SOLVER.AMP.ENABLED", "False", "SEED", "3",
    *COMMON_OPTS, "SOLVER.IMS_PER_BATCH", "2",
)

# A third workload: name its script (main(args) and CONFIG_FNS), config, overrides and data.
WORKLOADS = [
    Workload("image", "train_net.py", "configs/quickstart/synthetic_panoptic.yaml",
             COMMON_OPTS + ("INPUT.IMAGE_SIZE", "128"), _image_data),
    Workload("video", "train_net_video.py", "configs/youtubevis_2019/r50.yaml", VIDEO_OPTS,
             _video_data, checks=("match",)),
]


class CheckFailed(AssertionError):
    pass


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


# ------------------------------------------------------------------ Slurm helpers
def run(cmd: List[str], env=None, check=True, timeout=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CheckFailed(f"{shlex.join(cmd)} failed ({proc.returncode}): "
                          f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def job_info(job: str) -> Dict[str, str]:
    """``scontrol show job -o`` as a dict (JobState, Restarts, ExitCode, ...)."""
    out = run(["scontrol", "show", "job", "-o", job]).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


@dataclass
class JobWatch:
    """Polls a job's state until it ends; records every (JobState, Restarts) change."""

    job: str
    seen: List[str] = field(default_factory=list)
    info: Dict[str, str] = field(default_factory=dict)

    def poll(self) -> Dict[str, str]:
        self.info = job_info(self.job)
        label = f"{self.info.get('JobState')}(Restarts={self.info.get('Restarts')})"
        if not self.seen or self.seen[-1] != label:
            self.seen.append(label)
        return self.info

    def wait(self, timeout=JOB_TIMEOUT_S, until: Optional[Callable[[], bool]] = None) -> bool:
        """Poll until the job ended (True) or ``until()`` holds (False)."""
        end = time.time() + timeout
        while time.time() < end:
            state = self.poll().get("JobState")
            if state in FINAL_STATES:
                return True
            if until is not None and until():
                return False
            time.sleep(0.2)
        run(["scancel", self.job], check=False)
        raise CheckFailed(f"job {self.job} did not end within {timeout} s (states {self.seen}); "
                          f"cancelled")

    @property
    def history(self) -> str:
        return " -> ".join(self.seen)


# ------------------------------------------------------------------ metrics / checkpoints
def read_metrics(path: str) -> List[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def loss_keys(record: dict) -> List[str]:
    return sorted(k for k in record if k == "total_loss" or k.startswith("loss_"))


def compare_losses(ref: List[dict], other: List[dict], tol=LOSS_TOLERANCE) -> str:
    by_it = {r["iteration"]: r for r in ref}
    common = [r for r in other if r["iteration"] in by_it]
    expect(common, "no common metrics.json iteration with the reference run")
    worst, where = 0.0, ""
    for r in common:
        ref_r = by_it[r["iteration"]]
        keys = loss_keys(ref_r)
        expect(keys and keys == loss_keys(r),
               f"loss keys differ at iteration {r['iteration']}: {loss_keys(r)} vs {keys}")
        for k in keys:
            rel = abs(r[k] - ref_r[k]) / max(abs(ref_r[k]), 1e-12)
            if rel > worst:
                worst, where = rel, f"{k}@{r['iteration']}"
            expect(rel <= tol, f"{k} at iteration {r['iteration']}: {r[k]:.6g} vs reference "
                               f"{ref_r[k]:.6g} ({100 * rel:.2f}% > {100 * tol:.0f}%)")
    n = len(loss_keys(common[0]))
    its = [r["iteration"] for r in common]
    if worst == 0.0:
        return f"{n} losses x iterations {its} identical to the reference's"
    return (f"{n} losses x iterations {its} within {100 * worst:.3f}% of the reference's (largest "
            f"difference: {where}; tolerance {100 * tol:.0f}%)")


def load_ckpt(path: str) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def adam_steps(ckpt: dict) -> set:
    state = ckpt["trainer"]["_trainer"]["optimizer"]["state"]
    return {int(s["step"]) for s in state.values()}


def same_weights(a: dict, b: dict) -> float:
    """Largest absolute difference between the models of two checkpoints."""

    expect(a["model"].keys() == b["model"].keys(), "the checkpoints hold different tensors")
    return max(float((a["model"][k].float() - b["model"][k].float()).abs().max())
               if a["model"][k].numel() else 0.0 for k in a["model"])


def lr_schedule(w: "Workload", n: int) -> List[float]:
    """The learning rate of iterations 0..n-1 as the trainer's LRScheduler hook records it."""
    import importlib

    import torch
    from detectron2.config import get_cfg

    from mask2former.solver import build_lr_scheduler

    cfg = get_cfg()
    for add_config in importlib.import_module(os.path.splitext(w.script)[0]).CONFIG_FNS:
        add_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, w.config))
    cfg.merge_from_list(list(w.opts))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    sched = build_lr_scheduler(cfg, opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


# ------------------------------------------------------------------ the check
class Check:
    def __init__(self, work: str, slurm_logs: str):
        self.work = work
        self.slurm_logs = slurm_logs
        self.datasets = os.path.join(work, "datasets")
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = ROOT + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env["DETECTRON2_DATASETS"] = self.datasets
        self.env["OMP_NUM_THREADS"] = "1"  # 2 training processes on 2 CPUs
        self.summary: List[str] = []
        self.failed = False

    def report(self, line: str) -> None:
        print(f"  {line}", flush=True)
        self.summary.append(line)

    def submit(self, w: Workload, name: str, extra: Sequence[str] = (), opts: Sequence[str] = (),
               expect_rc: int = 0) -> subprocess.CompletedProcess:
        cmd = [PY, os.path.join(ROOT, "tools", "submit_slurm.py"), "--script", w.script,
               "--job-dir", os.path.join(self.work, "jobs"), "--cpu", "--nodes", "1",
               "--tasks-per-node", "2", "--num-gpus", "1", "--cpus-per-gpu", "1",
               "--mem-per-gpu", "2", "--timeout", "30", "--job-name", f"m2f-{name}",
               *extra, "--config-file", os.path.join(ROOT, w.config), *w.opts,
               "OUTPUT_DIR", os.path.join(self.work, name), *opts]
        print(f"$ {shlex.join(cmd)}", flush=True)
        proc = run(cmd, env=self.env, check=False, timeout=300)
        expect(proc.returncode == expect_rc,
               f"submit_slurm.py exited {proc.returncode} (expected {expect_rc}):\n"
               f"{proc.stdout}{proc.stderr}")
        return proc

    @staticmethod
    def job_id(proc: subprocess.CompletedProcess) -> str:
        m = re.search(r"Submitted job (\d+)", proc.stdout)
        expect(m is not None, f"no job id in: {proc.stdout}")
        return m.group(1)

    def job_log(self, job: str, task: int = 0) -> str:
        text = ""
        for ext in ("out", "err"):
            path = os.path.join(self.work, "jobs", f"{job}_{task}_log.{ext}")
            if os.path.exists(path):
                with open(path) as f:
                    text += f.read()
        return text

    def slurm_log(self, name: str) -> str:
        path = os.path.join(self.slurm_logs, name)
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    # -------------------------------------------------------------- runs
    def reference(self, w: Workload) -> str:
        out = os.path.join(self.work, f"{w.name}-reference")
        # a free port (Detectron2's default one is fixed per user: another run may hold it)
        cmd = [PY, os.path.join(ROOT, w.script), "--num-gpus", "2", "--dist-url", "auto",
               "--config-file", os.path.join(ROOT, w.config), *w.opts, "MODEL.DEVICE", "cpu",
               "OUTPUT_DIR", out]
        print(f"$ {shlex.join(cmd)}", flush=True)
        start = time.time()
        with open(out + ".log", "w") as log:
            rc = subprocess.call(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            with open(out + ".log") as f:
                tail = f.read()[-3000:]
            raise CheckFailed(f"the reference run failed ({rc}):\n{tail}")
        recs = read_metrics(os.path.join(out, "metrics.json"))
        self.report(f"{w.name} reference: {w.script} --num-gpus 2 (this machine, no Slurm): "
                    f"metrics.json iterations {[r['iteration'] for r in recs]}, total_loss "
                    f"{recs[-1]['total_loss']:.4f} at {recs[-1]['iteration']} "
                    f"({time.time() - start:.0f} s)")
        return out

    def two_task_job(self, w: Workload, ref_out: str) -> None:
        name = f"{w.name}-2tasks"
        start = time.time()
        job = self.job_id(self.submit(w, name))
        watch = JobWatch(job)
        watch.wait()
        log0, log1 = self.job_log(job, 0), self.job_log(job, 1)
        expect(watch.info.get("JobState") == "COMPLETED",
               f"job {job} ended {watch.history}:\n{log0[-3000:]}\n{log1[-2000:]}")
        for rank, log in ((0, log0), (1, log1)):
            expect(f"machine {rank}/2, 1 processes" in log,
                   f"task {rank} of job {job} did not run as machine {rank} of 2")
        out = os.path.join(self.work, name)
        cmp = compare_losses(read_metrics(os.path.join(ref_out, "metrics.json")),
                             read_metrics(os.path.join(out, "metrics.json")))
        ck = f"model_{PREEMPT_AFTER:07d}.pth"
        diff = same_weights(load_ckpt(os.path.join(ref_out, ck)), load_ckpt(os.path.join(out, ck)))
        expect(diff <= 1e-4, f"{ck} differs from the reference's by up to {diff:.3g}")
        self.report(f"{w.name} 2-task job {job}: {watch.history}; tasks 0 and 1 = machines 0 and 1 "
                    f"of 2 (gloo); {cmp}; {ck} equal to the reference's (max |diff| {diff:.2g}) "
                    f"({time.time() - start:.0f} s)")

    def preemption_job(self, w: Workload, ref_out: str) -> None:
        name = f"{w.name}-preempt"
        out = os.path.join(self.work, name)
        start = time.time()
        job = self.job_id(self.submit(w, name))
        watch = JobWatch(job)
        trigger = os.path.join(out, f"model_{PREEMPT_AFTER:07d}.pth")

        def periodic_checkpoint_written():
            try:
                with open(os.path.join(out, "last_checkpoint")) as f:
                    return f.read().strip() == os.path.basename(trigger)
            except OSError:
                return False

        ended = watch.wait(until=periodic_checkpoint_written)
        expect(not ended, f"job {job} ended ({watch.history}) before its checkpoint of iteration "
                          f"{PREEMPT_AFTER}:\n{self.job_log(job)[-3000:]}")
        run(["scancel", "--signal=USR2", job])
        signalled = time.time()
        print(f"  scancel --signal=USR2 {job} (after {os.path.basename(trigger)})", flush=True)
        watch.wait()
        log0 = self.job_log(job, 0)
        expect(watch.info.get("JobState") == "COMPLETED",
               f"job {job} ended {watch.history}:\n{log0[-3000:]}\n{self.job_log(job, 1)[-2000:]}")
        restarts = int(watch.info.get("Restarts", "0"))
        expect(restarts == 1, f"job {job}: Restarts={restarts}, expected 1 ({watch.history})")
        ctld = self.slurm_log("slurmctld.log")
        expect(f"Requeuing JobId={job}" in ctld, f"slurmctld.log has no 'Requeuing JobId={job}'")
        jobcomp = [line for line in self.slurm_log("jobcomp.log").splitlines()
                   if line.startswith(f"JobId={job} ")]
        comp_states = [re.search(r"JobState=(\S+)", line).group(1) for line in jobcomp]
        expect(len(comp_states) == 2 and comp_states[-1] == "COMPLETED",
               f"jobcomp.log records for job {job}: {comp_states} (expected 2 attempts)")

        m = re.search(r"preempted: (\S+) received, iteration (\d+) saved as (\S+);", log0)
        expect(m is not None, f"job {job}'s task 0 log does not report the preemption")
        sig, k, ckpt_name = m.group(1), int(m.group(2)), m.group(3)
        expect(PREEMPT_AFTER <= k < MAX_ITER - 1, f"stopped at iteration {k}")
        expect(ckpt_name == f"model_{k:07d}.pth", f"checkpoint {ckpt_name} for iteration {k}")
        starts = [int(s) for s in re.findall(r"Starting training from iteration (\d+)", log0)]
        expect(starts == [0, k + 1], f"training started at iterations {starts}, expected "
                                     f"[0, {k + 1}]")
        expect("restart 1): machine 0/2" in log0, "attempt 2 did not report restart 1")
        expect(re.search(r"resume=True", log0) is not None, "attempt 2 did not run with --resume")

        ck = load_ckpt(os.path.join(out, ckpt_name))
        expect(ck.get("iteration") == k and ck["trainer"]["iteration"] == k,
               f"{ckpt_name}: iteration {ck.get('iteration')}/{ck['trainer']['iteration']}")
        expect(adam_steps(ck) == {k + 1}, f"{ckpt_name}: AdamW step counts {adam_steps(ck)}, "
                                          f"expected {{{k + 1}}}")
        final = load_ckpt(os.path.join(out, "model_final.pth"))
        expect(adam_steps(final) == {MAX_ITER},
               f"model_final.pth: AdamW step counts {adam_steps(final)}, expected {{{MAX_ITER}}}")

        recs = read_metrics(os.path.join(out, "metrics.json"))
        its = [r["iteration"] for r in recs]
        expect(its == sorted(set(its)), f"metrics.json iterations not strictly increasing: {its}")
        expect(k in its and its[-1] == MAX_ITER - 1, f"metrics.json iterations {its}")
        lrs = lr_schedule(w, MAX_ITER)
        for r in recs:
            want = lrs[r["iteration"]]
            expect(abs(r["lr"] - want) <= 1e-9 + 1e-6 * abs(want),
                   f"lr at iteration {r['iteration']}: {r['lr']:.6g}, schedule {want:.6g}")
        ref_ck = f"model_{PREEMPT_AFTER:07d}.pth"
        diff = same_weights(load_ckpt(os.path.join(ref_out, ref_ck)),
                            load_ckpt(os.path.join(out, ref_ck)))
        expect(diff <= 1e-4, f"attempt 1's {ref_ck} differs from the reference's by {diff:.3g}")
        self.report(
            f"{w.name} preemption job {job}: states {watch.history}; requeue: slurmctld.log "
            f"'Requeuing JobId={job}', jobcomp.log one record per attempt: "
            f"{comp_states[0]} (attempt 1, requeued) then {comp_states[1]}")
        self.report(
            f"{w.name} preemption job {job}: {sig} sent {time.time() - signalled:.0f} s before the "
            f"job ended; attempt 1 stopped after iteration {k} ({ckpt_name}: iteration {k}, "
            f"{k + 1} AdamW steps); attempt 2 (restart 1, --resume) started at iteration {k + 1} "
            f"and finished at {MAX_ITER - 1} (model_final.pth: {MAX_ITER} AdamW steps); "
            f"metrics.json iterations "
            f"{its}, lr of each = schedule; {ref_ck} equal to the reference's "
            f"(max |diff| {diff:.2g}) ({time.time() - start:.0f} s)")

    def errors(self, w: Workload) -> None:
        # 1. a partition that does not exist: refused before sbatch, with the existing ones
        proc = self.submit(w, "error-partition", extra=["--partition", "nosuch"], expect_rc=2)
        msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        expect("Partition 'nosuch' does not exist" in msg and "check*" in msg,
               f"unknown partition message: {proc.stderr}")
        self.report(f"error, unknown partition: exit status 2, \"{msg}\"")

        # 2. a rendezvous port in use on the first node: task 0 stops the job at once
        with socket.socket() as holder:
            holder.bind(("", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            start = time.time()
            job = self.job_id(self.submit(w, "error-port", extra=["--port", str(port)],
                                          opts=["SOLVER.MAX_ITER", "1"]))
            watch = JobWatch(job)
            watch.wait(timeout=300)
        log0 = self.job_log(job, 0)
        expect(watch.info.get("JobState") == "FAILED", f"job {job} ended {watch.history}")
        m = re.search(r"RendezvousError: (The rendezvous port .*)", log0)
        expect(m is not None and str(port) in m.group(1),
               f"job {job}'s task 0 log has no rendezvous error:\n{log0[-3000:]}")
        self.report(f"error, rendezvous port {port} in use: job {job} {watch.history} after "
                    f"{time.time() - start:.0f} s, task 0: \"{m.group(1)}\"")
        self.report("error, job directory not shared: not reproducible on one host (every path is "
                    "shared); covered by tests/tools/test_submit_slurm.py")

    # -------------------------------------------------------------- all
    def run_all(self) -> int:
        print(f"slurm-check: {run(['sinfo', '-V']).stdout.strip()}, cluster from $SLURM_CONF="
              f"{os.environ.get('SLURM_CONF')}", flush=True)
        print(run(["sinfo", "-N", "-o", "%N %P %c %m %T"]).stdout, flush=True)
        for i, w in enumerate(WORKLOADS):
            print(f"\n== workload '{w.name}': {w.script} {w.config}", flush=True)
            try:
                os.makedirs(self.datasets, exist_ok=True)
                w.make_data(self.datasets)
                ref = self.reference(w)
                if "match" in w.checks:
                    self.two_task_job(w, ref)
                if "preempt" in w.checks:
                    self.preemption_job(w, ref)
                if i == 0:
                    self.errors(w)
            except CheckFailed as e:
                self.failed = True
                self.report(f"{w.name}: FAILED: {e}")
        print("\nslurm-check summary:")
        for line in self.summary:
            print(f"  {line}")
        return 1 if self.failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="directory for data, jobs and outputs")
    parser.add_argument("--slurm-logs", required=True,
                        help="the cluster's log directory (slurmctld.log, jobcomp.log)")
    args = parser.parse_args(argv)
    if not os.environ.get("SLURM_CONF"):
        parser.error("SLURM_CONF is not set: run this through tools/slurm_check.sh")
    os.makedirs(args.work, exist_ok=True)
    return Check(args.work, args.slurm_logs).run_all()


if __name__ == "__main__":
    sys.exit(main())
