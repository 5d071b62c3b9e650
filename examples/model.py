"""The model and data of the README's shell walk-through.

    python examples/model.py d.npz                      # writes the data: x, y, x_val, y_val
    pockengine import examples/model.py:factory -o model/
    pockengine search model/ --data d.npz --budget-memory 2MB -o scheme.pock
    pockengine compile model/ --scheme scheme.pock --target c -o build/
    pockengine train build/ --data d.npz --steps 100 -o finetuned/

`factory()` returns `(module, example_args)`: the form `pockengine import module.py:factory`
takes. The example's batch size (16) is the compiled batch size. The task is four classes of
8×8 single-channel images, each class a bright quadrant under noise: a CNN learns it in a few
dozen steps, so the walk-through shows the loss going down in seconds. The .npz holds the one
format `pockengine train` and `pockengine search` read (pockengine/data.py).
"""

from __future__ import annotations

import sys

import numpy as np

BATCH, CLASSES, SIZE = 16, 4, 8


class SmallCNN:  # a factory for the torch module, so that importing this file does not need torch
    @staticmethod
    def build():
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, CLASSES),
        ).eval()


def factory():
    """(module, example_args) for `pockengine import examples/model.py:factory`."""
    import torch

    return SmallCNN.build(), (torch.zeros(BATCH, 1, SIZE, SIZE),)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images (float32, N×1×8×8) and their labels (int64): class c lights up quadrant c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n).astype(np.int64)
    x = rng.standard_normal((n, 1, SIZE, SIZE)).astype(np.float32) * 0.5
    h = SIZE // 2
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, 0, r * h:(r + 1) * h, col * h:(col + 1) * h] += 1.5
    return x, y


def write_data(path: str, n_train: int = 8 * BATCH, n_val: int = 4 * BATCH) -> None:
    """The .npz of the walk-through: x, y (training) and x_val, y_val (held out)."""
    x, y = make_data(n_train, 0)
    xv, yv = make_data(n_val, 1)
    np.savez(path, x=x, y=y, x_val=xv, y_val=yv)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/model.py OUT.npz")
    write_data(sys.argv[1])
    print(f"wrote {sys.argv[1]}: x, y ({8 * BATCH} samples), x_val, y_val ({4 * BATCH} samples)")
