"""Configurations of the ops added for issue 13 that ONNX's node cases do not cover, each against
onnxruntime (3-D windows with groups and asymmetric pads, ConvTranspose output_shape, cubic Resize
on chosen axes, Einsum with broadcast ellipses and three operands, grouped-query Attention with a
bool mask, NaN in ArgMax)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from pockengine.frontends.onnx_importer import from_onnx
from test_onnx_opsets import check, i64, node, x


def _model(nodes, inputs, opset, inits=None):
    from test_onnx_opsets import model

    outs = tuple(o for nd in nodes[-1:] for o in nd.output)
    return model(nodes, inputs, opset, inits, outputs=outs)


CASES = [
    ("conv3d_groups_asym", 18, [node("Conv", ["a", "w", "b"], group=2, pads=[1, 0, 1, 0, 1, 0], strides=[2, 1, 1],
                                     dilations=[1, 2, 1])],
     {"a": x(2, 4, 5, 6, 5)}, {"w": x(6, 2, 3, 2, 2), "b": x(6)}),
    ("maxpool3d_pads_dilation", 18, [node("MaxPool", ["a"], kernel_shape=[2, 3, 2], pads=[1, 1, 0, 0, 1, 1],
                                          strides=[1, 2, 1], dilations=[2, 1, 1])], {"a": x(1, 3, 6, 7, 5)}, {}),
    ("avgpool3d_include_pad", 18, [node("AveragePool", ["a"], kernel_shape=[3, 2, 2], pads=[1, 0, 1, 1, 0, 1],
                                        count_include_pad=1)], {"a": x(2, 2, 5, 4, 4)}, {}),
    ("convtranspose1d_output_shape", 18, [node("ConvTranspose", ["a", "w"], strides=[3], output_shape=[12])],
     {"a": x(2, 3, 4)}, {"w": x(3, 2, 3)}),
    ("convtranspose2d_groups_asym", 18, [node("ConvTranspose", ["a", "w", "b"], group=2, strides=[2, 1],
                                              pads=[1, 0, 0, 1], output_padding=[1, 0])],
     {"a": x(1, 4, 3, 4)}, {"w": x(4, 3, 3, 2), "b": x(6)}),
    ("resize_cubic_axes", 19, [node("Resize", ["a", "", "", "s"], mode="cubic", axes=[3, 2],
                                    coordinate_transformation_mode="half_pixel", exclude_outside=1)],
     {"a": x(1, 2, 4, 5)}, {"s": i64(9, 7)}),
    ("einsum_ellipsis_broadcast", 12, [node("Einsum", ["a", "b"], equation="...ij,...jk->...ik")],
     {"a": x(3, 1, 2, 4), "b": x(1, 5, 4, 3)}, {}),
    ("einsum_three_operands", 12, [node("Einsum", ["a", "b", "c"], equation="bij,bjk,kl->bli")],
     {"a": x(2, 3, 4), "b": x(2, 4, 5), "c": x(5, 2)}, {}),
    ("einsum_implicit_output", 12, [node("Einsum", ["a", "b"], equation="ij,jk")], {"a": x(3, 4), "b": x(4, 2)}, {}),
    ("topk_int_ties_smallest", 11, [node("TopK", ["a", "k"], ["v", "i"], axis=0, largest=0)],
     {"a": np.array([[3, -2**63, 3], [1, 5, -2**63], [3, -2**63, 0], [1, 2, 2]], np.int64)}, {"k": i64(3)}),
    ("argmin_int_minimum", 13, [node("ArgMin", ["a"], axis=1)],
     {"a": np.array([[3, -2**63, 3], [1, 5, -2**63]], np.int64)}, {}),
    ("reducemin_int_minimum", 18, [node("ReduceMin", ["a", "ax"])],
     {"a": np.array([[3, -2**63, 3], [1, 5, 2**63 - 1]], np.int64)}, {"ax": i64(1)}),
    ("grid_sample_bilinear_border", 16, [node("GridSample", ["a", "g"], padding_mode="border", align_corners=1)],
     {"a": x(2, 3, 4, 5), "g": (x(2, 3, 4, 2) * 0.8)}, {}),
    ("round_half_even_specials", 11, [node("Round", ["a"])],
     {"a": np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, -0.4, 0.6, 7.0, -3.7, 2.0**23 + 1, -2.0**24,
                     3.0e38, np.inf, -np.inf, np.nan], np.float32)}, {}),
    ("instance_norm_leaky", 18, [node("InstanceNormalization", ["a", "g", "b"], ["t"], epsilon=1e-3),
                                 node("LeakyRelu", ["t"], alpha=0.2)],
     {"a": x(2, 3, 4, 5)}, {"g": x(3), "b": x(3)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_against_onnxruntime(case):
    _, opset, nodes, inputs, inits = case
    check(_model(nodes, inputs, opset, inits), inputs)


def test_gqa_attention_with_bool_mask_and_past():
    """3-D inputs, 4 query heads over 2 kv heads, a bool mask over past + new keys, past
    key/values; Y and present_key against onnxruntime."""
    q, k, v = x(2, 3, 4 * 4), x(2, 3, 2 * 4), x(2, 3, 2 * 4)
    past_k, past_v = x(2, 2, 2, 4), x(2, 2, 2, 4)
    mask = np.random.default_rng(1).random((3, 5)) > 0.3
    mask[:, 0] = True
    n = helper.make_node("Attention", ["q", "k", "v", "m", "pk", "pv"], ["y", "present_k", "present_v"], name="attn",
                         q_num_heads=4, kv_num_heads=2)
    feeds = {"q": q, "k": k, "v": v, "m": mask, "pk": past_k, "pv": past_v}
    from test_onnx_opsets import model

    m = model([n], feeds, 23, outputs=("y", "present_k", "present_v"))
    check(m, feeds)


def test_argmax_picks_the_first_nan_like_numpy():
    a = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 5.0, -1.0, 5.0]], np.float32)
    m = _model([node("ArgMax", ["a"], axis=1, keepdims=0)], {"a": a}, 13)
    out = from_onnx(m).run("forward", a)
    np.testing.assert_array_equal(out, np.argmax(a, axis=1))


def test_grid_sample_nan_position_gives_nan():
    img = x(1, 2, 3, 4)
    grid = np.array([[[[0.1, -0.3], [np.nan, 0.2]], [[2.0, 0.0], [-0.9, 0.95]]]], np.float32)  # [1, 2, 2, 2]
    for mode, pad in (("bilinear", "zeros"), ("nearest", "border")):
        m = _model([node("GridSample", ["a", "g"], mode=mode, padding_mode=pad)], {"a": img, "g": grid}, 16)
        out = from_onnx(m).run("forward", img, grid)
        assert np.isnan(out[0, :, 0, 1]).all() and not np.isnan(np.delete(out.reshape(2, 4), 1, axis=1)).any()
        finite = np.isfinite(grid).all(-1)[0]
        from onnx_reference import ort_run

        ref = ort_run(m, {"a": img, "g": np.nan_to_num(grid)})[0]
        np.testing.assert_allclose(out[0][:, finite], ref[0][:, finite], rtol=1e-5, atol=1e-6)
