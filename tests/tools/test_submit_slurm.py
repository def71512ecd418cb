"""tools/submit_slurm.py: executor parameters, requeue, and a real run with submitit's local
executor."""

import os
import sys

import pytest

from helpers import REPO


def _submit_module():
    sys.path.insert(0, os.path.join(REPO, "tools"))
    try:
        import submit_slurm
    finally:
        sys.path.pop(0)
    return submit_slurm


def test_submit_slurm_parameters_and_requeue(tmp_path):
    s = _submit_module()
    args = s.parse_args(
        [
            "--job-dir",
            str(tmp_path),
            "--config-file",
            "x.yaml",
            "--nodes",
            "2",
            "--num-gpus",
            "8",
            "--partition",
            "learnfair",
            "SOLVER.MAX_ITER",
            "5",
        ]
    )
    params = s.executor_parameters(args)
    assert params["nodes"] == 2 and params["tasks_per_node"] == 1
    assert params["gpus_per_node"] == 8 and params["slurm_partition"] == "learnfair"
    assert args.num_machines == 2 and args.opts == ["SOLVER.MAX_ITER", "5"]
    requeued = s.TrainingJob(args).checkpoint()
    assert requeued.function.args.resume is True and args.resume is False
    local = s.parse_args(
        [
            "--job-dir",
            str(tmp_path),
            "--config-file",
            "x.yaml",
            "--cluster",
            "local",
            "--nodes",
            "2",
        ]
    )
    with pytest.raises(ValueError, match="--nodes 1"):
        s.executor_parameters(local)
    assert s._rendezvous_port("123", 0) == s._rendezvous_port("123", 0)
    assert 20000 <= s._rendezvous_port("123", 0) < 40000


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:DeprecationWarning")
def test_submit_slurm_local_executor_trains(train_synthetic_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", train_synthetic_root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    s = _submit_module()
    out = tmp_path / "out"
    args = s.parse_args(
        [
            "--cluster",
            "local",
            "--job-dir",
            str(tmp_path / "job"),
            "--config-file",
            tiny_config,
            "--num-gpus",
            "1",
            "--timeout",
            "10",
            "OUTPUT_DIR",
            str(out),
            "SOLVER.MAX_ITER",
            "2",
            "DATASETS.TEST",
            "()",
        ]
    )
    job = s.submit(args)
    assert job.result() == "done", job.stderr()
    assert (out / "model_final.pth").exists()
    assert "machine 0/1" in job.stdout()
