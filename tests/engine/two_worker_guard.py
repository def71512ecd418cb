"""Two CPU workers (Detectron2's ``launch``, gloo, DDP) train the toy model; only worker 0
gets a NaN loss, at iteration 2. Each worker writes what happened to ``<out>/rank<r>.json``.

    python tests/engine/two_worker_guard.py OUT_DIR {stop,skip} PORT

Gradient checking is off, so worker 1 can only learn of the bad step through the guard's
all-reduced decision (with DDP its gradients are NaN too, and stepping on them would make its
weights NaN and different from worker 0's).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository
sys.path.insert(0, os.path.dirname(HERE))  # tests/ (helpers)
sys.path.insert(0, HERE)


def worker(out_dir, action):
    import torch
    from detectron2.utils import comm

    from helpers import leave_worker
    from mask2former.engine import NonFiniteLossError
    from toy_trainer import make_toy_trainer

    rank = comm.get_rank()
    trainer = make_toy_trainer(
        out_dir, max_iter=5, period=100, bad_at=(2,) if rank == 0 else (), action=action,
        check_gradients=False,
    )
    trainer.resume_or_load(resume=False)
    weights = []
    run_step = trainer.run_step

    def recording_step():
        weights.append([p.detach().clone() for p in trainer.model.parameters()])
        run_step()

    trainer.run_step = recording_step
    result = {"rank": rank, "error": None}
    try:
        trainer.train()
    except NonFiniteLossError as e:
        result["error"] = str(e)
    weights.append([p.detach().clone() for p in trainer.model.parameters()])
    result["changed"] = [
        any(not torch.equal(a, b) for a, b in zip(w0, w1)) for w0, w1 in zip(weights, weights[1:])
    ]
    result["finite"] = all(bool(torch.isfinite(p).all()) for p in weights[-1])
    result["final"] = [p.flatten().tolist() for p in weights[-1]]
    guard = [h for h in trainer._hooks if type(h).__name__ == "NonFiniteLossGuard"][0]
    result["skipped_steps"] = guard.skipped_steps
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    leave_worker()


if __name__ == "__main__":
    from detectron2.engine import launch

    out, action, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    launch(worker, 2, dist_url=f"tcp://127.0.0.1:{port}", args=(out, action))
