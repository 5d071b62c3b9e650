"""The compile recipe, in one place: a linear sequence of named stages, each a stop point.

    import → slice-propagation → autodiff → sparse-backprop → dead-gradient-elimination →
    operator-reordering → fusion → lower-to-kernels → memory-plan → emit → build

    r = pipeline.run(program, Recipe(loss="cross_entropy", optimizer="sgd", scheme=s, hyper={"lr": 0.1}),
                     stop="fusion")
    print(r.text())                      # the train IR after fusion
    pipeline.run(program, recipe, stop="memory-plan").text()   # the planned kernel IR
    pipeline.run(program, recipe, stop="emit").text()          # the target's sources
    trainer = pipeline.compile(program, loss=..., optimizer=..., target="c")  # → build → Trainer

The stages up to fusion rewrite the train IR (passes/); lower-to-kernels and memory-plan
make and plan the kernel IR for the target's kernel library (backends/); emit prints the
target's sources; build runs its toolchain. A stage that does not apply (no scheme: no
sparse-backprop; a program that already has a @train_step: no autodiff) leaves its input
as it is, so every name is a stop point of every run. `Recipe.pipeline()` is the same
sequence as a pass-pipeline string that `pock-opt -p` accepts.

This module is the one place that imports both passes/ and backends/: `pockengine.compile`,
`pockengine compile`, `pock-opt --emit`, the search, the demo and the benchmarks all call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError

STAGES = ("import", "slice-propagation", "autodiff", "sparse-backprop", "dead-gradient-elimination",
          "operator-reordering", "fusion", "lower-to-kernels", "memory-plan", "emit", "build")
TRAIN_IR_STAGES = STAGES[:STAGES.index("lower-to-kernels")]
KERNEL_IR_STAGES = ("lower-to-kernels", "memory-plan")


class StageError(UserError, ValueError):
    """An unknown stop point or recipe option."""


def get_all_passes() -> dict:
    """Every registered pass: passes/'s and the backend passes (lower-to-kernels, memory-plan)."""
    from .backends import get_all_passes as backend_passes
    from .passes import get_all_passes as ir_passes

    return {**ir_passes(), **backend_passes()}


def parse_pipeline(spec: str, callback=None):
    """A pipeline string over every registered pass (passes.parse_pipeline's syntax and errors)."""
    from .passes import parse_pipeline as parse

    return parse(spec, callback, get_all_passes())


def run_pipeline(program, spec: str, callback=None):
    """passes.run_pipeline over every registered pass."""
    from .passes import run_pipeline as run_spec

    return run_spec(program, spec, callback, get_all_passes())


@dataclass
class Recipe:
    """What a compile does: autodiff's loss and optimizer (and hyper-parameters such as lr,
    momentum), an optional sparse scheme (a `Scheme`, a scheme file or scheme text), whether
    to run operator-reordering and fusion, and the target."""

    loss: str | None = None
    optimizer: str | None = None
    scheme: object = None
    hyper: dict = field(default_factory=dict)
    optimize: bool = True
    target: str = "c"

    def autodiff(self) -> bool:
        return bool(self.loss or self.optimizer)

    def autodiff_options(self) -> str:
        opts = {"loss": self.loss or "cross_entropy", "optimizer": self.optimizer or "sgd", **self.hyper}
        return " ".join(f"{k}={_opt(v)}" for k, v in opts.items())

    def pipeline(self, stop: str = "memory-plan", has_train_step: bool = False) -> str:
        """The recipe up to `stop` as a pass pipeline for `pock-opt -p` (a scheme given as text
        is written to a temporary file: a pipeline option is one line)."""
        parts = []
        if self.autodiff() and not has_train_step:
            parts += ["slice-propagation", f"autodiff{{{self.autodiff_options()}}}"]
            if self.scheme is not None:
                parts += [f'sparse-backprop{{scheme="{_scheme_ref(self.scheme)}"}}', "dead-gradient-elimination"]
        if self.optimize:
            parts += ["operator-reordering", "fusion"]
        parts += [f"lower-to-kernels{{target={self.target}}}", f"memory-plan{{target={self.target}}}"]
        names = [p.split("{")[0] for p in parts]
        keep = [p for p, n in zip(parts, names) if STAGES.index(n) <= STAGES.index(_stage(stop))]
        return ",".join(keep)


@dataclass
class Result:
    """Where a run stopped and what it made: the train IR program (always), the kernel
    program (from lower-to-kernels on), the target's sources (from emit) and the built
    artifact (build)."""

    stage: str
    program: object
    target: object = None
    kernels: object = None
    sources: dict | None = None
    artifact: object = None

    def text(self) -> str:
        """What `--emit <stage>` prints: the train IR, the kernel IR, or the sources."""
        if self.sources is not None:
            return "".join(f"// ===== {name} =====\n{text.rstrip()}\n" for name, text in self.sources.items()) \
                if len(self.sources) > 1 else next(iter(self.sources.values()))
        if self.kernels is not None:
            return str(self.kernels)
        return str(self.program.module) + "\n"


