#!/usr/bin/env python
"""Launch ``train_net.py`` training on a Slurm cluster (or locally) through submitit.

Every Slurm task is one Detectron2 "machine" that starts ``--num-gpus`` training processes with
Detectron2's ``launch``; global task 0 (on the first node) hosts the rendezvous
``tcp://<first node>:<port>``. Usually one task per node (``--nodes N``); ``--tasks-per-node K``
runs K such machines per node (for CPU training, or to try a multi-machine run on one host).

Preemption and time limit: Slurm sends submitit's signal (USR2; ``SUBMITIT_PREEMPT_SIGNAL`` to
change it) ``--signal-delay`` seconds before it stops the job. The training processes then finish
their iteration, save a checkpoint of it and stop (`mask2former.engine.hooks.PreemptionCheckpoint`);
task 0 then requeues the job, which continues with ``--resume`` at the next iteration.

    python tools/submit_slurm.py --config-file configs/coco/panoptic/swin_l.yaml \\
        --nodes 2 --num-gpus 8 --partition learnfair --timeout 4320 \\
        --job-dir /checkpoint/$USER/m2f OUTPUT_DIR /checkpoint/$USER/m2f/output

    # the same training in a local subprocess (no Slurm), e.g. to check a config end to end:
    python tools/submit_slurm.py --cluster local --config-file ... --num-gpus 1 --job-dir /tmp/job

Before submitting, the partition, the per-node resources and the job/output directories are
checked against ``sinfo``, so that a typo or a job directory that the compute nodes cannot see is
reported here rather than by a job that fails in the queue.
"""

import copy
import errno
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import cloudpickle
import submitit

from detectron2.engine import default_argument_parser, launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SCRIPT = "train_net.py"
# where a job that its own task 0 requeued waits to be stopped by Slurm (seconds)
REQUEUE_WAIT_S = 300

__all__ = [
    "parse_args",
    "TrainingJob",
    "executor_parameters",
    "build_executor",
    "submit",
    "main",
    "SubmissionError",
    "RendezvousError",
    "ClusterInfo",
    "NodeInfo",
    "query_cluster",
    "check_submission",
    "machine_local_reason",
    "check_rendezvous_port",
]


class SubmissionError(RuntimeError):
    """The job cannot run as asked on this cluster (checked before or by sbatch)."""


class RendezvousError(RuntimeError):
    """The distributed rendezvous cannot be set up (e.g. its port is taken)."""


def parse_args(argv=None):
    parser = default_argument_parser(epilog=__doc__)
    parser.description = "Submit Mask2Former training through submitit"
    parser.add_argument("--job-dir", required=True,
                        help="submitit logs and pickles; on a disk that every node sees")
    parser.add_argument(
        "--cluster",
        default="slurm",
        choices=["slurm", "local", "debug"],
        help="slurm (default); local: subprocess on this machine; debug: in-process",
    )
    parser.add_argument("--script", default=DEFAULT_SCRIPT,
                        help="training script whose main(args) runs (relative to the repository), "
                             "e.g. train_net_video.py")
    parser.add_argument("--nodes", type=int, default=1, help="number of Slurm nodes")
    parser.add_argument("--tasks-per-node", type=int, default=1,
                        help="Slurm tasks per node, each one Detectron2 machine of --num-gpus "
                             "processes (default 1; more only for CPU training or a test on one "
                             "host)")
    parser.add_argument("--cpu", action="store_true",
                        help="train on CPUs: request no GPUs, MODEL.DEVICE cpu; --num-gpus is then "
                             "the number of training processes per task (gloo)")
    parser.add_argument("--timeout", type=int, default=60 * 72, help="minutes")
    parser.add_argument("--signal-delay", type=int, default=120,
                        help="seconds between Slurm's preemption/time-limit signal and the stop")
    parser.add_argument("--partition", default=None, help="Slurm partition")
    parser.add_argument("--constraint", default=None, help="Slurm constraint, e.g. volta32gb")
    parser.add_argument("--comment", default=None, help="Slurm comment")
    parser.add_argument("--cpus-per-gpu", type=int, default=10,
                        help="CPUs per training process")
    parser.add_argument("--mem-per-gpu", type=int, default=60, help="GB per training process")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="rendezvous port on the first node (default: derived from the job id)",
    )
    parser.add_argument("--job-name", default="mask2former")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.num_gpus < 1 or args.tasks_per_node < 1:
        parser.error("--nodes, --tasks-per-node and --num-gpus must be >= 1")
    if not 0 <= args.port < 65536:
        parser.error("--port must be in [1, 65535] (or 0 for a port derived from the job id)")
    args.num_machines = args.nodes * args.tasks_per_node
    return args


