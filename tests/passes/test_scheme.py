"""The sparse update scheme language: syntax, errors, JSON/TTE forms, resolution on a model."""

import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import sparse_models as M
from pockengine.passes.scheme import Rule, Scheme, SchemeError, Selector, Update
from pockengine.passes.scheme_layers import find_layers

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def cnn():
    return M.cnn()


def test_layers_group_conv_with_its_norm_in_forward_order(cnn):
    layers = find_layers(cnn.module)
    assert [(lay.index, lay.name, lay.kind) for lay in layers] == [
        (0, "features.0.0", "conv"), (1, "features.1.0", "conv"), (2, "features.2", "conv"),
        (3, "features.3.0", "conv"), (4, "classifier", "linear")]
    assert layers[0].params == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias",
                                "features.0.1.running_mean", "features.0.1.running_var"]
    assert layers[2].params == ["features.2.weight", "features.2.bias"]


def test_full_syntax_parses():
    s = Scheme.parse("""
        # comment
        default full   // another comment
        features.1*.conv.*, "last": frozen;
        last 3 layers: bias
        last 2 conv layers: bias
        layers 26..51: ratio 1/4
        linear layer 0: ratio 0.25
        conv layers 1..2: ratio 1
        0.weight: full
    """)
    assert s.default == "full"
    assert [r.mode for r in s.rules] == ["frozen", "bias", "bias", "ratio", "ratio", "ratio", "full"]
    assert s.rules[0].selectors == (Selector(glob="features.1*.conv.*"), Selector(glob="last"))
    assert s.rules[2].selectors == (Selector(last=2, kind="conv"),)
    assert s.rules[3].selectors == (Selector(lo=26, hi=51),) and s.rules[3].ratio == Fraction(1, 4)
    assert s.rules[4].selectors == (Selector(lo=0, hi=0, kind="linear"),) and s.rules[4].ratio == Fraction(1, 4)
    assert s.rules[5].ratio == 1
    assert s.rules[6].selectors == (Selector(glob="0.weight"),)


@pytest.mark.parametrize("text, where, message", [
    ("default frozen\nfeatures.*: fulll", "2:13", "unexpected 'fulll', expected 'bias' or 'frozen' or 'full' or 'ratio'"),
    ("layers 3..: full", "1:11", "unexpected ':', expected an integer"),
    ("x: ratio 1/", "1:12", "unexpected end of scheme, expected an integer"),
    ("a.b full", "1:5", "unexpected 'full', expected ':' or ','"),
    ("default bias", "1:9", "unexpected 'bias', expected 'frozen' or 'full'"),
    ("last 3: full", "1:7", "unexpected ':', expected a layer kind or 'layers'"),
    ("x ~ full", "1:3", "unexpected '~'"),
    ("classifier.*: ratio 3/2", "1:21", "ratio 3/2 is outside (0, 1]"),
    ("\n\nclassifier.*: ratio 0", "3:21", "ratio 0 is outside (0, 1]"),
    ("classifier.*: ratio 1/0", "1:23", "ratio denominator is zero"),
    ("layers 5..3: full", "1:8", "empty layer range 5..3"),
])
def test_syntax_errors_are_located_and_quote_the_token(text, where, message):
    with pytest.raises(SchemeError) as e:
        Scheme.parse(text, "s.pock")
    first = str(e.value).splitlines()[0]
    assert first.startswith(f"s.pock:{where}: {message}"), first
    line, col = map(int, where.split(":"))
    source, caret = str(e.value).splitlines()[1:3]
    assert source.strip() == text.splitlines()[line - 1].strip()
    assert caret.index("^") - 2 == col - 1  # the caret sits under the column named