def run(program, recipe: Recipe | None = None, stop: str = "build", title: str = "model",
        openmp: bool | None = None, profile: bool = False) -> Result:
    """Run the recipe on a copy of `program` (a Program) up to and including `stop`. The build
    has OpenMP when `openmp`, or by default where compile()'s default (every core) is more
    than one thread, so both build the same code (an OpenMP build may round last bits
    differently from a build without it)."""
    from .backends import get_target

    recipe = recipe or Recipe()
    stop = _stage(stop)
    prog = program.copy()
    at = lambda name: STAGES.index(name) >= STAGES.index(stop)
    if stop == "import":
        return Result(stop, prog)
    derive = recipe.autodiff() and "train_step" not in prog.functions()
    check_recipe(recipe, "train_step" in prog.functions())
    if derive:
        run_pipeline(prog, "slice-propagation")
        if at("slice-propagation"):
            return Result(stop, prog)
        run_pipeline(prog, f"autodiff{{{recipe.autodiff_options()}}}")
        if at("autodiff"):
            return Result(stop, prog)
        if recipe.scheme is not None:
            _sparse_backprop(prog, recipe.scheme)
            if at("sparse-backprop"):
                return Result(stop, prog)
            run_pipeline(prog, "dead-gradient-elimination")  # also fits optimizer state to the scheme
    if at("dead-gradient-elimination"):
        return Result(stop, prog)
    if recipe.optimize:
        run_pipeline(prog, "operator-reordering")
        if at("operator-reordering"):
            return Result(stop, prog)
        run_pipeline(prog, "fusion")
    if at("fusion"):
        return Result(stop, prog)
    from .backends.lower_to_kernels import lower_program
    from .backends.memory_plan import plan_program

    target = get_target(recipe.target)
    kp = lower_program(prog, plan=False, library=target.library)
    if at("lower-to-kernels"):
        return Result(stop, prog, target, kp)
    plan_program(kp)
    if at("memory-plan"):
        return Result(stop, prog, target, kp)
    sources = target.sources(kp, title)
    if at("emit"):
        return Result(stop, prog, target, kp, sources)
    if target.device is None:
        raise StageError(f"target {recipe.target!r} does not run in this process; write a project with "
                         f"`pockengine compile --target {recipe.target}` instead")
    flags = ("-DPK_PROFILE",) if profile else ()
    if openmp is None:  # the C kernels' threads (pock.h); other toolchains have their own or none
        openmp = check_threads(None) > 1 and target.toolchain.openmp_threads
    elif openmp and not target.toolchain.openmp_threads:
        raise StageError(f"threads/openmp: target {recipe.target!r} does not run the step on CPU threads "
                         f"(only the C targets c and arm64 do); leave threads= and openmp= out for it")
    artifact = target.toolchain.build(sources, target, openmp=openmp, extra_cflags=flags)
    return Result(stop, prog, target, kp, sources, artifact)


def check_recipe(recipe: Recipe, has_train_step: bool) -> None:
    """A recipe that cannot do what it says is a located error, not a quiet other compile:
    a scheme or hyper-parameters without a loss, a loss for a program that already trains,
    hyper-parameters out of range (passes/hyperparameters.py, the same check as
    `autodiff{...}` and the CLI's)."""
    from .passes.hyperparameters import check_hyperparameters

    check_hyperparameters(**recipe.hyper)
    if has_train_step:
        given = [k for k, v in (("loss", recipe.loss), ("optimizer", recipe.optimizer), ("scheme", recipe.scheme)) if v]
        given += list(recipe.hyper)
        if given:
            raise StageError(f"the program already has a @train_step; {', '.join(given)} apply while autodiff "
                             f"derives it: compile the model without its @train_step, or leave them out")
    elif not recipe.autodiff():
        given = (["scheme"] if recipe.scheme is not None else []) + list(recipe.hyper)
        if given:
            raise StageError(f"{', '.join(given)} given without loss=: a sparse scheme and optimizer settings "
                             f"apply while autodiff derives the training step; pass loss=\"cross_entropy\" "
                             f"(or \"mse\", \"next_token\") and optimizer=\"sgd\" (or \"adam\", \"adamw\")")


def compile(program, loss: str | None = None, optimizer: str | None = None, scheme=None, target: str = "c",
            optimize: bool = True, openmp: bool = False, profile: bool = False, threads: int | None = None, **hyper):
    """Compile a Program into a Trainer (backends/runtime.py). Without a @train_step the
    program first goes through autodiff (loss, optimizer, hyper-parameters such as lr,
    momentum) and, given a scheme, sparse-backprop and dead-gradient-elimination; then
    operator-reordering and fusion, lowering, memory planning, emit and build. Without a
    loss (and without a @train_step) the Trainer is forward-only: `trainer.forward(x)` runs,
    `trainer.step` says how to compile for training. `threads`: the step's threads (None: every
    core this process may use, like PyTorch; more than 1 builds with OpenMP; results are the
    same at every count: pock.h's PK_PARALLEL_FOR)."""
    from .backends.runtime import Trainer

    explicit = threads is not None
    threads = check_threads(threads)
    r = run(program, Recipe(loss, optimizer, scheme, hyper, optimize, target), "build",
            openmp=True if openmp else (threads > 1 if explicit else None), profile=profile)
    device = r.target.open(r.kernels, r.artifact)
    if hasattr(device, "set_threads"):
        device.set_threads(threads)
    return Trainer(r.program, r.kernels, device, profiled=profile)


