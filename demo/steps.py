"""Numbered demo steps: a tqdm bar while a step runs, one result line when it ends.

    steps = Steps(total=6)
    with steps.step("fine-tune (compiled sparse)", total=200) as bar:
        for ...: bar.update(); bar.set_postfix(loss=...)
        bar.result = "loss 2.30 → 0.41, 1.2 ms/step"

prints `[3/6] fine-tune (compiled sparse) ... loss 2.30 → 0.41, 1.2 ms/step (4.1 s)` on stdout.
Bars go to stderr and only on a terminal (tqdm's `disable=None`), so logs and tests stay clean.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

try:
    from tqdm import tqdm
except ModuleNotFoundError:  # bars are optional (`pip install tqdm`): the result lines stay the same
    tqdm = None


class _NoBar:
    def __init__(self, **_):
        pass

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def close(self):
        pass


class Steps:
    def __init__(self, total: int, out=None, bars: bool | None = None):
        self.total, self.done = total, 0
        self.out = out if out is not None else sys.stdout
        self.bars = bars  # None: on a terminal only
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, title: str, total: int | None = None, unit: str = "it"):
        self.done += 1
        head = f"[{self.done}/{self.total}] {title}"
        bar = (tqdm or _NoBar)(total=total, desc=head, unit=unit, leave=False, file=sys.stderr,
                   disable=None if self.bars is None else not self.bars, dynamic_ncols=True)
        bar.result = ""
        start = time.perf_counter()
        try:
            yield bar
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        self.timings[title] = seconds
        print(f"{head} ... {bar.result} ({seconds:.1f} s)", file=self.out, flush=True)
