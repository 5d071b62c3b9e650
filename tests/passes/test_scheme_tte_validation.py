"""Scheme.from_tte refuses ratios outside [0, 1] (issue 12: 2, inf, nan and -1 silently became
ratio 1 or nothing) and bias counts that are not counts; valid configs keep TTE's meaning."""

import math

import pytest
from pockengine.passes.scheme import Scheme, SchemeError


@pytest.mark.parametrize("ratio", [2, 1.0001, math.inf, -math.inf, math.nan, -1, -0.5])
def test_bad_ratios_are_refused(ratio):
    with pytest.raises(SchemeError, match="outside \\[0, 1\\]"):
        Scheme.from_tte(2, 3, ratio)
    with pytest.raises(SchemeError, match="for conv 4"):
        Scheme.from_tte(2, [3, 4], [0.5, ratio])


@pytest.mark.parametrize("n", [-1, 2.5, "x", None])
def test_bad_bias_counts_are_refused(n):
    with pytest.raises(SchemeError, match="n_bias_update"):
        Scheme.from_tte(n)


def test_valid_configs_keep_their_meaning():
    text = lambda s: s.to_text().splitlines()[1:]
    assert text(Scheme.from_tte(2, 3, 0.25)) == ["last 2 conv layers: bias", "conv layer 3: ratio 1/4",
                                                  "last 1 linear layers: full"]
    assert "conv layer 3: ratio 1" in text(Scheme.from_tte(2, 3, 1))
    assert "conv layer 3: ratio 1" in text(Scheme.from_tte(2, 3, None))  # None: all channels
    assert not any("conv layer 3" in r for r in text(Scheme.from_tte(2, 3, 0)))  # 0: bias only, as in TTE
    assert text(Scheme.from_tte("all"))[0] == "*: bias"
    assert text(Scheme.from_tte("3"))[0] == "last 3 conv layers: bias"
