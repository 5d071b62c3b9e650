"""Sparse update schemes: which parameters a training step updates, and how much of them.

A scheme is a default plus rules; later rules override earlier ones (docs/schemes.md):

    # TTE-like: biases of the late layers, a few pointwise weights, the classifier
    default frozen
    last 35 conv layers: bias
    features.13.conv.2: ratio 1/2        # glob over parameter or layer names
    conv layers 40..41: ratio 1/4
    classifier.*: full

The same scheme is a Python `Scheme` object and a JSON document (`Scheme.from_json`,
`Scheme.to_json`); TTE's backward config converts with `Scheme.from_tte`. `Scheme.resolve`
maps every trainable parameter of a program to an `Update` (frozen, full, or the first
ceil(r·C) channels). Every mistake is a `SchemeError` located at `file:line:col` with the
offending token quoted, or at a JSON path; a rule that selects nothing is a mistake, and so
is a scheme that would train nothing.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import UserError
from .scheme_layers import Layer, find_layers, is_additive, params, ratio_axis, scheme_candidates

MODES = ("frozen", "full", "bias", "ratio")
KINDS = ("conv", "linear", "matmul", "embedding", "norm")


class SchemeError(UserError):
    """A bad scheme; the message starts with where (`file:line:col` or a JSON path)."""


@dataclass(frozen=True)
class Loc:
    """Where a rule or selector was written: a text position or a JSON path."""

    source: str
    line: int = 0
    col: int = 0
    text: str = ""  # the source line, for the caret display
    width: int = 1  # how many characters the caret underlines

    def error(self, msg: str, token: str | None = None) -> SchemeError:
        if not self.line:
            return SchemeError(f"{self.source}: {msg}")
        head = f"{self.source}:{self.line}:{self.col}: {msg}"
        if not self.text:
            return SchemeError(head)
        width = max(len(token) if token else self.width, 1)
        return SchemeError(f"{head}\n  {self.text}\n  {' ' * (self.col - 1)}{'^' * width}")


@dataclass(frozen=True)
class Selector:
    """One way to pick parameters: a glob over parameter/layer names, the last N layers, or
    layer indices lo..hi (inclusive, 0-based, in order of first use in @forward). `kind`
    restricts layer counting to layers of that kind (`last 3 conv layers`)."""

    glob: str | None = None
    last: int | None = None
    lo: int | None = None
    hi: int | None = None
    kind: str | None = None
    loc: Loc | None = field(default=None, compare=False)

    def __post_init__(self):
        forms = [self.glob is not None, self.last is not None, self.lo is not None]
        if sum(forms) != 1 or (self.lo is not None and (self.hi is None or self.hi < self.lo)) or \
                (self.kind is not None and (self.kind not in KINDS or self.glob is not None)):
            raise (self.loc or Loc("<scheme>")).error(f"malformed selector {self!r}")

    def to_text(self) -> str:
        kind = f"{self.kind} " if self.kind else ""
        if self.glob is not None:
            plain = re.fullmatch(r"[\w*?\[][\w.*?\[\]!\-]*", self.glob) and self.glob not in _KEYWORDS
            return self.glob if plain else json.dumps(self.glob)
        if self.last is not None:
            return f"last {self.last} {kind}layers"
        return f"{kind}layer {self.lo}" if self.lo == self.hi else f"{kind}layers {self.lo}..{self.hi}"

    def to_json(self) -> dict:
        if self.glob is not None:
            out: dict = {"glob": self.glob}
        elif self.last is not None:
            out = {"last": self.last}
        else:
            out = {"layers": [self.lo, self.hi]}
        return out | ({"kind": self.kind} if self.kind else {})


@dataclass(frozen=True)
class Rule:
    selectors: tuple[Selector, ...]
    mode: str
    ratio: Fraction | None = None
    loc: Loc | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise (self.loc or Loc("<scheme>")).error(f"unknown mode {self.mode!r} (known: {', '.join(MODES)})")
        if not self.selectors:
            raise (self.loc or Loc("<scheme>")).error("a rule needs at least one selector")
        if self.mode == "ratio":
            _check_ratio(Fraction(self.ratio) if self.ratio is not None else Fraction(0), self.loc)

    def to_text(self) -> str:
        mode = f"ratio {_ratio_text(self.ratio)}" if self.mode == "ratio" else self.mode
        return ", ".join(s.to_text() for s in self.selectors) + f": {mode}"

    def to_json(self) -> dict:
        out = {"select": [s.to_json() for s in self.selectors], "mode": self.mode}
        return out | ({"ratio": _ratio_text(self.ratio)} if self.mode == "ratio" else {})


@dataclass(frozen=True)
class Update:
    """What a training step does to one parameter: nothing, all of it, or its first
    `channels` slices along `axis` (a channel ratio)."""

    mode: str  # "frozen" | "full" | "ratio"
    ratio: Fraction = Fraction(1)
    axis: int | None = None
    channels: int | None = None
    by: Rule | None = field(default=None, compare=False)  # the deciding rule (None: the default)

    def __str__(self) -> str:
        if self.mode != "ratio":
            return self.mode
        return f"ratio {_ratio_text(self.ratio)} ({self.channels} channels on axis {self.axis})"


@dataclass(frozen=True)
class Scheme:
    default: str = "frozen"
    rules: tuple[Rule, ...] = ()
    source: str = field(default="<scheme>", compare=False)

    # --- reading ------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, source: str = "<scheme>") -> Scheme:
        try:
            tree = _parser().parse(text)
        except UnexpectedInput as e:
            raise _syntax_error(e, text, source) from None
        default, rules = "frozen", []
        try:
            stmts = _Build(source, text.splitlines()).transform(tree).children
        except VisitError as e:  # a located SchemeError raised while building
            raise e.orig_exc from None
        for stmt in stmts:
            if isinstance(stmt, Rule):
                rules.append(stmt)
            else:
                default = stmt
        return cls(default, tuple(rules), source)

    @classmethod
    def load(cls, spec: str | os.PathLike) -> Scheme:
        """A scheme file (`.json` or text) or, when `spec` names no file, inline scheme text.
        A missing file named `*.pock` or `*.json` is an error, not inline text."""
        path = Path(spec)
        text = str(spec).strip()
        looks_like_file = "\n" not in text and len(text) < 4096 and (path.suffix in (".pock", ".json") or path.is_file())
        if isinstance(spec, os.PathLike) or looks_like_file:
            if not path.is_file():
                raise SchemeError(f"{path}: no such scheme file")
            text = path.read_text()
            if path.suffix == ".json":
                return cls.from_json(text, str(path))
            return cls.parse(text, str(path))
        return cls.parse(str(spec), "<inline scheme>")

    @classmethod
    def from_json(cls, doc: str | dict, source: str = "<json>") -> Scheme:
        """{"default": "frozen", "rules": [{"select": [{"glob": "fc.*"}, {"last": 3, "kind": "conv"},
        {"layers": [26, 51]}, "classifier.*"], "mode": "ratio", "ratio": "1/4"}]}"""
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError as e:
                raise SchemeError(f"{source}:{e.lineno}:{e.colno}: {e.msg}") from None
        at = lambda path: Loc(f"{source}: {path}")
        if not isinstance(doc, dict) or set(doc) - {"default", "rules"}:
            raise at("top level").error('expected an object with keys "default" and "rules"')
        default = doc.get("default", "frozen")
        if default not in ("frozen", "full"):
            raise at("default").error(f"default must be 'frozen' or 'full', got {default!r}")
        rules = []
        for i, r in enumerate(doc.get("rules", [])):
            where = f"rules[{i}]"
            if not isinstance(r, dict) or "select" not in r or "mode" not in r:
                raise at(where).error('a rule needs "select" and "mode"')
            if r["mode"] not in MODES:
                raise at(f"{where}.mode").error(f"unknown mode {r['mode']!r} (known: {', '.join(MODES)})")
            sels = r["select"] if isinstance(r["select"], list) else [r["select"]]
            if not sels:
                raise at(f"{where}.select").error("selects nothing")
            selectors = tuple(_selector_from_json(s, at(f"{where}.select[{j}]")) for j, s in enumerate(sels))
            ratio = None
            if r["mode"] == "ratio":
                ratio = _check_ratio(_to_fraction(r.get("ratio"), at(f"{where}.ratio")), at(f"{where}.ratio"))
            rules.append(Rule(selectors, r["mode"], ratio, at(where)))
        return cls(default, tuple(rules), source)

    @classmethod
    def from_tte(cls, n_bias_update: int | str, manual_weight_idx=None, weight_update_ratio=None,
                 train_classifier: bool = True) -> Scheme:
        """TTE's backward config (tiny-training `parsed_backward_config`): conv layers are counted
        without the classifier; `n_bias_update` last convs train their biases; weights of the
        convs at `manual_weight_idx` train at `weight_update_ratio` (0 or None: bias only as
        in TTE, None meaning all channels); the classifier is always trained."""
        try:
            idx = _tte_list(manual_weight_idx, int)
            ratios = _tte_list(weight_update_ratio, float)
        except (TypeError, ValueError) as e:
            raise SchemeError(f"TTE config: manual_weight_idx / weight_update_ratio: {e}") from None
        if ratios and len(ratios) == 1 and len(idx) > 1:
            ratios = ratios * len(idx)
        if ratios and len(ratios) != len(idx):
            raise SchemeError(f"TTE config: {len(idx)} weight indices but {len(ratios)} ratios")
        for i, r in zip(idx, ratios or [None] * len(idx)):  # TTE: 0 is bias only; otherwise (0, 1]
            if r is not None and not (math.isfinite(r) and 0 <= r <= 1):
                raise SchemeError(f"TTE config: weight_update_ratio {r!r} for conv {i} is outside [0, 1] "
                                  "(0: bias only, 1: all channels)")
        if n_bias_update != "all":
            try:
                n_bias = int(n_bias_update)
                if n_bias != n_bias_update and not isinstance(n_bias_update, str):
                    raise ValueError
            except (TypeError, ValueError):
                raise SchemeError(f"TTE config: n_bias_update must be 'all' or a count, got {n_bias_update!r}") from None
            if n_bias < 0:
                raise SchemeError(f"TTE config: n_bias_update must be 'all' or a count >= 0, got {n_bias}")
        rules = []
        if n_bias_update == "all":
            rules.append(Rule((Selector(glob="*", kind=None),), "bias"))
        elif n_bias > 0:
            rules.append(Rule((Selector(last=n_bias, kind="conv"),), "bias"))
        for i, r in zip(idx, ratios or [None] * len(idx)):
            if r is None or r == 1:
                rules.append(Rule((Selector(lo=i, hi=i, kind="conv"),), "ratio", Fraction(1)))
            elif r > 0:
                rules.append(Rule((Selector(lo=i, hi=i, kind="conv"),), "ratio", Fraction(str(r))))
        if train_classifier:
            rules.append(Rule((Selector(last=1, kind="linear"),), "full"))
        return cls("frozen", tuple(rules), "<tte>")

    # --- writing ------------------------------------------------------------------
    def to_text(self) -> str:
        return "\n".join([f"default {self.default}", *(r.to_text() for r in self.rules)]) + "\n"

    def to_json(self) -> dict:
        return {"default": self.default, "rules": [r.to_json() for r in self.rules]}

    # --- meaning ------------------------------------------------------------------
    def resolve(self, program) -> dict[str, Update]:
        """Every trainable parameter of `program` (a Program or a module) → its Update."""
        module = getattr(program, "module", program)
        layers = find_layers(module)
        candidates = scheme_candidates(module)
        if not candidates:
            raise SchemeError(f"{self.source}: the program has no trainable parameter to apply the scheme to")
        decision = {p: Update(self.default) for p in candidates}
        for rule in self.rules:
            chosen: list[str] = []
            for sel in rule.selectors:
                chosen += [p for p in _select(sel, layers, module) if p not in chosen]
            picked = [p for p in chosen if p in decision]
            loc = rule.loc or Loc(self.source)
            if not picked:
                raise loc.error(f"`{rule.to_text()}` selects parameters {_few(chosen)}, none of them trainable")
            if rule.mode in ("full", "frozen"):
                for p in picked:
                    decision[p] = Update(rule.mode, by=rule)
            elif rule.mode == "bias":
                additive = [p for p in picked if is_additive(module, p)]
                if not additive:
                    raise loc.error(f"`{rule.to_text()}`: no bias or norm shift among {_few(picked)}")
                for p in picked:
                    decision[p] = Update("full" if p in additive else "frozen", by=rule)
            else:
                sliceable = {p: ratio_axis(module, p) for p in picked}
                sliceable = {p: ac for p, ac in sliceable.items() if ac is not None}
                if not sliceable:
                    raise loc.error(f"`{rule.to_text()}`: a ratio needs conv/linear/matmul weights, "
                                    f"selected only {_few(picked)}")
                for p, (axis, c) in sliceable.items():
                    k = math.ceil(rule.ratio * c)
                    decision[p] = Update("full", by=rule) if k >= c else Update("ratio", rule.ratio, axis, k, rule)
        if all(u.mode == "frozen" for u in decision.values()):
            raise SchemeError(f"{self.source}: the scheme trains no parameter (default {self.default}, "
                              f"{len(self.rules)} rules)")
        return decision


# --- selection -------------------------------------------------------------------------


def _select(sel: Selector, layers: list[Layer], module) -> list[str]:
    loc = sel.loc or Loc("<scheme>")
    if sel.glob is not None:
        names = {p: lay.name for lay in layers for p in lay.params}
        names |= {p: p for p in params(module) if p not in names}
        also = _alias_names(module)  # tied weights answer to each of their names
        out = [p for p, layer in names.items()
               if any(fnmatch.fnmatchcase(n, sel.glob) for n in (p, layer, *_prefixes(p), *also.get(p, ())))]
        if not out:
            names = [lay.name for lay in layers[:3]]
            raise loc.error(f"`{sel.glob}` matches no parameter or layer name (layers are named like "
                            f"{', '.join(names)}, ...)", sel.glob)
        return out
    pool = [lay for lay in layers if sel.kind is None or lay.kind == sel.kind]
    what = f"{sel.kind} layers" if sel.kind else "layers"
    if sel.last is not None:
        if not 0 < sel.last <= len(pool):
            raise loc.error(f"`{sel.to_text()}`: the model has {len(pool)} {what}", sel.to_text())
        chosen = pool[len(pool) - sel.last:]
    else:
        if not 0 <= sel.lo <= sel.hi < len(pool):
            raise loc.error(f"`{sel.to_text()}` is out of range: the model has {len(pool)} {what} "
                            f"(0..{len(pool) - 1})", sel.to_text())
        chosen = pool[sel.lo:sel.hi + 1]
    return [p for lay in chosen for p in lay.params]


def _alias_names(module) -> dict[str, list[str]]:
    """param → its other names (`train.param ... {aliases = [...]}`) and their prefixes."""
    from ..ir.ops.state import ParamOp

    return {op.sym_name.data: [n for a in op.alias_names for n in (a, *_prefixes(a))]
            for op in module.ops if isinstance(op, ParamOp) and op.alias_names}


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _few(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "") if names else "(none)"


# --- text syntax --------------------------------------------------------------------------

_KEYWORDS = {"default", "full", "frozen", "bias", "ratio", "last", "layer", "layers", *KINDS}
_TOKEN_NAMES = {"COLON": "':'", "COMMA": "','", "SEMICOLON": "';'", "INT": "an integer", "NUMBER": "a number",
                "SLASH": "'/'", "GLOB": "a name or glob", "ESCAPED_STRING": "a quoted name", "KIND": "a layer kind",
                "LAYERS": "'layers'", "__ANON_0": "'..'", "$END": "end of input"}


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("scheme.lark")).read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _syntax_error(e: UnexpectedInput, text: str, source: str) -> SchemeError:
    lines = text.splitlines() or [""]
    line, col = max(e.line, 1), max(e.column, 1)
    if isinstance(e, UnexpectedToken) and e.token.type == "$END" or isinstance(e, UnexpectedEOF):
        line, col = len(lines), len(lines[-1]) + 1
        token = None
        what = "unexpected end of scheme"
    else:
        rest = lines[line - 1][col - 1:] if line <= len(lines) else ""
        token = re.match(r"[\w.*?\[\]!\-/]+|\S", rest)
        token = token.group(0) if token else rest[:1]
        what = f"unexpected {token!r}"
    expected = sorted(getattr(e, "expected", None) or getattr(e, "allowed", None) or [])
    if expected:
        what += ", expected " + " or ".join(_TOKEN_NAMES.get(t, repr(t.lower())) for t in expected)
    src = lines[line - 1] if line <= len(lines) else ""
    return Loc(source, line, col, src).error(what, token)


class _Build(Transformer):
    def __init__(self, source: str, lines: list[str]):
        super().__init__()
        self.source, self.lines = source, lines

    def _loc(self, tok) -> Loc:
        line, col = getattr(tok, "line", 0) or 0, getattr(tok, "column", 0) or 0
        end = getattr(tok, "end_column", 0) if getattr(tok, "end_line", line) == line else 0
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return Loc(self.source, line, col, text, max((end or len(text) + 1) - col, 1))

    @v_args(meta=True)
    def default_stmt(self, meta, items):
        return str(items[1])

    @v_args(meta=True)
    def rule(self, meta, items):
        *selectors, (mode, ratio, ratio_loc) = items
        loc = self._loc(meta)
        if ratio is not None:
            ratio = _check_ratio(ratio, ratio_loc)
        return Rule(tuple(selectors), mode, ratio, loc)

    def glob(self, items):
        return Selector(glob=str(items[0]), loc=self._loc(items[0]))

    def quoted_glob(self, items):
        return Selector(glob=json.loads(items[0]), loc=self._loc(items[0]))

    def last(self, items):
        _, n, kind, _ = items
        return Selector(last=int(n), kind=_kind(kind), loc=self._loc(items[0]))

    def index(self, items):
        kind, word, lo, hi = items
        start = kind if kind is not None else word
        if hi is not None and int(hi) < int(lo):
            raise self._loc(lo).error(f"empty layer range {lo}..{hi}", f"{lo}..{hi}")
        return Selector(lo=int(lo), hi=int(hi if hi is not None else lo), kind=_kind(kind), loc=self._loc(start))

    def mode(self, items):
        if len(items) == 1:
            return (str(items[0]), None, None)
        ratio, tok = items[1]
        return ("ratio", ratio, self._loc(tok))

    def ratio(self, items):
        if len(items) == 2:
            if int(items[1]) == 0:
                raise self._loc(items[1]).error("ratio denominator is zero", str(items[1]))
            return Fraction(int(items[0]), int(items[1])), _span_token(items[0], f"{items[0]}/{items[1]}")
        return Fraction(str(items[0])), items[0]  # 0.25 or 1


def _span_token(first: Token, text: str) -> Token:
    return Token.new_borrow_pos("RATIO", text, first)


def _kind(tok) -> str | None:
    return None if tok is None else str(tok)


def _check_ratio(r: Fraction, loc: Loc | None) -> Fraction:
    if not 0 < r <= 1:
        raise (loc or Loc("<scheme>")).error(f"ratio {_ratio_text(r)} is outside (0, 1]", _ratio_text(r))
    return r


def _ratio_text(r: Fraction | None) -> str:
    return "1" if r is None else (str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}")


# --- JSON and TTE helpers --------------------------------------------------------------------


def _to_fraction(v, loc: Loc) -> Fraction:
    try:
        if isinstance(v, bool) or v is None:
            raise ValueError
        return Fraction(str(v)) if not isinstance(v, str) else Fraction(v.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        raise loc.error(f"a ratio must be a number or 'a/b', got {v!r}") from None


def _selector_from_json(s, loc: Loc) -> Selector:
    if isinstance(s, str):
        return Selector(glob=s, loc=loc)
    if not isinstance(s, dict):
        raise loc.error(f"a selector is a glob string or an object, got {s!r}")
    kind = s.get("kind")
    if kind is not None and kind not in KINDS:
        raise loc.error(f"unknown layer kind {kind!r} (known: {', '.join(KINDS)})")
    keys = set(s) - {"kind"}
    if keys == {"glob"} and isinstance(s["glob"], str) and kind is None:
        return Selector(glob=s["glob"], loc=loc)
    if keys == {"last"} and isinstance(s["last"], int):
        return Selector(last=s["last"], kind=kind, loc=loc)
    if keys == {"layers"}:
        v = s["layers"]
        lo, hi = (v, v) if isinstance(v, int) else (tuple(v) if isinstance(v, list) and len(v) == 2 else (None, None))
        if isinstance(lo, int) and isinstance(hi, int):
            return Selector(lo=lo, hi=hi, kind=kind, loc=loc)
    raise loc.error(f'a selector is {{"glob": str}}, {{"last": n}} or {{"layers": [lo, hi]}} '
                    f'(optional "kind"), got {json.dumps(s)}')


def _tte_list(v, conv) -> list:
    if v is None:
        return []
    if isinstance(v, str):
        return [conv(x) for x in v.split("-") if x]
    if isinstance(v, (int, float)):
        return [conv(v)]
    return [None if x is None else conv(x) for x in v]


__all__ = ["Loc", "Rule", "Scheme", "SchemeError", "Selector", "Update"]
