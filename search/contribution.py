"""Contribution analysis: fine-tune each candidate alone, for real, and measure what it adds.

PockEngine (after TTE) measures, on top of a *base* (the new head trained, the backbone frozen):

- Δ_bias[k]: the gain of also updating the biases of the last k backbone layers (k swept);
- Δ_weight[i, r]: the gain of also updating the weight of layer i alone, on the first
  ceil(r·C) of its channels, r ∈ {1/8, 1/4, 1/2, 1}.

Every candidate is a scheme (`Space.scheme`), compiled by the C backend and fine-tuned with the
same short, seeded `Recipe`; its planned memory and backward FLOPs come from the compiled
program (finetune.py). Two worker processes share the work; every result is written to
`<cache>/<model+data hash>/compiler-<hash>/<candidate>-<recipe>-s<seed>.json` as soon as it is known, so an
interrupted search picks up where it stopped. The directory also carries a hash of the
compiler's sources (`compiler_fingerprint`): measurements of another compiler are not reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UserError
from .executor import DEFAULT_RETRIES, Failed, Job, run_jobs
from .finetune import Recipe

RATIOS = (Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1))


def ratio_text(r: Fraction) -> str:
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


@dataclass(frozen=True, order=True)
class Candidate:
    """One thing to measure: `base`, `bias` of the last k backbone layers, or the weight of
    `layer` at `ratio`."""

    kind: str  # "base" | "bias" | "weight"
    k: int = 0
    layer: int = -1
    ratio: Fraction = Fraction(0)

    @property
    def key(self) -> str:
        if self.kind == "bias":
            return f"bias-last{self.k}"
        if self.kind == "weight":
            return f"weight-L{self.layer}-r{self.ratio.numerator}_{self.ratio.denominator}"
        return self.kind


@dataclass
class Measurement:
    candidate: Candidate
    accuracy: float  # mean over the seeds, on the validation data
    memory: int  # planned training bytes (arena + optimizer state) of the pruned, compiled step
    backward_flops: int
    accuracies: tuple[float, ...] = ()
    gain: float = 0.0  # accuracy − the base's accuracy (filled in by `measure`)
    saved_bytes: int = 0  # the cost report's saved activations and optimizer state: the
    state_bytes: int = 0  # selection's additive memory proxy (select.py)


class Space:
    """The layers of a program a search may choose from, and the scheme for a choice."""

    def __init__(self, program, base: str | None = None):
        from pockengine.passes.scheme_layers import find_layers, is_additive, ratio_axis

        module = program.module
        self._module = module
        self.layers = find_layers(module)
        if not self.layers:
            raise ValueError("the program has no layers to choose from")
        self.base = base or f"{_quote(self.layers[-1].name)}: full"
        base_params = {p for p, u in self._resolve(f"default frozen\n{self.base}\n").items() if u.mode != "frozen"}
        # the backbone: layers the base leaves frozen, in forward order
        self.backbone = [lay for lay in self.layers if not base_params & set(lay.params)]
        self.has_bias = {lay.index for lay in self.backbone if any(is_additive(module, p) for p in lay.params)}
        self.weight_of: dict[int, str] = {}  # layer index → the weight a ratio slices
        self.channels: dict[int, int] = {}  # layer index → channels on the ratio's axis
        for lay in self.backbone:
            weights = [p for p in lay.params if not is_additive(module, p) and ratio_axis(module, p) is not None]
            if weights:
                self.weight_of[lay.index] = weights[0]
                self.channels[lay.index] = ratio_axis(module, weights[0])[1]

    def _resolve(self, text: str):
        from pockengine.passes.scheme import Scheme

        return Scheme.parse(text, "<search>").resolve(self._module)

    def bias_layers(self, k: int) -> list[int]:
        """Indices of the last k backbone layers."""
        return [lay.index for lay in self.backbone[len(self.backbone) - k:]] if k else []

    def candidates(self, ratios=RATIOS, bias_ks=None, layers=None) -> list[Candidate]:
        """base, bias-last-k for each k (default: every k up to the backbone's depth), and
        each weight layer (default: all) at each ratio."""
        n = len(self.backbone)
        ks = sorted(set(bias_ks)) if bias_ks is not None else range(1, n + 1)
        out = [Candidate("base")]
        out += [Candidate("bias", k=k) for k in ks if 0 < k <= n and set(self.bias_layers(k)) & self.has_bias]
        chosen = self.weight_of if layers is None else [i for i in layers if i in self.weight_of]
        for i in chosen:
            # ratios that keep the same number of channels are one candidate (a 1-channel stem
            # conv has only "1"); the largest such ratio names it
            by_k = {math.ceil(Fraction(r) * self.channels[i]): Fraction(r) for r in sorted(ratios)}
            out += [Candidate("weight", layer=i, ratio=r) for r in by_k.values()]
        return out

    def scheme(self, k: int = 0, weights: dict[int, Fraction] | None = None, comment: str = "") -> str:
        """Scheme text: the biases of the last k backbone layers, each `weights` layer at its
        ratio, and the base."""
        lines = [f"# {c}" for c in comment.splitlines()] + ["default frozen"]
        if k:
            lines.append(f"{_ranges(self.bias_layers(k))}: bias")
        for i, r in sorted((weights or {}).items()):
            lines.append(f"layer {i}: ratio {ratio_text(Fraction(r))}   # {self.layers[i].name}")
        lines.append(f"{self.base}   # base")
        return "\n".join(lines) + "\n"

    def candidate_scheme(self, c: Candidate) -> str:
        if c.kind == "bias":
            return self.scheme(k=c.k)
        if c.kind == "weight":
            return self.scheme(weights={c.layer: c.ratio})
        return self.scheme()


def _quote(name: str) -> str:
    import re

    return name if re.fullmatch(r"[A-Za-z_][\w.]*", name) else json.dumps(name)


def _ranges(indices: list[int]) -> str:
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"layer {a}" if a == b else f"layers {a}..{b}" for a, b in runs)


# --- measuring ---------------------------------------------------------------------------------


def fingerprint(program, *arrays) -> str:
    """Hash of the program (IR text and weights) and the data: the cache's directory."""
    h = hashlib.sha256(str(program.module).encode())
    for name in sorted(program.weights):
        h.update(name.encode())
        h.update(np.ascontiguousarray(program.weights[name]).tobytes())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@functools.cache
def compiler_fingerprint() -> str:
    """Hash of the compiler's sources (IR, passes, backends, kernels): a change to any of them
    may change plans or numerics, so cached measurements are keyed by it. Read once per process:
    the code a process runs is what it imported, even if the files change afterwards."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for sub in ("ir", "passes", "backends"):
        for f in sorted((root / sub).rglob("*")):
            if f.suffix in (".py", ".c", ".h", ".lark") and f.is_file():
                h.update(f.relative_to(root).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _cache_path(root: Path, c: Candidate, recipe: Recipe, seed: int) -> Path:
    return root / f"{c.key}-{recipe.key()}-s{seed}.json"


def _write_atomic(path: Path, doc: dict) -> None:
    from ..atomic import write_text  # the one atomic writer (temp beside it, umask permissions, cleanup)

    write_text(path, json.dumps(doc), durable=False)


FIELDS = ("accuracy", "memory", "backward_flops", "saved_bytes", "state_bytes")


def _cached(path: Path) -> dict | None:
    """A complete cached result, or None (missing, torn or from an older format: measure again)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if all(k in doc for k in FIELDS) else None


class Measured(dict):
    """Candidate → Measurement, and `failed`: the runs given up on (their workers died on every
    attempt). A candidate with a failed seed has no measurement; it is not selected."""

    failed: list[Failed]

    def __init__(self, items=(), failed=()):
        super().__init__(items)
        self.failed = list(failed)


class SearchError(UserError):
    """The search cannot go on: the base candidate (every gain is measured against it) failed."""


def measure(program, space: Space, candidates: list[Candidate], train, val, recipe: Recipe,
            seeds=(0,), workers: int | None = None, cache_dir: str | Path | None = None,
            progress: bool = True, *, executor: str = "local", address: str | None = None,
            retries: int = DEFAULT_RETRIES) -> Measured:
    """Fine-tune every candidate with every seed, on `executor` ("local": `workers` processes,
    default 2; "ray": the Ray cluster at `address`, see executor.py), then fill in gains over the
    base. Each result is cached the moment it arrives; cached ones are never measured again."""
    from ..backends.target import cache_dir as default_cache

    top = (Path(cache_dir) if cache_dir else default_cache() / "search") / fingerprint(program, *train, *val)
    root = top / f"compiler-{compiler_fingerprint()}"
    candidates = list(dict.fromkeys([Candidate("base"), *candidates]))
    by_job = {Job(c.key, s, space.candidate_scheme(c)): c for c in candidates for s in seeds}
    todo = [job for job, c in by_job.items() if _cached(_cache_path(root, c, recipe, job.seed)) is None]
    failed: list[Failed] = []
    if todo:
        program_dir = None
        if executor == "local":  # the pool's workers load the program from disk
            program_dir = top / "program"
            if not (program_dir / "model.mlir").is_file():
                program.save(program_dir)

        def on_result(job: Job, doc: dict) -> None:
            _write_atomic(_cache_path(root, by_job[job], recipe, job.seed),
                          doc | {"candidate": job.key, "seed": job.seed, "recipe": asdict(recipe)})

        failed = run_jobs(todo, program, train, val, recipe, on_result, executor=executor, address=address,
                          workers=workers, retries=retries, progress=progress,
                          program_dir=str(program_dir) if program_dir else None)
    lost = {f.key for f in failed}
    if Candidate("base").key in lost:
        raise SearchError("the base candidate (every gain is measured against it) failed: "
                          + "; ".join(str(f) for f in failed if f.key == "base"))
    results = Measured(failed=failed)
    for c in candidates:
        if c.key in lost:
            continue
        docs = [_cached(_cache_path(root, c, recipe, s)) for s in seeds]
        accs = tuple(d["accuracy"] for d in docs)
        d = docs[0]
        results[c] = Measurement(c, float(np.mean(accs)), d["memory"], d["backward_flops"], accs,
                                 saved_bytes=d["saved_bytes"], state_bytes=d["state_bytes"])
    base = results[Candidate("base")].accuracy
    for m in results.values():
        m.gain = m.accuracy - base
    return results
