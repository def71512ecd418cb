#!/usr/bin/env python
"""Launch ``train_net.py`` training on a SLURM cluster (or locally) through submitit.

One SLURM task per node; each task runs Detectron2's ``launch`` with ``--num-gpus`` processes,
using the first node of the allocation as the rendezvous (``tcp://<node0>:<port>``). On
preemption or timeout the job is requeued with ``--resume`` (continues from
OUTPUT_DIR/last_checkpoint).

    python tools/submit_slurm.py --config-file configs/coco/panoptic/swin_l.yaml \\
        --nodes 2 --num-gpus 8 --partition learnfair --timeout 4320 --job-dir /checkpoint/$USER/m2f \\
        OUTPUT_DIR /checkpoint/$USER/m2f/output

    # the same training in a local subprocess (no SLURM), e.g. to check a config end to end:
    python tools/submit_slurm.py --cluster local --config-file ... --num-gpus 1 --job-dir /tmp/job
"""

import copy
import os
import sys
import zlib

import cloudpickle
import submitit

from detectron2.engine import default_argument_parser, launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["parse_args", "TrainingJob", "executor_parameters", "build_executor", "submit", "main"]


def parse_args(argv=None):
    parser = default_argument_parser(epilog=__doc__)
    parser.description = "Submit Mask2Former training through submitit"
    parser.add_argument("--job-dir", required=True, help="submitit logs / pickles (shared disk)")
    parser.add_argument(
        "--cluster",
        default="slurm",
        choices=["slurm", "local", "debug"],
        help="slurm (default); local: subprocess on this machine; debug: in-process",
    )
    parser.add_argument("--nodes", type=int, default=1, help="number of machines")
    parser.add_argument("--timeout", type=int, default=60 * 72, help="minutes")
    parser.add_argument("--partition", default=None, help="SLURM partition")
    parser.add_argument("--constraint", default=None, help="SLURM constraint, e.g. volta32gb")
    parser.add_argument("--comment", default=None, help="SLURM comment")
    parser.add_argument("--cpus-per-gpu", type=int, default=10)
    parser.add_argument("--mem-per-gpu", type=int, default=60, help="GB")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="rendezvous port on node 0 (default: derived from the job id)",
    )
    parser.add_argument("--job-name", default="mask2former")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.num_gpus < 1:
        parser.error("--nodes and --num-gpus must be >= 1")
    args.num_machines = args.nodes
    return args


def _rendezvous_port(job_id: str, fixed: int) -> int:
    """A port in [20000, 40000) derived from the job id, so every node computes the same one."""
    if fixed:
        return fixed
    return 20000 + zlib.crc32(str(job_id).encode()) % 20000


class TrainingJob:
    """Picklable submitit callable: one call = one machine of the training."""

    def __init__(self, args, repo: str = REPO):
        self.args = args
        self.repo = repo  # where train_net.py lives (imported on the worker)

    def _distributed_args(self):
        args = copy.deepcopy(self.args)
        if args.cluster == "debug" or args.nodes == 1 and args.num_gpus == 1:
            args.num_machines, args.machine_rank = 1, 0
            args.dist_url = args.dist_url or "auto"
            return args
        env = submitit.JobEnvironment()
        args.num_machines = env.num_nodes
        args.machine_rank = env.node
        master = env.hostnames[0] if env.num_nodes > 1 else "127.0.0.1"
        args.dist_url = f"tcp://{master}:{_rendezvous_port(env.job_id, args.port)}"
        return args

    def __call__(self):
        if self.repo not in sys.path:
            sys.path.insert(0, self.repo)
        import train_net

        args = self._distributed_args()
        print(
            f"submitit job: machine {args.machine_rank}/{args.num_machines}, "
            f"{args.num_gpus} processes, dist_url {args.dist_url}",
            flush=True,
        )
        launch(
            train_net.main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
        return "done"

    def checkpoint(self):
        """Called by submitit on preemption/timeout: requeue the same job with --resume."""
        args = copy.deepcopy(self.args)
        args.resume = True
        return submitit.helpers.DelayedSubmission(type(self)(args, self.repo))


def executor_parameters(args) -> dict:
    """submitit AutoExecutor parameters for ``args`` (pure; slurm_* only for --cluster slurm)."""
    if args.cluster != "slurm" and args.nodes > 1:
        raise ValueError(f"--cluster {args.cluster} runs on this machine only; use --nodes 1")
    params = dict(
        name=args.job_name,
        timeout_min=args.timeout,
        nodes=args.nodes,
        tasks_per_node=1,  # Detectron2's launch starts the per-GPU processes
        cpus_per_task=args.cpus_per_gpu * args.num_gpus,
        mem_gb=args.mem_per_gpu * args.num_gpus,
    )
    if args.cluster == "slurm":
        params["gpus_per_node"] = args.num_gpus
        slurm = {
            "slurm_partition": args.partition,
            "slurm_constraint": args.constraint,
            "slurm_comment": args.comment,
            "slurm_signal_delay_s": 120,
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


def submit(args):
    """Submit the training job; returns the submitit Job."""
    os.makedirs(args.job_dir, exist_ok=True)
    module = sys.modules[TrainingJob.__module__]
    if module.__name__ != "__main__":
        # tools/ is not a package: ship this module's code in the pickle (as for __main__)
        cloudpickle.register_pickle_by_value(module)
    job = build_executor(args).submit(TrainingJob(args))
    print(f"Submitted job {job.job_id}; logs in {args.job_dir}", flush=True)
    return job


def main(argv=None):
    args = parse_args(argv)
    job = submit(args)
    if args.cluster in ("local", "debug"):
        print(job.result())
    return job


if __name__ == "__main__":
    main()
