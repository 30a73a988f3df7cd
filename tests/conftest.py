"""Fixtures, and the fast lane's selection; shared helpers are in tests/helpers.py."""

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

SLOW_LIST = Path(__file__).with_name("slow.txt")


def slow_entries() -> set[str]:
    """tests/slow.txt's lines: `tests/<dir>/test_x.py` or `tests/<dir>/test_x.py::test_name`."""
    lines = (line.split("#", 1)[0].strip() for line in SLOW_LIST.read_text().splitlines())
    return {line for line in lines if line}


# The longest modules (minutes each on 2 cores), started first so that no worker is left running
# one of them alone at the end. `make test` runs the suite on two workers (pytest-xdist,
# `--dist loadfile --no-loadscope-reorder`: a module's tests stay on one worker, so its
# module-scoped fixtures are built once, and modules are handed out in this order). Each worker
# starts with two modules: the 1st and 3rd, the 2nd and 4th.
LONGEST_FIRST = (
    "tests/workflow/test_docs_run.py",
    "tests/slurm/test_paper_mini.py",
    "tests/workflow/test_workflow.py",
    "tests/slurm/test_slurm.py",
    "tests/stories/test_vllm_engine.py",
    "tests/pretrain/test_pretrain_ddp.py",
    "tests/rl/test_rl_train.py",
    "tests/pretrain/test_pretrain.py",
    "tests/training/test_tracking.py",
)

# Modules whose tests submit jobs to the one-node SLURM cluster: one at a time (the order above
# puts them on one worker; the lock holds if it does not), so no test's jobs wait in the queue
# behind another's past their timeouts.
SLURM_MODULES = {"tests/slurm/test_slurm.py", "tests/slurm/test_paper_mini.py"}


def run_folder(tmp_path_factory) -> Path:
    """A folder shared by every worker of this pytest run (pytest-xdist), and by no other run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` once per pytest run, whichever worker asks first; the others wait for it
    and get the same folder. A build that failed is tried again by the next to ask."""
    root = run_folder(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def test_config_run(tmp_path_factory) -> Path:
    """The repo's workflow run to the end on tests/config/test.yaml (`snakemake --cores 2`), once
    per pytest run: a folder to read, or to copy before changing anything in it.

    Run under a group-sharing umask (002): every file must come out group-writable, which
    neither private temporary files (600) nor a hard-coded 644 would give. console.txt holds what
    snakemake printed.
    """
    from helpers import snakemake

    def build(work: Path) -> None:
        old = os.umask(0o002)
        try:
            out = snakemake(work, "--cores", "2")
        finally:
            os.umask(old)
        (work / "console.txt").write_text(out.stdout + out.stderr)

    return built_once(tmp_path_factory, "test_config_run", build)


@pytest.fixture(scope="module", autouse=True)
def _one_slurm_module_at_a_time(request, tmp_path_factory):
    if request.node.nodeid not in SLURM_MODULES:
        yield
        return
    with open(run_folder(tmp_path_factory) / "slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pytest_collection_modifyitems(config, items):
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))
    # `make test-fast` is `pytest -m 'not slow'`: the tests named in tests/slow.txt are `slow`
    # as if marked in their files (one list, kept beside the measurements that chose it).
    slow = slow_entries()
    for item in items:
        module, _, name = item.nodeid.partition("::")
        if module in slow or f"{module}::{name.split('[')[0]}" in slow:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """A small generated corpus in the official BabyLM layout."""
    from storyrl.data.demo_corpus import generate

    out = tmp_path_factory.mktemp("demo")
    generate(out, 120_000, seed=0)
    return out


@pytest.fixture(scope="session")
def demo_prepared(tmp_path_factory, demo_raw):
    """Subset, tokenizer and token stream of the small corpus."""
    from storyrl.config import CorpusConfig, TokenizerConfig
    from storyrl.data.corpus import build_subset
    from storyrl.data.tokenizer import train_tokenizer
    from storyrl.data.tokens import encode_corpus

    out = tmp_path_factory.mktemp("prepared")
    build_subset(CorpusConfig(format="demo"), demo_raw, out / "subset.parquet", out / "stats.json")
    train_tokenizer(TokenizerConfig(vocab_size=500), out / "subset.parquet", out / "tokenizer")
    encode_corpus(
        out / "subset.parquet", out / "tokenizer", out / "tokens.bin", out / "tokens.json"
    )
    return out


@pytest.fixture
def server():
    """`server(**kw)` starts a real chat-completions server on localhost (tests/chat_server.py,
    its modes as keywords); every server started is closed after the test."""
    from chat_server import ChatServer

    servers = []

    def start(**kw):
        servers.append(ChatServer(**kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
