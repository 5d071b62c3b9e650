"""fusion's `epilogue` groups keep the meaning of the program: random programs of a linear,
matmul or conv2d followed by chains of bias adds, frozen batch norm, activations, scalings
and residual adds (reading the raw product again, or an earlier value) train the same under
the interpreter before and after fusion, and the chain joins the contraction."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import sparse_models as M
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.fused import FusedOp
from pockengine.passes import run_pipeline

SGD = "autodiff{optimizer=sgd lr=0.05 momentum=0.9}"
UNARY = [E.ReluOp, E.TanhOp, E.SigmoidOp, E.GeluOp, E.SiluOp, E.Relu6Op]


@st.composite
def epilogue_programs(draw):
    """A contraction, an elementwise chain on its result, a classifier head."""
    kind = draw(st.sampled_from(["linear", "matmul", "conv2d"]))
    batch, c = draw(st.integers(1, 3)), draw(st.integers(2, 5))
    # an elementwise chain before the contraction that a residual after it reads again
    # (`conv(h) + h`): the chain must not join the contraction's epilogue group
    pre = draw(st.booleans())
    if kind == "conv2d":
        n = M.Net((batch, c, 5, 5), draw(st.integers(0, 1000)))
        o, k = (c, 3) if pre else (draw(st.integers(2, 6)), draw(st.sampled_from([1, 3])))
        s = 1 if pre else draw(st.sampled_from([1, 2]))
        if pre:
            n.x = n.op(E.ReluOp.build(n.op(E.AddOp.build(n.x, n.op(S.ReshapeOp.build(
                n.param("pre.bias", (c,), "bias"), [1, c, 1, 1]))))))
        w = n.param("conv.weight", (o, c, k, k))
        y = n.op(L.Conv2dOp.build(n.x, w, stride=(s, s), padding=(k // 2,) * 4))
        channel = lambda name: n.op(S.ReshapeOp.build(n.param(name, (o,), "bias"), [1, o, 1, 1]))
    else:
        o = c if pre else draw(st.integers(2, 7))
        shape = (batch, 3, c) if kind == "matmul" else (batch, c)
        n = M.Net(shape, draw(st.integers(0, 1000)))
        if pre:
            n.x = n.op(E.TanhOp.build(n.op(E.AddOp.build(n.x, n.param("pre.bias", (c,), "bias")))))
        if kind == "matmul":
            y = n.op(L.MatmulOp.build(n.x, n.param("mm.weight", (c, o))))
        else:
            y = n.op(L.LinearOp.build(n.x, n.param("fc.weight", (o, c))))
        channel = lambda name: n.param(name, (o,), "bias")
    pre_v = n.x if pre else None
    values, v = [y] + ([pre_v] if pre else []), y
    for i in range(draw(st.integers(1, 4))):
        step = draw(st.sampled_from(["bias", "unary", "scale", "residual", "bn"]))
        if step == "bias":
            v = n.op(E.AddOp.build(v, channel(f"b{i}")))
        elif step == "unary":
            v = n.op(draw(st.sampled_from(UNARY)).build(v))
        elif step == "scale":
            v = n.op(E.MulOp.build(v, n.param(f"s{i}", (), "bias", np.float32(1.5), trainable=False)))
        elif step == "residual":  # the raw product again, or an earlier value of the chain
            v = n.op(E.AddOp.build(v, draw(st.sampled_from(values))))
        elif kind != "matmul":
            n.x = v
            n.bn(f"bn{i}", o)
            v = n.x
        values.append(v)
    if pre:
        v = n.op(E.AddOp.build(v, pre_v))
    if kind == "conv2d":
        v = n.op(S.ReshapeOp.build(n.op(L.GlobalAvgPoolOp.build(v)), [batch, o]))
    elif kind == "matmul":
        v = n.op(R.MeanOp.build(v, axes=[1]))
    n.x = n.op(L.LinearOp.build(v, n.param("head.weight", (3, o))))
    return n.program()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=epilogue_programs(), seed=st.integers(0, 100))
def test_epilogue_fusion_keeps_semantics(prog, seed):
    ref = prog.copy()
    run_pipeline(ref, SGD)
    opt = ref.copy()
    run_pipeline(opt, "fusion")
    opt.verify()
    kinds = [op.group_kind for op in opt.functions()["train_step"].walk() if isinstance(op, FusedOp)]
    assert "epilogue" in kinds
    rng = np.random.default_rng(seed)
    fn = prog.functions()["forward"]
    shape = tuple(fn.function_type.inputs.data[0].get_shape())
    for _ in range(2):
        x = rng.standard_normal(shape).astype(np.float32)
        labels = rng.integers(0, 3, shape[0]).astype(np.int64)
        np.testing.assert_allclose(opt.run("train_step", x, labels), ref.run("train_step", x, labels), rtol=1e-6,
                                   atol=1e-6)
    for name, want in ref.weights.items():
        np.testing.assert_allclose(opt.weights[name], want, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(opt.run("forward", x), ref.run("forward", x), rtol=1e-6, atol=1e-6)


def test_epilogues_option_switches_them_off():
    prog = M.cnn()
    on, off = prog.copy(), prog.copy()
    run_pipeline(on, "fusion")
    run_pipeline(off, "fusion{epilogues=false}")
    kinds = lambda p: [op.group_kind for op in p.functions()["forward"].walk() if isinstance(op, FusedOp)]
    assert "epilogue" in kinds(on) and "epilogue" not in kinds(off)
    # every non-depthwise conv of the CNN carries its batch norm (and clamp) in its epilogue
    convs = [op for op in on.functions()["forward"].walk() if isinstance(op, L.Conv2dOp)]
    hosted = [op for op in convs if isinstance(op.parent_op(), FusedOp)]
    assert len(hosted) == sum(op.p.groups == 1 for op in convs)
