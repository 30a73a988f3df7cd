"""Judge agreement: the sample, the re-scoring with a real (offline) teacher, the statistics on
crafted samples whose answers are known, and the tables and figure through the registry."""

import numpy as np
import pandas as pd
import pytest

from analysis_synth import write_results
from storyrl.analysis.agreement import agreement_stats, headline_stats, load_agreement
from storyrl.analysis.targets import build_all
from storyrl.config import AgreementConfig, AgreementTeacher, AnalysisConfig
from storyrl.core import layout
from storyrl.stories.teacher.agreement import draw_sample, rescore


def crafted(orig: np.ndarray, other: np.ndarray, teacher="other") -> pd.DataFrame:
    """An agreement frame of one run whose original scores are `orig` and further scores
    `other` (n x 3 arrays of 0..3), all parsed, spread over the ten tenths."""
    n = len(orig)
    df = pd.DataFrame(
        {
            "run_id": "90M-seed42-base",
            "step": np.arange(n) + 1,
            "sample": 0,
            "tenth": np.arange(n) * 10 // n,
            "teacher": teacher,
            "parsed": True,
            "orig_parsed": True,
            "teacher_score": other.sum(1) / 9,
            "orig_teacher_score": orig.sum(1) / 9,
            "n_words": 50,
            "n_tokens": 60,
            "pretrain_words": 90_000_000,
            "seed": 42,
            "variant": "base",
        }
    )
    for i, c in enumerate(("readability", "coherence", "creativity")):
        df[c], df[f"orig_{c}"] = other[:, i], orig[:, i]
    return df


def test_identical_judges_agree_perfectly():
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 4, (200, 3))
    stats = agreement_stats(crafted(orig, orig.copy())).set_index("measure")
    assert list(stats.index) == ["readability", "coherence", "creativity", "total"]
    assert np.allclose(stats.spearman_rho, 1.0)
    assert np.allclose(stats.kappa_quadratic, 1.0)
    assert (
        (stats.mean_diff == 0).all() and (stats.diff_lo == 0).all() and (stats.diff_hi == 0).all()
    )
    assert (stats.exact_share == 1).all() and (stats.pairs == 200).all()


def test_a_shifted_judge_shows_its_shift_and_keeps_the_ranking():
    rng = np.random.default_rng(1)
    orig = rng.integers(0, 3, (300, 3))  # 0..2, so +1 stays on the 0..3 scale
    stats = agreement_stats(crafted(orig, orig + 1)).set_index("measure")
    assert np.allclose(stats.loc[list(stats.index[:3]), "mean_diff"], 1.0)
    assert stats.loc["total", "mean_diff"] == pytest.approx(3.0)
    assert np.allclose(stats.spearman_rho, 1.0)  # same order, other level
    assert (stats.kappa_quadratic < 1).all()  # kappa counts the disagreement in level
    assert (stats.exact_share == 0).all()
    assert stats.loc["total", "diff_lo"] == pytest.approx(3.0)  # every pair differs by 3


def test_kappa_and_rho_against_hand_computed_values():
    # Readability: 4 stories, original 0 1 2 3, further 0 1 3 3 (one off by one).
    orig = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
    other = orig.copy()
    other[2, 0] = 3
    s = agreement_stats(crafted(orig, other)).set_index("measure").loc["readability"]
    # Quadratic kappa = 1 - sum(w O) / sum(w E), w = (i - j)^2: observed 1 (the one story
    # off by one); expected from the marginals, rows one each of 0..3, columns (1, 1, 0, 2):
    # (14 + 6 + 2 * 14) / 4 = 12, so kappa = 1 - 1/12.
    assert s.kappa_quadratic == pytest.approx(11 / 12)
    # Spearman: ranks (1,2,3,4) vs (1,2,3.5,3.5): rho = 0.9486832980505138.
    assert s.spearman_rho == pytest.approx(0.9486832980505138)
    assert s.mean_diff == pytest.approx(0.25)


def test_unparsed_stories_are_left_out_of_the_pairs():
    orig = np.ones((20, 3), int)
    df = crafted(orig, orig.copy())
    df.loc[:4, "parsed"] = False
    df.loc[5:6, "orig_parsed"] = False
    s = agreement_stats(df).set_index("measure")
    assert (s.pairs == 13).all() and (s.stories == 20).all()


def test_sample_is_stratified_over_tenths_and_seeded():
    rollouts = pd.DataFrame(
        {"step": np.repeat(np.arange(1, 51), 8), "sample": np.tile(range(8), 50)}
    )
    a = draw_sample(rollouts, 40, seed=3, run_id="r")
    assert len(a) == 40
    assert a.tenth.value_counts().sort_index().tolist() == [4] * 10
    assert a.equals(draw_sample(rollouts, 40, seed=3, run_id="r"))
    assert not a.equals(draw_sample(rollouts, 40, seed=4, run_id="r"))
    # A tenth with fewer stories than its share gives all it has.
    few = draw_sample(rollouts[rollouts.step > 5].reset_index(drop=True), 400, seed=0, run_id="r")
    assert len(few) == 360 and not few.duplicated(["step", "sample"]).any()


