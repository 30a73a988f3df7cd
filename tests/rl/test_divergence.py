"""A diverged model never passes as a result: RL stops before a NaN step is
written or saved, and zero-shot refuses non-finite scores (argmax of NaNs is candidate 0, the
correct one: a NaN model would score 100%) and counts the items that were ties."""

import numpy as np
import pandas as pd
import pytest
import torch

from evalfixtures import build_model, write_evaluation_data
from rl_toys import ShareScorer, make_checkpoint
from storyrl.cli import main
from storyrl.config import RLConfig, ZeroShotConfig
from storyrl.core.checkpoints import CheckpointError
from storyrl.core.schemas import read_metadata
from storyrl.rl.run import Diverged
from storyrl.rl.train import train
from storyrl.testing import rl_train_args

TOY = {
    "prompts": ["once upon a time"],
    "batch_size": 4,
    "budget": 100_000,
    "threads": 1,
    "max_steps": 4,
    "state_every": 1,
    "state_every_s": None,
    "sampling": {"max_new_tokens": 4},
    "ppo": {"lr": 300.0},  # this toy's losses turn NaN in step 2
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


def test_a_diverging_ppo_run_stops_before_it_writes_the_step(ckpt, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Diverged, match=r"step 2 diverged \(non-finite") as err:
        train(ckpt, run, RLConfig.model_validate(TOY), ShareScorer())
    assert str(run) in str(err.value)
    assert not (run / "final").exists() and not (run / "summary.json").exists()
    for part in (run / "parts" / "steps").glob("*.parquet"):  # the steps before it were fine
        row = pd.read_parquet(part).iloc[0]
        assert np.isfinite(row[["policy_loss", "value_loss", "kl", "entropy"]].astype(float)).all()
    # The state a rerun would resume from is step 1's, with finite weights.
    state = torch.load(run / "state" / "state.pt", weights_only=False)
    assert state["ledger"]["steps"] == 1
    assert all(torch.isfinite(v).all() for v in state["trainer"]["policy"].values())


def test_the_cli_says_divergence_in_one_line(ckpt, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(rl_train_args(TOY, ckpt, run, scorer="rl_toys:ShareScorer")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"storyrl rl train: {run}: step") and "\n" not in err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_evaluation_data(tmp_path_factory.mktemp("evaldata") / "evaluation_data")


def broken_model(folder, fill):
    model, _ = build_model(folder)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(fill)
    model.save_pretrained(folder)
    return folder


def test_zero_shot_refuses_a_nan_model(data, tmp_path):
    from storyrl.evaluate.zero_shot import run_zero_shot

    folder = broken_model(tmp_path / "nan", float("nan"))
    cfg = ZeroShotConfig(tasks=["blimp", "blimp_supplement", "ewok"], device="cpu")
    out, parquet = tmp_path / "out", tmp_path / "scores.parquet"
    with pytest.raises(CheckpointError, match="not finite") as err:
        run_zero_shot(folder, data, out, cfg, parquet)
    assert str(folder) in str(err.value)
    assert not parquet.exists() and not list(out.rglob("predictions.json"))


def test_ties_are_counted(data, tmp_path, caplog):
    """A constant model gives every token the same log-prob: an item whose candidates have as
    many tokens is a tie, won by candidate 0 under the official rule. The count goes to the log
    and the Parquet's metadata; the official files stay as they are."""
    from storyrl.evaluate.scorer import Scorer
    from storyrl.evaluate.tasks import TASKS, read_items
    from storyrl.evaluate.zero_shot import data_folder, run_zero_shot

    folder = broken_model(tmp_path / "flat", 0.0)
    cfg = ZeroShotConfig(tasks=["blimp", "blimp_supplement"], variant="full", device="cpu")
    scorer = Scorer(folder, device="cpu")
    want = {}
    for name in cfg.tasks:
        items = read_items(TASKS[name], data_folder(data, TASKS[name], "full"))
        lengths = [
            {len(scorer.encode(t, c).ids) for t, c in zip(i.texts, i.completions)} for i in items
        ]
        want[name] = sum(len(n) == 1 for n in lengths)
    assert sum(want.values()) > 0
    parquet = tmp_path / "scores.parquet"
    with caplog.at_level("INFO"):
        run_zero_shot(folder, data, tmp_path / "out", cfg, parquet, scorer=scorer)
    assert read_metadata(parquet)["ties"] == want
    assert f"blimp: {want['blimp']} of 3 items were ties" in caplog.text
