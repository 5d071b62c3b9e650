"""Programs for the backend tests: the small MLP and CNN of tests/passes/sparse_models.py,
a transformer-ish block, and random programs for hypothesis (chains of linear layers,
elementwise ops and residual adds with seeded weights)."""

from __future__ import annotations

import numpy as np
import sparse_models as M
from hypothesis import strategies as st
from pockengine import Program
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import ConstantOp
from pockengine.passes import run_pipeline

SGD = "autodiff{optimizer=sgd lr=0.05 momentum=0.9}"
ADAMW = "autodiff{optimizer=adamw lr=0.01 weight_decay=0.1}"
CNN_SCHEME = "default frozen; last 2 conv layers: bias; features.3: ratio 1/4; classifier.*: full"
MLP_SCHEME = "default frozen; fc2: ratio 1/3; fc3.bias: full; fc1.bias: full"

UNARY = [E.ReluOp, E.TanhOp, E.SigmoidOp, E.GeluOp, E.SiluOp, E.NegOp, E.Relu6Op]
BINARY = [E.AddOp, E.MulOp, E.SubOp, E.MaximumOp]


def mlp(batch=4) -> Program:
    return M.mlp(batch)


def cnn(batch=2, size=8) -> Program:
    return M.cnn(batch, size)


def attention(batch=2, seq=4, dim=8, heads=2, seed=0, cls=False) -> Program:
    """A pre-norm attention block with a GELU MLP and a mean-pooled classifier, written with
    the ops the frontends produce for BERT (matmul with a transposed key, softmax, layer_norm)."""
    n = M.Net((batch, seq, dim), seed)
    hd = dim // heads
    x = n.x

    def lin(name, v, cin, cout):
        w = n.param(f"{name}.weight", (cout, cin))
        b = n.param(f"{name}.bias", (cout,), "bias", 0.1 * n.rng.standard_normal(cout))
        return n.op(E.AddOp.build(n.op(L.LinearOp.build(v, w)), b))

    def heads_of(v):
        v = n.op(S.ReshapeOp.build(v, [batch, seq, heads, hd]))
        return n.op(S.TransposeOp.build(v, perm=[0, 2, 1, 3]))

    g = n.param("ln.weight", (dim,), "norm", 1 + 0.1 * n.rng.standard_normal(dim))
    b = n.param("ln.bias", (dim,), "bias", 0.1 * n.rng.standard_normal(dim))
    h = n.op(N.LayerNormOp.build(x, g, b))
    q, k, v = (heads_of(lin(f"attn.{t}", h, dim, dim)) for t in "qkv")
    kt = n.op(S.TransposeOp.build(k, perm=[0, 1, 3, 2]))
    scores = n.op(E.MulOp.build(n.op(L.MatmulOp.build(q, kt)), n.op(ConstantOp.scalar(1 / np.sqrt(hd)))))
    att = n.op(L.MatmulOp.build(n.op(R.SoftmaxOp.build(scores, axis=-1)), v))
    att = n.op(S.ReshapeOp.build(n.op(S.TransposeOp.build(att, perm=[0, 2, 1, 3])), [batch, seq, dim]))
    x = n.op(E.AddOp.build(x, lin("attn.o", att, dim, dim)))
    f = n.op(E.GeluOp.build(lin("ffn.0", x, dim, 2 * dim)))
    x = n.op(E.AddOp.build(x, lin("ffn.1", f, 2 * dim, dim)))
    if cls:  # BERT's pooling: the first token's row
        n.x = n.op(S.ReshapeOp.build(n.op(S.SliceOp.build(x, axes=[1], starts=[0], ends=[1])), [batch, dim]))
    else:
        n.x = n.op(R.MeanOp.build(x, axes=[1]))
    n.x = lin("classifier", n.x, dim, 3)
    return n.program()


@st.composite
def random_programs(draw) -> Program:
    """A random forward function over [batch, width] values, with seeded weights."""
    batch, width = draw(st.integers(1, 4)), draw(st.integers(2, 6))
    n = M.Net((batch, width), draw(st.integers(0, 1000)))
    values = [n.x]
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["linear", "unary", "binary", "bias", "norm"]))
        x = draw(st.sampled_from(values))
        if kind == "linear":
            w = n.param(f"l{i}.weight", (width, width))
            y = n.op(L.LinearOp.build(x, w))
        elif kind == "unary":
            y = n.op(draw(st.sampled_from(UNARY)).build(x))
        elif kind == "binary":
            y = n.op(draw(st.sampled_from(BINARY)).build(x, draw(st.sampled_from(values))))
        elif kind == "bias":
            y = n.op(E.AddOp.build(x, n.param(f"b{i}.bias", (width,), "bias")))
        else:
            g = n.param(f"n{i}.weight", (width,), "norm", 1 + 0.1 * n.rng.standard_normal(width))
            y = n.op(N.RmsNormOp.build(x, g))
        values.append(y)
    n.x = n.op(L.LinearOp.build(values[-1], n.param("head.weight", (3, width))))
    return n.program()


def trained(prog: Program, spec: str = SGD) -> Program:
    p = prog.copy()
    run_pipeline(p, spec)
    return p


def batches(prog: Program, steps: int, seed: int = 0):
    """(input, labels) pairs for the forward function's input shape and class count."""
    fn = prog.functions()["forward"]
    shape = tuple(fn.function_type.inputs.data[0].get_shape())
    classes = fn.function_type.outputs.data[0].get_shape()[-1]
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, shape[0]).astype(np.int64))
            for _ in range(steps)]
