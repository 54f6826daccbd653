"""BOOK_DEVICE: a device this machine has, or an error at the banner that names the variable."""
import pytest
import torch

from helpers import profile, run_banner


def test_cuda_requested_without_cuda_fails_at_the_banner_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("BOOK_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="BOOK_DEVICE='cuda'.*no cuda device"):
        run_banner.banner()
    assert capsys.readouterr().out == "", "no banner may claim a device the machine lacks"


def test_a_cuda_index_beyond_the_machines_devices_is_refused(monkeypatch):
    monkeypatch.setenv("BOOK_DEVICE", "cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="BOOK_DEVICE='cuda:3'.*1 CUDA device"):
        profile.device()


def test_a_misspelled_device_names_the_variable(monkeypatch):
    monkeypatch.setenv("BOOK_DEVICE", "gpu")
    with pytest.raises(ValueError, match="BOOK_DEVICE='gpu' is not a device"):
        profile.device()


def test_cpu_is_always_available(monkeypatch):
    monkeypatch.setenv("BOOK_DEVICE", "cpu")
    assert profile.device() == torch.device("cpu")
