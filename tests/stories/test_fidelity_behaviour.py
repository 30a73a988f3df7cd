"""What `config/paper.yaml` does differently from our defaults, as the authors' code
(malihamza/babylm-interactive-learning at 4bfd376) did it: their reply parse, the notebook reading
replies as their CSV held them, their failure handling, the prompt set's cap, fp32 zero-shot, the
fast task list without COMPS and the mirrored smoothing of the score-against-length panel. Each
test runs the real component; docs/paper.md's fidelity table lists the settings."""

from pathlib import Path

import pytest

from storyrl.analysis.load import regex_sums
from storyrl.stories.teacher import TeacherConfig, make_teacher

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Once upon a time,"

# reply -> the teacher score the authors' parse gives it (their teacher.py: `\b\d+\b`, clamped
# to 0..3, the first three over 9, no number 0.5)
AUTHORS = {"R2 N2 C3": 0.5, "2nd 3 1": 4 / 9, "5 -1 2": 6 / 9, "Score_2 1 1": 2 / 9}


def echo_teacher(server, **kw):
    """A teacher whose server replies with the story's text after `STORY:`."""
    srv = server(reply_fn=lambda msg: msg.split("STORY:")[1].split("\n")[0].strip())
    cfg = TeacherConfig(
        backend="openai",
        model="teacher-x",
        openai={"base_url": srv.url, "retries": 0, "timeout_s": 5},
        **kw,
    )
    return make_teacher(cfg, seed=0)


def test_paper_parse_reads_replies_as_the_authors_regex(server):
    t = echo_teacher(server, parse="paper", on_failure="default")
    try:
        js = t.score([PROMPT] * len(AUTHORS), [f"STORY: {r}\n" for r in AUTHORS])
    finally:
        t.close()
    got = {r: j.teacher_score for r, j in zip(AUTHORS, js)}
    assert got == pytest.approx(AUTHORS)
    assert [j.parsed for j in js] == [False, True, True, True]


def test_notebook_statistic_reads_replies_as_the_csv_held_them():
    # Their log writer turned \r and \n into spaces; their teacher stripped the reply.
    assert regex_sums(["2\n1\n1", "2\r\n1\r\n1", "\n 3 3 3 \n", "2\t1\t1", None]) == [
        4,
        4,
        9,
        None,
        None,
    ]


class FlakyBackend:
    """A teacher backend that replies `2 1 1` to every story, except that the calls numbered in
    `fail` raise, as a dead vLLM engine does for a whole batch."""

    name, model, sampling, server = "flaky", "flaky-1", {"seed": 0}, None

    def __init__(self, fail=()):
        self.fail, self.calls = set(fail), 0

    def replies(self, prompts, continuations):
        self.calls += 1
        if self.calls in self.fail:
            raise RuntimeError("engine died")
        return ["2 1 1"] * len(prompts)


def flaky_scorer(fail, **teacher):
    from storyrl.stories.rubric import load_rubric
    from storyrl.stories.scoring import TeacherScorer
    from storyrl.stories.teacher import RewardConfig, Teacher

    cfg = TeacherConfig(**teacher)
    t = Teacher(FlakyBackend(fail), load_rubric(cfg.template), cfg)
    return TeacherScorer(t, RewardConfig(), MAX_NEW)


MAX_NEW = 6
TOY_PROMPT = "once upon a time in a land far away"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from rl_toys import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("toy") / "ckpt")


def rl_cfg(**kw):
    from storyrl.config import RLConfig

    return RLConfig(
        prompts=[TOY_PROMPT],
        batch_size=8,
        budget=100_000,
        checkpoint_every=100_000,
        device="cpu",
        threads=1,
        sampling={"max_new_tokens": MAX_NEW},
        **kw,
    )


def tables(run):
    from storyrl.core.schemas import read_table

    return (
        read_table(run / "rollouts.parquet", "rollouts").to_pandas(),
        read_table(run / "steps.parquet", "steps").to_pandas(),
    )


def test_a_failed_teacher_call_scores_the_batch_default_and_costs_no_words(ckpt, tmp_path):
    from storyrl.rl.train import train

    scorer = flaky_scorer({2}, on_call_error="default", on_failure="default")
    summary = train(ckpt, tmp_path / "run", rl_cfg(max_steps=3), scorer)
    ro, steps = tables(tmp_path / "run")
    assert list(steps.step) == [1, 2, 3] and summary["steps"] == 3
    failed = ro[ro.step == 2]
    assert (failed.teacher_reply == "").all() and (failed.teacher_score == 0.5).all()
    assert list(steps.teacher_failed_calls) == [0, 8, 0]
    # The first step pays the prompts (8 x 9 words) and 8 replies of 3; the failed one nothing.
    assert list(steps.budget_words) == [72 + 24, 72 + 24, 72 + 48]


def test_the_teacher_call_error_stops_by_default(ckpt, tmp_path):
    from storyrl.rl.train import train

    with pytest.raises(RuntimeError, match="engine died"):
        train(ckpt, tmp_path / "run", rl_cfg(max_steps=3), flaky_scorer({2}))


