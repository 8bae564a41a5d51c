import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def synthetic_cache(tmp_path_factory):
    """Generated datasets built by the tests go to a temporary cache, not data/cache."""
    os.environ["SEGABL_CACHE"] = str(tmp_path_factory.mktemp("synthetic_cache"))
    yield
