"""SIGKILL real train_net.py runs (mid-save, mid-training) and resume them with --resume."""
import os
import re

import pytest
import torch

from kill_harness import TrainRun, inspect_output, make_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("kill_data")))


@pytest.fixture
def start_run():
    """Start TrainRuns; any still alive when the test ends (e.g. it failed) is killed."""
    runs = []

    def start(*args, **kwargs):
        runs.append(TrainRun(*args, **kwargs))
        return runs[-1]

    yield start
    for r in runs:
        if r.proc.poll() is None:
            r.kill()


def test_kill_during_save_and_mid_training_then_resume(data_root, tmp_path, start_run):
    out = str(tmp_path / "out")
    max_iter, period = 6, 2  # checkpoints after iterations 1, 3, 5 (+ model_final)

    # 1) Kill while model_0000003.pth is half written.
    run = start_run(data_root, out, max_iter, period,
                   env={"M2F_TEST_SLOW_SAVE": "60", "M2F_TEST_SLOW_SAVE_NAME": "model_0000003"})
    assert run.start_iter() == 0
    run.wait_for(r"@@SAVED model_0000001")
    partial = run.wait_for(r"@@SAVE_PARTIAL .*model_0000003").split()[-1]
    assert os.path.getsize(partial) > 0  # half of the bytes are on disk
    run.kill()
    it, pths = inspect_output(out)
    assert (it, pths) == (1, ["model_0000001.pth"])
    assert os.path.exists(partial)  # the orphaned temporary file, never under the final name

    # 2) Resume: starts at iteration 2, removes the orphan; kill it during step 4 (after
    #    model_0000003 was saved).
    run = start_run(data_root, out, max_iter, period, resume=True)
    assert run.start_iter() == 2
    run.wait_for(r"@@SAVED model_0000003")
    run.wait_for(r"@@STEP 4")
    run.kill()
    assert not os.path.exists(partial)
    assert "incomplete temporary file" in run.text()
    it, pths = inspect_output(out)
    assert (it, pths) == (3, ["model_0000001.pth", "model_0000003.pth"])

    # 3) Kill after model_0000005.pth is complete but before last_checkpoint names it.
    run = start_run(data_root, out, max_iter, period, resume=True,
                   env={"M2F_TEST_SLOW_TAG": "60"})
    assert run.start_iter() == 4
    run.wait_for(r"@@TAG_PENDING model_0000005")
    run.kill()
    it, pths = inspect_output(out)
    assert it == 3 and "model_0000005.pth" in pths

    # 4) Resume; kill while model_final.pth is half written (model_0000005.pth is tagged).
    run = start_run(data_root, out, max_iter, period, resume=True,
                    env={"M2F_TEST_SLOW_SAVE": "60", "M2F_TEST_SLOW_SAVE_NAME": "model_final"})
    assert run.start_iter() == 4
    run.wait_for(r"@@SAVE_PARTIAL .*model_final")
    run.kill()
    it, pths = inspect_output(out)
    assert it == 5 and "model_final.pth" not in pths

    # 5) Resume: nothing left to train, the missing model_final.pth is written.
    run = start_run(data_root, out, max_iter, period, resume=True)
    assert run.start_iter() == 6
    assert run.finish() == 0, run.text()[-3000:]
    it, pths = inspect_output(out)
    assert it == max_iter - 1 and "model_final.pth" in pths
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    ref = torch.load(os.path.join(out, "model_0000005.pth"), weights_only=True)
    for k, v in ref["model"].items():
        assert torch.equal(final["model"][k], v), k
    assert all(torch.isfinite(v).all() for v in final["model"].values()
               if v.is_floating_point())
    assert re.search(r"Loading from .*model_0000005\.pth", run.text())