@pytest.mark.parametrize("text, where, message", [
    ("features.9*: full", "1:1", "`features.9*` matches no parameter or layer name"),
    ("layers 2..9: full", "1:1", "`layers 2..9` is out of range: the model has 5 layers (0..4)"),
    ("last 2 linear layers: full", "1:1", "`last 2 linear layers`: the model has 1 linear layers"),
    ("default full\nfeatures.0.1.*: ratio 1/2", "2:1", "a ratio needs conv/linear/matmul weights"),
    ("features.0.1.running_mean: full", "1:1", "none of them trainable"),
    ("classifier.weight: bias", "1:1", "no bias or norm shift among classifier.weight"),
    ("classifier.*: frozen", None, "the scheme trains no parameter"),
    ("default frozen", None, "the scheme trains no parameter"),
])
def test_meaning_errors_are_located(cnn, text, where, message):
    with pytest.raises(SchemeError) as e:
        Scheme.parse(text, "s.pock").resolve(cnn)
    first = str(e.value).splitlines()[0]
    prefix = f"s.pock:{where}: " if where else "s.pock: "
    assert first.startswith(prefix) and message in first, first


def test_resolution_later_rules_override_and_ratio_channels(cnn):
    s = Scheme.parse("""default frozen
        last 2 conv layers: bias      # features.2.bias and the BN shift of features.3
        features.1: ratio 1/2         # depthwise 8 channels: axis 0, 4 channels
        conv layer 3: ratio 0.25      # pointwise 12 input channels: axis 1, 3 channels
        features.2.bias: frozen       # overrides the bias rule
        classifier.*: full""")
    d = s.resolve(cnn)
    trained = {k: v for k, v in d.items() if v.mode != "frozen"}
    assert trained == {
        "features.1.0.weight": Update("ratio", Fraction(1, 2), 0, 4),
        "features.3.0.weight": Update("ratio", Fraction(1, 4), 1, 3),
        "features.3.1.bias": Update("full"),
        "classifier.weight": Update("full"), "classifier.bias": Update("full")}
    assert "features.0.1.running_mean" not in d  # statistics are not scheme targets


def test_ratio_rounds_up_and_ratio_one_is_full(cnn):
    d = Scheme.parse("features.3: ratio 1/5\nfeatures.2: ratio 1").resolve(cnn)
    assert d["features.3.0.weight"] == Update("ratio", Fraction(1, 5), 1, 3)  # ceil(12 / 5)
    assert d["features.2.weight"] == Update("full")


def test_bias_mode_trains_biases_and_norm_shifts_only(cnn):
    d = Scheme.parse("default full\nfeatures.0, features.2: bias").resolve(cnn)
    assert d["features.0.1.bias"].mode == d["features.2.bias"].mode == "full"
    assert d["features.0.0.weight"].mode == d["features.0.1.weight"].mode == d["features.2.weight"].mode == "frozen"
    assert d["features.1.0.weight"].mode == "full"


def test_glob_matches_parameter_layer_and_module_names(cnn):
    by_module = Scheme.parse("features.1: full").resolve(cnn)
    by_layer = Scheme.parse("features.1.0: full").resolve(cnn)
    by_param = Scheme.parse("features.1.*: full").resolve(cnn)
    assert by_module == by_layer == by_param
    assert {k for k, v in by_module.items() if v.mode == "full"} == {
        "features.1.0.weight", "features.1.1.weight", "features.1.1.bias"}


def test_text_json_and_python_forms_are_equivalent(cnn):
    text = "default frozen\nlast 2 conv layers: bias\nfeatures.1: ratio 1/2\nlayers 3..3: ratio 0.25\n\"classifier.*\": full\n"
    s = Scheme.parse(text)
    doc = json.loads(json.dumps(s.to_json()))
    assert doc == {"default": "frozen", "rules": [
        {"select": [{"last": 2, "kind": "conv"}], "mode": "bias"},
        {"select": [{"glob": "features.1"}], "mode": "ratio", "ratio": "1/2"},
        {"select": [{"layers": [3, 3]}], "mode": "ratio", "ratio": "1/4"},
        {"select": [{"glob": "classifier.*"}], "mode": "full"}]}
    python = Scheme("frozen", (
        Rule((Selector(last=2, kind="conv"),), "bias"),
        Rule((Selector(glob="features.1"),), "ratio", Fraction(1, 2)),
        Rule((Selector(lo=3, hi=3),), "ratio", Fraction(1, 4)),
        Rule((Selector(glob="classifier.*"),), "full")))
    assert s == Scheme.from_json(doc) == Scheme.parse(s.to_text()) == python
    assert s.resolve(cnn) == python.resolve(cnn)