def _rendezvous_port(job_id: str, fixed: int) -> int:
    """A port in [20000, 40000) derived from the job id, so every task computes the same one (and
    the same again after a requeue, which keeps the job id)."""
    if fixed:
        return fixed
    return 20000 + zlib.crc32(str(job_id).encode()) % 20000


def check_rendezvous_port(port: int, host: str = "") -> None:
    """Raise `RendezvousError` when ``port`` cannot be bound on this machine (task 0 checks it
    before training, so that a taken port stops the job with this message instead of a torch
    error in one process while the others wait for the rendezvous until their timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # like torch's TCPStore: a port in TIME_WAIT is usable, one somebody listens on is not
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            why = "is already in use" if e.errno == errno.EADDRINUSE else "may not be used"
            raise RendezvousError(
                f"The rendezvous port {port} on {host or socket.gethostname()} {why} (another "
                f"job, or a process left over from an earlier run, listens on it: `ss -ltnp "
                f"'sport = :{port}'` shows which). Resubmit with --port <a free port>."
            ) from None


# ---------------------------------------------------------------------------- cluster checks
@dataclass
class NodeInfo:
    name: str
    hostname: str
    cpus: int
    mem_mb: int
    gpus: int


@dataclass
class ClusterInfo:
    """What ``sinfo`` says: nodes per partition, and the default partition."""

    partitions: Dict[str, List[NodeInfo]] = field(default_factory=dict)
    default: Optional[str] = None


def _gpu_count(gres: str) -> int:
    """GPUs in a ``sinfo %G`` field such as "gpu:8", "gpu:a100:4(S:0-1),shard:8" or "(null)"."""
    total = 0
    for item in gres.split(","):
        item = item.split("(")[0]
        parts = item.split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_sinfo(text: str) -> ClusterInfo:
    """Parse ``sinfo -h -N -o '%N|%n|%P|%c|%m|%G'`` (one line per node and partition)."""
    info = ClusterInfo()
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, host, part, cpus, mem, gres = fields
        if part.endswith("*"):
            part = part[:-1]
            info.default = part
        mem_digits = "".join(c for c in mem if c.isdigit())
        info.partitions.setdefault(part, []).append(NodeInfo(
            name, host, int(cpus) if cpus.isdigit() else 0,
            int(mem_digits) if mem_digits else 0, _gpu_count(gres)))
    return info


def query_cluster() -> ClusterInfo:
    """The partitions and nodes of the Slurm cluster this machine submits to."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise SubmissionError(
            "sbatch/sinfo not found: this machine is not a Slurm submission host. Run this on "
            "the cluster's login node, or train here with --cluster local.")
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%n|%P|%c|%m|%G"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SubmissionError(f"sinfo failed (exit status {proc.returncode}): "
                              f"{proc.stderr.strip()}. Is the Slurm controller reachable?")
    info = parse_sinfo(proc.stdout)
    if not info.partitions:
        raise SubmissionError("sinfo lists no partition: this cluster has no nodes to run on.")
    return info


_LOCAL_PREFIXES = ("/tmp", "/var/tmp", "/dev/shm", "/run")
_LOCAL_FSTYPES = ("tmpfs", "ramfs", "devtmpfs")


def _mount_fstype(path: str, mounts_text: Optional[str] = None) -> str:
    """Filesystem type of the mount holding ``path`` (from /proc/mounts), or ""."""
    if mounts_text is None:
        try:
            with open("/proc/mounts") as f:
                mounts_text = f.read()
        except OSError:
            return ""
    best, fstype = "", ""
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best):
            best, fstype = mnt, parts[2]
    return fstype


