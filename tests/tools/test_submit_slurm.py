"""tools/submit_slurm.py without Slurm: executor parameters, the checks a submission meets on a
cluster (partition, resources, shared directories, rendezvous port), and a real preempted and
requeued training through submitit's local executor. (`make slurm-check` runs it on Slurm.)"""

import json
import os
import re
import signal
import socket
import time

import pytest

from helpers import REPO, load_script

MOUNTS = """\
/dev/vda1 / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
tmpfs /scratch/ram tmpfs rw 0 0
nfs1:/export/home /home nfs4 rw,relatime 0 0
"""

SINFO = """\
gpu001|gpu001|learnfair*|80|512000|gpu:volta:8(S:0-1)
gpu002|gpu002|learnfair*|80|512000|gpu:volta:8(S:0-1)
cpu001|cpu001|cpuonly|32|128000|(null)
"""


def _module():
    return load_script("tools/submit_slurm.py", "submit_slurm", register=True)


def _args(s, tmp_path, *extra, job_dir=None, output_dir=None):
    args = s.parse_args(["--job-dir", str(job_dir or tmp_path / "job"), "--config-file", "x.yaml",
                         *extra])
    args.output_dir = str(output_dir or tmp_path / "out")
    return args


def test_parameters_and_requeue(tmp_path):
    s = _module()
    args = _args(s, tmp_path, "--nodes", "2", "--num-gpus", "8", "--partition", "learnfair",
                 "SOLVER.MAX_ITER", "5")
    params = s.executor_parameters(args)
    assert params["nodes"] == 2 and params["tasks_per_node"] == 1
    assert params["gpus_per_node"] == 8 and params["slurm_partition"] == "learnfair"
    assert params["cpus_per_task"] == 80 and params["mem_gb"] == 480
    assert params["slurm_srun_args"] == ["--kill-on-bad-exit=1"]
    assert params["slurm_additional_parameters"] == {"requeue": True}
    assert args.num_machines == 2 and args.opts == ["SOLVER.MAX_ITER", "5"]
    requeued = s.TrainingJob(args).checkpoint()
    assert requeued.function.args.resume is True and args.resume is False

    # two CPU "machines" on one node: no GPUs asked, memory for both tasks
    cpu = _args(s, tmp_path, "--cpu", "--tasks-per-node", "2", "--num-gpus", "1",
                "--cpus-per-gpu", "1", "--mem-per-gpu", "2")
    params = s.executor_parameters(cpu)
    assert "gpus_per_node" not in params and cpu.num_machines == 2
    assert params["tasks_per_node"] == 2 and params["cpus_per_task"] == 1 and params["mem_gb"] == 4

    local = _args(s, tmp_path, "--cluster", "local", "--nodes", "2")
    with pytest.raises(ValueError, match="--nodes 1"):
        s.executor_parameters(local)
    assert s._rendezvous_port("123", 0) == s._rendezvous_port("123", 0)
    assert 20000 <= s._rendezvous_port("123", 0) < 40000
    assert s._rendezvous_port("123", 29500) == 29500


def test_sinfo_parsing():
    s = _module()
    info = s.parse_sinfo(SINFO)
    assert info.default == "learnfair" and sorted(info.partitions) == ["cpuonly", "learnfair"]
    node = info.partitions["learnfair"][0]
    assert (node.name, node.cpus, node.mem_mb, node.gpus) == ("gpu001", 80, 512000, 8)
    assert info.partitions["cpuonly"][0].gpus == 0
    assert s._gpu_count("gpu:a100:4(S:0),gpu:v100:2,shard:8") == 6


