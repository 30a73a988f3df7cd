"""Import rules between the package's modules, read from their import statements (ast), so a
lazy import inside a function counts as much as one at the top.

The layer contract (LAYERS, as data): a module may import its own component, any component of a
lower layer, and a sibling of its own layer only where SIBLINGS allows it; nothing imports
upward and no modules import each other in a cycle. A new module must be placed in a component.
"""

import ast
import graphlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "storyrl"

LAYERS: list[dict[str, tuple[str, ...]]] = [
    # 0: the package's version.
    {"package": ("storyrl",)},
    # 1: units, files, schemas, devices, the results' layout, the BabyLM spec: they read nothing
    # of the config or the stages.
    {"core": ("storyrl.core",)},
    # 2: the config, its sections as typed command-line arguments (config.commands).
    {"config": ("storyrl.config",)},
    # 3: the corpus and tokenizer; what the training stages share (run record, lock, tracking).
    {"data": ("storyrl.data",), "training": ("storyrl.training",)},
    # 4: stories, what RL and the story evaluation share: the rubric and reply parsing, the
    # teacher (backends, score cache), the reward, the scorer, sampling and story rows; and the
    # plan-time check of the teachers, which the workflow runs.
    {"stories": ("storyrl.stories",)},
    # 5: the stages that train and evaluate models.
    {"pretrain": ("storyrl.pretrain",), "rl": ("storyrl.rl",), "evaluate": ("storyrl.evaluate",)},
    # 6: tables and figures from the stages' Parquet files.
    {"analysis": ("storyrl.analysis",)},
    # 7: the workflow's plan: every job, its paths and sections (it names the analysis' targets);
    # `storyrl check-config` checks a config, its teachers included, as planning does.
    {"plan": ("storyrl.plan",)},
    # 8: entry points: the CLI (`storyrl docs` reads the analysis' results for the docs'
    # numbers) and the workflow; the
    # testing helpers, tiny models, tokenizers and command lines for the tests and the
    # benchmarks: a leaf, imported by nothing in the package.
    {
        "cli": ("storyrl.cli", "storyrl.docs"),
        "workflow": ("workflow",),
        "testing": ("storyrl.testing",),
    },
]

SIBLINGS: dict[tuple[str, str], str] = {}
"""Imports allowed between components of one layer, with the reason."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (`from a import b` counts as a and a.b)."""
    found = set()
    package = (
        module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    )
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
FOLDERS = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").exists())
"""The package's folders (its subpackages)."""

# The workflow's Python (Snakefile, rules) is not valid Python for ast: its import lines are read
# with a pattern; every one is a module-level import of the `workflow` component.
WORKFLOW_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").rglob("*.smk"))]
IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+(storyrl[\w.]*)\s+import\s+([\w, ()]+)|import\s+(storyrl[\w.]*))"
)


def workflow_imports() -> set[str]:
    found = set()
    for path in WORKFLOW_FILES:
        for line in path.read_text().splitlines():
            m = IMPORT_LINE.match(line)
            if m and m.group(1):
                found.add(m.group(1))
                found.update(f"{m.group(1)}.{n.strip()}" for n in m.group(2).strip("()").split(","))
            elif m:
                found.add(m.group(3))
    return found


def component(module: str) -> tuple[int, str] | None:
    """(layer, component name) of a module: the longest prefix listed in LAYERS."""
    best = None
    for layer, comps in enumerate(LAYERS):
        for name, prefixes in comps.items():
            for p in prefixes:
                if (module == p or module.startswith(p + ".")) and (
                    best is None or len(p) > best[0]
                ):
                    best = (len(p), layer, name)
    return best and best[1:]


