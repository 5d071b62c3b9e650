"""Hyper-parameters out of range are refused the same way by the autodiff pass options, the
Python API and the CLI (one check: passes/hyperparameters.py), before any work is done."""

import math

import pytest
from pockengine.errors import UserError
from pockengine.passes.hyperparameters import RANGES, HyperParameterError, check_hyperparameter

BAD = [("lr", "nan"), ("lr", -5), ("lr", math.inf), ("momentum", 7), ("momentum", 1), ("momentum", -0.1),
       ("beta1", 1.0), ("beta2", "nan"), ("eps", -1e-8), ("weight_decay", -0.1), ("dampening", 1.5),
       ("bn_momentum", 2), ("lr", "fast"), ("lr", True)]
GOOD = [("lr", 0), ("lr", "1e-3"), ("momentum", 0.99), ("dampening", 1), ("beta2", 0.999), ("eps", 0),
        ("bn_momentum", 1.0)]


@pytest.mark.parametrize("name,value", BAD)
def test_refused_everywhere(name, value, tmp_path, capsys):
    from pockengine import compile
    from pockengine.passes import run_pipeline
    from pockengine.tools.driver import main
    from test_atomic import small_program

    with pytest.raises(HyperParameterError, match=rf"^{name}={value}: "):
        check_hyperparameter(name, value)
    prog = small_program()
    spec = f"autodiff{{{name}=true}}" if value is True else f'autodiff{{{name}="{value}"}}'
    with pytest.raises(UserError, match=rf"{name}={value}: "):
        run_pipeline(prog, spec)
    with pytest.raises(UserError, match=rf"{name}={value}: "):
        compile(prog, loss="cross_entropy", **{name: value})
    if name in ("lr", "momentum", "weight_decay") and value not in (True, "fast"):  # what argparse's float takes
        prog.save(tmp_path / "m")
        flag = "--" + name.replace("_", "-")
        assert main(["compile", str(tmp_path / "m"), flag, str(value), "-o", str(tmp_path / "p")]) == 2
        assert f"{name}=" in capsys.readouterr().err
        assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name,value", GOOD)
def test_accepted(name, value):
    assert check_hyperparameter(name, value) == float(value)


def test_every_range_is_documented():
    from pockengine.passes import hyperparameters

    for name in RANGES:
        assert name in hyperparameters.__doc__
