import os

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _library_cache(tmp_path_factory):
    """Built libraries and search caches go to a fresh directory unless POCKENGINE_CACHE is set."""
    if "POCKENGINE_CACHE" not in os.environ:
        os.environ["POCKENGINE_CACHE"] = str(tmp_path_factory.mktemp("pockengine-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_task():
    """The digits task's shape at toy size: an untrained width-4 TinyMobileNetV2 (5 classes),
    batch 8, random 14×14 images whose label is the quadrant sum's argmax (learnable)."""
    import pockengine
    import torch
    from pockengine.search.task import Task, TinyMobileNetV2

    torch.manual_seed(0)
    net = TinyMobileNetV2(5, width=4).eval()
    rng = np.random.default_rng(0)

    def split(n):
        x = rng.standard_normal((n, 1, 14, 14)).astype(np.float32)
        y = (x.reshape(n, -1)[:, :5].argmax(1)).astype(np.int64)
        return x, y

    program = pockengine.from_torch(net, (torch.zeros(8, 1, 14, 14),))
    return Task(program, split(64), split(32), split(32), batch=8, pretrain_accuracy=0.0)
