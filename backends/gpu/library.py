"""The data-parallel kernel library: each kernel-IR library op (a `Call`, keyed by op and
variant, with named operands) as the launches that compute it.

A launch is (KernelDef, Grid, arguments); an argument is one of

    ("buf", View)            a planned view (arena, params, inputs, outputs, constants)
    ("table", (ints...))     a constant int64 table the schedule places on the device
    ("scratch", floats_at)   the call's scratch (per-row statistics, partial sums): a device
                             region after the planned arena, shared by every call in turn
    ("long", n) / ("float", x)

A contraction's epilogue (the elementwise tail fusion gave it) runs as a map kernel right
after its GEMM (backends/gpu/maps.py); the kernel IR's map already walks the output as the
(batch, row, column) domain the C kernels use, so the result is the same.
"""

from __future__ import annotations

from collections.abc import Callable

from ..kernel_ir import Call, Epilogue, IntArray, View
from . import gemm as G
from . import kernels as K
from .grid import Grid, flat_grid, rows_grid

PLANNERS: dict[tuple[str, str], Callable] = {}


class UnsupportedCall(NotImplementedError):
    """A library op the data-parallel library has no kernels for."""


def plans(op: str, *variants: str):
    def register(fn):
        for v in variants or ("",):
            PLANNERS[(op, v)] = fn
        return fn
    return register


def supported() -> set[tuple[str, str]]:
    return set(PLANNERS)


def launches(call: Call, maps) -> list:
    fn = PLANNERS.get((call.op, call.variant))
    if fn is None:
        raise UnsupportedCall(f"the data-parallel library has no kernels for {call.name} ({call.origin or 'no origin'})")
    out = fn(call.operands, call.variant)
    ep = call.operands.get("epilogue")
    if ep is not None:
        out += maps.launches(ep.map if isinstance(ep, Epilogue) else ep)
    return out


def _ints(a) -> tuple[int, ...]:
    return tuple(a.values) if isinstance(a, IntArray) else tuple(a)


