"""memory-plan: one static arena for every intermediate tensor, and as little of it as the
step order allows.

Runs on the kernel IR of each function (backends/lower_to_kernels.py), in four moves:

1. In-place parameter updates: `train.set @w, %v` makes %v's storage the parameter's own
   bytes when every read of the old @w comes before %v is written (or in the same aligned
   elementwise step, as `w - lr * m` is) — no copy and no arena bytes for %v.
2. Outputs: a returned value is computed straight into the caller's buffer.
3. In-place steps: an elementwise step (or a kernel that declares it) writes its result over
   an input whose last use it is.
4. Offsets: live ranges over the step order, then greedy-by-size placement (largest first,
   lowest offset that no overlapping live range uses), 64-byte aligned.

The report compares the arena with its lower bound, the maximum bytes live at one step, and
splits the peak into weights, optimizer state, saved activations (forward values still live
in the backward), gradients (and other backward temporaries), workspace (kernel scratch).
`memory-plan` the pass annotates each value of the train IR with its place (`mem = ...`) and
the module with the report, so pock-opt shows the plan.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.passes import ModulePass

from .kernel_ir import (
    Call,
    KernelFunction,
    KernelProgram,
    Map,
    Storage,
    View,
    align,
    broadcast_strides,
)


def _storages(views) -> set[int]:
    return {id(v.storage.resolve()) for v in views}


def _covers(v: View, s: Storage) -> bool:
    return v.offset == 0 and v.is_contiguous and v.nbytes == s.nbytes


def _aligned_reads(step, written: Storage, read: Storage) -> bool:
    """Every read of `read` in `step` addresses exactly the element `step` writes to
    `written` at the same time (so reading then writing in place is safe)."""
    if isinstance(step, Map):
        outs = [o for o in step.outputs if o.storage.resolve() is written]
        for v in step.inputs:
            if v.storage.resolve() is not read:
                continue
            vs = broadcast_strides(v, step.shape)
            if 0 in vs or not any(broadcast_strides(o, step.shape) == vs and o.offset == v.offset for o in outs):
                return False
        return True
    if isinstance(step, Call):
        pairs = {(w, r) for w, r in step.inplace}
        for j, v in enumerate(step.reads):
            if v.storage.resolve() is read and not any(
                    (w, j) in pairs and step.writes[w].storage.resolve() is written for w in range(len(step.writes))):
                return False
        return True
    return False


def _index(steps, attr: str) -> dict[int, list[int]]:
    """storage id → the sorted indices of the steps that read (or write) it."""
    out: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        for k in _storages(getattr(s, attr)):
            out.setdefault(k, []).append(i)
    return out


def inplace_parameter_updates(kf: KernelFunction) -> int:
    """Move 1. Returns how many updates became in place."""
    steps = kf.steps
    position = {id(s): i for i, s in enumerate(steps)}
    reads, writes = _index(steps, "reads"), _index(steps, "writes")
    set_positions: dict[str, list[int]] = {}
    for req in kf.sets:
        set_positions.setdefault(req.slot.name, []).append(position[id(req.step)])
    removed: set[int] = set()
    last_set: dict[str, int] = {}
    for req in kf.sets:
        k = position[id(req.step)]
        S, PS = req.value.storage.resolve(), req.slot.storage.resolve()
        start = last_set.get(req.slot.name, -1)
        last_set[req.slot.name] = k
        if S.region != "arena" or not _covers(req.value, S) or S.nbytes != PS.nbytes or req.value.dtype != req.slot.dtype:
            continue
        old = reads.get(id(PS), [])
        last_read = max((i for i in old[bisect_right(old, start):bisect_left(old, k)] if i not in removed), default=-1)
        w = [i for i in writes.get(id(S), []) if i not in removed]
        if not w or max(w) > k:
            continue
        if not all(i > last_read or (i == last_read and _aligned_reads(steps[i], S, PS)) for i in w):
            continue
        # a later update of the same parameter must not overwrite this value while it is read
        after = [i for i in set_positions[req.slot.name] if i > k]
        if after and reads.get(id(S)) and reads[id(S)][-1] >= min(after):
            continue
        S.alias = PS
        reads[id(PS)] = sorted(reads.get(id(PS), []) + reads.pop(id(S), []))
        writes[id(PS)] = sorted(writes.get(id(PS), []) + writes.pop(id(S), []))
        removed.add(k)
    kf.steps = [s for i, s in enumerate(steps) if i not in removed]
    return len(removed)


def drop_self_copies(kf: KernelFunction) -> None:
    """Copies whose source and destination became the same bytes (an in-place update that
    first copied the old value into its own storage) do nothing."""
    kf.steps = [s for s in kf.steps if not (isinstance(s, Map) and not s.body and len(s.inputs) == 1
                                            and s.inputs[0].same_place(s.outputs[0]))]


def place_outputs(kf: KernelFunction) -> None:
    """Move 2."""
    from .kernel_ir import Map as MapStep

    placed: set[int] = set()
    for idx, v in enumerate(kf.outputs):
        S = v.storage.resolve()
        if S.region == "arena" and _covers(v, S) and id(S) not in placed:
            S.region, S.index = "output", idx
            placed.add(id(S))
            continue
        out = Storage("output", max(v.nbytes, 1), "outputs", f"out{idx}", index=idx)
        dst = View(out, v.dtype, v.shape)
        kf.steps.append(MapStep(v.shape, [v], [], [dst], [0], "func.return"))
        kf.outputs[idx] = dst


def _first_last(steps) -> tuple[dict[int, int], dict[int, int], dict[int, set[int]]]:
    first, last, writers = {}, {}, {}
    for i, s in enumerate(steps):
        for v in s.writes:
            k = id(v.storage.resolve())
            first.setdefault(k, i)
            last[k] = i
            writers.setdefault(k, set()).add(i)
        for v in s.reads:
            k = id(v.storage.resolve())
            first.setdefault(k, i)
            last[k] = i
    return first, last, writers


def compacting_copy(s) -> bool:
    """A copy of a strided view (gaps between rows, e.g. a slice) into a dense buffer, where
    every element lands at or before where it is read, both in increasing order: run front to
    back over the same bytes it compacts the rows in place (a vector load precedes its store)."""
    return _dense_strided_copy(s, strided_input=True)


def expanding_copy(s) -> bool:
    """A copy of a dense buffer into a strided interior (padding), where every element lands
    at or after where it is read: run from the last element down it spreads the rows out in
    place over the same bytes (the mirror of compacting_copy)."""
    return _dense_strided_copy(s, strided_input=False)


def _dense_strided_copy(s, strided_input: bool) -> bool:
    """A plain copy between a dense buffer at offset 0 and a strided view in row-major order
    whose strides are at least the dense ones (so it never moves an element backwards over
    one not yet read, whichever way the copy runs)."""
    if not isinstance(s, Map) or s.body or len(s.inputs) != 1 or len(s.outputs) != 1:
        return False
    src, dst = s.inputs[0], s.outputs[0]
    view, dense = (src, dst) if strided_input else (dst, src)
    if src.dtype != dst.dtype or not dense.is_contiguous or dense.offset != 0 or 0 in view.shape:
        return False
    st, dims = view.elem_strides(), view.shape
    increasing = all(st[d] >= st[d + 1] * dims[d + 1] for d in range(len(dims) - 1)) and all(x > 0 for x in st)
    return increasing and all(a >= b for a, b in zip(st, dense.elem_strides()))


def coalesce_inplace(kf: KernelFunction, segments: dict[int, list]) -> int:
    """Move 3: a step's output takes over an input whose last use it is (elementwise in
    place, or a compacting copy)."""
    done = 0
    first, last, writers = _first_last(kf.steps)
    for i, s in enumerate(kf.steps):
        if compacting_copy(s):
            W, R = s.outputs[0].storage.resolve(), s.inputs[0].storage.resolve()
            if (W is not R and W.region == R.region == "arena" and writers.get(id(W)) == {i}
                    and last.get(id(R)) == i and W.nbytes <= R.nbytes and _covers(s.outputs[0], W)):
                W.alias = R
                segments.setdefault(id(R), [(first[id(R)], R.category)]).append((i, W.category))
                last[id(R)] = last.get(id(W), i)
                writers[id(R)] = writers.get(id(R), set()) | writers[id(W)]
                done += 1
                continue
        if expanding_copy(s):
            W, R = s.outputs[0].storage.resolve(), s.inputs[0].storage.resolve()
            if (W is not R and W.region == R.region == "arena" and first.get(id(W)) == i and min(writers[id(W)]) == i
                    and last.get(id(R)) == i):
                s.reverse = True
                if W.nbytes <= R.nbytes:
                    W.alias = R
                    segments.setdefault(id(R), [(first[id(R)], R.category)]).append((i, W.category))
                    last[id(R)] = last.get(id(W), i)
                    writers[id(R)] = writers.get(id(R), set()) | writers[id(W)]
                else:  # the input moves into the (larger) output's bytes, at their start
                    R.alias = W
                    segments[id(W)] = [(first[id(R)], R.category), (i, W.category)]
                    first[id(W)] = first[id(R)]
                    writers[id(W)] = writers.get(id(W), set()) | writers.get(id(R), set())
                done += 1
                continue
        for w, r in s.inplace:
            W, R = s.writes[w].storage.resolve(), s.reads[r].storage.resolve()
            if W is R or W.region != "arena" or R.region != "arena" or W.category == "workspace":
                continue
            rv = s.reads[r]
            if writers.get(id(W)) != {i} or last.get(id(R)) != i or not W.nbytes == rv.nbytes <= R.nbytes:
                continue
            if not (_covers(s.writes[w], W) and rv.offset == 0 and rv.is_contiguous):
                continue
            W.alias = R
            segments.setdefault(id(R), [(first[id(R)], R.category)]).append((i, W.category))
            last[id(R)] = last.get(id(W), i)
            writers[id(R)] = writers.get(id(R), set()) | writers[id(W)]
            done += 1
    return done


@dataclass
class Interval:
    storage: Storage
    start: int
    end: int


def live_ranges(kf: KernelFunction) -> list[Interval]:
    first, last, _ = _first_last(kf.steps)
    out, seen = [], set()
    for s in kf.steps:
        for v in (*s.writes, *s.reads):
            st = v.storage.resolve()
            if st.region == "arena" and id(st) not in seen:
                seen.add(id(st))
                out.append(Interval(st, first[id(st)], last[id(st)]))
    return out


def assign_offsets(intervals: list[Interval]) -> int:
    """Move 4: greedy by size; returns the arena bytes this function needs."""
    placed: list[tuple[int, int, Interval]] = []  # (offset, end offset, interval)
    top = 0
    for iv in sorted(intervals, key=lambda x: (-x.storage.nbytes, x.start)):
        size = align(iv.storage.nbytes)
        busy = sorted((o, e) for o, e, other in placed if other.start <= iv.end and iv.start <= other.end)
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        iv.storage.offset = offset
        placed.append((offset, offset + size, iv))
        top = max(top, offset + size)
    return top


def _category_at(iv: Interval, t: int, segments, boundary: int | None) -> str:
    cat = iv.storage.category
    for start, c in segments.get(id(iv.storage), []):
        if start <= t:
            cat = c
    if cat == "activations" and boundary is not None and t > boundary:
        return "saved_activations"
    return cat


def plan_function(kf: KernelFunction) -> dict:
    n_params = inplace_parameter_updates(kf)
    drop_self_copies(kf)
    place_outputs(kf)
    segments: dict[int, list] = {}
    n_inplace = coalesce_inplace(kf, segments)
    intervals = live_ranges(kf)
    arena = assign_offsets(intervals)
    boundary = next((i for i, s in enumerate(kf.steps) if s is kf.loss_step), None)
    live = [0] * max(len(kf.steps), 1)
    for iv in intervals:
        for t in range(iv.start, iv.end + 1):
            live[t] += align(iv.storage.nbytes)
    peak_t = max(range(len(live)), key=live.__getitem__)
    at_peak: dict[str, int] = {}
    for iv in intervals:
        if iv.start <= peak_t <= iv.end:
            c = _category_at(iv, peak_t, segments, boundary)
            at_peak[c] = at_peak.get(c, 0) + align(iv.storage.nbytes)
    return {"arena_bytes": arena, "lower_bound": max(live), "peak_step": peak_t, "steps": len(kf.steps),
            "at_peak": at_peak, "inplace_updates": n_params, "inplace_steps": n_inplace}


def plan_program(kp: KernelProgram) -> dict:
    functions = {name: plan_function(kf) for name, kf in kp.functions.items()}
    kp.arena_bytes = max((r["arena_bytes"] for r in functions.values()), default=0)
    weights = sum(align(s.storage.nbytes) for s in kp.params.values() if s.category == "weights")
    state = sum(align(s.storage.nbytes) for s in kp.params.values() if s.category == "optimizer_state")
    kp.memory = {"weights": weights, "optimizer_state": state, "arena_bytes": kp.arena_bytes,
                 "functions": functions}
    return kp.memory


def memory_summary(kp: KernelProgram, function: str = "train_step") -> dict[str, int]:
    """Planned bytes by category for one function: the parameter blob's two parts plus the
    arena peak split (saved activations, gradients, workspace, ...) and the plan's slack."""
    rep = kp.memory["functions"].get(function) or next(iter(kp.memory["functions"].values()))
    out = {"weights": kp.memory["weights"], "optimizer_state": kp.memory["optimizer_state"]}
    for c in ("saved_activations", "activations", "gradients", "workspace"):
        out[c] = rep["at_peak"].get(c, 0)
    out["arena"] = kp.arena_bytes
    out["lower_bound"] = rep["lower_bound"]
    out["training_extra"] = kp.arena_bytes + kp.memory["optimizer_state"]
    return out


