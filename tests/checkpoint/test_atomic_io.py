import os
import stat

import pytest

from mask2former.checkpoint.atomic_io import atomic_open, atomic_write_bytes


def test_atomic_write_replaces_and_keeps_default_permissions(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(str(p), b"one")
    atomic_write_bytes(str(p), b"two")
    assert p.read_bytes() == b"two"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    assert os.listdir(tmp_path) == ["f.bin"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(str(p)) as f:
            f.write(b"partial")
            raise RuntimeError("disk full")
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
