"""Text that ships with Python itself, for the language-model demo (no download).

- Pretraining: `pydoc_data.topics`, the Language Reference pages that `help("if")` shows
  (~460 KB of English technical prose, in every CPython install).
- Fine-tuning, a different register: the docstrings of common standard-library modules
  (API documentation: "Return a new list ...") and the Zen of Python (`this`, stored rot13).

Text becomes bytes: 7-bit ASCII, one token per byte (vocabulary 128), so no tokenizer is
needed and any Python can rebuild the exact same data.
"""

from __future__ import annotations

import codecs
import importlib
import inspect

import numpy as np

VOCAB = 128
FINETUNE_MODULES = ("collections", "itertools", "functools", "json", "pathlib", "textwrap", "string",
                    "statistics", "random", "re", "shutil", "heapq", "bisect", "fractions", "datetime",
                    "argparse", "csv", "difflib", "enum", "dataclasses")


def reference_manual() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def zen_of_python() -> str:
    import this  # prints the Zen on first import (texts() mutes it); this.s is its rot13 source

    return codecs.decode(this.s, "rot13")


def module_docstrings(names=FINETUNE_MODULES) -> str:
    parts = []
    for name in names:
        mod = importlib.import_module(name)
        parts.append(inspect.getdoc(mod) or "")
        for attr in sorted(dir(mod)):
            obj = getattr(mod, attr)
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            doc = inspect.getdoc(obj)
            if doc and (inspect.isfunction(obj) or inspect.isclass(obj)):
                parts.append(f"{attr}: {doc}")
    return "\n\n".join(p for p in parts if p)


def encode(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii", "replace"), np.uint8).astype(np.int64) % VOCAB


def decode(tokens) -> str:
    return bytes(int(t) for t in tokens).decode("ascii", "replace")


def texts() -> tuple[np.ndarray, np.ndarray]:
    """(pretraining tokens, fine-tuning tokens)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        zen = zen_of_python()
    return encode(reference_manual()), encode(module_docstrings() + "\n\n" + zen)


def batches(tokens: np.ndarray, batch: int, seq: int, n: int, seed: int):
    """`n` random windows of `seq` tokens per batch, seeded; labels are the inputs (the
    next-token loss shifts them)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        starts = rng.integers(0, len(tokens) - seq, batch)
        ids = np.stack([tokens[s:s + seq] for s in starts])
        yield ids, ids


def split(tokens: np.ndarray, held_out: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    cut = int(len(tokens) * (1 - held_out))
    return tokens[:cut], tokens[cut:]
