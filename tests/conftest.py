"""Unit tests run in the quick profile: with the real data when DGM_DATA points at it,
on the synthetic stand-in otherwise (a fresh offline clone). Set before helpers is imported."""
import os

import pytest

os.environ.setdefault("BOOK_PROFILE", "quick")


@pytest.fixture
def fid_weights():
    """The path of the FID Inception weights, for tests that run the network. Where they cannot
    be had (offline, no copy) the test is skipped with the message that says how to get them;
    in CI (CI=true) it fails instead, so CI never passes without FID."""
    from helpers import fid

    try:
        return fid.require_weights()
    except fid.WeightsNotFoundError as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}\nIn CI (CI=true) the FID tests must run: provide the weights.", pytrace=False)
        pytest.skip(f"FID weights missing, not at {fid.weights_path()} and not downloadable; "
                    "`python -m helpers.fid` says how to get them.")


@pytest.fixture
def own_checkpoints(tmp_path, monkeypatch):
    """Run folders go to this test's own temporary directory, never the repository's checkpoints/
    (a test module takes it for every test with ``pytestmark = pytest.mark.usefixtures("own_checkpoints")``)."""
    monkeypatch.setenv("DGM_CHECKPOINTS", str(tmp_path / "checkpoints"))
