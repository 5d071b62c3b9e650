"""Generators of backward-only, optimizer and fused ops, each derived from forward ops' cases
so the geometry (dy's shape, input_size, kernel, ...) is that of a forward op that could exist."""

from __future__ import annotations

import numpy as np
import op_cases as F
from hypothesis import strategies as st
from op_cases import FLOATS, Case
from pockengine.ir import types as T
from pockengine.ir.ops import fused as Fu
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import optim as O
from xdsl.ir import Block
from xdsl.utils.test_value import create_ssa_value


def forward_type(case: Case):
    """The result type of the forward op a case describes."""
    return case.build([create_ssa_value(t) for t in case.operands]).results[0].type


def _float(draw, case_strategy):
    """A forward case whose first operand is a float (backward ops are float-only)."""
    return draw(case_strategy.filter(lambda c: T.is_float(c.operands[0])))


def _conv_props(c: Case) -> dict:
    return {**c.props, "padding": L.pad4(c.props["padding"])}


@st.composite
def conv2d_backward_input(draw, op):
    c = draw(F.conv2d(L.Conv2dOp))
    x, w = c.operands
    dy = forward_type(c)
    return Case(op, [dy, w], {**_conv_props(c), "input_size": T.shape(x)[2:]})


@st.composite
def conv2d_backward_weight(draw, op):
    c = draw(F.conv2d(L.Conv2dOp))
    x, w = c.operands
    return Case(op, [x, forward_type(c)], {**_conv_props(c), "kernel": T.shape(w)[2:]})


@st.composite
def linear_backward_weight(draw, op):
    c = draw(F.linear(L.LinearOp))
    return Case(op, [c.operands[0], forward_type(c)])


@st.composite
def max_pool2d_backward(draw, op):
    c = draw(F.pool(L.MaxPool2dOp))
    return Case(op, [c.operands[0], forward_type(c)], c.props)


@st.composite
def avg_pool2d_backward(draw, op):
    c = draw(F.pool(L.AvgPool2dOp))
    return Case(op, [forward_type(c)], {**c.props, "input_size": T.shape(c.operands[0])[2:]})


@st.composite
def slice_backward(draw, op):
    c = _float(draw, F.slice_(F.S.SliceOp))
    return Case(op, [forward_type(c)], {**c.props, "input_shape": T.shape(c.operands[0])})


@st.composite
def gather_backward(draw, op, fwd=F.S.GatherOp, strategy=F.gather):
    c = _float(draw, strategy(fwd))
    c = Case(fwd, c.operands, c.props, domain=c.domain)
    x, idx = c.operands
    props = {k: v for k, v in c.props.items() if k != "padding_idx"}
    return Case(op, [forward_type(c), idx], {**props, "input_shape": T.shape(x)}, domain=c.domain)


@st.composite
def gather_elements_backward(draw, op):
    return draw(gather_backward(op, F.S.GatherElementsOp, F.gather_elements))


@st.composite
def axis_backward(draw, op):
    c = draw(F.along_axis(F.R.SoftmaxOp))
    return Case(op, [c.operands[0]] * 2, c.props)


@st.composite
def norm_backward(draw, op):
    fwd = F.N.RmsNormOp if "Rms" in op.__name__ else F.N.LayerNormOp
    c = draw(F.last_axes_norm(fwd))
    x, gamma = c.operands[:2]
    operands = [x, x] if "Gamma" in op.__name__ else [x, gamma, x]
    return Case(op, operands, c.props)


@st.composite
def cross_entropy_backward(draw, op):
    c = draw(F.cross_entropy(F.Lo.CrossEntropyOp))
    logits = c.operands[0]

    def domain(rng, arrays):
        return c.domain(rng, arrays[:2]) + [arrays[2]]

    return Case(op, [*c.operands, T.tensor((), logits.element_type)], c.props, domain=domain)


@st.composite
def unary_backward(draw, op):
    c = draw(F.unary(F.E.GeluOp if op is G.GeluBackwardOp else F.E.SiluOp))
    return Case(op, [c.operands[0]] * 2, c.props)


def _step_domain(n_state):
    """Optimizer operands: the step number (last operand) is a positive integer-valued float."""

    def fix(rng, arrays):
        if n_state:
            arrays[-1] = np.asarray(rng.integers(1, 4), arrays[-1].dtype)
        if len(arrays) == 5:  # adam: exp_avg_sq >= 0
            arrays[3] = np.abs(arrays[3])
        return arrays

    return fix


@st.composite
def sgd(draw, op):
    t = T.tensor(draw(F.shapes()), draw(st.sampled_from(FLOATS)))
    props = {"lr": draw(st.sampled_from([0.1, 0.01])),
             "weight_decay": draw(st.sampled_from([0.0, 1e-4]))}
    state = []
    if draw(st.booleans()):
        nesterov = draw(st.booleans())
        props |= {"momentum": 0.9, "nesterov": nesterov, "dampening": 0.0 if nesterov else draw(st.sampled_from([0.0, 0.1]))}
        state = [t, T.tensor((), t.element_type)]
    return Case(op, [t, t, *state], props, domain=_step_domain(len(state)))


@st.composite
def adam(draw, op):
    t = T.tensor(draw(F.shapes()), draw(st.sampled_from(FLOATS)))
    props = {"lr": draw(st.sampled_from([1e-3, 0.01])), "beta1": draw(st.sampled_from([0.9, 0.0])),
             "weight_decay": draw(st.sampled_from([0.0, 0.01])), "decoupled": draw(st.booleans())}
    return Case(op, [t, t, t, t, T.tensor((), t.element_type)], props, domain=_step_domain(1))


_FLOAT_MAPS = [F.E.ExpOp, F.E.TanhOp, F.E.SigmoidOp, F.E.ReluOp, F.E.NegOp, F.E.SiluOp]


@st.composite
def fused(draw, op):
    """train.fused around a broadcasting binary op and a unary map of its result; yields both."""
    c = _float(draw, F.binary(F.E.MulOp))
    second = draw(st.sampled_from(_FLOAT_MAPS))

    def make(args):
        block = Block(arg_types=c.operands)
        a = c.build(list(block.args))
        b = second.build(a.result)
        block.add_ops([a, b, Fu.YieldOp.create(operands=[a.result, b.result])])
        return Fu.FusedOp.make(args, [a.result.type, b.result.type], block)

    return Case(op, c.operands, make=make)


TRAIN_CASES = {
    G.Conv2dBackwardInputOp: conv2d_backward_input,
    G.Conv2dBackwardWeightOp: conv2d_backward_weight,
    G.LinearBackwardWeightOp: linear_backward_weight,
    G.MaxPool2dBackwardOp: max_pool2d_backward,
    G.AvgPool2dBackwardOp: avg_pool2d_backward,
    G.SliceBackwardOp: slice_backward,
    G.GatherBackwardOp: gather_backward,
    G.GatherElementsBackwardOp: gather_elements_backward,
    G.SoftmaxBackwardOp: axis_backward,
    G.LogSoftmaxBackwardOp: axis_backward,
    G.LayerNormBackwardOp: norm_backward,
    G.LayerNormBackwardGammaOp: norm_backward,
    G.RmsNormBackwardOp: norm_backward,
    G.RmsNormBackwardGammaOp: norm_backward,
    G.CrossEntropyBackwardOp: cross_entropy_backward,
    G.GeluBackwardOp: unary_backward,
    G.SiluBackwardOp: unary_backward,
    O.SgdOp: sgd,
    O.AdamOp: adam,
    Fu.FusedOp: fused,
    Fu.YieldOp: fused,  # always inside a train.fused
}
