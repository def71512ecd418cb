"""Run ``train_net.py`` in this process with test-only instrumentation (used by kill tests).

    python tests/engine/train_launcher.py <train_net.py args...>

Environment (all optional, test-only; nothing here is imported by the package):
  M2F_TEST_SLOW_SAVE=SECONDS  each torch.save into a file writes half of the bytes, flushes,
                              prints "@@SAVE_PARTIAL <path>" and sleeps SECONDS before writing
                              the rest, so a SIGKILL can land in the middle of a save.
  M2F_TEST_SLOW_SAVE_NAME=S   only saves whose temporary file name contains S are slowed.
  M2F_TEST_SLOW_TAG=SECONDS   sleep before last_checkpoint is rewritten, after the checkpoint file
                              is complete ("@@TAG_PENDING <name>").
Always printed: "@@STEP <iter>" before each training step, "@@SAVED <name>" after each save.
"""
import io
import os
import runpy
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def _say(msg):
    print(msg, flush=True)


def _install():
    from detectron2.engine import SimpleTrainer

    from mask2former.checkpoint import Mask2FormerCheckpointer

    slow_save = float(os.environ.get("M2F_TEST_SLOW_SAVE", "0") or 0)
    slow_tag = float(os.environ.get("M2F_TEST_SLOW_TAG", "0") or 0)

    if slow_save > 0:
        real_save = torch.save

        only = os.environ.get("M2F_TEST_SLOW_SAVE_NAME", "")

        def save(obj, f, *args, **kwargs):
            name = getattr(f, "name", "")
            if isinstance(name, int):  # os.fdopen() file: resolve the path of the descriptor
                name = os.readlink(f"/proc/self/fd/{name}")
            if not hasattr(f, "write") or not isinstance(name, str) or only not in name:
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            _say(f"@@SAVE_PARTIAL {name}")
            time.sleep(slow_save)
            f.write(data[len(data) // 2:])

        torch.save = save

    orig_save = Mask2FormerCheckpointer.save

    def ck_save(self, name, **kwargs):
        orig_save(self, name, **kwargs)
        _say(f"@@SAVED {name}")

    Mask2FormerCheckpointer.save = ck_save

    if slow_tag > 0:
        orig_tag = Mask2FormerCheckpointer.tag_last_checkpoint

        def tag(self, basename):
            _say(f"@@TAG_PENDING {basename}")
            time.sleep(slow_tag)
            orig_tag(self, basename)

        Mask2FormerCheckpointer.tag_last_checkpoint = tag

    orig_step = SimpleTrainer.run_step

    def run_step(self):
        _say(f"@@STEP {self.iter}")
        orig_step(self)

    SimpleTrainer.run_step = run_step


if __name__ == "__main__":
    torch.set_num_threads(1)
    _install()
    sys.argv = [os.path.join(ROOT, "train_net.py")] + sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