def _gemm_grid(m: int, n: int, nb: int) -> Grid:
    return Grid((max(1, -(-n // G.BN)), max(1, -(-m // G.BM)), max(1, min(nb, 65535))), G.GROUP)


def gemm(nb, offsets, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, ab=None, beta_one=0):
    """C[t] = alpha·A[t]·B[t] + beta·C[t] for the flat batch t (offsets: (oa, ob, oc) each)."""
    args = [("long", nb), ("long", m), ("long", n), ("long", k), ("buf", a), ("long", rsa), ("long", csa),
            ("buf", b), ("long", rsb), ("long", csb), ("buf", c), ("long", ldc), ("table", tuple(offsets)),
            ("buf", ab) if ab is not None else ("scratch", 0), ("long", int(ab is not None)), ("long", beta_one)]
    return (G.GEMM.kernel(), _gemm_grid(m, n, nb), args)


def batch_offsets(nb, shape, sa, sb, sc) -> list[int]:
    total, out = 1, []
    for d in shape[:nb]:
        total *= d
    for t in range(total):
        oa = ob = oc = 0
        r = t
        for d in range(nb - 1, -1, -1):
            i = r % shape[d]
            r //= shape[d]
            oa, ob, oc = oa + i * sa[d], ob + i * sb[d], oc + i * sc[d]
        out += [oa, ob, oc]
    return out


@plans("linear", "", "ep")
def _linear(o, variant):
    return [gemm(1, (0, 0, 0), o["m"], o["n"], o["k"], o["x"], o["rsx"], o["csx"], o["w"], o["ws1"], o["ws0"],
                 o["y"], o["n"])]


@plans("matmul", "", "ep")
def _matmul(o, variant):
    nb = o["nbatch"]
    offs = batch_offsets(nb, _ints(o["batch"]), _ints(o["sa"]), _ints(o["sb"]), _ints(o["sc"]))
    return [gemm(len(offs) // 3, offs, o["m"], o["n"], o["k"], o["a"], o["ra"], o["ca"], o["b"], o["rb"], o["cb"],
                 o["c"], o["n"])]


@plans("linear_backward_weight")
def _linear_backward_weight(o, variant):
    # dw[N, K] = alpha·dyᵀ·x + beta·dw: A = dyᵀ (rows are dy's columns), B = x
    return [gemm(1, (0, 0, 0), o["n"], o["k"], o["m"], o["dy"], o["csd"], o["rsd"], o["x"], o["rsx"], o["csx"],
                 o["dw"], o["k"], o.get("ab"))]


def _geometry(o) -> tuple[int, ...]:
    return _ints(o["geometry"])


def _depthwise(g) -> bool:
    c, oc = g[1], g[4]
    return g[13] == c and c > 1 and oc % c == 0


@plans("conv2d", "", "ep")
def _conv2d(o, variant):
    g = _geometry(o)
    n, oc = g[0], g[4]
    groups, ho, wo = g[13], g[14], g[15]
    if _depthwise(g):
        return [(K.DW_FWD, flat_grid(n * oc * ho * wo), [("table", g), ("buf", o["x"]), ("buf", o["w"]), ("buf", o["y"])])]
    return [(G.CONV_FWD.kernel(), _gemm_grid(oc // groups, ho * wo, n * groups),
             [("table", g), ("buf", o["x"]), ("buf", o["w"]), ("buf", o["y"])])]


@plans("conv2d_backward_input")
def _conv2d_backward_input(o, variant):
    g = _geometry(o)
    n, c, h, w = g[:4]
    groups = g[13]
    args = [("table", g), ("buf", o["dy"]), ("buf", o["w"]), ("buf", o["dx"])]
    if _depthwise(g):
        return [(K.DW_DX, flat_grid(n * c * h * w), args)]
    return [(G.CONV_DX.kernel(), _gemm_grid(c // groups, h * w, n * groups), args)]


@plans("conv2d_backward_weight")
def _conv2d_backward_weight(o, variant):
    g = _geometry(o)
    c, oc, kh, kw = g[1], g[4], g[5], g[6]
    groups = g[13]
    ab = o.get("ab")
    args = [("table", g), ("buf", o["x"]), ("buf", o["dy"]), ("buf", o["dw"]),
            ("buf", ab) if ab is not None else ("scratch", 0), ("long", int(ab is not None))]
    if _depthwise(g):
        return [(K.DW_DW, rows_grid(oc * kh * kw, K.ROW), args)]
    return [(G.CONV_DW.kernel(), _gemm_grid(oc // groups, (c // groups) * kh * kw, groups), args)]


@plans("softmax", "", "log")
def _softmax(o, variant):
    outer, n, inner = _ints(o["layout"])
    return [(K.SOFTMAX, rows_grid(outer * inner, K.ROW), [("long", outer), ("long", n), ("long", inner),
                                                          ("buf", o["x"]), ("buf", o["y"]), ("long", int(variant == "log"))])]


@plans("softmax_backward", "", "log")
def _softmax_backward(o, variant):
    outer, n, inner = _ints(o["layout"])
    return [(K.SOFTMAX_BACKWARD, rows_grid(outer * inner, K.ROW),
             [("long", outer), ("long", n), ("long", inner), ("buf", o["y"]), ("buf", o["dy"]), ("buf", o["dx"]),
              ("long", int(variant == "log"))])]


@plans("layer_norm")
def _layer_norm(o, variant):
    rows, n = _ints(o["rows"])
    return [(K.LAYER_NORM, rows_grid(rows, K.ROW), [("long", rows), ("long", n), ("buf", o["x"]), ("buf", o["gamma"]),
                                                    ("buf", o["beta"]), ("float", o["eps"]), ("buf", o["y"])])]


@plans("rms_norm")
def _rms_norm(o, variant):
    rows, n = _ints(o["rows"])
    return [(K.RMS_NORM, rows_grid(rows, K.ROW), [("long", rows), ("long", n), ("buf", o["x"]), ("buf", o["gamma"]),
                                                  ("float", o["eps"]), ("buf", o["y"])])]


def _norm_backward(kernel):
    def plan(o, variant):
        rows, n = _ints(o["rows"])
        if variant == "gamma":
            rms = int(kernel is K.RMS_NORM_BACKWARD)
            return [(K.NORM_STATS, rows_grid(rows, K.ROW), [("long", rows), ("long", n), ("buf", o["x"]), ("float", o["eps"]),
                                                            ("long", rms), ("scratch", 0)]),
                    (K.NORM_GAMMA, flat_grid(n), [("long", rows), ("long", n), ("buf", o["x"]), ("buf", o["dy"]),
                                                  ("scratch", 0), ("buf", o["dgamma"])])]
        return [(kernel, rows_grid(rows, K.ROW), [("long", rows), ("long", n), ("buf", o["x"]), ("buf", o["gamma"]),
                                                  ("buf", o["dy"]), ("float", o["eps"]), ("buf", o["dx"])])]
    return plan


plans("layer_norm_backward", "", "gamma")(_norm_backward(K.LAYER_NORM_BACKWARD))
plans("rms_norm_backward", "", "gamma")(_norm_backward(K.RMS_NORM_BACKWARD))


def _labels64(o, key: str) -> View:
    v = o[key]
    if v.dtype not in ("i64", "i32"):
        raise UnsupportedCall(f"indices of dtype {v.dtype}: the data-parallel library takes int64 or int32")
    return v


def _ix(kd, o, key: str):
    """`kd` in the form for the index operand's dtype."""
    return K.with_index(kd, o[key].dtype)


@plans("cross_entropy", "", "i32")
def _cross_entropy(o, variant):
    n, c, inner = o["n"], o["c"], o["inner"]
    rows = n * inner
    return [(_ix(K.CE_ROWS, o, "labels"), rows_grid(rows, K.ROW), [("long", n), ("long", c), ("long", inner), ("buf", o["logits"]),
                                                 ("buf", _labels64(o, "labels")), ("long", o["ignore_index"]),
                                                 ("scratch", 0)]),
            (K.CE_TOTAL, Grid((1, 1, 1), (K.ROW, 1, 1)), [("long", rows), ("scratch", 0), ("long", o["mean"]),
                                                           ("buf", o["loss"])])]


@plans("cross_entropy_backward", "", "i32")
def _cross_entropy_backward(o, variant):
    n, c, inner = o["n"], o["c"], o["inner"]
    rows = n * inner
    labels = _labels64(o, "labels")
    return [(_ix(K.CE_COUNT, o, "labels"), Grid((1, 1, 1), (K.ROW, 1, 1)), [("long", rows), ("buf", labels), ("long", o["ignore_index"]),
                                                           ("scratch", 0)]),
            (_ix(K.CE_BACKWARD, o, "labels"), rows_grid(rows, K.ROW),
             [("long", n), ("long", c), ("long", inner), ("buf", o["logits"]), ("buf", labels), ("buf", o["dloss"]),
              ("scratch", 0), ("long", o["ignore_index"]), ("long", o["mean"]), ("buf", o["dlogits"])])]


@plans("mse")
def _mse(o, variant):
    return [(K.MSE, Grid((1, 1, 1), (K.ROW, 1, 1)), [("long", o["count"]), ("buf", o["pred"]), ("buf", o["target"]),
                                                      ("long", o["mean"]), ("buf", o["loss"])])]


@plans("global_avg_pool")
def _global_avg_pool(o, variant):
    return [(K.GLOBAL_AVG_POOL, rows_grid(o["planes"], K.ROW), [("long", o["planes"]), ("long", o["size"]),
                                                                ("buf", o["x"]), ("buf", o["y"])])]


def _reduce_table(dims, xs, ys) -> tuple[tuple[int, ...], int, int]:
    """(the kernel's table: kept dims, their x and y strides, reduced dims, their x
    strides, each padded to 6), outputs, reduced count."""
    kept = [(d, x, y) for d, x, y in zip(dims, xs, ys) if y != 0 and d > 1]
    red = [(d, x) for d, x, y in zip(dims, xs, ys) if y == 0 and d > 1]
    pad = lambda rows, width, fill: [fill] * (6 - len(rows)) + rows
    kd = pad([d for d, _, _ in kept], 6, 1)
    kx = pad([x for _, x, _ in kept], 6, 0)
    ky = pad([y for _, _, y in kept], 6, 0)
    rd = pad([d for d, _ in red], 6, 1)
    rx = pad([x for _, x in red], 6, 0)
    ny = 1
    for d in kd:
        ny *= d
    count = 1
    for d in rd:
        count *= d
    return tuple(kd + kx + ky + rd + rx), ny, count


@plans("reduce", "sum_f32", "max_f32", "sum_i64", "max_i64", "sum_i32", "max_i32", "any_i1", "max_i1", "sum_i1")
def _reduce(o, variant):
    kind, dtype = variant.split("_")
    table, ny, count = _reduce_table(_ints(o["dims"]), _ints(o["x_strides"]), _ints(o["y_strides"]))
    kind = "max" if kind == "any" else kind
    args = [("long", ny), ("long", count), ("table", table), ("buf", o["x"]), ("buf", o["y"]), ("float", o["scale"])]
    if dtype == "f32" and count >= 64:
        kd = next(k for k in K.LIBRARY if k.name == f"pk_reduce_{kind}_group_f32")
        return [(kd, rows_grid(ny, K.ROW), args)]
    kd = next(k for k in K.LIBRARY if k.name == f"pk_reduce_{kind}_item_{dtype}")
    return [(kd, flat_grid(ny), args)]


@plans("max_pool2d")
def _max_pool2d(o, variant):
    g = _ints(o["geometry"])
    return [(K.MAX_POOL, flat_grid(g[0] * g[11] * g[12]), [*(("long", v) for v in g), ("buf", o["x"]), ("buf", o["y"])])]


@plans("max_pool2d_backward")
def _max_pool2d_backward(o, variant):
    g = _ints(o["geometry"])
    return [(K.MAX_POOL_BACKWARD, flat_grid(g[0] * g[1] * g[2]),
             [*(("long", v) for v in g), ("buf", o["x"]), ("buf", o["dy"]), ("buf", o["dx"])])]


@plans("avg_pool2d")
def _avg_pool2d(o, variant):
    g = _ints(o["geometry"])
    return [(K.AVG_POOL, flat_grid(g[0] * g[11] * g[12]),
             [*(("long", v) for v in g), ("long", o["pad_bottom"]), ("long", o["pad_right"]),
              ("long", o["count_include_pad"]), ("buf", o["x"]), ("buf", o["y"])])]


@plans("avg_pool2d_backward")
def _avg_pool2d_backward(o, variant):
    g = _ints(o["geometry"])
    return [(K.AVG_POOL_BACKWARD, flat_grid(g[0] * g[1] * g[2]),
             [*(("long", v) for v in g), ("long", o["pad_bottom"]), ("long", o["pad_right"]),
              ("long", o["count_include_pad"]), ("buf", o["dy"]), ("buf", o["dx"])])]


@plans("gather", "", "i32")
def _gather(o, variant):
    row = o["inner_bytes"]
    word, size, dt = ("i32", 4, "i32") if row % 4 == 0 else ("u8", 1, "i1")
    x, y = o["x"], o["y"]
    words = lambda v: View(v.storage, dt, (v.size * _itemsize(v) // size,), v.offset * _itemsize(v) // size)
    return [(_ix(K.gather_rows(word), o, "index"), flat_grid(o["outer"] * o["count"] * (row // size)),
             [("long", o["outer"]), ("long", o["n"]), ("long", row // size), ("long", o["count"]), ("buf", words(x)),
              ("buf", _labels64(o, "index")), ("buf", words(y))])]


def _itemsize(v: View) -> int:
    from ..kernel_ir import ITEMSIZE

    return ITEMSIZE[v.dtype]


@plans("gather_backward", "", "i32")
def _gather_backward(o, variant):
    dx = o["dx"]
    total = o["outer"] * o["n"] * o["inner"]
    return [(K.FILL_F32, flat_grid(total), [("long", total), ("buf", dx), ("float", 0.0)]),
            (_ix(K.GATHER_BACKWARD, o, "index"), flat_grid(o["outer"] * o["count"] * o["inner"]),
             [("long", o["outer"]), ("long", o["n"]), ("long", o["inner"]), ("long", o["count"]), ("buf", o["dy"]),
              ("buf", _labels64(o, "index")), ("long", o["padding_idx"]), ("buf", dx)])]


@plans("cumsum", "f32", "i64")
def _cumsum(o, variant):
    outer, n, inner = _ints(o["layout"])
    return [(K.CUMSUM if variant == "f32" else K.CUMSUM_I64, flat_grid(outer * inner), [("long", outer), ("long", n), ("long", inner), ("buf", o["x"]),
                                                  ("buf", o["y"])])]


@plans("gather_elements", "", "i32")
def _gather_elements(o, variant):
    item = {1: "u8", 4: "i32", 8: "i64"}.get(o["itemsize"])
    if item is None:
        raise UnsupportedCall(f"gather_elements of {o['itemsize']}-byte elements")
    x, y = o["x"], o["y"]
    as_item = lambda v: View(v.storage, item if item != "u8" else "i1", v.shape, v.offset, v.strides)
    return [(_ix(K.gather_elements(item), o, "index"), flat_grid(y.size),
             [("table", _ints(o["dims"])), ("table", _ints(o["strides"])), ("long", o["axis_stride"]), ("long", o["n"]),
              ("long", y.size), ("buf", as_item(x)), ("buf", o["index"]), ("buf", as_item(y))])]


@plans("gather_elements_backward", "", "i32")
def _gather_elements_backward(o, variant):
    dx, dy = o["dx"], o["dy"]
    return [(K.FILL_F32, flat_grid(dx.size), [("long", dx.size), ("buf", dx), ("float", 0.0)]),
            (_ix(K.GATHER_ELEMENTS_BACKWARD, o, "index"), flat_grid(dy.size),
             [("table", _ints(o["dims"])), ("table", _ints(o["strides"])), ("long", o["axis_stride"]), ("long", o["n"]),
              ("long", dy.size), ("buf", dy), ("buf", o["index"]), ("buf", dx)])]


LCE_FLOATS = 16 << 20  # floats of one chunk's logits on a device (64 MiB): W5's 32000 classes, 524 rows


def _lce_chunk(o) -> int:
    m, _, c = _ints(o["geometry"])[:3]
    return max(1, min(m, max(_ints(o["geometry"])[3], LCE_FLOATS // max(c, 1))))


def _lce_layout(o) -> tuple[int, int]:
    """Scratch floats: [0] the label count, [2, 2 + M) the row losses, then the chunk's logits."""
    m = _ints(o["geometry"])[0]
    logits = -(-(2 + m) // 16) * 16
    return logits, logits + _lce_chunk(o) * _ints(o["geometry"])[2]


@plans("linear_cross_entropy", "", "i32")
def _linear_cross_entropy(o, variant):
    """Chunk by chunk over the rows (the chunk sized for device memory, not the host's cache):
    L = x_c·wᵀ; the row kernel (loss, gradient in place); dx_c = L·w; dw = alpha·Lᵀ·x_c + beta·dw
    (beta on the first chunk, then 1); db = Σ L."""
    m, k, c, _, rsx, csx, ws0, ws1, _, ignore, mean, nl = _ints(o["geometry"])
    x, w, bias, labels = o["x"], o["w"], o.get("bias"), _labels64(o, "labels")
    dx, dw, db, ab, loss, dloss = (o.get(n) for n in ("dx", "dw", "db", "ab", "loss", "dloss"))
    backward = dx is not None or dw is not None or db is not None
    at, _ = _lce_layout(o)
    rows = _lce_chunk(o)
    out = [(_ix(K.LCE_COUNT, o, "labels"), Grid((1, 1, 1), (K.ROW, 1, 1)),
            [("long", nl), ("buf", labels), ("long", ignore), ("scratch", 0)])]
    for r0 in range(0, m, rows):
        n = min(rows, m - r0)
        xc = View(x.storage, x.dtype, (n, k), x.offset + r0 * rsx, (rsx, csx))
        out.append(_gemm_rows(n, c, k, xc, rsx, csx, w, ws1, ws0, ("scratch", at), c))
        out.append((_ix(K.LCE_ROWS, o, "labels"), rows_grid(n, K.ROW),
                    [("long", n), ("long", c), ("long", r0), ("scratch", at),
                     ("buf", bias) if bias is not None else ("scratch", 0), ("long", int(bias is not None)),
                     ("buf", labels), ("buf", o["rows"]), ("long", ignore),
                     ("buf", dloss) if dloss is not None else ("scratch", 0), ("scratch", 0), ("long", mean),
                     ("long", int(backward)), ("scratch", 2)]))
        if dx is not None:
            dxc = View(dx.storage, dx.dtype, (n, k), dx.offset + r0 * k)
            out.append(_gemm_rows(n, k, c, ("scratch", at), c, 1, w, ws0, ws1, dxc, k))
        if dw is not None:
            out.append(_gemm_rows(c, k, n, ("scratch", at), 1, c, xc, rsx, csx, dw, k, ab, int(r0 > 0)))
        if db is not None:
            out.append((K.LCE_DB, flat_grid(c), [("long", n), ("long", c), ("scratch", at), ("buf", db),
                                                 ("long", int(r0 == 0))]))
    if loss is not None:
        out.append((K.LCE_TOTAL, Grid((1, 1, 1), (K.ROW, 1, 1)),
                    [("long", m), ("scratch", 2), ("scratch", 0), ("long", mean), ("buf", loss)]))
    return out


def _gemm_rows(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, ab=None, beta_one=0):
    """One GEMM whose operands may be scratch (("scratch", at)) or views."""
    arg = lambda v: v if isinstance(v, tuple) else ("buf", v)
    kd, grid, args = gemm(1, (0, 0, 0), m, n, k, a if isinstance(a, View) else None, rsa, csa,
                          b if isinstance(b, View) else None, rsb, csb, c if isinstance(c, View) else None, ldc,
                          ab, beta_one)
    args[4], args[7], args[10] = arg(a), arg(b), arg(c)
    return kd, grid, args


def scratch_floats(call: Call) -> int:
    """Floats of scratch a call's launches use (per-row statistics, partial sums)."""
    o = call.operands
    if call.op in ("cross_entropy", "cross_entropy_backward"):
        return 2 * o["n"] * o["inner"] + 2
    if call.op == "linear_cross_entropy":
        return _lce_layout(o)[1]
    if call.op.endswith("norm_backward") and call.variant == "gamma":
        return 2 * _ints(o["rows"])[0]
    return 2  # a dummy (alpha, beta) slot where a GEMM has none