def machine_local_reason(path: str, mounts_text: Optional[str] = None) -> Optional[str]:
    """Why ``path`` is certainly on this machine only (under /tmp, /var/tmp, /dev/shm, /run, or
    on a tmpfs/ramfs), or None when it may be shared (NFS, Lustre, ... or a local disk: that
    cannot be told from here)."""
    real = os.path.realpath(path)
    for prefix in _LOCAL_PREFIXES:
        if real == prefix or real.startswith(prefix + "/"):
            return f"it is under {prefix}"
    fstype = _mount_fstype(real, mounts_text)
    if fstype in _LOCAL_FSTYPES:
        return f"it is on a {fstype} filesystem"
    return None


def _short(host: str) -> str:
    return host.split(".")[0]


def check_submission(args, cluster: ClusterInfo, this_host: str,
                     mounts_text: Optional[str] = None) -> str:
    """Check ``args`` against the cluster before sbatch; returns the partition used.

    Raises `SubmissionError` naming the problem and what to do for: an unknown partition (or none
    given and no default), more nodes than the partition has, more CPUs / memory / GPUs per node
    than its nodes have (or GPUs asked on a partition without any), and a job directory or
    OUTPUT_DIR that only this machine can see while the job may run on another one.
    """
    names = ", ".join(p + ("*" if p == cluster.default else "") for p in sorted(cluster.partitions))
    part = args.partition or cluster.default
    if part is None:
        raise SubmissionError(
            f"No --partition given and the cluster has no default partition; pass "
            f"--partition with one of: {names}")
    if part not in cluster.partitions:
        raise SubmissionError(
            f"Partition '{part}' does not exist on this cluster; pass --partition with one of: "
            f"{names} (* = default)")
    nodes = cluster.partitions[part]
    if args.nodes > len(nodes):
        raise SubmissionError(
            f"--nodes {args.nodes} but partition '{part}' has {len(nodes)} node(s); lower --nodes "
            f"(or --tasks-per-node to run several machines per node)")
    procs = args.num_gpus * args.tasks_per_node
    cpus = args.cpus_per_gpu * procs
    mem_mb = args.mem_per_gpu * procs * 1024
    best_cpus = max(n.cpus for n in nodes)
    best_mem = max(n.mem_mb for n in nodes)
    best_gpus = max(n.gpus for n in nodes)
    if cpus > best_cpus:
        raise SubmissionError(
            f"The job asks for {cpus} CPUs per node ({procs} processes x --cpus-per-gpu "
            f"{args.cpus_per_gpu}) but the nodes of '{part}' have at most {best_cpus}; lower "
            f"--cpus-per-gpu")
    if best_mem and mem_mb > best_mem:
        raise SubmissionError(
            f"The job asks for {mem_mb // 1024} GB per node ({procs} processes x --mem-per-gpu "
            f"{args.mem_per_gpu}) but the nodes of '{part}' have at most {best_mem // 1024} GB; "
            f"lower --mem-per-gpu")
    if not args.cpu:
        if best_gpus == 0:
            raise SubmissionError(
                f"Partition '{part}' has no GPUs (no gpu gres in sinfo); choose a GPU partition, "
                f"or train on CPUs with --cpu")
        if procs > best_gpus:
            raise SubmissionError(
                f"The job asks for {procs} GPUs per node (--num-gpus {args.num_gpus} x "
                f"--tasks-per-node {args.tasks_per_node}) but the nodes of '{part}' have at most "
                f"{best_gpus}")
    hosts = {_short(n.hostname or n.name) for n in nodes}
    if hosts != {_short(this_host)}:  # the job may run on another machine than this one
        for what, path in (("--job-dir", args.job_dir), ("OUTPUT_DIR", args.output_dir)):
            why = machine_local_reason(path, mounts_text)
            if why:
                raise SubmissionError(
                    f"{what} {path} is on this machine only ({why}), but the job runs on the "
                    f"nodes of '{part}' ({', '.join(sorted(hosts)[:5])}"
                    f"{', ...' if len(hosts) > 5 else ''}): every node must see submitit's "
                    f"pickles and logs and the checkpoints. Use a directory on a shared "
                    f"filesystem (NFS, Lustre, GPFS, ...), e.g. under your home or /checkpoint.")
    return part


# ---------------------------------------------------------------------------- the job
def _load_script(path: str):
    """Import the training script ``path`` as a module of its own name (importable by that name
    in the spawned training processes too: they inherit sys.path)."""
    directory, fname = os.path.split(os.path.abspath(path))
    name = os.path.splitext(fname)[0]
    if not os.path.isfile(path):
        raise SubmissionError(f"--script {path} does not exist")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module(name)


