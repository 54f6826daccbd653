"""Run folders: writes that concurrent processes cannot tear, one trainer per folder, and
clear errors for folders that cannot be used (unreadable, of unknown origin, disk full)."""
import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers import checkpoints

REPO = Path(__file__).resolve().parent.parent
CONFIG = {"model": "mnist-vae", "epochs": 1}


def test_a_write_during_another_write_to_the_same_file_tears_neither(tmp_path):
    path = tmp_path / "checkpoint.pt"

    def write_while_another_process_writes(tmp):
        tmp.write_text("first")
        checkpoints.atomic_write(path, lambda other: other.write_text("second"))  # a concurrent save completes

    checkpoints.atomic_write(path, write_while_another_process_writes)
    assert path.read_text() == "first", "each write must rename its own complete file"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file may be left behind"


def _hold_lock(folder: Path) -> subprocess.Popen:
    """A second process that takes the folder's lock, says so, then waits to be killed."""
    code = textwrap.dedent(f"""
        import time
        from helpers import checkpoints
        with checkpoints.lock({str(folder)!r}):
            print("held", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_told_the_run_is_in_use_and_by_whom(tmp_path):
    holder = _hold_lock(tmp_path / "run")
    try:
        with pytest.raises(checkpoints.RunInProgressError, match=f"pid {holder.pid}"):
            with checkpoints.lock(tmp_path / "run"):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_does_not_block_the_next_run(tmp_path):
    holder = _hold_lock(tmp_path / "run")
    holder.send_signal(signal.SIGKILL)  # no chance to release anything
    holder.wait()
    with checkpoints.lock(tmp_path / "run"):
        assert (tmp_path / "run" / checkpoints.LOCK).read_text() == str(os.getpid())


def test_taking_the_lock_removes_temporaries_of_interrupted_writes(tmp_path):
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / ".checkpoint.pt.12345-abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    with checkpoints.lock(tmp_path / "run"):
        assert not stale.exists()


def test_a_checkpoint_without_its_config_is_refused(tmp_path):
    checkpoints.save(tmp_path, CONFIG, {"epoch": 1})
    (tmp_path / checkpoints.CONFIG).unlink()
    expected = re.escape(f"{tmp_path / checkpoints.CHECKPOINT} has no config.json")
    with pytest.raises(checkpoints.CheckpointError, match=expected):
        checkpoints.check_folder(tmp_path, CONFIG)


@pytest.mark.parametrize("text", ['{"model": "mnist-vae", "epo', "[1, 2]"])
def test_an_unreadable_config_names_the_file_and_how_to_start_over(tmp_path, text):
    (tmp_path / checkpoints.CONFIG).write_text(text)
    expected = f"{re.escape(str(tmp_path / checkpoints.CONFIG))}.*Delete {re.escape(str(tmp_path))}"
    with pytest.raises(checkpoints.CheckpointError, match=expected):
        checkpoints.check_folder(tmp_path, CONFIG)


def test_a_truncated_checkpoint_names_the_file_and_how_to_start_over(tmp_path):
    checkpoints.save(tmp_path, CONFIG, {"epoch": 1, "weights": torch.randn(1000)})
    path = tmp_path / checkpoints.CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoints.CheckpointError, match=f"{re.escape(str(path))} cannot be read.*resume=False"):
        checkpoints.load(tmp_path)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_where(tmp_path, monkeypatch):
    checkpoints.save(tmp_path, CONFIG, {"epoch": 1})

    def disk_full(state, f):
        f.write(b"the first bytes of epoch 2")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=re.escape(f"disk holding {tmp_path} is full")) as caught:
        checkpoints.save(tmp_path, CONFIG, {"epoch": 2})
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert checkpoints.load(tmp_path) == {"epoch": 1}, "the previous checkpoint must be intact"
    assert not list(tmp_path.glob(".*.tmp")), "the half-written file must be removed"
