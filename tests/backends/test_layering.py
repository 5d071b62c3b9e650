"""The layers import in one direction only: passes/ (train IR → train IR) never imports
backends/ (kernel IR, targets) or the recipe, and backends/ never imports passes/ — except the
few imports listed in ALLOWED, each with its reason. The recipe (pockengine/pipeline.py) joins
the two; backends/ may call it only from inside a function (the CLI, Trainer.load), so that
importing any backend module never loads passes/. Imports inside the package are relative."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# (importing module, imported module prefix): why
ALLOWED = {
    ("backends.lowering.loss", "passes.fusion"): "re-reads a linear_cross_entropy group with fusion's matcher",
    ("backends.cli", "passes.hyperparameters"): "checks --lr/--momentum before any work, as autodiff{...} does",
}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path, top_level_only: bool = False) -> list[str]:
    """Every module `path` imports (anywhere in it, lazily too; or only at module level), as
    package-relative dotted names."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module(path).split(".")
    pkg = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            out += [a.name.removeprefix("pockengine.") for a in node.names if a.name.startswith("pockengine")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
                out += [name] if node.module else [f"{name}.{a.name}".lstrip(".") for a in node.names]
            elif node.module and node.module.startswith("pockengine"):
                out.append(node.module.removeprefix("pockengine").lstrip("."))
    return out


def _violations(layer: str, forbidden: tuple[str, ...], top_level_only: bool = False) -> list[str]:
    bad = []
    for path in sorted((REPO / layer).rglob("*.py")):
        mod = _module(path)
        for name in imports(path, top_level_only):
            hit = next((f for f in forbidden if name == f or name.startswith(f + ".")), None)
            if hit and not any(mod == m and name.startswith(p) for m, p in ALLOWED):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_passes_never_import_backends():
    assert _violations("passes", ("backends", "pipeline")) == []


def test_backends_never_import_passes():
    assert _violations("backends", ("passes",)) == []


def test_backends_call_the_recipe_only_from_inside_functions():
    assert _violations("backends", ("pipeline", "passes"), top_level_only=True) == []


def test_allowed_exceptions_still_exist():
    """An ALLOWED entry that is no longer needed is removed, not kept as a blanket pass."""
    for (mod, prefix), why in ALLOWED.items():
        path = REPO.joinpath(*mod.split(".")).with_suffix(".py")
        assert any(n.startswith(prefix) for n in imports(path)), f"{mod} no longer imports {prefix} ({why})"


def test_backends_import_the_package_relatively():
    absolute = [f"{p.relative_to(REPO)}: {n.module}" for p in sorted((REPO / "backends").rglob("*.py"))
                for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom)
                and not n.level and n.module and n.module.startswith("pockengine")]
    assert absolute == []


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    """The checker itself: a lazy relative import inside a function is found."""
    probe = REPO / "backends" / "lowering" / "loss.py"
    assert "passes.fusion" in imports(probe)
    assert "backends.kernel_ir" in imports(probe)
