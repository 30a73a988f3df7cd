"""Everything the workflow writes honours the umask: under 022 a lab-mate can read the models,
tables and folders; under 002 (a group's shared folder) the group can also write them. Each
writer path that makes a file with other modes of its own (private temporary folders, the
600 files safetensors writes, hard links of those) is tried under both."""

import os
import stat
from pathlib import Path

import pytest

from storyrl.core.atomic import atomic_path, write_text

# umask -> (file mode, folder mode)
MODES = {0o022: (0o644, 0o755), 0o002: (0o664, 0o775)}


@pytest.fixture(params=sorted(MODES, reverse=True), ids=["umask022", "umask002"])
def modes(request):
    old = os.umask(request.param)
    try:
        yield MODES[request.param]
    finally:
        os.umask(old)


def wrong_modes(root: Path, file_mode: int, dir_mode: int) -> list[str]:
    """Every path under (and including) `root` whose mode is not the umask's."""
    wrong = []
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        want = dir_mode if p.is_dir() else file_mode
        if mode != want:
            wrong.append(f"{oct(mode)} {p}")
    return wrong


def test_atomic_files_and_folders_take_the_umask_whatever_made_them(tmp_path, modes):
    write_text(tmp_path / "a" / "x.txt", "x")
    with atomic_path(tmp_path / "folder", is_dir=True) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "plain.bin").write_bytes(b"1")
        # as safetensors writes its files (a private temporary file renamed into place)
        os.close(os.open(tmp / "private.safetensors", os.O_CREAT | os.O_WRONLY, 0o600))
    with atomic_path(tmp_path / "linked.bin") as tmp:
        src = tmp_path / "work.bin"
        os.close(os.open(src, os.O_CREAT | os.O_WRONLY, 0o600))
        os.link(src, tmp)
    assert wrong_modes(tmp_path / "a", *modes) == []
    assert wrong_modes(tmp_path / "folder", *modes) == []
    assert wrong_modes(tmp_path / "linked.bin", *modes) == []


def test_a_saved_checkpoint_and_its_weights_take_the_umask(tmp_path, modes):
    from rl_toys import make_checkpoint
    from storyrl.core.checkpoints import load_checkpoint, save_checkpoint

    tok, lm = load_checkpoint(make_checkpoint(tmp_path / "src"))
    save_checkpoint(tmp_path / "ckpt", lm, tok, info={"run_id": "r", "rl_words": 1})
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    assert wrong_modes(tmp_path / "ckpt", *modes) == []


def test_published_milestones_tables_and_eval_data_take_the_umask(tmp_path, modes):
    from storyrl.core.schemas import make_metadata, write_table
    from storyrl.data.demo_eval import generate
    from storyrl.pretrain.export import publish

    # A milestone as the Trainer leaves it in the work folder: weights of mode 600.
    milestone = tmp_path / "work" / "milestones" / "ckpt-10K"
    milestone.mkdir(parents=True)
    os.close(os.open(milestone / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600))
    (milestone / "config.json").write_text("{}")
    (tmp_path / "work" / "log.parquet").write_bytes(b"")
    publish(tmp_path / "work", {10_000: tmp_path / "out" / "ckpt-10K"}, tmp_path / "out" / "l")
    write_table(
        tmp_path / "out" / "eval.parquet",
        "eval_scores",
        [],
        make_metadata("eval_scores"),
    )
    generate(tmp_path / "out" / "eval_data", n_full=4, n_fast=2)
    assert wrong_modes(tmp_path / "out", *modes) == []


def test_the_teacher_cache_takes_the_umask(tmp_path, modes):
    from storyrl.stories.teacher.cache import ScoreCache

    cache = ScoreCache(tmp_path / "rl" / "teacher_cache.sqlite")
    try:
        assert cache.broken is None
        assert wrong_modes(tmp_path / "rl", *modes) == []
    finally:
        cache.close()
