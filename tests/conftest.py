import os

import pytest

from benchmarks import train_step
from helpers import STUB_REFERENCE_MS


@pytest.fixture(autouse=True, scope="session")
def synthetic_cache(tmp_path_factory):
    """Generated datasets built by the tests go to a temporary cache, not data/cache."""
    os.environ["SEGABL_CACHE"] = str(tmp_path_factory.mktemp("synthetic_cache"))
    yield


@pytest.fixture(autouse=True)
def stub_reference_step(monkeypatch):
    """The reference step run_all times at its start (a few seconds of real training steps) is a fixed
    number in the tests that run run_all in this process (helpers.py keeps the real one)."""
    monkeypatch.setattr(train_step, "reference_step_ms", lambda *args, **kwargs: STUB_REFERENCE_MS)
