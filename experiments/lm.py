"""Experiment 3: a small Llama pretrained on Jane Austen, fine-tuned on the Brown corpus.

    python -m pockengine.experiments lm -o experiments_out/lm

The model has W4's architecture (benchmarks/workloads.py: HF LlamaForCausalLM, 4 layers, hidden
256, 4 heads, SwiGLU 688, RMSNorm, RoPE) with bytes as tokens (ASCII, vocabulary 128; the few
non-ASCII characters become '?'), so the LM head is small. It is pretrained in PyTorch
(cached) on the six novels (data.jane_austen, 4.0 MB), then fine-tuned on the Brown corpus
(data.brown, POS tags stripped). The Brown files are split by file, never inside one: every
10th file (ca01, ca11, …; 50 files) is the held-out test split, the files at index 5 mod 10
the validation split (the search's), the other 400 the training split. Training windows are
drawn at seeded random offsets; validation and test are fixed windows. Quality is the test
perplexity, exp(mean next-token NLL) over every position of the test windows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..atomic import replaced_file
from . import data
from .protocol import COMPILED_FULL, Setup

VOCAB = 128


@dataclass(frozen=True)
class Config:
    hidden: int = 256
    intermediate: int = 688
    layers: int = 4
    heads: int = 4
    seq: int = 64  # W4 trains at 128; halved to fit the shared 2-core machine
    batch: int = 8
    pretrain_steps: int = 1200  # session 1: 300 (an under-trained model: Austen loss 2.25 nats/byte)
    pretrain_lr: float = 3e-3
    steps: int = 300
    # Adam; each row's lr is chosen from this grid on validation perplexity (seed 0, lr_steps steps)
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    lr_steps: int = 150
    lr: float = 1e-3  # the search's short runs (the middle of the grid)
    n_train: int = 4096  # training windows (the batches draw from them)
    n_val: int = 128
    n_test: int = 256
    budget_fraction: float = 1 / 3
    search_steps: int = 60
    # weights the search may pick: every projection (q, k, v, o, gate, up, down) of the last
    # `search_blocks` blocks, each at 1/4 or all of its input channels; the final norm trains with the head
    search_blocks: int = 2
    search_ratios: tuple[str, ...] = ("1/4", "1")
    search_workers: int = 2

    @classmethod
    def tiny(cls) -> Config:
        return cls(hidden=32, intermediate=64, layers=2, heads=2, seq=16, batch=2, pretrain_steps=3, steps=3,
                   n_train=16, n_val=4, n_test=4, search_steps=2, search_blocks=1, search_ratios=("1",),
                   lr_grid=(1e-3, 3e-3), lr_steps=2, search_workers=1)


def encode(text: str) -> np.ndarray:
    b = np.frombuffer(text.encode("ascii", "replace"), np.uint8)
    return b.astype(np.int64)


def windows(tokens: np.ndarray, n: int, seq: int, rng) -> np.ndarray:
    if len(tokens) <= seq:
        raise ValueError(f"{len(tokens)} tokens are too few for windows of {seq}")
    starts = rng.integers(0, len(tokens) - seq, n) if rng is not None else \
        np.linspace(0, len(tokens) - seq - 1, n).astype(np.int64)
    return np.stack([tokens[s:s + seq] for s in starts])


def build_model(cfg: Config):
    """W4's LlamaForCausalLM (byte vocabulary) whose forward returns the logits."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    class LogitsLlama(LlamaForCausalLM):
        def forward(self, input_ids):
            return super().forward(input_ids=input_ids, use_cache=False).logits

    torch.manual_seed(0)
    hf = LlamaConfig(vocab_size=VOCAB, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                     num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                     max_position_embeddings=cfg.seq, tie_word_embeddings=False, use_cache=False,
                     attn_implementation="eager")
    return LogitsLlama(hf)


