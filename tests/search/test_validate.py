"""The validation script's pieces: the baselines under a budget and the checks of the table
(the full run is `python -m pockengine.search.validate`, ~8 min; docs/search.md has its table)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "passes"))
import sparse_models as M
from pockengine.search import Budget, Plan, Space
from pockengine.search.validate import Row, last_k_full, render


def test_last_k_full_is_the_deepest_that_fits():
    space = Space(M.cnn(batch=2))  # backbone: 4 layers
    seen = []

    def plan_of(text):  # 10 bytes per fully trained backbone layer
        seen.append(text)
        first = int(re.search(r"layers? (\d+)", text).group(1))
        return Plan(100 + 10 * (4 - first), 0)

    text, k = last_k_full(space, Budget(memory=125), plan_of)
    assert k == 2 and "layers 2..3: full" in text and text.rstrip().endswith("classifier: full")
    assert len(seen) == 3  # tried k = 4, 3, 2


def rows(full, searched, lastk, rand, searched_memory=240):
    return [Row("full", None, 1000, 0, [full] * 3), Row("base", "", 100, 0, [0.5] * 3),
            Row("searched", "", searched_memory, 0, [searched] * 3), Row("last k", "", 240, 0, [lastk] * 3),
            Row("random", "", 240, 0, [rand] * 3)]


def test_render_checks_each_claim():
    text, ok = render(rows(0.963, 0.955, 0.95, 0.94), Budget(memory=250), 1000)
    assert ok and text.count("- [x]") == 4 and "| searched | 240 B | 0.24 |" in text
    _, ok = render(rows(0.963, 0.95, 0.94, 0.93), Budget(memory=250), 1000)  # 1.3 points below full
    assert not ok
    _, ok = render(rows(0.963, 0.955, 0.956, 0.94), Budget(memory=250), 1000)  # last-k is better
    assert not ok
    text, ok = render(rows(0.963, 0.955, 0.95, 0.94, searched_memory=260), Budget(memory=250), 1000)
    assert not ok and "- [ ] searched plans" in text
