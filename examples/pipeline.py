"""A pass-pipeline script: load a small model, run passes, print the IR after each one.

    python examples/pipeline.py                                   # examples/mlp.mlir, canonicalize,cse,dce
    python examples/pipeline.py model.mlir 'canonicalize,cse'

The model gets seeded random weights, and its forward function is interpreted before and
after the pipeline: the passes may change the IR but never the numbers.
"""

import sys
from pathlib import Path

import numpy as np
from pockengine import Program
from pockengine.passes import run_pipeline


def main(path: str = str(Path(__file__).with_name("mlp.mlir")), spec: str = "canonicalize,cse,dce") -> None:
    rng = np.random.default_rng(0)
    program = Program.parse(Path(path).read_text(), name=path)
    program.weights = {
        p.sym_name.data: rng.standard_normal(p.type.get_shape()).astype(np.float32) for p in program.params()
    }
    program.verify()
    fn_name, fn = next(iter(program.functions().items()))
    inputs = [rng.standard_normal(t.get_shape()).astype(np.float32) for t in fn.function_type.inputs]
    before = program.run(fn_name, *inputs)
    print(f"// ===== {path}: {sum(1 for _ in program.module.walk())} ops =====\n{program}\n")

    def show(done, module, _next):
        if done is not None:
            print(f"// ===== after {done.name}: {sum(1 for _ in module.walk())} ops =====\n{module!s}\n")

    run_pipeline(program, spec, callback=show)
    after = program.run(fn_name, *inputs)
    err = float(np.max(np.abs(np.asarray(before) - np.asarray(after))))
    print(f"// @{fn_name} output before vs after '{spec}': max |difference| = {err:.2e}")
    if err > 1e-6:
        sys.exit(f"pipeline changed the results of @{fn_name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
