"""Import rules between the package's modules, read from their import statements (ast), so a
lazy import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "storyrl"


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (`from a import b` counts as a and a.b)."""
    found = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


MODULES = {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def test_the_import_reader_sees_lazy_imports():
    assert "storyrl.evaluate.scorer" in MODULES["storyrl.evaluate.zero_shot"]  # inside run_zero_shot
    assert "storyrl.teacher.heuristic" in MODULES["storyrl.teacher"]  # imported inside make_teacher


def test_evaluation_does_not_import_the_rl_loop():
    offenders = {m for m, deps in MODULES.items()
                 if m.startswith("storyrl.evaluate") and "storyrl.rl.train" in deps}
    assert not offenders, f"{sorted(offenders)} import storyrl.rl.train"


def test_rl_train_and_trl_algos_do_not_import_each_other():
    assert "storyrl.rl.trl_algos" not in MODULES["storyrl.rl.train"]
    assert "storyrl.rl.train" not in MODULES["storyrl.rl.trl_algos"]


def test_nothing_below_the_rl_loop_imports_it():
    """The run loop is a top of the RL stage: only the CLI starts it."""
    users = {m for m, deps in MODULES.items() if "storyrl.rl.train" in deps}
    assert users <= {"storyrl.cli"}, sorted(users)


def test_checkpoint_metadata_names_live_in_one_module():
    """storyrl_checkpoint.json and storyrl_rl.json are named in storyrl.checkpoints only; every
    other module reads and writes them through it."""
    named = {module_name(p) for p in PKG.rglob("*.py")
             if "storyrl_checkpoint.json" in p.read_text() or "storyrl_rl.json" in p.read_text()}
    code = {m for m in named if any(
        isinstance(n, ast.Constant) and n.value in ("storyrl_checkpoint.json", "storyrl_rl.json")
        for n in ast.walk(ast.parse((PKG.parent / (m.replace(".", "/") + ".py")).read_text())))}
    assert code == {"storyrl.checkpoints"}, sorted(code)