def check_threads(threads) -> int:
    """The thread count `compile(threads=)` means: every core this process may use for None."""
    import os

    from .backends.c.device import forked_after_threads

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 1 <= threads <= 4096):
        raise StageError(f"threads={threads!r}: expected a thread count from 1 to 4096, or None for every core")
    if forked_after_threads():  # OpenMP cannot start threads here (backends/c/device.py)
        if threads not in (None, 1):
            import warnings

            warnings.warn(f"threads={threads}: this process was forked after a threaded step, where OpenMP "
                          f"cannot start threads; the step runs on 1 thread (start workers with the 'spawn' "
                          f"or 'forkserver' method to use more)", RuntimeWarning, stacklevel=3)
        return 1
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return threads


def training_program(program, loss: str, optimizer: str, scheme=None, **hyper):
    """A copy of `program` with its @train_step: the recipe up to dead-gradient-elimination."""
    return run(program, Recipe(loss, optimizer, scheme, hyper), "dead-gradient-elimination").program


def training_pipeline(loss: str, optimizer: str, scheme=None, **hyper) -> str:
    """The pipeline string of `training_program` (for pock-opt and the printed recipe)."""
    return Recipe(loss, optimizer, scheme, hyper, optimize=False).pipeline("dead-gradient-elimination")


def _stage(name: str) -> str:
    if name not in STAGES:
        raise StageError(f"unknown stage {name!r}; the stages: {', '.join(STAGES)}")
    return name


def _sparse_backprop(prog, scheme) -> None:
    from .passes.scheme import Scheme
    from .passes.sparse_backprop import sparse_backprop

    sparse_backprop(prog.module, scheme if isinstance(scheme, Scheme) else Scheme.load(scheme))


def _scheme_ref(scheme) -> str:
    """The scheme as the body of a quoted pipeline option: a file name, or the text itself
    with its newlines, quotes and backslashes escaped (xDSL's option lexer reads them back),
    so no temporary file is left behind."""
    from .passes.scheme import Scheme

    text = scheme.to_text() if isinstance(scheme, Scheme) else str(scheme)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _opt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


# --- pock-opt's --emit and --print-pipeline ------------------------------------------------
EMIT_ALIASES = {"kernels": "memory-plan", "c": "emit", "source": "emit"}


def emit_choices() -> list[str]:
    """What `--emit` takes: mlir (the IR after the passes), a stage, or an alias."""
    return ["mlir", *STAGES[:-1], *EMIT_ALIASES]


def stop_pipeline(pipeline, emit: str):
    """`pock-opt -p P --emit STAGE`: P up to and including its (last) STAGE pass. A train-IR
    stage that P does not run is an error; lower-to-kernels, memory-plan and emit print
    what follows P."""
    from xdsl.passes import PassPipeline

    stage = EMIT_ALIASES.get(emit, emit)
    if stage == "mlir":
        return pipeline
    if stage == "import":
        return PassPipeline((), pipeline.callback)
    names = [p.name for p in pipeline.passes]
    if stage in names:
        last = len(names) - 1 - names[::-1].index(stage)
        return PassPipeline(tuple(pipeline.passes[:last + 1]), pipeline.callback)
    if stage in TRAIN_IR_STAGES:
        raise StageError(f"--emit {emit}: the pipeline does not run {stage} (-p has: {', '.join(names) or 'no passes'})")
    return pipeline


def emit_text(module, emit: str, pipeline) -> str | None:
    """The text `pock-opt --emit` prints after the pipeline ran on `module`: None for the IR
    itself; the kernel IR (lower-to-kernels: unplanned, memory-plan/kernels: planned) or the
    target's sources (emit/c), for the target named by the pipeline's lower-to-kernels or
    memory-plan pass (default c)."""
    from .backends import get_target
    from .backends.lower_to_kernels import lower_program

    stage = EMIT_ALIASES.get(emit, emit)
    if stage not in ("lower-to-kernels", "memory-plan", "emit"):
        return None
    names = [getattr(p, "target", None) for p in pipeline.passes if p.name in KERNEL_IR_STAGES]
    target = get_target(names[-1] if names else "c")
    kp = lower_program(module, plan=stage != "lower-to-kernels", library=target.library)
    if stage != "emit":
        return str(kp)
    return Result("emit", None, target, kp, target.sources(kp)).text()


def print_pipeline(pipeline) -> str:
    """A parsed pipeline as text that `-p` accepts (options at their defaults left out); the default
    compile recipe (cross_entropy, sgd, target c) when the pipeline is empty."""
    if not pipeline.passes:
        return Recipe("cross_entropy", "sgd").pipeline()
    return ",".join(str(p.pipeline_pass_spec()) for p in pipeline.passes)