def _place(view: View) -> str:
    s = view.storage.resolve()
    if s.region == "arena":
        return f"arena[{s.offset}+{s.nbytes}]"
    if s.region == "params":
        return f"params[@{s.label}]"
    return f"{s.region}{s.index}"


@dataclass(frozen=True)
class MemoryPlanPass(ModulePass):
    """Plan every function's memory; annotate values with their place (`mem`) and the
    module with the report (`pock.memory`). The IR's meaning does not change."""

    name = "memory-plan"

    target: str = "c"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from . import get_target
        from .lower_to_kernels import lower_program

        kp = lower_program(op, library=get_target(self.target).library)
        for env in kp.envs.values():
            for value in env:
                owner = value.owner
                if isinstance(owner, func.FuncOp) or not hasattr(owner, "attributes"):
                    continue
                places = [_place(env[r]) for r in owner.results if r in env]
                if places:
                    owner.attributes["mem"] = StringAttr(places[0]) if len(places) == 1 else \
                        ArrayAttr([StringAttr(p) for p in places])
        summary = {k: v for k, v in kp.memory.items() if k != "functions"}
        summary["functions"] = {k: {kk: vv for kk, vv in v.items() if kk != "peak_step"}
                                for k, v in kp.memory["functions"].items()}
        op.attributes["pock.memory"] = StringAttr(json.dumps(summary, sort_keys=True))
