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
import re
import sys
from itertools import groupby
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


WIDTH = 118  # dvc.yaml's longest line
_COMMENT = re.compile(r"^(.*?)(\s+#.*)?$")


def flow_lines(deps: list[str], indent: int) -> list[str]:
    """Code deps as the rest of a flow sequence: one line per folder (wrapped at WIDTH), the last closing it."""
    lines: list[str] = []
    by_folder = sorted(deps, key=lambda d: (str(Path(d).parent), d))
    for _, group in groupby(by_folder, key=lambda d: str(Path(d).parent)):
        line = ""
        for dep in group:
            if line and indent + len(line) + len(dep) + 1 > WIDTH:
                lines.append(line)
                line = ""
            line += f"{dep}, "
        lines.append(line)
    lines = [" " * indent + line.rstrip() for line in lines]
    return lines[:-1] + [lines[-1].removesuffix(",") + "]"]


def _closes(line: str) -> bool:
    """Whether the line ends a flow sequence (before any comment)."""
    return _COMMENT.match(line)[1].rstrip().endswith("]")


def _reopen(line: str) -> str:
    """A line that closed the sequence, left open for the code deps after it."""
    code, comment = _COMMENT.match(line).groups()
    code = code.rstrip().removesuffix("]").rstrip()
    return code + ("" if code.endswith(("[", ",")) else ",") + (comment or "")


def _starts_with_code(line: str) -> bool:
    return line.strip().lstrip("[").strip().split("/")[0].split(",")[0] in PACKAGES


def rewrite(dvc_file: Path = ROOT / "dvc.yaml", root: Path = ROOT) -> str:
    """dvc.yaml's text with each stage's code deps replaced by its import closure.

    Line-based, so comments and layout survive. A stage's deps are one flow sequence: its data deps on
    the `deps: [` line (and on any line after it that does not start with code), then its code deps,
    written here one folder a line up to the closing `]`. The closure is written in place because DVC
    cannot interpolate a list into deps (a `${...}` there must resolve to a string).
    """
    want = expected_deps(dvc_file, root)
    lines = dvc_file.read_text().splitlines()
    out: list[str] = []
    stage, i = None, 0
    while i < len(lines):
        line, i = lines[i], i + 1
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage = stripped[:-1]
        if stage not in want or not stripped.startswith("deps:"):
            out.append(line)
            continue
        if not stripped.startswith("deps: ["):
            raise ValueError(f"{dvc_file}: stage {stage}: deps must be a flow sequence `deps: [...]`, its data "
                             "deps first (got a block sequence)")
        data = [line]
        while not _closes(data[-1]) and i < len(lines) and not _starts_with_code(lines[i]):
            data, i = data + [lines[i]], i + 1
        closed = _closes(data[-1])
        while not closed and i < len(lines):  # the old code deps, through the line that closes the sequence
            closed, i = _closes(lines[i]), i + 1
        out.extend(data[:-1] + [_reopen(data[-1])] + flow_lines(want[stage], indent + 2))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with dvc.yaml; exit 1 on a difference")
    parser.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = parser.parse_args(argv)
    if args.write:
        try:
            text = rewrite()
        except ValueError as exc:  # a layout it cannot rewrite in place: nothing is written
            print(exc, file=sys.stderr)
            return 1
        (ROOT / "dvc.yaml").write_text(text)
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
