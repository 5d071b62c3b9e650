"""The search space: candidates and the schemes they stand for, resolved by the scheme pass."""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "passes"))
import sparse_models as M
from pockengine.passes.scheme import Scheme
from pockengine.search import Candidate, Space
from pockengine.search.contribution import fingerprint


@pytest.fixture(scope="module")
def cnn():
    return M.cnn(batch=4)


def trained(program, text):
    return {p: u for p, u in Scheme.parse(text).resolve(program).items() if u.mode != "frozen"}


def test_backbone_is_every_layer_but_the_head(cnn):
    space = Space(cnn)
    assert [lay.name for lay in space.layers] == ["features.0.0", "features.1.0", "features.2", "features.3.0",
                                                  "classifier"]
    assert [lay.name for lay in space.backbone] == ["features.0.0", "features.1.0", "features.2", "features.3.0"]
    assert space.base == "classifier: full"
    # channels on the ratio axis: conv input channels, the depthwise conv's channels
    assert space.channels == {0: 3, 1: 8, 2: 8, 3: 12}


def test_candidates_merge_ratios_that_keep_the_same_channels(cnn):
    space = Space(cnn)
    cands = space.candidates()
    assert cands[0] == Candidate("base")
    assert [c.k for c in cands if c.kind == "bias"] == [1, 2, 3, 4]
    ratios = {i: [c.ratio for c in cands if c.kind == "weight" and c.layer == i] for i in range(4)}
    # 3 input channels: 1/8 and 1/4 both keep ceil(r*3) = 1 channel, 1/2 keeps 2, 1 keeps 3
    assert ratios[0] == [Fraction(1, 4), Fraction(1, 2), Fraction(1)]
    assert ratios[1] == ratios[2] == [Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1)]
    restricted = space.candidates([Fraction(1)], bias_ks=[2, 99], layers=[3, 42])
    assert [c.key for c in restricted] == ["base", "bias-last2", "weight-L3-r1_1"]


def test_candidate_schemes_resolve_to_what_they_promise(cnn):
    space = Space(cnn)
    head = {"classifier.weight", "classifier.bias"}
    assert set(trained(cnn, space.candidate_scheme(Candidate("base")))) == head
    # bias of the last 2 backbone layers: features.2's bias and features.3's BN shift
    got = trained(cnn, space.candidate_scheme(Candidate("bias", k=2)))
    assert set(got) == head | {"features.2.bias", "features.3.1.bias"}
    # the weight of layer 2 alone at 1/4: the first ceil(8/4) = 2 input channels
    got = trained(cnn, space.candidate_scheme(Candidate("weight", layer=2, ratio=Fraction(1, 4))))
    assert set(got) == head | {"features.2.weight"}
    u = got["features.2.weight"]
    assert (u.mode, u.axis, u.channels) == ("ratio", 1, math.ceil(8 / 4))
    # a combination, with a comment; the depthwise conv's ratio slices its channel axis
    text = space.scheme(k=1, weights={1: Fraction(1, 2), 3: Fraction(1)}, comment="two\nlines")
    assert text.startswith("# two\n# lines\ndefault frozen\n")
    got = trained(cnn, text)
    assert set(got) == head | {"features.3.1.bias", "features.1.0.weight", "features.3.0.weight"}
    assert (got["features.1.0.weight"].axis, got["features.1.0.weight"].channels) == (0, 4)
    assert got["features.3.0.weight"].mode == "full"


def test_base_rules_can_be_given(cnn):
    space = Space(cnn, base="features.3*: full\nclassifier.*: full")
    assert [lay.name for lay in space.backbone] == ["features.0.0", "features.1.0", "features.2"]
    assert "features.3.0.weight" in trained(cnn, space.scheme(k=1))


def test_fingerprint_changes_with_weights_and_data(cnn):
    import numpy as np

    x = np.zeros(3)
    a = fingerprint(cnn, x)
    other = cnn.copy()
    other.weights["classifier.bias"] = other.weights["classifier.bias"] + 1
    assert a == fingerprint(cnn.copy(), x) != fingerprint(other, x)
    assert a != fingerprint(cnn, x + 1)
