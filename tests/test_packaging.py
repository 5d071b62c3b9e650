"""Packaging: pyproject lists every subpackage and data file, console scripts resolve, the pass
registry follows xDSL's conventions, and the size budget holds."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import runpy
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGES = PYPROJECT["tool"]["setuptools"]["packages"]
PACKAGE_DATA = PYPROJECT["tool"]["setuptools"].get("package-data", {})
# top-level folders of the repository that are not part of the import package
NOT_PACKAGE = {"tests", "docs", "examples", "benchmarks", "build", "dist", "demo_out"}


def package_dir(dotted: str) -> Path:
    return REPO.joinpath(*dotted.split(".")[1:])


def _skipped(rel: Path) -> bool:
    top = rel.parts[0] if rel.parts else ""
    return top in NOT_PACKAGE or any(
        p.startswith(".") or p == "__pycache__" or p.endswith(".egg-info") for p in rel.parts
    )


def package_dirs_on_disk() -> set[str]:
    found = set()
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if not _skipped(rel):
            found.add(".".join(("pockengine", *rel.parts)))
    return found


def data_files_on_disk() -> set[Path]:
    """Non-Python files inside subpackages (the root's own files are project files)."""
    files = set()
    for dotted in PACKAGES:
        if dotted == "pockengine":
            continue
        for f in package_dir(dotted).rglob("*"):
            rel = f.relative_to(REPO)
            if f.is_file() and f.suffix not in (".py", ".pyc") and not _skipped(rel):
                files.add(rel)
    return files


def test_every_package_directory_is_listed_in_pyproject():
    on_disk = package_dirs_on_disk()
    assert sorted(on_disk - set(PACKAGES)) == [], "add these to [tool.setuptools] packages in pyproject.toml"
    assert sorted(set(PACKAGES) - on_disk) == [], "listed in pyproject.toml but no such package directory"


def test_every_data_file_is_declared_as_package_data():
    covered = {
        f.relative_to(REPO)
        for pkg, patterns in PACKAGE_DATA.items()
        for pattern in patterns
        for f in package_dir(pkg).glob(pattern)
    }
    missing = sorted(str(f) for f in data_files_on_disk() - covered)
    assert missing == [], "declare these in [tool.setuptools.package-data] (or move them out of the package)"


def test_console_scripts_resolve_to_callables():
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) >= {"pock-opt", "pockengine"}
    installed = {
        ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name in scripts
    }
    for name, target in scripts.items():
        assert name in installed, f"{name} is not installed: re-run `pip install -e .`"
        assert installed[name].value == target
        assert callable(installed[name].load())
        assert Path(sys.executable).with_name(name).exists()


def test_every_registered_pass_follows_the_xdsl_conventions():
    from pockengine.pipeline import get_all_passes  # passes/ + the backend passes
    from pockengine.tools.pock_opt import describe
    from xdsl.passes import ModulePass

    for name, factory in get_all_passes().items():
        cls = factory()
        assert issubclass(cls, ModulePass), name
        assert cls.name == name, f"registered as {name!r} but the pass calls itself {cls.name!r}"
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, (
            f"{name}: not a frozen dataclass"
        )
        assert describe(name, cls) != "(no description)", f"{name}: give the pass a docstring"
        if cls.__module__.startswith("pockengine."):  # one module per pass, named after it
            assert cls.__module__ in (f"pockengine.passes.{name.replace('-', '_')}",  # backend passes:
                                      f"pockengine.backends.{name.replace('-', '_')}"), (name, cls.__module__)


def test_no_module_exceeds_the_size_budget(capsys):
    budget = runpy.run_path(str(REPO / ".ci" / "size_budget.py"))
    status = budget["main"]()
    out = capsys.readouterr()
    assert out.out.startswith("pockengine: ") and " lines in " in out.out
    assert status == 0, out.err


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    """Build a wheel from a copy of the package and compare its file list with the tree."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", *(f.name for f in REPO.glob("*.py"))):  # the root's modules too
        shutil.copy(REPO / name, src / name)
    tops = {package_dir(p).relative_to(REPO).parts[0] for p in PACKAGES if p != "pockengine"}
    for top in tops:
        shutil.copytree(REPO / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(src),
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("pockengine-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("pockengine/")}
    modules = {
        Path("pockengine", package_dir(p).relative_to(REPO), f.name).as_posix()
        for p in PACKAGES
        for f in package_dir(p).glob("*.py")
    }
    data = {Path("pockengine", f).as_posix() for f in data_files_on_disk()}
    assert sorted(modules - shipped) == [] and sorted(data - shipped) == []
