"""Each GEMM epilogue runs once, on the finished output block (issue 12: an epilogue applied
after every K block survived the epilogue tests, which keep the raw product as an extra output,
so the kernel writes the chain's value elsewhere and a repeated epilogue recomputes a correct
one). Here only the chain's final value leaves, the chain is not idempotent (bias, tanh, scale,
residual), and K spans two or three blocks of KC, so a repeat — or an epilogue on a partial
sum — changes the numbers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine import Program
from pockengine.backends import get_target
from pockengine.backends.c.build import build_library
from pockengine.backends.c.library import KC
from pockengine.backends.kernel_ir import Call, Epilogue
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.runtime import Trainer
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops.fused import FusedOp
from pockengine.passes import run_pipeline
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region


def _fn(name, shapes, build):
    block = Block(arg_types=[T.tensor(s) for s in shapes])
    ops, results = build(list(block.args))
    block.add_ops([*ops, func.ReturnOp(*results)])
    return func.FuncOp(name, (list(block.arg_types), [r.type for r in results]), Region(block))


def chain(contract):
    """z = tanh((contract(a, b) + bias) * 0.5) + r — only z is a result"""
    def build(args):
        a, b, bias, r = args
        y = contract(a, b)
        s = E.AddOp.build(y.result, bias)
        half = E.MulOp.build(s.result, s.result)  # s² : not idempotent, grows on a repeat
        t = E.TanhOp.build(half.result)
        z = E.AddOp.build(t.result, r)
        return [y, s, half, t, z], [z.result]
    return build


CASES = {  # name → (shapes a, b, bias, r; reference)
    "linear-2K": (((9, 2 * KC + 40), (21, 2 * KC + 40), (21,), (9, 21)), lambda a, b: a @ b.T, L.LinearOp.build),
    "linear-3K": (((40, 3 * KC - 7), (13, 3 * KC - 7), (13,), (40, 13)), lambda a, b: a @ b.T, L.LinearOp.build),
    "matmul-2K": (((2, 6, KC + 100), (KC + 100, 11), (11,), (2, 6, 11)), lambda a, b: a @ b, L.MatmulOp.build),
}


def test_epilogue_runs_once_on_the_finished_block():
    rng = np.random.default_rng(0)
    fns, data = [], {}
    for name, (shapes, ref, contract) in CASES.items():
        arrays = [(rng.standard_normal(s) / np.sqrt(s[-1] if i < 2 else 1)).astype(np.float32)
                  for i, s in enumerate(shapes)]
        fns.append(_fn(name.replace("-", "_"), shapes, chain(contract)))
        a, b, bias, r = (x.astype(np.float64) for x in arrays)
        data[name.replace("-", "_")] = (arrays, np.tanh((ref(a, b) + bias) ** 2) + r)
    prog = Program(ModuleOp(fns))
    run_pipeline(prog, "fusion")
    kp = lower_program(prog)
    for name in data:
        kinds = [op.group_kind for op in prog.functions()[name].walk() if isinstance(op, FusedOp)]
        assert kinds == ["epilogue"], (name, kinds)
        calls = [s for s in kp.functions[name].steps if isinstance(s, Call)
                 and any(isinstance(v, Epilogue) for v in s.operands.values())]
        assert len(calls) == 1, name
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    for name, (arrays, want) in data.items():
        (got,) = trainer.call(name, *arrays)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("cin", [64, 72])
def test_conv_epilogue_runs_once_over_deep_inputs(cin):
    """conv2d with C·kh·kw = 576 / 648 (more than two K blocks) and a non-idempotent chain"""
    rng = np.random.default_rng(cin)
    xs, ws, o = (2, cin, 6, 6), (8, cin, 3, 3), 8
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(cin * 9)).astype(np.float32)
    bias = rng.standard_normal((1, o, 1, 1)).astype(np.float32)
    r = rng.standard_normal((2, o, 6, 6)).astype(np.float32)

    def build(args):
        return chain(lambda a, b: L.Conv2dOp.build(a, b, padding=(1, 1)))(args)

    prog = Program(ModuleOp([_fn("f", [xs, ws, bias.shape, r.shape], build)]))
    run_pipeline(prog, "fusion")
    kinds = [op.group_kind for op in prog.functions()["f"].walk() if isinstance(op, FusedOp)]
    kp = lower_program(prog)
    (got,) = Trainer(prog, kp, build_library(kp, get_target("c"))).call("f", x, w, bias, r)
    y = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), padding=1).numpy()
    want = np.tanh((y + bias) ** 2) + r
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert kinds == ["epilogue"], kinds
