"""The cost report against FLOPs, bytes and parameter counts worked out by hand."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import sparse_models as M
from pockengine import Program, passes
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import linalg as L
from pockengine.passes import run_pipeline
from pockengine.passes.cost import flops
from pockengine.tools import pock_opt

HERE = Path(__file__).parent


def test_conv_and_linear_flops_by_hand():
    prog = M.cnn()  # input 2×3×8×8
    ops = list(prog.functions()["forward"].walk())
    convs = [op for op in ops if isinstance(op, L.Conv2dOp)]
    # 2 · N·O·Ho·Wo · (C/g)·kh·kw
    assert [flops(op) for op in convs] == [
        2 * 2 * 8 * 4 * 4 * 3 * 3 * 3,  # features.0: 3→8, 3×3, stride 2
        2 * 2 * 8 * 4 * 4 * 1 * 3 * 3,  # features.1: depthwise 8, 3×3
        2 * 2 * 12 * 4 * 4 * 8,         # features.2: 8→12, 1×1
        2 * 2 * 16 * 4 * 4 * 12]        # features.3: 12→16, 1×1
    (fc,) = [op for op in ops if isinstance(op, L.LinearOp)]
    assert flops(fc) == 2 * 2 * 5 * 16  # 2 · N · out · in
    # + BN 2/elt, clamp/relu/add 1/elt, global pool 1 per input element, bias adds
    by_hand = (13824 + 4608 + 6144 + 12288 + 320 + 2 * (256 + 256 + 512) + 256 + 256 + 384 + 384 + 512 + 10)
    assert passes.cost(prog)["forward"].forward_flops == by_hand == 41034


def test_gradient_flops_mirror_the_forward_op():
    prog = M.cnn()
    run_pipeline(prog, "autodiff{optimizer=sgd lr=0.1}")
    ops = list(prog.functions()["train_step"].walk())
    dw = {op.result.type.get_shape(): flops(op) for op in ops if isinstance(op, G.Conv2dBackwardWeightOp)}
    dx = {op.result.type.get_shape(): flops(op) for op in ops if isinstance(op, G.Conv2dBackwardInputOp)}
    assert dw[(8, 3, 3, 3)] == 13824 and dw[(8, 1, 3, 3)] == 4608 and dw[(16, 12, 1, 1)] == 12288
    assert dx[(2, 12, 4, 4)] == 12288 and dx[(2, 8, 4, 4)] in (4608, 6144)
    (lw,) = [op for op in ops if isinstance(op, G.LinearBackwardWeightOp)]
    assert flops(lw) == 320


def test_mlp_step_by_hand():
    prog = Program.parse((HERE / "mlp_step.mlir").read_text())
    c = passes.cost(prog)["train_step"]
    # forward: linear 2·4·8·6 + add 32 + relu 32 + linear 2·4·3·8 + add 12, then cross-entropy 12
    assert c.forward_flops == 384 + 32 + 32 + 192 + 12 + 12
    # backward: CE' 5·12, Σdy 12, dW2 2·3·8·4, dh 2·4·8·3, mask 32, where 32, Σ 32, dW1 2·8·6·4
    assert c.backward_flops == 60 + 12 + 192 + 192 + 32 + 32 + 32 + 384
    # SGD with momentum: 5 per element of 83 parameters, and the step counter
    assert c.optimizer_flops == 5 * 83 + 1
    # saved: x for dW1, h1 for the ReLU mask, h for dW2, logits and labels for the CE gradient
    assert dict(c.saved) == {"%x": 96, "%h1": 128, "%h": 128, "%y": 48, "%labels": 32}
    assert c.saved_bytes == 432
    assert (c.trained_elements, c.trained_tensors) == (8 * 6 + 8 + 3 * 8 + 3, 4)
    assert passes.cost(prog).state_bytes == 4 * 83 + 4


def test_pruned_mlp_step_by_hand():
    prog = Program.parse((HERE / "mlp_step.mlir").read_text())
    run_pipeline(prog, 'sparse-backprop{scheme="fc1.weight: ratio 1/2; fc2.bias: full"},dead-gradient-elimination')
    c = passes.cost(prog)["train_step"]
    # dW1[:, :3] needs x[:, :3] (48 B) and the ReLU mask (i1: 32 B) instead of h1; h is no longer needed
    assert dict(c.saved) == {"train.slice#0": 48, "%y": 48, "%labels": 32, "%pos": 32}
    assert (c.trained_elements, c.trained_tensors) == (8 * 3 + 3, 2)
    assert c.backward_flops == 60 + 12 + 192 + 32 + 2 * 8 * 3 * 4  # CE', Σdy, dh, where, dW1[:, :3]


def test_report_text_and_callable_module():
    prog = Program.parse((HERE / "mlp_step.mlir").read_text())
    report = passes.cost(prog)
    assert report is not passes.cost.cost(prog) and str(report) == passes.cost.report(prog.module)
    text = str(report)
    assert "// @train_step: 40 ops" in text and "forward 664  backward 936  optimizer 416" in text
    assert "saved for backward 432 B in 5 values;  trained 83 elements in 4 tensors" in text
    table = passes.cost.compare(report, report)
    assert "| saved activation bytes | 432 | 432 | 1.000 |" in table


def test_pock_opt_stats_prints_the_report(tmp_path, capsys):
    out = tmp_path / "out.mlir"
    rc = pock_opt.main([str(HERE / "mlp_step.mlir"), "--stats", "-o", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "forward 664  backward 936  optimizer 416" in err and "saved for backward 432 B" in err


@pytest.mark.parametrize("spec, message", [
    ('sparse-backprop{scheme="fc9.*: full"}', "<inline scheme>:1:1: `fc9.*` matches no parameter or layer name"),
    ('sparse-backprop{scheme="fc1.weight: ratio 2"}', "<inline scheme>:1:19: ratio 2 is outside (0, 1]"),
])
def test_pock_opt_reports_scheme_errors_without_traceback(spec, message, capsys):
    rc = pock_opt.main([str(HERE / "mlp_step.mlir"), "-p", spec])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_pock_opt_runs_the_issue_pipeline(tmp_path, capsys):
    scheme = tmp_path / "s.pock"
    scheme.write_text("# train the output layer and the first layer's bias\ndefault frozen\nfc2.*: full\nfc1.bias: full\n")
    examples = Path(__file__).parents[2] / "examples"
    pipeline = (f'autodiff{{loss=cross_entropy optimizer=sgd lr=0.05}},sparse-backprop{{scheme="{scheme}"}},'
                'dead-gradient-elimination')
    rc = pock_opt.main([str(examples / "mlp.mlir"), "-p", pipeline])
    out = capsys.readouterr().out
    assert rc == 0 and "func.func @train_step" in out
    assert "train.set @fc2.weight" in out and "train.set @fc1.bias" in out and "train.set @fc1.weight" not in out
    assert "train.linear_backward_weight %x" not in out  # no gradient for fc1.weight: the input is not kept
