"""`autodiff`: derive the whole training step at compile time.

From `func.func @forward(inputs...) -> logits` it creates

    func.func @train_step(inputs..., %labels) -> tensor<f32>      // returns the loss
      <forward, cloned>
      %loss = train.cross_entropy %logits, %labels                 // or mse, next_token
      <backward: the VJP rules of passes/vjp/, seeded with dℓ = 1.0>
      <per trainable parameter, in declaration order:>
      %p = train.get @fc.weight
      %p1 = train.sgd %p, %g {lr = 0.05}                           // or train.adam, + state
      train.set @fc.weight, %p1

and leaves `@forward` as the evaluation function. Gradients exist only for float values
that depend on a trainable parameter and reach the loss; a parameter whose gradient is
never formed gets no update (like PyTorch skips `grad is None`). Optimizer state
(`@<param>.momentum`, `@<param>.exp_avg`, `@<param>.exp_avg_sq`, `@optimizer.step`) is declared
as `train.param` with role "optimizer_state"; `run_pipeline` gives it zeros. See
docs/training-ir.md for the full contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pockengine.ir import types as T
from pockengine.ir.ops.norm import BatchNormOp
from pockengine.ir.ops.state import GetOp, ParamOp, SetOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, StringAttr, i64
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from .vjp import Builder, MissingRuleError, rule_for

LOSSES = ("cross_entropy", "mse", "next_token")
OPTIMIZERS = ("sgd", "adam", "adamw")
STEP = "optimizer.step"


def backward(ops: list[Operation], loss: SSAValue, b: Builder, sources: set[SSAValue],
             fn_name: str = "train_step") -> dict[SSAValue, SSAValue]:
    """Append the backward pass of `ops` (in order) from `loss` to `b`.

    Returns the gradient of every value on a path from a source to the loss. Only float
    values downstream of `sources` count; each value's gradient is the sum over its uses.
    """
    live = set(sources)
    for op in ops:
        if any(o in live for o in op.operands):
            live.update(r for r in op.results if T.is_float(r))
    grads: dict[SSAValue, SSAValue] = {loss: b.const(1.0, loss)}
    for index in reversed(range(len(ops))):
        op = ops[index]
        outs = [grads.get(r) for r in op.results]
        if all(g is None for g in outs) or not any(o in live for o in op.operands):
            continue
        ins = rule_for(op, f" (op {index} of @{fn_name})")(b, op, outs)
        if len(ins) != len(op.operands):
            raise PassFailedException(f"the gradient rule of {op.name} gave {len(ins)} gradients "
                                      f"for {len(op.operands)} operands")
        for i, (o, g) in enumerate(zip(op.operands, ins)):
            if g is None or o not in live:
                continue
            if g.type != o.type:
                raise PassFailedException(f"the gradient rule of {op.name} gave {g.type} for operand "
                                          f"#{i} of type {o.type}")
            grads[o] = b.add(grads[o], g) if o in grads else g
            if grads[o].name_hint is None and o.name_hint:
                grads[o].name_hint = f"d_{o.name_hint}"
    return grads


def use_batch_statistics(block: Block, momentum: float) -> None:
    """Training-mode BatchNorm (nn.BatchNorm2d.train()): normalize with the batch's mean and
    biased variance, computed in the IR so the gradient flows through them, and fold them into
    the running statistics: r ← (1 - momentum)·r + momentum·stat (the variance unbiased)."""
    for bn in [op for op in block.ops if isinstance(op, BatchNormOp)]:
        b, x = Builder(block, before=bn), bn.x
        xs = T.shape(x)
        red, per_c, n = [0, *range(2, len(xs))], [1, xs[1]] + [1] * (len(xs) - 2), math.prod(xs) // xs[1]
        mean = b.mean(x, axes=red)
        centered = b.sub(x, b.reshape(mean, shape=per_c))
        var = b.mean(b.mul(centered, centered), axes=red)
        y = b.batch_norm(x, bn.gamma, bn.beta, mean, var, eps=bn.p.eps)
        for running, stat, unbias in ((bn.mean, mean, 1.0), (bn.var, var, n / max(n - 1, 1))):
            if isinstance(running.owner, GetOp):
                new = b.add(b.scale(running, 1 - momentum), b.scale(stat, momentum * unbias))
                b.insert(SetOp.of(running.owner.param.root_reference.data, new))
        bn.results[0].replace_all_uses_with(y)
        block.erase_op(bn)


def emit_loss(b: Builder, kind: str, logits: SSAValue, labels: SSAValue) -> SSAValue:
    if kind == "cross_entropy":
        return b.cross_entropy(logits, labels)
    if kind == "mse":
        return b.mse(logits, labels)
    # next_token: position t predicts token t + 1 (HF's causal-LM loss, ignore_index -100)
    bsz, steps, vocab = T.shape(logits)
    head = b.slice(logits, axes=[1], starts=[0], ends=[steps - 1])
    tail = b.slice(labels, axes=[1], starts=[1], ends=[steps])
    n = bsz * (steps - 1)
    return b.cross_entropy(b.reshape(head, shape=[n, vocab]), b.reshape(tail, shape=[n]))


def label_type(kind: str, logits: SSAValue):
    s = T.shape(logits)
    if kind == "mse":
        return logits.type
    if kind == "next_token" and len(s) != 3:
        raise PassFailedException(f"loss=next_token needs logits [B, T, V], got {T.fmt(s)}")
    if kind == "cross_entropy" and len(s) < 2:
        raise PassFailedException(f"loss=cross_entropy needs logits [N, C, ..], got {T.fmt(s)}")
    return T.tensor(s[:2] if kind == "next_token" else s[:1] + s[2:], i64)


@dataclass
class Updates:
    """Emits one optimizer update per parameter and declares its state."""

    opts: Autodiff
    module: ModuleOp
    b: Builder
    step: SSAValue | None = None

    def __post_init__(self):
        decls = [o for o in self.module.ops if isinstance(o, ParamOp)]
        self.names = {d.sym_name.data for d in decls}
        self.anchor = decls[-1]  # new state goes after the last declaration, in creation order

    def declare(self, name: str, like: ParamOp | None) -> SSAValue:
        if name in self.names:
            raise PassFailedException(f"optimizer state @{name} already exists (run autodiff once)")
        decl = ParamOp(name, like.type if like is not None else T.tensor(()), "optimizer_state", False)
        self.module.body.block.insert_op_after(decl, self.anchor)
        self.names.add(name)
        self.anchor = decl
        return _hint(self.b.insert(GetOp.of(decl)).results[0], name)

    def stateful(self) -> bool:
        return self.opts.optimizer != "sgd" or self.opts.momentum != 0

    def count_step(self) -> None:
        t = self.declare(STEP, None)
        self.step = self.b.add(t, self.b.const(1.0, t))
        self.step.name_hint = "step"
        self.b.insert(SetOp.of(STEP, self.step))

    def update(self, param: ParamOp, grad: SSAValue) -> None:
        o, b, name = self.opts, self.b, param.sym_name.data
        value = b.insert(GetOp.of(param)).results[0]
        if o.optimizer == "sgd" and o.momentum == 0:
            new, state = (b.sgd(value, grad, lr=o.lr, weight_decay=o.weight_decay),), []
        elif o.optimizer == "sgd":
            state = [f"{name}.momentum"]
            new = b.sgd(value, grad, self.declare(state[0], param), self.step, lr=o.lr, momentum=o.momentum,
                        dampening=o.dampening, nesterov=o.nesterov, weight_decay=o.weight_decay)
        else:
            state = [f"{name}.exp_avg", f"{name}.exp_avg_sq"]
            moments = [self.declare(s, param) for s in state]
            new = b.adam(value, grad, *moments, self.step, lr=o.lr, beta1=o.beta1, beta2=o.beta2, eps=o.eps,
                         weight_decay=o.weight_decay, decoupled=o.optimizer == "adamw")
        _hint(value, name)
        for target, v in zip([name, *state], new):
            _hint(v, f"{target}.new")
            b.insert(SetOp.of(target, v))


def _hint(value: SSAValue, name: str) -> SSAValue:
    """Name an SSA value after a parameter when the name is a valid SSA name (`%fc1.weight.new`)."""
    if SSAValue.is_valid_name(name):
        value.name_hint = name
    return value


def build_train_step(module: ModuleOp, opts: Autodiff) -> func.FuncOp:
    fns = {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}
    if opts.forward not in fns:
        raise PassFailedException(f"no @{opts.forward} function (the module has: {', '.join(fns) or 'none'})")
    if "train_step" in fns:
        raise PassFailedException("the module already has @train_step")
    step = fns[opts.forward].clone()
    step.sym_name = StringAttr("train_step")
    block = step.body.block
    ret = block.last_op
    if not isinstance(ret, func.ReturnOp) or len(ret.operands) != 1:
        raise PassFailedException(f"@{opts.forward} must return exactly one value (the logits)")
    logits = ret.operands[0]
    block.erase_op(ret)
    if opts.batch_norm == "batch":
        use_batch_statistics(block, opts.bn_momentum)
    labels = block.insert_arg(label_type(opts.loss, logits), len(block.args))
    labels.name_hint = "labels"
    b = Builder(block)
    loss = emit_loss(b, opts.loss, logits, labels)
    loss.name_hint = "loss"
    forward_ops = list(block.ops)

    params = [p for p in module.ops if isinstance(p, ParamOp) and p.is_trainable]
    if not params:
        declared = sum(1 for p in module.ops if isinstance(p, ParamOp))
        raise PassFailedException(f"@{opts.forward}: nothing to train: the module declares no trainable "
                                  f"train.param ({declared} declared, none with trainable = true)")
    trained = {p.sym_name.data for p in params}
    reads = [op for op in forward_ops if isinstance(op, GetOp) and op.param.root_reference.data in trained]
    try:
        grads = backward(forward_ops, loss, b, {op.result for op in reads})
    except MissingRuleError as e:
        raise PassFailedException(str(e)) from None

    updates = Updates(opts, module, b)
    per_param = []
    for p in params:
        gs = [grads[r.result] for r in reads if r.param.root_reference.data == p.sym_name.data and r.result in grads]
        if gs:
            total = gs[0]
            for g in gs[1:]:
                total = b.add(total, g)
            per_param.append((p, total))
    if per_param and updates.stateful():
        updates.count_step()
    for p, g in per_param:
        updates.update(p, g)

    b.insert(func.ReturnOp(loss))
    step.function_type = FunctionType.from_lists(block.arg_types, [loss.type])
    _erase_unused(b.created)
    module.body.block.add_op(step)
    return step


def _erase_unused(ops: list[Operation]) -> None:
    """Drop what the rules emitted but no update needs (e.g. the gradient of the input)."""
    for op in reversed(ops):
        if not isinstance(op, (SetOp, func.ReturnOp)) and all(not r.uses for r in op.results):
            op.detach()
            op.erase()


@dataclass(frozen=True)
class Autodiff(ModulePass):
    """Create @train_step (forward, loss, backward, optimizer updates) from @forward.

    loss: cross_entropy | mse | next_token;  optimizer: sgd | adam | adamw;
    hyper-parameters as in torch.optim (SGD: lr, momentum, dampening, nesterov,
    weight_decay; Adam/AdamW: lr, beta1, beta2, eps, weight_decay).
    """

    name = "autodiff"

    loss: str = "cross_entropy"
    optimizer: str = "sgd"
    # numbers also come as strings: xDSL's option lexer reads `1e-6` as a word, not a float
    lr: int | float | str = 0.01
    momentum: int | float | str = 0.0
    dampening: int | float | str = 0.0
    nesterov: bool = False
    weight_decay: int | float | str = 0.0
    beta1: int | float | str = 0.9
    beta2: int | float | str = 0.999
    eps: int | float | str = 1e-8
    # BatchNorm statistics: "frozen" (running statistics, eval mode: the fine-tuning default) or
    # "batch" (batch statistics and running-statistic updates, nn.BatchNorm2d in train mode)
    batch_norm: str = "frozen"
    bn_momentum: int | float | str = 0.1
    forward: str = "forward"

    def __post_init__(self):
        from .hyperparameters import check_hyperparameter  # one check for options, compile() and the CLI

        for name in ("lr", "momentum", "dampening", "weight_decay", "beta1", "beta2", "eps", "bn_momentum"):
            object.__setattr__(self, name, check_hyperparameter(name, getattr(self, name)))
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.batch_norm not in ("frozen", "batch"):
            raise ValueError(f"batch_norm must be frozen or batch, got {self.batch_norm!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs optimizer=sgd, momentum > 0 and dampening=0 (as torch.optim.SGD)")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        build_train_step(op, self)
