"""Bad labels and bad data files are refused at every entry point, with the input and the
valid range named: `Trainer.step`, the interpreter, `pockengine train` and the project's C
runner (main.c), whose every size read from a data file is checked against the model and
the file's real length (a crafted header, e.g. 2^62 batches, under AddressSanitizer too)."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest
import torch
from pockengine import compile, from_torch
from pockengine.backends.inputs import InputError
from pockengine.backends.project import DATA_MAGIC, write_data
from pockengine.errors import UserError
from pockengine.pipeline import Recipe, run

CLASSES, BATCH = 4, 8
BAD_LABELS = [7, -1, 99, 2**40]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, CLASSES)).eval()
    return m, from_torch(m, (torch.randn(BATCH, 6),))


@pytest.fixture(scope="module")
def trainer(model):
    return compile(model[1], loss="cross_entropy", optimizer="sgd", lr=0.1)


def data(seed=0, n=BATCH):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, CLASSES, n)


@pytest.mark.parametrize("bad", BAD_LABELS)
def test_trainer_refuses_out_of_range_labels_like_torch(trainer, model, bad):
    x, y = data()
    y[3] = bad
    before = trainer.parameters()
    with pytest.raises(InputError, match=rf"@train_step input 1: label {bad} at 3 is outside the valid range \[0, 4\)"):
        trainer.step(x, y)
    for k, v in trainer.parameters().items():  # refused before the device ran
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises((IndexError, RuntimeError)):  # PyTorch refuses them too
        torch.nn.functional.cross_entropy(model[0](torch.from_numpy(x)), torch.from_numpy(y))
    prog = run(model[1], Recipe("cross_entropy", "sgd"), "autodiff").program
    with pytest.raises(UserError, match=rf"label {bad} at position \(3,\) is outside the valid range \[0, 4\)"):
        prog.run("train_step", x, y)  # and the interpreter


def test_trainer_refuses_fractional_labels_and_keeps_ignore_index(trainer):
    x, y = data()
    with pytest.raises(InputError, match=r"input 1: 0\.7 at 2 where integers are expected"):
        trainer.step(x, np.where(np.arange(BATCH) == 2, 0.7, y.astype(np.float64)))
    whole = trainer.step(x, y.astype(np.float32))  # whole numbers as floats: the same labels
    assert np.isfinite(whole)
    y[0] = -100  # the ignore index is a valid label
    assert np.isfinite(trainer.step(x, y))


def test_partial_batch_says_what_to_do(trainer):
    x, y = data(n=BATCH - 3)
    with pytest.raises(InputError, match=r"batch size \(8\) is fixed at compile time; drop a last partial batch"):
        trainer.step(x, y)


@pytest.fixture(scope="module")
def project(model, tmp_path_factory):
    from pockengine.tools.driver import main

    d = tmp_path_factory.mktemp("labels")
    model[1].save(d / "model")
    assert main(["compile", str(d / "model"), "-o", str(d / "p")]) == 0
    subprocess.run(["make", "-s", "-C", str(d / "p"), "model"], check=True)
    return d


def run_model(project, data_file, *, exe="model"):
    return subprocess.run([f"./{exe}", "3", str(data_file)], cwd=project / "p", capture_output=True, text=True,
                          check=False, timeout=120)


@pytest.mark.parametrize("bad", BAD_LABELS)
def test_pockengine_train_names_the_array_and_the_range(project, capsys, bad):
    from pockengine.tools.driver import main

    x, y = data(n=2 * BATCH)
    y[11] = bad
    np.savez(project / "bad.npz", x=x, y=y)
    assert main(["train", str(project / "p"), "--data", str(project / "bad.npz"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert f"array 'y': label {bad} at 11 is outside the valid range [0, 4)" in err, err


def test_pockengine_train_drop_last(project, capsys):
    from pockengine.tools.driver import main

    x, y = data(n=2 * BATCH + 3)
    np.savez(project / "odd.npz", x=x, y=y)
    assert main(["train", str(project / "p"), "--data", str(project / "odd.npz"), "--steps", "2"]) == 2
    assert "not a multiple of the compiled batch size 8 (fixed at compile time): pass --drop-last" in capsys.readouterr().err
    assert main(["train", str(project / "p"), "--data", str(project / "odd.npz"), "--steps", "2", "--drop-last"]) == 0


def crafted(project, name, batches, inputs=2, sizes=None, body=b""):
    sizes = sizes if sizes is not None else [BATCH * 6 * 4, BATCH * 8]
    path = project / name
    path.write_bytes(DATA_MAGIC + struct.pack("<QQ", batches, inputs) + struct.pack(f"<{len(sizes)}Q", *sizes) + body)
    return path


def good_body(n=1, label=None):
    x, y = data()
    if label is not None:
        y[5] = label
    return n * (x.tobytes() + y.astype(np.int64).tobytes())


@pytest.fixture(scope="module")
def asan(project):
    """The runner built with AddressSanitizer and UBSan, where the compiler has them."""
    p = project / "p"
    res = subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                          "-o", "model_asan", "main.c", "model.c", "-lm"], cwd=p, capture_output=True, text=True,
                         check=False)
    if res.returncode:
        pytest.skip(f"no ASan build here: {res.stderr[-300:]}")
    return "model_asan"


CASES = {
    "2^62 batches": ({"batches": 2**62}, "the header says 4611686018427387904 batches"),
    "2^64-1 batches": ({"batches": 2**64 - 1}, "batches of 256 bytes, the file holds 0 bytes"),
    "more batches than bytes": ({"batches": 3, "body": good_body(2)}, "the header says 3 batches"),
    "trailing bytes": ({"batches": 1, "body": good_body(1) + b"x"}, "the file holds 257 bytes"),
    "no batches": ({"batches": 0}, "holds no batches"),
    "input count": ({"batches": 1, "inputs": 2**40, "sizes": []}, "number of inputs differs"),
    "input size": ({"batches": 1, "sizes": [2**63, 64]}, "input sizes differ"),
    "label out of range": ({"batches": 1, "body": good_body(1, label=7)},
                           "batch 0, input 1 (labels): label 7 at position 5 is outside the valid range [0, 4)"),
    "negative label": ({"batches": 1, "body": good_body(1, label=-2**40)}, "label -1099511627776 at position 5"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("build", ["plain", "asan"])
def test_c_runner_checks_every_size_and_label(project, request, case, build):
    exe = "model" if build == "plain" else request.getfixturevalue("asan")
    kwargs, message = CASES[case]
    res = run_model(project, crafted(project, f"{case}.bin", **kwargs), exe=exe)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr, res.stderr
    assert "AddressSanitizer" not in res.stderr and "runtime error" not in res.stderr
    assert "step 0" not in res.stdout  # nothing trained


def test_c_runner_trains_on_a_good_file_and_warns_on_nan(project, asan):
    ok = crafted(project, "ok.bin", batches=2, body=good_body(2))
    for exe in ("model", asan):
        res = run_model(project, ok, exe=exe)
        assert res.returncode == 0 and res.stdout.count("loss") == 3, res.stderr
        assert "warning" not in res.stderr
    x, y = data()
    x[:] = np.nan
    nan = crafted(project, "nan.bin", batches=1, body=x.tobytes() + y.astype(np.int64).tobytes())
    res = run_model(project, nan)
    assert res.returncode == 0 and "step 0 loss nan" in res.stdout
    assert "warning: step 0: the loss is nan" in res.stderr


def test_write_data_then_runner_refuses_a_label_python_did_not_check(project):
    """The runner's own check: a data.bin written without pockengine train's checks."""
    x, y = data()
    y[0] = CLASSES
    write_data(project / "raw.bin", [[x, y]], ["f32", "i64"])
    res = run_model(project, project / "raw.bin")
    assert res.returncode == 2 and "label 4 at position 0 is outside the valid range [0, 4)" in res.stderr