def _resolve_config(args):
    """Absolute paths for the config file, the script and OUTPUT_DIR (the job may start in another
    directory); the config is merged here once so that a bad key fails now, not in the queue."""
    from detectron2.config import get_cfg

    from mask2former.config import merge_config_checked

    if not os.path.isabs(args.script):
        args.script = os.path.join(REPO, args.script)
    module = _load_script(args.script)
    if not hasattr(module, "CONFIG_FNS") or not hasattr(module, "main"):
        raise SubmissionError(
            f"--script {args.script} must define main(args) and CONFIG_FNS (the functions that add "
            f"its config keys), as train_net.py and train_net_video.py do")
    if args.config_file:
        args.config_file = os.path.abspath(args.config_file)
    if args.cpu:
        args.opts = list(args.opts) + ["MODEL.DEVICE", "cpu"]
    cfg = get_cfg()
    for add_config in module.CONFIG_FNS:
        add_config(cfg)
    merge_config_checked(cfg, args.config_file, args.opts)
    args.output_dir = os.path.abspath(cfg.OUTPUT_DIR)
    if cfg.OUTPUT_DIR != args.output_dir:
        args.opts = list(args.opts) + ["OUTPUT_DIR", args.output_dir]
    return args


def _preempt_signal() -> signal.Signals:
    """The signal submitit's sbatch script asks Slurm to send (``--signal``)."""
    return signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]


def _hold_signal(sig: signal.Signals) -> None:
    """Keep ``sig`` pending in this process's main thread, and in the training processes it
    starts (they inherit the mask), until the trainer's PreemptionCheckpoint handles it.

    This replaces submitit's handler, which would requeue at once, before the training processes
    have saved their iteration. A signal the kernel hands to another thread of this process runs
    this handler, which posts it to the (blocking) main thread."""
    main = threading.main_thread().ident

    def post_to_main_thread(signum, frame):
        signal.pthread_kill(main, signum)

    signal.signal(sig, post_to_main_thread)
    signal.pthread_sigmask(signal.SIG_BLOCK, {sig})