def graph() -> dict[str, set[str]]:
    """Our modules -> our modules each imports (names that are not modules drop out)."""
    g = {m: {d for d in deps if d in MODULES and d != m} for m, deps in MODULES.items()}
    g["workflow"] = {d for d in workflow_imports() if d in MODULES}
    return g


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    out = []
    for m, deps in sorted(g.items()):
        (lm, cm) = component(m)
        for d in sorted(deps):
            ld, cd = component(d)
            if ld > lm:
                out.append(f"{m} ({cm}, layer {lm}) imports {d} ({cd}, layer {ld}): upward")
            elif ld == lm and cd != cm and (cm, cd) not in SIBLINGS:
                out.append(
                    f"{m} ({cm}) imports {d} ({cd}), a sibling of its layer: not in SIBLINGS"
                )
    return out


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(g).prepare()
    except graphlib.CycleError as err:
        return err.args[1]
    return None


def test_every_module_is_in_a_layer():
    unplaced = sorted(m for m in MODULES if component(m) is None)
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def test_no_upward_or_sideways_import():
    bad = layer_violations(graph())
    assert not bad, "layer contract broken:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    found = cycle(graph())
    assert found is None, "import cycle: " + " -> ".join(found)


def test_no_import_cycle_between_components():
    g: dict[str, set[str]] = {}
    for m, deps in graph().items():
        g.setdefault(component(m)[1], set()).update(
            component(d)[1] for d in deps if component(d)[1] != component(m)[1]
        )
    found = cycle(g)
    assert found is None, "components import each other: " + " -> ".join(found)


def test_the_contract_catches_what_it_should():
    """The checks on a made-up graph: an upward import, a sibling, an import inside one
    component and a cycle."""
    g = {
        "storyrl.config.top": {"storyrl.rl.train"},
        "storyrl.rl.train": {"storyrl.config.top"},
        "storyrl.stories.sampling": {"storyrl.rl.run"},
        "storyrl.rl.run": set(),
        "storyrl.evaluate.stories": {"storyrl.rl.run"},
        "storyrl.data.corpus": {"storyrl.data.tokenizer"},
        "storyrl.data.tokenizer": set(),
    }
    bad = layer_violations(g)
    assert any("storyrl.config.top (config, layer 2) imports storyrl.rl.train" in b for b in bad)
    assert any(
        "storyrl.stories.sampling (stories, layer 4) imports storyrl.rl.run" in b for b in bad
    )
    assert any("storyrl.evaluate.stories (evaluate) imports storyrl.rl.run (rl)" in b for b in bad)
    assert not any(b.startswith("storyrl.data.corpus") for b in bad)  # one component
    assert set(cycle(g)) == {"storyrl.config.top", "storyrl.rl.train"}


def test_the_workflow_imports_modules_that_exist():
    missing = sorted(
        m for m in workflow_imports() if m not in MODULES and m.rsplit(".", 1)[0] not in MODULES
    )
    assert not missing, f"Snakefile/rules import what is not there: {missing}"


def test_the_import_reader_sees_lazy_imports():
    assert (
        "storyrl.evaluate.scorer" in MODULES["storyrl.evaluate.zero_shot"]
    )  # inside run_zero_shot
    # imported inside make_teacher
    assert "storyrl.stories.teacher.heuristic" in MODULES["storyrl.stories.teacher"]
    assert "storyrl.config" in workflow_imports()  # the Snakefile's


def test_the_teacher_knows_nothing_of_the_reward():
    """The reward reads the teacher's judgements; the scorer puts the two together. The teacher
    (backends, cache) imports neither, and config imports no stories code."""
    users = {
        m
        for m, deps in MODULES.items()
        if (m.startswith("storyrl.stories.teacher") or m.startswith("storyrl.config"))
        and deps & {"storyrl.stories.reward", "storyrl.stories.scoring"}
    }
    assert not users, sorted(users)
    config = {m for m, deps in graph().items() if component(m)[1] == "config"}
    assert not {d for m in config for d in graph()[m] if d.startswith("storyrl.stories")}


def test_evaluation_does_not_import_the_rl_loop():
    offenders = {
        m
        for m, deps in MODULES.items()
        if m.startswith("storyrl.evaluate") and "storyrl.rl.train" in deps
    }
    assert not offenders, f"{sorted(offenders)} import storyrl.rl.train"