def pretrain(cfg: Config, tokens: np.ndarray, cache: Path, log=print):
    import torch
    import torch.nn.functional as F

    keys = ("hidden", "intermediate", "layers", "heads", "seq", "batch", "pretrain_steps", "pretrain_lr")
    key = hashlib.sha256(json.dumps([asdict(cfg)[k] for k in keys] + [len(tokens), 1]).encode()).hexdigest()[:12]
    path = cache / f"austen-llama-{key}.pt"
    model = build_model(cfg)
    if path.is_file():
        saved = torch.load(path)
        model.load_state_dict(saved["model"])
        return model.eval(), saved["losses"]
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.pretrain_lr, total_steps=max(cfg.pretrain_steps, 1))
    model.train()
    losses = []
    for s in range(cfg.pretrain_steps):
        ids = torch.from_numpy(windows(tokens, cfg.batch, cfg.seq, rng))
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (s + 1) % 100 == 0:
            log(f"pretrain step {s + 1}/{cfg.pretrain_steps}: loss {np.mean(losses[-100:]):.3f}")
    with replaced_file(path) as tmp:  # pockengine.atomic: a killed run leaves no half-written cache
        torch.save({"model": model.state_dict(), "losses": losses}, tmp)
    return model.eval(), losses


W4_STYLE = ("# W4's scheme (benchmarks/workloads.py), at this model's depth\n"
            "default frozen\n{norms}model.norm.*: full\nmodel.layers.{last}.mlp.*: full\nlm_head.*: full\n")


def schemes(cfg: Config):
    def build(setup: Setup, program, full_memory: int, out: Path, log) -> dict:
        import pockengine
        from pockengine.search import Recipe
        from pockengine.search.contribution import Space

        base = "lm_head.*: full\nmodel.norm.*: full"
        space = Space(program, base)
        late = tuple(f"model.layers.{i}." for i in range(cfg.layers - cfg.search_blocks, cfg.layers))
        layer_ids = [lay.index for lay in space.backbone if lay.index in space.weight_of and lay.name.startswith(late)]
        budget = int(full_memory * cfg.budget_fraction)
        x, _ = setup.val
        nxt = np.concatenate([x[:, 1:], x[:, -1:]], 1)  # the search scores next-token accuracy
        log(f"search under {budget / 2**20:.2f} MiB, weights of layers {layer_ids}")
        _, report = pockengine.search(
            program, setup.train, (x, nxt), budget=budget, base=base,
            recipe=Recipe(steps=cfg.search_steps, optimizer=setup.optimizer, lr=cfg.lr, loss="next_token"),
            ratios=[Fraction(r) for r in cfg.search_ratios], bias_ks=(), layers=layer_ids,
            workers=cfg.search_workers, cache_dir=out / "cache" / "search", progress=False, verify=False)
        report.save(out / "search")
        late = range(cfg.layers // 2, cfg.layers)
        norms = "".join(f"model.layers.{i}.*norm*: full\n" for i in late)
        setup.info["budget"] = budget
        return {
            COMPILED_FULL: None,
            "searched scheme (≤ 1/3 of full BP)": report.scheme_text,
            "W4-style scheme": W4_STYLE.format(norms=norms, last=cfg.layers - 1),
            "LM head only": "default frozen\nlm_head.*: full\n",
        }

    return build


def setup(cfg: Config = Config(), cache: Path | None = None, log=print) -> Setup:
    import copy

    cache = Path(cache) if cache else data.cache_root()
    austen = encode("\n\n".join(data.jane_austen().values()))
    files = data.brown()
    pick = lambda r: encode("\n\n".join(t for i, t in enumerate(files) if r(i % 10)))
    train_tok, val_tok, test_tok = pick(lambda m: m not in (0, 5)), pick(lambda m: m == 5), pick(lambda m: m == 0)
    model, losses = pretrain(cfg, austen, cache, log)
    for p in model.parameters():
        p.requires_grad_(True)
    train = windows(train_tok, cfg.n_train, cfg.seq, np.random.default_rng(1))
    val = windows(val_tok, cfg.n_val, cfg.seq, None)
    test = windows(test_tok, cfg.n_test, cfg.seq, None)
    info = {"config": asdict(cfg), "tokens": {"austen": len(austen), "brown_train": len(train_tok),
                                              "brown_val": len(val_tok), "brown_test": len(test_tok)},
            "pretrain_loss_last100": float(np.mean(losses[-100:])) if losses else None,
            "parameters": sum(p.numel() for p in model.parameters())}
    return Setup("lm", lambda seed: copy.deepcopy(model).eval(), (train, train), (val, val), (test, test),
                 cfg.batch, cfg.steps, "next_token", "adam", {"lr": cfg.lr}, "perplexity", schemes(cfg), info=info,
                 lr_grid=cfg.lr_grid, lr_steps=cfg.lr_steps)
