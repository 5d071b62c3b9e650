"""Experiment 2: transfer learning on a real image set (Fashion-MNIST), MobileNetV2-w0.35.

    python -m pockengine.experiments images -o experiments_out/images

Data: Debian's dataset-fashion-mnist (data.fashion_mnist). Images are zero-padded 28 → 32
pixels and standardized. The network is pretrained in PyTorch (cached) on classes 0–4 of the
training file (T-shirt, trouser, pullover, dress, coat: 30,000 images), then fine-tuned with a
new 5-way head on classes 5–9 (sandal, shirt, sneaker, bag, ankle boot): `n_train` training and
`n_val` validation images drawn (seed 0) from the training file, and the test file's 5,000
images of those classes as the held-out test split. BatchNorm statistics stay frozen while
fine-tuning, as on a device.

The network is MobileNetV2 at width 0.35 (W1's width in benchmarks/workloads.py: 52 convs, the
standard inverted-residual table, last conv 1280 channels) on 1×32×32 inputs with a stride-1
stem (W1 takes 3×128×128; Fashion-MNIST is 28×28 grey, and 32×32 with a stride-1 stem keeps
the standard 1/16 down-sampling of the remaining stages).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..atomic import replaced_file
from . import data
from .protocol import COMPILED_FULL, Setup

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
# MobileNetV2's inverted-residual stages: expansion t, channels c, repeats n, first stride s
TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")


@dataclass(frozen=True)
class Config:
    width: float = 0.35
    stages: int = len(TABLE)
    batch: int = 32
    n_train: int = 3000
    n_val: int = 1000
    n_test: int | None = None  # None: all 5,000 test images of classes 5-9
    steps: int = 200  # 2.1 epochs of the training split
    # Adam; each row's lr is chosen from this grid on validation (seed 0, the first lr_steps steps)
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    lr_steps: int = 100
    lr: float = 1e-3  # the search's short runs (the middle of the grid)
    pretrain_epochs: int = 1
    pretrain_lr: float = 0.05
    pretrain_n: int | None = 12_000  # the first 12,000 of the 30,000 source images (None: all)
    budget_fraction: float = 1 / 4
    search_steps: int = 60
    search_bias_ks: tuple[int, ...] = (4, 8, 16, 26, 52)
    # weights of the last N backbone convs (of 52: the last five blocks and the final conv) are
    # candidates, each at 1/4 or all of its channels ("last 26 layers fully" won in session 1,
    # when only the last 2 were candidates)
    search_last_layers: int = 16
    search_ratios: tuple[str, ...] = ("1/4", "1")
    search_workers: int = 2

    @classmethod
    def tiny(cls) -> Config:
        return cls(width=0.35, stages=2, batch=4, n_train=16, n_val=8, n_test=8, steps=3, pretrain_epochs=1,
                   pretrain_n=64, search_steps=2, search_bias_ks=(2,), search_last_layers=1, search_ratios=("1",),
                   lr_grid=(3e-3,), lr_steps=2, search_workers=1)


def _divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


def mobilenet_v2(num_classes: int, width: float = 0.35, stages: int = len(TABLE)):
    """MobileNetV2 (Sandler et al.) for 1×32×32 inputs: stride-1 stem, the first `stages` rows
    of the standard table (all seven: 17 blocks, 52 convs)."""
    from torch import nn

    def cbr(cin, cout, k=1, s=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([nn.ReLU6()] if act else []))

    class Block(nn.Module):
        def __init__(self, cin, cout, s, t):
            super().__init__()
            hid = cin * t
            layers = [cbr(cin, hid)] if t != 1 else []
            self.conv = nn.Sequential(*layers, cbr(hid, hid, 3, s, hid), cbr(hid, cout, act=False))
            self.residual = s == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            cin = _divisible(32 * width)
            feats = [cbr(1, cin, 3, 1)]
            for t, c, n, s in TABLE[:stages]:
                cout = _divisible(c * width)
                for i in range(n):
                    feats.append(Block(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            feats.append(cbr(cin, 1280))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            return self.classifier(self.features(x).mean((2, 3)))

    return Net()


def prepare(x: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] → float32 [N, 1, 32, 32], zero-padded, standardized (Fashion-MNIST's
    training mean 0.286 and std 0.353 of the 28×28 pixels)."""
    out = np.zeros((len(x), 1, 32, 32), np.float32)
    out[:, 0, 2:30, 2:30] = (x.astype(np.float32) / 255.0 - 0.286) / 0.353
    return out


