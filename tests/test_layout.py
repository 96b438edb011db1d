"""The code's shape: stage modules alone in stages/, cifar10's layers, no stage reaching the write-up, exact
code deps in dvc.yaml, declared dependencies."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from scripts import code_deps
from tests.conftest import REPO

STAGE_MODULES = {"download", "imbalance_subsample", "augment", "train", "fetch_weights", "transfer", "evaluate",
                 "compare"}
CODE = ("cifar10", "stages", "writeup", "scripts", "benchmarks", "tests")
# cifar10's layers, lowest first ("(modules)": the modules at the top of the package); cifar10/__init__.py
# says what each holds. A module may import from its own layer and the layers below it.
LAYERS = ("(modules)", "schema", "data", "augmentation", "models", "weights", "training", "reporting", "tracking")


def _py_files(*folders: str) -> list[Path]:
    return [p for f in folders for p in (REPO / f).rglob("*.py") if "__pycache__" not in p.parts]


def test_stages_holds_one_module_per_dvc_stage_and_nothing_else():
    modules = {p.stem for p in (REPO / "stages").glob("*.py")} - {"__init__"}
    assert modules == STAGE_MODULES
    assert not [p for p in (REPO / "stages").iterdir() if p.is_dir() and p.name != "__pycache__"]
    commands = {code_deps.stage_module(s["cmd"]) for s in code_deps._stages(REPO / "dvc.yaml").values()}
    assert commands == {f"stages.{m}" for m in STAGE_MODULES}
    for path in (REPO / "stages").glob("*.py"):
        imported = code_deps._imported_names(path, REPO)
        assert not {n for n in imported if n.startswith("stages")}, f"{path.name} imports a stage module"


def test_every_package_says_what_lives_there():
    for init in _py_files("cifar10", "stages", "writeup"):
        if init.name == "__init__.py":
            assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(REPO)} has no docstring"


def _layer(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root / "cifar10").parts
    return parts[0] if len(parts) > 1 else "(modules)"


def _upward_imports(root: Path = REPO) -> list[str]:
    """`file -> module` for each import in cifar10/ of a higher layer, or of code outside cifar10/."""
    out = []
    for path in (p for p in (root / "cifar10").rglob("*.py") if "__pycache__" not in p.parts):
        here = _layer(path, root)
        for name in code_deps._imported_names(path, root):
            target = code_deps.module_file(name, root)
            if name.split(".")[0] in CODE and name.split(".")[0] != "cifar10":
                out.append(f"{path.relative_to(root)} -> {name} (outside cifar10)")
            elif target is not None and LAYERS.index(_layer(target, root)) > LAYERS.index(here):
                out.append(f"{path.relative_to(root)} -> {name} ({here} below {_layer(target, root)})")
    return sorted(out)


def test_cifar10_imports_only_from_its_own_layer_and_those_below():
    packages = {p.name for p in (REPO / "cifar10").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS[1:]), "place each package of cifar10/ in LAYERS"
    described = ast.get_docstring(ast.parse((REPO / "cifar10/__init__.py").read_text()))
    listed = [name.rstrip("/") for name in re.findall(r"^  (\(modules\)|\w+/) ", described, flags=re.M)]
    assert listed == list(LAYERS), "cifar10/__init__.py lists the layers in order"
    assert _upward_imports() == []


def test_the_layer_check_names_an_upward_import_and_one_leaving_cifar10(tmp_path):
    for folder in ("cifar10/data", "cifar10/training"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text('"""x"""\n')
    (tmp_path / "cifar10/__init__.py").write_text('"""x"""\n')
    (tmp_path / "cifar10/errors.py").write_text("E = 1\n")
    (tmp_path / "cifar10/training/fit.py").write_text("from cifar10.data import splits\nfrom cifar10 import errors\n")
    (tmp_path / "cifar10/data/splits.py").write_text("from cifar10.errors import E\n")
    assert _upward_imports(tmp_path) == []
    (tmp_path / "cifar10/data/splits.py").write_text("def f():\n    from cifar10.training import fit\n")
    (tmp_path / "cifar10/errors.py").write_text("import writeup.pages\n")
    assert _upward_imports(tmp_path) == [
        "cifar10/data/splits.py -> cifar10.training (data below training)",
        "cifar10/data/splits.py -> cifar10.training.fit (data below training)",
        "cifar10/errors.py -> writeup.pages (outside cifar10)"]


def test_no_stage_reaches_the_write_up():
    for stage in STAGE_MODULES:
        files = code_deps.closure(f"stages.{stage}")
        assert f"stages/{stage}.py" in {str(f) for f in files}
        assert not [str(f) for f in files if f.parts[0] == "writeup"], f"stages.{stage} imports writeup/"


def test_dvc_yaml_code_deps_are_each_stages_import_closure():
    assert code_deps.differences() == [], "run `python -m scripts.code_deps --write`"


def test_the_closure_follows_imports_inside_functions_and_package_inits(tmp_path):
    (tmp_path / "cifar10" / "sub").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    for init in ("cifar10/__init__.py", "cifar10/sub/__init__.py", "stages/__init__.py"):
        (tmp_path / init).write_text('"""x"""\n')
    (tmp_path / "cifar10/sub/lazy.py").write_text("X = 1\n")
    (tmp_path / "cifar10/sub/unused.py").write_text("Y = 2\n")
    (tmp_path / "cifar10/top.py").write_text("def f():\n    from cifar10.sub import lazy\n    return lazy.X\n")
    (tmp_path / "stages/s.py").write_text("import json\nfrom cifar10 import top\n")
    files = {str(p) for p in code_deps.closure("stages.s", tmp_path)}
    assert files == {"stages/__init__.py", "stages/s.py", "cifar10/__init__.py", "cifar10/top.py",
                     "cifar10/sub/__init__.py", "cifar10/sub/lazy.py"}
    deps = code_deps.as_deps(code_deps.closure("stages.s", tmp_path), tmp_path)
    assert deps == ["cifar10/__init__.py", "cifar10/sub/__init__.py", "cifar10/sub/lazy.py", "cifar10/top.py",
                    "stages"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "python -m stages.s", "deps": ["stages", "cifar10/top.py", "cifar10/sub/unused.py", "data/x"]}}}))
    (diff,) = code_deps.differences(tmp_path / "dvc.yaml", tmp_path)
    assert "missing ['cifar10/__init__.py', 'cifar10/sub/__init__.py', 'cifar10/sub/lazy.py']" in diff
    assert "not imported ['cifar10/sub/unused.py']" in diff

    # --write replaces the code deps after the data deps, one folder a line, and keeps data deps and comments.
    (tmp_path / "dvc.yaml").write_text("# keep me\nstages:\n  s:\n    cmd: python -m stages.s\n"
                                       "    deps: [data/x, \"data/${p}/y\",  # inputs\n      cifar10/sub/unused.py]\n"
                                       "    outs:\n      - out\n")
    written = code_deps.rewrite(tmp_path / "dvc.yaml", tmp_path)
    assert written == (
        "# keep me\nstages:\n  s:\n    cmd: python -m stages.s\n    deps: [data/x, \"data/${p}/y\",  # inputs\n"
        "      stages,\n      cifar10/__init__.py, cifar10/top.py,\n"
        "      cifar10/sub/__init__.py, cifar10/sub/lazy.py]\n    outs:\n      - out\n")
    assert yaml.safe_load(written)["stages"]["s"]["deps"] == ["data/x", "data/${p}/y", *sorted(deps, key=_by_folder)]
    (tmp_path / "dvc.yaml").write_text(written)
    assert code_deps.differences(tmp_path / "dvc.yaml", tmp_path) == []
    assert code_deps.rewrite(tmp_path / "dvc.yaml", tmp_path) == written  # idempotent

    # A stage with data deps only gets its code deps after them; a block sequence is refused.
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: python -m stages.s\n    deps: [data/x]\n")
    assert code_deps.rewrite(tmp_path / "dvc.yaml", tmp_path).splitlines()[3:5] == ["    deps: [data/x,",
                                                                                      "      stages,"]
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: python -m stages.s\n    deps:\n      - data/x\n")
    with pytest.raises(ValueError, match="stage s: deps must be a flow sequence"):
        code_deps.rewrite(tmp_path / "dvc.yaml", tmp_path)


def _by_folder(dep: str) -> tuple[str, str]:
    return str(Path(dep).parent), dep


def test_code_deps_wrap_at_the_line_width():
    deps = [f"cifar10/training/module_{i:02}.py" for i in range(12)]
    lines = code_deps.flow_lines(deps, 6)
    assert len(lines) > 1 and all(len(line) <= code_deps.WIDTH for line in lines)
    assert yaml.safe_load("[" + "\n".join(lines)) == deps

def _top_level_imports() -> set[str]:
    names: set[str] = set()
    for path in _py_files(*CODE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(CODE) - {"__future__"}


def _distribution(requirement: str) -> str:
    name = requirement.split(";")[0]
    for sep in ("~=", "==", ">=", "<=", "<", ">", "["):
        name = name.split(sep)[0]
    return name.strip().lower().replace("_", "-")


def test_every_imported_third_party_package_is_declared_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_distribution(r) for r in project["dependencies"]}
    declared |= {_distribution(r) for group in project["optional-dependencies"].values() for r in group}
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in _top_level_imports():
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists & declared:
            undeclared[module] = sorted(dists)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_declared_dependencies_are_pinned_in_the_lock():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = {_distribution(line) for line in (REPO / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    wanted = [*project["dependencies"], *(r for g in project["optional-dependencies"].values() for r in g)]
    assert not {_distribution(r) for r in wanted} - locked
