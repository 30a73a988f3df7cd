"""What a reader of the figures sees: pretrain_loss labels every milestone with no two labels
on top of each other; fast_eval_rl puts every panel of a metric on one scale and hides no line
behind another; equivalence draws each run at its own starting checkpoint and states a claim
only for the RL words the run had. The figures are drawn by the real targets and read open."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from storyrl.analysis import load
from storyrl.analysis.equivalence import compute_equivalence
from storyrl.analysis.figures_eval import fast_eval_rl
from storyrl.analysis.figures_pretrain import pretrain_loss
from storyrl.analysis.figures_rl import equivalence
from storyrl.config import AnalysisConfig
from storyrl.core import layout
from test_analysis import _run, _story_eval

MILESTONES = (20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 1_200_000)


@pytest.fixture
def drawn(monkeypatch):
    """The figures a target draws, kept open after it saved them (saving closes them)."""
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    before = set(plt.get_fignums())
    yield lambda: [plt.figure(n) for n in plt.get_fignums() if n not in before]
    close("all")


def test_pretrain_loss_labels_every_milestone_apart(drawn, tmp_path):
    # As the default run logs it: a row every 10 steps of ~2,962 words, so the first logged
    # loss (29,620 words) comes after the 20K milestone.
    words = np.arange(10, 486, 10) * 2962.0
    logs = pd.DataFrame(
        {
            "run_id": "demo",
            "words_seen": words,
            "loss": 2 + 6 * (words / 3e4) ** -0.5,
            "milestones": [MILESTONES] * len(words),
        }
    )
    pretrain_loss(logs, tmp_path / "pretrain_loss.pdf")
    (fig,) = drawn()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = {"20K", "50K", "100K", "200K", "500K", "1M", "1.2M"}
    texts = [t for t in fig.axes[0].texts if t.get_text() in labels]
    assert sorted(t.get_text() for t in texts) == sorted(labels)
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlapping = [
        (texts[i].get_text(), texts[j].get_text())
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert overlapping == []


def test_fast_eval_rl_panels_share_a_scale_and_no_line_hides_another(drawn, tmp_path):
    rows = []
    for task, metric, base in (
        ("blimp_fast", "accuracy", 52.0),
        ("ewok_fast", "accuracy", 58.0),
        ("entity_tracking_fast", "accuracy", 30.0),
        ("wug_adj_fast", "spearman_rho", 0.1),
    ):
        for start in (100_000, 200_000, 1_200_000):
            for rl in (0, 3_250, 6_500):
                # 100K and 200K score alike: their lines lie on top of each other.
                value = base + (4.0 if start == 1_200_000 and metric == "accuracy" else 0.0)
                value += 2.0 * (rl > 0) * (task == "ewok_fast")
                rows.append(
                    {
                        "model_id": f"{start}-{rl}",
                        "pretrain_words": start,
                        "rl_words": rl,
                        "task": task,
                        "subtask": "",
                        "metric": metric,
                        "value": value,
                        "n_items": 50,
                    }
                )
    fast_eval_rl(pd.DataFrame(rows), tmp_path / "fast_eval_rl.pdf")
    (fig,) = drawn()
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    accuracy = [ax for ax in panels if "accuracy" in ax.get_ylabel()]
    assert len(accuracy) == 3 and len({ax.get_ylim() for ax in accuracy}) == 1
    for ax in panels:
        looks = [(line.get_marker(), line.get_linestyle()) for line in ax.lines]
        assert len(set(looks)) == len(looks), (ax.get_title(), looks)


def test_equivalence_draws_each_run_at_its_own_checkpoint(drawn, tmp_path):
    # Three starts as in the default run: 100K and 200K gain, 1.2M loses a little; the curve's
    # checkpoints are their story evaluations.
    for words, sums in ((100_000, [0, 1]), (200_000, [2, 3]), (1_200_000, [6, 7])):
        _story_eval(tmp_path, f"demo-pre-{words}", sums * 10, words)
    _run(tmp_path, "100K-seed42-base", [0, 1], [2, 2])
    _run(tmp_path, "200K-seed42-base", [2, 3], [4, 4])
    _run(tmp_path, "1200K-seed42-base", [6, 7], [6, 6])
    inp = layout.discover(tmp_path)
    cfg = AnalysisConfig(bootstrap=50, window_steps=6)
    se = load.load_story_eval(inp.story_eval)
    steps, ro = load.load_steps(inp.steps), load.load_rollouts(inp.rollouts)
    equivalence(se, steps, ro, tmp_path / "equivalence.pdf", cfg)
    (fig,) = drawn()
    starts = {"100K-seed42-base": 1e5, "200K-seed42-base": 2e5, "1200K-seed42-base": 1.2e6}
    seen = 0
    for ax in fig.axes:
        for c in ax.collections:
            run_id = c.get_label().split(":")[0]
            if run_id in starts:
                assert set(c.get_offsets()[:, 0]) == {starts[run_id]}, c.get_label()
                seen += 1
    assert seen == 6  # each run in both panels
    # The claims speak of the 12K RL words each run had, not of 1M extrapolated from them.
    table, _ = compute_equivalence(se, steps, ro, cfg)
    claims = table.set_index(["run_id", "method"]).claim
    assert all(c.startswith(("12K words of RL", "no estimate")) for c in claims), list(claims)
    # 200K ends between its start (2.5) and 1.2M (6.5), far from both: no "≈ 1.2M".
    assert "near neither" in claims.loc[("200K-seed42-base", "paper")]
    # 1200K ends below its own start: no "> 1.2M" for it.
    paper = claims.loc[("1200K-seed42-base", "paper")]
    assert paper.startswith("no estimate") and "own start" in paper
