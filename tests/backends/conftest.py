import os
import sys
from pathlib import Path

import pytest

# lets the tests here `import programs` (pytest runs with --import-mode=importlib)
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "passes"))


@pytest.fixture(autouse=True, scope="session")
def _library_cache(tmp_path_factory):
    """Built libraries go to a fresh cache per session unless POCKENGINE_CACHE is set."""
    if "POCKENGINE_CACHE" not in os.environ:
        os.environ["POCKENGINE_CACHE"] = str(tmp_path_factory.mktemp("pockengine-cache"))
    yield
