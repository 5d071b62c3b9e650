"""GEMM epilogues (fusion's `epilogue` groups, gemm.c's pk_epilogue) against float64
references (numpy, PyTorch's conv2d): linear, matmul and conv2d followed by bias, frozen
batch norm, activations and a residual add, on shapes that reach every tile path of the
kernels — edge tiles, two K blocks, more rows than MC, the transposed (swapped) GEMM, a
batched matmul and one whose batch becomes rows, conv tiles written in place and through
the block buffer, 1×1 convolutions as a GEMM per image, groups, small column blocks.
Each case also checks where the elementwise work ran: inside the kernel call (no loop of
its own over the output) or, where an operand does not fit the kernel's walk, after it."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine import Program
from pockengine.backends.kernel_ir import Call, Epilogue, Map
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops.fused import FusedOp
from pockengine.passes import run_pipeline
from pockengine.backends.lower_to_kernels import lower_program
from test_conv_kernels import CASES as CONV_CASES
from test_conv_kernels import shapes as conv_shapes
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region

# (M, N, K): edge tiles, one row, two K blocks and more rows than MC, a swapped GEMM (M < N)
LINEAR = [(7, 37, 19), (1, 5, 3), (150, 17, 300), (5, 200, 8)]
# every non-depthwise geometry of the conv kernel tests, and one depthwise (its epilogue runs after)
CONV = [c for c in CONV_CASES if c[-1] == 1 or c[1] != c[-1]][:14] + [CONV_CASES[-4]]


def _fn(name, arg_shapes, build):
    """func @name(args) { results = build(args) }"""
    block = Block(arg_types=[T.tensor(s) for s in arg_shapes])
    ops, results = build(list(block.args))
    block.add_ops([*ops, func.ReturnOp(*results)])
    return func.FuncOp(name, (list(block.arg_types), [r.type for r in results]), Region(block))


def linear_chain(args):
    """relu6(linear(x, w) + b) + r, and the raw product kept as a result too."""
    x, w, b, r = args
    y = L.LinearOp.build(x, w)
    s = E.AddOp.build(y.result, b)
    c = E.ClampOp.build(s.result, min=0.0, max=6.0)
    z = E.AddOp.build(c.result, r)
    return [y, s, c, z], [z.result, y.result]


def linear_ref(x, w, b, r):
    y = x @ w.T
    return np.clip(y + b, 0, 6) + r, y


def bn_chain(args):
    """relu(batch_norm(conv2d(x, w))) + r: only the final value leaves."""
    x, w, g, beta, mean, var, r = args[:7]
    conv = args[7]
    y = L.Conv2dOp.build(x, w, **conv)
    n = N.BatchNormOp.build(y.result, g, beta, mean, var)
    a = E.ReluOp.build(n.result)
    z = E.AddOp.build(a.result, r)
    return [y, n, a, z], [z.result]


def conv_ref(case, x, w, g, beta, mean, var, r):
    *_, s, p, d, groups = case
    xt = F.pad(torch.from_numpy(x).double(), (p[1], p[3], p[0], p[2]))
    y = F.conv2d(xt, torch.from_numpy(w).double(), stride=s, dilation=d, groups=groups).numpy()
    ch = lambda v: v.reshape(1, -1, 1, 1)
    bn = (y - ch(mean)) / np.sqrt(ch(var) + 1e-5) * ch(g) + ch(beta)
    return np.maximum(bn, 0) + r


def matmul_chain(scale_shape, res_shape):
    def build(args):
        a, b, s, r = args
        y = L.MatmulOp.build(a, b)
        m = E.MulOp.build(y.result, s)
        t = E.TanhOp.build(m.result)
        z = E.AddOp.build(t.result, r)
        return [y, m, t, z], [z.result]
    return build


# (a, b, scale, residual): batched with full and broadcast operands; a shared b (the batch
# becomes rows); a mask broadcast over heads, which the kernel's walk cannot address
MATMUL = [((2, 3, 7, 9), (2, 3, 9, 20), (), (2, 3, 7, 20), True),
          ((2, 5, 6), (6, 33), (33,), (2, 5, 33), True),
          ((2, 3, 4, 5), (2, 3, 5, 6), (2, 1, 1, 6), (2, 3, 4, 6), False)]


def _module(small_blocks: bool):
    rng = np.random.default_rng(0)
    fns, cases = [], []
    for i, (m, n, k) in enumerate(LINEAR):
        arrays = [rng.standard_normal(s).astype(np.float32) for s in ((m, k), (n, k), (n,), (m, n))]
        fns.append(_fn(f"lin{i}", [a.shape for a in arrays], linear_chain))
        cases.append((f"lin{i}", arrays, linear_ref(*[a.astype(np.float64) for a in arrays]), True))
    for i, case in enumerate(CONV):
        xs, ws, ys = conv_shapes(case)
        o = ys[1]
        arrays = [rng.standard_normal(xs), rng.standard_normal(ws), 1 + 0.1 * rng.standard_normal(o),
                  rng.standard_normal(o), rng.standard_normal(o), 0.5 + rng.random(o), rng.standard_normal(ys)]
        arrays = [a.astype(np.float32) for a in arrays]
        *_, s, p, d, g = case
        conv = {"stride": s, "padding": p, "dilation": d, "groups": g}
        fns.append(_fn(f"conv{i}", [a.shape for a in arrays], lambda args, conv=conv: bn_chain([*args, conv])))
        depthwise = g > 1 and g == case[1]
        want = conv_ref(case, *[a.astype(np.float64) for a in arrays])
        cases.append((f"conv{i}", arrays, (want,), not depthwise))
    for i, (sa, sb, ss, sr, walkable) in enumerate(MATMUL):
        arrays = [rng.standard_normal(s).astype(np.float32) for s in (sa, sb, ss, sr)]
        fns.append(_fn(f"mm{i}", [a.shape for a in arrays], matmul_chain(ss, sr)))
        a, b, s, r = (x.astype(np.float64) for x in arrays)
        cases.append((f"mm{i}", arrays, (np.tanh((a @ b) * s) + r,), walkable))
    return Program(ModuleOp(fns)), cases


@pytest.mark.parametrize("small_blocks", [False, True], ids=["default-blocks", "small-blocks"])
def test_epilogues_match_references(small_blocks, monkeypatch):
    from pockengine.backends.c import library

    if small_blocks:
        monkeypatch.setattr(library, "CONV_BLOCK", 1024)
    prog, cases = _module(small_blocks)
    run_pipeline(prog, "fusion")
    kp = lower_program(prog)
    for name, _, _, walkable in cases:
        fused = [op for op in prog.functions()[name].walk() if isinstance(op, FusedOp)]
        steps = kp.functions[name].steps
        epilogues = [s for s in steps if isinstance(s, Call) and any(isinstance(a, Epilogue) for a in s.operands.values())]
        if name.startswith("conv") and not walkable:  # depthwise: an elementwise group, no epilogue
            assert [op.group_kind for op in fused] == ["elementwise"] and not epilogues, name
            continue
        assert [op.group_kind for op in fused] == ["epilogue"], name
        if walkable:  # the elementwise chain runs inside the kernel call: no loop of its own
            loops = [s for s in steps if isinstance(s, Map)]
            assert len(epilogues) == 1 and all(s.origin.endswith("(per row)") for s in loops), (name, loops)
            # the batch norm's per-channel factor is computed once per channel, not per strip
            assert bool(loops) == name.startswith("conv") and all(len(s.shape) == 1 for s in loops), name
        else:
            assert not epilogues and len([s for s in steps if isinstance(s, Map)]) == 1, name
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    for name, arrays, want, _ in cases:
        got = trainer.call(name, *arrays)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(w).max()), err_msg=name)


def test_epilogues_off_keep_a_separate_loop():
    prog, _ = _module(False)
    run_pipeline(prog, "fusion{epilogues=false}")
    fused = [op.group_kind for op in prog.functions()["lin0"].walk() if isinstance(op, FusedOp)]
    assert fused == ["elementwise"]
    kp = lower_program(prog, ["lin0"])
    assert not any(isinstance(a, Epilogue) for s in kp.functions["lin0"].steps if isinstance(s, Call)
               for a in s.operands.values())


def test_generated_c_runs_the_chain_in_the_tile_function():
    prog, _ = _module(False)
    run_pipeline(prog, "fusion")
    src = get_target("c").sources(lower_program(prog, ["lin0"]))["model.c"]
    assert "pk_linear_ep(" in src and re.search(r"static void pk_epilogue\d+\(const pk_epilogue \*e", src)
    assert "pk_map" not in src  # no loop nest over the output besides the epilogue's rows
