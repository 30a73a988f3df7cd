"""The fast lane's list (tests/slow.txt) names tests that exist, and marks them `slow`."""

import ast
from pathlib import Path

from conftest import slow_entries

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_entry_of_the_slow_list_is_a_test():
    # A renamed or deleted test would leave a stale line, and its successor in the fast lane.
    for entry in sorted(slow_entries()):
        module, _, name = entry.partition("::")
        path = REPO / module
        assert path.is_file() and path.is_relative_to(TESTS), (
            f"tests/slow.txt: no test module {module}"
        )
        if name:
            assert name in _test_functions(path), f"tests/slow.txt: no {name} in {module}"


def test_listed_tests_are_deselected_by_the_fast_lane(pytester):
    # The hook in tests/conftest.py turns the list into the `slow` marker: `-m 'not slow'`
    # leaves out a listed test and keeps its neighbour.
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    (pytester.path / "slow.txt").write_text("test_a.py::test_listed  # 9 s\ntest_b.py\n")
    pytester.makepyfile(
        test_a="def test_listed():\n    pass\n\ndef test_kept():\n    pass\n",
        test_b="def test_whole_module():\n    pass\n",
    )
    result = pytester.runpytest("-m", "not slow", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*test_a.py::test_kept PASSED*"])