def test_rl_train_and_trl_algos_do_not_import_each_other():
    assert "storyrl.rl.trl_algos" not in MODULES["storyrl.rl.train"]
    assert "storyrl.rl.train" not in MODULES["storyrl.rl.trl_algos"]


def test_nothing_below_the_rl_loop_imports_it():
    """The run loop is a top of the RL stage: only the stage's CLI starts it."""
    users = {m for m, deps in MODULES.items() if "storyrl.rl.train" in deps}
    assert users <= {"storyrl.rl.cli"}, sorted(users)


def test_checkpoint_metadata_names_live_in_one_module():
    """storyrl_checkpoint.json and storyrl_rl.json are named in storyrl.core.checkpoints only; every
    other module reads and writes them through it."""
    named = {
        module_name(p)
        for p in PKG.rglob("*.py")
        if "storyrl_checkpoint.json" in p.read_text() or "storyrl_rl.json" in p.read_text()
    }
    code = {
        m
        for m in named
        if any(
            isinstance(n, ast.Constant)
            and n.value in ("storyrl_checkpoint.json", "storyrl_rl.json")
            for n in ast.walk(ast.parse((PKG.parent / (m.replace(".", "/") + ".py")).read_text()))
        )
    }
    assert code == {"storyrl.core.checkpoints"}, sorted(code)


MAX_MODULE_LINES = 450


def test_every_module_is_under_the_line_limit():
    """A module past MAX_MODULE_LINES holds more than one thing: split it by what each part does."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted(PKG.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_nothing_in_the_package_imports_the_testing_helpers():
    users = {m for m, deps in MODULES.items() if "storyrl.testing" in deps}
    assert not users, sorted(users)


def test_the_folders_are_the_components_and_the_contract_holds():
    """Each folder of the package is one component of LAYERS (and the other way round). Prints
    the report: folders and what each holds, import cycles, imports against the layer order,
    and the allowed exceptions (`pytest -s tests/project/test_layers.py -k folders`)."""
    import importlib

    folders = FOLDERS
    components = {
        p.removeprefix("storyrl.")
        for comps in LAYERS
        for prefixes in comps.values()
        for p in prefixes
        if p.count(".") == 1 and (PKG / p.removeprefix("storyrl.")).is_dir()
    }
    assert set(folders) == components, (folders, sorted(components))
    g = graph()
    violations, cycles = layer_violations(g), cycle(g)
    flat = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")
    lines = ["layer  folder      what it holds"]
    for layer, comps in enumerate(LAYERS):
        for prefixes in comps.values():
            for p in prefixes:
                folder = p.removeprefix("storyrl.")
                if p.count(".") == 1 and folder in folders:
                    doc = (importlib.import_module(p).__doc__ or "").strip().splitlines()[0]
                    lines.append(f"{layer:>5}  {folder:<10}  {doc}")
    lines += [
        f"top-level modules: {', '.join(flat)}",
        f"import cycles: {0 if cycles is None else 1}",
        f"imports against the layer order: {len(violations)}",
        f"layering exceptions: {len(SIBLINGS)}",
    ]
    print("\n".join(lines))
    assert cycles is None and not violations and not SIBLINGS
    assert set(flat) <= {"cli", "testing"}, flat


TEST_LANES = {"benchmarks", "project", "slurm", "workflow"}
"""The folders of tests/ that are not components: the tests of benchmarks/, the repo-level
checks, the SLURM lane and the end-to-end workflow lane."""


def test_the_tests_folders_mirror_the_components():
    """A test module sits in the folder of the component it tests, or in a lane; the modules the
    tests share sit at the top of tests/. Without __init__.py files pytest imports a test module
    by its file name, so no two may share one."""
    tests = ROOT / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name[0] not in "._"}
    components = set(FOLDERS)
    assert folders - components == TEST_LANES, sorted(folders - components)
    assert components <= folders, sorted(components - folders)
    assert not sorted(tests.glob("test_*.py")), "a test module at the top of tests/"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