@pytest.mark.parametrize("extra, message", [
    (["--partition", "nosuch"],
     "Partition 'nosuch' does not exist on this cluster; pass --partition with one of: cpuonly, "
     "learnfair*"),
    (["--nodes", "3"], "--nodes 3 but partition 'learnfair' has 2 node"),
    (["--num-gpus", "8", "--cpus-per-gpu", "12"], "96 CPUs per node .* at most 80; lower --cpus"),
    (["--num-gpus", "8", "--mem-per-gpu", "80"], "640 GB per node .* at most 500 GB"),
    (["--num-gpus", "16", "--cpus-per-gpu", "1", "--mem-per-gpu", "1"],
     "16 GPUs per node .* at most 8"),
    (["--partition", "cpuonly", "--cpus-per-gpu", "1", "--mem-per-gpu", "1"],
     "Partition 'cpuonly' has no GPUs .* with --cpu"),
])
def test_submission_errors_name_the_problem(tmp_path, extra, message):
    s = _module()
    info = s.parse_sinfo(SINFO)
    with pytest.raises(s.SubmissionError, match=message):
        s.check_submission(_args(s, tmp_path, *extra, job_dir="/home/u/job",
                                 output_dir="/home/u/out"), info, "login1", MOUNTS)


def test_partition_default_and_cpu_jobs(tmp_path):
    s = _module()
    info = s.parse_sinfo(SINFO)
    args = _args(s, tmp_path, "--num-gpus", "8", job_dir="/home/u/job", output_dir="/home/u/out")
    assert s.check_submission(args, info, "login1", MOUNTS) == "learnfair"
    cpu = _args(s, tmp_path, "--cpu", "--partition", "cpuonly", "--cpus-per-gpu", "4",
                "--num-gpus", "8", "--mem-per-gpu", "8", job_dir="/home/u/j",
                output_dir="/home/u/o")
    assert s.check_submission(cpu, info, "login1", MOUNTS) == "cpuonly"
    no_default = s.parse_sinfo(SINFO.replace("learnfair*", "learnfair"))
    with pytest.raises(s.SubmissionError, match="No --partition given and the cluster has no "
                                                "default partition; pass --partition with one of: "
                                                "cpuonly, learnfair"):
        s.check_submission(args, no_default, "login1", MOUNTS)


def test_directories_only_this_machine_sees_are_refused(tmp_path):
    s = _module()
    assert s.machine_local_reason("/tmp/jobs", MOUNTS) == "it is under /tmp"
    assert s.machine_local_reason("/scratch/ram/jobs", MOUNTS) == "it is on a tmpfs filesystem"
    assert s.machine_local_reason("/home/u/jobs", MOUNTS) is None  # nfs4
    assert s.machine_local_reason("/data/jobs", MOUNTS) is None  # a local disk? cannot be told
    info = s.parse_sinfo(SINFO)
    args = _args(s, tmp_path, job_dir="/tmp/u/job", output_dir="/home/u/out")
    with pytest.raises(s.SubmissionError) as ei:
        s.check_submission(args, info, "login1", MOUNTS)
    msg = str(ei.value)
    assert "--job-dir /tmp/u/job is on this machine only (it is under /tmp)" in msg
    assert "gpu001, gpu002" in msg and "shared filesystem" in msg
    args = _args(s, tmp_path, job_dir="/home/u/job", output_dir="/scratch/ram/out")
    with pytest.raises(s.SubmissionError, match="OUTPUT_DIR /scratch/ram/out is on this machine "
                                                "only \\(it is on a tmpfs filesystem\\)"):
        s.check_submission(args, info, "login1", MOUNTS)
    # a cluster whose only node is this machine may use them
    single = s.parse_sinfo("vm|vm|check*|2|24000|(null)\n")
    args = _args(s, tmp_path, "--cpu", "--cpus-per-gpu", "1", "--mem-per-gpu", "1",
                 job_dir="/tmp/u/job", output_dir="/tmp/u/out")
    assert s.check_submission(args, single, "vm.example.org", MOUNTS) == "check"


def test_not_a_slurm_host(tmp_path, monkeypatch):
    s = _module()
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch/sinfo
    with pytest.raises(s.SubmissionError, match="not a Slurm submission host.*--cluster local"):
        s.query_cluster()


