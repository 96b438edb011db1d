"""The project code each DVC stage runs: the import closure of its command, as dvc.yaml deps.

A stage's cached result is only exact if dvc.yaml lists every project module its command imports,
directly or transitively (imports inside functions included), and nothing it does not. This reads
the code (no import is executed), so it sees what Python would load. Usage:

    python -m scripts.code_deps            # each stage's code deps, folders where a whole folder is used
    python -m scripts.code_deps --check    # exit 1 and name the differences if dvc.yaml is out of date
    python -m scripts.code_deps --write    # rewrite the code deps in dvc.yaml (data deps and comments stay)
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The project's code a stage may load; scripts/ and tests/ run no stage. writeup/ is here although no
# stage may load it either: so a stage that did would show in its closure (tests/test_layout.py).
PACKAGES = ("cifar10", "stages", "writeup")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of a project module (package -> its __init__.py), or None if it is not project code."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, root: Path) -> set[str]:
    """Module names an import statement anywhere in the file may load (a `from a import b` may load a.b)."""
    module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def closure(module: str, root: Path = ROOT) -> set[Path]:
    """Every project file loaded by importing `module`, parent packages' __init__.py included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            path = module_file(".".join(parts[:i]), root)
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(_imported_names(path, root))
    return {p.relative_to(root) for p in seen}


def as_deps(files: set[Path], root: Path = ROOT) -> list[str]:
    """The files as dvc.yaml deps: a folder where every .py file under it is in the set, else the files."""
    out: set[Path] = set(files)
    folders = sorted({p.parent for f in files for p in [f, *f.parents] if p != Path(".")}, key=lambda p: len(p.parts))
    for folder in folders:
        inside = {p.relative_to(root) for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts}
        if inside and inside <= files and not any(folder.is_relative_to(o) for o in out if o.suffix == ""):
            out = {p for p in out if not p.is_relative_to(folder)} | {folder}
    return sorted(str(p) for p in out)


def stage_module(cmd: str) -> str | None:
    """`python -m stages.x --flag` -> stages.x."""
    words = cmd.split()
    return words[words.index("-m") + 1] if "-m" in words else None


def _stages(dvc_file: Path) -> dict[str, dict]:
    """Stage name -> definition (a foreach stage's `do` block: its instances share one command module)."""
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    return {name: s.get("do", s) for name, s in stages.items()}


def expected_deps(dvc_file: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> dict[str, list[str]]:
    return {name: as_deps(closure(stage_module(s["cmd"]), root), root) for name, s in _stages(dvc_file).items()
            if stage_module(s["cmd"])}


def declared_code_deps(dvc_file: Path = ROOT / "dvc.yaml") -> dict[str, list[str]]:
    return {name: sorted(str(d).rstrip("/") for d in s.get("deps", []) if str(d).split("/")[0] in PACKAGES)
            for name, s in _stages(dvc_file).items()}


def differences(dvc_file: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> list[str]:
    """One line per stage whose code deps in dvc.yaml differ from its import closure."""
    declared = declared_code_deps(dvc_file)
    out = []
    for stage, want in expected_deps(dvc_file, root).items():
        have = declared.get(stage, [])
        if have != want:
            out.append(f"{stage}: missing {sorted(set(want) - set(have)) or 'nothing'}, "
                       f"not imported {sorted(set(have) - set(want)) or 'nothing'}")
    return out


def rewrite(dvc_file: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> str:
    """dvc.yaml's text with each stage's code deps replaced by its import closure, first in its deps list.

    Line-based, so comments and layout survive: a stage is a 2-space-indented `name:` line, its deps
    the `- item` lines under its `deps:` line (in `do:` for a foreach stage).
    """
    want = expected_deps(dvc_file, root)
    out: list[str] = []
    stage, deps_indent = None, None
    for line in dvc_file.read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage, deps_indent = stripped[:-1], None
        if deps_indent is not None and stripped.startswith("- ") and indent > deps_indent:
            if stripped[2:].split("/")[0] in PACKAGES:
                continue  # an old code dep: replaced below
        elif deps_indent is not None and stripped and not stripped.startswith("#"):
            deps_indent = None
        out.append(line)
        if stage in want and stripped == "deps:":
            deps_indent = indent
            out.extend(f"{' ' * (indent + 2)}- {dep}" for dep in want[stage])
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with dvc.yaml; exit 1 on a difference")
    parser.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = parser.parse_args(argv)
    if args.write:
        (ROOT / "dvc.yaml").write_text(rewrite())
        return 0
    if args.check:
        diff = differences()
        for line in diff:
            print(f"dvc.yaml: {line}", file=sys.stderr)
        return 1 if diff else 0
    for stage, deps in expected_deps().items():
        print(f"{stage}:")
        print("\n".join(f"  - {d}" for d in deps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
