"""Pipeline strings: bare paths in options read like mlir-opt's (`scheme=s.pock`)."""

import pytest

from pockengine.passes import PipelineError, _quote_bare_values, parse_pipeline


def test_bare_path_is_quoted_numbers_are_not():
    spec = "autodiff{lr=0.05 loss=cross_entropy},sparse-backprop{scheme=examples/mobilenet_tte.pock}"
    assert _quote_bare_values(spec) == (
        'autodiff{lr=0.05 loss=cross_entropy},sparse-backprop{scheme="examples/mobilenet_tte.pock"}'
    )


def test_bare_path_parses_to_the_same_pass_as_quoted():
    bare = parse_pipeline("sparse-backprop{scheme=examples/mobilenet_tte.pock}").passes
    quoted = parse_pipeline('sparse-backprop{scheme="examples/mobilenet_tte.pock"}').passes
    assert bare == quoted and bare[0].scheme == "examples/mobilenet_tte.pock"


def test_already_quoted_values_are_left_alone():
    assert _quote_bare_values('sparse-backprop{scheme="a b.pock"}') == 'sparse-backprop{scheme="a b.pock"}'


def test_unknown_option_still_lists_valid_ones():
    with pytest.raises(PipelineError, match="valid options"):
        parse_pipeline("autodiff{nope=1}")