def test_json_errors_name_the_path():
    with pytest.raises(SchemeError, match=r"<json>: rules\[0\].ratio: ratio 2 is outside"):
        Scheme.from_json({"rules": [{"select": "a", "mode": "ratio", "ratio": 2}]})
    with pytest.raises(SchemeError, match=r"rules\[1\].mode: unknown mode 'half'"):
        Scheme.from_json({"rules": [{"select": "a", "mode": "full"}, {"select": "b", "mode": "half"}]})
    with pytest.raises(SchemeError, match=r"rules\[0\].select\[0\]: a selector is"):
        Scheme.from_json({"rules": [{"select": [{"lst": 3}], "mode": "full"}]})
    with pytest.raises(SchemeError, match=r"s.json:1:2"):
        Scheme.from_json("{oops", "s.json")


def test_tte_config_converts(cnn):
    # TTE counts conv layers only; ratio 0 means bias only, the classifier always trains
    s = Scheme.from_tte(n_bias_update=2, manual_weight_idx="1-3", weight_update_ratio="0.5-0")
    assert s.to_text() == ("default frozen\nlast 2 conv layers: bias\nconv layer 1: ratio 1/2\n"
                           "last 1 linear layers: full\n")
    d = s.resolve(cnn)
    assert {k for k, v in d.items() if v.mode != "frozen"} == {
        "features.2.bias", "features.3.1.bias", "features.1.0.weight", "classifier.weight", "classifier.bias"}
    assert d["features.1.0.weight"].channels == 4
    assert Scheme.from_tte(1, [3], None).resolve(cnn)["features.3.0.weight"] == Update("full")


def test_load_file_json_and_inline(tmp_path, cnn):
    text = "default frozen\nclassifier.*: full\n"
    (tmp_path / "s.pock").write_text(text)
    (tmp_path / "s.json").write_text(json.dumps(Scheme.parse(text).to_json()))
    assert Scheme.load(tmp_path / "s.pock") == Scheme.load(str(tmp_path / "s.json")) == Scheme.load(text)
    with pytest.raises(SchemeError, match="no such scheme file"):
        Scheme.load(tmp_path / "missing.pock")
    with pytest.raises(SchemeError, match="missing.json: no such scheme file"):
        Scheme.load(str(tmp_path / "missing.json"))


def test_example_file_parses():
    s = Scheme.load(ROOT / "examples" / "mobilenet_tte.pock")
    assert s.default == "frozen" and len(s.rules) == 6
    assert [r.ratio for r in s.rules if r.mode == "ratio"] == [1, 1, Fraction(1, 2), Fraction(1, 4)]


_names = st.sampled_from(["features.0", "features.1.*", "features.[23]*", "classifier.*", "*.bias", "features.2"])
_selectors = st.one_of(
    _names.map(lambda g: Selector(glob=g)),
    st.integers(1, 4).map(lambda n: Selector(last=n)),
    st.tuples(st.integers(0, 3), st.integers(0, 1)).map(lambda t: Selector(lo=t[0], hi=t[0] + t[1], kind="conv")))
_rules = st.builds(lambda sels, mode, r: Rule(tuple(sels), mode, Fraction(r, 8) if mode == "ratio" else None),
                   st.lists(_selectors, min_size=1, max_size=2), st.sampled_from(["full", "frozen", "bias", "ratio"]),
                   st.integers(1, 8))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["frozen", "full"]), st.lists(_rules, max_size=4))
def test_any_scheme_roundtrips_through_text_and_json(default, rules):
    s = Scheme(default, tuple(rules))
    assert Scheme.parse(s.to_text()) == s
    assert Scheme.from_json(json.loads(json.dumps(s.to_json()))) == s
