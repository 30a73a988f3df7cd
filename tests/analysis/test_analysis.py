"""Tables, the equivalence number, figures and the shared-results command, on synthetic
Parquet written through the real schemas (tests/analysis_synth.py)."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis_synth import rollout_rows, write_results
from storyrl.analysis import equivalence, load, tables
from storyrl.analysis.registry import names
from storyrl.analysis.stats import MonotoneCurve, bootstrap_means, interval
from storyrl.analysis.targets import build_all, make
from storyrl.cli import main
from storyrl.config import AnalysisConfig
from storyrl.core import layout
from storyrl.core.schemas import SchemaError, make_metadata, write_table

CFG = AnalysisConfig(bootstrap=300)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    info = write_results(root, n_steps=24, batch=12, n_stories=30)
    return root, info


# --------------------------------------------------------------------------- statistics
def test_bootstrap_interval_contains_the_mean_and_is_exact_for_constants():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 1.0, 200)
    lo, hi = interval(bootstrap_means([x], 500, rng), 0.95)
    assert lo < x.mean() < hi
    assert 0.1 < hi - lo < 0.5  # about 2 * 1.96 / sqrt(200) = 0.28
    assert interval(bootstrap_means([np.full(10, 2.0)], 50, rng), 0.95) == (2.0, 2.0)
    # Stratified: the mean of the groups' means, not of the pooled values.
    boot = bootstrap_means([np.zeros(5), np.full(50, 1.0)], 20, rng)
    assert np.allclose(boot, 0.5)


def test_monotone_curve_inverts_a_known_curve():
    words = [1e6, 1e7, 1e8, 1e9]
    curve = MonotoneCurve(words, [1.0, 2.0, 3.0, 4.0])  # score = log10(words) - 5
    w, status = curve.words_for(2.5)
    assert status == "ok" and w == pytest.approx(10**7.5, rel=1e-9)
    assert curve.words_for(3.0) == (pytest.approx(1e8), "ok")
    assert curve.words_for(4.5) == (float("inf"), "above_max")
    assert curve.words_for(0.5) == (1e6, "below_min")
    # A dip between checkpoints is pooled (isotonic), so the curve never goes down.
    bumpy = MonotoneCurve(words, [1.0, 2.5, 2.0, 4.0], weights=[1, 1, 1, 1])
    assert list(bumpy.y) == [1.0, 2.25, 2.25, 4.0]
    grid = np.logspace(6, 9, 200)
    assert np.all(np.diff(bumpy(grid)) >= -1e-12)
    assert bumpy.words_for(2.25)[0] == pytest.approx(1e7)  # the fewest words reaching it


def test_the_papers_own_numbers_give_its_headline():
    # FACTS: before-RL scores as the curve (the paper's comparison); 90M after RL scores 2.28.
    curve = MonotoneCurve(
        [20e6, 50e6, 90e6, 200e6, 500e6, 900e6], [0.03, 0.26, 0.70, 1.45, 2.25, 2.64]
    )
    words, status = curve.words_for(2.28)
    # The paper rounds to the 500M checkpoint (+410M); between checkpoints the curve gives a bit more.
    assert status == "ok" and 500e6 < words < 540e6
    assert curve.words_for(2.70) == (float("inf"), "above_max")  # 200M after RL: beyond 900M


# --------------------------------------------------------------------------- equivalence
def _story_eval(root, model_id, sums, words, rl_words=0, run_id=None):
    crit = np.array([[s // 3, s // 3 + (s % 3 > 0), s // 3 + (s % 3 > 1)] for s in sums]).clip(0, 3)
    assert list(crit.sum(1)) == list(sums)
    rows = rollout_rows(
        run_id or model_id, 0, 0, crit, np.full(len(sums), 50), np.random.default_rng(0), 3.0
    )
    ids = {"pretrain_words": words, "rl_words": rl_words, **({"run_id": run_id} if run_id else {})}
    write_table(
        layout.story_eval_path(root, model_id), "rollouts", rows, make_metadata("rollouts", **ids)
    )


def _step_row(run_id, step, budget_words, stories, teacher_score_mean) -> dict:
    row = {
        name: 0.0
        for name in (
            "length_bonus_mean",
            "length_bonus_std",
            "reward_mean",
            "reward_std",
            "parsed_share",
            "response_tokens_mean",
            "kl",
            "kl_coef",
            "entropy",
            "policy_entropy",
            "ratio",
            "policy_loss",
            "value_loss",
            "clipfrac",
            "approxkl",
            "value_var_explained",
            "skipped_minibatches",
            "time_sample_s",
            "time_score_s",
            "time_update_s",
            "teacher_score_std",
        )
    }
    row.update(
        run_id=run_id,
        step=step,
        budget_words=budget_words,
        stories=stories,
        generated_words=0,
        response_words_mean=40.0,
        teacher_score_mean=teacher_score_mean,
    )
    return row


def _run(root, run_id, before_sums, after_sums, n_steps=12, batch=4):
    rng = np.random.default_rng(0)
    rollouts, steps = [], []
    for step in range(1, n_steps + 1):
        sums = before_sums if step <= n_steps // 2 else after_sums
        crit = np.array([[min(3, s), max(0, s - 3), 0] for s in (sums * batch)[:batch]])
        rows = rollout_rows(run_id, step, step * 1000, crit, np.full(batch, 40), rng, 3.0)
        rollouts += rows
        steps.append(
            _step_row(
                run_id,
                step,
                step * 1000,
                step * batch,
                float(np.mean([r["teacher_score"] for r in rows])),
            )
        )
    write_table(
        layout.steps_path(root, run_id), "steps", steps, make_metadata("steps", run_id=run_id)
    )
    write_table(
        layout.rollouts_path(root, run_id),
        "rollouts",
        rollouts,
        make_metadata("rollouts", run_id=run_id),
    )


def test_equivalence_returns_the_known_answer(tmp_path):
    # Pretraining curve exactly on score = log10(words) - 5 (0-9 scale); each checkpoint's
    # stories vary, so the bootstrap has something to resample.
    for words, sums in (
        (1_000_000, [0, 2]),
        (10_000_000, [1, 3]),
        (100_000_000, [2, 4]),
        (1_000_000_000, [3, 5]),
    ):
        _story_eval(tmp_path, f"ckpt-{words}", sums * 10, words)
    _run(tmp_path, "10M-seed1-base", [1, 1], [2, 3])  # after = 2.5 -> 10^7.5 words
    _run(tmp_path, "100M-seed1-base", [3, 3], [5, 5])  # after = 5 > the curve's 4
    inp = layout.discover(tmp_path)
    cfg = AnalysisConfig(bootstrap=200, window_steps=6)
    steps, ro = load.load_steps(inp.steps), load.load_rollouts(inp.rollouts)
    table, _ = equivalence.compute_equivalence(load.load_story_eval(inp.story_eval), steps, ro, cfg)
    curve = table[table.method == "curve"].set_index("run_id")
    a, b = curve.loc["10M-seed1-base"], curve.loc["100M-seed1-base"]
    assert a.after == pytest.approx(2.5) and a.after_source == "last_6_stories"
    assert a.equivalent_words == pytest.approx(10**7.5, rel=1e-9)
    assert a.extra_words == pytest.approx(10**7.5 - 1e7, rel=1e-9)
    assert a.extra_lo <= a.extra_words <= a.extra_hi and a.extra_lo < a.extra_hi
    assert a.per_1M_rl_words == pytest.approx(a.extra_words * 1e6 / 12_000)
    assert a.status == "ok" and a.curve_source == "story_eval"
    assert b.status == "above_max" and b.equivalent == "> 1B" and np.isinf(b.equivalent_words)
    assert "not extrapolated" in b.claim

    # The story evaluation of the run's last RL checkpoint, when present, is the after score.
    _story_eval(
        tmp_path, "10M-rl-final", [3] * 8, 10_000_000, rl_words=12_000, run_id="10M-seed1-base"
    )
    _story_eval(
        tmp_path, "10M-rl-half", [0] * 8, 10_000_000, rl_words=6_000, run_id="10M-seed1-base"
    )
    se = load.load_story_eval(layout.discover(tmp_path).story_eval)
    table, _ = equivalence.compute_equivalence(se, steps, ro, cfg)
    a = table[table.method == "curve"].set_index("run_id").loc["10M-seed1-base"]
    assert a.after_source == "story_eval" and a.equivalent_words == pytest.approx(1e8)


PAPER_BEFORE_AFTER = {
    20: (0.03, 0.20),
    50: (0.26, 1.36),
    90: (0.70, 2.28),
    200: (1.45, 2.70),
    500: (2.25, 3.12),
    900: (2.64, 3.37),
}
"""FACTS, 'Results to reproduce': teacher score (0-9) of the first and last 10 batches."""


def test_paper_method_on_the_papers_numbers_gives_410M(tmp_path):
    from storyrl.analysis.stats import nearest_checkpoint

    before = {w * 10**6: b for w, (b, _) in PAPER_BEFORE_AFTER.items()}
    others = {w: b for w, b in before.items() if w != 90 * 10**6}
    assert nearest_checkpoint(others, 2.28) == (500e6, "ok")  # |2.25 - 2.28| is the least
    assert nearest_checkpoint(others, 3.0) == (float("inf"), "above_max")
    assert nearest_checkpoint({1: 1.0, 2: 2.0}, 1.5) == (1, "ok")  # a tie: the fewer words

    # The same numbers as training logs: 20 batches a run, the first 10 at the before-score,
    # the last 10 at the after-score, 999,360 budget words (920 steps at paper settings).
    for w, (b, a) in PAPER_BEFORE_AFTER.items():
        run_id = f"{w}M-seed42-base"
        rows = [
            _step_row(
                run_id, k, 5_760 + k * (999_360 - 5_760) // 20, k * 360, (b if k <= 10 else a) / 9
            )
            for k in range(1, 21)
        ]
        write_table(
            layout.steps_path(tmp_path, run_id),
            "steps",
            rows,
            make_metadata("steps", run_id=run_id),
        )
    out = tmp_path / "tables" / "equivalence.csv"
    make("table", "equivalence", layout.discover(tmp_path), out, CFG)
    eq = pd.read_csv(out)
    paper = eq[eq.method == "paper"].set_index("pretraining")
    row = paper.loc["90M"]
    assert row.after == pytest.approx(2.28) and row.equivalent == "500M"
    assert row.extra_words == 410e6 and row.status == "ok"
    assert "1M words of RL ≈ 410M words of pretraining" in row.claim
    # 900M beats every other checkpoint's score: "> 900M" (its own start), not "> 500M".
    assert list(paper.equivalent) == ["50M", "200M", "500M", "> 900M", "> 900M", "> 900M"]
    assert paper.loc["500M", "status"] == "above_max" and "> 400M" in paper.loc["500M", "claim"]
    assert paper.loc["900M", "claim"].startswith("no estimate")
    # Our curve method sits beside it, labelled, in the same table and the Markdown version.
    assert eq[eq.method == "curve"].pretraining.tolist() == paper.index.tolist()
    md = out.with_suffix(".md").read_text()
    assert "| paper " in md and "| curve " in md


def test_tables_do_not_depend_on_the_order_of_the_input_files(tmp_path, synth):
    root, _ = synth
    inp = layout.discover(root)
    shuffled = layout.Inputs(
        **{
            k: list(reversed(getattr(inp, k)))
            for k in ("steps", "rollouts", "summaries", "story_eval", "eval")
        },
        baselines=inp.baselines,
    )
    assert shuffled.rollouts != inp.rollouts
    for name in ("before_after", "equivalence"):
        a = make("table", name, inp, tmp_path / "a" / name, CFG)
        b = make("table", name, shuffled, tmp_path / "b" / name, CFG)
        for pa, pb in zip(a, b):
            assert pa.read_bytes() == pb.read_bytes(), pb.name


def test_equivalence_falls_back_to_before_rl_scores(synth):
    root, info = synth
    inp = layout.discover(root)
    table, cb = equivalence.compute_equivalence(
        load.load_story_eval([]), load.load_steps(inp.steps), None, CFG
    )
    assert set(table[table.method == "curve"].curve_source) == {"before_rl"}
    assert sorted(cb.words) == sorted({v["pretrain_words"] for v in info["runs"].values()})


# --------------------------------------------------------------------------- tables
def test_before_after_table(synth):
    root, info = synth
    inp = layout.discover(root)
    steps = load.load_steps(inp.steps)
    t = tables.before_after_table(steps, load.load_rollouts(inp.rollouts), CFG)
    assert list(t.pretraining) == ["20M", "50M", "90M", "200M", "500M", "900M"]
    assert list(t.runs) == [1, 1, 1, 1, 1, 3]
    assert set(t.ci_over) == {"stories"}
    assert (t.before_lo <= t.before).all() and (t.before <= t.before_hi).all()
    assert (t.after_lo <= t.after).all() and (t.after <= t.after_hi).all()
    assert (t.after > t.before).iloc[1:].all()  # the synthetic runs learn (20M barely)
    # The 90M row, recomputed straight from the file: mean of the first 10 steps, on 0-9.
    raw = pq.read_table(layout.steps_path(root, "90M-seed42-base")).to_pandas()
    want = raw.sort_values("step").teacher_score_mean.head(10).mean() * 9
    assert t.set_index("pretraining").loc["90M", "before"] == pytest.approx(want)
    by_steps = tables.before_after_table(steps, None, CFG)
    assert set(by_steps.ci_over) == {"steps"}
    assert by_steps.before.to_numpy() == pytest.approx(t.before.to_numpy())


def test_paper_columns_are_the_seed_42_run_and_the_seed_mean_is_extra(synth):
    root, _ = synth
    inp = layout.discover(root)
    t = tables.before_after_table(
        load.load_steps(inp.steps), load.load_rollouts(inp.rollouts), CFG
    ).set_index("pretraining")
    ro = load.load_rollouts(inp.rollouts)
    steps = load.load_steps(inp.steps)

    def after(run_id):  # the last 10 steps' stories, 0-9
        last = steps[steps.run_id == run_id].step.nlargest(10)
        return ro[(ro.run_id == run_id) & ro.step.isin(last)].teacher_score.mean() * 9

    runs = [after(f"900M-seed{s}-base") for s in (42, 43, 44)]
    assert np.std(runs) > 0.01  # the seeds differ, so the choice shows
    row = t.loc["900M"]
    assert (row.seed, row.seeds, row.runs) == ("42", "42,43,44", 3)
    assert row.after == pytest.approx(runs[0])
    assert row.after_lo <= row.after <= row.after_hi
    assert row.after_seed_mean == pytest.approx(np.mean(runs))
    assert row.after_seed_sd == pytest.approx(np.std(runs, ddof=1))
    assert t.loc["90M", "seed"] == "42" and np.isnan(t.loc["90M", "after_seed_sd"])
    pooled = tables.before_after_table(steps, ro, CFG.model_copy(update={"paper_seed": None}))
    assert pooled.set_index("pretraining").loc["900M"].after == pytest.approx(np.mean(runs))


def test_babylm_table(synth):
    root, _ = synth
    inp = layout.discover(root)
    scores = load.load_eval(inp.eval)
    t = tables.babylm_table(scores, load.load_baselines(inp.baselines), CFG).set_index("task_id")
    assert list(t.index) == [
        "blimp",
        "blimp_supplement",
        "ewok",
        "comps",
        "entity_tracking",
        "wug_adj",
        "wug_past",
        "glue",
    ]
    assert {"1000M-pre baseline", "SimPO baseline", "900M-pre", "900M-RL", "RL delta"} <= set(
        t.columns
    )
    assert t.loc["entity_tracking", "1000M-pre baseline"] == 31.51
    full = scores[(scores.task == "entity_tracking")]
    pre = full[full.model_id == "ckpt-900M"].value.item()  # ids came from the file metadata
    # The paper's 900M-RL column is the seed-42 policy; the seed mean and sd are extra columns.
    rl = full[full.model_id == "900M-seed42-base-final"].value.item()
    seeds = full[full.model_id.str.startswith("900M-seed")].value
    assert len(seeds) == 3 and seeds.std() > 0.05
    assert t.loc["entity_tracking", "900M-pre"] == pytest.approx(pre)
    assert t.loc["entity_tracking", "900M-RL"] == pytest.approx(rl)
    assert t.loc["entity_tracking", "RL delta"] == pytest.approx(rl - pre)
    assert t.loc["entity_tracking", "RL seed mean"] == pytest.approx(seeds.mean())
    assert t.loc["entity_tracking", "RL seed sd"] == pytest.approx(seeds.std(ddof=1))
    mean = tables.babylm_table(scores, None, AnalysisConfig(paper_seed=None)).set_index("task_id")
    assert mean.loc["entity_tracking", "900M-RL"] == pytest.approx(seeds.mean())
    assert not any(i.endswith("_fast") for i in t.index)


def test_ledger_table_takes_whatever_keys_are_there(tmp_path, synth):
    root, info = synth
    t = tables.ledger_table(load.load_summaries(layout.discover(root).summaries))
    assert len(t) == len(info["runs"])
    assert list(t.columns[:4]) == ["run_id", "pretrain_words", "budget", "prompt_words"]
    assert set(t.source) == {"summary.json"}
    odd = tmp_path / "rl" / "x" / "summary.json"
    odd.parent.mkdir(parents=True)
    odd.write_text(json.dumps({"steps": 3, "my_extra": 1.5}))
    t = tables.ledger_table(load.load_summaries([odd]))
    assert list(t.columns) == ["run_id", "steps", "my_extra", "source"] and t.run_id.item() == "x"
    # Without summaries, a run's totals come from the last row of its steps.parquet.
    steps = load.load_steps([layout.steps_path(root, "90M-seed42-base")])
    t = tables.ledger_table([], steps).iloc[0]
    assert t.source == "steps.parquet" and t.steps == 24 and t.stories == 24 * 12
    assert t.budget_words == info["runs"]["90M-seed42-base"]["budget"]


# --------------------------------------------------------------------------- errors and ids
def test_errors_name_the_file_and_overrides_give_ids(tmp_path, synth):
    root, _ = synth
    bad = tmp_path / "steps.parquet"
    tbl = pq.read_table(layout.steps_path(root, "90M-seed42-base")).drop_columns(["kl"])
    pq.write_table(tbl, bad)
    with pytest.raises(SchemaError, match=r"steps\.parquet: column 'kl' missing"):
        load.load_steps([bad])
    # A run id that does not say its pretraining words: an error naming the file, or an override.
    anon = tmp_path / "anon.parquet"
    df = pq.read_table(layout.steps_path(root, "90M-seed42-base")).to_pandas().assign(run_id="mine")
    write_table(anon, "steps", df, make_metadata("steps", run_id="mine"))
    with pytest.raises(load.AnalysisError, match="anon.parquet.*pretraining words unknown"):
        load.load_steps([anon])
    got = load.load_steps([anon], load.parse_overrides([[str(anon), "pretrain_words=90M"]]))
    assert set(got.pretrain_words) == {90_000_000}


# --------------------------------------------------------------------------- targets and CLI
def _magic(path) -> bytes:
    return path.read_bytes()[:4]


def test_one_target_from_explicit_paths(tmp_path, synth):
    root, _ = synth
    steps = [str(p) for p in layout.discover(root).steps]
    assert (
        main(
            [
                "analysis",
                "table",
                "before_after",
                "--steps",
                *steps,
                "--output",
                str(tmp_path / "t" / "ba.csv"),
                "--section",
                json.dumps({"bootstrap": 50}),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(tmp_path / "t" / "ba.csv")) == 6
    assert (tmp_path / "t" / "ba.md").read_text().startswith("| pretraining")
    assert "\\begin{tabular}" in (tmp_path / "t" / "ba.tex").read_text()
    paths = make(
        "figure", "rl_dynamics", layout.Inputs(steps=steps), tmp_path / "f" / "dyn.pdf", CFG
    )
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert _magic(paths[0]) == b"%PDF" and _magic(paths[1]) == b"\x89PNG"
    with pytest.raises(load.AnalysisError, match="no input files for rollouts"):
        make("figure", "score_shares", layout.Inputs(steps=steps), tmp_path / "x.pdf", CFG)


def _copy(root, dest, pattern):
    for p in root.glob(pattern):
        (dest / p.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        (dest / p.relative_to(root)).write_bytes(p.read_bytes())


def test_shared_results_rebuild_everything_from_parquet_only(tmp_path, synth):
    root, _ = synth
    shared = tmp_path / "shared"  # another run's results: its Parquet files and nothing else
    _copy(root, shared, "**/*.parquet")
    assert {p.suffix for p in shared.rglob("*") if p.is_file()} == {".parquet"}
    out = tmp_path / "paper"
    section = json.dumps({"bootstrap": 100, "share_bins": 8})
    assert (
        main(
            [
                "analysis",
                "all",
                "--results",
                str(shared),
                "--output",
                str(out),
                "--section",
                section,
                "--strict",
            ]
        )
        == 0
    )
    for name in names("table"):
        for fmt in layout.TABLE_FORMATS:
            assert layout.table_path(out, name, fmt).stat().st_size > 100
    for name in names("figure"):
        pdf, png = (layout.figure_path(out, name, f) for f in layout.FIGURE_FORMATS)
        assert _magic(pdf) == b"%PDF" and _magic(png) == b"\x89PNG", name
        assert png.stat().st_size > 10_000
    eq = pd.read_csv(layout.table_path(out, "equivalence"))
    assert len(eq) == 16 and set(eq.method) == {"paper", "curve"}
    assert set(eq[eq.method == "curve"].curve_source) == {"story_eval"}
    assert len(pd.read_csv(layout.table_path(out, "ledger"))) == 8

    # Only the step logs: what needs more is skipped (with the reason), the rest built.
    partial = tmp_path / "partial"
    _copy(root, partial, "rl/*/steps.parquet")
    res = build_all(partial, tmp_path / "p_out", AnalysisConfig(bootstrap=50))
    assert set(res["skipped"]) == {
        "table/babylm",
        "figure/babylm",
        "figure/fast_eval_pretrain",
        "figure/fast_eval_rl",
        "figure/score_shares",
        "table/stories",
        "figure/pretrain_loss",
        "table/teacher_agreement",
        "table/agreement_headline",
        "figure/teacher_agreement",
    }
    eq = pd.read_csv(layout.table_path(tmp_path / "p_out", "equivalence"))
    assert set(eq[eq.method == "curve"].curve_source) == {"before_rl"}


# --------------------------------------------------------------------------- the paper's units
def test_figures_in_the_papers_units(tmp_path, synth):
    """config/paper.yaml draws as the paper's notebook: length in tokens, x in interactions
    (stories), Gaussian smoothing with sigma 30 steps; the default keeps words and a rolling mean."""
    from scipy.ndimage import gaussian_filter1d

    from helpers import ROOT
    from storyrl.analysis.figures_rl import dynamics_data
    from storyrl.config import load as load_config

    paper = load_config(ROOT / "config" / "paper.yaml").analysis
    assert (
        paper.length_unit,
        paper.x_axis,
        paper.smoothing,
        paper.smooth_sigma,
        paper.paper_seed,
    ) == ("tokens", "interactions", "gaussian", 30, 42)
    root, _ = synth
    inp = layout.discover(root)
    steps = load.load_steps(inp.steps)
    g = steps[steps.run_id == "90M-seed42-base"].sort_values("step")
    d = dynamics_data(steps, paper)
    length = d[(d.run_id == "90M-seed42-base") & (d.panel == "length")]
    assert length.x.tolist() == g.stories.tolist()
    assert length.y.to_numpy() == pytest.approx(
        gaussian_filter1d(g.response_tokens_mean.to_numpy(), 30, mode="nearest")
    )
    score = d[(d.run_id == "90M-seed42-base") & (d.panel == "teacher_score")]
    assert score.y.to_numpy() == pytest.approx(
        gaussian_filter1d(g.teacher_score_mean.to_numpy() * 9, 30, mode="nearest")
    )
    default = dynamics_data(steps, AnalysisConfig())
    length = default[(default.run_id == "90M-seed42-base") & (default.panel == "length")]
    assert length.x.tolist() == g.budget_words.tolist()
    assert length.y.to_numpy() == pytest.approx(
        g.response_words_mean.rolling(10, min_periods=1).mean()
    )
    cfg = paper.model_copy(update={"bootstrap": 50})
    for name in ("rl_dynamics", "score_shares", "entropy", "before_after"):
        pdf, png = make("figure", name, inp, tmp_path / name, cfg)
        assert _magic(pdf) == b"%PDF" and png.stat().st_size > 10_000