class TrainingJob:
    """Picklable submitit callable: one call = one machine (Slurm task) of the training."""

    def __init__(self, args, repo: str = REPO):
        self.args = args
        self.repo = repo

    def _distributed_args(self, env):
        args = copy.deepcopy(self.args)
        if env is None:  # --cluster debug: in this process
            args.num_machines, args.machine_rank = 1, 0
            args.dist_url = args.dist_url or "auto"
            return args
        args.num_machines = env.num_tasks
        args.machine_rank = env.global_rank
        master = env.hostnames[0] if env.num_nodes > 1 else "127.0.0.1"
        args.dist_url = f"tcp://{master}:{_rendezvous_port(env.job_id, args.port)}"
        return args

    def _marker(self) -> str:
        from mask2former.engine.hooks import PREEMPTED_MARKER

        return os.path.join(self.args.output_dir, PREEMPTED_MARKER)

    def __call__(self):
        start = time.time()
        env = None if self.args.cluster == "debug" else submitit.JobEnvironment()
        args = self._distributed_args(env)
        if env is not None:
            sig = _preempt_signal()
            _hold_signal(sig)
            if env.global_rank == 0 and args.num_machines * args.num_gpus > 1:
                check_rendezvous_port(int(args.dist_url.rsplit(":", 1)[1]), env.hostname)
        if self.repo not in sys.path:
            sys.path.insert(0, self.repo)
        from mask2former.engine.hooks import PREEMPT_SIGNAL_ENV

        marker = self._marker()
        if env is not None:
            os.environ[PREEMPT_SIGNAL_ENV] = sig.name  # read by the Trainer of every process
            if env.global_rank == 0 and os.path.exists(marker):
                os.remove(marker)  # left by an earlier attempt
        script = _load_script(self.args.script)
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        print(
            f"submitit job {env.job_id if env else 'debug'} (restart {restarts}): machine "
            f"{args.machine_rank}/{args.num_machines}, {args.num_gpus} processes, dist_url "
            f"{args.dist_url}, resume={args.resume}",
            flush=True,
        )
        launch(
            script.main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
        if env is None or not os.path.exists(marker):
            return "done"
        with open(marker) as f:
            stop = json.load(f)
        it = stop["iteration"]
        if env.global_rank != 0:
            print(f"preempted after iteration {it}; waiting for task 0 to requeue the job",
                  flush=True)
            time.sleep(REQUEUE_WAIT_S)
            raise RuntimeError(f"Training stopped on {stop['signal']} after iteration {it}, but "
                               f"task 0 did not requeue the job within {REQUEUE_WAIT_S} s: see "
                               f"its log. Resubmit with --resume to continue.")
        print(f"preempted: {stop['signal']} received, iteration {it} saved as "
              f"{stop['checkpoint']}; requeuing job {env.job_id}, it resumes at iteration "
              f"{it + 1}", flush=True)
        self._requeue(env, start)
        return "requeued"  # not reached: the requeue exits this process

    def _requeue(self, env, start: float) -> None:
        """What submitit does on its signal (dump ``self.checkpoint()``, ``scontrol requeue``,
        exit), now that the checkpoint is on disk."""
        from submitit.core.job_environment import SignalHandler

        delayed = submitit.helpers.DelayedSubmission.load(env.paths.submitted_pickle)
        handler = SignalHandler(env, env.paths, delayed)
        handler._start_time = start  # so that it tells a time-out from a preemption
        handler.checkpoint_and_try_requeue(_preempt_signal())

    def checkpoint(self):
        """The submission that continues this training: the same job with --resume."""
        args = copy.deepcopy(self.args)
        args.resume = True
        return submitit.helpers.DelayedSubmission(type(self)(args, self.repo))


def executor_parameters(args) -> dict:
    """submitit AutoExecutor parameters for ``args`` (pure; slurm_* only for --cluster slurm)."""
    if args.cluster != "slurm" and args.nodes > 1:
        raise ValueError(f"--cluster {args.cluster} runs on this machine only; use --nodes 1")
    procs = args.num_gpus * args.tasks_per_node
    params = dict(
        name=args.job_name,
        timeout_min=args.timeout,
        nodes=args.nodes,
        tasks_per_node=args.tasks_per_node,  # Detectron2's launch starts the per-GPU processes
        cpus_per_task=args.cpus_per_gpu * args.num_gpus,
        mem_gb=args.mem_per_gpu * procs,
    )
    if args.cluster == "slurm":
        if not args.cpu:
            params["gpus_per_node"] = procs
        slurm = {
            "slurm_partition": args.partition,
            "slurm_constraint": args.constraint,
            "slurm_comment": args.comment,
            "slurm_signal_delay_s": args.signal_delay,
            # one failed task ends the job step instead of leaving the others waiting for it
            "slurm_srun_args": ["--kill-on-bad-exit=1"],
            # requeue is allowed even where the cluster's default (JobRequeue) forbids it
            "slurm_additional_parameters": {"requeue": True},
        }
        params.update({k: v for k, v in slurm.items() if v is not None})
    return params


def build_executor(args):
    params = executor_parameters(args)
    executor = submitit.AutoExecutor(
        folder=args.job_dir, cluster=args.cluster, slurm_max_num_timeout=30
    )
    executor.update_parameters(**params)
    return executor


def submit(args, cluster: Optional[ClusterInfo] = None):
    """Check and submit the training job; returns the submitit Job."""
    args.job_dir = os.path.abspath(args.job_dir)
    _resolve_config(args)
    if args.cluster == "slurm":
        cluster = cluster or query_cluster()
        args.partition = check_submission(args, cluster, socket.gethostname())
    os.makedirs(args.job_dir, exist_ok=True)
    module = sys.modules[TrainingJob.__module__]
    if module.__name__ != "__main__":
        # tools/ is not a package: ship this module's code in the pickle (as for __main__)
        cloudpickle.register_pickle_by_value(module)
    try:
        job = build_executor(args).submit(TrainingJob(args))
    except submitit.core.utils.FailedJobError as e:
        raise SubmissionError(f"sbatch refused the job: {e}") from None
    print(f"Submitted job {job.job_id}; logs in {args.job_dir}; OUTPUT_DIR {args.output_dir}",
          flush=True)
    return job


def main(argv=None):
    args = parse_args(argv)
    try:
        job = submit(args)
    except SubmissionError as e:
        print(f"submit_slurm: error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.cluster in ("local", "debug"):
        print(job.result())
    return job


if __name__ == "__main__":
    main()