def test_rendezvous_port_in_use():
    s = _module()
    with socket.socket() as holder:
        holder.bind(("", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(s.RendezvousError,
                           match=f"rendezvous port {port} on node0 is already in use.*--port"):
            s.check_rendezvous_port(port, "node0")
    s.check_rendezvous_port(port, "node0")  # free again


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:DeprecationWarning")
def test_local_executor_preempted_requeued_and_resumed(train_synthetic_root, tiny_config,
                                                       tmp_path, monkeypatch):
    """The whole preemption path without Slurm: the signal reaches the task, training saves its
    iteration and stops, the task requeues the job (exit status 144: the local executor starts it
    again), which resumes at the next iteration and finishes."""
    monkeypatch.setenv("DETECTRON2_DATASETS", train_synthetic_root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = _module()
    out = tmp_path / "out"
    max_iter = 16
    args = s.parse_args(["--cluster", "local", "--job-dir", str(tmp_path / "job"),
                         "--config-file", tiny_config, "--num-gpus", "1", "--timeout", "10",
                         "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", str(max_iter),
                         "DATASETS.TEST", "()"])
    job = s.submit(args)
    deadline = time.time() + 240
    while time.time() < deadline and not job.done():
        if (out / "last_checkpoint").exists() and (
                out / "last_checkpoint").read_text() == "model_0000003.pth":
            break
        time.sleep(0.1)
    assert not job.done(), job.stderr()
    # submitit's preemption signal to the task (a child of the local executor's controller), as
    # Slurm sends it before a preemption or the time limit
    ctl = job._process.pid
    with open(f"/proc/{ctl}/task/{ctl}/children") as f:
        (task,) = [int(p) for p in f.read().split()]
    os.kill(task, signal.SIGUSR2)
    assert job.result() == "done", job.stderr()
    log = job.stdout()
    m = re.search(r"preempted: SIGUSR2 received, iteration (\d+) saved as model_(\d+)\.pth", log)
    assert m is not None, log
    k = int(m.group(1))
    assert int(m.group(2)) == k
    assert 3 <= k < max_iter - 1
    assert f"requeuing job {job.job_id}, it resumes at iteration {k + 1}" in log
    assert "Starting training from iteration 0" in log
    assert f"Starting training from iteration {k + 1}" in log
    assert "machine 0/1" in log and "resume=True" in log
    assert (out / "model_final.pth").exists() and (out / f"model_{k:07d}.pth").exists()
    assert not (out / "preempted.json").exists()  # removed by the resumed attempt
    lines = (out / "metrics.json").read_text().splitlines()
    its = [json.loads(line)["iteration"] for line in lines]
    assert k in its and its == sorted(set(its)) and its[-1] == max_iter - 1
    assert os.path.isabs(args.output_dir) and args.opts[-2:] != ["OUTPUT_DIR", "out"]


def test_config_is_resolved_at_submission(tmp_path, monkeypatch, tiny_config):
    from mask2former.config import ConfigError

    s = _module()
    monkeypatch.chdir(tmp_path)
    args = s.parse_args(["--job-dir", "job", "--config-file", tiny_config, "--cpu",
                         "OUTPUT_DIR", "rel/out"])
    s._resolve_config(args)
    assert args.output_dir == str(tmp_path / "rel" / "out")
    assert args.opts[-2:] == ["OUTPUT_DIR", args.output_dir]  # the job may start elsewhere
    assert "MODEL.DEVICE" in args.opts and os.path.isabs(args.script)
    video = s.parse_args(["--job-dir", "job", "--script", "train_net_video.py",
                          "--config-file", os.path.join(REPO, "configs/youtubevis_2019/r50.yaml")])
    s._resolve_config(video)  # the video keys come from the script's CONFIG_FNS
    bad = s.parse_args(["--job-dir", "job", "--config-file", tiny_config, "SOLVER.MAX_ITR", "3"])
    with pytest.raises(ConfigError, match="MAX_ITR"):
        s._resolve_config(bad)
    (tmp_path / "other.py").write_text("def main(args):\n    pass\n")
    other = s.parse_args(["--job-dir", "job", "--script", str(tmp_path / "other.py"),
                          "--config-file", tiny_config])
    with pytest.raises(s.SubmissionError, match="must define main\\(args\\) and CONFIG_FNS"):
        s._resolve_config(other)
