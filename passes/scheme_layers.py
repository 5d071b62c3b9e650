"""What a scheme talks about: the layers of a model, read off the IR.

A *layer* is one weight-bearing op (conv2d, linear, matmul or embedding gather with a
parameter operand) together with the parameters of the bias add and normalization that
directly consume its output — a conv + its BatchNorm is one layer, as in TTE where BN is
folded into the conv. A norm or bias that does not directly follow such an op is a layer of
its own (kind "norm" or "other"); layers holding only state (statistics, rotary tables) do
not count. Layers are named after the module prefix of their first
parameter (`features.3.conv.0.0.weight` → `features.3.conv.0.0`) and numbered in order of
first use in @forward (or @train_step when there is no @forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import GetOp, ParamOp
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

# op → (layer kind, operand indices that hold the layer's weight)
ANCHORS: dict[type[Operation], tuple[str, tuple[int, ...]]] = {
    L.Conv2dOp: ("conv", (1,)),
    L.LinearOp: ("linear", (1,)),
    L.MatmulOp: ("matmul", (0, 1)),
    S.GatherOp: ("embedding", (0,)),
}
NORMS = (N.BatchNormOp, N.LayerNormOp, N.RmsNormOp)
# ops that join the layer whose output they consume (bias adds, norms, per-channel scales)
JOINERS = (E.AddOp, E.MulOp, *NORMS)
JOINABLE = ("conv", "linear", "matmul")
# views a parameter may pass through on its way to its op
VIEWS = (S.ReshapeOp, S.TransposeOp, S.BroadcastOp, E.CastOp)
NOT_SCHEME_ROLES = ("optimizer_state", "running_mean", "running_var", "buffer")


@dataclass
class Layer:
    index: int
    name: str
    kind: str  # conv | linear | matmul | embedding | norm | other
    params: list[str] = field(default_factory=list)


def module_prefix(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else param


def param_of(value: SSAValue) -> str | None:
    """The parameter a value reads, looking through views (reshape, transpose, cast)."""
    owner = value.owner
    while isinstance(owner, VIEWS):
        owner = owner.operands[0].owner
    return owner.param.root_reference.data if isinstance(owner, GetOp) else None


def model_function(module: ModuleOp) -> func.FuncOp | None:
    fns = {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}
    return fns.get("forward") or fns.get("train_step") or next(iter(fns.values()), None)


def params(module: ModuleOp) -> dict[str, ParamOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, ParamOp)}


def scheme_candidates(module: ModuleOp) -> list[str]:
    """Parameters a scheme decides about: trainable, and not optimizer/statistics state."""
    return [n for n, p in params(module).items() if p.is_trainable and p.role.data not in NOT_SCHEME_ROLES]


def find_layers(module: ModuleOp) -> list[Layer]:
    fn = model_function(module)
    declared = params(module)
    layers: list[Layer] = []
    owner: dict[str, Layer] = {}
    output_of: dict[SSAValue, Layer] = {}  # values a joiner may extend a layer from
    if fn is None:
        return layers
    for op in fn.walk():
        used = [(i, p) for i, v in enumerate(op.operands) if (p := param_of(v)) in declared and p not in owner]
        if not used or isinstance(op, VIEWS):
            continue
        kind, slots = ANCHORS.get(type(op), (None, ()))
        weight = next((p for i, p in used if i in slots), None)
        layer = None
        if weight is not None:
            layer = Layer(len(layers), module_prefix(weight), kind)
            layers.append(layer)
        elif isinstance(op, JOINERS):  # (a norm right after an embedding is the next block's)
            layer = next((output_of[v] for v in op.operands if v in output_of and output_of[v].kind in JOINABLE), None)
        if layer is None:
            name = module_prefix(used[0][1])
            layer = next((lay for lay in layers if lay.name == name and lay.kind in ("norm", "other")), None)
            if layer is None:
                layer = Layer(len(layers), name, "norm" if isinstance(op, NORMS) else "other")
                layers.append(layer)
        for _, p in used:
            if p not in owner:
                layer.params.append(p)
                owner[p] = layer
        output_of.update({r: layer for r in op.results})
    # layers of state alone (BN statistics, rotary tables) are nothing a scheme can train
    candidates = set(scheme_candidates(module))
    layers = [lay for lay in layers if any(p in candidates for p in lay.params)]
    for i, lay in enumerate(layers):
        lay.index = i
    return layers


def forward_uses(module: ModuleOp, param: str) -> list[tuple[Operation, int, tuple[int, ...] | None]]:
    """(op, operand index, transpose perm or None) for each use of `param` in the model function."""
    fn = model_function(module)
    out = []
    if fn is None:
        return out
    for op in fn.walk():
        if isinstance(op, VIEWS):
            continue
        for i, v in enumerate(op.operands):
            if param_of(v) == param:
                perm = v.owner.p.perm if isinstance(v.owner, S.TransposeOp) else None
                chain_ok = perm is not None or isinstance(v.owner, GetOp)
                out.append((op, i, perm if chain_ok else ()))
    return out


def is_additive(module: ModuleOp, param: str) -> bool:
    """A bias: role "bias", or the shift (beta) of a batch/layer norm."""
    decl = params(module).get(param)
    if decl is not None and decl.role.data == "bias":
        return True
    return any(isinstance(op, (N.BatchNormOp, N.LayerNormOp)) and i == 2 for op, i, _ in forward_uses(module, param))


def ratio_axis(module: ModuleOp, param: str) -> tuple[int, int] | None:
    """(axis, channels) a channel ratio slices for a weight, or None when it has no such axis.

    conv2d OIHW: the input-channel axis 1 (depthwise: the channel axis 0); linear [out, in]:
    axis 1; matmul: the contracted axis of the operand. Every use must agree."""
    axes = set()
    uses = forward_uses(module, param)
    for op, i, perm in uses:
        if perm == ():  # reached through a reshape or cast: no channel axis to speak of
            return None
        shape = T.shape(op.operands[i])
        if isinstance(op, L.Conv2dOp) and i == 1:
            depthwise = op.p.groups > 1 and shape[1] == 1 and op.p.groups == T.shape(op.operands[0])[1]
            axis = 0 if depthwise else 1
        elif isinstance(op, L.LinearOp) and i == 1:
            axis = 1
        elif isinstance(op, L.MatmulOp):
            axis = len(shape) - 2 if i == 1 else len(shape) - 1
        else:
            return None
        axes.add(perm[axis] if perm else axis)
    if len(axes) != 1:
        return None
    axis = axes.pop()
    decl = params(module)[param]
    return axis, decl.type.get_shape()[axis]
