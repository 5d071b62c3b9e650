"""The data-parallel kernels against the interpreter, run on PoCL: every op's random case
(tests/ir/op_cases.py through test_kernels.py's harness), explicit shapes that no group or
tile size divides (GEMM tiles of 64, row groups of 64, map groups of up to 256), a CNN with
pooling and a depthwise layer trained step by step, and the grid mapping's coverage."""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pockengine import Program
from pockengine.backends import get_target
from pockengine.backends.gpu.grid import DimMap, map_grid
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.runtime import Trainer
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from targets import needs
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block, Region

sys.path.insert(0, str(Path(__file__).parent.parent / "ir"))
os.environ.setdefault("POCL_CACHE_DIR", tempfile.mkdtemp(prefix="pocl-cache-"))


needs_opencl = needs("opencl")


@needs_opencl
def test_every_kernel_matches_the_interpreter():
    import test_kernels as TK

    run = given(cases=TK.one_case_per_op(), seed=st.integers(0, 2**16))(
        lambda cases, seed: TK.check_kernels("opencl", cases, seed))
    settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))(run)()


def t(*shape):
    return TensorType(f32, shape)


# (name, operand types, build(args) -> op): sizes chosen so that no tile or group divides them
CASES = [
    ("matmul", [t(2, 70, 65), t(2, 65, 33)], lambda a: L.MatmulOp.build(a[0], a[1])),
    ("linear", [t(5, 130), t(67, 130)], lambda a: L.LinearOp.build(a[0], a[1])),
    ("softmax_middle", [t(3, 100, 5)], lambda a: R.SoftmaxOp.build(a[0], axis=1)),
    ("log_softmax", [t(7, 131)], lambda a: R.LogSoftmaxOp.build(a[0], axis=-1)),
    ("layer_norm", [t(3, 77), t(77), t(77)], lambda a: N.LayerNormOp.build(a[0], a[1], a[2])),
    ("rms_norm", [t(5, 3, 67), t(67)], lambda a: N.RmsNormOp.build(a[0], a[1])),
    ("conv_grouped", [t(2, 6, 9, 11), t(4, 3, 3, 3)],
     lambda a: L.Conv2dOp.build(a[0], a[1], stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    ("depthwise", [t(1, 4, 7, 5), t(8, 1, 3, 3)], lambda a: L.Conv2dOp.build(a[0], a[1], padding=(1, 1), groups=4)),
    ("max_pool", [t(2, 3, 9, 7)], lambda a: L.MaxPool2dOp.build(a[0], kernel=(3, 3), stride=(2, 2), padding=(1, 1))),
    ("sum_rows", [t(130, 3)], lambda a: R.SumOp.build(a[0], axes=[0])),
    ("max_cols", [t(3, 5, 300)], lambda a: R.MaxOp.build(a[0], axes=[0, 2])),
    ("broadcast_map", [t(3, 70, 131), t(70, 1)], lambda a: E.MulOp.build(a[0], a[1])),
]


@needs_opencl
def test_shapes_no_group_divides():
    fns = []
    for i, (_, types, build) in enumerate(CASES):
        block = Block(arg_types=types)
        op = build(list(block.args))
        block.add_ops([op, func.ReturnOp(*op.results)])
        fns.append(func.FuncOp(f"f{i}", (types, [r.type for r in op.results]), Region(block)))
    prog = Program(ModuleOp(fns))
    tgt = get_target("opencl")
    kp = lower_program(prog, library=tgt.library)
    trainer = Trainer(prog, kp, tgt.load(kp))
    rng = np.random.default_rng(0)
    for i, (name, types, _) in enumerate(CASES):
        xs = [rng.standard_normal(ty.get_shape()).astype(np.float32) for ty in types]
        np.testing.assert_allclose(trainer.call(f"f{i}", *xs)[0], prog.run(f"f{i}", *xs), rtol=2e-4, atol=2e-5,
                                   err_msg=name)
    trainer.close()


@needs_opencl
def test_pooling_cnn_trains_like_the_interpreter():
    sys.path.insert(0, str(Path(__file__).parent.parent / "passes"))
    import programs as P
    import sparse_models as M
    from pockengine.ir.ops import shape as S
    from pockengine.passes import run_pipeline

    n = M.Net((2, 3, 9, 7), 3)
    n.conv_bn("c0", 3, 6, stride=2)
    n.conv_bn("c1", 6, 6, groups=6)
    n.x = n.op(L.MaxPool2dOp.build(n.x, kernel=(3, 3), stride=(2, 2), padding=(1, 1)))
    n.x = n.op(L.AvgPool2dOp.build(n.x, kernel=(2, 2), stride=(1, 1)))
    n.x = n.op(S.ReshapeOp.build(n.op(L.GlobalAvgPoolOp.build(n.x)), [2, 6]))
    n.linear("fc", 6, 4)
    prog = n.program()
    ref = P.trained(prog, P.SGD)
    opt = ref.copy()
    run_pipeline(opt, "operator-reordering,fusion")
    tgt = get_target("opencl")
    kp = lower_program(opt, library=tgt.library)
    trainer = Trainer(opt.copy(), kp, tgt.load(kp))
    for i, (x, y) in enumerate(P.batches(prog, 6)):
        assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-4), f"step {i}"
    params = trainer.parameters()
    for k, v in ref.weights.items():
        np.testing.assert_allclose(params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


@settings(max_examples=100, deadline=None)
@given(dims=st.lists(st.integers(1, 12), min_size=0, max_size=4).filter(lambda d: np.prod(d) <= 2000),
       group=st.sampled_from([1, 7, 32, 64, 256]),
       cap=st.sampled_from([1, 3, 65535]))
def test_grid_covers_every_element_once(dims, group, cap):
    """The map kernels' launch within the limits, and their grid-stride loops (with the
    merged outer dims recovered by division) simulated: every element of the shape is
    visited exactly once, whatever the group size, per-axis group limit and shape."""
    grid = map_grid(dims, max_group=group, max_grid=(cap, cap, cap), target_items=512)
    assert all(1 <= g <= cap for g in grid.groups) and np.prod(grid.local) <= max(group, 1)
    assert all(x & (x - 1) == 0 for x in grid.local)  # powers of two
    dm = DimMap.of(len(dims))
    ext = dm.extents(dims)
    seen = np.zeros([*dims] or [1], np.int64)
    stride = [grid.groups[a] * grid.local[a] for a in range(3)]
    walks = [[j for w in range(stride[a]) for j in range(w, ext[a], stride[a])] for a in range(3)]
    for g2 in walks[2]:
        for g1 in walks[1]:
            for g0 in walks[0]:
                index = [0] * len(dims)
                for a, g in ((0, g0), (1, g1), (2, g2)):
                    for d in reversed(dm.axes[a]):
                        index[d], g = g % dims[d], g // dims[d]
                seen[tuple(index) if dims else 0] += 1
    assert (seen == 1).all()


@needs_opencl
@pytest.mark.parametrize("chunk_rows", [None, 3], ids=["one-chunk", "chunks-of-3"])
@pytest.mark.parametrize("scheme", [None, "default frozen; lm_head.*: full"], ids=["full", "head-only"])
def test_chunked_vocabulary_head(chunk_rows, scheme, monkeypatch):
    """The fused lm_head + cross-entropy (linear_cross_entropy): loss, dx, dw into the
    momentum buffer, db, an ignored label, over one chunk or chunks that do not divide M."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_linear_cross_entropy as H
    from pockengine.backends.gpu import library as GL

    if chunk_rows:
        monkeypatch.setattr(GL, "LCE_FLOATS", chunk_rows * 70)
    prog = H.lm(batch=2, seq=5, dim=8, vocab=70, bias=True)
    ref = H.train_step(prog, H.OPTIMIZERS["momentum"], scheme, "next_token")
    opt = H.fused(ref)
    assert len(H.heads(opt)) == 1
    tgt = get_target("opencl")
    kp = lower_program(opt, library=tgt.library)
    trainer = Trainer(opt.copy(), kp, tgt.load(kp))
    for i, (x, y) in enumerate(H.batches(prog, 4)):
        assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-4), f"step {i}"
    params = trainer.parameters()
    for k, v in ref.weights.items():
        np.testing.assert_allclose(params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


@needs_opencl
def test_expanding_copy_in_place_is_staged():
    """The planner runs pad's copy in place over its input's bytes (backwards on the CPU); on
    a data-parallel device the overlapping input is staged through scratch, then copied in
    parallel."""
    from pockengine.backends.gpu.maps import hazard
    from pockengine.backends.kernel_ir import Map
    from pockengine.ir.ops import shape as S

    block = Block(arg_types=[t(4, 300)])
    a = E.MulOp.build(block.args[0], block.args[0])
    b = L.PadOp.build(a.results[0], pads=[1, 3, 2, 5])
    c = E.ReluOp.build(b.results[0])
    d = S.ConcatOp.build(c.results[0], c.results[0], axis=1)
    block.add_ops([a, b, c, d, func.ReturnOp(d.results[0])])
    prog = Program(ModuleOp([func.FuncOp("f", ([t(4, 300)], [d.results[0].type]), Region(block))]))
    tgt = get_target("opencl")
    kp = lower_program(prog, library=tgt.library)
    assert "stage" in [hazard(s)[0] for s in kp.functions["f"].steps if isinstance(s, Map)]
    trainer = Trainer(prog, kp, tgt.load(kp))
    x = np.random.default_rng(0).standard_normal((4, 300)).astype(np.float32)
    np.testing.assert_allclose(trainer.call("f", x)[0], prog.run("f", x), rtol=1e-6)
