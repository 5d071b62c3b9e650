"""onnxruntime as the reference for the ONNX frontend tests, and the shipped test data.

onnxruntime (not onnx.reference, which gets opset-9 Softmax and BatchNormalization-9
wrong) runs each model with graph optimizations off, so it computes the graph as written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

DATA = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"
ORT_MAX_IR = 10  # onnxruntime 1.2x refuses newer IR versions than it knows; opsets are what matter


def ort_run(model: onnx.ModelProto | str | os.PathLike, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    if isinstance(model, onnx.ModelProto):
        if model.ir_version > ORT_MAX_IR:
            model = with_ir_version(model, ORT_MAX_IR)
        model = model.SerializeToString()
    else:
        model = str(model)
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def with_ir_version(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = version
    return m


def outputs_of(program, feeds: dict[str, np.ndarray], model: onnx.ModelProto) -> list[np.ndarray]:
    """Run `@forward` with the graph inputs in the model's order (in float64 for f64 models)."""
    inits = {t.name for t in model.graph.initializer}
    args = [feeds[v.name] for v in model.graph.input if v.name not in inits]
    wide = any(np.asarray(a).dtype == np.float64 for a in args)
    out = program.run("forward", *args, dtype=np.float64 if wide else np.float32)
    return list(out) if isinstance(out, tuple) else [out]


def assert_close(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-4, what: str = "") -> float:
    """Elementwise within rtol of the reference, scaled by its largest magnitude; returns max error."""
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    if ref.dtype.kind not in "fc":
        np.testing.assert_array_equal(ours, ref, err_msg=what)
        return 0.0
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{what}: NaNs differ")
    inf = np.isinf(ref)  # infinities must match exactly (inf - inf is NaN, not an error)
    np.testing.assert_array_equal(np.where(inf, ours, 0), np.where(inf, ref, 0), err_msg=f"{what}: infinities differ")
    finite = np.isfinite(ref)
    diff = np.abs(ours[finite].astype(np.float64) - ref[finite])
    err = float(np.nanmax(diff)) if diff.size else 0.0
    scale = float(np.max(np.abs(ref[finite]))) if finite.any() else 1.0
    assert err <= rtol * max(scale, 1e-6) + 1e-6, f"{what}: max error {err:.3g} (reference scale {scale:.3g})"
    return err


# --- the light architectures with random weights -----------------------------------------

LIGHT = DATA / "light"


def randomized_light(name: str, out_dir: Path, seed: int = 0) -> tuple[Path, onnx.ModelProto]:
    """light_<name>.onnx with every ConstantOfShape(0.02) weight replaced by seeded random
    values (He-normal for Conv/Gemm weights, BN scale in [0.2, 0.6] and variance in
    [0.5, 1.5], small normal otherwise), saved with external data so big weights stay out of protobuf."""
    model = onnx.load(LIGHT / f"light_{name}.onnx")
    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for i, v in enumerate(node.input):
            consumers.setdefault(v, []).append((node, i))

    def slot(value):
        node, i = consumers[value][0]
        while node.op_type in ("Unsqueeze", "Reshape", "Identity"):
            node, i = consumers[node.output[0]][0]
        return node, i

    keep, weights = [], {}
    for node in model.graph.node:
        src = node.input[0] if node.op_type == "ConstantOfShape" else ""
        if not (src.endswith("__SHAPE") and src in inits):
            keep.append(node)
            continue
        shape = tuple(int(d) for d in inits[src])
        use, i = slot(node.output[0])
        if (use.op_type, i) in (("Conv", 1), ("Gemm", 1)):
            trans_b = any(a.name == "transB" and a.i for a in use.attribute)
            fan_in = int(np.prod(shape[1:])) if use.op_type == "Conv" or trans_b else shape[0]
            w = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif (use.op_type, i) == ("BatchNormalization", 1):  # < 1 keeps 16 residual sums finite
            w = rng.uniform(0.2, 0.6, shape).astype(np.float32)
        elif (use.op_type, i) == ("BatchNormalization", 4) or use.op_type == "Mul":
            w = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            w = (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1))
        weights[node.output[0]] = w
    del model.graph.node[:]
    model.graph.node.extend(keep)
    data = out_dir / f"{name}.weights"
    with open(data, "wb") as f:
        for wname, w in weights.items():
            t = model.graph.initializer.add()
            t.name, t.data_type = wname, onnx.TensorProto.FLOAT
            t.dims.extend(w.shape)
            t.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", str(f.tell())), ("length", str(w.nbytes))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            w.tofile(f)
    # the logits feeding the final Softmax are a sharper check than saturated probabilities
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    if softmax:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(softmax[-1].input[0]))
    path = out_dir / f"{name}.onnx"
    onnx.save(model, path)
    return path, model


def import_static(model, feeds):
    """from_onnx, turning graph inputs that the frontend needs at import (shapes, axes: only
    dynamic-shape models feed them at run time) into initializers with the test's values."""
    from pockengine.frontends.onnx_importer import OnnxImportError, from_onnx

    while True:
        try:
            return from_onnx(model), model, feeds
        except OnnxImportError as e:
            found = re.search(r"input \d+ \('(.*?)'\) must be known at import", str(e))
            if not found or found.group(1) not in feeds:
                raise
            name = found.group(1)
            feeds = dict(feeds)
            value = feeds.pop(name)
            m = onnx.ModelProto()
            m.CopyFrom(model)
            kept = [v for v in m.graph.input if v.name != name]
            del m.graph.input[:]
            m.graph.input.extend(kept)
            m.graph.initializer.append(numpy_helper.from_array(value, name))
            model = m
