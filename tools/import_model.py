"""`pockengine import MODEL -o DIR`: a PyTorch or ONNX model into DIR/model.mlir + weights.safetensors.

    pockengine import model.onnx -o out/
    pockengine import models.py:mobilenet -o out/     # factory() returns (module, example_args)

The directory is written atomically, and not at all when the import fails; an unsupported op
is reported with its node, source line and the list of supported ops (exit status 2).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="an .onnx file, or `path/to/module.py:factory` for a PyTorch model")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")


def run(args: argparse.Namespace) -> int:
    from pockengine.frontends import FrontendError, import_model

    try:
        program = import_model(args.model, args.output)
    except FrontendError as e:  # the whole message: it lists the supported ops
        print(f"pockengine import: error: {e}", file=sys.stderr)
        return 2
    n = sum(1 for _ in program.params())
    print(f"wrote {args.output}: {n} parameters and state tensors, {len(program.trainable())} trainable")
    return 0
