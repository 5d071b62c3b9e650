"""Optimizer and BatchNorm hyper-parameters: one check for every way they come in.

`check_hyperparameters` is what the `autodiff` pass options (`autodiff{lr=0.1 momentum=0.9}`),
`pockengine.compile(..., lr=...)` and `pockengine compile --lr ...` all go through, so a value
refused in one is refused in all. The ranges are torch.optim's (and nn.BatchNorm's), tightened
where a value can only diverge or is certainly a typo: every value must be a finite number;

    lr, weight_decay, eps     >= 0
    momentum, beta1, beta2    in [0, 1)       (1 or more never forgets: the step grows without bound)
    dampening, bn_momentum    in [0, 1]
"""

from __future__ import annotations

import math

from ..errors import UserError

# name -> (low, high, high included); every value must also be finite
RANGES: dict[str, tuple[float, float, bool]] = {
    "lr": (0.0, math.inf, False),
    "weight_decay": (0.0, math.inf, False),
    "eps": (0.0, math.inf, False),
    "momentum": (0.0, 1.0, False),
    "beta1": (0.0, 1.0, False),
    "beta2": (0.0, 1.0, False),
    "dampening": (0.0, 1.0, True),
    "bn_momentum": (0.0, 1.0, True),
}


class HyperParameterError(UserError, ValueError):
    """A hyper-parameter that is not a number or lies outside its range."""


def _range_text(lo: float, hi: float, closed: bool) -> str:
    if hi == math.inf:
        return f">= {lo:g}"
    return f"in [{lo:g}, {hi:g}{']' if closed else ')'}"


def check_hyperparameter(name: str, value) -> float:
    """`value` as a float, or HyperParameterError saying the valid range."""
    if isinstance(value, bool):
        raise HyperParameterError(f"{name}={value}: a number is expected")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise HyperParameterError(f"{name}={value}: not a number") from None
    if name not in RANGES:
        return x
    lo, hi, closed = RANGES[name]
    if not math.isfinite(x) or x < lo or x > hi or (x == hi and not closed):
        raise HyperParameterError(f"{name}={value}: must be a finite number {_range_text(lo, hi, closed)}")
    return x


# options that name a mode rather than a number (autodiff's batch_norm: "frozen" running
# statistics, the default, or "batch" statistics with running-statistic updates, train mode)
CHOICES: dict[str, tuple[str, ...]] = {"batch_norm": ("frozen", "batch")}


def check_hyperparameters(**values) -> dict[str, float | str]:
    """Every named value checked (check_hyperparameter, or one of CHOICES); numbers as floats."""
    out: dict[str, float | str] = {}
    for k, v in values.items():
        if k in CHOICES and v not in CHOICES[k]:
            raise HyperParameterError(f"{k}={v}: must be one of {', '.join(CHOICES[k])}")
        out[k] = v if k in CHOICES else check_hyperparameter(k, v)
    return out


__all__ = ["CHOICES", "RANGES", "HyperParameterError", "check_hyperparameter", "check_hyperparameters"]
