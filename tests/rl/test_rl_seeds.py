"""Seeds: the paper's runs shared one sampling stream (TRL 0.9.4 reseeded to 0 in
`PPOTrainer.__init__`) while the run's seed reached the teacher; ours samples per seed."""

import json
from pathlib import Path

import pandas as pd
import pytest

from rl_toys import make_checkpoint
from storyrl.cli import main
from storyrl.config import load
from storyrl.core.schemas import read_metadata
from storyrl.testing import build_tiny_chat_model

CONFIG = Path(__file__).parents[2] / "config"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    return make_checkpoint(tmp / "student"), build_tiny_chat_model(
        tmp / "teacher", ["once upon a time"]
    )


def first_batch(models, out: Path, seed: int, sampling_seed: int | None):
    """One step through the CLI with a real (tiny) HF teacher: the stories and the metadata."""
    student, teacher = models
    section = {
        "prompts": ["once upon a time"],
        "batch_size": 8,
        "budget": 10_000,
        "threads": 1,
        "max_steps": 1,
        "seed": seed,
        "sampling_seed": sampling_seed,
        "sampling": {"max_new_tokens": 8},
    }
    teacher_section = {
        "backend": "hf",
        "model": str(teacher),
        "max_failure_share": 1.0,
        "hf": {"device": "cpu", "batch_size": 8},
    }
    assert (
        main(
            [
                "rl",
                "train",
                "--checkpoint",
                str(student),
                "--output",
                str(out),
                "--section",
                json.dumps(section),
                "--teacher",
                json.dumps(teacher_section),
            ]
        )
        == 0
    )
    stories = pd.read_parquet(out / "rollouts.parquet")["continuation"].tolist()
    return stories, read_metadata(out / "rollouts.parquet")


def test_paper_seeding_shares_the_sampling_stream_but_not_the_teacher_seed(models, tmp_path):
    assert load(CONFIG / "paper.yaml").rl.sampling_seed == 0
    a, meta_a = first_batch(models, tmp_path / "42", 42, 0)
    b, meta_b = first_batch(models, tmp_path / "43", 43, 0)
    assert a == b and len(set(a)) > 1
    assert (meta_a["sampling_seed"], meta_b["sampling_seed"]) == (0, 0)
    assert (meta_a["teacher"]["sampling"]["seed"], meta_b["teacher"]["sampling"]["seed"]) == (
        42,
        43,
    )


def test_our_seeding_samples_per_seed(models, tmp_path):
    assert load(CONFIG / "config.yaml").rl.sampling_seed is None
    a, meta_a = first_batch(models, tmp_path / "42", 42, None)
    b, meta_b = first_batch(models, tmp_path / "43", 43, None)
    assert a != b
    assert (meta_a["sampling_seed"], meta_b["sampling_seed"]) == (42, 43)
    assert (meta_a["teacher"]["sampling"]["seed"], meta_b["teacher"]["sampling"]["seed"]) == (
        42,
        43,
    )
