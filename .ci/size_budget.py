#!/usr/bin/env python3
"""The size budget (style anchor 12, after tinygrad's sz.py): no module of the `pockengine`
package may exceed MAX_LINES lines. Prints the package's line count per subpackage on every
run so growth stays visible; exits 1 when a module is over budget.

The package is what pyproject.toml's `packages` lists (the repository root maps to
`pockengine`); tests/, examples/, benchmarks/ are not part of it.
"""

import sys
import tomllib
from pathlib import Path

MAX_LINES = 600
ROOT = Path(__file__).resolve().parents[1]


def package_modules(root: Path = ROOT) -> list[Path]:
    config = tomllib.loads((root / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    dirs = [root.joinpath(*p.split(".")[1:]) for p in packages]
    return sorted(f for d in dirs for f in d.glob("*.py"))


def line_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def main() -> int:
    counts = {p.relative_to(ROOT): line_count(p) for p in package_modules()}
    per_package: dict[str, int] = {}
    for rel, n in counts.items():
        key = str(rel.parent) if rel.parent != Path(".") else "(root)"
        per_package[key] = per_package.get(key, 0) + n
    print(
        f"pockengine: {sum(counts.values())} lines in {len(counts)} modules (budget {MAX_LINES} per module)"
    )
    for key, n in sorted(per_package.items()):
        print(f"  {key:<24} {n:>6}")
    over = {rel: n for rel, n in counts.items() if n > MAX_LINES}
    for rel, n in sorted(over.items()):
        print(f"over budget: {rel}: {n} lines > {MAX_LINES}; split it by concept", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
