"""`pockengine demo --llm`: sparse fine-tuning of a small Llama, compiled to C, against PyTorch.

1. pretrain a tiny HF `LlamaForCausalLM` briefly in PyTorch on the Language Reference that
   ships with Python (demo/corpus.py; bytes as tokens);
2. import it with torch.export (`pockengine.from_torch`);
3. compile a sparse fine-tuning step to C: RMSNorm gains (Llama's stand-in for biases), the
   last block's attention output projection and MLP (at a channel ratio), the LM head;
4. fine-tune on a different text (standard-library docstrings) in C, and the same steps in
   PyTorch eager with the same scheme and with full backprop;
5. the three steps timed in turn (demo/timing.py); one table (held-out loss, ms/step,
   training memory) and loss/memory figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import corpus
from .compiled import compile_trainer
from .eager import EagerTrainer
from .report import Result, figures, table
from .steps import Steps
from .timing import time_in_turn, timed_steps


@dataclass(frozen=True)
class LLMConfig:
    hidden: int = 128
    intermediate: int = 344  # SwiGLU, ≈ 8/3 · hidden
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    seq: int = 64
    batch: int = 8
    pretrain_steps: int = 400
    pretrain_lr: float = 3e-3
    finetune_steps: int = 120
    lr: float = 1e-3
    eval_batches: int = 8
    eval_every: int = 20  # fine-tuning steps between held-out evaluations
    timing_rounds: int = 10  # ms/step: medians over rounds in which every trainer steps in turn
    mlp_ratio: str = "1/4"
    seed: int = 0

    @classmethod
    def tiny(cls) -> LLMConfig:
        """Seconds, for tests: the same pipeline on a toy model."""
        return cls(hidden=32, intermediate=64, layers=2, heads=2, kv_heads=1, seq=16, batch=2,
                   pretrain_steps=4, finetune_steps=4, eval_batches=1, eval_every=2, timing_rounds=2)


def scheme_text(cfg: LLMConfig) -> str:
    late = range(cfg.layers // 2, cfg.layers)
    last = cfg.layers - 1
    norms = "\n".join(f"model.layers.{i}.*norm.weight: full" for i in late)
    return f"""# sparse fine-tuning of the demo's tiny Llama (pockengine demo --llm)
default frozen
# RMSNorm gains of the late blocks and the final norm: Llama has no biases, the gains take their
# part; backprop stops at the earliest block that trains, so early blocks save no activations
{norms}
model.norm.weight: full
# late projections: the last block's attention output, and its MLP on a share of the input features
model.layers.{last}.self_attn.o_proj.weight: full
model.layers.{last}.mlp.*: ratio {cfg.mlp_ratio}
lm_head.weight: full
"""


def build_model(cfg: LLMConfig):
    """A LlamaForCausalLM whose forward returns the logits tensor (parameter names unchanged)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    class LogitsLlama(LlamaForCausalLM):
        def forward(self, input_ids):
            return super().forward(input_ids=input_ids, use_cache=False).logits

    torch.manual_seed(cfg.seed)
    hf = LlamaConfig(vocab_size=corpus.VOCAB, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                     num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                     num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.seq,
                     tie_word_embeddings=False, use_cache=False)
    return LogitsLlama(hf)


def _pretrain_key(cfg: LLMConfig, tokens) -> str:
    import hashlib

    import torch
    import transformers

    what = (cfg.hidden, cfg.intermediate, cfg.layers, cfg.heads, cfg.kv_heads, cfg.seq, cfg.batch,
            cfg.pretrain_steps, cfg.pretrain_lr, cfg.seed, len(tokens), torch.__version__, transformers.__version__)
    return hashlib.sha256(repr(what).encode()).hexdigest()[:12]


def held_out_loss(forward, batches) -> float:
    """Mean next-token cross-entropy of `forward(ids) -> logits` over fixed batches."""
    total = 0.0
    for ids, _ in batches:
        logits = np.asarray(forward(ids), np.float64)[:, :-1]
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        target = ids[:, 1:]
        total += -np.take_along_axis(logp, target[..., None], -1).mean()
    return total / len(batches)


