"""benchmarks/gpu_check.py without a GPU: its argument and file checks exit 2 with a message,
`prepare` writes a case the GPU run reads, and the run's host-side parts (the data file
reader, the parameter blob, the ctypes driver of a built library, the table) work on the
host C build of that case, reproducing the losses `prepare` recorded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check as GC


def test_arguments_and_missing_files_exit_2(tmp_path, capsys):
    assert GC.main(["run", "--dir", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert GC.main(["run", "--dir", str(tmp_path), "--rounds", "0"]) == 2
    assert GC.main(["frobnicate"]) == 2
    (tmp_path / "empty").mkdir()
    assert GC.main(["run", "--dir", str(tmp_path / "empty")]) == 2
    assert "no prepared cases" in capsys.readouterr().err


def test_prepared_case_runs_on_the_host_build(tmp_path):
    assert GC.main(["prepare", "--out", str(tmp_path), "--only", "mlp"]) == 0
    case = tmp_path / "mlp"
    spec = json.loads((case / "spec.json").read_text())
    assert spec["kind"] == "program" and len(spec["ref_losses"]) == GC.STEPS and spec["planned_bytes"] > 0
    assert {"model.cu", "host.cu", "Makefile", "weights.bin", "data.bin"} <= {p.name for p in (case / "cuda").iterdir()}
    res = subprocess.run(["make", "-s", "-C", str(case / "c"), "libmodel.so"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    layout = json.loads((case / "c" / "layout.json").read_text())
    batches = GC.read_data(case / "cuda" / "data.bin", GC._dtypes(layout))
    lib = GC.Lib(case / "c", GC.blob_of(layout, None, case / "c"))
    got = [lib.step(batches[i % len(batches)]) for i in range(GC.STEPS)]
    assert got == pytest.approx(spec["ref_losses"], rel=1e-6)
    result = {"device": "none", "torch": "-", "checks": {"mlp": {"ok": True, "max_rel": 0.0}},
              "timing": {"W1": {"ms_per_step": {"ours sparse": 2.0, "eager scheme": 7.0, "compile default": 3.0}}},
              "memory": {"W1": {"planned_bytes": 10, "torch_full_peak_bytes": 40}}, "skipped": []}
    text = GC.table(result)
    assert "| W1 | 2.00 |" in text and "3.50x" in text and "0.250" in text
