"""`pockengine compile` and `pockengine train`: the C project from the command line.

    pockengine compile MODEL --scheme S.pock --target c|arm64 -o OUT    write the C project
    pockengine train OUT --data batches.npz --steps 20                  build it, run it

MODEL is a program directory (model.mlir + weights.safetensors), an .onnx file or
`module.py:factory`. Without a @train_step the program first goes through autodiff with
--loss/--optimizer/--lr/... (and sparse-backprop with --scheme). The .npz holds the
train_step inputs in order (`x`, `y`, or arr_0, arr_1, ...): arrays of many samples are cut
into batches of the compiled batch size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pockengine.tools import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.prog.split()[-1] == "train":
        parser.add_argument("project", help="a directory written by `pockengine compile`")
        parser.add_argument("--data", required=True, help=".npz with the train_step inputs")
        parser.add_argument("--steps", type=int, default=10)
        parser.add_argument("-o", "--output", help="write the trained program (model + weights) here")
        parser.add_argument("--openmp", action="store_true", help="build with OpenMP threads")
        return
    parser.add_argument("model", help="program directory, .onnx file or module.py:factory")
    parser.add_argument("-o", "--output", required=True, help="directory for the C project")
    parser.add_argument("--target", default="c", help="c (host) or arm64")
    parser.add_argument("--scheme", help="sparse update scheme: a .pock/.json file or inline text")
    parser.add_argument("--loss", default="cross_entropy")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--no-optimize", action="store_true", help="skip operator-reordering and fusion")
    parser.add_argument("--emit", choices=["c", "kernels"], default="c",
                        help="kernels: print the kernel IR instead of writing the project")


def run(args: argparse.Namespace) -> int:
    return train(args) if hasattr(args, "project") else compile_project(args)


def load_model(ref: str):
    from pockengine import Program

    path = Path(ref)
    if path.is_dir():
        return Program.load(path)
    if ref.endswith(".onnx"):
        from pockengine.frontends import from_onnx

        return from_onnx(ref)
    if ".py:" in ref:
        from pockengine.frontends import _call_factory, from_torch

        module, example = _call_factory(ref)
        return from_torch(module, example)
    raise UserError(f"{ref}: not a program directory, .onnx file or module.py:factory")


def compile_project(args: argparse.Namespace) -> int:
    from pockengine.backends.project import write_project
    from pockengine.backends.runtime import training_pipeline
    from pockengine.backends.targets import get_target
    from pockengine.passes import run_pipeline
    from pockengine.passes.lower_to_kernels import lower_program
    from pockengine.passes.memory_plan import memory_summary

    try:
        target = get_target(args.target)
    except ValueError as e:
        raise UserError(str(e)) from None
    prog = load_model(args.model)
    if "train_step" not in prog.functions():
        hyper = {"lr": args.lr}
        if args.momentum:
            hyper["momentum"] = args.momentum
        if args.weight_decay:
            hyper["weight_decay"] = args.weight_decay
        run_pipeline(prog, training_pipeline(args.loss, args.optimizer, args.scheme, **hyper))
    elif args.scheme:
        raise UserError("the model already has a @train_step; a scheme applies while deriving it")
    if not args.no_optimize:
        run_pipeline(prog, "operator-reordering,fusion")
    kp = lower_program(prog)
    if args.emit == "kernels":
        sys.stdout.write(str(kp))
        return 0
    out = write_project(args.output, kp, target, prog.weights, title=Path(args.model).name)
    (out / "model.mlir").write_text(str(prog.module) + "\n")
    mem = memory_summary(kp) if "train_step" in kp.functions else {"arena": kp.arena_bytes}
    print(f"wrote {out} (target {target.name}); planned bytes: " + ", ".join(f"{k} {v}" for k, v in mem.items()))
    return 0


def batches_from_npz(path: str, layout: dict) -> list[list[np.ndarray]]:
    inputs = layout["functions"]["train_step"]["inputs"]
    with np.load(path) as f:
        names = list(f.files)
        order = [n for n in ("x", "y") if n in names] if {"x", "y"} <= set(names) else sorted(names)
        arrays = [f[n] for n in order]
    if len(arrays) != len(inputs):
        raise UserError(f"{path}: {len(arrays)} arrays, train_step takes {len(inputs)} inputs")
    counts = set()
    for a, spec in zip(arrays, inputs):
        shape = tuple(spec["shape"])
        if a.shape == shape:
            counts.add(1)
        elif a.ndim == len(shape) and a.shape[1:] == shape[1:] and shape and a.shape[0] % shape[0] == 0:
            counts.add(a.shape[0] // shape[0])
        else:
            raise UserError(f"{path}: an array of shape {a.shape} does not fit the input {shape}")
    if len(counts) != 1:
        raise UserError(f"{path}: the arrays hold different numbers of batches")
    n = counts.pop()
    return [[a.reshape(n, *spec["shape"])[i] for a, spec in zip(arrays, inputs)] for i in range(n)]


def train(args: argparse.Namespace) -> int:
    from pockengine.backends.project import write_data

    project = Path(args.project)
    if not (project / "layout.json").is_file():
        raise UserError(f"{project}: not a project written by `pockengine compile`")
    layout = json.loads((project / "layout.json").read_text())
    dtypes = [i["dtype"] for i in layout["functions"]["train_step"]["inputs"]]
    write_data(project / "data.bin", batches_from_npz(args.data, layout), dtypes)
    make = ["make", "-s", "-C", str(project), "model"] + (["OPENMP=1"] if args.openmp else [])
    res = subprocess.run(make, capture_output=True, text=True, check=False)
    if res.returncode:
        raise UserError(f"building {project} failed:\n{res.stderr[-2000:]}")
    cmd = [*layout.get("runner", []), "./model", str(args.steps), "data.bin", "-o", "trained.bin"]
    res = subprocess.run(cmd, cwd=project, check=False)
    if res.returncode:
        return res.returncode
    if args.output:
        from pockengine import Program
        from pockengine.backends.project import read_weights_layout

        prog = Program.parse((project / "model.mlir").read_text(), name=str(project / "model.mlir"))
        prog.weights = read_weights_layout(project / "trained.bin", layout)
        prog.save(args.output)
        print(f"wrote {args.output}")
    return 0