def run(cfg: LLMConfig = LLMConfig(), out_dir: Path = Path("demo_out"), steps: Steps | None = None,
        threads: int = 1) -> list[Result]:
    import pockengine
    import torch
    from pockengine.passes.cost import cost
    from pockengine.passes.scheme import Scheme

    torch.set_num_threads(threads)
    steps = steps or Steps(total=7)
    out_dir.mkdir(parents=True, exist_ok=True)
    pretrain_tokens, finetune_tokens = corpus.texts()
    train_tokens, val_tokens = corpus.split(finetune_tokens)
    val = list(corpus.batches(val_tokens, cfg.batch, cfg.seq, cfg.eval_batches, seed=cfg.seed + 1))
    tune = list(corpus.batches(train_tokens, cfg.batch, cfg.seq, cfg.finetune_steps, seed=cfg.seed + 2))

    with steps.step("pretrain a tiny Llama on Python's Language Reference (PyTorch)",
                    total=cfg.pretrain_steps, unit="step") as bar:
        model = build_model(cfg)
        n_params = sum(p.numel() for p in model.parameters())
        cache = out_dir / "cache" / f"llm-{_pretrain_key(cfg, pretrain_tokens)}.pt"
        if cache.is_file():  # the same pretraining ran before: reuse it
            saved = torch.load(cache)
            model.load_state_dict(saved["model"])
            losses = saved["losses"]
            bar.update(cfg.pretrain_steps)
        else:
            pre = EagerTrainer(model, "next_token", "adamw", {"lr": cfg.pretrain_lr})
            losses, _ = timed_steps(pre.step, corpus.batches(pretrain_tokens, cfg.batch, cfg.seq,
                                                             cfg.pretrain_steps, cfg.seed), bar)
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "losses": losses}, cache.with_suffix(".tmp"))
            cache.with_suffix(".tmp").replace(cache)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        base_loss = held_out_loss(lambda ids: model(torch.as_tensor(ids)).detach().numpy(), val)
        bar.result = (f"{n_params / 1e6:.2f}M parameters, loss {losses[0]:.2f} → {losses[-1]:.2f}; "
                      f"held-out docstring loss {base_loss:.3f}")

    with steps.step("import with torch.export") as bar:
        program = pockengine.from_torch(model, (torch.as_tensor(val[0][0]),))
        bar.result = f"{sum(1 for _ in program.params())} parameters and buffers, @forward {_ops(program)} ops"

    scheme_path = out_dir / "llm_scheme.pock"
    scheme_path.write_text(scheme_text(cfg))
    updates = Scheme.load(scheme_path).resolve(program)
    hyper = {"lr": cfg.lr}
    with steps.step("compile the sparse fine-tuning step to C") as bar:
        trainer, _ = compile_trainer(program, "next_token", "adam", scheme_path, **hyper)
        trained = cost(trainer.program)["train_step"].trained_elements  # the compiler's own count
        bar.result = (f"{trained:,} of {n_params:,} parameters train; planned training memory "
                      f"{trainer.memory['training_extra'] / 1024:,.0f} KiB ({scheme_path})")

    results = []
    with steps.step("fine-tune on stdlib docstrings (compiled sparse)", total=len(tune), unit="step") as bar:
        losses, secs, evals = timed_steps(trainer.step, tune, bar, lambda: held_out_loss(trainer.forward, val),
                                          cfg.eval_every)
        res = Result("compiled sparse (C)", losses, secs, evals[-1][1], trainer.memory, evals)
        results.append(res)
        steppers = {res.name: trainer.step}
        bar.result = f"held-out loss {base_loss:.3f} → {res.quality:.3f}, {res.ms_per_step:.1f} ms/step"

    for label, upd in (("PyTorch eager, same scheme", updates), ("PyTorch eager, full BP", None)):
        with steps.step(f"fine-tune in {label}", total=len(tune), unit="step") as bar:
            ref = _pretrained_copy(model)
            eager = EagerTrainer(ref, "next_token", "adam", hyper, upd)
            losses, secs, evals = timed_steps(eager.step, tune, bar, lambda e=eager: held_out_loss(e.forward, val),
                                              cfg.eval_every)
            res = Result(label, losses, secs, evals[-1][1], eager.memory or {}, evals)
            results.append(res)
            steppers[label] = eager.step
            bar.result = f"held-out loss {base_loss:.3f} → {res.quality:.3f}, {res.ms_per_step:.1f} ms/step"

    time_in_turn(steps, steppers, results, tune[0], cfg.timing_rounds)
    return results


def _pretrained_copy(model):
    import copy

    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def _ops(program) -> int:
    return sum(1 for _ in program.functions()["forward"].walk()) - 1


def main(out_dir: Path, tiny: bool = False, threads: int = 1) -> int:
    cfg = LLMConfig.tiny() if tiny else LLMConfig()
    steps = Steps(total=7)
    results = run(cfg, out_dir, steps, threads)
    print()
    print(f"tiny Llama ({cfg.layers} layers, hidden {cfg.hidden}, seq {cfg.seq}, batch {cfg.batch}), "
          f"{cfg.finetune_steps} Adam steps on stdlib docstrings, one thread each:")
    print(table(results, quality="held-out loss", baseline="PyTorch eager, full BP"))
    paths = figures(results, out_dir, "tiny Llama fine-tuning", prefix="llm_")
    print(f"figures: {', '.join(str(p) for p in paths)}")
    return 0


