"""The optimizer updates autodiff emits, step by step against torch.optim.

One parameter, five steps with given gradients: `@apply(%g)` holds exactly the update code
autodiff emits (step counter, `train.sgd`/`train.adam`, the `train.set`s); parameter and
state after each step must match torch.optim.SGD / Adam / AdamW for hypothesis-drawn
hyper-parameters (momentum buffer initialized to the first gradient, dampening, Nesterov,
coupled vs decoupled weight decay, bias corrections).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pockengine import Program
from pockengine.ir import types as T
from pockengine.ir.ops.state import ParamOp
from pockengine.passes import _materialize_state
from pockengine.passes.autodiff import Autodiff, Updates
from pockengine.passes.vjp import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region

SHAPE = (3, 4)


def update_program(opts: Autodiff, p0: np.ndarray) -> Program:
    param = ParamOp("w", T.tensor(SHAPE, T.f64))
    block = Block(arg_types=[T.tensor(SHAPE, T.f64)])
    module = ModuleOp([param])
    b = Builder(block)
    updates = Updates(opts, module, b)
    if updates.stateful():
        updates.count_step()
    updates.update(param, block.args[0])
    block.add_op(func.ReturnOp())
    module.body.block.add_op(func.FuncOp("apply", (block.arg_types, []), Region(block)))
    prog = Program(module, {"w": p0.copy()})
    _materialize_state(prog)
    prog.verify()
    return prog


def run_both(opts: Autodiff, torch_opt, state_names):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(SHAPE)
    prog = update_program(opts, p0)
    w = torch.nn.Parameter(torch.tensor(p0))
    opt = torch_opt([w])
    for step in range(5):
        g = rng.standard_normal(SHAPE) * (step + 1)
        prog.run("apply", g, dtype=np.float64)
        w.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(prog.weights["w"], w.detach().numpy(), rtol=1e-12, atol=1e-14)
        for ours, theirs in state_names.items():
            np.testing.assert_allclose(prog.weights[ours], opt.state[w][theirs].numpy(), rtol=1e-12, atol=1e-14)
    return prog


unit = st.floats(0.0, 0.95)


@settings(max_examples=15, deadline=None)
@given(lr=st.floats(0.001, 1.0), momentum=unit, dampening=unit, nesterov=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01, 0.3]))
def test_sgd_matches_torch(lr, momentum, dampening, nesterov, weight_decay):
    if nesterov:  # torch (and train.sgd) require momentum > 0 and no dampening
        momentum, dampening = max(momentum, 0.1), 0.0
    opts = Autodiff(optimizer="sgd", lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                    weight_decay=weight_decay)
    state = {"w.momentum": "momentum_buffer"} if momentum else {}
    prog = run_both(opts, lambda ps: torch.optim.SGD(ps, lr=lr, momentum=momentum, dampening=dampening,
                                                     nesterov=nesterov, weight_decay=weight_decay), state)
    assert ("optimizer.step" in prog.weights) == bool(momentum)


@settings(max_examples=15, deadline=None)
@given(lr=st.floats(0.0001, 0.1), beta1=unit, beta2=st.floats(0.5, 0.9999), eps=st.sampled_from([1e-8, 1e-3]),
       weight_decay=st.sampled_from([0.0, 0.01, 0.5]), decoupled=st.booleans())
def test_adam_and_adamw_match_torch(lr, beta1, beta2, eps, weight_decay, decoupled):
    opts = Autodiff(optimizer="adamw" if decoupled else "adam", lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    prog = run_both(opts, lambda ps: cls(ps, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay),
                    {"w.exp_avg": "exp_avg", "w.exp_avg_sq": "exp_avg_sq"})
    assert prog.weights["optimizer.step"] == 5
