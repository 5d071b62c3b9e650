"""`pockengine compile` and `pockengine train`: the C project from the command line.

    pockengine compile MODEL --scheme S.pock --target c|arm64 -o OUT    write the C project
    pockengine compile MODEL --emit fusion                              print the train IR after fusion
    pockengine compile MODEL --print-pipeline                           print the recipe (for pock-opt -p)
    pockengine train OUT --data batches.npz --steps 20                  build it, run it

MODEL is a program directory (model.mlir + weights.safetensors), an .onnx file or
`module.py:factory`. Without a @train_step the program first goes through autodiff with
--loss/--optimizer/--lr/... (and sparse-backprop with --scheme): the recipe of
pockengine/pipeline.py, whose every stage `--emit STAGE` prints. The .npz holds the
train_step inputs in order (`x`, `y`, or arr_0, arr_1, ...): arrays of many samples are cut
into batches of the compiled batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..tools import UserError

LOSSES = ("cross_entropy", "mse", "next_token")
OPTIMIZERS = ("sgd", "adam", "adamw")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.prog.split()[-1] == "train":
        parser.add_argument("project", help="a directory written by `pockengine compile`")
        parser.add_argument("--data", required=True, metavar="D.npz",
                            help="an .npz with arrays x (samples) and y (labels), one row per sample, cut into "
                                 "batches of the compiled batch size (pockengine/data.py; a step of other than "
                                 "two inputs reads arr_0, arr_1, ...)")
        parser.add_argument("--steps", type=int, default=10, help="training steps (default %(default)s)")
        parser.add_argument("-o", "--output", help="write the trained program here: model.mlir, weights.safetensors "
                            "(the model's state_dict names) and optimizer.safetensors (a checkpoint for --resume)")
        parser.add_argument("--resume", metavar="DIR", help="start from a checkpoint that `train -o` (or "
                            "Trainer.save) wrote: its weights and optimizer state instead of the project's weights.bin")
        parser.add_argument("--drop-last", action="store_true", help="drop the samples after the last whole batch "
                            "(the batch size is fixed at compile time) instead of refusing them")
        parser.add_argument("--openmp", action="store_true", help="build with OpenMP threads")
        parser.add_argument("--threads", type=int, metavar="N", help="run the step on N threads (builds with OpenMP; "
                            "the model's POCK_THREADS)")
        return
    parser.add_argument("model", help="program directory, .onnx file or module.py:factory")
    parser.add_argument("-o", "--output", help="directory for the project (required unless --emit/--print-pipeline)")
    parser.add_argument("--target", default="c", help="c (host), arm64, or another of backends/__init__.py's TARGETS")
    parser.add_argument("--scheme", help="sparse update scheme: a .pock/.json file or inline text")
    # the choices are passes/autodiff.py's LOSSES and OPTIMIZERS (tests/tools/test_cli_help.py checks)
    parser.add_argument("--loss", default="cross_entropy", choices=LOSSES,
                        help="the loss appended to @forward (default %(default)s)")
    parser.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS, help="(default %(default)s)")
    parser.add_argument("--lr", type=float, default=0.01, metavar="LR", help="learning rate (default %(default)s)")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="(default %(default)s)")
    parser.add_argument("--no-optimize", action="store_true", help="skip operator-reordering and fusion")
    parser.add_argument("--emit", metavar="STAGE", help="print the IR or source after STAGE instead of writing the "
                        "project: import, slice-propagation, autodiff, sparse-backprop, dead-gradient-elimination, "
                        "operator-reordering, fusion, lower-to-kernels, memory-plan (alias: kernels), emit")
    parser.add_argument("--print-pipeline", action="store_true",
                        help="print the recipe as a pass pipeline that `pock-opt -p` accepts, and exit")


def run(args: argparse.Namespace) -> int:
    return train(args) if hasattr(args, "project") else compile_project(args)


def load_model(ref: str):
    from .. import Program

    path = Path(ref)
    if path.is_dir():
        return Program.load(path)
    if ref.endswith(".onnx"):
        from ..frontends import from_onnx

        return from_onnx(ref)
    if ".py:" in ref:
        from ..frontends import _call_factory, from_torch

        module, example = _call_factory(ref)
        return from_torch(module, example)
    raise UserError(f"{ref}: not a program directory, .onnx file or module.py:factory")


EMIT_ALIASES = {"kernels": "memory-plan", "c": "emit"}


def compile_project(args: argparse.Namespace) -> int:
    from .. import pipeline
    from .memory_plan import memory_summary
    from .project import write_project

    stop = EMIT_ALIASES.get(args.emit, args.emit) if args.emit else None
    if stop is not None and stop not in pipeline.STAGES[:-1]:
        raise UserError(f"--emit {args.emit}: not a stage; the stages: {', '.join(pipeline.STAGES[:-1])} "
                        f"(kernels = memory-plan)")
    if stop is None and not args.print_pipeline and not args.output:
        raise UserError("-o/--output is required to write the project (or print a stage with --emit STAGE)")
    try:
        from . import get_target

        get_target(args.target)
    except ValueError as e:
        raise UserError(str(e)) from None
    hyper = {"lr": args.lr}
    if args.momentum:
        hyper["momentum"] = args.momentum
    if args.weight_decay:
        hyper["weight_decay"] = args.weight_decay
    from ..passes.hyperparameters import check_hyperparameters

    check_hyperparameters(**hyper)  # the check of autodiff{...} and pockengine.compile, before any work
    prog = load_model(args.model)
    derive = "train_step" not in prog.functions()
    if not derive and args.scheme:
        raise UserError("the model already has a @train_step; a scheme applies while deriving it")
    recipe = pipeline.Recipe(args.loss if derive else None, args.optimizer if derive else None, args.scheme,
                             hyper if derive else {}, not args.no_optimize, args.target)
    if args.print_pipeline:
        print(recipe.pipeline(has_train_step=not derive))
        return 0
    title = Path(args.model).name
    r = pipeline.run(prog, recipe, stop or "emit", title=title)
    if stop is not None:
        sys.stdout.write(r.text())
        return 0
    kp, target = r.kernels, r.target
    # model.mlir goes in with the rest: `train -o` needs it, and a project is whole or absent
    out = write_project(args.output, kp, target, r.program.weights, title=title,
                        extra={"model.mlir": str(r.program.module) + "\n"})
    mem = memory_summary(kp) if "train_step" in kp.functions else {"arena": kp.arena_bytes}
    print(f"wrote {out} (target {target.name}); planned bytes: " + ", ".join(f"{k} {v}" for k, v in mem.items()))
    return 0


def batches_from_npz(path: str, layout: dict, drop_last: bool = False) -> list[list[np.ndarray]]:
    from ..data import as_input, step_arrays  # the one .npz format of `train` and `search`
    from .inputs import LabelSpec, check_labels

    inputs = layout["functions"]["train_step"]["inputs"]
    names = ["x", "y"] if len(inputs) == 2 else [f"arr_{i}" for i in range(len(inputs))]
    arrays = [as_input(path, n, a, spec["dtype"])
              for n, a, spec in zip(names, step_arrays(path, len(inputs)), inputs)]
    if len(arrays) != len(inputs):
        raise UserError(f"{path}: {len(arrays)} arrays, train_step takes {len(inputs)} inputs")
    for i, spec in layout.get("labels", {}).get("train_step", {}).items():  # class labels: in range
        check_labels(arrays[int(i)], LabelSpec(spec["classes"], spec["ignore_index"]),
                     f"{path}: array '{names[int(i)]}'")
    counts = set()
    for name, a, spec in zip(names, arrays, inputs):
        shape = tuple(spec["shape"])
        if a.shape == shape:
            counts.add(1)
        elif a.ndim == len(shape) and a.shape[1:] == shape[1:] and shape and a.shape[0] >= shape[0]:
            whole, rest = divmod(a.shape[0], shape[0])
            if rest and not drop_last:
                raise UserError(f"{path}: array '{name}' holds {a.shape[0]} samples, not a multiple of the compiled "
                                f"batch size {shape[0]} (fixed at compile time): pass --drop-last to drop the last "
                                f"{rest}, or compile for a batch size that divides {a.shape[0]}")
            counts.add(whole)
        else:
            raise UserError(f"{path}: array '{name}' of shape {a.shape} does not fit the input {shape}"
                            + (f" (fewer samples than one batch of {shape[0]})" if a.ndim == len(shape) and shape
                               and a.shape[1:] == shape[1:] else ""))
    if len(counts) != 1:
        raise UserError(f"{path}: the arrays hold different numbers of batches")
    n = counts.pop()
    return [[a[:n * spec["shape"][0]].reshape(n, *spec["shape"])[i] if a.shape != tuple(spec["shape"]) else a
             for a, spec in zip(arrays, inputs)] for i in range(n)]


def train(args: argparse.Namespace) -> int:
    from .project import write_data

    project = Path(args.project)
    if not (project / "layout.json").is_file():
        raise UserError(f"{project}: not a project written by `pockengine compile`")
    layout = json.loads((project / "layout.json").read_text())
    dtypes = [i["dtype"] for i in layout["functions"]["train_step"]["inputs"]]
    write_data(project / "data.bin", batches_from_npz(args.data, layout, args.drop_last), dtypes)
    weights = "weights.bin"
    if args.resume:  # a checkpoint's weights and optimizer state, by name, into the project's layout
        from .. import Program
        from .project import write_weights_layout

        ckpt = Program.load(args.resume)
        write_weights_layout(project / "resume.bin", layout, ckpt.weights, source=str(args.resume))
        weights = "resume.bin"
    if args.threads is not None and not 1 <= args.threads <= 4096:
        raise UserError(f"--threads {args.threads}: expected a thread count from 1 to 4096")
    make = ["make", "-s", "-C", str(project), "model"] + (["OPENMP=1"] if args.openmp or args.threads else [])
    make += ["-B"] if args.threads else []  # a ./model built without OpenMP would ignore POCK_THREADS
    res = subprocess.run(make, capture_output=True, text=True, check=False)
    if res.returncode:
        raise UserError(f"building {project} failed:\n{res.stderr[-2000:]}")
    cmd = [*layout.get("runner", []), "./model", str(args.steps), "data.bin", "-w", weights, "-o", "trained.bin"]
    env = dict(os.environ, POCK_THREADS=str(args.threads)) if args.threads else None
    res = subprocess.run(cmd, cwd=project, check=False, env=env)
    if res.returncode:
        return res.returncode
    if args.output:
        from .. import Program
        from .project import read_weights_layout

        prog = Program.parse((project / "model.mlir").read_text(), name=str(project / "model.mlir"))
        prog.weights = read_weights_layout(project / "trained.bin", layout)
        prog.save(args.output)
        print(f"wrote {args.output}")
    return 0
