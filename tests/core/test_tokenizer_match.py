"""A checkpoint is used only with the tokenizer it was trained with: every checkpoint records its
tokenizer's fingerprint, and every load (RL, story evaluation, zero-shot) checks it. A tokenizer
from another corpus with the same vocabulary size would otherwise give plausible scores."""

import json
import logging
import shutil

import pytest

from rl_toys import ShareScorer, make_checkpoint, put_foreign_tokenizer
from storyrl.cli import main
from storyrl.config import RLConfig
from storyrl.core.checkpoints import RL_INFO, CheckpointError, load_checkpoint
from storyrl.rl.train import train
from storyrl.testing import rl_train_args

TOY = {
    "prompts": ["once upon a time"],
    "batch_size": 4,
    "budget": 100_000,
    "threads": 1,
    "max_steps": 1,
    "sampling": {"max_new_tokens": 4},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """An RL policy (final/) as RL saves it, with its record."""
    root = tmp_path_factory.mktemp("tok")
    ckpt = make_checkpoint(root / "ckpt")
    train(ckpt, root / "run", RLConfig.model_validate(TOY), ShareScorer())
    return root / "run" / "final"


def copy(policy, tmp_path, extra=None, record=True):
    folder = shutil.copytree(policy, tmp_path / "policy")
    if extra is not None:
        put_foreign_tokenizer(folder, extra)
    if not record:  # a folder saved before fingerprints were recorded
        info = json.loads((folder / RL_INFO).read_text())
        info.pop("tokenizer_sha256", None)
        (folder / RL_INFO).write_text(json.dumps(info))
    return folder


def one_line_naming(err, folder) -> str:
    msg = str(err.value)
    assert msg.startswith(f"{folder}: ") and "\n" not in msg, msg
    return msg


def test_a_foreign_tokenizer_of_the_same_size_is_refused_by_every_stage(policy, tmp_path):
    from transformers import AutoTokenizer

    from storyrl.evaluate.scorer import Scorer

    folder = copy(policy, tmp_path, extra=0)
    assert len(AutoTokenizer.from_pretrained(folder)) == len(AutoTokenizer.from_pretrained(policy))
    with pytest.raises(CheckpointError) as err:  # RL and story evaluation load through this
        load_checkpoint(folder)
    assert "not the tokenizer the model was trained with" in one_line_naming(err, folder)
    with pytest.raises(CheckpointError) as err:  # zero-shot
        Scorer(folder, device="cpu")
    one_line_naming(err, folder)
    run = tmp_path / "rl"
    with pytest.raises(CheckpointError):
        train(folder, run, RLConfig.model_validate(TOY), ShareScorer())
    assert not (run / "final").exists() and not (run / "steps.parquet").exists()


def test_the_cli_refuses_a_foreign_tokenizer_in_one_line(policy, tmp_path, capsys):
    folder = copy(policy, tmp_path, extra=0)
    argv = rl_train_args(TOY, folder, tmp_path / "rl", scorer="rl_toys:ShareScorer")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"storyrl: {folder}: ") and "\n" not in err, err


def test_a_missing_tokenizer_is_refused_naming_the_folder(policy, tmp_path):
    folder = copy(policy, tmp_path)
    for name in TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder)
    assert "no tokenizer" in one_line_naming(err, folder)


def test_a_larger_vocabulary_is_refused_without_a_recorded_fingerprint(policy, tmp_path):
    folder = copy(policy, tmp_path, extra=5, record=False)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder)
    assert "tokens" in one_line_naming(err, folder)


def test_a_checkpoint_without_a_recorded_fingerprint_loads_with_a_warning(policy, tmp_path, caplog):
    folder = copy(policy, tmp_path, record=False)
    with caplog.at_level(logging.WARNING, logger="storyrl.core.checkpoints"):
        tok, _ = load_checkpoint(folder)
    assert tok.eos_token == "</s>"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith(f"{folder}: ") and "not checked" in warned[0]


def test_the_policy_records_the_fingerprint_of_its_tokenizer(policy, tmp_path):
    from transformers import AutoTokenizer

    from storyrl.core.checkpoints import tokenizer_fingerprint

    recorded = json.loads((policy / RL_INFO).read_text())["tokenizer_sha256"]
    assert recorded == tokenizer_fingerprint(AutoTokenizer.from_pretrained(policy))
    foreign = copy(policy, tmp_path, extra=0)
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(foreign)) != recorded
    # The same tokenizer saved again (other file layout, same vocabulary) keeps its fingerprint.
    again = tmp_path / "again"
    AutoTokenizer.from_pretrained(policy).save_pretrained(again)
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(again)) == recorded