def test_an_error_in_a_step_skips_the_batch_and_the_prompt_set_ends_the_run(ckpt, tmp_path):
    from storyrl.rl.train import train

    # Four batches in the prompt set (35 // 8); the second fails inside its step.
    cfg = rl_cfg(max_prompts=35, on_step_error="skip")
    summary = train(ckpt, tmp_path / "run", cfg, flaky_scorer({2}))
    ro, steps = tables(tmp_path / "run")
    assert list(steps.step) == [1, 2, 3] and len(ro) == 24
    assert list(steps.skipped_batches) == [0, 1, 1]
    assert summary["skipped_batches"] == 1 and summary["steps"] == 3
    assert summary["budget_words"] == 72 + 3 * 24  # far below the budget: the prompts ran out
    assert summary["stopped"]["reason"] == "prompts" and summary["stopped"]["after_step"] == 3


def test_the_prompt_set_caps_the_steps_without_errors(ckpt, tmp_path):
    from storyrl.rl.train import train

    summary = train(ckpt, tmp_path / "run", rl_cfg(max_prompts=17), flaky_scorer(()))
    assert summary["steps"] == 2 and summary["skipped_batches"] == 0
    assert summary["stopped"]["planned_steps"] == 2  # no warning of an early end


def test_skipping_needs_a_prompt_set_and_the_default_has_neither():
    from storyrl.config import load

    with pytest.raises(ValueError, match="on_step_error: skip needs max_prompts"):
        rl_cfg(on_step_error="skip")
    with pytest.raises(ValueError, match="no whole batch"):
        rl_cfg(max_prompts=7)
    default = load(ROOT / "config" / "config.yaml")
    assert default.rl.max_prompts is None and default.rl.on_step_error == "stop"
    assert default.teacher.on_call_error == "raise"


def paper_and_default():
    from storyrl.config import load

    return load(ROOT / "config" / "paper.yaml"), load(ROOT / "config" / "config.yaml")


def test_paper_zero_shot_scores_in_fp32_on_a_gpu():
    from storyrl.evaluate.scorer import uses_bf16

    paper, default = paper_and_default()
    assert not uses_bf16(paper.zero_shot.dtype, "cuda")
    assert uses_bf16(default.zero_shot.dtype, "cuda")
    assert not uses_bf16(default.zero_shot.dtype, "cpu")


def test_paper_fast_sets_have_no_comps_and_the_full_sets_do(tmp_path):
    from evalfixtures import build_model, write_evaluation_data
    from storyrl.evaluate.zero_shot import run_zero_shot

    model_dir = tmp_path / "tiny"
    build_model(model_dir)
    data = write_evaluation_data(tmp_path / "evaluation_data")
    paper, default = paper_and_default()

    def headline_tasks(zs, variant):
        cfg = zs.model_copy(update={"variant": variant, "device": "cpu", "dtype": "auto"})
        rows = run_zero_shot(model_dir, data, cfg=cfg)
        return {r["task"] for r in rows if r["subtask"] == ""}

    assert "comps_fast" not in headline_tasks(paper.zero_shot, "fast")
    assert "comps" in headline_tasks(paper.zero_shot, "full")
    assert "comps_fast" in headline_tasks(default.zero_shot, "fast")


def test_paper_score_length_panel_is_mirrored_at_the_ends():
    import numpy as np
    import pandas as pd
    from scipy.ndimage import gaussian_filter1d

    from storyrl.analysis.figures_rl import dynamics_data

    paper, default = paper_and_default()
    n = 120
    rng = np.random.default_rng(0)
    steps = pd.DataFrame(
        {
            "run_id": "90M-seed42-base",
            "step": np.arange(1, n + 1),
            "budget_words": np.arange(1, n + 1) * 1080,
            "stories": np.arange(1, n + 1) * 360,
            "response_tokens_mean": np.linspace(30, 80, n) + rng.normal(0, 3, n),
            "response_words_mean": np.linspace(20, 60, n),
            "teacher_score_mean": np.linspace(0.2, 0.4, n) + rng.normal(0, 0.02, n),
            "kl": 0.0,
        }
    )

    def panel(cfg, name):
        d = dynamics_data(steps, cfg)
        return d[d.panel == name]

    got = panel(paper.analysis, "score_length")
    want_x = gaussian_filter1d(steps.response_tokens_mean.to_numpy(), 30, mode="mirror")
    want_y = gaussian_filter1d(steps.teacher_score_mean.to_numpy() * 9, 30, mode="mirror")
    assert got.x.to_numpy() == pytest.approx(want_x) and got.y.to_numpy() == pytest.approx(want_y)
    # The other curves keep `nearest`, and so does the panel outside the paper config.
    length = panel(paper.analysis, "length").y.to_numpy()
    nearest = gaussian_filter1d(steps.response_tokens_mean.to_numpy(), 30, mode="nearest")
    assert length == pytest.approx(nearest) and abs(length[0] - want_x[0]) > 0.5
    gaussian = default.analysis.model_copy(update={"smoothing": "gaussian"})
    words = gaussian_filter1d(steps.response_words_mean.to_numpy(), 30, mode="nearest")
    assert panel(gaussian, "score_length").x.to_numpy() == pytest.approx(words)
