"""ONNX frontend coverage: which of ONNX's own test cases import and match (issue 13).

    python benchmarks/onnx_coverage.py                 # every case, prints the table
    python benchmarks/onnx_coverage.py --sample 4      # every 4th node case (quicker)
    python benchmarks/onnx_coverage.py --list refused  # also list the cases per outcome

Three sets:
- node: `onnx.backend.test.case.node.collect_testcases` for the installed onnx (one model per
  case, with inputs and expected outputs); "float" are the cases whose graph inputs and outputs
  are all float (f16/f32/f64), int64 or bool tensors — the target set of the issue;
- pytorch-converted and pytorch-operator: the models the onnx wheel ships under
  backend/test/data, exported by PyTorch, with their input/output .pb files.

Each case gets one outcome: `passed` (imported by from_onnx and every output matches the stored
output, and onnxruntime's where it has a kernel), `refused: <reason>` (a located
OnnxImportError; reasons are grouped: the op, the element type, or the message without the node
name), `wrong` (imported but an output differs: a bug) or `crash` (any other exception: a bug).
`wrong` and `crash` must stay 0. Node cases are generated once and cached under
$XDG_CACHE_HOME/pockengine (20 s of numpy reference code otherwise).
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "frontends"))

import numpy as np
import onnx
from onnx import numpy_helper

P = onnx.TensorProto
FLOAT_SET = {P.FLOAT, P.FLOAT16, P.DOUBLE, P.INT64, P.BOOL}


# --- the cases ----------------------------------------------------------------------------------

def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pockengine" / f"onnx-node-cases-{onnx.__version__}.pkl"


def node_cases() -> list[tuple[str, bytes, list, list]]:
    """(name, serialized model, inputs, expected outputs) of every generated node case."""
    path = _cache_file()
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    from onnx.backend.test.case import node

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    out = []
    for c in cases:
        if c.model is None or not c.data_sets:
            continue
        inputs, expected = c.data_sets[0]
        out.append((c.name, c.model.SerializeToString(), list(inputs), list(expected)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(out, f)
    os.replace(tmp, path)  # never a half-written cache
    return out


def shipped_cases(sub: str) -> list[tuple[str, bytes, list, list]]:
    from onnx_reference import DATA

    out = []
    for d in sorted((DATA / sub).iterdir()):
        data = d / "test_data_set_0"
        inputs = [onnx.load_tensor(str(p)) for p in sorted(data.glob("input_*.pb"))]
        expected = [onnx.load_tensor(str(p)) for p in sorted(data.glob("output_*.pb"))]
        out.append((d.name, (d / "model.onnx").read_bytes(), inputs, expected))
    return out


def is_float_case(model) -> bool:
    vals = [*model.graph.input, *model.graph.output]
    return all(v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in FLOAT_SET for v in vals)


# --- one case -------------------------------------------------------------------------------------

def _arrays(values):
    """Tensors as numpy arrays; sequences and optionals (which from_onnx refuses) as they are."""
    return [numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto)
            else np.asarray(v) if isinstance(v, (np.ndarray, np.generic, int, float, bool)) else v
            for v in values]


def reason(message: str) -> str:
    """A refusal message grouped: the op or element type it names, else the message sans node."""
    m = re.search(r"unsupported ONNX op '([^']+)'", message)
    if m:
        return f"op {m.group(1)}"
    m = re.search(r"has (\w+) type; only tensors", message)
    if m:
        return f"{m.group(1)} graph input"
    m = re.search(r"element type (\w+) is not supported", message) or re.search(r"dtype (\w+) is not", message)
    if m:
        return f"element type {m.group(1)}"
    m = re.search(r"default-domain opset (\d+) is not supported", message)
    if m:
        return f"opset {m.group(1)}"
    m = re.match(r"node .*?\((\w+), opset \d+\): (.*)", message)
    if m:
        text = re.sub(r"'[^']*'", "'…'", m.group(2))
        text = re.sub(r"\d+", "N", text)
        return f"{m.group(1)}: {text[:70]}"
    return re.sub(r"'[^']*'", "'…'", message)[:80]


LOCATED = re.compile(r"^(node |unsupported ONNX op .* in node |graph input '|value '|initializer '|"
                     r"default-domain opset \d+ |the model imports no default-domain|ONNX shape inference failed)")


def located(message: str) -> bool:
    """A refusal is one line that names the node (or graph input, value, initializer) it is about,
    or is about the whole model (its opset)."""
    return "\n" not in message and bool(LOCATED.match(message))


def run_case(name: str, blob: bytes, inputs, expected) -> tuple[str, str]:
    """(outcome, detail): outcome is passed, refused, wrong or crash."""
    from onnx_reference import assert_close, import_static, ort_run, outputs_of
    from pockengine.frontends.onnx_importer import OnnxImportError

    model = onnx.ModelProto()
    model.ParseFromString(blob)
    try:
        feeds = {v.name: a for v, a in zip(model.graph.input, _arrays(inputs))}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                prog, model, feeds = import_static(model, feeds)
            except OnnxImportError as e:
                msg = str(e)
                if not located(msg):
                    return "crash", f"unlocated refusal: {msg[:200]}"
                return "refused", reason(msg)
            prog.verify()
            ours = outputs_of(prog, feeds, model)
            try:
                ref = ort_run(model, feeds)
            except Exception:  # noqa: BLE001  onnxruntime lacks a kernel: the stored outputs judge
                ref = None
            exp = _arrays(expected)
            if len(ours) != len(exp):
                return "wrong", f"{len(ours)} outputs, expected {len(exp)}"
            for i, (o, e) in enumerate(zip(ours, exp)):
                o = np.asarray(o)
                o = o.astype(e.dtype) if o.dtype.kind == e.dtype.kind or e.dtype == bool else o
                tol = 1e-3 if e.dtype == np.float16 else 1e-4
                if ref is not None:
                    assert_close(o, np.asarray(ref[i]), tol, f"output {i} vs onnxruntime")
                assert_close(o, e, 1e-3, f"output {i} vs stored")
        return "passed", ""
    except AssertionError as e:
        return "wrong", str(e).strip().splitlines()[0][:200]
    except Exception as e:  # noqa: BLE001  a crash is what this counts
        return "crash", f"{type(e).__name__}: {str(e).strip()[:200]}"


# --- the sweep -------------------------------------------------------------------------------------

def sweep(sample: int = 1) -> dict[str, list[tuple[str, str, str]]]:
    """{set name: [(case, outcome, detail)]}; sets: node-float, node-other, pytorch-converted, pytorch-operator."""
    results: dict[str, list] = {"node-float": [], "node-other": [], "pytorch-converted": [], "pytorch-operator": []}
    for k, (name, blob, ins, outs) in enumerate(node_cases()):
        if k % sample:
            continue
        m = onnx.ModelProto()
        m.ParseFromString(blob)
        key = "node-float" if is_float_case(m) else "node-other"
        results[key].append((name, *run_case(name, blob, ins, outs)))
    for sub in ("pytorch-converted", "pytorch-operator"):
        for name, blob, ins, outs in shipped_cases(sub):
            results[sub].append((name, *run_case(name, blob, ins, outs)))
    return results


def table(results, top: int = 40) -> str:
    lines = [f"{'set':<20}{'cases':>7}{'passed':>8}{'%':>7}{'refused':>9}{'wrong':>7}{'crash':>7}"]
    for key, rows in results.items():
        c = collections.Counter(o for _, o, _ in rows)
        pct = 100.0 * c["passed"] / len(rows) if rows else 0.0
        lines.append(f"{key:<20}{len(rows):>7}{c['passed']:>8}{pct:>6.1f}%{c['refused']:>9}{c['wrong']:>7}{c['crash']:>7}")
    groups = [("all sets", list(results))] if len(results) == 1 else [("node-float", ["node-float"]),
                                                                      ("all sets", list(results))]
    for title, sets in groups:
        hist = collections.Counter(d for k in sets for _, o, d in results[k] if o == "refused")
        lines.append("")
        lines.append(f"refusals ({title}), most frequent first:")
        lines += [f"{n:>6}  {r}" for r, n in hist.most_common(top)]
        if len(hist) > top:
            lines.append(f"{sum(n for _, n in hist.most_common()[top:]):>6}  ({len(hist) - top} other reasons)")
    bad = [(k, name, o, d) for k, rows in results.items() for name, o, d in rows if o in ("wrong", "crash")]
    if bad:
        lines.append("")
        lines.append("WRONG / CRASH (bugs):")
        lines += [f"  {k} {name}: {o}: {d}" for k, name, o, d in bad]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=1, help="run every Nth node case (default: all)")
    ap.add_argument("--list", choices=["passed", "refused", "wrong", "crash"], action="append", default=[],
                    help="also list the cases with this outcome")
    args = ap.parse_args(argv)
    if args.sample < 1:
        ap.error("--sample must be >= 1")
    results = sweep(args.sample)
    print(table(results))
    for outcome in args.list:
        print(f"\n{outcome}:")
        for key, rows in results.items():
            for name, o, d in rows:
                if o == outcome:
                    print(f"  {key:<18} {name}  {d}")
    bad = sum(o in ("wrong", "crash") for rows in results.values() for _, o, _ in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