def test_rescore_with_a_stricter_heuristic_and_build_the_tables(tmp_path):
    results = tmp_path / "results"
    runs = [(20_000_000, 42), (500_000_000, 42)]
    write_results(results, n_steps=20, batch=12, n_stories=10, runs=runs)
    inputs = layout.discover(results)
    cfg = AgreementConfig(
        teachers={"strict": {"backend": "heuristic", "heuristic": {"strictness": 1.5}}},
        stories_per_run=60,
    )
    ((name, teacher),) = cfg.active().items()
    run_ids = [p.parent.name for p in inputs.rollouts]
    outs = [layout.agreement_path(results, name, r) for r in run_ids]
    summary = rescore(name, teacher, inputs.rollouts, outs, cfg.stories_per_run, cfg.seed)
    assert [s["stories"] for s in summary] == [60, 60]
    got = load_agreement(outs)
    assert set(got.run_id) == set(run_ids) and (got.teacher == "strict").all()
    # The same sample for every teacher (the draw depends on run, seed and N only).
    lenient = AgreementTeacher(backend="heuristic")
    outs2 = [tmp_path / "lenient" / f"{r}.parquet" for r in run_ids]
    rescore("lenient", lenient, inputs.rollouts, outs2, 60, 0)
    again = load_agreement(outs2)
    assert got[["run_id", "step", "sample"]].equals(again[["run_id", "step", "sample"]])

    result = build_all(results, tmp_path / "out", AnalysisConfig(bootstrap=50), strict=False)
    written = {p.name for p in result["written"]}
    assert {"teacher_agreement.csv", "agreement_headline.csv", "teacher_agreement.png"} <= written
    table = pd.read_csv(tmp_path / "out" / "tables" / "teacher_agreement.csv")
    assert list(table.measure) == ["readability", "coherence", "creativity", "total"]
    head = headline_stats(got, None, AnalysisConfig(bootstrap=50))
    assert set(head.teacher) == {"original", "strict"}
    assert {"before/after", "equivalence (paper)", "equivalence (curve)"} <= set(head.what)


def test_agreement_is_off_until_a_teacher_is_active():
    cfg = AgreementConfig(teachers={"qwen": {"backend": "vllm"}})
    assert cfg.active() == {}
    on = AgreementConfig(teachers={"qwen": {"backend": "vllm", "model": "/models/qwen"}})
    assert list(on.active()) == ["qwen"]


@pytest.mark.slow
def test_the_paper_plan_rescores_on_a_gpu_once_the_second_judges_path_is_set(tmp_path):
    import json

    import yaml

    from helpers import ROOT, paper_weights, snakemake
    from storyrl.config import ConfigError, load
    from storyrl.stories.checks import check_teacher_weights

    paper = ROOT / "config" / "paper.yaml"
    base = ["-n", "--configfile", str(paper), str(paper_weights(tmp_path))]
    off = snakemake(tmp_path, *base)
    assert "teacher_agreement" not in off.stdout
    second = tmp_path / "second"
    extra = tmp_path / "second.yaml"
    extra.write_text(
        yaml.safe_dump({"agreement": {"teachers": {"second": {"model": str(second)}}}})
    )
    with pytest.raises(ConfigError, match=r"agreement\.teachers\.second\.model: .*no such folder"):
        check_teacher_weights(load(paper, paper_weights(tmp_path), extra))
    second.mkdir()
    (second / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    on = snakemake(tmp_path, *base, str(extra))
    # One GPU job for the judge: it loads its model once and scores the 8 runs' samples.
    assert on.stdout.count("rule teacher_agreement_gpu:") == 1, on.stdout[-3000:]
    job = on.stdout.split("rule teacher_agreement_gpu:")[1].split("\n\n")[0]
    inputs = next(line for line in job.splitlines() if line.strip().startswith("input:"))
    assert "gpu=1" in job and inputs.count("rollouts.parquet") == 8, job


def test_tables_do_not_depend_on_the_order_of_the_files(tmp_path):
    root = tmp_path / "r"
    write_results(
        root, n_steps=20, batch=12, n_stories=10, runs=[(20_000_000, 42), (500_000_000, 42)]
    )
    files = layout.discover(root).agreement
    cfg = AnalysisConfig(bootstrap=200)
    a = agreement_stats(load_agreement(files), cfg)
    b = agreement_stats(load_agreement(files[::-1]), cfg)
    pd.testing.assert_frame_equal(a, b)
    ha = headline_stats(load_agreement(files), None, cfg)
    hb = headline_stats(load_agreement(files[::-1]), None, cfg)
    pd.testing.assert_frame_equal(ha, hb)


def test_the_headline_builds_under_the_papers_score_statistic():
    # The paper config reads scores with the authors' regex from the runs' replies; the headline
    # compares judges on their parsed scores of one sample, which has no replies to re-read.
    rng = np.random.default_rng(0)
    orig, other = rng.integers(0, 4, (40, 3)), rng.integers(0, 4, (40, 3))
    cfg = AnalysisConfig(bootstrap=50, score_statistic="authors_regex")
    head = headline_stats(crafted(orig, other), None, cfg)
    plain = headline_stats(crafted(orig, other), None, AnalysisConfig(bootstrap=50))
    pd.testing.assert_frame_equal(head, plain)
    assert len(head) and head.teacher.nunique() == 2
