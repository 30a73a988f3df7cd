"""The paper's teacher setting (config/paper.yaml): the teacher is shown the continuation decoded
with its special tokens (`</s>` when EOS was sampled), the length bonus counts the words of that
text (an EOS-only story is one word), and a failed or unparseable reply scores 0.5 while training
goes on, counted in steps.parquet. Our defaults (drop special tokens, stop on failures) stay."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

from rl_toys import make_checkpoint  # noqa: E402
from storyrl.config import RLConfig, load
from storyrl.core.schemas import read_table
from storyrl.rl.train import train
from storyrl.stories.rubric import load_rubric
from storyrl.stories.scoring import teacher_scorer
from storyrl.stories.teacher import TeacherFailure

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "once upon a time in a land far away"
MAX_NEW = 6


@pytest.fixture(scope="module")
def eos_ckpt(tmp_path_factory):
    """A tiny GPT-2 that samples EOS with probability 1/2 at every position: many stories end in
    EOS, some are EOS only, a few run to the token limit."""
    path = make_checkpoint(tmp_path_factory.mktemp("eos") / "ckpt")
    lm = GPT2LMHeadModel.from_pretrained(path)
    with torch.no_grad():
        # Final hidden state = e0 for every position; logits = the embeddings' first column.
        lm.transformer.ln_f.weight.zero_()
        lm.transformer.ln_f.bias.zero_()
        lm.transformer.ln_f.bias[0] = 1.0
        wte = lm.transformer.wte.weight
        wte[:, 0] = 0.0
        wte[lm.config.eos_token_id, 0] = float(np.log(wte.shape[0] - 1))
    lm.save_pretrained(path)
    return path


def rl_cfg(keep: bool, steps: int = 2) -> RLConfig:
    return RLConfig(
        prompts=[PROMPT],
        batch_size=24,
        budget=10_000,
        checkpoint_every=10_000,
        max_steps=steps,
        device="cpu",
        threads=1,
        sampling={"max_new_tokens": MAX_NEW, "keep_special_tokens": keep},
    )


def every_third_unparseable():
    n = {"count": 0}

    def reply(msg):
        n["count"] += 1
        return "I cannot grade this." if n["count"] % 3 == 0 else "2 1 1"

    return reply


def teacher(url, on_failure):
    return {
        "backend": "openai",
        "model": "t",
        "on_failure": on_failure,
        "openai": {"base_url": url, "retries": 0, "timeout_s": 5, "concurrency": 4},
    }


def test_paper_setting_shows_eos_to_the_teacher_counts_its_word_and_trains_on(
    eos_ckpt, tmp_path, server
):
    srv = server(reply_fn=every_third_unparseable())
    scorer = teacher_scorer(teacher(srv.url, "default"), {"length_coef": 0.4}, MAX_NEW, 42)
    summary = train(eos_ckpt, tmp_path / "run", rl_cfg(keep=True, steps=3), scorer)
    ro = read_table(tmp_path / "run" / "rollouts.parquet", "rollouts").to_pandas()
    steps = read_table(tmp_path / "run" / "steps.parquet", "steps").to_pandas()
    assert len(steps) == 3 and len(ro) == 72  # three steps although a third of replies failed

    # What the teacher was shown: prompt + continuation with its trailing </s>.
    rubric = load_rubric("config/prompts/teacher_rubric.txt")
    seen = {r["body"]["messages"][-1]["content"] for r in srv.requests}
    assert {rubric.render(PROMPT, c) for c in ro.continuation} <= seen
    ended = ro[ro.n_tokens < MAX_NEW]
    assert len(ended) and all(c.endswith("</s>") for c in ended.continuation)
    eos_only = ro[ro.n_tokens == 1]
    assert len(eos_only) and set(eos_only.continuation) == {"</s>"}
    # The length bonus counts the words of that text: an EOS-only story is one word.
    assert (eos_only.n_words == 1).all()
    assert np.allclose(eos_only.length_bonus, 0.4 * 1 / MAX_NEW)
    assert (ro.n_words == ro.continuation.str.split().str.len()).all()
    assert np.allclose(ro.length_bonus, 0.4 * ro.n_words / MAX_NEW)
    assert summary["generated_words"] == ro.n_words.sum()

    # Unparseable replies scored 0.5, and every step counts them.
    bad = ro[~ro.parsed]
    assert len(bad) == 72 // 3
    assert np.allclose(bad.teacher_score, 0.5)
    assert steps.teacher_unparsed.sum() == len(bad) and steps.teacher_failed_calls.sum() == 0
    assert np.allclose(steps.parsed_share, 1 - steps.teacher_unparsed / 24)


def test_default_setting_drops_special_tokens_and_stops_on_failures(eos_ckpt, tmp_path, server):
    srv = server(reply_fn=lambda m: "2 1 1")
    scorer = teacher_scorer(teacher(srv.url, "stop"), {"length_coef": 0.4}, MAX_NEW, 42)
    train(eos_ckpt, tmp_path / "run", rl_cfg(keep=False, steps=1), scorer)
    ro = read_table(tmp_path / "run" / "rollouts.parquet", "rollouts").to_pandas()
    assert not any("</s>" in c for c in ro.continuation)
    assert ((ro.n_tokens == 1) <= (ro.continuation == "")).all()  # EOS only: an empty story
    assert (ro[ro.continuation == ""].n_words == 0).all()

    srv.reply_fn = every_third_unparseable()
    scorer = teacher_scorer(teacher(srv.url, "stop"), {"length_coef": 0.4}, MAX_NEW, 42)
    with pytest.raises(TeacherFailure, match="unparseable"):
        train(eos_ckpt, tmp_path / "run2", rl_cfg(keep=False, steps=1), scorer)


def test_story_evaluation_follows_the_setting(eos_ckpt, tmp_path):
    from storyrl.config import StoryEvalConfig
    from storyrl.evaluate.stories import evaluate_stories

    scorer = teacher_scorer({"backend": "heuristic"}, {"length_coef": 0.4}, MAX_NEW, 42)
    evaluate_stories(
        eos_ckpt,
        tmp_path / "s.parquet",
        StoryEvalConfig(n_stories=30, device="cpu"),
        rl_cfg(keep=True),
        scorer,
    )
    ro = read_table(tmp_path / "s.parquet", "rollouts").to_pandas()
    assert all(c.endswith("</s>") for c in ro[ro.n_tokens < MAX_NEW].continuation)
    assert (ro[ro.n_tokens == 1].n_words == 1).all()


def test_paper_config_selects_the_paper_behaviour_and_the_default_does_not():
    paper = load(ROOT / "config" / "paper.yaml")
    assert paper.teacher.on_failure == "default"
    assert paper.rl.sampling.keep_special_tokens is True
    default = load(ROOT / "config" / "config.yaml")
    assert default.teacher.on_failure == "stop"
    assert default.rl.sampling.keep_special_tokens is False