def pretrain(cfg: Config, x: np.ndarray, y: np.ndarray, cache: Path, log=print):
    """The source-task network, trained once per configuration (cached state dict)."""
    import torch
    import torch.nn.functional as F

    what = [asdict(cfg)[k] for k in ("width", "pretrain_epochs", "pretrain_lr", "pretrain_n")] + [len(x), 1]
    what += [cfg.stages] if cfg.stages != len(TABLE) else []
    key = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]
    path = cache / f"fashion-pretrain-{key}.pt"
    net = mobilenet_v2(len(SOURCE), cfg.width, cfg.stages)
    if path.is_file():
        saved = torch.load(path)
        net.load_state_dict(saved["model"])
        return net.eval(), saved["accuracy"]
    torch.manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.pretrain_lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    steps_per_epoch = len(xs) // 64
    total = cfg.pretrain_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.pretrain_lr, total_steps=max(total, 1))
    net.train()
    for epoch in range(cfg.pretrain_epochs):
        order = torch.randperm(len(xs))
        for i in range(steps_per_epoch):
            idx = order[i * 64:(i + 1) * 64]
            loss = F.cross_entropy(net(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        log(f"pretrain epoch {epoch + 1}/{cfg.pretrain_epochs}: loss {loss.item():.3f}")
    net.eval()
    with torch.no_grad():
        acc = float(np.mean([(net(xs[i:i + 500]).argmax(1) == ys[i:i + 500]).float().mean()
                             for i in range(0, len(xs), 500)]))
    with replaced_file(path) as tmp:  # pockengine.atomic: a killed run leaves no half-written cache
        torch.save({"model": net.state_dict(), "accuracy": acc}, tmp)
    return net, acc


def net_features(program) -> list[int]:
    """Indices of the program's `features.N` modules."""
    names = {int(n.split(".")[1]) for n in program.weights if n.startswith("features.")}
    return sorted(names)


def with_head(net, seed: int):
    import copy

    import torch
    from torch import nn

    m = copy.deepcopy(net)
    torch.manual_seed(1000 + seed)
    m.classifier = nn.Linear(m.classifier.in_features, len(TARGET))
    return m.eval()


def schemes(cfg: Config):
    def build(setup: Setup, program, full_memory: int, out: Path, log) -> dict:
        import pockengine
        from pockengine.search import Budget, Recipe
        from pockengine.search.contribution import Space
        from pockengine.search.finetune import plan_scheme
        from pockengine.search.validate import last_k_full, random_scheme

        space = Space(program)
        weights = [lay.index for lay in space.backbone if lay.index in space.weight_of][-cfg.search_last_layers:]
        budget = Budget(memory=int(full_memory * cfg.budget_fraction))
        recipe = Recipe(steps=cfg.search_steps, optimizer=setup.optimizer, lr=cfg.lr)
        log(f"search under {budget}, weights of layers {weights}, bias k in {cfg.search_bias_ks}")
        _, report = pockengine.search(
            program, setup.train, setup.val, budget=budget, recipe=recipe,
            ratios=[Fraction(r) for r in cfg.search_ratios], bias_ks=cfg.search_bias_ks, layers=weights,
            workers=cfg.search_workers, cache_dir=out / "cache" / "search", progress=False, verify=False)
        report.save(out / "search")
        plan_of = lambda text: plan_scheme(program, text, recipe)
        lastk, k = last_k_full(space, budget, plan_of)
        rand = random_scheme(space, report.measurements, budget, plan_of, 0)
        n = len(space.backbone)
        last = len(net_features(program)) - 1
        blocks = f"features.{last - 2}.*, features.{last - 1}.*, features.{last}.*"  # last two blocks, final conv
        setup.info.update(budget=budget.memory, last_k=k, backbone_layers=n)
        return {
            COMPILED_FULL: None,
            "searched scheme (≤ 1/4 of full BP)": report.scheme_text,
            f"last {k} layers fully, same budget": lastk,
            "random scheme, same budget": rand,
            "biases only (+ head)": "default frozen\n*: bias\nclassifier.*: full\n",
            "last 2 blocks + final conv fully (+ head)": f"default frozen\n{blocks}: full\nclassifier.*: full\n",
            "head only": "default frozen\nclassifier.*: full\n",
        }

    return build


def setup(cfg: Config = Config(), cache: Path | None = None, log=print) -> Setup:
    cache = Path(cache) if cache else data.cache_root()
    x, y = data.fashion_mnist("train")
    xt, yt = data.fashion_mnist("test")
    src = np.flatnonzero(np.isin(y, SOURCE))
    if cfg.pretrain_n:
        src = src[:cfg.pretrain_n]
    net, acc = pretrain(cfg, prepare(x[src]), y[src], cache, log)
    tgt = np.random.default_rng(0).permutation(np.flatnonzero(np.isin(y, TARGET)))
    tr, va = np.sort(tgt[:cfg.n_train]), np.sort(tgt[cfg.n_train:cfg.n_train + cfg.n_val])
    te = np.flatnonzero(np.isin(yt, TARGET))[:cfg.n_test]
    shift = TARGET[0]
    info = {"pretrain_accuracy": acc, "config": asdict(cfg), "n_test": len(te)}
    return Setup("images", lambda seed: with_head(net, seed), (prepare(x[tr]), y[tr] - shift),
                 (prepare(x[va]), y[va] - shift), (prepare(xt[te]), yt[te] - shift), cfg.batch, cfg.steps,
                 "cross_entropy", "adam", {"lr": cfg.lr}, "accuracy", schemes(cfg), info=info,
                 lr_grid=cfg.lr_grid, lr_steps=cfg.lr_steps)
